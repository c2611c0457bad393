package reference

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/config"
)

// TestReferenceIsCurrent fails when docs/config-reference.md is not what
// the code says: an option was added, renamed, re-documented or its default
// changed without `make docs`.
func TestReferenceIsCurrent(t *testing.T) {
	want, err := Markdown()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "..", "docs", "config-reference.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run make docs", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run make docs (go run ./internal/config/gen) and commit it\n%s", path, cmp.Diff(string(got), string(want)))
	}
}

// TestEveryKeyIsListed compares the reference's keys with the keys YAML
// writes for config.Default(), so neither walk can miss one.
func TestEveryKeyIsListed(t *testing.T) {
	opts, err := Options()
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := n.Encode(config.Default()); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := prefix+n.Content[i].Value, n.Content[i+1]
			keys = append(keys, k)
			if v.Kind == yaml.MappingNode {
				walk(k+".", v)
			}
		}
	}
	walk("", &n)
	// Keys of list elements (a[].b) have no place in the defaults' YAML,
	// whose lists may be empty: the element types are checked by the doc
	// comments below.
	var ref []string
	for _, k := range Keys(opts) {
		if !strings.Contains(k, "[]") {
			ref = append(ref, k)
		}
	}
	if diff := cmp.Diff(ref, sortStrings(keys)); diff != "" {
		t.Errorf("reference keys (-) vs YAML keys (+):\n%s", diff)
	}
	for _, o := range opts {
		if o.Doc == "" || o.Type == "" {
			t.Errorf("%s: type %q, doc %q", o.Key, o.Type, o.Doc)
		}
	}
	byKey := map[string]Option{}
	for _, o := range opts {
		byKey[o.Key] = o
	}
	for key, want := range map[string]Option{
		"kernel.ring_buffer_mib":           {Type: "integer", Default: "16"},
		"kernel.poll":                      {Type: "duration", Default: "20ms"},
		"sensors.file.enabled":             {Type: "true, false or auto", Default: "true"},
		"containers.resources.cpu_percent": {Type: "percent", Default: "90"},
		"containers.resources.memory":      {Type: "size", Default: "0"},
		"rules.dirs":                       {Type: "list of string", Default: "[/etc/vigil/rules.d]"},
		"anomaly.learn":                    {Type: "duration", Default: "24h"},
	} {
		if got := byKey[key]; got.Type != want.Type || got.Default != want.Default {
			t.Errorf("%s: type %q default %q, want %q %q", key, got.Type, got.Default, want.Type, want.Default)
		}
	}
	if d := byKey["sensors.file.writes"].Doc; !strings.Contains(d, "`watch_writes`") {
		t.Errorf("sensors.file.writes doc %q does not name watch_writes by its YAML key", d)
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestUndocumentedFieldIsAnError: an option without a doc comment stops the
// generator, naming the key and the field.
func TestUndocumentedFieldIsAnError(t *testing.T) {
	type Inner struct {
		Depth int `yaml:"depth"`
	}
	type Outer struct {
		// Name is documented.
		Name  string  `yaml:"name"`
		Inner Inner   `yaml:"inner"`
		Items []Inner `yaml:"items"`
	}
	src := fstest.MapFS{"x.go": {Data: []byte(`package x
// Inner is a section.
type Inner struct {
	Depth int
}
type Outer struct {
	// Name is documented.
	Name string
	Inner Inner
	// Items are listed.
	Items []Inner
}
`)}}
	opts, err := list(Outer{Name: "n", Items: []Inner{{Depth: 2}}}, src)
	if err == nil || !strings.Contains(err.Error(), "inner.depth (Inner.Depth)") || !strings.Contains(err.Error(), "items[].depth (Inner.Depth)") {
		t.Fatalf("err = %v, want it to name inner.depth and items[].depth", err)
	}
	if strings.Contains(err.Error(), "name (") || strings.Contains(err.Error(), "inner (") {
		t.Errorf("err = %v names a documented field", err)
	}
	if got := Keys(opts); !cmp.Equal(got, []string{"inner", "inner.depth", "items", "items[].depth", "name"}) {
		t.Errorf("keys %v", got)
	}
}

// TestDefaultYAMLLoadsBack: `vigil config default` is a file that loads to
// exactly the defaults, with each key's meaning above it.
func TestDefaultYAMLLoadsBack(t *testing.T) {
	b, err := DefaultYAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	// An empty list loads as empty, not nil: the same to every reader.
	if diff := cmp.Diff(config.Default(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("default YAML loads to (-want +got):\n%s", diff)
	}
	for _, want := range []string{
		"kernel:\n  # `ring_buffer_mib` is the ring buffer size, a power of two.\n  ring_buffer_mib: 16\n",
		"rules:\n  # `builtin` loads the rules embedded in the binary first.\n  builtin: true\n",
		"dirs: [/etc/vigil/rules.d]",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("default YAML lacks %q:\n%s", want, b)
		}
	}
}
