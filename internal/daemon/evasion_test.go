package daemon

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

// TestEvasionExecFromWritableDir runs a program staged in /tmp the ways an
// attacker disguises it, and checks what exec-from-writable-dir makes of
// each. The rule looks at the file the kernel executed, as the kernel
// reached it, so renaming, symlinks, relative paths, /proc/self/fd, execveat
// with a directory fd and a spoofed argv[0] or task name do not hide it.
// Two ways do, by design of a path rule, and are documented limits
// (docs/hardening.md): a hard link from a directory that is not writable
// (the kernel reached the file by that name), and the dynamic loader run as
// the program (the kernel executed ld.so; the payload is only mapped).
func TestEvasionExecFromWritableDir(t *testing.T) {
	h := join(t)
	const rule = "exec-from-writable-dir"
	stage, err := os.MkdirTemp("/var/tmp", "vigil-evasion-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stage) })
	// A directory no rule calls writable, on the same filesystem (for the
	// hard link): what the attacker needs root, or a careless admin, for.
	safe, err := os.MkdirTemp("/var/lib", "vigil-evasion-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(safe) })
	prog, _ := os.ReadFile("/usr/bin/true")
	payload := filepath.Join(stage, "payload")
	renamed := filepath.Join(stage, "sshd")
	for _, p := range []string{payload, renamed} {
		if err := os.WriteFile(p, prog, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(safe, "symlink")
	hard := filepath.Join(safe, "hardlink")
	if err := os.Symlink(payload, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(payload, hard); err != nil {
		t.Fatal(err)
	}
	// execveat(dirfd, "payload", ...), done by this test binary (TestMain's
	// triggers), which needs nothing the kernel-test guest lacks.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	execveat := fmt.Sprintf("VIGIL_TRIGGER=execveat-dirfd VIGIL_TRIGGER_DIR=%s VIGIL_TRIGGER_NAME=payload %s", stage, self)

	tests := []struct {
		name, cmd string
		filename  string // as the caller wrote it: finds the exec
		exe       string // what the agent reports
		alert     bool
	}{
		{"renamed", renamed, renamed, renamed, true},
		{"symlink elsewhere", link, link, payload, true},
		{"relative path", "cd " + stage + " && ./payload", "./payload", payload, true},
		{"dot-dot path", "cd " + safe + " && ../../tmp/../tmp/../../var/tmp/" + filepath.Base(stage) + "/payload", "../../tmp/../tmp/../../var/tmp/" + filepath.Base(stage) + "/payload", payload, true},
		{"/proc/self/fd", "exec 3<" + payload + "; /proc/self/fd/3", "/proc/self/fd/3", payload, true},
		// The kernel names it /dev/fd/N/payload.
		{"execveat with a directory fd", execveat, "/dev/fd/*/payload", payload, true},
		{"argv[0] spoofed", "exec -a /usr/sbin/sshd " + payload, payload, payload, true},
		{"hard link elsewhere (limit)", hard, hard, hard, false},
		{"ld.so as the program (limit)", "/lib64/ld-linux-x86-64.so.2 " + payload, "/lib64/ld-linux-x86-64.so.2",
			"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", false},
	}
	var limits []int
	for _, tt := range tests {
		cmd := tt.cmd
		if tt.name != "argv[0] spoofed" {
			cmd += "; exit 0" // fork, don't exec in place
		}
		if _, out := h.cg.Run(t, "bash", "-c", cmd); out != "" {
			t.Logf("%s: %s", tt.name, out) // the programs print nothing: an error, if it fails
		}
		e := h.events.waitFor(t, tt.name, func(e *event.Event) bool {
			ok, _ := path.Match(tt.filename, e.Process.Filename)
			return e.Kind == event.KindExec && (e.Process.Filename == tt.filename || ok)
		})
		if e.Process.Executable != tt.exe {
			t.Errorf("%s: executable %q, want %q", tt.name, e.Process.Executable, tt.exe)
		}
		pid := e.Process.PID
		if tt.alert {
			h.events.waitFor(t, rule+" on "+tt.name, alertOn(rule, func(a *event.Event) bool { return a.Process.PID == pid }))
		} else {
			limits = append(limits, int(pid))
		}
	}
	// The limits: the events were evaluated before the alert of a later
	// exec arrived.
	h.cg.Run(t, "bash", "-c", payload+" marker; exit 0")
	h.events.waitFor(t, "marker alert", alertOn(rule, func(a *event.Event) bool {
		return slices.Equal(a.Process.Args, []string{payload, "marker"})
	}))
	for i, pid := range limits {
		noAlert(t, h, rule, "limit "+fmt.Sprint(i), func(a *event.Event) bool { return int(a.Process.PID) == pid })
	}
	// What the loader case leaves for a rule to find: the payload in argv.
	ld := h.events.waitFor(t, "ld.so exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.Process.Filename == "/lib64/ld-linux-x86-64.so.2"
	})
	if !slices.Contains(ld.Process.Args, payload) {
		t.Errorf("ld.so exec args %q do not name the payload", ld.Process.Args)
	}
}
