package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a destination that can be down, and records what it took.
type recorder struct {
	mu   sync.Mutex
	got  []string
	down atomic.Bool
	// hook, when set, decides each record's outcome.
	hook func(rec string) Outcome
}

func (r *recorder) Send(ctx context.Context, batch [][]byte) error {
	if r.down.Load() {
		return errors.New("destination down")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hook == nil {
		for _, b := range batch {
			r.got = append(r.got, string(b))
		}
		return nil
	}
	be := &BatchError{Outcomes: make([]Outcome, len(batch)), Err: errors.New("partial")}
	partial := false
	for i, b := range batch {
		be.Outcomes[i] = r.hook(string(b))
		if be.Outcomes[i] == Delivered {
			r.got = append(r.got, string(b))
		} else {
			partial = true
		}
	}
	if partial {
		return be
	}
	return nil
}

func (r *recorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got := r.received(); len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := r.received()
	t.Fatalf("destination got %d records, want %d", len(got), n)
	return got
}

func records(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, "record-"+strconv.Itoa(i))
	}
	return out
}

func testOptions(t *testing.T) Options {
	return Options{
		Name: "test", Type: "test", Dir: filepath.Join(t.TempDir(), "spool"),
		MemoryRecords: 16, MaxBytes: 1 << 20, SegmentBytes: 1 << 10, MaxBatch: 7,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, DrainTimeout: 200 * time.Millisecond,
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// An outage longer than the memory queue spills to disk; when the
// destination is back, every record arrives once, in order.
func TestOutageSpillsToDiskAndDeliversInOrder(t *testing.T) {
	dst := &recorder{}
	q, err := New(testOptions(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	want := records(0, 1000)
	for _, r := range want[:100] {
		q.Put([]byte(r))
	}
	dst.waitFor(t, 100)
	dst.down.Store(true)
	for _, r := range want[100:] {
		q.Put([]byte(r))
	}
	q.Flush()
	waitUntil(t, "records in the spool and a failed attempt", func() bool { st := q.Stats(); return st.SpoolDepth > 0 && st.Retries > 0 })
	st := q.Stats()
	if st.Spooled == 0 || st.Retries == 0 {
		t.Errorf("during the outage: %+v, want spooled and retried records", st)
	}
	dst.down.Store(false)
	got := dst.waitFor(t, len(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	waitUntil(t, "the spool to empty", func() bool { return q.Stats().SpoolDepth == 0 })
	st = q.Stats()
	if st.Enqueued+st.Spooled != 1000 || st.Written != 1000 || st.Dropped != 0 || st.Queued != 0 || st.SpoolBytes != 0 {
		t.Errorf("after recovery: %+v", st)
	}
	segs, _ := filepath.Glob(filepath.Join(q.opts.Dir, "*.seg"))
	if len(segs) != 0 {
		t.Errorf("spool files left after delivery: %v", segs)
	}
}

// A full spool keeps what it has and drops new records, counting them.
func TestFullSpoolDropsNewRecordsAndCounts(t *testing.T) {
	dst := &recorder{}
	dst.down.Store(true)
	opts := testOptions(t)
	opts.MaxBytes = 4 << 10
	opts.SegmentBytes = 1 << 10
	q, err := New(opts, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 1000
	for _, r := range records(0, n) {
		q.Put([]byte(r))
	}
	st := q.Stats()
	if st.Dropped == 0 {
		t.Fatalf("nothing dropped with a 4 KiB spool: %+v", st)
	}
	if st.Enqueued+st.Spooled+st.Dropped != n {
		t.Errorf("queued %d + spooled %d + dropped %d != %d put", st.Enqueued, st.Spooled, st.Dropped, n)
	}
	if st.SpoolBytes > opts.MaxBytes {
		t.Errorf("spool holds %d bytes, bound %d", st.SpoolBytes, opts.MaxBytes)
	}
	// What was kept is the oldest, and it all arrives.
	kept := int(st.Enqueued + st.Spooled)
	dst.down.Store(false)
	got := dst.waitFor(t, kept)
	if diff := cmp.Diff(records(0, kept), got); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

// Records refused for good are counted as failed; those to retry arrive later.
func TestPartialOutcomes(t *testing.T) {
	var tries sync.Map
	dst := &recorder{hook: func(rec string) Outcome {
		n, _ := strconv.Atoi(rec[len("record-"):])
		switch {
		case n%10 == 3:
			return Rejected
		case n%10 == 5:
			c, _ := tries.LoadOrStore(rec, new(atomic.Int32))
			if c.(*atomic.Int32).Add(1) < 3 {
				return Retry
			}
		}
		return Delivered
	}}
	q, err := New(testOptions(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, r := range records(0, 100) {
		q.Put([]byte(r))
	}
	dst.waitFor(t, 90)
	waitUntil(t, "all outcomes", func() bool { st := q.Stats(); return st.Written+st.Failures == 100 })
	st := q.Stats()
	if st.Written != 90 || st.Failures != 10 || st.Retries < 20 {
		t.Errorf("stats %+v, want 90 sent, 10 failed, at least 20 retries", st)
	}
	seen := map[string]int{}
	for _, r := range dst.received() {
		seen[r]++
	}
	for _, r := range records(0, 100) {
		n, _ := strconv.Atoi(r[len("record-"):])
		want := 1
		if n%10 == 3 {
			want = 0
		}
		if seen[r] != want {
			t.Errorf("%s delivered %d times, want %d", r, seen[r], want)
		}
	}
}

// What was not delivered when the agent stops is delivered after it starts
// again, exactly once and in order: the batch in flight, the memory queue,
// and the spool, including a segment that was partly delivered.
func TestSpoolSurvivesRestart(t *testing.T) {
	opts := testOptions(t)
	dst := &recorder{}
	q, err := New(opts, dst)
	if err != nil {
		t.Fatal(err)
	}
	want := records(0, 600)
	for _, r := range want[:50] {
		q.Put([]byte(r))
	}
	dst.waitFor(t, 50)
	dst.down.Store(true)
	for _, r := range want[50:400] {
		q.Put([]byte(r))
	}
	// Part of the spool gets delivered, then the destination fails again.
	dst.down.Store(false)
	dst.waitFor(t, 120)
	dst.down.Store(true)
	for _, r := range want[400:] {
		q.Put([]byte(r))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	before := dst.received()
	st := q.Stats()
	if st.Dropped != 0 {
		t.Fatalf("records dropped: %+v", st)
	}

	dst2 := &recorder{}
	dst2.down.Store(true)
	q2, err := New(opts, dst2)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if st := q2.Stats(); st.SpoolDepth != len(want)-len(before) {
		t.Errorf("replayed spool holds %d records, want %d", st.SpoolDepth, len(want)-len(before))
	}
	dst2.down.Store(false)
	after := dst2.waitFor(t, len(want)-len(before))
	if diff := cmp.Diff(want, append(before, after...)); diff != "" {
		t.Errorf("delivered across the restart (-want +got):\n%s", diff)
	}
}

// A crash leaves no cursor and maybe a torn record: the copy of the spool
// taken while the destination was down still delivers every whole record
// (at least once), and the torn tail is cut off.
func TestSpoolAfterCrash(t *testing.T) {
	opts := testOptions(t)
	opts.MemoryRecords = 1
	dst := &recorder{}
	dst.down.Store(true)
	q, err := New(opts, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	want := records(0, 300)
	for _, r := range want {
		q.Put([]byte(r))
	}
	q.Flush()
	// "Crash": copy the directory as it is on disk now, and tear the last record.
	crashed := filepath.Join(t.TempDir(), "crashed")
	os.MkdirAll(crashed, 0o700)
	segs, _ := filepath.Glob(filepath.Join(opts.Dir, "*.seg"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, have %v", segs)
	}
	for i, s := range segs {
		b, _ := os.ReadFile(s)
		if i == len(segs)-1 {
			b = b[:len(b)-3]
		}
		os.WriteFile(filepath.Join(crashed, filepath.Base(s)), b, 0o600)
	}
	// And corrupt one record in the middle of the first segment.
	first := filepath.Join(crashed, filepath.Base(segs[0]))
	b, _ := os.ReadFile(first)
	inMem := int(q.Stats().Enqueued)                    // the rest went to disk, in order
	b[headerSize+len(want[inMem])+headerSize+2] ^= 0xff // inside the 2nd record's payload
	os.WriteFile(first, b, 0o600)

	opts2 := opts
	opts2.Dir = crashed
	dst2 := &recorder{}
	q2, err := New(opts2, dst2)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	// The first records are in memory, not on disk; the second one on
	// disk is corrupt; the last record is torn.
	wantAfter := append([]string{want[inMem]}, want[inMem+2:len(want)-1]...)
	got := dst2.waitFor(t, len(wantAfter))
	if diff := cmp.Diff(wantAfter, got); diff != "" {
		t.Errorf("delivered after the crash (-want +got):\n%s", diff)
	}
	waitUntil(t, "the corrupt record counted", func() bool { return q2.Stats().Dropped == 1 })
}

// A slow destination never slows Put: Put only touches memory and a file.
func TestPutDoesNotWaitForTheDestination(t *testing.T) {
	block := make(chan struct{})
	opts := testOptions(t)
	q, err := New(opts, senderFunc(func(ctx context.Context, b [][]byte) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := range 2000 {
			q.Put(fmt.Appendf(nil, "r%d", i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Put blocked on a destination that does not answer")
	}
	close(block)
	q.Close()
	if st := q.Stats(); st.Enqueued+st.Spooled != 2000 {
		t.Errorf("%+v", st)
	}
}

type senderFunc func(context.Context, [][]byte) error

func (f senderFunc) Send(ctx context.Context, b [][]byte) error { return f(ctx, b) }
