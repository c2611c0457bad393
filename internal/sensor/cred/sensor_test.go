package cred

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// harness runs the sensor and collects the cred events of one test cgroup.
type harness struct {
	shared *sensor.Shared
	cg     *testenv.Cgroup

	mu     sync.Mutex
	events []event.Event
	errs   []error
}

func start(t *testing.T, f sensor.KindFilter) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	shared, err := sensor.NewShared(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	s, err := New(Config{}, shared)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := shared.SetKind(sensor.TypeCred, f); err != nil {
		t.Fatal(err)
	}
	rd, err := sensor.NewReader(shared, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{shared: shared, cg: testenv.NewCgroup(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	clk := sensor.NewClock()
	go func() {
		defer close(done)
		rd.Run(ctx, func(rec []byte) {
			hdr, err := sensor.ParseHeader(rec)
			if err != nil || hdr.Type != sensor.TypeCred {
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

// wait polls until n events of the cgroup arrived (generous deadline) and
// returns them all.
func (h *harness) wait(t *testing.T, n int) []event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := append([]event.Event(nil), h.events...)
		h.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				t.Fatalf("got %d cred events, want %d: %+v", len(got), n, credsOf(got))
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle waits for the reader to drain what the kernel sent so far, then
// returns the cgroup's events.
func (h *harness) settle(t *testing.T) []event.Event {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // several reader polls; only ever makes the check stricter
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]event.Event(nil), h.events...)
}

func credsOf(evs []event.Event) []event.Cred {
	var out []event.Cred
	for _, e := range evs {
		out = append(out, *e.Cred)
	}
	return out
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
		dir, err := os.MkdirTemp("", "vigil-cred-trigger-")
		if err != nil {
			buildErr = err
			return
		}
		trigger = filepath.Join(dir, "trigger")
		cmd := exec.Command("go", "build", "-o", trigger, "./testdata/trigger")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("%s", out)
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

func run(t *testing.T, h *harness, args ...string) int {
	t.Helper()
	cmd := h.cg.Command(triggerBin(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("trigger %v: %v\n%s", args, err, out)
	}
	return cmd.Process.Pid
}

// ourCaps are the test's own capabilities, which its triggers start with.
func ourCaps(t *testing.T) (eff, perm uint64) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective), uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted)
}

func rootCreds(t *testing.T) event.Creds {
	eff, perm := ourCaps(t)
	return event.Creds{CapEffective: eff, CapPermitted: perm}
}

func TestDropPrivileges(t *testing.T) {
	h := start(t, sensor.KindFilter{Enabled: true})
	pid := run(t, h, "drop")
	got := h.wait(t, 4)

	root := rootCreds(t)
	groupsDone := root
	gidDone := event.Creds{GID: 65534, EGID: 65534, SGID: 65534, FSGID: 65534, CapEffective: root.CapEffective, CapPermitted: root.CapPermitted}
	nobody := event.Creds{UID: 65534, EUID: 65534, SUID: 65534, FSUID: 65534, GID: 65534, EGID: 65534, SGID: 65534, FSGID: 65534}
	want := []struct {
		ret  int64
		cred event.Cred
	}{
		{0, event.Cred{Op: event.CredSetgroups, Args: []uint32{0}, Old: root, New: groupsDone}},
		{0, event.Cred{Op: event.CredSetresgid, Args: []uint32{65534, 65534, 65534}, Old: groupsDone, New: gidDone}},
		{0, event.Cred{Op: event.CredSetresuid, Args: []uint32{65534, 65534, 65534}, Old: gidDone, New: nobody}},
		{-int64(unix.EPERM), event.Cred{Op: event.CredSetuid, Args: []uint32{0}, Old: nobody, New: nobody}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), credsOf(got))
	}
	for i, w := range want {
		e := got[i]
		if e.Process.PID != uint32(pid) || e.Kind != event.KindCred || e.Return != w.ret {
			t.Errorf("event %d: pid %d kind %v return %d, want pid %d cred return %d", i, e.Process.PID, e.Kind, e.Return, pid, w.ret)
		}
		if diff := cmp.Diff(w.cred, *e.Cred); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
	}
	// The task info is taken after the call: the refused setuid comes from nobody.
	if last := got[3].Process; last.UID != 65534 || last.EUID != 65534 {
		t.Errorf("setuid(0) reported for uid %d euid %d, want 65534", last.UID, last.EUID)
	}
}

func TestMiscChanges(t *testing.T) {
	h := start(t, sensor.KindFilter{Enabled: true})
	run(t, h, "misc")
	got := h.wait(t, 5)
	root := rootCreds(t)
	c := func(uid, euid, suid, gid, egid, sgid uint32, caps bool) event.Creds {
		out := event.Creds{UID: uid, EUID: euid, SUID: suid, FSUID: euid, GID: gid, EGID: egid, SGID: sgid, FSGID: egid}
		if caps {
			out.CapEffective, out.CapPermitted = root.CapEffective, root.CapPermitted
		}
		return out
	}
	afterRegid := c(0, 0, 0, 0, 3000, 3000, true)
	afterGid := c(0, 0, 0, 3001, 3001, 3001, true)
	afterReuid := c(2000, 2000, 2000, 3001, 3001, 3001, false)
	want := []event.Cred{
		{Op: event.CredSetgroups, Args: []uint32{3, 10, 20}, Old: root, New: root},
		{Op: event.CredSetregid, Args: []uint32{event.NoUID, 3000}, Old: root, New: afterRegid},
		{Op: event.CredSetgid, Args: []uint32{3001}, Old: afterRegid, New: afterGid},
		{Op: event.CredSetreuid, Args: []uint32{2000, 2000}, Old: afterGid, New: afterReuid},
		{Op: event.CredSetuid, Args: []uint32{2001}, Old: afterReuid, New: afterReuid},
	}
	if diff := cmp.Diff(want, credsOf(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got[4].Return != -int64(unix.EPERM) {
		t.Errorf("setuid(2001) as 2000 returned %d, want -EPERM", got[4].Return)
	}
}

func TestCapset(t *testing.T) {
	h := start(t, sensor.KindFilter{Enabled: true})
	run(t, h, "capset")
	got := h.wait(t, 1)
	root := rootCreds(t)
	keep := uint64(1<<unix.CAP_CHOWN | 1<<unix.CAP_SETUID)
	want := []event.Cred{{
		Op: event.CredCapset, Args: []uint32{uint32(keep), uint32(keep), 0},
		Old: root, New: event.Creds{CapEffective: keep, CapPermitted: keep},
	}}
	if diff := cmp.Diff(want, credsOf(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got[0].Return != 0 {
		t.Errorf("capset returned %d", got[0].Return)
	}
}

func TestSetfsuid(t *testing.T) {
	h := start(t, sensor.KindFilter{Enabled: true})
	run(t, h, "fs")
	got := h.wait(t, 3)
	root := rootCreds(t)
	// Changing fsuid away from 0 drops the filesystem capabilities from the
	// effective set (cap_emulate_setxuid); they come back only with fsuid 0.
	fsCaps := uint64(1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH |
		1<<unix.CAP_FOWNER | 1<<unix.CAP_FSETID | 1<<unix.CAP_LINUX_IMMUTABLE | 1<<unix.CAP_MKNOD | 1<<unix.CAP_MAC_OVERRIDE)
	afterUID := event.Creds{FSUID: 4321, CapEffective: root.CapEffective &^ fsCaps, CapPermitted: root.CapPermitted}
	afterGID := afterUID
	afterGID.FSGID = 8765
	want := []event.Cred{
		{Op: event.CredSetfsuid, Args: []uint32{4321}, Old: root, New: afterUID},
		{Op: event.CredSetfsgid, Args: []uint32{8765}, Old: afterUID, New: afterGID},
		{Op: event.CredSetfsuid, Args: []uint32{event.NoUID}, Old: afterGID, New: afterGID},
	}
	if diff := cmp.Diff(want, credsOf(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	for i, e := range got {
		if e.Return != 0 {
			t.Errorf("event %d: return %d, want 0 (the change took effect)", i, e.Return)
		}
	}
}

// TestPython is the drop from the brief, in a real interpreter.
func TestPython(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no " + py)
	}
	h := start(t, sensor.KindFilter{Enabled: true})
	_, out := h.cg.Run(t, py, "-c", "import os; os.setgroups([]); os.setresgid(65534,65534,65534); os.setresuid(65534,65534,65534)")
	got := h.wait(t, 3)
	var ops []event.CredOp
	for _, e := range got {
		ops = append(ops, e.Cred.Op)
	}
	if diff := cmp.Diff([]event.CredOp{event.CredSetgroups, event.CredSetresgid, event.CredSetresuid}, ops); diff != "" {
		t.Fatalf("ops (-want +got):\n%s\n%s", diff, out)
	}
	if n := got[2].Cred.New; n.UID != 65534 || n.EUID != 65534 || n.CapEffective != 0 {
		t.Errorf("after setresuid: %+v", n)
	}
}

func TestOutcomeFilter(t *testing.T) {
	h := start(t, sensor.KindFilter{Enabled: true, Outcome: sensor.OutcomeFailure})
	run(t, h, "drop")
	got := h.wait(t, 1)
	got = h.settle(t)
	if len(got) != 1 || got[0].Cred.Op != event.CredSetuid || got[0].Return >= 0 {
		t.Errorf("failures only: got %+v", credsOf(got))
	}
}

func TestDisabled(t *testing.T) {
	h := start(t, sensor.KindFilter{Enabled: false})
	before, err := h.shared.KernelCounts()
	if err != nil {
		t.Fatal(err)
	}
	run(t, h, "drop")
	if got := h.settle(t); len(got) != 0 {
		t.Errorf("kind disabled, got %+v", credsOf(got))
	}
	after, err := h.shared.KernelCounts()
	if err != nil {
		t.Fatal(err)
	}
	if f := after[sensor.TypeCred].Filtered - before[sensor.TypeCred].Filtered; f < 4 {
		t.Errorf("%d cred records counted as filtered, want at least the trigger's 4", f)
	}
}
