package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/fim"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/store"
)

// RuleFIM is the id of live integrity alerts.
const RuleFIM = "fim-changed"

// fimLive re-hashes baseline paths the file sensor sees written, renamed,
// deleted or chmodded, once they have been quiet for fim.settle, and alerts
// when they differ from the baseline, naming the process that changed them.
// Hashing runs on its own workers: the reader only records the path.
type fimLive struct {
	scanner *fim.Scanner
	settle  time.Duration

	mu      sync.Mutex
	base    map[string]fim.Entry
	pending map[string]fimPending
	alerted map[string]string // path -> state last alerted, so one change alerts once
	dropped atomic.Uint64
}

type fimPending struct {
	due     time.Time
	trigger *event.Event
}

// setupFIM loads the baseline and watches its paths. No baseline: off.
func (a *Agent) setupFIM() error {
	c := a.cfg.FIM
	if !c.Live || a.cfg.Store.Path == "" || a.fileSensor == nil {
		return nil
	}
	b, err := store.OpenBaseline(a.cfg.Store.Path)
	if err != nil {
		return err
	}
	base, err := b.Load()
	b.Close()
	if err != nil {
		return err
	}
	if len(base) == 0 {
		a.log.Info("no file integrity baseline: live checks off (vigil fim init records one)")
		return nil
	}
	if _, err := a.fileSensor.Watch(c.Paths, sensor.WatchWrite); err != nil {
		return fmt.Errorf("fim: watch: %w", err)
	}
	a.fim = &fimLive{scanner: &fim.Scanner{Exclude: c.Exclude, Workers: c.Workers}, settle: c.Settle.D(),
		base: base, pending: map[string]fimPending{}, alerted: map[string]string{}}
	a.log.Info("file integrity checked live", "paths", c.Paths, "entries", len(base))
	return nil
}

// fimEvent notes a file event on a baseline path. Reader goroutine.
func (a *Agent) fimEvent(e *event.Event) {
	f := a.fim
	if f == nil || e.Kind != event.KindFile || e.File == nil || e.Return < 0 {
		return
	}
	switch e.File.Op {
	case event.FileOpen, event.FileCreate, event.FileUnlink, event.FileRename, event.FileChmod, event.FileChown,
		event.FileTruncate, event.FileLink, event.FileSymlink, event.FileRmdir, event.FileMkdir:
	default:
		return
	}
	if e.File.Op == event.FileOpen && !e.File.Write {
		return
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range []string{e.File.Path, e.File.TargetPath} {
		if p == "" || !fim.Under(p, a.cfg.FIM.Paths) || f.scanner.Excluded(p) {
			continue
		}
		if len(f.pending) >= 65536 {
			f.dropped.Add(1)
			continue
		}
		f.pending[p] = fimPending{due: now.Add(f.settle), trigger: e}
	}
}

// startFIM runs the re-hashing until stop, which returns once no alert
// can be emitted any more.
func (a *Agent) startFIM(ctx context.Context) (stop func()) {
	f := a.fim
	if f == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(max(f.settle/2, 50*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				a.fimCheckDue(ctx, now)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func (a *Agent) fimCheckDue(ctx context.Context, now time.Time) {
	f := a.fim
	f.mu.Lock()
	var paths []string
	triggers := map[string]*event.Event{}
	for p, pd := range f.pending {
		if !pd.due.After(now) {
			paths = append(paths, p)
			triggers[p] = pd.trigger
			delete(f.pending, p)
		}
	}
	f.mu.Unlock()
	if len(paths) == 0 {
		return
	}
	cur, errs := f.scanner.Entries(ctx, paths)
	for _, err := range errs {
		a.log.Debug("fim: re-hash", "err", err)
	}
	for _, p := range paths {
		f.mu.Lock()
		old, inBase := f.base[p]
		n, exists := cur[p]
		var kind string
		var fields []string
		switch {
		case inBase && !exists:
			kind = "removed"
		case !inBase && exists:
			kind = "added"
		case inBase && exists:
			if fields = fim.Compare(old, n); len(fields) > 0 {
				kind = "changed"
			}
		}
		state := kind + "|" + n.SHA256 + "|" + fmt.Sprint(n.Mode, n.UID, n.GID, n.Target, n.Size)
		if kind == "" || f.alerted[p] == state {
			if kind == "" {
				delete(f.alerted, p)
			}
			f.mu.Unlock()
			continue
		}
		f.alerted[p] = state
		f.mu.Unlock()
		t := triggers[p]
		msg := fmt.Sprintf("%s %s since the baseline", p, kind)
		if kind == "changed" {
			msg += " (" + strings.Join(fields, ", ") + ")"
		}
		msg += fmt.Sprintf(", after %s by %s (pid %d)", t.File.Op, t.Process.Executable, t.Process.PID)
		al := event.NewAlert(event.Alert{RuleID: RuleFIM, RuleName: "File differs from its integrity baseline", Severity: event.SeverityWarning,
			Description: "A file below fim.paths no longer matches the baseline `vigil fim init` recorded; `vigil fim accept` records it.",
			Tags:        []string{"fim", "file"}, MITRE: []string{"T1565.001"}, Message: msg, Response: "alert"}, t)
		a.emitAlert(al)
	}
}
