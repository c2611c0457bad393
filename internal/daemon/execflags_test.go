package daemon

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
)

func TestExecOfASetuidBinaryIsSecureExec(t *testing.T) {
	h := join(t)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	suid := filepath.Join(dir, "id-suid")
	b, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(suid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(suid, 0o4755); err != nil { // os.Chmod wants fs.ModeSetuid
		t.Fatal(err)
	}

	// As nobody, run the setuid-root copy (gains euid 0) and the plain one.
	for _, exe := range []string{suid, "/usr/bin/id"} {
		cmd := h.cg.Command(exe, "-u")
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", exe, err)
		}
		e := h.events.waitFor(t, exe, isExec(cmd.Process.Pid, exe))
		secure := e.Exec != nil && e.Exec.SecureExec
		if want := exe == suid; secure != want {
			t.Errorf("%s printed euid %s: SecureExec = %v, want %v", exe, out, secure, want)
		}
		if exe == suid && (e.Process.UID != 65534 || e.Process.EUID != 0) {
			t.Errorf("setuid exec: uid %d euid %d, want 65534 and 0", e.Process.UID, e.Process.EUID)
		}
	}
}

func TestExecFromMemfdIsFileless(t *testing.T) {
	h := join(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.cg.Command(self)
	cmd.Env = append(os.Environ(), "VIGIL_TRIGGER=memfd-exec")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trigger: %v: %s", err, out)
	}
	e := h.events.waitFor(t, "memfd exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && int(e.Process.PID) == cmd.Process.Pid && len(e.Process.Args) == 2 && e.Process.Args[1] == "from-memfd"
	})
	if e.Exec == nil || !e.Exec.FileUnlinked || e.Process.Executable != "/memfd:vigil-test" {
		t.Errorf("exec from a memfd: Exec = %+v, executable %q, want FileUnlinked and /memfd:vigil-test", e.Exec, e.Process.Executable)
	}
	plain := h.events.waitFor(t, "test binary exec", isExec(cmd.Process.Pid, ""))
	if plain.Exec != nil && plain.Exec.FileUnlinked {
		t.Errorf("exec of the test binary from disk reported as unlinked")
	}
}

func TestStdioSocketsAreFlagged(t *testing.T) {
	h := join(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	defer ours.Close()

	// A shell whose stdin and stdout are a socket: the shape of a reverse shell.
	cmd := h.cg.Command("/bin/sh", "-c", "read x; echo got $x")
	cmd.Stdin, cmd.Stdout = theirs, theirs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	ours.Write([]byte("hi\n"))
	io.ReadAll(io.LimitReader(ours, 7))
	cmd.Wait()
	e := h.events.waitFor(t, "sh exec", isExec(cmd.Process.Pid, ""))
	if e.Exec == nil || !e.Exec.StdinSocket || !e.Exec.StdoutSocket || e.Exec.StderrSocket {
		t.Errorf("Exec = %+v, want stdin and stdout sockets, stderr not", e.Exec)
	}

}
