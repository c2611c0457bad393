package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/fim"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/testenv"
)

// A change to a baseline file made while the agent runs is re-hashed and
// alerted, with the process that made it; an untouched file is not.
func TestFIMLiveAlert(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	root, _ := filepath.EvalSymlinks(t.TempDir())
	for _, n := range []string{"a.conf", "b.conf", "c.conf"} {
		os.WriteFile(filepath.Join(root, n), []byte(n+"\n"), 0o644)
	}
	cfg := testConfig(dir)
	cfg.FIM = config.FIM{Paths: []string{root}, Workers: 2, Live: true, Settle: config.Duration(200 * time.Millisecond)}
	entries, err := (&fim.Scanner{}).Scan(context.Background(), cfg.FIM.Paths)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.OpenBaseline(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Replace(entries); err != nil {
		t.Fatal(err)
	}
	b.Close()

	h := &harness{cg: testenv.NewCgroup(t), output: cfg.Output, done: make(chan error, 1)}
	h.events = newCollector(h.cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), h.events)
	if err != nil {
		t.Fatal(err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	<-a.Ready()

	pid, _ := h.cg.Run(t, "sh", "-c", "echo changed >> "+filepath.Join(root, "a.conf")+" && rm "+filepath.Join(root, "b.conf")+
		" && chmod 600 "+filepath.Join(root, "c.conf")+" && touch "+filepath.Join(root, "c.conf"))
	isFIM := func(path string) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindAlert && e.Alert.RuleID == RuleFIM && strings.HasPrefix(e.Alert.Message, path+" ")
		}
	}
	al := h.events.waitFor(t, "a.conf changed", isFIM(filepath.Join(root, "a.conf")))
	if !strings.Contains(al.Alert.Message, "changed since the baseline (sha256, size, mtime)") || int(al.Process.PID) != pid ||
		al.Process.Executable != "/usr/bin/dash" && !strings.HasSuffix(al.Process.Executable, "sh") {
		t.Errorf("alert: %s (pid %d %s, shell %d)", al.Alert.Message, al.Process.PID, al.Process.Executable, pid)
	}
	al = h.events.waitFor(t, "b.conf removed", isFIM(filepath.Join(root, "b.conf")))
	if !strings.Contains(al.Alert.Message, "removed since the baseline") || !strings.Contains(al.Alert.Message, "/rm ") {
		t.Errorf("alert: %s", al.Alert.Message)
	}
	al = h.events.waitFor(t, "c.conf chmod", isFIM(filepath.Join(root, "c.conf")))
	if !strings.Contains(al.Alert.Message, "mode") {
		t.Errorf("alert: %s", al.Alert.Message)
	}
	// Rewriting a file with the same content changes nothing the baseline keeps but mtime... so
	// reading one changes nothing at all: no alert for a read.
	h.cg.Run(t, "cat", filepath.Join(root, "c.conf"))
	time.Sleep(600 * time.Millisecond)
	if n := h.events.count(func(e *event.Event) bool { return e.Kind == event.KindAlert && e.Alert.RuleID == RuleFIM }); n != 3 {
		t.Errorf("%d integrity alerts, want 3 (one per changed file)", n)
	}
}
