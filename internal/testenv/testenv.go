// Package testenv gives kernel tests what they need from the machine: root,
// a cgroup of their own to run triggers in, and a way to tell their events
// from everyone else's.
//
// Privileged tests skip when not root, unless VIGIL_REQUIRE_PRIVILEGED=1 (as in
// CI), where a skip would hide that the kernel paths never ran: then they fail.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequirePrivileged skips t unless it runs as root, or fails it when
// VIGIL_REQUIRE_PRIVILEGED=1.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("VIGIL_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("this test needs root and VIGIL_REQUIRE_PRIVILEGED=1 forbids skipping it")
	}
	t.Skip("needs root to load BPF programs")
}

// CgroupV2Root is the cgroup v2 hierarchy on this machine.
func CgroupV2Root() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}

// Cgroup is a cgroup v2 directory a test made for its own processes.
type Cgroup struct {
	Path string
	ID   uint64 // the kernel's cgroup id: the directory's inode number
	fd   int
}

// NewCgroup makes a fresh cgroup; it is removed when the test ends, after any
// process the test left in it is killed (only processes the test started can
// be in it).
func NewCgroup(t testing.TB) *Cgroup {
	t.Helper()
	dir, err := os.MkdirTemp(CgroupV2Root(), "vigil-test-")
	if err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cg := &Cgroup{Path: dir, ID: st.Ino, fd: fd}
	t.Cleanup(func() { cg.remove(t) })
	return cg
}

func (cg *Cgroup) remove(t testing.TB) {
	syscall.Close(cg.fd)
	// cgroup.kill exists from 5.14; it kills only what is inside this cgroup.
	_ = os.WriteFile(filepath.Join(cg.Path, "cgroup.kill"), []byte("1"), 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(cg.Path)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove test cgroup %s: %v", cg.Path, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Command is exec.Command started straight into the cgroup.
func (cg *Cgroup) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	return cmd
}

// Run runs a command in the cgroup and returns its combined output; a
// non-zero exit is not an error here, since tests trigger failures on purpose.
func (cg *Cgroup) Run(t testing.TB, name string, args ...string) (pid int, out string) {
	t.Helper()
	cmd := cg.Command(name, args...)
	b, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %s %s: %v", name, strings.Join(args, " "), err)
	}
	return cmd.Process.Pid, string(b)
}

// String names the cgroup in test logs.
func (cg *Cgroup) String() string { return fmt.Sprintf("%s (id %d)", cg.Path, cg.ID) }
