package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/testenv"
)

// testResponse keeps the agents of tests to their own pin directory and off
// the host's interfaces.
func testResponse(dir string) config.Response {
	r := config.DefaultResponse()
	// Unique per test: t.TempDir's base is 001 in every test, and a pin
	// directory shared by the package's tests shares their maps.
	r.PinDir = "/sys/fs/bpf/vigil-test-" + filepath.Base(filepath.Dir(dir)) + "-" + filepath.Base(dir)
	r.Interfaces = nil
	return r
}

func copyRespondProgram(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func isResponse(rule, outcome string) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindResponse && e.Response.RuleID == rule && e.Response.Outcome == outcome
	}
}

// Each response end to end, from a rule file to what happens to a process
// of the test's cgroup, and the response event in the output.
func TestResponsesFromRules(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	cg := testenv.NewCgroup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := netip.MustParseAddrPort(l.Addr().String()).Port()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	killProg := filepath.Join(dir, "kill", "sub", "prog")
	dryProg := filepath.Join(dir, "dry", "prog")
	copyRespondProgram(t, "/usr/bin/touch", killProg)
	copyRespondProgram(t, "/usr/bin/touch", dryProg)

	rulesDir := filepath.Join(dir, "rules")
	os.Mkdir(rulesDir, 0o755)
	ruleFile := fmt.Sprintf(`rules:
  - id: test-kill-at-exec
    name: Kill what runs from the test's directory
    severity: critical
    on: [exec]
    condition: process.executable.startsWith(%[1]q)
    response: kill
  - id: test-kill-dry-run
    name: Would kill
    severity: warning
    on: [exec]
    condition: process.executable == %[2]q
    response: kill
    dry_run: true
  - id: test-deny-connect
    name: No connects to the test's port
    severity: error
    on: [net]
    condition: event.action == "connect" && destination.ip == "127.0.0.1" && destination.port == %[3]d
    response: deny
  - id: test-deny-open
    name: No opens of the test's secret
    severity: error
    on: [file]
    condition: file.path == %[4]q
    response: deny
`, filepath.Join(dir, "kill")+"/", dryProg, port, secret)
	if err := os.WriteFile(filepath.Join(rulesDir, "respond.yaml"), []byte(ruleFile), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(dir)
	cfg.Rules = config.Rules{Dirs: []string{rulesDir}}
	cfg.Response.SocketCgroup = cg.Path // deny acts on the test's cgroup only
	events := newCollector(cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		if _, err := os.Stat(cfg.Response.PinDir); err == nil {
			t.Errorf("%s left pinned with nothing blocked", cfg.Response.PinDir)
			os.RemoveAll(cfg.Response.PinDir)
		}
	}()
	<-a.Ready()

	// kill: at exec, before touch runs: no marker.
	marker := filepath.Join(dir, "killed.marker")
	err = cg.Command(killProg, marker).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.String() != "signal: killed" {
		t.Errorf("%s: %v, want killed", killProg, err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the killed program wrote its marker")
	}
	r := events.waitFor(t, "kill response", isResponse("test-kill-at-exec", event.ResponseDone))
	if r.Response.Mechanism != "bpf_send_signal at exec" || r.Process.Executable != killProg {
		t.Errorf("kill response %+v of %s", r.Response, r.Process.Executable)
	}
	// Prometheus counts it.
	if n := testutil.ToFloat64(a.Responses().WithLabelValues(r.Response.Action, r.Response.Outcome)); n < 1 {
		t.Errorf("vigil_responses_total{action=%q,result=%q} = %v", r.Response.Action, r.Response.Outcome, n)
	}

	// dry run: touch runs, the event says what would have happened.
	marker = filepath.Join(dir, "dry.marker")
	if err := cg.Command(dryProg, marker).Run(); err != nil {
		t.Errorf("dry-run program: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("dry run: the program did not run")
	}
	events.waitFor(t, "dry-run response", isResponse("test-kill-dry-run", event.ResponseDryRun))

	// deny connect: EPERM from the cgroup hook.
	out, _ := cg.Command("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port)).CombinedOutput()
	if !strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("connect to the denied port: %q, want Operation not permitted", out)
	}
	r = events.waitFor(t, "connect deny response", isResponse("test-deny-connect", event.ResponseDone))
	if !strings.Contains(r.Response.Target, fmt.Sprint(port)) {
		t.Errorf("connect deny target %q", r.Response.Target)
	}

	// deny open: EPERM from fanotify.
	out, _ = cg.Command("cat", secret).CombinedOutput()
	if !strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("cat of the denied file: %q, want Operation not permitted", out)
	}
	r = events.waitFor(t, "open deny response", isResponse("test-deny-open", event.ResponseDone))
	// A rule on the file alone is the kernel's to decide where BPF LSM runs
	// (the qemu guest); elsewhere fanotify holds the open for the rules.
	wantMech := "fanotify"
	if a.Kernel().Mechanism(kernelcap.JobDenyOpen) == kernelcap.MechLSM {
		wantMech = MechLSM
	}
	if testenv.InGuest() && wantMech != MechLSM {
		t.Errorf("in the guest, deny open goes to %s, want BPF LSM", a.Kernel().Mechanism(kernelcap.JobDenyOpen))
	}
	if r.Response.Mechanism != wantMech || r.Response.Target != secret {
		t.Errorf("open deny response %+v, want mechanism %s", r.Response, wantMech)
	}
	events.waitFor(t, "open deny alert", func(e *event.Event) bool {
		return e.Kind == event.KindAlert && e.Alert.RuleID == "test-deny-open"
	})
	// The JSON output has them too.
	time.Sleep(100 * time.Millisecond)
	doc := findDoc(t, cfg.Output, func(d map[string]any) bool {
		return get(d, "event.dataset") == "vigil.response" && get(d, "rule.id") == "test-deny-open"
	})
	if get(doc, "vigil.response.outcome") != "done" || get(doc, "event.action") != "deny" || get(doc, "event.outcome") != "success" {
		t.Errorf("response document: %v", doc)
	}
}

// A rule whose response cannot be carried out is refused at load.
func TestUnenforceableRuleIsRefused(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.Mkdir(rulesDir, 0o755)
	os.WriteFile(filepath.Join(rulesDir, "r.yaml"), []byte(`rules:
  - id: deny-without-fanotify
    name: x
    severity: error
    on: [file]
    condition: file.path == "/nonexistent/vigil-test"
    response: deny
`), 0o644)
	cfg := testConfig(dir)
	cfg.Rules = config.Rules{Dirs: []string{rulesDir}}
	cfg.Response.Fanotify = false
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		a.Close()
		t.Fatal("agent started with a deny rule it cannot enforce")
	}
	if want := `r.yaml:2:9: rule "deny-without-fanotify": response deny needs fanotify permission events, which is not available here: response.fanotify is false`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
}
