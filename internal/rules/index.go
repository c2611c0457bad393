package rules

import (
	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// Most rules test a field against constants at the top of their condition:
// event.action == "connect" && ..., process.name in recon_tools && ...,
// process.stdin_socket && .... Such a test, a guard, is necessary for the
// rule to match. The rules of a kind are indexed by their guards, so that an
// event is evaluated only against the rules whose guard holds (one map
// lookup per guarded field) and the rules without one. In CEL, false && x is
// false whatever x is, errors included, so skipping a rule whose guard is
// false gives exactly what evaluating it would.

// guard is a test of one field: it equals one of values, or (isBool) a
// bool field is true. A rule's guard is a list of such tests, one of which
// holds whenever the rule matches.
type guard struct {
	inst     int
	field    *fieldDef
	strs     []string
	ints     []int64
	prefixes []string // the field starts with one of these
	isBool   bool     // a bool field is true
	nonEmpty bool     // a string field is not ""
}

// guardOf picks a guard for a checked condition, or reports there is none.
func guardOf(ast *cel.Ast) ([]guard, bool) {
	gs, score := guardsOf(ast.NativeRep(), ast.NativeRep().Expr())
	return gs, score > 0
}

// guardsOf finds tests one of which holds when e is true, and scores them:
// 0 for none, higher for tests that tell events apart better. Of the
// operands of &&, any one's guard will do: the best is taken. Of the
// operands of ||, each must have one, and all of them make the guard: a
// true || has a true operand, errors or not.
func guardsOf(a *celast.AST, e celast.Expr) ([]guard, int) {
	if e.Kind() == celast.CallKind {
		call := e.AsCall()
		switch call.FunctionName() {
		case operators.LogicalAnd:
			var best []guard
			bestScore := 0
			for _, arg := range call.Args() {
				if gs, score := guardsOf(a, arg); score > bestScore || (score == bestScore && score > 0 && len(gs) < len(best)) {
					best, bestScore = gs, score
				}
			}
			return best, bestScore
		case operators.LogicalOr:
			var all []guard
			worst := 0
			for i, arg := range call.Args() {
				gs, score := guardsOf(a, arg)
				if score == 0 {
					return nil, 0
				}
				if i == 0 || score < worst {
					worst = score
				}
				all = append(all, gs...)
			}
			return all, worst
		}
	}
	g, ok := guardExpr(a, e)
	if !ok {
		return nil, 0
	}
	// The action and outcome tell events of a kind apart less than their
	// other fields do (every exec is "exec"; most file events succeed), an
	// operation (most file events are opens) less than a flag, a flag less
	// than a prefix, a prefix less than a whole value.
	switch {
	case g.inst == instEvent:
		return []guard{g}, 1
	case g.field.name == "op":
		return []guard{g}, 2
	case g.isBool || g.nonEmpty:
		return []guard{g}, 3
	case len(g.prefixes) > 0:
		return []guard{g}, 4
	}
	return []guard{g}, 5
}

func guardExpr(a *celast.AST, e celast.Expr) (guard, bool) {
	if g, ok := fieldPath(a, e); ok && g.field.typ.IsExactType(types.BoolType) {
		g.isBool = true
		return g, true
	}
	if e.Kind() != celast.CallKind {
		return guard{}, false
	}
	call := e.AsCall()
	args := call.Args()
	if call.IsMemberFunction() {
		return prefixGuard(a, call)
	}
	if len(args) != 2 {
		return guard{}, false
	}
	switch call.FunctionName() {
	case operators.NotEquals: // field != "": a field that is set
		for _, pair := range [][2]celast.Expr{{args[0], args[1]}, {args[1], args[0]}} {
			g, ok := fieldPath(a, pair[0])
			if ok && g.field.typ.IsExactType(types.StringType) && pair[1].Kind() == celast.LiteralKind && pair[1].AsLiteral() == types.String("") {
				g.nonEmpty = true
				return g, true
			}
		}
	case operators.Equals:
		for _, pair := range [][2]celast.Expr{{args[0], args[1]}, {args[1], args[0]}} {
			g, ok := fieldPath(a, pair[0])
			if ok && pair[1].Kind() == celast.LiteralKind && g.add(pair[1].AsLiteral()) {
				return g, true
			}
		}
	case operators.In:
		g, ok := fieldPath(a, args[0])
		if !ok {
			return guard{}, false
		}
		elems, ok := constElems(a, args[1])
		if !ok {
			return guard{}, false
		}
		for _, x := range elems {
			if !g.add(x) {
				return guard{}, false
			}
		}
		return g, true
	}
	return guard{}, false
}

// constElems returns the values of a constant list: a list literal of
// literals, or a rule file's list.
func constElems(a *celast.AST, e celast.Expr) ([]ref.Val, bool) {
	var elems []ref.Val
	switch e.Kind() {
	case celast.ListKind:
		for _, x := range e.AsList().Elements() {
			if x.Kind() != celast.LiteralKind {
				return nil, false
			}
			elems = append(elems, x.AsLiteral())
		}
	case celast.IdentKind: // a rule file's list, a constant
		r, ok := a.ReferenceMap()[e.ID()]
		if !ok || r.Value == nil {
			return nil, false
		}
		l, ok := r.Value.(traits.Lister)
		if !ok {
			return nil, false
		}
		n, _ := l.Size().(types.Int)
		for i := types.Int(0); i < n; i++ {
			elems = append(elems, l.Get(i))
		}
	default:
		return nil, false
	}
	return elems, true
}

// prefixGuard makes a guard of field.startsWith("lit") and
// field.startsWithAny(list).
func prefixGuard(a *celast.AST, call celast.CallExpr) (guard, bool) {
	args := call.Args()
	if len(args) != 1 {
		return guard{}, false
	}
	g, ok := fieldPath(a, call.Target())
	if !ok || !g.field.typ.IsExactType(types.StringType) {
		return guard{}, false
	}
	var elems []ref.Val
	switch call.FunctionName() {
	case "startsWith":
		if args[0].Kind() != celast.LiteralKind {
			return guard{}, false
		}
		elems = []ref.Val{args[0].AsLiteral()}
	case "startsWithAny":
		var ok bool
		if elems, ok = constElems(a, args[0]); !ok {
			return guard{}, false
		}
	default:
		return guard{}, false
	}
	for _, x := range elems {
		s, ok := x.(types.String)
		if !ok {
			return guard{}, false
		}
		g.prefixes = append(g.prefixes, string(s))
	}
	return g, len(g.prefixes) > 0
}

// add adds a value the field may equal; false when its type does not fit.
func (g *guard) add(v ref.Val) bool {
	switch x := v.(type) {
	case types.String:
		if !g.field.typ.IsExactType(types.StringType) {
			return false
		}
		g.strs = append(g.strs, string(x))
		return true
	case types.Int:
		if !g.field.typ.IsExactType(types.IntType) {
			return false
		}
		g.ints = append(g.ints, int64(x))
		return true
	}
	return false
}

// fieldPath resolves a select chain of global variables (process.parent.name)
// to the object instance and field it reads.
func fieldPath(a *celast.AST, e celast.Expr) (guard, bool) {
	var names []string
	for e.Kind() == celast.SelectKind {
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return guard{}, false
		}
		names = append([]string{sel.FieldName()}, names...)
		e = sel.Operand()
	}
	if e.Kind() != celast.IdentKind || len(names) == 0 {
		return guard{}, false
	}
	// Only a reference to the global variable, not to a comprehension's.
	if r, ok := a.ReferenceMap()[e.ID()]; !ok || r.Name != e.AsIdent() {
		return guard{}, false
	}
	inst, fd, ok := resolveField(e.AsIdent(), names)
	if ok && fd.rawStr == nil && fd.rawInt == nil && fd.rawBool == nil {
		return guard{}, false
	}
	return guard{inst: inst, field: fd}, ok
}

// resolveField follows a top-level object and field names to the instance
// the last field is read from. It fails for objects and for fields of the
// elements of lists.
func resolveField(top string, names []string) (int, *fieldDef, bool) {
	tmpl := templateCtx()
	var o *objVal
	for _, v := range getSchema().vars {
		if v.name == top {
			o = &tmpl.inst[v.inst]
		}
	}
	if o == nil {
		return 0, nil, false
	}
	for i, name := range names {
		fd, ok := o.def.byName[name]
		if !ok {
			return 0, nil, false
		}
		isObj := fd.obj != nil && fd.typ.Kind() == types.StructKind
		if i == len(names)-1 {
			return tmpl.index(o), fd, !isObj
		}
		if !isObj {
			return 0, nil, false
		}
		o = fd.get(o).(*objVal)
	}
	return 0, nil, false
}

// kindIndex holds the enabled rules of one kind and their guards.
type kindIndex struct {
	rules  []*rule
	all    []uint64 // bitmap over rules: all of them
	always []uint64 // bitmap over rules: those without a guard
	fields []*guardedField
	cand   []uint64 // reused by Eval
}

// guardedField maps the values of one field to the rules it guards.
type guardedField struct {
	inst     int
	field    *fieldDef
	strs     map[string][]uint64 // value -> bitmap over rules
	ints     map[int64][]uint64
	prefixes *prefixNode // prefix of the value -> bitmap over rules
	onTrue   []uint64    // rules guarded by the field being true (bool) or set (string)
}

func newKindIndex(rules []*rule) *kindIndex {
	words := (len(rules) + 63) / 64
	ix := &kindIndex{rules: rules, all: make([]uint64, words), always: make([]uint64, words), cand: make([]uint64, words)}
	for i, r := range rules {
		ix.all[i/64] |= 1 << (i % 64)
		if len(r.guard) == 0 {
			ix.always[i/64] |= 1 << (i % 64)
			continue
		}
		for _, g := range r.guard {
			ix.add(i, g)
		}
	}
	return ix
}

// add registers rule i under a test of its guard.
func (ix *kindIndex) add(i int, g guard) {
	var gf *guardedField
	for _, f := range ix.fields {
		if f.inst == g.inst && f.field == g.field {
			gf = f
		}
	}
	if gf == nil {
		gf = &guardedField{inst: g.inst, field: g.field, strs: map[string][]uint64{}, ints: map[int64][]uint64{}}
		ix.fields = append(ix.fields, gf)
	}
	mark := func(m []uint64) []uint64 {
		if m == nil {
			m = make([]uint64, len(ix.all))
		}
		m[i/64] |= 1 << (i % 64)
		return m
	}
	if g.isBool || g.nonEmpty {
		gf.onTrue = mark(gf.onTrue)
	}
	for _, s := range g.strs {
		gf.strs[s] = mark(gf.strs[s])
	}
	for _, n := range g.ints {
		gf.ints[n] = mark(gf.ints[n])
	}
	for _, p := range g.prefixes {
		if gf.prefixes == nil {
			gf.prefixes = &prefixNode{}
		}
		n := gf.prefixes.insert(p)
		n.rules = mark(n.rules)
	}
}

// candidates returns the bitmap of rules whose guard holds for the event
// of c, or that have none.
func (ix *kindIndex) candidates(c *evalCtx) []uint64 {
	cand := ix.cand
	copy(cand, ix.always)
	for _, f := range ix.fields {
		var m []uint64
		o := &c.inst[f.inst]
		switch fd := f.field; {
		case fd.rawStr != nil:
			v := fd.rawStr(o)
			if len(f.strs) > 0 {
				m = f.strs[v]
			}
			if f.prefixes != nil {
				f.prefixes.match(v, cand)
			}
			if v != "" {
				for i, w := range f.onTrue {
					cand[i] |= w
				}
			}
		case fd.rawInt != nil && len(f.ints) > 0:
			m = f.ints[fd.rawInt(o)]
		case fd.rawBool != nil:
			if fd.rawBool(o) {
				m = f.onTrue
			}
		}
		for i, w := range m {
			cand[i] |= w
		}
	}
	return cand
}

// prefixNode is a radix tree of string prefixes: each node's label
// continues its parent's, and rules is the bitmap of the rules guarded by
// the prefix that ends at the node.
type prefixNode struct {
	label string
	rules []uint64
	kids  []*prefixNode // their labels start with distinct bytes
}

// insert returns the node for prefix p, splitting edges as needed.
func (n *prefixNode) insert(p string) *prefixNode {
	for p != "" {
		var kid *prefixNode
		for _, k := range n.kids {
			if k.label[0] == p[0] {
				kid = k
			}
		}
		if kid == nil {
			kid = &prefixNode{label: p}
			n.kids = append(n.kids, kid)
			return kid
		}
		common := 0
		for common < len(p) && common < len(kid.label) && p[common] == kid.label[common] {
			common++
		}
		if common < len(kid.label) {
			// Split: kid keeps the tail under a new node for the common part.
			mid := &prefixNode{label: kid.label[:common], kids: []*prefixNode{kid}}
			kid.label = kid.label[common:]
			for i, k := range n.kids {
				if k == kid {
					n.kids[i] = mid
				}
			}
			kid = mid
		}
		n, p = kid, p[common:]
	}
	return n
}

// match ors into cand the rules of every prefix of v in the tree.
func (n *prefixNode) match(v string, cand []uint64) {
	for {
		for i, w := range n.rules {
			cand[i] |= w
		}
		if v == "" {
			return
		}
		var next *prefixNode
		for _, k := range n.kids {
			if k.label[0] == v[0] {
				next = k
				break
			}
		}
		if next == nil || len(v) < len(next.label) || v[:len(next.label)] != next.label {
			return
		}
		n, v = next, v[len(next.label):]
	}
}
