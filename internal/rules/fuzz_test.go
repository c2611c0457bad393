package rules

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/event"
)

// fuzzEvents is one event of each kind the rules evaluate, with hostile
// strings in them, for loaded rules to run on.
func fuzzEvents() []*event.Event {
	p := event.Process{PID: 100, PPID: 99, Name: "x\x1b[0m", Executable: "/tmp/\xff\n", Args: []string{"a", "", "\x00b"}, AUID: event.NoUID}
	parent := &event.Process{PID: 99, Name: "bash", Executable: "/usr/bin/bash"}
	return []*event.Event{
		{Kind: event.KindExec, Exec: &event.Exec{}, Process: p, Parent: parent},
		{Kind: event.KindFile, Process: p, Parent: parent, File: &event.File{Op: event.FileOpen, Path: "/etc/shadow", Write: true}},
		{Kind: event.KindNet, Process: p, Parent: parent, Net: &event.Net{Op: event.NetConnect, Destination: netip.MustParseAddrPort("10.0.0.1:4444")}},
		{Kind: event.KindKernel, Process: p, Parent: parent, Kernel: &event.Kernel{Op: event.KernelBPF, ArgName: "BPF_PROG_LOAD"}},
		{Kind: event.KindExit, Process: p, Exit: &event.ExitStatus{Code: 1}},
	}
}

func evalAll(t *testing.T, s *Set) {
	for _, e := range fuzzEvents() {
		s.Eval(e, func(a *event.Event) {
			if a.Kind != event.KindAlert || a.Alert == nil || a.Alert.Trigger != e {
				t.Fatalf("Eval emitted %+v", a)
			}
		})
	}
}

// FuzzLoad: rule files as a hostile or careless author writes them. Load
// either refuses them with a *LoadError naming a position, or returns rules
// that evaluate without panicking.
// Run longer with: go test -fuzz FuzzLoad ./internal/rules
func FuzzLoad(f *testing.F) {
	f.Add([]byte(defaults))
	f.Add([]byte("rules:\n  - id: x\n    name: x\n    severity: warning\n    on: [exec]\n    condition: process.pid == 1\n    output: \"{process.pid\"\n"))
	f.Add([]byte("lists:\n  - name: l\n    items: [1, \"a\"]\nmacros:\n  - name: m\n    condition: m\n"))
	f.Add([]byte("overrides:\n  - id: nope\n    enabled: false\n"))
	f.Add([]byte("rules: [\n"))
	f.Add([]byte("\xff\xfe: \x00"))
	for _, name := range []string{"10-execution.yaml", "40-files.yaml", "50-kernel.yaml"} {
		b, err := os.ReadFile(filepath.Join("defaults", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Load(files("fuzz.yaml", string(data)))
		if err != nil {
			var le *LoadError
			if errors.As(err, &le) && err.Error() == "" {
				t.Fatal("a LoadError with no message")
			}
			return
		}
		evalAll(t, s)
		s.RunTests()
	})
}

// FuzzCondition: any string as a rule's condition. The CEL compiler either
// refuses it, with a message, or compiles a program that evaluates on every
// kind of event without panicking.
// Run longer with: go test -fuzz FuzzCondition ./internal/rules
func FuzzCondition(f *testing.F) {
	for _, c := range []string{
		`process.executable.startsWithAny(["/tmp/", "/dev/shm/"])`,
		`process.args.exists(a, a.endsWith(".ko") || a.contains(".ko."))`,
		`basename(process.executable) in ["sh", "bash"] && process.parent.name == "nginx"`,
		`file.path.matches("^/etc/(passwd|shadow)$") && file.write`,
		`net.destination.port == 4444 || net.destination.ip in ["10.0.0.0/8"]`,
		`kernel.op == "bpf" && kernel.arg_name in ["BPF_PROG_LOAD"]`,
		`process.args[100] == "x"`,
		`size(process.args) > 1 ? process.args[1] == "" : false`,
		`1 / 0 == 1`,
		`process.executable.matches("(")`,
		`"\xff" + process.name == ""`,
		`process.pid == process.ppid && !(true || false)`,
	} {
		f.Add(c, "exec")
	}
	f.Add(`file.path == "/etc/shadow"`, "file")
	f.Fuzz(func(t *testing.T, cond, kind string) {
		if !utf8Valid(kind) || strings.ContainsAny(kind, "\n\r") {
			return
		}
		doc := map[string]any{"rules": []map[string]any{{
			"id": "fuzz", "name": "fuzz", "severity": "warning", "on": []string{kind},
			"condition": cond, "output": "{process.executable} {process.args}",
		}}}
		b, err := yaml.Marshal(doc)
		if err != nil {
			return
		}
		s, err := Load(files("fuzz.yaml", string(b)))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refused without a message")
			}
			return
		}
		evalAll(t, s)
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
