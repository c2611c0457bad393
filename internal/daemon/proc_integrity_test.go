package daemon

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
)

// nonLeaderExec calls execve from a thread that is not the thread group's
// leader: the kernel kills the other threads, the leader among them, and
// the caller takes over the process's pid.
func nonLeaderExec() error {
	res := make(chan error)
	for i := 0; i < 16; i++ {
		go func() {
			runtime.LockOSThread() // never unlocked: this thread stays ours
			if unix.Gettid() == unix.Getpid() {
				res <- nil // the leader: try another thread
				select {}
			}
			res <- syscall.Exec("/bin/true", []string{"true", "nonleader"}, os.Environ())
		}()
		if err := <-res; err != nil {
			return err
		}
	}
	return errors.New("no goroutine ran on a thread other than the leader")
}

// TestProcessCacheNonLeaderExec: a thread that is not the leader calls exec.
// The agent must report one exec of the new program under the process's
// pid, with the right parent, no exit before it (the leader thread's death
// is not the process's), and one exit after it.
func TestProcessCacheNonLeaderExec(t *testing.T) {
	h := join(t)
	pid, _ := runSelf(t, h, "nonleader-exec")
	exec := h.events.waitFor(t, "exec from a non-leader thread", isExec(pid, "/usr/bin/true"))
	if !slices.Equal(exec.Process.Args, []string{"true", "nonleader"}) || exec.Process.TID != uint32(pid) {
		t.Errorf("exec: args %q tid %d, want [true nonleader] and tid %d (the exec'ing thread takes the pid)", exec.Process.Args, exec.Process.TID, pid)
	}
	if exec.Parent == nil || int(exec.Parent.PID) != os.Getpid() {
		t.Errorf("exec parent %+v, want the test process %d", exec.Parent, os.Getpid())
	}
	exit := h.events.waitFor(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && int(e.Process.PID) == pid })
	if exit.Process.Executable != "/usr/bin/true" || exit.Exit == nil || exit.Exit.Code != 0 {
		t.Errorf("exit: %q %+v, want /usr/bin/true exiting 0", exit.Process.Executable, exit.Exit)
	}
	if n := h.events.count(func(e *event.Event) bool { return e.Kind == event.KindExit && int(e.Process.PID) == pid }); n != 1 {
		t.Errorf("%d exits of pid %d, want 1", n, pid)
	}
	if n := h.events.count(isExec(pid, "")); n != 2 {
		t.Errorf("%d execs of pid %d, want 2 (the test binary, then true)", n, pid)
	}
}
