package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func execEvent(pid uint32, exe string, at time.Time, args ...string) *event.Event {
	return &event.Event{Time: at, Kind: event.KindExec, Process: event.Process{
		PID: pid, Name: filepath.Base(exe), Executable: exe, Args: append([]string{exe}, args...),
		EntityID: fmt.Sprintf("ent-%d", pid), CgroupID: uint64(pid) * 10, AUID: event.NoUID, SessionID: event.NoUID,
	}, Exec: &event.Exec{}}
}

func alertOn(trigger *event.Event, rule string, sev event.Severity) *event.Event {
	return event.NewAlert(event.Alert{RuleID: rule, RuleName: "Rule " + rule, Severity: sev,
		Message: "matched " + trigger.Process.Executable}, trigger)
}

func open(t testing.TB, o Options) (*Store, *Reader) {
	t.Helper()
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "vigil.db")
	}
	if o.Host == nil {
		o.Host = &event.Host{Name: "web-1"}
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := s.Reader()
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// sync writes and waits until the writer committed them.
func write(t testing.TB, s *Store, evs ...*event.Event) {
	t.Helper()
	before := s.Stats().Written + s.Stats().Failures
	want := uint64(0)
	for _, e := range evs {
		if err := s.Write(e); err != nil {
			t.Fatal(err)
		}
		if s.kinds[e.Kind] {
			want++
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Written+s.Stats().Failures < before+want {
		if time.Now().After(deadline) {
			t.Fatalf("store wrote %+v, want %d more", s.Stats(), want)
		}
		time.Sleep(time.Millisecond)
	}
	if f := s.Stats().Failures; f != 0 {
		t.Fatalf("%d rows failed", f)
	}
}

func TestAlertsAlwaysEventsAsConfigured(t *testing.T) {
	s, r := open(t, Options{Kinds: []string{"exec"}})
	ex := execEvent(100, "/tmp/x/payload", t0, "-c", "id")
	fork := &event.Event{Time: t0, Kind: event.KindFork, Process: ex.Process}
	write(t, s, ex, fork, alertOn(ex, "exec-from-writable-dir", event.SeverityWarning))

	alerts, err := r.Alerts(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts, want 1", len(alerts))
	}
	a := alerts[0]
	a.Doc = nil
	want := Alert{ID: 1, Time: t0.Local(), RuleID: "exec-from-writable-dir", RuleName: "Rule exec-from-writable-dir",
		Severity: "warning", Message: "matched /tmp/x/payload", PID: 100, ProcessName: "payload",
		Executable: "/tmp/x/payload", EntityID: "ent-100", CgroupID: 1000, Host: "web-1",
		Summary: "exec /tmp/x/payload -c id"}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("alert (-want +got):\n%s", diff)
	}
	// The stored document is the ECS document, trigger included.
	var doc struct {
		Rule  struct{ ID string }
		Vigil struct {
			Alert struct {
				Trigger struct{ Process struct{ Args []string } }
			}
		}
	}
	full, _ := r.Alert(context.Background(), 1)
	if err := json.Unmarshal(full.Doc, &doc); err != nil {
		t.Fatalf("doc: %v\n%s", err, full.Doc)
	}
	if doc.Rule.ID != "exec-from-writable-dir" || len(doc.Vigil.Alert.Trigger.Process.Args) != 3 {
		t.Errorf("doc = %s", full.Doc)
	}
	evs, err := r.Events(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != "exec" {
		t.Errorf("events = %+v, want the exec only (forks are not configured)", evs)
	}

	// Without kinds, only alerts.
	s2, r2 := open(t, Options{})
	write(t, s2, ex, alertOn(ex, "r", event.SeverityInfo))
	if evs, _ := r2.Events(context.Background(), Filter{}); len(evs) != 0 {
		t.Errorf("stored %d events with none configured", len(evs))
	}
	if al, _ := r2.Alerts(context.Background(), Filter{}); len(al) != 1 {
		t.Errorf("stored %d alerts, want 1", len(al))
	}
}

func TestFilters(t *testing.T) {
	containers := map[uint64]string{1000: "4f2a9c01d3e8", 2000: "77aa00bb11cc"}
	s, r := open(t, Options{Kinds: []string{"all"}, ContainerOf: func(id uint64) string { return containers[id] }})
	a := execEvent(100, "/usr/bin/curl", t0)
	b := execEvent(200, "/usr/sbin/nginx", t0.Add(time.Hour))
	c := execEvent(300, "/tmp/100%_evil", t0.Add(2*time.Hour))
	conn := &event.Event{Time: t0.Add(3 * time.Hour), Kind: event.KindNet, Process: b.Process, Net: &event.Net{
		Op: event.NetConnect, Protocol: "tcp", Destination: netip.MustParseAddrPort("10.1.2.3:443")}}
	write(t, s, a, b, c, conn,
		alertOn(a, "net-tool", event.SeverityNotice),
		alertOn(b, "shell-under-server", event.SeverityCritical),
		alertOn(c, "exec-from-writable-dir", event.SeverityWarning))

	ids := func(f Filter) []string {
		t.Helper()
		al, err := r.Alerts(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range al {
			out = append(out, a.RuleID)
		}
		return out
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, oldest first", Filter{}, []string{"net-tool", "shell-under-server", "exec-from-writable-dir"}},
		{"since", Filter{Since: t0.Add(30 * time.Minute)}, []string{"shell-under-server", "exec-from-writable-dir"}},
		{"rule exact", Filter{Rule: "net-tool"}, []string{"net-tool"}},
		{"rule glob", Filter{Rule: "*-under-*"}, []string{"shell-under-server"}},
		{"severity at least", Filter{MinSeverity: event.SeverityWarning}, []string{"shell-under-server", "exec-from-writable-dir"}},
		{"process by name", Filter{Process: "nginx"}, []string{"shell-under-server"}},
		{"process by path", Filter{Process: "/usr/bin/curl"}, []string{"net-tool"}},
		{"process % is literal", Filter{Process: "100%_evil"}, []string{"exec-from-writable-dir"}},
		{"process % matches nothing else", Filter{Process: "%"}, nil},
		{"pid", Filter{PID: 300}, []string{"exec-from-writable-dir"}},
		{"container prefix", Filter{Container: "77aa"}, []string{"shell-under-server"}},
		{"host", Filter{Host: "web-1"}, []string{"net-tool", "shell-under-server", "exec-from-writable-dir"}},
		{"other host", Filter{Host: "web-2"}, nil},
		{"newest, limited", Filter{Limit: 2}, []string{"shell-under-server", "exec-from-writable-dir"}},
		{"after id", Filter{AfterID: 1, Limit: 1}, []string{"shell-under-server"}},
		{"combined", Filter{Since: t0, MinSeverity: event.SeverityNotice, Process: "curl"}, []string{"net-tool"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(tt.f)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	evs, err := r.Events(context.Background(), Filter{Kinds: []string{"net"}, Process: "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Summary != "connect tcp 10.1.2.3:443" || evs[0].ContainerID != "77aa00bb11cc" {
		t.Errorf("net events = %+v", evs)
	}
	counts, err := r.RuleCounts(context.Background())
	if err != nil || len(counts) != 3 {
		t.Fatalf("rule counts %+v, %v", counts, err)
	}
}

func TestRetentionByAge(t *testing.T) {
	now := t0
	s, r := open(t, Options{Kinds: []string{"exec"}, MaxAge: 24 * time.Hour, Now: func() time.Time { return now }})
	old := execEvent(1, "/bin/old", t0.Add(-48*time.Hour))
	recent := execEvent(2, "/bin/recent", t0.Add(-time.Hour))
	write(t, s, old, recent, alertOn(old, "r", event.SeverityInfo), alertOn(recent, "r", event.SeverityInfo))
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	evs, _ := r.Events(context.Background(), Filter{})
	al, _ := r.Alerts(context.Background(), Filter{})
	if len(evs) != 1 || evs[0].PID != 2 || len(al) != 1 || al[0].PID != 2 {
		t.Errorf("after pruning by age: events %+v alerts %+v, want pid 2 only", evs, al)
	}
	if s.Pruned() != 2 {
		t.Errorf("pruned %d rows, want 2", s.Pruned())
	}
}

func TestRetentionBySizeDropsEventsBeforeAlerts(t *testing.T) {
	const limit = 1 << 20
	s, r := open(t, Options{Kinds: []string{"all"}, MaxSize: limit, Queue: 100000})
	big := make([]string, 40)
	for i := range big {
		big[i] = fmt.Sprintf("argument-%d-padding-padding-padding-padding", i)
	}
	var evs []*event.Event
	for i := range 2000 {
		evs = append(evs, execEvent(uint32(1000+i), "/usr/bin/worker", t0.Add(time.Duration(i)*time.Second), big...))
	}
	write(t, s, evs...)
	write(t, s, alertOn(evs[0], "first", event.SeverityWarning))
	before, _ := s.usedSize()
	if before <= limit {
		t.Fatalf("test setup: database is %d bytes, want more than %d", before, limit)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	after, _ := s.usedSize()
	st, _ := os.Stat(s.opt.Path)
	t.Logf("used %d -> %d bytes, file %d bytes", before, after, st.Size())
	if after > limit {
		t.Errorf("used size %d after pruning, want at most %d", after, limit)
	}
	if st.Size() > limit+limit/4 {
		t.Errorf("file is %d bytes after pruning, want the freed pages given back", st.Size())
	}
	left, _ := r.Events(context.Background(), Filter{Limit: 1 << 20})
	if len(left) == 0 || len(left) == len(evs) {
		t.Fatalf("%d of %d events left", len(left), len(evs))
	}
	if left[len(left)-1].PID != 1000+uint32(len(evs))-1 || left[0].PID == 1000 {
		t.Errorf("kept pids %d..%d, want the newest kept and the oldest gone", left[0].PID, left[len(left)-1].PID)
	}
	if al, _ := r.Alerts(context.Background(), Filter{}); len(al) != 1 {
		t.Errorf("the alert was pruned while events were left")
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	s, _ := open(t, Options{Queue: 1})
	// Hold the writer's connection so that it cannot drain the queue.
	conn, err := s.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := execEvent(1, "/bin/x", t0)
	for range 100 {
		if err := s.Write(alertOn(e, "r", event.SeverityInfo)); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	// Every row is either written or dropped, and the writer, blocked, could
	// take only a few before the queue filled.
	deadline := time.Now().Add(10 * time.Second)
	for st := s.Stats(); st.Written+st.Dropped < 100; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: rows neither written nor dropped", st)
		}
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	if st.Written+st.Dropped != 100 || st.Dropped < 90 || s.AlertsDropped() != st.Dropped {
		t.Errorf("stats %+v, alerts dropped %d: want 100 rows accounted for, most dropped, all of them alerts", st, s.AlertsDropped())
	}
}

// TestReadWhileWriting: a reader in another connection (as `vigil alerts`
// in another process) reads while the writer commits, and sees whole
// batches, never an error.
func TestReadWhileWriting(t *testing.T) {
	s, _ := open(t, Options{Kinds: []string{"exec"}, Queue: 100000})
	r2, err := OpenReader(s.opt.Path) // a pool of its own, like another process
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			al, err := r2.Alerts(context.Background(), Filter{AfterID: last, Limit: 1000})
			if err != nil {
				errs <- err
				return
			}
			for _, a := range al {
				if a.ID != last+1 {
					errs <- fmt.Errorf("read alert %d after %d", a.ID, last)
					return
				}
				last = a.ID
			}
		}
	}()
	for i := range 50 {
		var batch []*event.Event
		for j := range 100 {
			e := execEvent(uint32(i*100+j+1), "/bin/x", t0)
			batch = append(batch, e, alertOn(e, "r", event.SeverityInfo))
		}
		write(t, s, batch...)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func TestOpenReaderErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReader(filepath.Join(dir, "none.db")); err == nil || !errorsIs(err, ErrNoStore) {
		t.Errorf("missing file: %v", err)
	}
	other := filepath.Join(dir, "other.db")
	os.WriteFile(other, nil, 0o600)
	if _, err := OpenReader(other); err == nil {
		t.Error("an empty file opened as a store")
	}
}

// BenchmarkInsert measures what the writer sustains: rows per second from
// Write to commit, with the ECS rendering on the caller's side included.
func BenchmarkInsert(b *testing.B) {
	s, _ := open(b, Options{Kinds: []string{"all"}, Queue: 1 << 20})
	e := execEvent(4242, "/usr/bin/python3", t0, "-c", "import os; os.system('id')")
	e.Parent = &event.Process{PID: 1, Name: "bash", Executable: "/usr/bin/bash", Args: []string{"bash"}}
	b.ResetTimer()
	for range b.N {
		if err := s.Write(e); err != nil {
			b.Fatal(err)
		}
		for len(s.queue) == cap(s.queue) {
			time.Sleep(time.Millisecond)
		}
	}
	for s.Stats().Written < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
