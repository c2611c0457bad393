package rules

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

// alerts evaluates events and returns "rule-id: message" for each alert.
func alerts(t *testing.T, s *Set, events ...*event.Event) []string {
	t.Helper()
	var out []string
	for _, e := range events {
		s.Eval(e, func(a *event.Event) {
			if a.Kind != event.KindAlert || a.Alert == nil || a.Alert.Trigger != e {
				t.Errorf("Eval emitted %+v, want an alert triggered by the event", a)
				return
			}
			out = append(out, a.Alert.RuleID+": "+a.Alert.Message)
		})
	}
	return out
}

func mustLoad(t *testing.T, sources ...Source) *Set {
	t.Helper()
	s, err := Load(sources...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func execEvent(exe string, args ...string) *event.Event {
	name := exe[strings.LastIndexByte(exe, '/')+1:]
	return &event.Event{Kind: event.KindExec, Exec: &event.Exec{},
		Process: event.Process{PID: 100, PPID: 99, Name: name, Executable: exe, Args: append([]string{name}, args...), AUID: event.NoUID},
		Parent:  &event.Process{PID: 99, Name: "bash", Executable: "/usr/bin/bash"}}
}

func withParent(e *event.Event, exe string) *event.Event {
	e.Parent = &event.Process{PID: 99, Name: exe[strings.LastIndexByte(exe, '/')+1:], Executable: exe}
	return e
}

const defaults = `lists:
  - name: shell_binaries
    items: [/bin/sh, /bin/bash, /usr/bin/bash]
  - name: web_servers
    items: [nginx, apache2]
macros:
  - name: spawned_by_web_server
    condition: process.parent.name in web_servers
  - name: web_shell
    condition: spawned_by_web_server && process.executable in shell_binaries
rules:
  - id: exec-from-tmp
    name: Program run from /tmp
    severity: warning
    on: [exec]
    condition: process.executable.startsWithAny(["/tmp/", "/dev/shm/"])
    exceptions:
      - name: go-test
        condition: process.parent.executable == "/usr/local/go/bin/go"
      - name: quiet
        condition: '"--quiet" in process.args'
    output: "{process.executable} run by {process.parent.executable} (pid {process.pid})"
  - id: web-shell
    name: Web server spawned a shell
    severity: critical
    on: [exec]
    condition: web_shell
    output: "{process.parent.name} spawned {process.executable}"
  - id: shadow-write
    name: Shadow written
    severity: error
    on: [file]
    condition: file.path == "/etc/shadow" && file.write
    output: "{file.path} by {process.name}"
`

func TestEval(t *testing.T) {
	base := files("00-defaults.yaml", defaults)
	tests := []struct {
		name    string
		sources []Source
		events  []*event.Event
		want    []string
	}{
		{
			name:    "match and no match",
			sources: []Source{base},
			events:  []*event.Event{execEvent("/tmp/x", "-v"), execEvent("/usr/bin/ls")},
			want:    []string{"exec-from-tmp: /tmp/x run by /usr/bin/bash (pid 100)"},
		},
		{
			name:    "exceptions suppress",
			sources: []Source{base},
			events: []*event.Event{withParent(execEvent("/tmp/x"), "/usr/local/go/bin/go"),
				execEvent("/dev/shm/y", "--quiet"), execEvent("/dev/shm/y", "--loud")},
			want: []string{"exec-from-tmp: /dev/shm/y run by /usr/bin/bash (pid 100)"},
		},
		{
			name:    "lists and macros",
			sources: []Source{base},
			events: []*event.Event{withParent(execEvent("/bin/sh"), "/usr/sbin/nginx"),
				withParent(execEvent("/usr/bin/zsh"), "/usr/sbin/nginx"), withParent(execEvent("/bin/sh"), "/usr/sbin/cron")},
			want: []string{"web-shell: nginx spawned /bin/sh"},
		},
		{
			name: "list append",
			sources: []Source{base, files("user.yaml",
				"lists:\n  - name: shell_binaries\n    append: true\n    items: [/usr/bin/zsh]\n")},
			events: []*event.Event{withParent(execEvent("/usr/bin/zsh"), "/usr/sbin/nginx"), withParent(execEvent("/bin/sh"), "/usr/sbin/nginx")},
			want:   []string{"web-shell: nginx spawned /usr/bin/zsh", "web-shell: nginx spawned /bin/sh"},
		},
		{
			name: "macro replaced by a later file",
			sources: []Source{base, files("user.yaml",
				"macros:\n  - name: spawned_by_web_server\n    condition: process.parent.name == \"caddy\"\n")},
			events: []*event.Event{withParent(execEvent("/bin/sh"), "/usr/sbin/nginx"), withParent(execEvent("/bin/sh"), "/usr/bin/caddy")},
			want:   []string{"web-shell: caddy spawned /bin/sh"},
		},
		{
			name:    "override disables",
			sources: []Source{base, files("user.yaml", "overrides:\n  - id: exec-from-tmp\n    enabled: false\n")},
			events:  []*event.Event{execEvent("/tmp/x")},
		},
		{
			name: "override adds an exception and changes the output",
			sources: []Source{base, files("user.yaml", `overrides:
  - id: exec-from-tmp
    output: "tmp: {process.name}"
    exceptions:
      - name: our-tool
        condition: process.name == "tool"
`)},
			events: []*event.Event{execEvent("/tmp/tool"), execEvent("/tmp/other")},
			want:   []string{"exec-from-tmp: tmp: other"},
		},
		{
			name: "later file replaces a rule",
			sources: []Source{base, files("user.yaml", `rules:
  - id: exec-from-tmp
    name: Anything in /tmp/bad
    severity: info
    on: [exec]
    condition: process.executable.startsWith("/tmp/bad")
`)},
			events: []*event.Event{execEvent("/tmp/x"), execEvent("/tmp/bad")},
			want:   []string{"exec-from-tmp: Anything in /tmp/bad"},
		},
		{
			name:    "rules apply to their kinds only",
			sources: []Source{base},
			events: []*event.Event{
				{Kind: event.KindFile, Process: event.Process{Name: "vi", Executable: "/tmp/vi"}, File: &event.File{Op: event.FileOpen, Path: "/etc/shadow", Write: true}},
				{Kind: event.KindFile, Process: event.Process{Name: "cat"}, File: &event.File{Op: event.FileOpen, Path: "/etc/shadow"}},
				{Kind: event.KindFork, Process: event.Process{Name: "x", Executable: "/tmp/x"}},
				{Kind: event.KindAlert, Process: event.Process{Name: "x", Executable: "/tmp/x"}},
			},
			want: []string{"shadow-write: /etc/shadow by vi"},
		},
		{
			name: "fields of every kind",
			sources: []Source{files("r.yaml", `lists:
  - name: bad_ports
    items: [4444, 1337]
rules:
  - id: port
    name: Port
    severity: info
    on: [net]
    condition: destination.port in bad_ports && destination.ip == "10.1.2.3" && source.port == 5000 && network.direction == "egress"
    output: "{destination.ip}:{destination.port} {network.transport}"
  - id: dns
    name: DNS
    severity: info
    on: [net]
    condition: dns.question.name.endsWith(".evil.example") && dns.question.type == "TXT"
    output: "{dns.question.name}"
  - id: root
    name: Root
    severity: info
    on: [cred]
    condition: cred.new.euid == 0 && cred.old.euid == 1000 && event.action == "setuid" && 0 in cred.args
    output: "{cred.op} {user.id}"
  - id: ns
    name: NS
    severity: info
    on: [kernel]
    condition: '"CLONE_NEWUSER" in kernel.flags && event.outcome == "failure" && error.code == "EPERM"'
    output: "{event.action} {kernel.flags}"
  - id: exit
    name: Exit
    severity: info
    on: [exit]
    condition: process.exit_code == 139 && process.exit_signal == 11
    output: "{process.name} {process.exit_code}"
  - id: chain
    name: Chain
    severity: info
    on: [exec]
    condition: process.ancestors.exists(a, a.name == "sshd") && process.parent.user.id == "0" && process.user.id == "1000"
    output: "{process.command_line} under {process.parent.real_user.id}"
  - id: paths
    name: Paths
    severity: info
    on: [file]
    condition: basename(file.path) == "x.so" && dirname(file.path) == "/etc/ld" && file.name == "x.so" && file.directory == "/etc/ld" && file.mode == 420
    output: "{file.name} in {file.directory} mode {file.mode} uid {file.uid}"
`)},
			events: []*event.Event{
				{Kind: event.KindNet, Process: event.Process{Name: "nc"}, Net: &event.Net{Op: event.NetConnect, Protocol: "tcp",
					Source: netip.MustParseAddrPort("10.0.0.1:5000"), Destination: netip.MustParseAddrPort("10.1.2.3:4444")}},
				{Kind: event.KindNet, Process: event.Process{Name: "nc"}, Net: &event.Net{Op: event.NetConnect, Protocol: "tcp",
					Source: netip.MustParseAddrPort("10.0.0.1:5000"), Destination: netip.MustParseAddrPort("10.1.2.3:443")}},
				{Kind: event.KindNet, Net: &event.Net{Op: event.NetDNS, DNS: &event.DNSQuestion{Name: "a.evil.example", Type: "TXT"}}},
				{Kind: event.KindCred, Process: event.Process{UID: 1000}, Cred: &event.Cred{Op: event.CredSetuid, Args: []uint32{0},
					Old: event.Creds{EUID: 1000}, New: event.Creds{EUID: 0}}},
				{Kind: event.KindKernel, Return: -1, Kernel: &event.Kernel{Op: event.KernelUnshare, FlagNames: []string{"CLONE_NEWNS", "CLONE_NEWUSER"}}},
				{Kind: event.KindExit, Process: event.Process{Name: "crash"}, Exit: &event.ExitStatus{Code: 139, Signal: 11}},
				{Kind: event.KindExec, Process: event.Process{EUID: 1000, Args: []string{"ls", "-l"}},
					Parent: &event.Process{EUID: 0, UID: 7}, Ancestors: []event.Ancestor{{Name: "systemd"}, {Name: "sshd"}}},
				{Kind: event.KindExec, Process: event.Process{EUID: 1000}, Ancestors: []event.Ancestor{{Name: "systemd"}}},
				{Kind: event.KindFile, File: &event.File{Op: event.FileChmod, Path: "/etc/ld/x.so", Mode: 0o100644, UID: event.NoUID}},
			},
			want: []string{
				"port: 10.1.2.3:4444 tcp",
				"dns: a.evil.example",
				"root: setuid 1000",
				"ns: unshare [CLONE_NEWNS CLONE_NEWUSER]",
				"exit: crash 139",
				"chain: ls -l under 7",
				"paths: x.so in /etc/ld mode 420 uid ",
			},
		},
		{
			name: "fields read inside comprehensions, presence tests",
			sources: []Source{files("r.yaml", ruleHead+`    condition: >
      has(process.name) && process.ancestors.exists(a, a.name == process.parent.name &&
      [process.args[process.args.size() - 1], "/sbin/init"].exists(x, x == a.executable))
`)},
			events: []*event.Event{
				{Kind: event.KindExec, Process: event.Process{Args: []string{"x", "/usr/sbin/sshd"}},
					Parent: &event.Process{Name: "sshd"}, Ancestors: []event.Ancestor{{Name: "init"}, {Name: "sshd", Executable: "/usr/sbin/sshd"}}},
				{Kind: event.KindExec, Process: event.Process{Args: []string{"x"}},
					Parent: &event.Process{Name: "sshd"}, Ancestors: []event.Ancestor{{Name: "sshd", Executable: "/usr/sbin/sshd"}}},
			},
			want: []string{"r: R"},
		},
		{
			name: "a macro used twice, YAML anchors",
			sources: []Source{files("r.yaml", `macros:
  - name: m
    condition: process.name.startsWith("a")
rules:
  - id: r
    name: R
    severity: info
    on: &kinds [exec]
    condition: m && (process.pid == 1 || m && process.pid == 2)
    exceptions: &common
      - name: pid-3
        condition: process.pid == 3
  - id: q
    name: Q
    severity: info
    on: *kinds
    condition: process.name == "b"
    exceptions: *common
`)},
			events: []*event.Event{
				{Kind: event.KindExec, Process: event.Process{PID: 2, Name: "ax"}},
				{Kind: event.KindExec, Process: event.Process{PID: 3, Name: "ax"}},
				{Kind: event.KindExec, Process: event.Process{PID: 2, Name: "bx"}},
				{Kind: event.KindExec, Process: event.Process{PID: 2, Name: "b"}},
				{Kind: event.KindExec, Process: event.Process{PID: 3, Name: "b"}},
			},
			want: []string{"r: R", "q: Q"},
		},
		{
			name: "an exception that fails does not suppress",
			sources: []Source{files("r.yaml", ruleHead+`    condition: process.name == "x"
    exceptions:
      - name: second-arg
        condition: process.args[1] == "ok"
`)},
			events: []*event.Event{execEvent("/x", "ok"), execEvent("/x")},
			want:   []string{"r: R"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustLoad(t, tt.sources...)
			got := alerts(t, s, tt.events...)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAlertFields(t *testing.T) {
	s := mustLoad(t, files("r.yaml", `rules:
  - id: r
    name: The rule
    description: What it means.
    severity: critical
    tags: [execution, container]
    mitre: [T1059.004]
    on: [exec]
    response: freeze
    condition: process.name == "x"
    output: "{process.name}!"
`))
	e := execEvent("/x")
	var got []*event.Event
	s.Eval(e, func(a *event.Event) { got = append(got, a) })
	if len(got) != 1 {
		t.Fatalf("%d alerts, want 1", len(got))
	}
	want := event.NewAlert(event.Alert{RuleID: "r", RuleName: "The rule", Description: "What it means.",
		Severity: event.SeverityCritical, Tags: []string{"execution", "container"}, MITRE: []string{"T1059.004"},
		Message: "x!", Response: "freeze"}, e)
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("alert (-want +got):\n%s", diff)
	}
	if errs := s.EvalErrors(); len(errs) != 0 {
		t.Errorf("EvalErrors() = %v, want none", errs)
	}
}

func TestEvalErrorsCounted(t *testing.T) {
	s := mustLoad(t, files("r.yaml", ruleHead+"    condition: process.args[3] == \"x\"\n"))
	alerts(t, s, execEvent("/x"), execEvent("/x", "a", "b", "x"))
	if diff := cmp.Diff(map[string]uint64{"r": 1}, s.EvalErrors()); diff != "" {
		t.Errorf("EvalErrors (-want +got):\n%s", diff)
	}
}

// TestOutputHostile checks that field values are carried as they are:
// placeholders, format verbs, escapes and control characters inside them
// are not interpreted.
func TestOutputHostile(t *testing.T) {
	s := mustLoad(t, files("r.yaml", ruleHead+`    condition: process.pid == 100
    output: "{{literal}} {process.executable} {process.args} {{process.pid}}"
`))
	hostile := "/tmp/{process.pid}%s%n\x1b[31m\n\r\u202e$(id)`id`\\x00\x00\xff"
	e := execEvent(hostile, "{{", "}", "{process.name}")
	got := alerts(t, s, e)
	want := []string{"r: {literal} " + hostile + " [" + hostile[strings.LastIndexByte(hostile, '/')+1:] + " {{ } {process.name}] {process.pid}"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

func TestNeeds(t *testing.T) {
	s := mustLoad(t, files("r.yaml", `rules:
  - id: a
    name: A
    severity: info
    on: [file, exec]
    condition: file.path == "/etc/passwd"
    watch: {writes: [/etc/passwd, /etc/group], reads: [/etc/shadow]}
  - id: b
    name: B
    severity: info
    on: [net, file]
    condition: "true"
    watch: {writes: [/etc/passwd]}
  - id: c
    name: C
    severity: info
    on: [kernel]
    enabled: false
    condition: "true"
    watch: {reads: [/etc/sudoers]}
`))
	want := Needs{
		Kinds:  []event.Kind{event.KindExec, event.KindFile, event.KindNet},
		Writes: []string{"/etc/group", "/etc/passwd"},
		Reads:  []string{"/etc/shadow"},
	}
	if diff := cmp.Diff(want, s.Needs()); diff != "" {
		t.Errorf("Needs (-want +got):\n%s", diff)
	}
	rules := s.Rules()
	if len(rules) != 3 || rules[2].Enabled || !rules[0].Enabled {
		t.Errorf("Rules() = %+v, want a, b enabled and c disabled", rules)
	}
}

func TestRules(t *testing.T) {
	s := mustLoad(t, files("r.yaml", `rules:
  - id: a
    name: A
    severity: error
    mitre: [T1059]
    tags: [x]
    on: [exec, exit]
    condition: "true"
`), files("u.yaml", "overrides:\n  - id: a\n    enabled: false\n    response: freeze\n"))
	want := []RuleInfo{{ID: "a", Name: "A", Severity: event.SeverityError, On: []event.Kind{event.KindExec, event.KindExit},
		Enabled: false, Tags: []string{"x"}, MITRE: []string{"T1059"}, Response: "freeze", Plan: &Plan{}, Source: Pos{File: "r.yaml", Line: 2, Column: 9}}}
	if diff := cmp.Diff(want, s.Rules()); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
}
