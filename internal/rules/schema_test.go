package rules

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/vigilsec/vigil/internal/event"
)

// evalBoth evaluates a boolean expression on e twice: through CEL's typed
// field access and through the direct reads Load installs. Both must agree.
func evalBoth(t *testing.T, env *cel.Env, expr string, e *event.Event) bool {
	t.Helper()
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("%s: %v", expr, iss.Err())
	}
	c, err := newEvalCtx()
	if err != nil {
		t.Fatal(err)
	}
	c.reset(e)
	var results []bool
	for _, opts := range [][]cel.ProgramOption{nil, {fieldReads(ast)}} {
		prg, err := env.Program(ast, opts...)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(c.frame)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		results = append(results, out == types.True)
	}
	if results[0] != results[1] {
		t.Fatalf("%s: typed access says %t, direct reads %t", expr, results[0], results[1])
	}
	return results[0]
}

// samples are values test events can write and conditions read back.
var samples = map[string]string{
	"event.action": `"chmod"`, "event.kind": `"net"`, "event.outcome": `"failure"`, "error.code": `"EACCES"`,
	"file.op": `"rename"`, "cred.op": `"capset"`, "kernel.op": `"ptrace"`,
	"source.ip": `"10.1.2.3"`, "destination.ip": `"2001:db8::7"`, "source.port": "8080", "destination.port": "53",
	"file.mode": "493",
}

func sampleFor(f Field) (cel string, yaml any) {
	if s, ok := samples[f.Name]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return s, n
		}
		unq, _ := strconv.Unquote(s)
		return s, unq
	}
	switch {
	case f.Type == "string" && (strings.HasSuffix(f.Name, "id") || strings.HasSuffix(f.Name, "uid") || strings.HasSuffix(f.Name, "gid")):
		return `"1234"`, "1234"
	case f.Name == "network.direction":
		return `"ingress"`, "ingress"
	case f.Type == "string":
		v := "v-" + f.Name
		return strconv.Quote(v), v
	case f.Type == "int":
		return "1234", int64(1234)
	case f.Type == "bool":
		return "true", true
	case f.Type == "list(string)":
		return `["a", "b c"]`, []string{"a", "b c"}
	case f.Type == "list(int)":
		return `[0, 4294967295]`, []int64{0, 4294967295}
	}
	return "", nil
}

func TestFieldsWriteAndRead(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	settable := 0
	for _, f := range Fields() {
		if strings.Contains(f.Name, "[]") {
			continue
		}
		set, _, err := setterFor(f.Name)
		if err != nil {
			continue // derived or not writable: see TestFieldsEveryKind
		}
		lit, val := sampleFor(f)
		if val == nil {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			e := &event.Event{Process: event.Process{AUID: event.NoUID}}
			if err := set(e, val); err != nil {
				t.Fatal(err)
			}
			if e.Kind == event.KindUnknown {
				e.Kind = event.KindFile // so that outcome and error.code apply
			}
			if !evalBoth(t, env, f.Name+" == "+lit, e) {
				t.Errorf("%s written as %v does not read back as %s", f.Name, val, lit)
			}
		})
		settable++
	}
	if settable < 60 {
		t.Errorf("only %d fields can be written by test events", settable)
	}
}

// TestFieldsEveryKind reads every field of events of each kind that lack
// the parts other kinds have, and of a fully populated event: no field may
// fail.
func TestFieldsEveryKind(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	var full event.Event
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n, 0)
	events := []*event.Event{&full}
	for _, k := range append(event.Kinds(), event.KindUnknown, event.KindAlert) {
		events = append(events, &event.Event{Kind: k})
	}
	for _, f := range Fields() {
		expr := f.Name + " == " + f.Name
		if strings.Contains(f.Name, "[]") {
			list, field, _ := strings.Cut(f.Name, "[].")
			expr = fmt.Sprintf("%s.all(x, x.%s == x.%s)", list, field, field)
		}
		for _, e := range events {
			if !evalBoth(t, env, expr, e) {
				t.Errorf("%s on a %s event is false", expr, e.Kind)
			}
		}
	}
}

func TestFieldList(t *testing.T) {
	got := map[string]string{}
	for _, f := range Fields() {
		got[f.Name] = f.Type
	}
	for name, typ := range map[string]string{
		"process.executable": "string", "process.args": "list(string)", "process.parent.name": "string",
		"process.parent.user.id": "string", "process.ancestors": "list(Ancestor)", "process.ancestors[].name": "string",
		"file.mode": "int", "destination.port": "int", "dns.question.name": "string", "user.id": "string",
		"cred.new.euid": "int", "kernel.flags": "list(string)", "container.image": "string", "host.name": "string",
		"process.stdin_socket": "bool", "event.outcome": "string",
	} {
		if got[name] != typ {
			t.Errorf("field %s: type %q, want %q", name, got[name], typ)
		}
	}
}
