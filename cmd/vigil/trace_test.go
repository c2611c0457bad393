package main

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// limit is a wait's limit: d here, six times d in the kernel-test guest,
// where qemu's emulation makes loading an agent's programs take 10-30 s on
// a busy machine. A generous limit only costs time when the wait fails.
func limit(d time.Duration) time.Duration {
	if testenv.InGuest() {
		return 6 * d
	}
	return d
}

// startAgent runs `vigil run --config cfg` until the test ends (SIGINT, and
// an error if it then fails), and waits for it to fill its process cache.
func startAgent(t *testing.T, bin, cfg string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	stderr := &lockedBuffer{}
	agent := exec.Command(bin, "run", "--config", cfg)
	agent.Stderr = stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		agent.Process.Signal(syscall.SIGINT)
		if err := agent.Wait(); err != nil {
			t.Errorf("vigil run: %v\n%s", err, stderr.String())
		}
	})
	waitFor(t, "agent start", stderr, "process cache filled")
	return agent, stderr
}

func waitFor(t *testing.T, what string, buf *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(limit(20 * time.Second))
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s (%q) in:\n%s", what, want, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTraceCommand runs `vigil trace open --comm cat` as a person would:
// lines on stdout, SIGINT to stop, the counts on stderr, exit status 0.
func TestTraceCommand(t *testing.T) {
	testenv.RequirePrivileged(t)
	bin := vigil(t)
	var stdout, stderr lockedBuffer
	cmd := exec.Command(bin, "trace", "open", "--comm", "cat")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "start-up line", &stderr, "tracing open; filtered in the kernel: --comm")

	cat := exec.Command("cat", "/etc/hostname")
	if out, err := cat.CombinedOutput(); err != nil {
		t.Fatalf("cat: %v: %s", err, out)
	}
	waitFor(t, "cat's open", &stdout, " /etc/hostname\n")
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v\nstderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if !strings.HasPrefix(lines[0], "TIME ") {
		t.Errorf("no header: %q", lines[0])
	}
	pid := strconv.Itoa(cat.Process.Pid)
	var ofCat int
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if f[2] != "cat" {
			t.Errorf("line of comm %s: %q", f[2], l)
		}
		if f[1] == pid {
			ofCat++
		}
	}
	if ofCat == 0 {
		t.Errorf("no line of cat (pid %s):\n%s", pid, stdout.String())
	}
	for _, want := range []string{"events shown", "in the kernel, file records: sent"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestTraceUsageErrors: wrong flags are one line, before anything is loaded.
func TestTraceUsageErrors(t *testing.T) {
	bin := vigil(t)
	for _, args := range [][]string{
		{"trace", "open", "--port", "80"},
		{"trace", "exec", "--failed"},
		{"trace", "connect", "--port", "70000"},
		{"trace", "open", "-o", "yaml"},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Errorf("%v: exit %v, want a failure", args, err)
		}
		if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "vigil: ") {
			t.Errorf("%v: stderr is not one line starting with \"vigil: \": %q", args, msg)
		}
	}
}
