package rules

import (
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// Fast paths. CEL resolves a field path such as process.parent.name by
// looking the variable up by name, then applying one qualifier after
// another, each through interfaces, and boxes every string it reads into an
// interface value, which allocates. Most of a condition's time went there.
// The decorator installed by fieldReads replaces, in the plan of each
// program:
//
//   - every checked path that ends in a value (not an object) with a direct
//     read from the activation (fieldRead), boxed once per event;
//   - the common tests of such a field against constants (==, !=, in a
//     constant list, startsWith, endsWith, contains, startsWithAny,
//     endsWithAny, containsAny) with Go code on the unboxed value, which
//     allocates nothing;
//   - x in a constant list of strings with a Go map lookup.
//
// TestFieldsWriteAndRead and TestFastPathsEquivalent evaluate with and
// without them.

type fieldRead struct {
	id    int64
	inst  int // the object instance the field is read from
	field *fieldDef
}

// ID implements interpreter.Interpretable.
func (f *fieldRead) ID() int64 { return f.id }

// Eval implements interpreter.Interpretable.
func (f *fieldRead) Eval(a interpreter.Activation) ref.Val { return f.read(a) }

// Exec implements interpreter.InterpretableV2.
func (f *fieldRead) Exec(frame *interpreter.ExecutionFrame) ref.Val { return f.read(frame.Activation) }

func (f *fieldRead) read(a interpreter.Activation) ref.Val {
	c := ctxOf(a)
	if c == nil {
		return types.NewErr("no event to read %s from", f.field.name)
	}
	return readField(&c.inst[f.inst], f.field)
}

// stringInSet is `x in list` for a constant list of strings: a lookup in a
// Go map, where CEL hashes interface values.
type stringInSet struct {
	id  int64
	arg interpreter.InterpretableV2
	set map[string]struct{}
}

// ID implements interpreter.Interpretable.
func (s *stringInSet) ID() int64 { return s.id }

// Eval implements interpreter.Interpretable.
func (s *stringInSet) Eval(a interpreter.Activation) ref.Val { return s.test(s.arg.Eval(a)) }

// Exec implements interpreter.InterpretableV2.
func (s *stringInSet) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	return s.test(s.arg.Exec(frame))
}

func (s *stringInSet) test(v ref.Val) ref.Val {
	str, ok := v.(types.String)
	if !ok {
		if types.IsUnknownOrError(v) {
			return v
		}
		return types.False
	}
	_, found := s.set[string(str)]
	return types.Bool(found)
}

// fieldTest is a test of a field's unboxed value.
type fieldTest struct {
	id    int64
	field *fieldRead
	str   func(s string) bool // for string fields
	num   func(n int64) bool  // for int fields
}

// ID implements interpreter.Interpretable.
func (t *fieldTest) ID() int64 { return t.id }

// Eval implements interpreter.Interpretable.
func (t *fieldTest) Eval(a interpreter.Activation) ref.Val { return t.test(a) }

// Exec implements interpreter.InterpretableV2.
func (t *fieldTest) Exec(frame *interpreter.ExecutionFrame) ref.Val { return t.test(frame.Activation) }

func (t *fieldTest) test(a interpreter.Activation) ref.Val {
	c := ctxOf(a)
	if c == nil {
		return types.NewErr("no event to read %s from", t.field.field.name)
	}
	o := &c.inst[t.field.inst]
	if t.str != nil {
		return types.Bool(t.str(t.field.field.rawStr(o)))
	}
	return types.Bool(t.num(t.field.field.rawInt(o)))
}

// specialize replaces a call by a fast path when one applies.
func specialize(call interpreter.InterpretableCall) interpreter.InterpretableV2 {
	args := call.Args()
	if len(args) != 2 {
		return call
	}
	field, _ := args[0].(*fieldRead)
	str := field != nil && field.field.rawStr != nil
	num := field != nil && field.field.rawInt != nil
	strTest := func(f func(s string) bool) interpreter.InterpretableV2 {
		return &fieldTest{id: call.ID(), field: field, str: f}
	}
	switch id := call.OverloadID(); id {
	case overloads.Equals, overloads.NotEquals:
		neg := id == overloads.NotEquals
		lhs, rhs := args[0], args[1]
		if _, ok := rhs.(*fieldRead); ok {
			lhs, rhs = rhs, lhs
		}
		field, _ = lhs.(*fieldRead)
		c, ok := rhs.(interpreter.InterpretableConst)
		if field == nil || !ok {
			return call
		}
		switch v := c.Value().(type) {
		case types.String:
			if field.field.rawStr != nil {
				return &fieldTest{id: call.ID(), field: field, str: func(s string) bool { return (s == string(v)) != neg }}
			}
		case types.Int:
			if field.field.rawInt != nil {
				return &fieldTest{id: call.ID(), field: field, num: func(n int64) bool { return (n == int64(v)) != neg }}
			}
		}
	case overloads.InList:
		strs, ints, ok := constItems(args[1])
		switch {
		case !ok:
		case str && ints == nil:
			set := setOf(strs...)
			return strTest(func(s string) bool { return set[s] })
		case num && strs == nil:
			set := setOf(ints...)
			return &fieldTest{id: call.ID(), field: field, num: func(n int64) bool { return set[n] }}
		case ints == nil:
			set := make(map[string]struct{}, len(strs))
			for _, s := range strs {
				set[s] = struct{}{}
			}
			return &stringInSet{id: call.ID(), arg: args[0], set: set}
		}
	case overloads.StartsWithString, overloads.EndsWithString, overloads.ContainsString:
		c, ok := args[1].(interpreter.InterpretableConst)
		if !str || !ok {
			return call
		}
		lit, ok := c.Value().(types.String)
		if !ok {
			return call
		}
		match := map[string]func(s, x string) bool{overloads.StartsWithString: strings.HasPrefix,
			overloads.EndsWithString: strings.HasSuffix, overloads.ContainsString: strings.Contains}[id]
		return strTest(func(s string) bool { return match(s, string(lit)) })
	default:
		match, isAny := anyFuncs[id]
		strs, ints, ok := constItems(args[1])
		if !isAny || !str || !ok || ints != nil {
			return call
		}
		return strTest(func(s string) bool {
			for _, x := range strs {
				if match(s, x) {
					return true
				}
			}
			return false
		})
	}
	return call
}

// anyFuncs are the overloads of startsWithAny and its kin, by id.
var anyFuncs = map[string]func(s, x string) bool{
	"string_startsWithAny_list_string": strings.HasPrefix,
	"string_endsWithAny_list_string":   strings.HasSuffix,
	"string_containsAny_list_string":   strings.Contains,
}

// constItems reads a constant list of strings or of ints.
func constItems(i interpreter.InterpretableV2) (strs []string, ints []int64, ok bool) {
	c, ok := i.(interpreter.InterpretableConst)
	if !ok {
		return nil, nil, false
	}
	l, ok := c.Value().(traits.Lister)
	if !ok {
		return nil, nil, false
	}
	n, _ := l.Size().(types.Int)
	for k := types.Int(0); k < n; k++ {
		switch v := l.Get(k).(type) {
		case types.String:
			strs = append(strs, string(v))
		case types.Int:
			ints = append(ints, int64(v))
		default:
			return nil, nil, false
		}
	}
	if strs != nil && ints != nil {
		return nil, nil, false
	}
	if strs == nil && ints == nil {
		strs = []string{} // empty: nothing is in it
	}
	return strs, ints, true
}

// ctxOf finds the evaluation context under the frames and activations the
// interpreter wraps it in (comprehensions, relative attributes).
func ctxOf(a interpreter.Activation) *evalCtx {
	for a != nil {
		switch x := a.(type) {
		case *evalCtx:
			return x
		case *interpreter.ExecutionFrame:
			a = x.Activation
		case interface{ Unwrap() interpreter.Activation }:
			a = x.Unwrap()
		default:
			a = a.Parent()
		}
	}
	return nil
}

// readField reads a field of an object, through the per-event cache.
func readField(o *objVal, f *fieldDef) ref.Val {
	if f.slot < 0 || o.slots == nil {
		return f.get(o)
	}
	// Each distinct field is read and boxed once per event, however many
	// rules read it.
	e := &o.slots[f.slot]
	if e.gen != o.c.gen {
		e.v, e.gen = f.get(o), o.c.gen
	}
	return e.v
}

// fieldReads is the program option that installs fieldRead for a checked
// expression.
func fieldReads(ast *cel.Ast) cel.ProgramOption {
	// has(x.y) plans as an attribute too: leave presence tests alone.
	testOnly := map[int64]bool{}
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.SelectKind && e.AsSelect().IsTestOnly() {
			testOnly[e.ID()] = true
		}
	}))
	tops := map[string]topVar{}
	for _, v := range getSchema().vars {
		tops[v.name] = v
	}
	tmpl := templateCtx()
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		if call, ok := i.(interpreter.InterpretableCall); ok {
			return specialize(call), nil
		}
		ia, ok := i.(interpreter.InterpretableAttribute)
		if !ok || testOnly[i.ID()] {
			return i, nil
		}
		attr, ok := ia.Attr().(interpreter.NamespacedAttribute)
		if !ok || attr.IsOptional() {
			return i, nil
		}
		names := attr.CandidateVariableNames()
		quals := attr.Qualifiers()
		if len(names) != 1 || len(quals) == 0 {
			return i, nil
		}
		top, ok := tops[names[0]]
		if !ok {
			return i, nil
		}
		// Follow the chain of objects through a template activation: object
		// fields return preallocated instances, whatever the event.
		o := &tmpl.inst[top.inst]
		for n, q := range quals {
			cq, ok := q.(interpreter.ConstantQualifier)
			if !ok || q.IsOptional() {
				return i, nil
			}
			name, ok := cq.Value().(types.String)
			if !ok {
				return i, nil
			}
			fd, ok := o.def.byName[string(name)]
			if !ok {
				return i, nil
			}
			isObj := fd.obj != nil && fd.typ.Kind() == types.StructKind
			if n == len(quals)-1 {
				if isObj {
					return i, nil // what is selected from it will be read directly
				}
				return &fieldRead{id: i.ID(), inst: tmpl.index(o), field: fd}, nil
			}
			if !isObj {
				return i, nil
			}
			o = fd.get(o).(*objVal)
		}
		return i, nil
	})
}

// templateCtx is an activation without an event, to find which instance an
// object path leads to.
var templateCtx = sync.OnceValue(func() *evalCtx {
	c, err := newEvalCtx()
	if err != nil {
		return &evalCtx{}
	}
	return c
})

// index returns the index of one of c's instances.
func (c *evalCtx) index(o *objVal) int {
	for i := range c.inst {
		if &c.inst[i] == o {
			return i
		}
	}
	return -1
}
