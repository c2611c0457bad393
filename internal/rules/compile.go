package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"

	"github.com/vigilsec/vigil/internal/event"
)

// compiler turns conditions into checked CEL, with macros inlined.
type compiler struct {
	env    *cel.Env // the base environment, with the lists as constants and the macros as bool variables
	errs   *errs
	lists  map[string]*listDef
	macros map[string]*macroDef
}

// condition checks a condition and inlines the macros it uses.
func (c *compiler) condition(s scalar, what string) (*cel.Ast, bool) {
	ast, ok := c.check(s, what)
	if !ok {
		return nil, false
	}
	return c.inline(ast, s)
}

// check parses and type-checks a condition, reporting every problem at its
// place in the file.
func (c *compiler) check(s scalar, what string) (*cel.Ast, bool) {
	src := s.value()
	parsed, iss := c.env.Parse(src)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			msg := strings.TrimPrefix(e.Message, "Syntax error: ")
			c.errs.add(s.at(runeOffset(src, e.Location)), "syntax error: %s", msg)
		}
		return nil, false
	}
	checked, iss := c.env.Check(parsed)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			off, msg := c.explain(parsed, e)
			c.errs.add(s.at(off), "%s", msg)
		}
		return nil, false
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) {
		c.errs.add(s.at(0), "%s is not boolean: it is %s", what, t)
		return nil, false
	}
	return checked, true
}

// macroRefs lists the macros a checked expression refers to.
func (c *compiler) macroRefs(ast *cel.Ast) []string {
	var names []string
	seen := map[string]bool{}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if _, ok := c.macros[ref.Name]; ok && ref.Value == nil && !seen[ref.Name] {
			seen[ref.Name] = true
			names = append(names, ref.Name)
		}
	}
	slices.Sort(names)
	return names
}

// inline replaces the macros an expression uses by their definitions.
// Macros with errors were reported where they are defined: an expression
// that uses one is dropped silently.
func (c *compiler) inline(ast *cel.Ast, s scalar) (*cel.Ast, bool) {
	refs := c.macroRefs(ast)
	if len(refs) == 0 {
		return ast, true
	}
	var vars []*cel.InlineVariable
	for _, name := range refs {
		m := c.macros[name]
		if m.state != macroResolved {
			return nil, false
		}
		vars = append(vars, cel.NewInlineVariable(name, m.ast))
	}
	opt, err := cel.NewStaticOptimizer(cel.NewInliningOptimizer(vars...))
	if err != nil {
		c.errs.add(s.pos(), "inline macros: %v", err)
		return nil, false
	}
	out, iss := opt.Optimize(c.env, ast)
	if iss.Err() != nil {
		c.errs.add(s.pos(), "inline macros: %v", iss.Err())
		return nil, false
	}
	return out, true
}

const (
	macroUnresolved = iota
	macroResolving
	macroResolved
	macroBroken
)

func (c *compiler) checkMacro(m *macroDef) {
	ast, ok := c.check(m.raw.cond, "macro condition")
	if !ok {
		m.state = macroBroken
		return
	}
	m.ast = ast
	m.deps = c.macroRefs(ast)
}

// resolveMacro inlines into a macro the macros it uses, first resolving
// them, and reports cycles.
func (c *compiler) resolveMacro(name string, stack []string) bool {
	m := c.macros[name]
	switch m.state {
	case macroResolved:
		return true
	case macroBroken:
		return false
	case macroResolving:
		i := 0
		for stack[i] != name {
			i++
		}
		cycle := append(append([]string(nil), stack[i:]...), name)
		c.errs.add(m.pos, "macro cycle: %s", strings.Join(cycle, " -> "))
		return false
	}
	m.state = macroResolving
	for _, d := range m.deps {
		if !c.resolveMacro(d, append(stack, name)) {
			m.state = macroBroken
			return false
		}
	}
	m.state = macroResolved // for inline, which wants the dependencies resolved
	ast, ok := c.inline(m.ast, m.raw.cond)
	if !ok {
		m.state = macroBroken
		return false
	}
	m.ast = ast
	return true
}

// explain turns a checker error into a message in Vigil's terms (unknown
// fields by their full dotted name, with a suggestion) and the rune offset
// in the condition it is about.
func (c *compiler) explain(parsed *cel.Ast, e *common.Error) (int, string) {
	src := parsed.Source().Content()
	off := runeOffset(src, e.Location)
	msg := e.Message
	undeclared := strings.HasPrefix(msg, "undeclared reference to '")
	undefined := strings.HasPrefix(msg, "undefined field '")
	if !undeclared && !undefined {
		return off, msg
	}
	a := parsed.NativeRep()
	nodes := celast.MatchDescendants(celast.NavigateAST(a), func(x celast.NavigableExpr) bool { return x.ID() == e.ExprID })
	if len(nodes) == 0 {
		return off, msg
	}
	node := nodes[0]
	if undeclared {
		// Take in the fields selected from the unknown name.
		for {
			p, ok := node.Parent()
			if !ok || p.Kind() != celast.SelectKind || p.AsSelect().Operand().ID() != node.ID() || p.AsSelect().IsTestOnly() {
				break
			}
			node = p
		}
	}
	var parts []string
	x := celast.Expr(node)
	for x.Kind() == celast.SelectKind {
		parts = append([]string{x.AsSelect().FieldName()}, parts...)
		x = x.AsSelect().Operand()
	}
	if x.Kind() != celast.IdentKind {
		return off, msg
	}
	root := x.AsIdent()
	parts = append([]string{root}, parts...)
	if r, ok := a.SourceInfo().GetOffsetRange(x.ID()); ok {
		off = int(r.Start)
	}
	full := strings.Join(parts, ".")
	if undeclared && len(parts) == 1 {
		var names []string
		names = append(names, sortedKeys(c.lists)...)
		names = append(names, sortedKeys(c.macros)...)
		return off, "unknown list or macro " + quote(full) + suggest(root, names, "")
	}
	if undeclared {
		var names []string
		for _, v := range getSchema().vars {
			names = append(names, v.name)
		}
		return off, "unknown field " + quote(full) + suggest(root, names, "."+strings.Join(parts[1:], "."))
	}
	// An unknown field of a known object: suggest one of its fields.
	prefix := strings.Join(parts[:len(parts)-1], ".")
	if d := objectAt(prefix); d != nil {
		return off, "unknown field " + quote(full) + suggestPrefixed(parts[len(parts)-1], d.fieldNames(), prefix+".")
	}
	return off, "unknown field " + quote(full)
}

// objectAt returns the object type at a dotted path ("process.parent").
func objectAt(p string) *objDef {
	parts := strings.Split(p, ".")
	var cur *objDef
	for _, v := range getSchema().vars {
		if v.name == parts[0] {
			cur = v.obj
		}
	}
	for _, name := range parts[1:] {
		if cur == nil {
			return nil
		}
		f, ok := cur.byName[name]
		if !ok || f.obj == nil || f.typ.Kind() != types.StructKind {
			return nil
		}
		cur = f.obj
	}
	return cur
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// suggest names the closest candidate to a misspelt name, if one is close.
func suggest(name string, candidates []string, suffix string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD && d <= len(name)/2 {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + quote(best+suffix) + "?)"
}

func suggestPrefixed(name string, candidates []string, prefix string) string {
	s := suggest(name, candidates, "")
	if s == "" {
		return ""
	}
	best := strings.TrimSuffix(strings.TrimPrefix(s, " (did you mean \""), "\"?)")
	return " (did you mean " + quote(prefix+best) + "?)"
}

// editDistance is the optimal string alignment distance between two short
// strings: insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// runeOffset turns a CEL location (line from 1, column from 0, in
// characters) into a character offset in src.
func runeOffset(src string, loc common.Location) int {
	if loc == nil || loc.Line() < 1 {
		return 0
	}
	line, off := 1, 0
	for _, r := range src {
		if line == loc.Line() {
			break
		}
		off++
		if r == '\n' {
			line++
		}
	}
	return off + loc.Column()
}

// rule compiles one rule. It returns nil when the rule has errors, which
// are in c.errs.
func (c *compiler) rule(r *rawRule) *rule {
	ok := true
	cond, good := c.condition(r.cond, "condition")
	ok = ok && good
	excASTs := make([]*cel.Ast, len(r.exceptions))
	for i, x := range r.exceptions {
		var good bool
		excASTs[i], good = c.condition(x.cond, "exception condition")
		ok = ok && good
	}
	msg := &template{parts: []tmplPart{{lit: r.name}}}
	if r.output != nil {
		t, good := compileTemplate(*r.output, c.errs)
		ok = ok && good
		msg = t
	}
	var tests []testCase
	for _, t := range r.tests {
		e, good := buildTestEvent(t, r, c.errs)
		if good && t.hasPayload && r.payload == nil {
			c.errs.add(t.pos, "test %q gives a payload, but rule %q has no payload: block", t.name, r.id)
			good = false
		}
		if good && r.payload != nil {
			if e.Net == nil {
				e.Net = &event.Net{}
			}
			if e.Net.Op == "" {
				e.Net.Op = event.NetPayload
			}
		}
		ok = ok && good
		tests = append(tests, testCase{name: t.name, pos: t.pos, match: t.match, event: e, payload: t.payload, hasPayload: t.hasPayload})
	}
	if !ok {
		return nil
	}
	out := &rule{
		info: RuleInfo{ID: r.id, Name: r.name, Description: r.description, Severity: r.severity, On: r.on,
			Enabled: r.enabled, Tags: r.tags, MITRE: r.mitre, Response: r.response, DryRun: r.dryRun, Source: r.pos},
		msg:    msg,
		tests:  tests,
		writes: r.writes,
		reads:  r.reads,
	}
	// The worst case of the rule with its exceptions: each is evaluated at
	// most once.
	var cost uint64
	for _, a := range append([]*cel.Ast{cond}, excASTs...) {
		n, err := c.estimate(a)
		if err != nil {
			c.errs.add(r.cond.pos(), "estimating the cost of the condition: %v", err)
			return nil
		}
		if n > math.MaxUint64-cost {
			n = math.MaxUint64 - cost
		}
		cost += n
	}
	if cost > MaxCost {
		c.errs.add(r.cond.pos(), "rule %q is too costly to evaluate: its worst case is %s, above the limit of %s (a comprehension nested in another over an event's lists?)",
			r.id, costString(cost), costString(MaxCost))
		return nil
	}
	out.cost = cost
	tracked := cost > runtimeCostLimit
	out.tracked = tracked
	var err error
	if out.cond, err = c.program(cond, tracked); err != nil {
		c.errs.add(r.cond.pos(), "%v", err)
		return nil
	}
	for i, x := range r.exceptions {
		prog, err := c.program(excASTs[i], tracked)
		if err != nil {
			c.errs.add(x.cond.pos(), "%v", err)
			return nil
		}
		out.excs = append(out.excs, exception{name: x.name.value(), prog: prog})
	}
	if r.payload != nil {
		pl := r.payload.p
		out.info.Payload = &pl
	}
	plan, err := planFor(out.info, cond, len(r.exceptions) > 0)
	if err != nil {
		c.errs.add(r.responsePos, "rule %q: %v", r.id, err)
		return nil
	}
	out.info.Plan = plan
	out.prog = out.cond
	if g, ok := guardOf(cond); ok {
		out.guard = g
	}
	if len(r.exceptions) > 0 {
		// One program for the rule and its exceptions, so that Eval makes a
		// single call per rule.
		var b strings.Builder
		b.WriteString("(\n" + r.cond.value() + "\n) && !(\n")
		for i, x := range r.exceptions {
			if i > 0 {
				b.WriteString("\n) && !(\n")
			}
			b.WriteString(x.cond.value())
		}
		b.WriteString("\n)")
		ast, iss := c.env.Compile(b.String())
		if iss.Err() != nil {
			c.errs.add(r.cond.pos(), "rule and exceptions: %v", iss.Err())
			return nil
		}
		if ast, ok = c.inline(ast, r.cond); !ok {
			return nil
		}
		if out.prog, err = c.program(ast, tracked); err != nil {
			c.errs.add(r.cond.pos(), "%v", err)
			return nil
		}
	}
	return out
}

// program plans a checked condition; tracked adds CEL's cost tracking with
// RuntimeCostLimit (cost.go), which the hot path pays for.
func (c *compiler) program(ast *cel.Ast, tracked bool) (cel.Program, error) {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if !noFastPaths {
		opts = append(opts, fieldReads(ast))
	}
	if tracked {
		opts = append(opts, cel.CostTracking(actualCost{}), cel.CostLimit(runtimeCostLimit))
	}
	return c.env.Program(ast, opts...)
}

// noFastPaths, for tests, compiles programs without the fast paths.
var noFastPaths bool
