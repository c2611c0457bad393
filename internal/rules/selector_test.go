package rules

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func responseRule(on, cond, response string, extra ...string) string {
	return `lists:
  - name: bad_bins
    items: [/opt/bad/a, /opt/bad/b]
macros:
  - name: in_tmp
    condition: process.executable.startsWith("/tmp/x/")
rules:
  - id: r
    name: R
    severity: warning
    on: [` + on + `]
    condition: ` + cond + `
    response: ` + response + "\n" + strings.Join(extra, "\n") + "\n"
}

func TestPlans(t *testing.T) {
	tests := []struct {
		name, on, cond, response string
		extra                    []string
		want                     *Plan
	}{
		{name: "alert has no plan", on: "exec", cond: `process.name == "x"`, response: "alert"},
		{name: "exec kill exact", on: "exec", cond: `process.executable == "/opt/x"`, response: "kill",
			want: &Plan{ExecKill: &PathSet{Exact: []string{"/opt/x"}}}},
		{name: "exec kill list, macro, action", on: "exec",
			cond:     `event.action == "exec" && (process.executable in bad_bins || in_tmp)`,
			response: "kill",
			want:     &Plan{ExecKill: &PathSet{Exact: []string{"/opt/bad/a", "/opt/bad/b"}, Prefixes: []string{"/tmp/x/"}}}},
		{name: "kill on file events is done from user space", on: "file", cond: `file.path == "/etc/x" && process.name == "sh"`,
			response: "kill", want: &Plan{}},
		{name: "deny open", on: "file", cond: `file.path.startsWithAny(["/srv/a/", "/srv/b/"]) && process.name != "backup"`,
			response: "deny", want: &Plan{DenyOpen: &PathSet{Prefixes: []string{"/srv/a/", "/srv/b/"}}}},
		{name: "deny open of files: the kernel can decide", on: "file", cond: `file.path in ["/srv/secret", "/etc/x"] || file.path == "/srv/y" && event.action == "open"`,
			response: "deny", want: &Plan{DenyOpen: &PathSet{Exact: []string{"/etc/x", "/srv/secret", "/srv/y"}},
				DenyOpenExact: &PathSet{Exact: []string{"/etc/x", "/srv/secret", "/srv/y"}}}},
		{name: "deny exec of a file: the kernel can decide", on: "exec", cond: `process.executable == "/opt/y"`, response: "deny",
			want: &Plan{DenyExec: &PathSet{Exact: []string{"/opt/y"}}, DenyExecExact: &PathSet{Exact: []string{"/opt/y"}}}},
		{name: "deny exec", on: "exec", cond: `process.executable == "/opt/y" && user.id != "0"`, response: "deny",
			want: &Plan{DenyExec: &PathSet{Exact: []string{"/opt/y"}}}},
		{name: "deny connect", on: "net", cond: `event.action == "connect" && destination.port in [25, 465] && destination.ip == "127.0.0.1"`,
			response: "deny", want: &Plan{DenyNet: []NetMatch{
				{Op: "connect", Addr: netip.MustParseAddr("127.0.0.1"), Port: 25},
				{Op: "connect", Addr: netip.MustParseAddr("127.0.0.1"), Port: 465}}}},
		{name: "deny bind", on: "net", cond: `source.port == 4444 || source.port == 5555 && event.action == "bind"`,
			response: "deny", want: &Plan{DenyNet: []NetMatch{{Op: "bind", Port: 4444}, {Op: "bind", Port: 5555}}}},
		{name: "block-ip", on: "net", cond: `destination.port == 6667`, response: "block-ip", want: &Plan{}},
		{name: "freeze", on: "kernel", cond: `kernel.op == "mount"`, response: "freeze", want: &Plan{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Load(files("r.yaml", responseRule(tt.on, tt.cond, tt.response, tt.extra...)))
			if err != nil {
				t.Fatal(err)
			}
			got := set.Rules()[0].Plan
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name, on, cond, response string
		extra                    []string
		want                     string
	}{
		{name: "exec kill on another field", on: "exec", cond: `process.executable == "/opt/x" && process.parent.name == "sh"`,
			response: "kill", want: "r.yaml:13:15: rule \"r\": response kill on exec events kills in the kernel at exec"},
		{name: "exec kill tests process.parent.name", on: "exec", cond: `process.executable == "/opt/x" && process.parent.name == "sh"`,
			response: "kill", want: "it tests process.parent.name"},
		{name: "exec kill with exceptions", on: "exec", cond: `process.executable == "/opt/x"`, response: "kill",
			extra: []string{"    exceptions:", "      - name: e", `        condition: process.name == "a"`}, want: "this rule has exceptions"},
		{name: "exec kill prefix not a directory", on: "exec", cond: `process.executable.startsWith("/opt/x")`,
			response: "kill", want: "the prefix must be an absolute directory ending in /"},
		{name: "exec kill negation", on: "exec", cond: `process.executable != "/opt/x"`,
			response: "kill", want: "a test with \"!=\" is not a test of a field"},
		{name: "deny on cred", on: "cred", cond: `cred.op == "setuid"`, response: "deny",
			want: "response deny cannot act on cred events (only on file, exec, net)"},
		{name: "deny open without path", on: "file", cond: `process.name == "cat"`, response: "deny",
			want: "does not test file.path"},
		{name: "deny open partly without path", on: "file", cond: `file.path == "/a" || process.name == "cat"`, response: "deny",
			want: "does not test file.path"},
		{name: "deny connect on process", on: "net", cond: `destination.port == 25 && process.name == "nc"`, response: "deny",
			want: "it tests process.name"},
		{name: "deny connect everything", on: "net", cond: `event.action == "connect"`, response: "deny",
			want: "it would refuse every connect or bind"},
		{name: "deny bind with destination", on: "net", cond: `event.action == "bind" && destination.port == 1`, response: "deny",
			want: "a bind by source.*"},
		{name: "block-ip on exec", on: "exec", cond: `process.name == "x"`, response: "block-ip",
			want: "response block-ip cannot act on exec events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := loadErrors(t, files("r.yaml", responseRule(tt.on, tt.cond, tt.response, tt.extra...)))
			if len(errs) != 1 || !strings.Contains(errs[0], tt.want) {
				t.Errorf("errors %q, want one containing %q", errs, tt.want)
			}
		})
	}
}

func TestDryRunAndOverride(t *testing.T) {
	set, err := Load(
		files("a.yaml", responseRule("exec", `process.executable == "/opt/x"`, "kill", "    dry_run: true")),
		files("b.yaml", "overrides:\n  - id: r\n    dry_run: false\n"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if set.Rules()[0].DryRun {
		t.Error("override dry_run: false not applied")
	}
	set, err = Load(files("a.yaml", responseRule("exec", `process.executable == "/opt/x"`, "kill", "    dry_run: true")))
	if err != nil {
		t.Fatal(err)
	}
	if !set.Rules()[0].DryRun {
		t.Error("dry_run: true not read")
	}
}
