package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// harness runs the sensor and collects the kernel events of one test cgroup.
type harness struct {
	shared *sensor.Shared
	sensor *Sensor
	cg     *testenv.Cgroup

	mu     sync.Mutex
	events []event.Event
	errs   []error
}

func start(t *testing.T, cfg Config, f sensor.KindFilter) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	shared, err := sensor.NewShared(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	s, err := New(cfg, shared)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := shared.SetKind(sensor.TypeKernel, f); err != nil {
		t.Fatal(err)
	}
	rd, err := sensor.NewReader(shared, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{shared: shared, sensor: s, cg: testenv.NewCgroup(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	clk := sensor.NewClock()
	go func() {
		defer close(done)
		rd.Run(ctx, func(rec []byte) {
			hdr, err := sensor.ParseHeader(rec)
			if err != nil || hdr.Type != sensor.TypeKernel {
				return
			}
			var e event.Event
			err = Decode(rec, clk, &e)
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.errs = append(h.errs, err)
			} else if e.Process.CgroupID == h.cg.ID {
				h.events = append(h.events, e)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		rd.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, err := range h.errs {
			t.Errorf("decode: %v", err)
		}
	})
	return h
}

func (h *harness) snapshot() []event.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]event.Event(nil), h.events...)
}

// wait polls, with a generous deadline, until an event of the cgroup
// matches, and returns it.
func (h *harness) wait(t *testing.T, what string, match func(k *event.Kernel, e *event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := h.snapshot()
		for i := range evs {
			if match(evs[i].Kernel, &evs[i]) {
				return evs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event; got:\n%s", what, dump(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle gives the reader several polls to drain what the kernel sent so
// far. Waiting longer only makes "nothing arrived" checks stricter.
func (h *harness) settle() []event.Event {
	time.Sleep(200 * time.Millisecond)
	return h.snapshot()
}

func dump(evs []event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  pid %d %s ret %d %+v\n", e.Process.PID, e.Process.Name, e.Return, *e.Kernel)
	}
	return b.String()
}

func op(o event.KernelOp) func(k *event.Kernel, e *event.Event) bool {
	return func(k *event.Kernel, e *event.Event) bool { return k.Op == o }
}

var (
	buildOnce sync.Once
	trigger   string
	buildErr  error
)

// triggerBin builds testdata/trigger once per test binary.
func triggerBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-kernel-trigger-")
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

// run runs the trigger in the cgroup and returns its pid and output.
func (h *harness) run(t *testing.T, args ...string) (int, []string) {
	t.Helper()
	cmd := h.cg.Command(triggerBin(t), args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("trigger %v: %v\n%s", args, err, stderr)
	}
	return cmd.Process.Pid, strings.Fields(string(out))
}

// tool runs a system tool in the cgroup; it must exist and succeed.
func (h *harness) tool(t *testing.T, name string, args ...string) int {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	cmd := h.cg.Command(path, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return cmd.Process.Pid
}

func TestUnshare(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	for _, tt := range []struct {
		opt  string
		flag string
	}{
		{"-U", "CLONE_NEWUSER"},
		{"-m", "CLONE_NEWNS"},
		{"-n", "CLONE_NEWNET"},
	} {
		pid := h.tool(t, "unshare", tt.opt, "true")
		e := h.wait(t, "unshare "+tt.opt, func(k *event.Kernel, e *event.Event) bool {
			return k.Op == event.KernelUnshare && e.Process.PID == uint32(pid)
		})
		if e.Return != 0 || !slices.Equal(e.Kernel.FlagNames, []string{tt.flag}) {
			t.Errorf("unshare %s: return %d flags %#x %v, want 0 and [%s]", tt.opt, e.Return, e.Kernel.Flags, e.Kernel.FlagNames, tt.flag)
		}
	}
}

func TestCloneNamespaces(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	for _, tt := range []struct {
		scenario string
		want     []string
	}{
		{"clone", []string{"CLONE_NEWNS", "CLONE_NEWUTS"}},    // clone(2)
		{"clone3", []string{"CLONE_NEWUTS", "CLONE_NEWTIME"}}, // clone3(2)
	} {
		pid, out := h.run(t, tt.scenario)
		child, _ := strconv.Atoi(out[0])
		e := h.wait(t, tt.scenario, func(k *event.Kernel, e *event.Event) bool {
			return k.Op == event.KernelCloneNS && e.Process.PID == uint32(pid)
		})
		if e.Return != int64(child) || e.Kernel.TargetPID != uint32(child) {
			t.Errorf("%s: return %d target %d, want child %d", tt.scenario, e.Return, e.Kernel.TargetPID, child)
		}
		for _, f := range tt.want {
			if !slices.Contains(e.Kernel.FlagNames, f) {
				t.Errorf("%s: flags %v lack %s", tt.scenario, e.Kernel.FlagNames, f)
			}
		}
		if e.Kernel.Flags&0xff != 0 && tt.scenario == "clone" {
			t.Errorf("clone: exit signal left in flags %#x", e.Kernel.Flags)
		}
	}
}

// sleeperInNetNS starts `unshare -n sleep 30` in the cgroup and returns its
// pid once it is in its own network namespace.
func sleeperInNetNS(t *testing.T, h *harness) int {
	t.Helper()
	cmd := h.cg.Command("unshare", "-n", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ours, _ := os.Readlink("/proc/self/ns/net")
	deadline := time.Now().Add(10 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if ns != "" && ns != ours && strings.HasSuffix(exe, "/sleep") {
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare -n sleep did not get going")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSetns(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	target := sleeperInNetNS(t, h)
	nsFile := fmt.Sprintf("/proc/%d/ns/net", target)
	want, err := os.Readlink(nsFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := h.tool(t, "nsenter", "--net="+nsFile, "true")
	e := h.wait(t, "setns", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelSetns && e.Process.PID == uint32(pid)
	})
	if e.Return != 0 || e.Kernel.Path != want || e.Kernel.ArgName != "CLONE_NEWNET" {
		t.Errorf("setns: return %d path %q arg %s, want 0 %q CLONE_NEWNET", e.Return, e.Kernel.Path, e.Kernel.ArgName, want)
	}

	// setns by pidfd names the process instead.
	pid, _ = h.run(t, "pidfd-setns", strconv.Itoa(target))
	e = h.wait(t, "setns by pidfd", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelSetns && e.Process.PID == uint32(pid)
	})
	if e.Return != 0 || e.Kernel.TargetPID != uint32(target) || e.Kernel.Path != "" || e.Kernel.ArgName != "CLONE_NEWUTS" {
		t.Errorf("setns by pidfd: return %d target %d path %q arg %s, want 0 %d \"\" CLONE_NEWUTS",
			e.Return, e.Kernel.TargetPID, e.Kernel.Path, e.Kernel.ArgName, target)
	}
}

func TestMount(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	dir := t.TempDir()
	// Only ever inside a mount namespace of the trigger's own.
	pid := h.tool(t, "unshare", "-m", "sh", "-c", "mount -t tmpfs vigiltest "+dir+" && umount "+dir)
	m := h.wait(t, "mount", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelMount && k.Source == "vigiltest"
	})
	if m.Return != 0 || m.Kernel.Target != dir || m.Kernel.FSType != "tmpfs" {
		t.Errorf("mount: return %d %+v, want target %s fstype tmpfs", m.Return, *m.Kernel, dir)
	}
	u := h.wait(t, "umount", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelUmount && k.Target == dir
	})
	// unshare execs sh, which runs mount and umount as its children.
	if u.Return != 0 || u.Process.PPID != uint32(pid) || m.Process.PPID != uint32(pid) {
		t.Errorf("mount by %d (parent %d), umount by %d (parent %d), return %d: want both children of %d",
			m.Process.PID, m.Process.PPID, u.Process.PID, u.Process.PPID, u.Return, pid)
	}
	// unshare -m made its mounts private first: mount(none, /, MS_REC|MS_PRIVATE).
	h.wait(t, "propagation change", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelMount && e.Process.PID == uint32(pid) && k.Target == "/" &&
			slices.Equal(k.FlagNames, []string{"MS_REC", "MS_PRIVATE"})
	})
}

func TestPivotRootFails(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	dir := t.TempDir()
	newRoot, putOld := filepath.Join(dir, "new"), filepath.Join(dir, "new", "old")
	if err := os.MkdirAll(putOld, 0o755); err != nil {
		t.Fatal(err)
	}
	// new is no mount point, so pivot_root fails (EINVAL, or EBUSY where the
	// root is shared); and it runs in a mount namespace of its own all the same.
	cmd := h.cg.Command("unshare", "-m", "pivot_root", newRoot, putOld)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("pivot_root succeeded: %s", out)
	}
	e := h.wait(t, "pivot_root", op(event.KernelPivotRoot))
	if e.Return >= 0 || e.Kernel.Source != newRoot || e.Kernel.Target != putOld {
		t.Errorf("pivot_root: return %d %+v, want a failure with %s %s", e.Return, *e.Kernel, newRoot, putOld)
	}
}

func TestPtrace(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	pid, out := h.run(t, "ptrace")
	attached, _ := strconv.Atoi(out[0])
	seized, _ := strconv.Atoi(out[1])
	evs := h.settle()
	var got []string
	for _, e := range evs {
		if e.Kernel.Op == event.KernelPtrace && e.Process.PID == uint32(pid) {
			got = append(got, fmt.Sprintf("%s %d %d", e.Kernel.ArgName, e.Kernel.TargetPID, e.Return))
		}
	}
	// GETREGSET, PEEKDATA and DETACH are not reported by default.
	want := []string{fmt.Sprintf("PTRACE_ATTACH %d 0", attached), fmt.Sprintf("PTRACE_SEIZE %d 0", seized)}
	if !slices.Equal(got, want) {
		t.Errorf("ptrace events %q, want %q", got, want)
	}
}

func TestPtraceAll(t *testing.T) {
	h := start(t, Config{PtraceAll: true}, sensor.KindFilter{Enabled: true})
	pid, _ := h.run(t, "ptrace")
	for _, req := range []string{"PTRACE_ATTACH", "PTRACE_GETREGSET", "PTRACE_PEEKDATA", "PTRACE_DETACH", "PTRACE_SEIZE"} {
		h.wait(t, req, func(k *event.Kernel, e *event.Event) bool {
			return k.Op == event.KernelPtrace && e.Process.PID == uint32(pid) && k.ArgName == req
		})
	}
}

func TestFinitModuleFails(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	if slices.Contains(h.sensor.Missing(), "tracepoint/syscalls/sys_exit_finit_module") {
		t.Skip("this kernel has no module support, hence no finit_module tracepoint")
	}
	file := filepath.Join(t.TempDir(), "not-a-module.ko")
	if err := os.WriteFile(file, []byte("this is not an ELF module\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, out := h.run(t, "finit", file)
	e := h.wait(t, "finit_module", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelModuleLoad && e.Process.PID == uint32(pid)
	})
	if e.Return >= 0 || e.Kernel.Path != file || e.Kernel.Params != "vigil_test=1" || strconv.FormatUint(e.Kernel.Arg, 10) != out[0] {
		t.Errorf("finit_module: return %d %+v, want failure with path %s fd %s", e.Return, *e.Kernel, file, out[0])
	}
}

func TestMemfdExec(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	pid, out := h.run(t, "memfd-exec")
	m := h.wait(t, "memfd_create", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelMemfdCreate && e.Process.PID == uint32(pid)
	})
	if strconv.FormatInt(m.Return, 10) != out[0] || m.Kernel.Name != "vigil-test" || m.Kernel.Flags != 0 {
		t.Errorf("memfd_create: return %d %+v, want fd %s name vigil-test", m.Return, *m.Kernel, out[0])
	}
	x := h.wait(t, "execveat", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelExecveat && e.Process.PID == uint32(pid)
	})
	if x.Kernel.Path != "/memfd:vigil-test" || x.Kernel.Name != "" || strconv.FormatUint(x.Kernel.Arg, 10) != out[0] ||
		!slices.Equal(x.Kernel.FlagNames, []string{"AT_EMPTY_PATH"}) {
		t.Errorf("execveat: %+v, want path /memfd:vigil-test fd %s AT_EMPTY_PATH", *x.Kernel, out[0])
	}
}

func TestExecveatDir(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	bin, err := filepath.EvalSymlinks("/bin")
	if err != nil {
		t.Fatal(err)
	}
	pid, out := h.run(t, "execveat-dir", "/bin")
	x := h.wait(t, "execveat", func(k *event.Kernel, e *event.Event) bool {
		return k.Op == event.KernelExecveat && e.Process.PID == uint32(pid)
	})
	if x.Kernel.Path != bin+"/true" || x.Kernel.Name != "true" || strconv.FormatUint(x.Kernel.Arg, 10) != out[0] || x.Kernel.Flags != 0 {
		t.Errorf("execveat: %+v, want path %s/true name true fd %s", *x.Kernel, bin, out[0])
	}
}

func TestBPF(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	pid := h.tool(t, "bpftool", "prog", "show")
	for _, cmd := range []string{"BPF_PROG_GET_NEXT_ID", "BPF_PROG_GET_FD_BY_ID", "BPF_OBJ_GET_INFO_BY_FD"} {
		h.wait(t, cmd, func(k *event.Kernel, e *event.Event) bool {
			return k.Op == event.KernelBPF && e.Process.PID == uint32(pid) && k.ArgName == cmd
		})
	}
	// The agent's own bpf() calls are never reported: this test process is
	// the agent, and it reads the counters through bpf().
	if _, err := h.shared.KernelCounts(); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.settle() {
		if e.Process.PID == uint32(os.Getpid()) {
			t.Errorf("the agent's own call reported: %+v", *e.Kernel)
		}
	}
}

func TestSignalAgent(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true})
	agent := os.Getpid()
	other := sleeperInNetNS(t, h)

	// kill -0 of another process of the test's: not reported.
	otherKill := h.tool(t, "sh", "-c", fmt.Sprintf("kill -0 %d", other))
	// kill -0 of the agent, then tgkill and pidfd_send_signal with signal 0.
	shKill := h.tool(t, "sh", "-c", fmt.Sprintf("kill -0 %d", agent))
	trig, _ := h.run(t, "signal", strconv.Itoa(agent))
	// The same number seen from another pid namespace is some other process
	// (or none): not reported.
	if out, err := h.cg.Command("unshare", "-pf", "sh", "-c", fmt.Sprintf("kill -0 %d", agent)).CombinedOutput(); err == nil {
		t.Logf("kill -0 %d in a new pid namespace succeeded: %s", agent, out)
	}

	evs := h.settle()
	var got []string
	for _, e := range evs {
		if e.Kernel.Op != event.KernelSignalAgent {
			continue
		}
		if e.Process.PID == uint32(otherKill) {
			t.Errorf("kill -0 of pid %d reported as aimed at the agent: %+v", other, *e.Kernel)
		}
		got = append(got, fmt.Sprintf("%d %s %d %d", e.Process.PID, e.Kernel.ArgName, e.Kernel.TargetPID, e.Return))
	}
	want := []string{
		fmt.Sprintf("%d SIG0 %d 0", shKill, agent), // kill
		fmt.Sprintf("%d SIG0 %d 0", trig, agent),   // tgkill
		fmt.Sprintf("%d SIG0 %d 0", trig, agent),   // pidfd_send_signal
	}
	if !slices.Equal(got, want) {
		t.Errorf("signals to the agent %q, want %q", got, want)
	}
}

// TestSignalsAll: with SignalsAll, signals to any process are reported as
// signal events, those aimed at the agent still as signal_agent.
func TestSignalsAll(t *testing.T) {
	h := start(t, Config{SignalsAll: true}, sensor.KindFilter{Enabled: true})
	agent := os.Getpid()
	other := sleeperInNetNS(t, h)

	shKill := h.tool(t, "sh", "-c", fmt.Sprintf("kill -0 %d", other))
	shAgent := h.tool(t, "sh", "-c", fmt.Sprintf("kill -0 %d", agent))
	trig, _ := h.run(t, "signal", strconv.Itoa(other)) // tgkill, then pidfd_send_signal
	// A signal that fails: no such process (pid_max is below 2^22).
	shFail := h.tool(t, "sh", "-c", "kill -0 4194304 2>/dev/null; true")

	evs := h.settle()
	var got []string
	for _, e := range evs {
		k := e.Kernel
		// The Go trigger also signals its own threads (SIGURG): signal 0 only.
		if (k.Op != event.KernelSignal && k.Op != event.KernelSignalAgent) || k.ArgName != "SIG0" {
			continue
		}
		got = append(got, fmt.Sprintf("%d %s %s %d %d", e.Process.PID, k.Op, k.ArgName, int32(k.TargetPID), e.Return))
	}
	want := []string{
		fmt.Sprintf("%d signal SIG0 %d 0", shKill, other),
		fmt.Sprintf("%d signal_agent SIG0 %d 0", shAgent, agent),
		fmt.Sprintf("%d signal SIG0 %d 0", trig, other),  // tgkill
		fmt.Sprintf("%d signal SIG0 %d 0", trig, other),  // pidfd_send_signal
		fmt.Sprintf("%d signal SIG0 4194304 -3", shFail), // ESRCH
	}
	if !slices.Equal(got, want) {
		t.Errorf("signals %q, want %q", got, want)
	}
}

// TestPlainClonesCostNothing: 10,000 clones without CLONE_NEW* send no
// record, with the kind disabled and enabled.
func TestPlainClonesSendNothing(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("enabled=%v", enabled), func(t *testing.T) {
			h := start(t, Config{}, sensor.KindFilter{Enabled: enabled})
			before, err := h.shared.KernelCounts()
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			h.run(t, "forks", "10000")
			took := time.Since(begin)
			if evs := h.settle(); len(evs) != 0 {
				t.Errorf("%d records from plain clones:\n%s", len(evs), dump(evs))
			}
			after, err := h.shared.KernelCounts()
			if err != nil {
				t.Fatal(err)
			}
			// Machine-wide: other processes' bpf() calls and the like count too.
			t.Logf("10000 forks in %v; kernel records machine-wide: sent %d, filtered %d", took,
				after[sensor.TypeKernel].Sent-before[sensor.TypeKernel].Sent,
				after[sensor.TypeKernel].Filtered-before[sensor.TypeKernel].Filtered)
		})
	}
}

func TestOutcomeFailureOnly(t *testing.T) {
	h := start(t, Config{}, sensor.KindFilter{Enabled: true, Outcome: sensor.OutcomeFailure})
	pid := h.tool(t, "unshare", "-n", "true")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "new", "old"), 0o755)
	h.cg.Command("unshare", "-m", "pivot_root", filepath.Join(dir, "new"), filepath.Join(dir, "new", "old")).Run()
	h.wait(t, "failed pivot_root", op(event.KernelPivotRoot))
	for _, e := range h.settle() {
		if e.Return >= 0 {
			t.Errorf("failures only, got pid %d (unshare was %d) %+v return %d", e.Process.PID, pid, *e.Kernel, e.Return)
		}
	}
}
