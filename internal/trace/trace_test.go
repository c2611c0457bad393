package trace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// syncBuffer is the trace's output, read by the test while the trace writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a trace running in the background, as `vigil trace` runs it.
type running struct {
	tr     *Tracer
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	stats  Stats
	err    error
}

// start loads a trace and runs it until the test ends or stop is called.
func start(t *testing.T, o Options) *running {
	t.Helper()
	testenv.RequirePrivileged(t)
	r := &running{out: &syncBuffer{}, done: make(chan struct{})}
	tr, err := New(o, r.out)
	if err != nil {
		t.Fatal(err)
	}
	r.tr = tr
	t.Logf("%s", tr.Describe())
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.stats, r.err = tr.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the trace and returns its lines, the header left out.
func (r *running) stop(t *testing.T) []string {
	t.Helper()
	r.cancel()
	r.wait(t)
	return r.lines()
}

// wait waits for Run to return, by itself or after stop.
func (r *running) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the trace did not stop")
	}
	if r.err != nil {
		t.Errorf("run: %v", r.err)
	}
}

func (r *running) lines() []string {
	s := strings.TrimSuffix(r.out.String(), "\n")
	if s == "" {
		return nil
	}
	ls := strings.Split(s, "\n")
	if strings.HasPrefix(ls[0], "TIME ") {
		ls = ls[1:]
	}
	return ls
}

// waitLine polls until a line matches.
func (r *running) waitLine(t *testing.T, what string, match func(f []string, line string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, l := range r.lines() {
			if f := strings.Fields(l); len(f) > 4 && match(f, l) {
				return f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line for %s in:\n%s", what, r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle leaves the trace a few polls to write what the kernel sent so far.
func settle() { time.Sleep(300 * time.Millisecond) }

// Table columns: time, pid, comm, cgroup, then the kind's.
const (
	colPID    = 1
	colComm   = 2
	colCgroup = 3
)

func run(t *testing.T, cg *testenv.Cgroup, name string, args ...string) int {
	t.Helper()
	cmd := cg.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return cmd.Process.Pid
}

var (
	buildOnce sync.Once
	trigger   string
	buildErr  error
)

// triggerBin builds testdata/trigger once per test binary.
func triggerBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-trace-trigger-")
		if err != nil {
			buildErr = err
			return
		}
		trigger = filepath.Join(dir, "trigger")
		cmd := exec.Command("go", "build", "-o", trigger, "./testdata/trigger")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build trigger: %v", buildErr)
	}
	return trigger
}

func TestMain(m *testing.M) {
	code := m.Run()
	if trigger != "" {
		os.RemoveAll(filepath.Dir(trigger))
	}
	os.Exit(code)
}

func cgID(cg *testenv.Cgroup) string { return strconv.FormatUint(cg.ID, 10) }

// bpfFDs counts this process's descriptors of BPF objects and perf events
// (tracepoint attachments).
func bpfFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if strings.HasPrefix(l, "anon_inode:bpf") || l == "anon_inode:[perf_event]" {
			n++
		}
	}
	return n
}

func TestExec(t *testing.T) {
	cg := testenv.NewCgroup(t)
	r := start(t, Options{Kind: Exec, Cgroups: []string{cg.Path}})
	bash := run(t, cg, "bash", "-c", "/bin/true x")
	f := r.waitLine(t, "exec of /bin/true", func(f []string, _ string) bool { return f[colComm] == "true" })
	// pid comm cgroup ppid uid executable args. bash runs a lone command in
	// its own process (exec in place), or else forks for it.
	inPlace := f[1] == strconv.Itoa(bash) && f[4] == strconv.Itoa(os.Getpid())
	forked := f[4] == strconv.Itoa(bash)
	if got := strings.Join(f[2:], " "); got != fmt.Sprintf("true %d %s 0 /usr/bin/true /bin/true x", cg.ID, f[4]) || !inPlace && !forked {
		t.Errorf("exec line %q, want true run by bash (pid %d) in cgroup %d: uid 0 /usr/bin/true /bin/true x", f, bash, cg.ID)
	}
	for _, l := range r.stop(t) {
		if f := strings.Fields(l); f[colCgroup] != cgID(cg) {
			t.Errorf("line from another cgroup: %q", l)
		}
	}
}

func TestOpen(t *testing.T) {
	cg := testenv.NewCgroup(t)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x\n"), 0o644)
	r := start(t, Options{Kind: Open, Cgroups: []string{cgID(cg)}})
	pid := run(t, cg, "cat", file)
	f := r.waitLine(t, "open of "+file, func(f []string, _ string) bool { return f[len(f)-1] == file })
	if f[colPID] != strconv.Itoa(pid) || f[colComm] != "cat" || f[4] != "open" || f[6] != "RDONLY" {
		t.Errorf("open line %q, want pid %d cat open <fd> RDONLY %s", f, pid, file)
	}
	if fd, err := strconv.Atoi(f[5]); err != nil || fd < 0 {
		t.Errorf("open line %q: return %q is no fd", f, f[5])
	}
}

// TestOpenComm is the acceptance check: `vigil trace open --comm cat`
// while cat and head read /etc/hostname shows the opens of cat, not head's.
func TestOpenComm(t *testing.T) {
	cg := testenv.NewCgroup(t)
	r := start(t, Options{Kind: Open, Comms: []string{"cat"}})
	var wg sync.WaitGroup
	var headPID int
	wg.Go(func() {
		cmd := cg.Command("head", "/etc/hostname")
		if err := cmd.Run(); err == nil {
			headPID = cmd.Process.Pid
		}
	})
	catPID := run(t, cg, "cat", "/etc/hostname")
	wg.Wait()
	r.waitLine(t, "cat opening /etc/hostname", func(f []string, _ string) bool {
		return f[colPID] == strconv.Itoa(catPID) && f[len(f)-1] == "/etc/hostname"
	})
	settle()
	lines := r.stop(t)
	if headPID == 0 {
		t.Fatal("head did not run")
	}
	ofCat := 0
	for _, l := range lines {
		f := strings.Fields(l)
		if f[colComm] != "cat" {
			t.Errorf("line from comm %s: %q", f[colComm], l)
		}
		if f[colPID] == strconv.Itoa(headPID) {
			t.Errorf("head's open shown: %q", l)
		}
		if f[colPID] == strconv.Itoa(catPID) {
			ofCat++
		}
	}
	// The loader's opens (ld.so.cache, libc) come first.
	if ofCat < 2 {
		t.Errorf("%d opens of cat shown, want the loader's and /etc/hostname:\n%s", ofCat, strings.Join(lines, "\n"))
	}
}

// TestCommFilteredInKernel: with --comm, other processes' opens are counted
// as filtered in the kernel, not sent; the named process's are sent.
func TestCommFilteredInKernel(t *testing.T) {
	cg := testenv.NewCgroup(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	const name = "vigil-trace-me" // a comm no one else runs
	bin := filepath.Join(dir, name)
	catBytes, err := os.ReadFile("/bin/cat")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, catBytes, 0o755); err != nil {
		t.Fatal(err)
	}
	r := start(t, Options{Kind: Open, Comms: []string{name}})
	before := r.tr.Stats().Kernel["file"]
	for range 20 {
		run(t, cg, "head", "-c1", "/etc/hostname")
	}
	settle()
	mid := r.tr.Stats().Kernel["file"]
	if mid.Sent != before.Sent {
		t.Errorf("sent grew from %d to %d with only head running", before.Sent, mid.Sent)
	}
	// 20 heads open at least ld.so.cache, libc and /etc/hostname each.
	if mid.Filtered-before.Filtered < 60 {
		t.Errorf("filtered in the kernel grew by %d, want at least 60", mid.Filtered-before.Filtered)
	}
	pid := run(t, cg, bin, "/etc/hostname")
	r.waitLine(t, name+" opening /etc/hostname", func(f []string, _ string) bool {
		return f[colPID] == strconv.Itoa(pid) && f[len(f)-1] == "/etc/hostname"
	})
	if after := r.tr.Stats().Kernel["file"]; after.Sent <= mid.Sent {
		t.Errorf("sent %d -> %d: the named process's opens were not sent", mid.Sent, after.Sent)
	}
}

func TestPID(t *testing.T) {
	cg := testenv.NewCgroup(t)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x\n"), 0o644)
	// A shell that waits for a line, then becomes cat: same pid.
	cmd := cg.Command("bash", "-c", "read x; exec cat "+file)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	r := start(t, Options{Kind: Open, PIDs: []uint32{uint32(pid)}})
	other := run(t, cg, "cat", file)
	stdin.Write([]byte("go\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	r.waitLine(t, "the traced pid opening "+file, func(f []string, _ string) bool {
		return f[colPID] == strconv.Itoa(pid) && f[len(f)-1] == file
	})
	settle()
	for _, l := range r.stop(t) {
		if f := strings.Fields(l); f[colPID] != strconv.Itoa(pid) {
			t.Errorf("line of pid %s (the other cat was %d): %q", f[colPID], other, l)
		}
	}
}

func TestCount(t *testing.T) {
	cg := testenv.NewCgroup(t)
	before := bpfFDs(t)
	r := start(t, Options{Kind: Open, Cgroups: []string{cg.Path}, Count: 2})
	run(t, cg, "cat", "/etc/hostname") // at least three opens
	r.wait(t)                          // stops by itself
	if after := bpfFDs(t); after != before {
		t.Errorf("%d BPF and perf descriptors open after the trace stopped, %d before: not everything was detached", after, before)
	}
	if lines := r.lines(); len(lines) != 2 || r.stats.Shown != 2 {
		t.Errorf("shown %d, lines:\n%s\nwant 2", r.stats.Shown, strings.Join(lines, "\n"))
	}
}

func TestDuration(t *testing.T) {
	cg := testenv.NewCgroup(t)
	begin := time.Now()
	r := start(t, Options{Kind: Open, Cgroups: []string{cg.Path}, Duration: time.Second})
	r.wait(t) // stops by itself
	if took := time.Since(begin); took < time.Second {
		t.Errorf("stopped after %v, before the duration", took)
	}
	if r.stats.Kernel["file"].Sent != 0 {
		t.Errorf("an empty cgroup's trace sent records: %+v", r.stats.Kernel["file"])
	}
}

func TestJSON(t *testing.T) {
	cg := testenv.NewCgroup(t)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x\n"), 0o644)
	r := start(t, Options{Kind: Open, Cgroups: []string{cg.Path}, JSON: true})
	pid := run(t, cg, "cat", file)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.out.String(), `"path":"`+file+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no document for %s:\n%s", file, r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	settle()
	r.stop(t)
	type doc struct {
		Event struct {
			Action, Dataset, Outcome string
		}
		Process struct {
			PID        int
			Name       string
			Executable string
			Parent     *struct{ PID int }
		}
		File *struct{ Path string }
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSuffix(r.out.String(), "\n"), "\n") {
		var d doc
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("not a JSON document: %v: %q", err, l)
		}
		if d.Event.Dataset != "vigil.file" || d.File == nil {
			t.Errorf("not an open: %q", l)
			continue
		}
		if d.File.Path == file {
			found = true
			if d.Process.PID != pid || d.Process.Name != "cat" || d.Process.Executable != "/usr/bin/cat" ||
				d.Process.Parent == nil || d.Event.Action != "open" || d.Event.Outcome != "success" {
				t.Errorf("document %q: want cat's open with its executable and parent", l)
			}
		}
	}
	if !found {
		t.Error("no document for the file")
	}
}

// TestHostileNames: a file name with a newline, an escape sequence, quotes
// and spaces stays on one line of the table, escaped.
func TestHostileNames(t *testing.T) {
	cg := testenv.NewCgroup(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a\nb\x1b[31mred\x1b[0m \"q\" \x7f\xff")
	if err := os.WriteFile(file, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, Options{Kind: Open, Cgroups: []string{cg.Path}})
	run(t, cg, "cat", file)
	quoted := strconv.Quote(file)
	r.waitLine(t, "the hostile open", func(_ []string, l string) bool { return strings.HasSuffix(l, " "+quoted) })
	out := r.out.String()
	if strings.ContainsAny(out, "\x1b\x7f") || strings.Contains(out, "\xff") {
		t.Errorf("raw control bytes in the table:\n%q", out)
	}
	for _, l := range r.stop(t) {
		if _, err := time.Parse(timeLayout, strings.Fields(l)[0]); err != nil {
			t.Errorf("line does not start with a time: %q", l)
		}
	}
}

func TestFailed(t *testing.T) {
	cg := testenv.NewCgroup(t)
	dir := t.TempDir()
	r := start(t, Options{Kind: Open, Cgroups: []string{cg.Path}, Failed: true})
	cmd := cg.Command("cat", filepath.Join(dir, "missing"), "/etc/hostname")
	cmd.Run()
	r.waitLine(t, "the failed open", func(f []string, _ string) bool {
		return f[len(f)-1] == filepath.Join(dir, "missing") && f[5] == "ENOENT"
	})
	settle()
	for _, l := range r.stop(t) {
		if f := strings.Fields(l); !strings.HasPrefix(f[5], "E") {
			t.Errorf("a successful open shown with --failed: %q", l)
		}
	}
}

func TestFile(t *testing.T) {
	cg := testenv.NewCgroup(t)
	dir, elsewhere := t.TempDir(), t.TempDir()
	r := start(t, Options{Kind: File, Paths: []string{dir}})
	if !strings.Contains(r.tr.Describe(), "filtered in the kernel: --path") {
		t.Errorf("an existing directory's writes are not filtered in the kernel: %s", r.tr.Describe())
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	run(t, cg, "touch", filepath.Join(elsewhere, "x"))
	run(t, cg, "bash", "-c", fmt.Sprintf("touch %s && mv %s %s && rm %s", a, a, b, b))
	r.waitLine(t, "unlink", func(f []string, _ string) bool { return f[4] == "unlink" })
	settle()
	var got []string
	for _, l := range r.stop(t) {
		f := strings.Fields(l)
		got = append(got, strings.Join(append([]string{f[colComm]}, f[4:]...), " "))
	}
	want := []string{
		"touch create 3 " + a,
		"mv rename 0 " + a + " -> " + b,
		"rm unlink 0 " + b,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("file lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCred(t *testing.T) {
	cg := testenv.NewCgroup(t)
	r := start(t, Options{Kind: Cred, Cgroups: []string{cg.Path}})
	pid := run(t, cg, "setpriv", "--reuid=65534", "true")
	f := r.waitLine(t, "the uid change", func(f []string, l string) bool {
		return f[colComm] == "setpriv" && strings.Contains(l, " uid 0->65534")
	})
	if f[colPID] != strconv.Itoa(pid) || !strings.HasPrefix(f[4], "setre") && !strings.HasPrefix(f[4], "setres") || f[5] != "0" {
		t.Errorf("cred line %q, want setpriv (pid %d) setreuid/setresuid returning 0", f, pid)
	}
}

func TestSignal(t *testing.T) {
	cg := testenv.NewCgroup(t)
	sleeper := cg.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	target := sleeper.Process.Pid
	r := start(t, Options{Kind: Signal, Cgroups: []string{cg.Path}})
	pid := run(t, cg, "bash", "-c", fmt.Sprintf("kill -0 %d", target))
	f := r.waitLine(t, "kill -0", func(f []string, _ string) bool { return f[colPID] == strconv.Itoa(pid) })
	if got := strings.Join(f[colComm:], " "); got != fmt.Sprintf("bash %d 0 %d SIG0", cg.ID, target) {
		t.Errorf("signal line %q, want bash, return 0, target %d, SIG0", f, target)
	}
}

func TestConnect(t *testing.T) {
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
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	r := start(t, Options{Kind: Connect, Cgroups: []string{cg.Path}, Ports: []uint16{uint16(port)}})
	pid := run(t, cg, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port))
	f := r.waitLine(t, "the connect", func(f []string, _ string) bool { return f[colPID] == strconv.Itoa(pid) })
	// op ret proto local remote
	if f[4] != "connect" || f[5] != "0" || f[6] != "tcp" || !strings.HasPrefix(f[7], "127.0.0.1:") ||
		f[8] != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("connect line %q, want connect 0 tcp 127.0.0.1:* 127.0.0.1:%d", f, port)
	}
	// Another port is left out by --port.
	run(t, cg, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1 || true")
	settle()
	for _, l := range r.stop(t) {
		if !strings.HasSuffix(l, fmt.Sprintf(" 127.0.0.1:%d", port)) {
			t.Errorf("line for another port: %q", l)
		}
	}
}

// TestBindAccept: a server in the test's cgroup binds, listens and accepts.
func TestBindAccept(t *testing.T) {
	for _, k := range []Kind{Bind, Accept} {
		t.Run(string(k), func(t *testing.T) {
			cg := testenv.NewCgroup(t)
			r := start(t, Options{Kind: k, Cgroups: []string{cg.Path}})
			cmd := cg.Command(triggerBin(t), "serve")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("trigger serve: %v", err)
			}
			var port, afd int
			fmt.Sscanf(string(out), "port=%d afd=%d", &port, &afd)
			pid := strconv.Itoa(cmd.Process.Pid)
			mine := func(f []string, _ string) bool { return f[colPID] == pid }
			if k == Bind {
				r.waitLine(t, "listen", func(f []string, l string) bool { return mine(f, l) && f[4] == "listen" })
				settle()
				var got []string
				for _, l := range r.stop(t) {
					got = append(got, strings.Join(strings.Fields(l)[4:], " "))
				}
				want := []string{
					fmt.Sprintf("bind 0 tcp 127.0.0.1:%d -", port), // the address the kernel gave
					fmt.Sprintf("listen 0 tcp 127.0.0.1:%d -", port),
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("bind lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				return
			}
			f := r.waitLine(t, "accept", mine)
			if f[4] != "accept" || f[5] != strconv.Itoa(afd) || f[6] != "tcp" || f[7] != fmt.Sprintf("127.0.0.1:%d", port) ||
				!strings.HasPrefix(f[8], "127.0.0.1:") {
				t.Errorf("accept line %q, want accept %d tcp 127.0.0.1:%d 127.0.0.1:*", f, afd, port)
			}
		})
	}
}

func TestDNS(t *testing.T) {
	cg := testenv.NewCgroup(t)
	r := start(t, Options{Kind: DNS, Cgroups: []string{cg.Path}})
	cmd := cg.Command(triggerBin(t), "dns")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trigger dns: %v: %s", err, out)
	}
	f := r.waitLine(t, "the query", func(f []string, _ string) bool { return f[colPID] == strconv.Itoa(cmd.Process.Pid) })
	// sendto returns the bytes sent: the 41 of the query.
	if got := strings.Join(f[4:], " "); got != "41 127.0.0.1:53 A vigil-trace.example.com" {
		t.Errorf("dns line %q, want the A query for vigil-trace.example.com to 127.0.0.1:53", f)
	}
}

// TestContainer: --container finds a container's cgroup by the name its
// runtime gives it (here docker's systemd-driver name, made by the test) and
// shows only what runs in it.
func TestContainer(t *testing.T) {
	cg := testenv.NewCgroup(t)
	id := strings.Repeat("ab12", 16)
	dir := filepath.Join(cg.Path, "docker-"+id+".scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	if _, err := resolveContainers(testenv.CgroupV2Root(), []string{"ffff0000"}); err == nil {
		t.Error("an unknown container id resolved")
	}
	r := start(t, Options{Kind: Exec, Containers: []string{id[:12]}})
	outside := run(t, cg, "/bin/true", "outside")
	in := exec.Command("/bin/true", "inside")
	in.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := in.Run(); err != nil {
		t.Fatal(err)
	}
	r.waitLine(t, "exec inside the container", func(f []string, _ string) bool { return f[colPID] == strconv.Itoa(in.Process.Pid) })
	for _, l := range r.stop(t) {
		if f := strings.Fields(l); f[colPID] == strconv.Itoa(outside) {
			t.Errorf("exec outside the container shown: %q", l)
		}
	}
}
