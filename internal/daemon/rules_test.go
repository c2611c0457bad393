package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/testenv"
)

func isAlert(rule string, pid int) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindAlert && e.Alert.RuleID == rule && (pid == 0 || int(e.Process.PID) == pid)
	}
}

// copyProgram puts a copy of an executable at dst.
func copyProgram(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestAlertsCarryTheTriggerAndItsAncestry(t *testing.T) {
	h := join(t)
	prog := filepath.Join(t.TempDir(), "dropped")
	copyProgram(t, "/usr/bin/true", prog)
	pid, _ := h.cg.Run(t, prog, "payload")

	al := h.events.waitFor(t, "alert", isAlert("exec-from-writable-dir", pid))
	a := al.Alert
	if a.Severity != event.SeverityWarning || a.Trigger == nil || a.Trigger.Process.Executable != prog ||
		al.Parent == nil || !strings.Contains(a.Message, prog) {
		t.Fatalf("alert %+v, parent %+v", a, al.Parent)
	}
	doc := findDoc(t, h.output, func(d map[string]any) bool {
		return get(d, "event.kind") == "alert" && get(d, "process.pid") == float64(pid)
	})
	if get(doc, "rule.id") != "exec-from-writable-dir" || get(doc, "vigil.alert.trigger.process.executable") != prog {
		t.Errorf("alert document: %v", doc)
	}
}

// TestBadReloadKeepsTheOldRules: a rule directory that goes bad is refused
// whole, the running rules stay, and fixing it brings the new rules in,
// without a signal: the agent watches the directory.
func TestBadReloadKeepsTheOldRules(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules.d")
	os.Mkdir(rulesDir, 0o700)
	good := `rules:
  - id: test-runs-marker
    name: marker program ran
    severity: notice
    on: [exec]
    condition: process.args.exists(a, a == "vigil-marker-1")
    output: "marker 1 by {process.executable}"
`
	os.WriteFile(filepath.Join(rulesDir, "local.yaml"), []byte(good), 0o600)

	cfg := testConfig(dir)
	cfg.Rules.Dirs = []string{rulesDir}
	cg := testenv.NewCgroup(t)
	events := newCollector(cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()

	pid, _ := cg.Run(t, "/bin/true", "vigil-marker-1")
	events.waitFor(t, "alert from the first rules", isAlert("test-runs-marker", pid))

	// Break it: a typo in a field name.
	os.WriteFile(filepath.Join(rulesDir, "local.yaml"), []byte(strings.Replace(good, "process.args", "process.argz", 1)), 0o600)
	waitUntil(t, "the failed reload", func() bool { return a.Status().Rules.ReloadFailures >= 1 })
	err = a.Reload()
	if err == nil || !strings.Contains(err.Error(), "local.yaml:6:") || !strings.Contains(err.Error(), "process.argz") {
		t.Fatalf("reload error = %v, want file:line and the bad field", err)
	}
	pid, _ = cg.Run(t, "/bin/true", "vigil-marker-1")
	events.waitFor(t, "alert from the old rules after a bad reload", isAlert("test-runs-marker", pid))

	// Fix it with a new condition: the watcher reloads.
	os.WriteFile(filepath.Join(rulesDir, "local.yaml"), []byte(strings.Replace(good, "vigil-marker-1", "vigil-marker-2", 1)), 0o600)
	waitUntil(t, "the reload", func() bool { return a.Status().Rules.Reloads >= 1 })
	pid, _ = cg.Run(t, "/bin/true", "vigil-marker-2")
	events.waitFor(t, "alert from the new rules", isAlert("test-runs-marker", pid))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// A reload compiles every rule again: seconds on a machine busy with
	// other tests, several times that under qemu's emulation. A generous
	// limit only costs time when the condition never holds.
	limit := 30 * time.Second
	if testenv.InGuest() {
		limit = 60 * time.Second
	}
	start := time.Now()
	for deadline := start.Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%v)", what, limit)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("waited %v for %s", d.Round(time.Millisecond), what)
	}
}

// TestRecordAndReplay: `vigil run --record` keeps every event, and running
// the rules over the recording raises the alert the live agent raised.
func TestRecordAndReplay(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Record = filepath.Join(dir, "events.rec")
	cg := testenv.NewCgroup(t)
	events := newCollector(cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()
	prog := filepath.Join(t.TempDir(), "dropped")
	copyProgram(t, "/usr/bin/true", prog)
	pid, _ := cg.Run(t, prog)
	events.waitFor(t, "live alert", isAlert("exec-from-writable-dir", pid))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	set, err := rules.Load(RuleSources(true, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cfg.Record)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var replayed []string
	err = rules.ReadRecords(f, func(e *event.Event) error {
		if e.Kind == event.KindAlert {
			t.Errorf("the recording holds an alert: alerts are raised anew on replay")
		}
		set.Eval(e, func(al *event.Event) {
			if int(al.Process.PID) == pid {
				replayed = append(replayed, al.Alert.RuleID)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(replayed, "exec-from-writable-dir") {
		t.Errorf("replay raised %v for pid %d, want exec-from-writable-dir", replayed, pid)
	}
}

// TestAutoSensorsFollowTheRules: a sensor set to auto is sent by the kernel
// only while a loaded rule is on its kind, and a reload turns it on and off.
func TestAutoSensorsFollowTheRules(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules.d")
	os.Mkdir(rulesDir, 0o700)
	execOnly := `rules:
  - id: test-auto-exec
    name: marker program ran
    severity: info
    on: [exec]
    condition: process.args.exists(a, a == "vigil-auto-marker")
`
	os.WriteFile(filepath.Join(rulesDir, "local.yaml"), []byte(execOnly), 0o600)
	cfg := testConfig(dir)
	cfg.Rules.Builtin = false
	cfg.Rules.Dirs = []string{rulesDir}
	cfg.Sensors.Kernel.Enabled = config.Auto
	cg := testenv.NewCgroup(t)
	events := newCollector(cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()

	kernelOff := func() bool {
		for _, k := range a.Status().Events {
			if k.Kind == "kernel" {
				return k.Off
			}
		}
		t.Fatal("no kernel kind in status")
		return false
	}
	// unshare(CLONE_NEWUTS) is a kernel event; nothing asks for it yet.
	isUnshare := func(pid int) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindKernel && int(e.Process.PID) == pid && e.Kernel.Op == event.KernelUnshare
		}
	}
	if !kernelOff() {
		t.Fatal("kernel sensor on auto sends with no rule on kernel events")
	}
	pid, _ := cg.Run(t, "/usr/bin/unshare", "--uts", "/bin/true", "vigil-auto-marker")
	events.waitFor(t, "the exec rule's alert", isAlert("test-auto-exec", 0))
	if n := events.count(isUnshare(pid)); n != 0 {
		t.Errorf("%d unshare events with the kernel sensor on auto and no rule on them", n)
	}

	os.WriteFile(filepath.Join(rulesDir, "local.yaml"), []byte(execOnly+`  - id: test-auto-unshare
    name: unshare
    severity: info
    on: [kernel]
    condition: event.action == "unshare"
`), 0o600)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if kernelOff() {
		t.Fatal("kernel sensor still off with a rule on kernel events")
	}
	pid, _ = cg.Run(t, "/usr/bin/unshare", "--uts", "/bin/true")
	events.waitFor(t, "unshare event once a rule needs it", isUnshare(pid))
	events.waitFor(t, "the unshare rule's alert", isAlert("test-auto-unshare", pid))
}
