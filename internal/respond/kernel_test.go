package respond

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// With VIGIL_RESPOND_HELPER set, the test binary opens or execs the file
// named last and prints the outcome: the process the Denier judges.
func TestMain(m *testing.M) {
	if op := os.Getenv("VIGIL_RESPOND_HELPER"); op != "" {
		path := os.Args[len(os.Args)-1]
		var err error
		switch op {
		case "open":
			var f *os.File
			if f, err = os.Open(path); err == nil {
				f.Close()
			}
		case "exec":
			err = syscall.Exec(path, []string{path, "--version"}, nil)
		}
		switch {
		case err == nil:
			fmt.Print("ok")
		case errors.Is(err, syscall.EPERM):
			fmt.Print("EPERM")
		default:
			fmt.Print(err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, cg *testenv.Cgroup, op, path string) string {
	t.Helper()
	cmd := cg.Command(os.Args[0], path)
	cmd.Env = append(os.Environ(), "VIGIL_RESPOND_HELPER="+op)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s %s: %v: %s", op, path, err, out)
	}
	return strings.TrimSpace(string(out))
}

func startSleep(t *testing.T, cg *testenv.Cgroup) *exec.Cmd {
	t.Helper()
	cmd := cg.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func startBoot(t *testing.T, pid int) uint64 {
	t.Helper()
	ticks, err := startTicks("/proc", uint32(pid))
	if err != nil {
		t.Fatal(err)
	}
	return ticks * (1e9 / clockTicks)
}

func TestKillProcess(t *testing.T) {
	testenv.RequirePrivileged(t)
	cg := testenv.NewCgroup(t)
	cmd := startSleep(t, cg)
	start := startBoot(t, cmd.Process.Pid)
	// Another start time: the pid is taken to be another process; nothing is sent.
	err := KillProcess("/proc", uint32(cmd.Process.Pid), start+5e9)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("kill with a wrong start time: %v", err)
	}
	if err := unix.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("the process is gone after a refused kill: %v", err)
	}
	if err := KillProcess("/proc", uint32(cmd.Process.Pid), start); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("sleep ended with %v, want SIGKILL", err)
	}
	if err := KillProcess("/proc", uint32(cmd.Process.Pid), start); err == nil {
		t.Error("kill of an exited process succeeded")
	}
}

func TestFreeze(t *testing.T) {
	testenv.RequirePrivileged(t)
	cg := testenv.NewCgroup(t)
	cmd := startSleep(t, cg)
	var got []*event.Response
	r := New(Config{CgroupRoot: testenv.CgroupV2Root()}, nil, func(e *event.Event) { got = append(got, e.Response) })
	trig := &event.Event{Kind: event.KindExec, Process: event.Process{PID: uint32(cmd.Process.Pid), PPID: uint32(os.Getpid()), CgroupID: cg.ID}}
	r.Handle(event.NewAlert(event.Alert{RuleID: "freeze-it", Response: "freeze"}, trig))
	t.Cleanup(func() { os.WriteFile(filepath.Join(cg.Path, "cgroup.freeze"), []byte("0"), 0) })
	if len(got) != 1 || got[0].Outcome != event.ResponseDone || got[0].Target != cg.Path {
		t.Fatalf("responses %+v, want done on %s", got, cg.Path)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(cg.Path, "cgroup.events"))
		if strings.Contains(string(b), "frozen 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroup.events: %s, want frozen 1", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) == 0 || f[0] != "S" && f[0] != "D" {
		t.Logf("state of the frozen sleep: %s", f[0])
	}
	// The agent's own cgroup and the root are never frozen.
	for _, id := range []uint64{inodeOf(t, testenv.CgroupV2Root()), inodeOf(t, ownCgroup("/proc", testenv.CgroupV2Root()))} {
		got = nil
		trig.Process.CgroupID = id
		r.Handle(event.NewAlert(event.Alert{RuleID: "freeze-it", Response: "freeze"}, trig))
		if len(got) != 1 || got[0].Outcome != event.ResponseRefused {
			t.Errorf("freeze of cgroup %d: %+v, want refused", id, got)
		}
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// denier runs a Denier whose rules deny what deny says, recording its events.
type denierHarness struct {
	d      *Denier
	mu     sync.Mutex
	events []*event.Event
}

func (h *denierHarness) responses() []event.Response {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event.Response
	for _, e := range h.events {
		if e.Response != nil {
			out = append(out, *e.Response)
		}
	}
	return out
}

func startDenier(t *testing.T, cfg DenyConfig, decide Decider) *denierHarness {
	t.Helper()
	h := &denierHarness{}
	r := New(Config{}, nil, nil)
	d, err := NewDenier(cfg, func(pid uint32) (event.Process, bool) { return event.Process{PID: pid, PPID: 1}, true },
		r.ProcessSafe, func(e *event.Event) { h.mu.Lock(); h.events = append(h.events, e); h.mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	d.SetDecider(decide)
	h.d = d
	done := make(chan error, 1)
	go func() { done <- d.Run(t.Context()) }()
	t.Cleanup(func() {
		d.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// denyPaths denies opens of the paths, and execs of those given as "exec:PATH",
// as rules on file and on exec events would.
func denyPaths(paths ...string) Decider {
	return func(e *event.Event) (Decision, bool) {
		p := "exec:" + e.Process.Executable
		if e.File != nil {
			p = e.File.Path
		}
		for _, x := range paths {
			if p == x || strings.HasSuffix(x, "/") && strings.HasPrefix(p, x) {
				return Decision{RuleID: "deny-" + filepath.Base(x)}, true
			}
		}
		return Decision{}, false
	}
}

func writeFile(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte("secret\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(out, in)
	out.Close()
}

func TestDenyOpenAndExec(t *testing.T) {
	testenv.RequirePrivileged(t)
	cg := testenv.NewCgroup(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	public := filepath.Join(dir, "public")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "deep"), 0o755)
	deep := filepath.Join(tree, "deep", "file")
	later := filepath.Join(dir, "later") // created after the marks
	writeFile(t, secret, 0o644)
	writeFile(t, public, 0o644)
	writeFile(t, deep, 0o644)
	prog := filepath.Join(dir, "prog")
	copyFile(t, "/usr/bin/true", prog)

	h := startDenier(t, DenyConfig{}, denyPaths(secret, later, "exec:"+prog, tree+"/"))
	missing, err := h.d.SetMarks([]string{secret, later}, []string{prog}, []string{tree + "/"}, nil)
	if err != nil || len(missing) != 0 {
		t.Fatalf("SetMarks: %v, missing %v", err, missing)
	}
	writeFile(t, later, 0o644)

	for _, c := range []struct{ op, path, want string }{
		{"open", secret, "EPERM"},
		{"open", later, "EPERM"},
		{"open", deep, "EPERM"},
		{"open", public, "ok"},
		{"exec", prog, "EPERM"},
		{"open", prog, "ok"}, // only its exec is held
	} {
		if got := helper(t, cg, c.op, c.path); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.op, c.path, got, c.want)
		}
	}
	// Vigil itself is never held up.
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret\n" {
		t.Errorf("the agent's own read: %q, %v", b, err)
	}
	var denied []string
	for _, r := range h.responses() {
		if r.Outcome == event.ResponseDone && r.Mechanism == MechFanotify {
			denied = append(denied, r.Target)
		}
	}
	if want := []string{secret, later, deep, prog}; strings.Join(denied, " ") != strings.Join(want, " ") {
		t.Errorf("deny events for %v, want %v", denied, want)
	}
	if h.d.Denied.Load() != 4 {
		t.Errorf("Denied = %d, want 4", h.d.Denied.Load())
	}
}

func TestDenyDryRunAndTimeout(t *testing.T) {
	testenv.RequirePrivileged(t)
	cg := testenv.NewCgroup(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, 0o644)

	// Dry run: the open succeeds, the event says what would have happened.
	h := startDenier(t, DenyConfig{DryRun: true}, denyPaths(secret))
	if _, err := h.d.SetMarks([]string{secret}, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := helper(t, cg, "open", secret); got != "ok" {
		t.Errorf("dry run: open %s", got)
	}
	if rs := h.responses(); len(rs) != 1 || rs[0].Outcome != event.ResponseDryRun || rs[0].RuleID != "deny-secret" {
		t.Errorf("dry run: responses %+v", rs)
	}
	h.d.Close()

	// Rules that do not decide in time: refused when failing closed, allowed when failing open.
	slow := func(e *event.Event) (Decision, bool) { time.Sleep(300 * time.Millisecond); return Decision{}, false }
	for _, failOpen := range []bool{false, true} {
		h := startDenier(t, DenyConfig{Timeout: 20 * time.Millisecond, FailOpen: failOpen}, slow)
		if _, err := h.d.SetMarks([]string{secret}, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "EPERM", true: "ok"}[failOpen]
		if got := helper(t, cg, "open", secret); got != want {
			t.Errorf("fail_open %v: open %s, want %s", failOpen, got, want)
		}
		rs := h.responses()
		if len(rs) == 0 || !strings.Contains(rs[0].Reason, "did not decide within 20ms") {
			t.Errorf("fail_open %v: responses %+v", failOpen, rs)
		}
		if h.d.TimedOut.Load() == 0 {
			t.Errorf("fail_open %v: no timeout counted", failOpen)
		}
		h.d.Close()
	}
}
