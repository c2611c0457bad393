package ransom

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

type harness struct {
	s   *Sensor
	cg  *testenv.Cgroup
	dir string

	mu   sync.Mutex
	recs []Record
	errs []error
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	sh, err := sensor.NewShared(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	h := &harness{cg: testenv.NewCgroup(t)}
	cfg.OnlyCgroup = h.cg.ID // never judge, nor kill, anything the test did not start
	s, err := New(cfg, sh)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	t.Cleanup(func() { s.Close() })
	if h.dir, err = filepath.EvalSymlinks(t.TempDir()); err != nil {
		t.Fatal(err)
	}
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
			if err != nil || hdr.Type != sensor.TypeWrite {
				return
			}
			var p event.Process
			var r Record
			err = Decode(rec, clk, &p, &r)
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.errs = append(h.errs, err)
				return
			}
			if p.CgroupID == h.cg.ID {
				h.recs = append(h.recs, r)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done; rd.Close() })
	return h
}

// waitFor returns the records once one satisfies ok, or fails after 5s.
func (h *harness) waitFor(t *testing.T, what string, ok func(Record) bool) Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, r := range h.recs {
			if ok(r) {
				h.mu.Unlock()
				return r
			}
		}
		errs := h.errs
		h.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("decode errors: %v", errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Fatalf("no record of %s among %d: %+v", what, len(h.recs), h.recs)
	return Record{}
}

// run runs a shell command in the test cgroup.
func (h *harness) run(t *testing.T, script string) {
	t.Helper()
	cmd := h.cg.Command("sh", "-c", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func TestSampleJudged(t *testing.T) {
	h := newHarness(t, Config{})
	random := make([]byte, 64<<10)
	rand.Read(random)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(random)
	zw.Close()
	for name, data := range map[string][]byte{"random.bin": random, "data.gz": gz.Bytes()} {
		if err := os.WriteFile(filepath.Join(h.dir, "src-"+name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.GenerateDocs(t, filepath.Join(h.dir, "docs"), 1, 1)
	text := filepath.Join(h.dir, "docs", "folder0", "doc000.txt")

	// dd (cp would use copy_file_range, which no write syscall carries)
	// into new files, then over an existing one, in the test's cgroup.
	dd := func(from, to string) string { return "dd status=none bs=64k if=" + from + " of=" + to }
	h.run(t, dd(filepath.Join(h.dir, "src-random.bin"), filepath.Join(h.dir, "random.bin"))+
		" && "+dd(filepath.Join(h.dir, "src-data.gz"), filepath.Join(h.dir, "data.gz"))+
		" && "+dd(text, filepath.Join(h.dir, "text.txt"))+
		" && "+dd(filepath.Join(h.dir, "src-random.bin"), filepath.Join(h.dir, "text.txt")))

	r := h.waitFor(t, "random.bin", func(r Record) bool { return r.Op == OpClose && r.Path == filepath.Join(h.dir, "random.bin") })
	if !r.Created || !r.Sampled || !r.HighEntropy || r.Magic != "" || r.Entropy < 7.3 || r.Bytes != 64<<10 || r.SampleLen != 512 {
		t.Errorf("random data: %+v", r)
	}
	r = h.waitFor(t, "data.gz", func(r Record) bool { return r.Op == OpClose && r.Path == filepath.Join(h.dir, "data.gz") })
	if !r.Sampled || r.HighEntropy || r.Magic != "gzip" {
		t.Errorf("gzip data: %+v", r)
	}
	r = h.waitFor(t, "text.txt created", func(r Record) bool {
		return r.Op == OpClose && r.Path == filepath.Join(h.dir, "text.txt") && r.Created
	})
	if !r.Sampled || r.HighEntropy || r.Entropy > 5.5 {
		t.Errorf("text: %+v", r)
	}
	r = h.waitFor(t, "text.txt rewritten", func(r Record) bool {
		return r.Op == OpClose && r.Path == filepath.Join(h.dir, "text.txt") && !r.Created
	})
	if !r.Truncated || !r.HighEntropy || r.Score != 1 {
		t.Errorf("rewrite of an existing file with random data: %+v", r)
	}

	// A writer's unlinks and renames are reported (mv and rm alone wrote nothing).
	h.run(t, "cd "+h.dir+` && python3 -c "import os; open('a', 'w').write('x'); os.rename('a', 'b'); os.unlink('b')"`)
	h.waitFor(t, "rename", func(r Record) bool {
		return r.Op == OpRename && r.Path == filepath.Join(h.dir, "a") && r.NewPath == filepath.Join(h.dir, "b")
	})
	h.waitFor(t, "unlink", func(r Record) bool { return r.Op == OpUnlink && r.Path == filepath.Join(h.dir, "b") })
}

// sim runs the simulator in the test cgroup over n generated files and
// returns how many it finished and how it ended.
func sim(t *testing.T, h *harness, bin string, n int, args ...string) (done int, ws syscall.WaitStatus) {
	t.Helper()
	victims := filepath.Join(h.dir, "victims")
	testenv.GenerateDocs(t, victims, n, 7)
	cmd := h.cg.Command(bin, append(args, victims)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return strings.Count(out.String(), "\n"), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func TestKernelKillsSimulator(t *testing.T) {
	testenv.SkipInGuest(t, "needs the Go toolchain to build test/ransomsim")
	bin := testenv.BuildTool(t, "test/ransomsim")
	for _, mode := range []string{"inplace", "newdel", "rename"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, Config{KillScore: 5})
			done, ws := sim(t, h, bin, 200, "-mode", mode)
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("simulator was not killed: %v, finished %d of 200 files", ws, done)
			}
			t.Logf("killed after %d of 200 files", done)
			if done > 5 {
				t.Errorf("finished %d files, want at most 5 with a kill score of 5", done)
			}
			h.waitFor(t, "the kill", func(r Record) bool { return r.Killed && r.Score >= 5 })
		})
	}
}

func TestDecoy(t *testing.T) {
	h := newHarness(t, Config{DecoyKill: true})
	decoy := filepath.Join(h.dir, "!0000-decoy.docx")
	if err := os.WriteFile(decoy, []byte("decoy"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SetDecoys([]string{decoy}); err != nil {
		t.Fatal(err)
	}
	// An open for writing is killed before it writes.
	cmd := h.cg.Command("sh", "-c", "exec 3>>'"+decoy+"'; echo pwned >&3")
	err := cmd.Run()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("writer of the decoy: %v (%v)", err, ws)
	}
	if b, _ := os.ReadFile(decoy); string(b) != "decoy" {
		t.Errorf("decoy content %q: the write happened", b)
	}
	h.waitFor(t, "decoy open", func(r Record) bool { return r.Op == OpDecoyOpen && r.Decoy && r.Killed && r.Path == decoy })

	// A rename by a process that wrote nothing.
	cmd = h.cg.Command("mv", decoy, decoy+".locked")
	cmd.Run()
	ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("renamer of the decoy not killed: %v", ws)
	}
	h.waitFor(t, "decoy rename", func(r Record) bool { return r.Op == OpRename && r.Decoy && r.Killed && r.Path == decoy })
}

func TestNameHash(t *testing.T) {
	// FNV-1a 64 of "a", as published.
	if got := NameHash("a"); got != 0xaf63dc4c8601ec8c {
		t.Errorf("NameHash(a) = %#x", got)
	}
	if len(magicNames) != 41 {
		t.Errorf("magic table has %d names; regenerate with gen_magic.py", len(magicNames))
	}
}
