package process

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// copyExe copies a system program into dir under name, so the test kills a
// file of its own.
func copyExe(t *testing.T, src, dir, name string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, name)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func inode(t *testing.T, path string) sensor.InodeKey {
	t.Helper()
	k, err := sensor.InodeOf(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// runMarker runs exe (a copy of touch) to create marker, and says whether
// SIGKILL ended it.
func runMarker(t *testing.T, cg *testenv.Cgroup, exe, marker string) (killed bool) {
	t.Helper()
	err := cg.Command(exe, marker).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		return ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	if err != nil {
		t.Fatalf("run %s: %v", exe, err)
	}
	return false
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestExecKill(t *testing.T) {
	testenv.RequirePrivileged(t)
	shared, err := sensor.NewShared(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	s, err := New(Config{}, shared)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cg := testenv.NewCgroup(t)

	// The exec events of the test's cgroup.
	rd, err := sensor.NewReader(shared, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var execs []event.Event
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	clk := sensor.NewClock()
	go func() {
		defer close(done)
		rd.Run(ctx, func(rec []byte) {
			h, err := sensor.ParseHeader(rec)
			if err != nil || h.Type != sensor.TypeExec {
				return
			}
			var e event.Event
			if DecodeExec(rec, clk, &e) == nil && e.Process.CgroupID == cg.ID {
				mu.Lock()
				execs = append(execs, e)
				mu.Unlock()
			}
		})
	}()
	defer func() { cancel(); <-done; rd.Close() }()

	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	sub := filepath.Join(tree, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	inTree := copyExe(t, "/usr/bin/touch", sub, "victim")
	allowed := copyExe(t, "/usr/bin/touch", sub, "allowed")
	single := copyExe(t, "/usr/bin/touch", dir, "single")
	other := copyExe(t, "/usr/bin/touch", dir, "other")
	marker := func(name string) string { return filepath.Join(dir, name+".marker") }

	// Nothing is killed before the set is filled.
	if runMarker(t, cg, inTree, marker("before")) || !exists(marker("before")) {
		t.Fatal("killed with an empty kill set")
	}
	err = s.SetExecKill(KillSet{
		Files: []sensor.InodeKey{inode(t, single)},
		Trees: []sensor.InodeKey{inode(t, tree)},
		Allow: []sensor.InodeKey{inode(t, allowed)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		exe, name string
		kill      bool
	}{
		{inTree, "tree", true},   // two levels below a KILL_TREE directory
		{single, "single", true}, // the file itself
		{allowed, "allowed", false},
		{other, "other", false},
	} {
		killed := runMarker(t, cg, c.exe, marker(c.name))
		if killed != c.kill {
			t.Errorf("%s: killed %v, want %v", c.exe, killed, c.kill)
		}
		// Killed at exec, touch never ran its first instruction: no marker.
		if exists(marker(c.name)) == c.kill {
			t.Errorf("%s: marker exists %v, want %v", c.exe, exists(marker(c.name)), !c.kill)
		}
	}

	// The exec events say which were killed.
	deadline := time.Now().Add(5 * time.Second)
	want := map[string]bool{inTree: true, single: true, allowed: false, other: false}
	for {
		mu.Lock()
		got := map[string]bool{}
		n := 0
		for _, e := range execs {
			if _, ok := want[e.Process.Executable]; ok {
				got[e.Process.Executable] = e.Exec != nil && e.Exec.Killed
				n++
			}
		}
		mu.Unlock()
		// inTree ran twice: once before the set was filled.
		if n >= 5 || time.Now().After(deadline) {
			for exe, k := range want {
				if got[exe] != k {
					t.Errorf("exec event of %s: killed %v, want %v", exe, got[exe], k)
				}
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Emptied, the check is off again.
	if err := s.SetExecKill(KillSet{}); err != nil {
		t.Fatal(err)
	}
	if runMarker(t, cg, single, marker("after")) || !exists(marker("after")) {
		t.Error("killed after the kill set was emptied")
	}
}
