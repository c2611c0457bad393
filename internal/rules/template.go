package rules

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// template is a rule's output: text with {field} placeholders. "{{" and
// "}}" stand for literal braces. A field's value is inserted as it is:
// nothing in it is interpreted, so a file name that looks like a
// placeholder stays text.
type template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit string
	// A field: the top-level object and the fields down to the value.
	inst  int
	chain []*fieldDef
}

var placeholderPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$`)

func compileTemplate(s scalar, e *errs) (*template, bool) {
	t := &template{}
	ok := true
	var lit strings.Builder
	rs := []rune(s.value())
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '{' && i+1 < len(rs) && rs[i+1] == '{':
			lit.WriteRune('{')
			i++
		case r == '}' && i+1 < len(rs) && rs[i+1] == '}':
			lit.WriteRune('}')
			i++
		case r == '{':
			end := i + 1
			for end < len(rs) && rs[end] != '}' {
				end++
			}
			if end == len(rs) {
				e.add(s.at(i), "output has a { without its } (write {{ for a brace)")
				return nil, false
			}
			name := strings.TrimSpace(string(rs[i+1 : end]))
			at := i + 1
			for at < end && rs[at] == ' ' {
				at++
			}
			part, good := placeholder(name)
			if !good {
				switch {
				case placeholderPattern.MatchString(name):
					e.add(s.at(at), "unknown field %q in output", name)
				case objectAt(name) != nil:
					e.add(s.at(at), "output placeholder {%s} names an object: name one of its fields", name)
				default:
					e.add(s.at(at), "output placeholder {%s} must name a field, as in {process.executable}", name)
				}
				ok = false
			} else if part.chain == nil {
				e.add(s.at(at), "output placeholder {%s} names an object: name one of its fields", name)
				ok = false
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, tmplPart{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, part)
			i = end
		default:
			lit.WriteRune(r)
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, tmplPart{lit: lit.String()})
	}
	return t, ok
}

// placeholder resolves a field path. The chain is nil when the path names
// an object or a list of objects rather than a value.
func placeholder(name string) (tmplPart, bool) {
	if !placeholderPattern.MatchString(name) {
		return tmplPart{}, false
	}
	parts := strings.Split(name, ".")
	var top *topVar
	for i, v := range getSchema().vars {
		if v.name == parts[0] {
			top = &getSchema().vars[i]
		}
	}
	if top == nil {
		return tmplPart{}, false
	}
	cur := top.obj
	var chain []*fieldDef
	for i, fname := range parts[1:] {
		if cur == nil {
			return tmplPart{}, false
		}
		f, ok := cur.byName[fname]
		if !ok {
			return tmplPart{}, false
		}
		chain = append(chain, f)
		isObj := f.obj != nil && f.typ.Kind() == types.StructKind
		last := i == len(parts)-2
		switch {
		case last && f.obj != nil:
			return tmplPart{inst: top.inst}, true // an object, or a list of them
		case isObj:
			cur = f.obj
		default:
			cur = nil
		}
	}
	return tmplPart{inst: top.inst, chain: chain}, true
}

func (t *template) render(c *evalCtx) string {
	if len(t.parts) == 1 && t.parts[0].chain == nil {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.chain == nil {
			b.WriteString(p.lit)
			continue
		}
		o := &c.inst[p.inst]
		for _, f := range p.chain[:len(p.chain)-1] {
			o = f.get(o).(*objVal)
		}
		writeValue(&b, p.chain[len(p.chain)-1].get(o))
	}
	return b.String()
}

func writeValue(b *strings.Builder, v ref.Val) {
	switch x := v.(type) {
	case types.String:
		b.WriteString(string(x))
	case types.Int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case types.Bool:
		b.WriteString(strconv.FormatBool(bool(x)))
	case traits.Lister:
		b.WriteByte('[')
		n, _ := x.Size().(types.Int)
		for i := types.Int(0); i < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeValue(b, x.Get(i))
		}
		b.WriteByte(']')
	}
}
