// Package reference describes every configuration option from the code
// itself: the YAML keys from the Config struct's tags, the meanings from the
// fields' doc comments (go/ast over internal/config's source, embedded in
// the binary) and the defaults from config.Default(). It writes
// docs/config-reference.md and the commented YAML of `vigil config default`,
// so neither can drift from the code.
package reference

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/config"
)

// Option is one configuration key.
type Option struct {
	// Key is the dotted YAML path: containers.resources.cpu_percent. Items
	// of a list of structs are written key[].field.
	Key string
	// Type is how to write the value: string, bool, integer, duration...
	Type string
	// Default is the value in config.Default(), as YAML (flow style).
	Default string
	// Doc is the field's doc comment, joined into one paragraph.
	Doc string
	// Section is true for a key whose value is a mapping of more keys.
	Section bool
}

// HostDependent are defaults that config.Default() reads from the host it
// runs on; the reference states them instead of this machine's value.
var HostDependent = map[string]string{
	"paths.cgroupfs": "/sys/fs/cgroup (/sys/fs/cgroup/unified on a hybrid cgroup host)",
}

// Options lists every option of config.Config, in the struct's order. It
// fails when a field has no doc comment, naming it: an option nobody
// explained is not finished.
func Options() ([]Option, error) {
	return list(config.Default(), config.Source)
}

// list describes the struct value root, with the doc comments in src.
func list(root any, src fs.FS) ([]Option, error) {
	docs, err := fieldDocs(src)
	if err != nil {
		return nil, err
	}
	var opts []Option
	var missing []string
	var walk func(prefix string, t reflect.Type, v reflect.Value)
	walk = func(prefix string, t reflect.Type, v reflect.Value) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, flags, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if strings.Contains(flags, "inline") {
				walk(prefix, f.Type, v.Field(i))
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			key := prefix + name
			doc := yamlNames(docs[t.Name()+"."+f.Name], t)
			if doc == "" && f.Type.Kind() == reflect.Struct {
				doc = yamlNames(docs[f.Type.Name()], f.Type) // the type's own doc
			}
			if doc == "" {
				missing = append(missing, fmt.Sprintf("%s (%s.%s)", key, t.Name(), f.Name))
			}
			o := Option{Key: key, Type: typeName(f.Type), Doc: doc}
			fv := v.Field(i)
			switch {
			case isStruct(f.Type):
				o.Section = true
				opts = append(opts, o)
				walk(key+".", f.Type, fv)
				continue
			case f.Type.Kind() == reflect.Slice && isStruct(f.Type.Elem()):
				o.Default = flow(fv.Interface())
				opts = append(opts, o)
				walk(key+"[].", f.Type.Elem(), reflect.New(f.Type.Elem()).Elem())
				continue
			}
			o.Default = flow(fv.Interface())
			if hd, ok := HostDependent[key]; ok {
				o.Default = hd
			}
			opts = append(opts, o)
		}
	}
	walk("", reflect.TypeOf(root), reflect.ValueOf(root))
	if len(missing) > 0 {
		return opts, fmt.Errorf("configuration options without a doc comment in internal/config: %s", strings.Join(missing, ", "))
	}
	for k := range HostDependent {
		if _, ok := root.(config.Config); ok && !hasKey(opts, k) {
			return opts, fmt.Errorf("reference.HostDependent names %s, which is not an option", k)
		}
	}
	return opts, nil
}

func hasKey(opts []Option, k string) bool {
	for _, o := range opts {
		if o.Key == k {
			return true
		}
	}
	return false
}

var (
	marshaler = reflect.TypeOf((*yaml.Marshaler)(nil)).Elem()
	durationT = reflect.TypeOf(config.Duration(0))
)

// isStruct: a struct that YAML writes as a mapping (not a custom scalar).
func isStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !t.Implements(marshaler)
}

func typeName(t reflect.Type) string {
	switch t {
	case durationT:
		return "duration"
	case reflect.TypeOf(config.Size(0)):
		return "size"
	case reflect.TypeOf(config.Percent(0)):
		return "percent"
	case reflect.TypeOf(config.Switch(0)):
		return "true, false or auto"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if isStruct(t.Elem()) {
			return "list of mappings"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "mapping of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	case reflect.Struct:
		return "mapping"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

// flow writes v as one line of YAML.
func flow(v any) string {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	setFlow(&n)
	b, err := yaml.Marshal(&n)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(b))
}

func setFlow(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		setFlow(c)
	}
}

// fieldDocs maps "Type.Field" and "Type" to their doc comments, from every
// non-test Go file in src.
func fieldDocs(src fs.FS) (map[string]string, error) {
	docs := map[string]string{}
	files, err := fs.Glob(src, "*.go")
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := fs.ReadFile(src, name)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, name, b, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				docs[ts.Name.Name] = text(doc, nil)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fld := range st.Fields.List {
					for _, n := range fld.Names {
						docs[ts.Name.Name+"."+n.Name] = text(fld.Doc, fld.Comment)
					}
				}
			}
		}
	}
	return docs, nil
}

// yamlNames writes the Go names of t's fields that doc mentions as their
// YAML keys: "WatchWrites" becomes "`watch_writes`".
func yamlNames(doc string, t reflect.Type) string {
	names := map[string]string{}
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, flags, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if strings.Contains(flags, "inline") {
				collect(f.Type)
				continue
			}
			if name != "" && name != "-" && len(f.Name) > 2 {
				names[f.Name] = "`" + name + "`"
			}
		}
	}
	collect(t)
	words := strings.Fields(doc)
	for i, w := range words {
		core := strings.TrimRight(w, ".,:;)")
		// An acronym (BTF) inside a sentence is a word, not the field.
		if i > 0 && strings.ToUpper(core) == core {
			continue
		}
		if y, ok := names[core]; ok {
			words[i] = y + w[len(core):]
		}
	}
	return strings.Join(words, " ")
}

// text is a doc comment (and a trailing line comment) as one paragraph.
func text(doc, line *ast.CommentGroup) string {
	var parts []string
	for _, g := range []*ast.CommentGroup{doc, line} {
		if g != nil {
			if s := strings.Join(strings.Fields(g.Text()), " "); s != "" {
				parts = append(parts, s)
			}
		}
	}
	return strings.Join(parts, " ")
}

// Markdown is docs/config-reference.md.
func Markdown() ([]byte, error) {
	opts, err := Options()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated by "go run ./internal/config/gen" (make docs) from internal/config: do not edit.
     A test fails when this file differs from what the code says. -->

Every key of the file that ` + "`vigil run --config FILE`" + ` reads, with its type, its
default and its meaning, taken from the code. Every key is optional; unknown
keys are errors. ` + "`vigil config default`" + ` prints the defaults as a commented
file; ` + "`vigil config validate FILE`" + ` checks a file. [config.md](config.md) explains how
the parts fit together.

Types: a *duration* is written ` + "`20ms`, `30s`, `1m`, `24h`" + `; a *size* ` + "`512MiB`, `2GiB`, `100MB`" + `
or a number of bytes; a *percent* ` + "`90`" + ` or ` + "`\"250%\"`" + ` (100 is one whole CPU).

`)
	// One table per mapping, top-level keys first, in the struct's order.
	type section struct {
		key, doc string
		rows     []Option
	}
	secs := []*section{{key: "top level"}}
	byKey := map[string]*section{"": secs[0]}
	for _, o := range opts {
		if o.Section {
			sec := &section{key: o.Key, doc: o.Doc}
			secs = append(secs, sec)
			byKey[o.Key] = sec
			continue
		}
		if o.Type == "list of mappings" {
			sec := &section{key: o.Key + "[]", doc: "Each item of `" + o.Key + "`."}
			secs = append(secs, sec)
			byKey[sec.key] = sec
		}
		parent := ""
		if i := strings.LastIndexByte(o.Key, '.'); i >= 0 {
			parent = o.Key[:i]
		}
		byKey[parent].rows = append(byKey[parent].rows, o)
	}
	for _, sec := range secs {
		fmt.Fprintf(&b, "\n## %s\n", sec.key)
		if sec.doc != "" {
			fmt.Fprintf(&b, "\n%s\n", sec.doc)
		}
		if len(sec.rows) == 0 {
			continue
		}
		b.WriteString("\n| key | type | default | meaning |\n|---|---|---|---|\n")
		for _, o := range sec.rows {
			def := "`" + strings.ReplaceAll(o.Default, "|", `\|`) + "`"
			switch {
			case HostDependent[o.Key] != "":
				def = HostDependent[o.Key]
			case o.Default == "" || o.Default == `""`:
				def = "(empty)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", o.Key, o.Type, def, strings.ReplaceAll(o.Doc, "|", `\|`))
		}
	}
	return b.Bytes(), nil
}

// DefaultYAML is config.Default() as YAML, each key preceded by its doc
// comment: `vigil config default`. Host-dependent values are this host's.
func DefaultYAML() ([]byte, error) {
	opts, err := Options()
	if err != nil {
		return nil, err
	}
	docs := map[string]string{}
	for _, o := range opts {
		docs[o.Key] = o.Doc
	}
	var n yaml.Node
	if err := n.Encode(config.Default()); err != nil {
		return nil, err
	}
	comment(&n, "", docs)
	var b bytes.Buffer
	b.WriteString("# Vigil's configuration with every default (vigil config default).\n# Every key is optional: keep only what you change. See docs/config-reference.md.\n\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func comment(n *yaml.Node, prefix string, docs map[string]string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if d := docs[key]; d != "" {
			k.HeadComment = wrap(d, 76)
		}
		if v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Kind == yaml.ScalarNode {
			v.Style = yaml.FlowStyle
		}
		comment(v, key+".", docs)
	}
}

func wrap(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}

// Keys is every option's key, sorted, for tests.
func Keys(opts []Option) []string {
	var ks []string
	for _, o := range opts {
		ks = append(ks, o.Key)
	}
	sort.Strings(ks)
	return ks
}
