package file

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/sink/sinktest"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// readLines reads a file, gunzipping .gz, and checks every line is one
// JSON document whose hostile argument round-trips.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	}
	var msgs []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var doc struct {
			Message string `json:"message"`
			Process struct{ Args []string }
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("%s: line is not one JSON document: %v: %q", path, err, sc.Text())
		}
		if len(doc.Process.Args) != 3 || doc.Process.Args[2] != sinktest.JSONString(sinktest.Hostile) {
			t.Errorf("hostile argument did not round-trip: %q", doc.Process.Args)
		}
		msgs = append(msgs, doc.Message)
	}
	return msgs
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Size rotation with gzip and keep: the newest files are kept, in order,
// each line whole, and nothing else is lost.
func TestRotateBySizeKeepAndGzip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Options{Path: path, MaxBytes: 16 << 10, Keep: 3, Compress: true, Host: &sinktest.Host, now: clk.now,
		Queue: spool.Options{Name: "file", Dir: filepath.Join(dir, "spool"), MaxBatch: 4}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 120
	for i := range n {
		s.Write(sinktest.Alert(i))
		s.Flush()
		clk.add(time.Millisecond)
		sinktest.WaitFor(t, "the write", func() bool { return s.Stats().Written == uint64(i+1) })
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, err := Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 3 {
		t.Fatalf("rotated files %v, want 3 (keep)", rotated)
	}
	var msgs []string
	for _, f := range rotated {
		if !strings.HasSuffix(f, ".gz") {
			t.Errorf("%s is not gzipped", f)
		}
		msgs = append(msgs, readLines(t, f)...)
	}
	msgs = append(msgs, readLines(t, path)...)
	// The kept files hold the last alerts, in order, ending with the last.
	first := n - len(msgs)
	if first <= 0 {
		t.Fatalf("nothing was pruned: %d lines", len(msgs))
	}
	for k, m := range msgs {
		if m != sinktest.Message(first+k) {
			t.Fatalf("line %d: %q, want alert %d", k, m, first+k)
		}
	}
	// Each plain file stays under the size bound.
	if st, _ := os.Stat(path); st.Size() > 16<<10 {
		t.Errorf("%s is %d bytes, bound 16 KiB", path, st.Size())
	}
}

// Age rotation: a file older than max_age is rotated before the next write.
func TestRotateByAge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alerts.json")
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Options{Path: path, MaxAge: time.Hour, now: clk.now, Queue: spool.Options{Name: "file"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		s.Write(sinktest.Alert(i))
		sinktest.WaitFor(t, "the write", func() bool { return s.Stats().Written == uint64(i+1) })
		clk.add(35 * time.Minute) // rotations before writes 2 and 4
	}
	s.Close()
	rotated, _ := Rotated(path)
	if len(rotated) != 2 {
		t.Fatalf("rotated %v, want 2 files", rotated)
	}
	got := [][]string{readLines(t, rotated[0]), readLines(t, rotated[1]), readLines(t, path)}
	want := [][]int{{0, 1}, {2, 3}, {4, 5}}
	for f := range want {
		if len(got[f]) != len(want[f]) {
			t.Fatalf("file %d has %d lines, want %v", f, len(got[f]), want[f])
		}
		for k, i := range want[f] {
			if got[f][k] != sinktest.Message(i) {
				t.Errorf("file %d line %d: %q", f, k, got[f][k])
			}
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {Path: "/tmp/x", Keep: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
