package rules

import (
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/decls"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
)

// provider adds Vigil's object types to CEL's standard registry, so that the
// checker knows every field and rejects unknown ones at load time.
type provider struct {
	*types.Registry
	objs map[string]*objDef
}

// FindStructType implements types.Provider.
func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if d, ok := p.objs[name]; ok {
		return types.NewTypeTypeWithParam(d.typ), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if d, ok := p.objs[name]; ok {
		return d.fieldNames(), true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if d, ok := p.objs[name]; ok {
		ft, ok := d.fts[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// NewValue implements types.Provider: Vigil's objects cannot be built in a
// condition.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.objs[name]; ok {
		return types.NewErr("%s cannot be created", name)
	}
	return p.Registry.NewValue(name, fields)
}

// newEnv makes the environment every condition is checked in: the
// top-level objects, the extra functions, and CEL's string, math and set
// extensions.
func newEnv() (*cel.Env, error) {
	s := getSchema()
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(&provider{Registry: reg, objs: s.objs}),
		ext.Strings(),
		ext.Math(),
		ext.Sets(),
		cel.Function("basename", decls.DisableTypeGuards(true),
			cel.Overload("basename_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(v ref.Val) ref.Val { return types.String(basename(string(v.(types.String)))) }))),
		cel.Function("dirname", decls.DisableTypeGuards(true),
			cel.Overload("dirname_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(v ref.Val) ref.Val { return types.String(dirname(string(v.(types.String)))) }))),
		stringListFunc("startsWithAny", strings.HasPrefix),
		stringListFunc("endsWithAny", strings.HasSuffix),
		stringListFunc("containsAny", strings.Contains),
	}
	for _, v := range s.vars {
		opts = append(opts, cel.Variable(v.name, v.obj.typ))
	}
	return cel.NewEnv(opts...)
}

// stringListFunc declares s.name(list) as true when match(s, x) holds for
// some x of the list.
func stringListFunc(name string, match func(s, x string) bool) cel.EnvOption {
	return cel.Function(name, decls.DisableTypeGuards(true),
		cel.MemberOverload("string_"+name+"_list_string", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
			cel.BinaryBinding(func(lhs, rhs ref.Val) ref.Val {
				s, ok := lhs.(types.String)
				if !ok {
					return types.MaybeNoSuchOverloadErr(lhs)
				}
				if l, ok := rhs.(*constList); ok {
					for _, x := range l.strs {
						if match(string(s), x) {
							return types.True
						}
					}
					return types.False
				}
				l, ok := rhs.(traits.Lister)
				if !ok {
					return types.MaybeNoSuchOverloadErr(rhs)
				}
				n, _ := l.Size().(types.Int)
				for i := types.Int(0); i < n; i++ {
					if x, ok := l.Get(i).(types.String); ok && match(string(s), string(x)) {
						return types.True
					}
				}
				return types.False
			})))
}

// constList is a rule file's list: a CEL list that also keeps its strings,
// for the functions above to read without boxing.
type constList struct {
	traits.Lister
	strs []string
}

func newConstList(items []string, nums []int64, isInt bool) *constList {
	vals := make([]ref.Val, len(items))
	for i, it := range items {
		vals[i] = types.String(it)
		if isInt {
			vals[i] = types.Int(nums[i])
		}
	}
	l := &constList{Lister: types.NewRefValList(types.DefaultTypeAdapter, vals)}
	if !isInt {
		l.strs = items
	}
	return l
}
