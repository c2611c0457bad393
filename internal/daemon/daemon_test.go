package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// collector is a sink that keeps the events of one cgroup.
type collector struct {
	cgroup uint64
	mu     sync.Mutex
	events []event.Event
	signal chan struct{}
}

func newCollector(cgroup uint64) *collector {
	return &collector{cgroup: cgroup, signal: make(chan struct{}, 1)}
}

func (c *collector) Write(e *event.Event) error {
	if e.Process.CgroupID != c.cgroup {
		return nil
	}
	c.mu.Lock()
	c.events = append(c.events, *e)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
	return nil
}
func (c *collector) Flush() error { return nil }
func (c *collector) Close() error { return nil }

// fanout is the shared agent's sink: it hands each event to the collector of
// the test whose cgroup it came from.
type fanout struct {
	mu   sync.Mutex
	byID map[uint64]*collector
}

func (f *fanout) Write(e *event.Event) error {
	f.mu.Lock()
	c := f.byID[e.Process.CgroupID]
	f.mu.Unlock()
	if c != nil {
		return c.Write(e)
	}
	return nil
}
func (f *fanout) Flush() error { return nil }
func (f *fanout) Close() error { return nil }

var sharedAgent struct {
	once   sync.Once
	agent  *Agent
	fan    *fanout
	dir    string
	output string
	err    error
	cancel context.CancelFunc
	done   chan error
}

// stopSharedAgent stops the shared agent, if a test started it, and removes
// its files. TestMain calls it after the tests.
func stopSharedAgent() {
	s := &sharedAgent
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// join gives the test a cgroup of its own on an agent shared by the tests of
// this package: loading every sensor takes seconds, so tests that need not
// stop the agent share one. It runs until the test binary exits.
func join(t *testing.T) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	s := &sharedAgent
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "vigil-daemon-test-"); s.err != nil {
			return
		}
		cfg := testConfig(s.dir)
		s.output = cfg.Output
		s.fan = &fanout{byID: map[uint64]*collector{}}
		if s.agent, s.err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), s.fan); s.err != nil {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan error, 1)
		go func() { s.done <- s.agent.Run(ctx) }()
		<-s.agent.Ready()
	})
	if s.err != nil {
		t.Fatalf("start shared agent: %v", s.err)
	}
	h := &harness{agent: s.agent, cg: testenv.NewCgroup(t), output: s.output, shared: true}
	h.events = newCollector(h.cg.ID)
	s.fan.mu.Lock()
	s.fan.byID[h.cg.ID] = h.events
	s.fan.mu.Unlock()
	t.Cleanup(func() {
		s.fan.mu.Lock()
		delete(s.fan.byID, h.cg.ID)
		s.fan.mu.Unlock()
	})
	return h
}

func testConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.Output = filepath.Join(dir, "events.json")
	cfg.StatusSocket = filepath.Join(dir, "status.sock")
	cfg.StatsInterval = 0
	cfg.Store.Path = filepath.Join(dir, "vigil.db")
	cfg.Web.Listen, cfg.Metrics.Listen = "", "" // tests that need them set their own
	cfg.Response = testResponse(dir)
	// The ransomware detector judges every process on the machine: tests'
	// agents alert but never kill (ransom_test.go scopes its own).
	cfg.Ransomware.Kill = false
	return cfg
}

// waitFor returns the first event that match accepts, waiting up to 10s.
func (c *collector) waitFor(t *testing.T, what string, match func(*event.Event) bool) event.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for i := range c.events {
			if match(&c.events[i]) {
				e := c.events[i]
				c.mu.Unlock()
				return e
			}
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-deadline:
			t.Fatalf("no %s event after 10s; got %d events in the cgroup", what, c.count(func(*event.Event) bool { return true }))
		}
	}
}

func (c *collector) count(match func(*event.Event) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for i := range c.events {
		if match(&c.events[i]) {
			n++
		}
	}
	return n
}

type harness struct {
	agent  *Agent
	cg     *testenv.Cgroup
	events *collector
	output string
	shared bool // the package's shared agent: never stopped by a test
	cancel context.CancelFunc
	done   chan error
}

// start runs a real agent of the test's own: sensors loaded and attached,
// reading the ring buffer, writing JSON to a file, and collecting this
// test's events. Tests that need not stop the agent use join instead.
func start(t *testing.T) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	cfg := testConfig(t.TempDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	h := &harness{cg: testenv.NewCgroup(t), output: cfg.Output, done: make(chan error, 1)}
	h.events = newCollector(h.cg.ID)
	a, err := New(cfg, log, h.events)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	<-a.Ready() // Run scans procfs before it reads
	return h
}

func (h *harness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("agent did not stop within 10s")
	}
}

func isExec(pid int, exe string) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindExec && (pid == 0 || int(e.Process.PID) == pid) && (exe == "" || e.Process.Executable == exe)
	}
}

func TestExecForkExitOfAShellCommand(t *testing.T) {
	h := join(t)
	// "; echo" keeps bash from exec'ing /bin/true in place: it forks first.
	bashPID, out := h.cg.Run(t, "bash", "-c", `/bin/true a "b c"; echo -n done`)
	if out != "done" {
		t.Fatalf("trigger printed %q", out)
	}

	bash := h.events.waitFor(t, "bash exec", isExec(bashPID, "/usr/bin/bash"))
	if diff := cmp.Diff([]string{"bash", "-c", `/bin/true a "b c"; echo -n done`}, bash.Process.Args); diff != "" {
		t.Errorf("bash args (-want +got):\n%s", diff)
	}
	true_ := h.events.waitFor(t, "true exec", isExec(0, "/usr/bin/true"))
	if diff := cmp.Diff([]string{"/bin/true", "a", "b c"}, true_.Process.Args); diff != "" {
		t.Errorf("process.args (-want +got):\n%s", diff)
	}
	if true_.Process.Filename != "/bin/true" {
		t.Errorf("filename = %q, want the caller's /bin/true", true_.Process.Filename)
	}
	if true_.Parent == nil || int(true_.Parent.PID) != bashPID || true_.Parent.Executable != "/usr/bin/bash" {
		t.Fatalf("parent = %+v, want bash pid %d", true_.Parent, bashPID)
	}
	if true_.Process.PPID != uint32(bashPID) || true_.Process.CgroupID != h.cg.ID {
		t.Errorf("ppid %d cgroup %d, want %d and %d", true_.Process.PPID, true_.Process.CgroupID, bashPID, h.cg.ID)
	}
	if n := len(true_.Ancestors); n == 0 || int(true_.Ancestors[0].PID) != os.Getpid() {
		t.Errorf("ancestors %+v: want the test process (pid %d) first", true_.Ancestors, os.Getpid())
	}
	wd, _ := os.Getwd()
	if true_.Process.WorkingDir != wd {
		t.Errorf("working dir = %q, want %q", true_.Process.WorkingDir, wd)
	}

	pid := int(true_.Process.PID)
	fork := h.events.waitFor(t, "fork", func(e *event.Event) bool { return e.Kind == event.KindFork && int(e.Process.PID) == pid })
	if int(fork.Process.PPID) != bashPID || fork.Process.Executable != "/usr/bin/bash" {
		t.Errorf("fork: ppid %d executable %q, want %d and the parent's /usr/bin/bash", fork.Process.PPID, fork.Process.Executable, bashPID)
	}
	exit := h.events.waitFor(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && int(e.Process.PID) == pid })
	if exit.Exit == nil || *exit.Exit != (event.ExitStatus{}) || exit.Process.Executable != "/usr/bin/true" {
		t.Errorf("exit %+v of %q, want code 0 of /usr/bin/true", exit.Exit, exit.Process.Executable)
	}

	// The same exec, as a JSON line in the output file.
	doc := findDoc(t, h.output, func(d map[string]any) bool {
		return get(d, "event.action") == "exec" && get(d, "process.pid") == float64(pid)
	})
	if diff := cmp.Diff([]any{"/bin/true", "a", "b c"}, get(doc, "process.args")); diff != "" {
		t.Errorf("JSON process.args (-want +got):\n%s", diff)
	}
	if got := get(doc, "process.parent.pid"); got != float64(bashPID) {
		t.Errorf("JSON process.parent.pid = %v, want %d", got, bashPID)
	}
	if get(doc, "process.executable") != "/usr/bin/true" || get(doc, "@timestamp") == nil || get(doc, "host.name") == nil {
		t.Errorf("JSON document lacks ECS fields: %v", doc)
	}
}

func TestExitCodesAndSignals(t *testing.T) {
	h := join(t)
	tests := []struct {
		script string
		want   event.ExitStatus
	}{
		{"exit 3", event.ExitStatus{Code: 3}},
		{"kill -KILL $$", event.ExitStatus{Code: 137, Signal: 9}},
		{"kill -TERM $$", event.ExitStatus{Code: 143, Signal: 15}},
	}
	for _, tt := range tests {
		pid, _ := h.cg.Run(t, "bash", "-c", tt.script)
		e := h.events.waitFor(t, "exit of "+tt.script, func(e *event.Event) bool { return e.Kind == event.KindExit && int(e.Process.PID) == pid })
		if diff := cmp.Diff(&tt.want, e.Exit); diff != "" {
			t.Errorf("%s: exit (-want +got):\n%s", tt.script, diff)
		}
	}
}

func TestExecutableIsTheResolvedPath(t *testing.T) {
	h := join(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "link-to-true")
	if err := os.Symlink("/usr/bin/true", link); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, cmd string
		exe       string // what the kernel executed
		filename  string // what the caller wrote
		script    string
	}{
		{"relative", "cd /usr/bin && ./true", "/usr/bin/true", "./true", ""},
		{"symlink", link, "/usr/bin/true", link, ""},
		{"dotdot", "cd " + dir + " && ../../../usr/bin/true", "/usr/bin/true", "../../../usr/bin/true", ""},
		{"script", "cd " + dir + " && ./script.sh", "/usr/bin/dash", "./script.sh", script},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd += "; exit 0" // fork, don't exec in place
			h.cg.Run(t, "bash", "-c", tt.cmd)
			e := h.events.waitFor(t, tt.name, func(e *event.Event) bool {
				return e.Kind == event.KindExec && e.Process.Filename == tt.filename
			})
			got := [3]string{e.Process.Executable, e.Process.Filename, e.Process.Script}
			if diff := cmp.Diff([3]string{tt.exe, tt.filename, tt.script}, got); diff != "" {
				t.Errorf("[executable filename script] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLongArgvIsBoundedAndSaysSo(t *testing.T) {
	h := join(t)
	args := []string{"-c", "exit 0", "vigil-long-argv"}
	for i := 0; i < 5000; i++ {
		args = append(args, "argument-"+strconv.Itoa(i))
	}
	args = append(args, "line\nbreak\x1b[0m") // hostile, and past the cut
	pid, _ := h.cg.Run(t, "bash", args...)
	e := h.events.waitFor(t, "long exec", isExec(pid, ""))
	p := e.Process
	if !p.ArgsTruncated || p.ArgsCount != len(args)+1 || len(p.Args) >= p.ArgsCount || len(p.Args) < 1000 {
		t.Fatalf("truncated %v, argc %d, carried %d: want truncated, argc %d, over 1000 carried", p.ArgsTruncated, p.ArgsCount, len(p.Args), len(args)+1)
	}
	if p.Args[3] != "vigil-long-argv" || p.Args[4] != "argument-0" {
		t.Errorf("args start %q", p.Args[:5])
	}

	// A newline in an argument never splits a JSON line.
	pid2, _ := h.cg.Run(t, "bash", "-c", "exit 0", "x", "line\nbreak\r\x1b[0m")
	h.events.waitFor(t, "hostile exec", isExec(pid2, ""))
	doc := findDoc(t, h.output, func(d map[string]any) bool {
		return get(d, "event.action") == "exec" && get(d, "process.pid") == float64(pid2)
	})
	if diff := cmp.Diff([]any{"bash", "-c", "exit 0", "x", "line\nbreak\r\x1b[0m"}, get(doc, "process.args")); diff != "" {
		t.Errorf("hostile args (-want +got):\n%s", diff)
	}
}

// findDoc returns the first document of the agent's JSON lines that match
// accepts, waiting up to 10s for it to be written. Every line must be one
// valid JSON document.
func findDoc(t *testing.T, path string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if d := scanDocs(t, path, match); d != nil {
			return d
		}
	}
	t.Fatalf("no matching document in %s", path)
	return nil
}

func scanDocs(t *testing.T, path string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		var d map[string]any
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			// The writer may be mid-line at the end of the file.
			if _, more := peek(sc); !more {
				return nil
			}
			t.Fatalf("%s line %d is not JSON: %v: %.200s", path, n, err, sc.Text())
		}
		if match(d) {
			return d
		}
	}
	return nil
}

func peek(sc *bufio.Scanner) (string, bool) {
	if sc.Scan() {
		return sc.Text(), true
	}
	return "", false
}

// get reads a dotted path from a decoded JSON document.
func get(d map[string]any, path string) any {
	var cur any = d
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// TestEverySensorReportsThroughTheAgent runs one trigger per kind through the
// whole pipeline: each event arrives enriched with the program that acted.
func TestEverySensorReportsThroughTheAgent(t *testing.T) {
	h := join(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	h.cg.Run(t, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; exec 3>&-", port))
	// Match the port: bash may make other connects first (nscd, when it looks up the user).
	conn := h.events.waitFor(t, "connect", func(e *event.Event) bool {
		return e.Kind == event.KindNet && e.Net.Op == event.NetConnect && e.Net.Destination.Port() == uint16(port)
	})
	if conn.Net.Destination.Port() != uint16(port) || conn.Process.Executable != "/usr/bin/bash" || conn.Parent == nil {
		t.Errorf("connect: destination %v, executable %q, parent %v", conn.Net.Destination, conn.Process.Executable, conn.Parent)
	}

	h.cg.Run(t, "unshare", "--uts", "true")
	k := h.events.waitFor(t, "unshare", func(e *event.Event) bool { return e.Kind == event.KindKernel && e.Kernel.Op == event.KernelUnshare })
	if k.Process.Executable != "/usr/bin/unshare" || !slices.Contains(k.Kernel.FlagNames, "CLONE_NEWUTS") {
		t.Errorf("unshare: executable %q, flags %v", k.Process.Executable, k.Kernel.FlagNames)
	}

	h.cg.Run(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "true")
	c := h.events.waitFor(t, "setuid", func(e *event.Event) bool {
		return e.Kind == event.KindCred && e.Cred.New.UID == 65534 && e.Cred.Old.UID == 0
	})
	if c.Process.Executable != "/usr/bin/setpriv" {
		t.Errorf("cred: executable %q", c.Process.Executable)
	}
}

// TestFileEventsFollowTheWatchLists: with the default filters, a change
// below /etc and a read of /etc/shadow are reported with the program that
// did them; a read of an ordinary file is not.
func TestFileEventsFollowTheWatchLists(t *testing.T) {
	h := join(t)
	name := fmt.Sprintf("/etc/vigil-test-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(name) })
	h.cg.Run(t, "bash", "-c", "echo x > "+name+"; cat /etc/hostname /etc/shadow >/dev/null; rm "+name)

	created := h.events.waitFor(t, "create", func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.File.Op == event.FileCreate && e.File.Path == name
	})
	if !created.File.Watched || created.Process.Executable != "/usr/bin/bash" {
		t.Errorf("create: watched %v by %q", created.File.Watched, created.Process.Executable)
	}
	shadow := h.events.waitFor(t, "read of /etc/shadow", func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.File.Path == "/etc/shadow"
	})
	if shadow.File.Write || shadow.Process.Executable != "/usr/bin/cat" || shadow.Parent == nil || shadow.Parent.Executable != "/usr/bin/bash" {
		t.Errorf("shadow read: write %v by %q (parent %+v)", shadow.File.Write, shadow.Process.Executable, shadow.Parent)
	}
	h.events.waitFor(t, "unlink", func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.File.Op == event.FileUnlink && e.File.Path == name
	})
	if n := h.events.count(func(e *event.Event) bool { return e.Kind == event.KindFile && e.File.Path == "/etc/hostname" }); n != 0 {
		t.Errorf("%d events for reading /etc/hostname, which no list watches", n)
	}
}
