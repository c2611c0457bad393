package daemon

// Live tests of the built-in rules of 10-execution, 20-privilege, 30-network
// and 50-kernel: each runs the real behaviour in the test's cgroup under the
// shared agent and asserts the alert, and runs the look-alike that the rule
// must leave alone and asserts there is none.
//
// A negative case is checked after a positive one of the same kind was
// seen: the agent evaluates events in order, so by the time the later
// alert arrives the earlier event has been evaluated.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// execRulesTrigger does one thing the rules must see. TestMain calls it
// with VIGIL_TRIGGER set; it acts only on what it creates itself.
func execRulesTrigger(name string) error {
	switch name {
	case "exec-rules-noop":
		return nil
	case "exec-rules-listen":
		// Listen on VIGIL_TRIGGER_ADDR (loopback), print the port, close.
		l, err := net.Listen("tcp", os.Getenv("VIGIL_TRIGGER_ADDR"))
		if err != nil {
			return err
		}
		fmt.Print(l.Addr().(*net.TCPAddr).Port)
		return l.Close()
	case "exec-rules-ptrace":
		// Attach to a child of our own, wait for it to stop, detach, kill it.
		runtime.LockOSThread()
		cmd := exec.Command("/bin/sleep", "30")
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		if err := unix.PtraceAttach(cmd.Process.Pid); err != nil {
			return err
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(cmd.Process.Pid, &ws, unix.WALL, nil); err != nil {
			return err
		}
		fmt.Print(cmd.Process.Pid)
		return unix.PtraceDetach(cmd.Process.Pid)
	case "exec-rules-bpf-load":
		// The smallest program there is (return 0), loaded and closed:
		// never attached to anything.
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.SocketFilter,
			License:      "MIT",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			return err
		}
		return prog.Close()
	case "exec-rules-setresuid-root":
		// Run without root ids but with CAP_SETUID from a file capability:
		// become root on this thread, then exit.
		runtime.LockOSThread()
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0); errno != 0 {
			return fmt.Errorf("setresuid(0, 0, 0): %w", errno)
		}
		return nil
	case "exec-rules-seteuid-roundtrip":
		// As root: drop the effective uid to nobody and take it back, as
		// root daemons do around work for a user.
		runtime.LockOSThread()
		keep := ^uintptr(0) // -1: unchanged
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, 65534, keep); errno != 0 {
			return fmt.Errorf("seteuid(65534): %w", errno)
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, 0, keep); errno != 0 {
			return fmt.Errorf("seteuid(0): %w", errno)
		}
		return nil
	case "exec-rules-finit":
		// finit_module of a file that is no module: the kernel refuses it.
		f, err := os.Open(os.Getenv("VIGIL_TRIGGER_FILE"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.FinitModule(int(f.Fd()), "", 0); err == nil {
			return errors.New("finit_module of a non-module succeeded")
		}
		return nil
	}
	return fmt.Errorf("unknown trigger %q", name)
}

// selfTrigger is the test binary as a trigger program, in the cgroup.
func selfTrigger(t *testing.T, h *harness, name string, env ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.cg.Command(self)
	cmd.Env = append(append(os.Environ(), "VIGIL_TRIGGER="+name), env...)
	return cmd
}

// runSelf runs a trigger of the test binary and returns its pid and output;
// a failed trigger fails the test.
func runSelf(t *testing.T, h *harness, name string, env ...string) (int, string) {
	t.Helper()
	cmd := selfTrigger(t, h, name, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("trigger %s: %v: %s", name, err, stderrOf(err))
	}
	return cmd.Process.Pid, string(out)
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func alertOn(rule string, match func(*event.Event) bool) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindAlert && e.Alert.RuleID == rule && match(e)
	}
}

func byExecutable(exe string) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Process.Executable == exe }
}

// noAlert fails the test if rule alerted on what match accepts.
func noAlert(t *testing.T, h *harness, rule, what string, match func(*event.Event) bool) {
	t.Helper()
	if n := h.events.count(alertOn(rule, match)); n != 0 {
		t.Errorf("%s: %d %s alerts, want none", what, n, rule)
	}
}

func wantSeverity(t *testing.T, al event.Event, sev event.Severity) {
	t.Helper()
	if al.Alert.Severity != sev || al.Alert.Message == "" {
		t.Errorf("%s alert: severity %v, message %q; want %v and a message", al.Alert.RuleID, al.Alert.Severity, al.Alert.Message, sev)
	}
	t.Logf("%s: %s", al.Alert.RuleID, al.Alert.Message)
}

// worldReadableTempDir is a temp dir other users can enter (uid 65534 runs
// programs from it).
func worldReadableTempDir(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	return cmd
}

// ---- 10-execution ----

func TestRuleExecFromWritableDirSparesGoRun(t *testing.T) {
	testenv.SkipInGuest(t, "go run needs the Go toolchain, which the guest does not have")
	h := join(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644)
	cmd := h.cg.Command(goTool, "run", src)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run: %v: %s", err, out)
	}
	built := h.events.waitFor(t, "exec of the go run binary", func(e *event.Event) bool {
		return e.Kind == event.KindExec && strings.Contains(e.Process.Executable, "/go-build") && strings.HasSuffix(e.Process.Executable, "/exe/main")
	})
	// A program in a temp dir run by a shell still alerts (and marks the
	// point where the go run binary has been evaluated).
	prog := filepath.Join(t.TempDir(), "dropped")
	copyProgram(t, "/usr/bin/true", prog)
	h.cg.Run(t, "/bin/sh", "-c", prog+"; :")
	h.events.waitFor(t, "alert for the dropped program", alertOn("exec-from-writable-dir", byExecutable(prog)))
	if !strings.HasPrefix(built.Process.Executable, os.TempDir()) {
		t.Logf("go builds in %s, not a writable dir of the rule", built.Process.Executable)
	}
	noAlert(t, h, "exec-from-writable-dir", "go run binary "+built.Process.Executable, byExecutable(built.Process.Executable))
}

func TestRuleExecFromWritableDirSparesATestBinaryRunningItself(t *testing.T) {
	h := join(t)
	self, _ := os.Executable()
	if !strings.Contains(self, "/go-build") {
		t.Skipf("test binary %s is not in a go-build directory", self)
	}
	pid, _ := runSelf(t, h, "exec-rules-noop")
	h.events.waitFor(t, "exec of the test binary", isExec(pid, self))
	prog := filepath.Join(t.TempDir(), "dropped")
	copyProgram(t, "/usr/bin/true", prog)
	h.cg.Run(t, prog)
	h.events.waitFor(t, "alert for the dropped program", alertOn("exec-from-writable-dir", byExecutable(prog)))
	noAlert(t, h, "test binary running itself", "exec-from-writable-dir", func(e *event.Event) bool { return int(e.Process.PID) == pid })
}

func TestRuleExecFromMemfd(t *testing.T) {
	h := join(t)
	// execveat of a memfd (the trigger fexecve's /usr/bin/true from one).
	cmd := selfTrigger(t, h, "memfd-exec")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trigger: %v: %s", err, out)
	}
	pid := cmd.Process.Pid
	al := h.events.waitFor(t, "exec-from-memfd alert", isAlert("exec-from-memfd", pid))
	wantSeverity(t, al, event.SeverityError)
	if al.Alert.Trigger.Kernel == nil || al.Alert.Trigger.Kernel.Path != "/memfd:vigil-test" {
		t.Errorf("alert trigger %+v, want the execveat of /memfd:vigil-test", al.Alert.Trigger.Kernel)
	}
	// The exec that follows is the same execution: no second alert.
	h.events.waitFor(t, "the memfd program's exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && int(e.Process.PID) == pid && e.Exec != nil && e.Exec.FileUnlinked
	})
	h.events.waitFor(t, "the memfd program's exit", func(e *event.Event) bool { return e.Kind == event.KindExit && int(e.Process.PID) == pid })
	for _, rule := range []string{"exec-of-anonymous-file", "exec-of-deleted-file"} {
		noAlert(t, h, rule, "memfd execveat", func(e *event.Event) bool { return int(e.Process.PID) == pid })
	}
}

func TestRuleExecOfAnonymousFile(t *testing.T) {
	h := join(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the dropper is a python one-liner")
	}
	// The classic Python dropper: a memfd run by its /proc/self/fd path.
	dropper := `import os
fd = os.memfd_create("payload", 0)
os.write(fd, open("/usr/bin/true", "rb").read())
os.execv("/proc/self/fd/%d" % fd, ["payload", "from-proc-fd"])`
	pid, out := h.cg.Run(t, python, "-c", dropper)
	if out != "" {
		t.Fatalf("dropper: %s", out)
	}
	al := h.events.waitFor(t, "exec-of-anonymous-file alert", isAlert("exec-of-anonymous-file", pid))
	wantSeverity(t, al, event.SeverityError)
	if !strings.HasPrefix(al.Process.Filename, "/proc/self/fd/") {
		t.Errorf("alert on filename %q, want /proc/self/fd/N", al.Process.Filename)
	}
	for _, rule := range []string{"exec-from-memfd", "exec-of-deleted-file"} {
		noAlert(t, h, rule, "memfd execve", func(e *event.Event) bool { return int(e.Process.PID) == pid })
	}
}

func TestRuleExecFromMemfdSparesFexecveOfAFile(t *testing.T) {
	h := join(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	// fexecve of a file on disk (as systemd runs its executor): an
	// execveat of a descriptor, but not of a memfd.
	pid, out := h.cg.Run(t, python, "-c", `import os
os.execve(os.open("/usr/bin/true", os.O_RDONLY), ["true", "fexecve"], dict(os.environ))`)
	if out != "" {
		t.Fatalf("fexecve: %s", out)
	}
	h.events.waitFor(t, "the execveat of /usr/bin/true", func(e *event.Event) bool {
		return e.Kind == event.KindKernel && int(e.Process.PID) == pid && e.Kernel.Op == event.KernelExecveat && e.Kernel.Path == "/usr/bin/true"
	})
	marker := selfTrigger(t, h, "memfd-exec")
	if out, err := marker.CombinedOutput(); err != nil {
		t.Fatalf("trigger: %v: %s", err, out)
	}
	h.events.waitFor(t, "exec-from-memfd alert", isAlert("exec-from-memfd", marker.Process.Pid))
	for _, rule := range []string{"exec-from-memfd", "exec-of-anonymous-file", "exec-of-deleted-file"} {
		noAlert(t, h, rule, "fexecve of a file", func(e *event.Event) bool { return int(e.Process.PID) == pid })
	}
}

func TestRuleExecOfDeletedFile(t *testing.T) {
	h := join(t)
	dir := t.TempDir()
	kept, gone := filepath.Join(dir, "kept"), filepath.Join(dir, "gone")
	copyProgram(t, "/usr/bin/true", kept)
	copyProgram(t, "/usr/bin/true", gone)
	// Open the file, delete it, run it through the open descriptor.
	script := `exec 3< "$1"; rm "$1"; exec /proc/self/fd/3`
	keptPID, _ := h.cg.Run(t, "/bin/sh", "-c", `exec 3< "$1"; exec /proc/self/fd/3`, "sh", kept)
	gonePID, _ := h.cg.Run(t, "/bin/sh", "-c", script, "sh", gone)
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Fatalf("%s still exists", gone)
	}
	al := h.events.waitFor(t, "exec-of-deleted-file alert", isAlert("exec-of-deleted-file", gonePID))
	wantSeverity(t, al, event.SeverityWarning)
	h.events.waitFor(t, "exec of the kept program", isExec(keptPID, kept))
	noAlert(t, h, "exec-of-deleted-file", "program that still has its file", func(e *event.Event) bool { return int(e.Process.PID) == keptPID })
	noAlert(t, h, "exec-from-memfd", "deleted file", func(e *event.Event) bool { return int(e.Process.PID) == gonePID })
}

func TestRuleReverseShell(t *testing.T) {
	h := join(t)
	shell := func(stdin bool) int {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
		defer ours.Close()
		cmd := h.cg.Command("/bin/sh", "-c", "read x; echo got $x")
		cmd.Stdout = theirs
		if stdin {
			cmd.Stdin = theirs
		} else {
			cmd.Stdin = strings.NewReader("hi\n")
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		theirs.Close()
		if stdin {
			ours.Write([]byte("hi\n"))
		}
		buf := make([]byte, 7)
		ours.Read(buf)
		cmd.Wait()
		return cmd.Process.Pid
	}
	// A shell that only writes to a socket (a service logging to the
	// journal), then one reading from and writing to it (a reverse shell).
	logging := shell(false)
	reverse := shell(true)
	al := h.events.waitFor(t, "reverse-shell alert", isAlert("reverse-shell", reverse))
	wantSeverity(t, al, event.SeverityCritical)
	e := h.events.waitFor(t, "exec of the logging shell", isExec(logging, ""))
	if e.Exec == nil || !e.Exec.StdoutSocket || e.Exec.StdinSocket {
		t.Fatalf("logging shell: Exec = %+v, want stdout socket only", e.Exec)
	}
	noAlert(t, h, "reverse-shell", "shell writing to a socket", func(e *event.Event) bool { return int(e.Process.PID) == logging })
}

func TestRuleServerSpawns(t *testing.T) {
	h := join(t)
	// A copy of bash named nginx: its children have the parent name nginx,
	// as those of the real server's workers do.
	nginx := filepath.Join(worldReadableTempDir(t), "nginx")
	copyProgram(t, "/usr/bin/bash", nginx)
	run := func(script string) {
		// "; :" makes bash fork for the command rather than exec in place.
		cmd := asNobody(h.cg.Command(nginx, "-c", script+"; :"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s -c %q: %v: %s", nginx, script, err, out)
		}
	}
	run(nginx + " -c true")    // the server re-executing itself: no alert
	run("/usr/bin/id -u")      // a program: warning
	run("/bin/sh -c 'exit 0'") // a shell: error

	prog := h.events.waitFor(t, "server-spawns-program alert", alertOn("server-spawns-program", byExecutable("/usr/bin/id")))
	wantSeverity(t, prog, event.SeverityWarning)
	sh := h.events.waitFor(t, "server-spawns-shell alert", alertOn("server-spawns-shell", func(e *event.Event) bool {
		return e.Parent != nil && e.Parent.Name == "nginx"
	}))
	wantSeverity(t, sh, event.SeverityError)
	if sh.Process.Name != "sh" {
		t.Errorf("shell alert on %q (%s), want sh", sh.Process.Name, sh.Process.Executable)
	}
	h.events.waitFor(t, "nginx re-exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.Process.Executable == nginx && e.Parent != nil && e.Parent.Executable == nginx
	})
	noAlert(t, h, "server-spawns-program", "server re-executing itself", byExecutable(nginx))
	noAlert(t, h, "server-spawns-shell", "server re-executing itself", byExecutable(nginx))
	noAlert(t, h, "server-spawns-shell", "a program", byExecutable("/usr/bin/id"))
}

func TestRuleServerSpawnsSparesApacheRootMaster(t *testing.T) {
	h := join(t)
	// Apache's master runs as root and starts its piped loggers through
	// sh; request handlers run in workers as www-data.
	dir := worldReadableTempDir(t)
	apache := filepath.Join(dir, "apache2")
	copyProgram(t, "/usr/bin/bash", apache)
	master := h.cg.Command(apache, "-c", "/bin/sh -c 'exit 0'; /usr/bin/true; :")
	if out, err := master.CombinedOutput(); err != nil {
		t.Fatalf("master: %v: %s", err, out)
	}
	fromMaster := func(e *event.Event) bool { return e.Parent != nil && int(e.Parent.PID) == master.Process.Pid }
	h.events.waitFor(t, "the master's sh", func(e *event.Event) bool { return e.Kind == event.KindExec && fromMaster(e) && e.Process.Name == "sh" })
	h.events.waitFor(t, "the master's true", func(e *event.Event) bool {
		return e.Kind == event.KindExec && fromMaster(e) && e.Process.Name == "true"
	})
	// The same from a worker (not root) alerts.
	worker := asNobody(h.cg.Command(apache, "-c", "/bin/sh -c 'exit 0'; :"))
	if out, err := worker.CombinedOutput(); err != nil {
		t.Fatalf("worker: %v: %s", err, out)
	}
	h.events.waitFor(t, "server-spawns-shell alert for the worker", alertOn("server-spawns-shell", func(e *event.Event) bool {
		return e.Parent != nil && int(e.Parent.PID) == worker.Process.Pid
	}))
	noAlert(t, h, "server-spawns-shell", "apache master", fromMaster)
	noAlert(t, h, "server-spawns-program", "apache master", fromMaster)
}

// ---- 20-privilege ----

func TestRuleSetuidRootExec(t *testing.T) {
	h := join(t)
	suid := filepath.Join(worldReadableTempDir(t), "id-suid")
	copyProgram(t, "/usr/bin/id", suid)
	if err := unix.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	// The system's su first (excepted), then the setuid copy.
	su := asNobody(h.cg.Command("/usr/bin/su", "--version"))
	if out, err := su.CombinedOutput(); err != nil {
		t.Fatalf("su --version: %v: %s", err, out)
	}
	cp := asNobody(h.cg.Command(suid, "-u"))
	out, err := cp.Output()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("setuid copy of id printed %q (%v), want euid 0", out, err)
	}
	al := h.events.waitFor(t, "setuid-root-exec alert", isAlert("setuid-root-exec", cp.Process.Pid))
	wantSeverity(t, al, event.SeverityWarning)
	e := h.events.waitFor(t, "su exec", isExec(su.Process.Pid, "/usr/bin/su"))
	if e.Exec == nil || !e.Exec.SecureExec || e.Process.EUID != 0 {
		t.Fatalf("su exec: Exec %+v euid %d, want a secure exec to euid 0", e.Exec, e.Process.EUID)
	}
	noAlert(t, h, "setuid-root-exec", "su", func(e *event.Event) bool { return int(e.Process.PID) == su.Process.Pid })
}

// setFileCaps gives a file capabilities, permitted and effective, as
// setcap cap_...+ep does: security.capability holds a struct vfs_cap_data
// (revision 2): magic_etc, then permitted and inheritable, low and high words.
func setFileCaps(path string, caps uint64) error {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(b[4:], uint32(caps))
	binary.LittleEndian.PutUint32(b[12:], uint32(caps>>32))
	return unix.Setxattr(path, "security.capability", b, 0)
}

func TestRuleProcessGainedRoot(t *testing.T) {
	h := join(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Root dropping its effective uid and taking it back: no alert.
	rootPID, _ := runSelf(t, h, "exec-rules-seteuid-roundtrip")

	// A copy of the test binary with cap_setuid+ep, run as nobody: it has
	// no root id, and CAP_SETUID lets it become root.
	capped := filepath.Join(worldReadableTempDir(t), "setuid-cap")
	copyProgram(t, self, capped)
	if err := setFileCaps(capped, 1<<unix.CAP_SETUID); err != nil {
		t.Skipf("cannot set file capabilities here: %v", err)
	}
	cmd := asNobody(h.cg.Command(capped))
	cmd.Env = append(os.Environ(), "VIGIL_TRIGGER=exec-rules-setresuid-root")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("capped trigger: %v: %s", err, out)
	}
	al := h.events.waitFor(t, "process-gained-root alert", isAlert("process-gained-root", cmd.Process.Pid))
	wantSeverity(t, al, event.SeverityError)

	h.events.waitFor(t, "the root daemon's seteuid(0)", func(e *event.Event) bool {
		return e.Kind == event.KindCred && int(e.Process.PID) == rootPID && e.Cred.Old.EUID == 65534 && e.Cred.New.EUID == 0
	})
	noAlert(t, h, "process-gained-root", "root regaining its euid", func(e *event.Event) bool { return int(e.Process.PID) == rootPID })
}

// ---- 30-network ----

func TestRuleListenUnexpectedPort(t *testing.T) {
	h := join(t)
	listen := func(addr string) (pid, port int, ok bool) {
		cmd := selfTrigger(t, h, "exec-rules-listen", "VIGIL_TRIGGER_ADDR="+addr)
		out, err := cmd.Output()
		if err != nil {
			if strings.Contains(stderrOf(err), "address already in use") {
				return 0, 0, false
			}
			t.Fatalf("listen on %s: %v: %s", addr, err, stderrOf(err))
		}
		port, _ = strconv.Atoi(string(out))
		return cmd.Process.Pid, port, true
	}
	isListen := func(pid int) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindNet && e.Net.Op == event.NetListen && int(e.Process.PID) == pid
		}
	}
	// Negatives: a port the kernel picks, and a port of the allow list.
	ephemeral, ephemeralPort, _ := listen("127.0.0.1:0")
	allowed, _, allowedOK := listen("127.0.0.1:11211")
	// Positive: a fixed port outside the list and the ephemeral range.
	var pid, port int
	for range 20 {
		var ok bool
		if pid, port, ok = listen(fmt.Sprintf("127.0.0.1:%d", 28000+rand.IntN(4000))); ok {
			break
		}
	}
	if pid == 0 {
		t.Fatal("no free port to listen on")
	}
	al := h.events.waitFor(t, "listen alert", isAlert("listen-unexpected-port-loopback", pid))
	wantSeverity(t, al, event.SeverityNotice)
	if !strings.Contains(al.Alert.Message, strconv.Itoa(port)) {
		t.Errorf("message %q lacks the port %d", al.Alert.Message, port)
	}
	noAlert(t, h, "listen-unexpected-port", "loopback listener", func(*event.Event) bool { return true })

	e := h.events.waitFor(t, "listen on an ephemeral port", isListen(ephemeral))
	if int(e.Net.Source.Port()) != ephemeralPort {
		t.Errorf("listen event port %d, trigger got %d", e.Net.Source.Port(), ephemeralPort)
	}
	noAlert(t, h, "listen-unexpected-port-loopback", "kernel-picked port", func(e *event.Event) bool { return int(e.Process.PID) == ephemeral })
	if allowedOK {
		h.events.waitFor(t, "listen on an allowed port", isListen(allowed))
		noAlert(t, h, "listen-unexpected-port-loopback", "allowed port", func(e *event.Event) bool { return int(e.Process.PID) == allowed })
	} else {
		t.Log("port 11211 is in use: allowed-port case not run")
	}
}

// ---- 50-kernel ----

func TestRulePtraceAttach(t *testing.T) {
	h := join(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Log("no strace: debugger case not run")
	}
	stracePID := 0
	if strace != "" {
		cmd := h.cg.Command(strace, "-f", "-o", "/dev/null", "/bin/true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("strace: %v: %s", err, out)
		}
		stracePID = cmd.Process.Pid
	}
	pid, out := runSelf(t, h, "exec-rules-ptrace")
	al := h.events.waitFor(t, "ptrace-attach alert", isAlert("ptrace-attach", pid))
	wantSeverity(t, al, event.SeverityWarning)
	if target, _ := strconv.Atoi(out); target == 0 || int(al.Alert.Trigger.Kernel.TargetPID) != target {
		t.Errorf("alert target pid %d, trigger attached to %s", al.Alert.Trigger.Kernel.TargetPID, out)
	}
	if stracePID != 0 {
		dbg := h.events.waitFor(t, "ptrace-attach-debugger alert", isAlert("ptrace-attach-debugger", stracePID))
		wantSeverity(t, dbg, event.SeverityNotice)
		noAlert(t, h, "ptrace-attach", "strace", func(e *event.Event) bool { return int(e.Process.PID) == stracePID })
	}
	noAlert(t, h, "ptrace-attach-debugger", "the trigger", func(e *event.Event) bool { return int(e.Process.PID) == pid })
}

func TestRuleBPFProgramLoad(t *testing.T) {
	h := join(t)
	// Listing programs reads, loads nothing: no alert.
	bpftool, err := exec.LookPath("bpftool")
	showPID := 0
	if err == nil {
		cmd := h.cg.Command(bpftool, "prog", "show")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bpftool prog show: %v: %s", err, out)
		}
		showPID = cmd.Process.Pid
	} else {
		t.Log("no bpftool: listing case not run")
	}
	pid, _ := runSelf(t, h, "exec-rules-bpf-load")
	al := h.events.waitFor(t, "bpf-program-load alert", isAlert("bpf-program-load", pid))
	wantSeverity(t, al, event.SeverityWarning)
	if showPID != 0 {
		h.events.waitFor(t, "bpftool's bpf calls", func(e *event.Event) bool {
			return e.Kind == event.KindKernel && int(e.Process.PID) == showPID && e.Kernel.Op == event.KernelBPF
		})
		noAlert(t, h, "bpf-program-load", "bpftool prog show", func(e *event.Event) bool { return int(e.Process.PID) == showPID })
	}
}

func TestRuleKernelModuleLoadUntrusted(t *testing.T) {
	if _, err := os.Stat("/proc/modules"); err != nil {
		t.Skip("kernel without module support (no /proc/modules): finit_module cannot be traced; the rules have inline tests")
	}
	h := join(t)
	// A file that is no module, from a temp dir: the kernel refuses it,
	// and the attempt alerts.
	notModule := filepath.Join(t.TempDir(), "rk.ko")
	os.WriteFile(notModule, []byte("not an ELF module\n"), 0o644)
	pid, _ := runSelf(t, h, "exec-rules-finit", "VIGIL_TRIGGER_FILE="+notModule)
	al := h.events.waitFor(t, "kernel-module-load-untrusted alert", isAlert("kernel-module-load-untrusted", pid))
	wantSeverity(t, al, event.SeverityError)
	noAlert(t, h, "kernel-module-load", "module outside the tree", func(e *event.Event) bool { return int(e.Process.PID) == pid })
}
