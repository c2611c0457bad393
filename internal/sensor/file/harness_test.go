package file

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// triggerBin is testdata/trigger, built once by TestMain.
var triggerBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "vigil-file-trigger-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		triggerBin = filepath.Join(dir, "trigger")
		cmd := exec.Command("go", "build", "-o", triggerBin, "./testdata/trigger")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build trigger: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// harness is a loaded sensor whose events from one test cgroup are collected.
type harness struct {
	sh  *sensor.Shared
	s   *Sensor
	cg  *testenv.Cgroup
	dir string // a temp dir of the test's, resolved (no symlinks)

	mu     sync.Mutex
	events []event.Event
	errs   []error
}

// newHarness loads the sensor with the file kind set to f, scoped to a fresh
// test cgroup. Nothing is watched yet.
func newHarness(t *testing.T, f sensor.KindFilter) *harness {
	t.Helper()
	return newHarnessConfig(t, Config{}, f)
}

func newHarnessConfig(t *testing.T, cfg Config, f sensor.KindFilter) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	sh, err := sensor.NewShared(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	s, err := New(cfg, sh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if len(s.Skipped) > 0 {
		t.Logf("skipped hooks: %v", s.Skipped)
	}
	h := &harness{sh: sh, s: s, cg: testenv.NewCgroup(t)}
	if h.dir, err = filepath.EvalSymlinks(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := sh.MarkCgroup(h.cg.ID, sensor.Include); err != nil {
		t.Fatal(err)
	}
	f.Enabled = true
	f.CgroupScope = sensor.ScopeIncluded
	h.setKind(t, f)

	rd, err := sensor.NewReader(sh, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		clk := sensor.NewClock()
		_ = rd.Run(ctx, func(rec []byte) {
			hdr, err := sensor.ParseHeader(rec)
			if err != nil || hdr.Type != sensor.TypeFile {
				return
			}
			var e event.Event
			err = Decode(rec, clk, &e)
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.errs = append(h.errs, err)
				return
			}
			if e.Process.CgroupID == h.cg.ID {
				h.events = append(h.events, e)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		rd.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, err := range h.errs {
			t.Errorf("decode: %v", err)
		}
	})
	return h
}

func (h *harness) setKind(t *testing.T, f sensor.KindFilter) {
	t.Helper()
	if err := h.sh.SetKind(sensor.TypeFile, f); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) watch(t *testing.T, mark sensor.InodeMark, paths ...string) {
	t.Helper()
	missing, err := h.s.Watch(paths, mark)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("watch: missing %v", missing)
	}
}

// trigger runs testdata/trigger in the test cgroup with working directory
// dir and returns its pid and the syscall's return value.
func (h *harness) trigger(t *testing.T, dir string, args ...string) (pid uint32, ret int64) {
	t.Helper()
	cmd := h.cg.Command(triggerBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("trigger %v: %v\n%s", args, err, out)
	}
	ret, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("trigger %v: output %q", args, out)
	}
	return uint32(cmd.Process.Pid), ret
}

// shell runs a shell command in the test cgroup.
func (h *harness) shell(t *testing.T, dir, script string) uint32 {
	t.Helper()
	cmd := h.cg.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
	return uint32(cmd.Process.Pid)
}

// wait returns the first event of pid with op, polling until a generous
// deadline.
func (h *harness) wait(t *testing.T, pid uint32, op event.FileOp) *event.Event {
	t.Helper()
	return h.waitFor(t, fmt.Sprintf("%s from pid %d", op, pid), func(e *event.Event) bool {
		return e.Process.PID == pid && e.File.Op == op
	})
}

// waitFor returns the first event that matches, polling until a generous
// deadline.
func (h *harness) waitFor(t *testing.T, what string, match func(e *event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e := h.find(match); e != nil {
			return e
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no event: %s; got:\n%s", what, h.dump())
	return nil
}

// find returns a copy of the first event that matches, or nil.
func (h *harness) find(match func(e *event.Event) bool) *event.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.events {
		if e := h.events[i]; match(&e) {
			return &e
		}
	}
	return nil
}

// settle returns once every record made before it has been read: it makes
// one more that is reported (a mkdir in dir, which must be watched for
// writes) and waits for it. The ring buffer hands records over in the order
// they were reserved.
func (h *harness) settle(t *testing.T, dir string) {
	t.Helper()
	marker := filepath.Join(dir, "settle-marker")
	pid, _ := h.trigger(t, dir, "mkdir", marker, "755")
	h.wait(t, pid, event.FileMkdir)
	os.Remove(marker)
}

// eventsOf returns pid's events.
func (h *harness) eventsOf(pid uint32) []event.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event.Event
	for _, e := range h.events {
		if e.Process.PID == pid {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, e := range h.events {
		fmt.Fprintf(&b, "  pid %d ret %d %+v\n", e.Process.PID, e.Return, *e.File)
	}
	return b.String()
}
