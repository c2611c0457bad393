package lsmguard_test

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/lsmguard"
	"github.com/vigilsec/vigil/internal/testenv"
)

// lsmExpected: the kernel is known to run BPF LSM programs (the qemu tier
// says so for Debian's kernels): unavailable is then a failure, not a skip.
func lsmExpected() bool {
	return strings.Contains(","+os.Getenv("VIGIL_KT_EXPECT")+",", ","+kernelcap.BPFLSM+",")
}

// newGuard loads the guard, exempting the test process, or skips where the
// kernel has no BPF LSM (TestUnavailableIsClean covers that case).
func newGuard(t *testing.T) *lsmguard.Guard {
	t.Helper()
	testenv.RequirePrivileged(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	g, err := lsmguard.New(lsmguard.Config{ExemptPID: os.Getpid()})
	if errors.Is(err, lsmguard.ErrUnavailable) && !lsmExpected() {
		t.Skipf("this kernel has no BPF LSM: %v", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// TestUnavailableIsClean: New agrees with the kernel probe; where the BPF
// LSM does not work it fails with ErrUnavailable and says why, leaving
// nothing loaded.
func TestUnavailableIsClean(t *testing.T) {
	testenv.RequirePrivileged(t)
	rlimit.RemoveMemlock()
	probe := kernelcap.ProbeLSM(kernelcap.DefaultPaths.LSM)
	g, err := lsmguard.New(lsmguard.Config{})
	if probe == nil {
		if err != nil {
			t.Fatalf("the probe finds BPF LSM, New fails: %v", err)
		}
		g.Close()
		return
	}
	t.Logf("BPF LSM unavailable here: %v", err)
	if lsmExpected() {
		t.Errorf("BPF LSM expected on this kernel (VIGIL_KT_EXPECT), probe: %v", probe)
	}
	if !errors.Is(err, lsmguard.ErrUnavailable) {
		t.Fatalf("New: %v, want ErrUnavailable", err)
	}
	if g != nil {
		t.Fatal("New returned a guard with an error")
	}
}

func tempFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// nextDenial waits for a denial of op in cgroup.
func nextDenial(t *testing.T, g *lsmguard.Guard, op lsmguard.Op, cgroup uint64) lsmguard.Denial {
	t.Helper()
	g.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		d, err := g.ReadDenial()
		if err != nil {
			t.Fatalf("no %s denial in cgroup %d: %v", op, cgroup, err)
		}
		if d.Op == op && d.Cgroup == cgroup {
			return d
		}
		t.Logf("other denial: %+v", d)
	}
}

// TestDenyOpen: open(2) of a denied file fails with EPERM in the kernel,
// through a symlink too, only in the cgroup it was denied for, and works
// again once allowed.
func TestDenyOpen(t *testing.T) {
	g := newGuard(t)
	cg := testenv.NewCgroup(t)
	p := tempFile(t, "top secret\n")
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(p, link)

	if err := g.DenyOpen(p, cg.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{p, link} {
		if _, out := cg.Run(t, "cat", name); !strings.Contains(out, "Operation not permitted") || strings.Contains(out, "top secret") {
			t.Errorf("cat %s in the denied cgroup: %q, want EPERM", name, out)
		}
	}
	d := nextDenial(t, g, lsmguard.Open, cg.ID)
	if d.Comm != "cat" || d.Ino != ino(t, p) || d.TGID == 0 {
		t.Errorf("denial %+v: want cat, inode %d", d, ino(t, p))
	}
	// Elsewhere (a process the test starts outside that cgroup) it opens.
	if out, err := exec.Command("cat", p).CombinedOutput(); err != nil || string(out) != "top secret\n" {
		t.Errorf("cat outside the denied cgroup: %q, %v", out, err)
	}
	n, err := g.Counts()
	if err != nil || n[lsmguard.Open] < 2 {
		t.Errorf("open denials counted: %v, %v; want at least 2", n, err)
	}

	if err := g.Allow(p); err != nil {
		t.Fatal(err)
	}
	if _, out := cg.Run(t, "cat", p); out != "top secret\n" {
		t.Errorf("cat after Allow: %q", out)
	}
}

// TestDenyOpenEveryone: a deny for every process (cgroup 0) holds for
// processes in any cgroup, not for the exempt agent (this test process).
func TestDenyOpenEveryone(t *testing.T) {
	g := newGuard(t)
	cg := testenv.NewCgroup(t)
	p := tempFile(t, "x\n")
	if err := g.DenyOpen(p, 0); err != nil {
		t.Fatal(err)
	}
	if _, out := cg.Run(t, "cat", p); !strings.Contains(out, "Operation not permitted") {
		t.Errorf("cat in a cgroup: %q, want EPERM", out)
	}
	if out, _ := exec.Command("cat", p).CombinedOutput(); !strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("cat outside the cgroup: %q, want EPERM", out)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Errorf("the exempt process cannot open: %v", err)
	} else {
		f.Close()
	}
}

// TestDenyExec: execve(2) of a denied program fails with EPERM in the
// kernel; reading it still works; allowed again after Allow.
func TestDenyExec(t *testing.T) {
	g := newGuard(t)
	cg := testenv.NewCgroup(t)
	prog := filepath.Join(t.TempDir(), "prog")
	copyFile(t, "/bin/true", prog, 0o755)

	if err := g.DenyExec(prog, cg.ID); err != nil {
		t.Fatal(err)
	}
	err := cg.Command(prog).Run()
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("exec of the denied program: %v, want EPERM", err)
	}
	// From a shell too (the shell's execve is what is refused).
	if _, out := cg.Run(t, "/bin/sh", "-c", prog+"; echo status=$?"); !strings.Contains(out, "status=126") {
		t.Errorf("sh -c prog: %q, want exit 126 (cannot execute)", out)
	}
	d := nextDenial(t, g, lsmguard.Exec, cg.ID)
	if d.Ino != ino(t, prog) {
		t.Errorf("denial %+v: want inode %d", d, ino(t, prog))
	}
	if _, out := cg.Run(t, "cat", prog); len(out) == 0 || strings.Contains(out, "Operation not permitted") {
		t.Errorf("reading the exec-denied program: %q", out)
	}
	if err := g.Allow(prog); err != nil {
		t.Fatal(err)
	}
	if err := cg.Command(prog).Run(); err != nil {
		t.Errorf("exec after Allow: %v", err)
	}
}

// TestDenyConnectAndBind: IPv4 connect and bind from a denied cgroup fail
// with EPERM; unix sockets are left alone; allowed again after AllowCgroup.
func TestDenyConnectAndBind(t *testing.T) {
	g := newGuard(t)
	cg := testenv.NewCgroup(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	connect := func() string {
		_, out := cg.Run(t, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port+" && echo connected")
		return out
	}
	unixSock := filepath.Join(t.TempDir(), "s")
	bind := func() string {
		_, out := cg.Run(t, "python3", "-c", `import socket,sys
for fam, addr in ((socket.AF_INET, ("127.0.0.1", 0)), (socket.AF_UNIX, sys.argv[1])):
    try:
        socket.socket(fam, socket.SOCK_STREAM).bind(addr); print(fam.name, "bound")
    except OSError as e:
        print(fam.name, "errno", e.errno)`, unixSock)
		return out
	}

	if out := connect(); !strings.Contains(out, "connected") {
		t.Fatalf("connect before any deny: %q", out)
	}
	if err := g.DenyCgroup(cg.ID, lsmguard.Connect); err != nil {
		t.Fatal(err)
	}
	if out := connect(); strings.Contains(out, "connected") || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("connect from the denied cgroup: %q, want EPERM", out)
	}
	if d := nextDenial(t, g, lsmguard.Connect, cg.ID); d.Comm != "bash" || d.Family != unix.AF_INET {
		t.Errorf("denial %+v", d)
	}
	if out := bind(); !strings.Contains(out, "AF_INET bound") {
		t.Errorf("bind with only connect denied: %q", out)
	}
	os.Remove(unixSock)
	if err := g.DenyCgroup(cg.ID, lsmguard.Bind); err != nil {
		t.Fatal(err)
	}
	if out := bind(); !strings.Contains(out, "AF_INET errno 1") || !strings.Contains(out, "AF_UNIX bound") {
		t.Errorf("bind from the denied cgroup: %q, want AF_INET EPERM and AF_UNIX bound", out)
	}
	// The test process is in another cgroup: untouched.
	if c, err := net.Dial("tcp4", ln.Addr().String()); err != nil {
		t.Errorf("connect outside the denied cgroup: %v", err)
	} else {
		c.Close()
	}
	if err := g.AllowCgroup(cg.ID); err != nil {
		t.Fatal(err)
	}
	if out := connect(); !strings.Contains(out, "connected") {
		t.Errorf("connect after AllowCgroup: %q", out)
	}
}

// TestCloseDetaches: after Close the programs are gone from the kernel and
// a file denied before opens again.
func TestCloseDetaches(t *testing.T) {
	testenv.RequirePrivileged(t)
	rlimit.RemoveMemlock()
	g, err := lsmguard.New(lsmguard.Config{})
	if errors.Is(err, lsmguard.ErrUnavailable) && !lsmExpected() {
		t.Skipf("this kernel has no BPF LSM: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	cg := testenv.NewCgroup(t)
	p := tempFile(t, "x\n")
	if err := g.DenyOpen(p, cg.ID); err != nil {
		t.Fatal(err)
	}
	if _, out := cg.Run(t, "cat", p); !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("cat while denied: %q", out)
	}
	ids := g.ProgramIDs()
	if len(ids) != len(lsmguard.Hooks) {
		t.Fatalf("program ids %v", ids)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, out := cg.Run(t, "cat", p); out != "x\n" {
		t.Errorf("cat after Close: %q", out)
	}
	for _, id := range ids {
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			p.Close()
			t.Errorf("program %d still loaded after Close", id)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
