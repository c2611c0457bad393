package proc

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    statInfo
		wantErr bool
	}{
		{"plain", statLine(42, 1, "bash", 12345), statInfo{comm: "bash", ppid: 1, ticks: 12345}, false},
		{"spaces and parentheses", statLine(42, 7, "a) (b c) 1 2 3", 99), statInfo{comm: "a) (b c) 1 2 3", ppid: 7, ticks: 99}, false},
		{"empty name", statLine(42, 7, "", 5), statInfo{ppid: 7, ticks: 5}, false},
		{"newline in name", statLine(42, 7, "x\ny", 5), statInfo{comm: "x\ny", ppid: 7, ticks: 5}, false},
		{"kernel thread", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			statInfo{comm: "kthreadd"}, false},
		{"short", "42 (bash) S 1 42 42 0\n", statInfo{}, true},
		{"no name", "42 bash S 1\n", statInfo{}, true},
		{"bad ppid", "42 (bash) S x 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0\n", statInfo{}, true},
		{"empty", "", statInfo{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(statInfo{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		max       int
		want      []string
		wantCount int
		wantTrunc bool
	}{
		{"empty", "", 100, nil, 0, false},
		{"one", "/bin/sh\x00", 100, []string{"/bin/sh"}, 1, false},
		{"several", "ls\x00-l\x00/tmp\x00", 100, []string{"ls", "-l", "/tmp"}, 3, false},
		{"empty argument", "a\x00\x00b\x00", 100, []string{"a", "", "b"}, 3, false},
		{"trailing empty argument", "a\x00\x00", 100, []string{"a", ""}, 2, false},
		{"rewritten, no NUL", "nginx: worker process", 100, []string{"nginx: worker process"}, 1, false},
		{"cut inside an argument", "abc\x00defgh\x00ij\x00", 6, []string{"abc", "de"}, 3, true},
		{"cut after a NUL", "abc\x00defgh\x00", 4, []string{"abc"}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, n, trunc := parseCmdline([]byte(tt.in), tt.max)
			if d := cmp.Diff(tt.want, args); d != "" {
				t.Errorf("args (-want +got):\n%s", d)
			}
			if n != tt.wantCount || trunc != tt.wantTrunc {
				t.Errorf("count, truncated = %d, %v; want %d, %v", n, trunc, tt.wantCount, tt.wantTrunc)
			}
		})
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestScanProcfs(t *testing.T) {
	boot := t0.Add(-24 * time.Hour)
	cgroot := t.TempDir()
	for _, d := range []string{"init.scope", "user.slice/user-1000.slice/session-3.scope"} {
		if err := os.MkdirAll(filepath.Join(cgroot, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, func(c *Config) {
		c.CgroupRoot = cgroot
		c.BootTime = boot
		c.MaxArgsBytes = 64
	})
	root := h.root
	long := "x"
	for len(long) < 100 {
		long += long
	}
	procs := []fproc{
		{pid: 1, ticks: 2, comm: "systemd", hasStatus: true, loginuid: "4294967295\n", sessionid: "4294967295\n",
			cmdline: ptr("/sbin/init\x00splash\x00"), exe: "/usr/lib/systemd/systemd", cwd: "/", cgroup: "0::/init.scope\n"},
		{pid: 2, ticks: 0, comm: "kthreadd", hasStatus: true, cmdline: ptr(""), cgroup: "0::/\n"},
		{pid: 3, ppid: 2, ticks: 0, comm: "kworker/0:0H-events_highpri", hasStatus: true, cmdline: ptr("")},
		{pid: 100, ppid: 1, ticks: 500, comm: "my (weird) prog) x", hasStatus: true, uid: 1000, euid: 0, gid: 1000, egid: 1000,
			loginuid: "1000", sessionid: "3", cmdline: ptr("/opt/prog\x00--flag\x00\x00last word\x00"),
			exe: "/opt/prog (deleted)", cwd: "/home/user dir",
			cgroup: "12:pids:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice/user-1000.slice/session-3.scope\n"},
		{pid: 101, ppid: 100, ticks: 600, comm: "long", hasStatus: false, cmdline: ptr(long + "\x00b\x00")},
		{pid: 200, ppid: 1, ticks: 700, comm: "vanished", noStat: true, hasStatus: true},
		{pid: 300, ppid: 1, ticks: 800, comm: "known"},
	}
	for _, p := range procs {
		writeProc(t, root, p)
	}
	for _, junk := range []string{"self", "sys", "0", "-1", "4294967296"} {
		if err := os.MkdirAll(filepath.Join(root, junk), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Learned from a sensor first: the scan must not overwrite it.
	known := h.exec(300, 800, 1, 2, "/usr/bin/known", "known", "--sensor")

	n, err := h.c.ScanProcfs()
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("ScanProcfs added %d, want 5", n)
	}

	base := func(pid, ppid uint32, ticks, pticks uint64, name string) event.Process {
		return event.Process{
			PID: pid, TID: pid, PPID: ppid,
			Start:     boot.Add(time.Duration(ticks * NsPerTick)),
			StartBoot: ticks * NsPerTick, ParentStartBoot: pticks * NsPerTick,
			EntityID: EntityID(testBoot, Key{pid, ticks}),
			Name:     name, FromProcfs: true,
			UID: event.NoUID, GID: event.NoUID, EUID: event.NoUID, EGID: event.NoUID,
			AUID: event.NoUID, SessionID: event.NoUID,
		}
	}
	p1 := base(1, 0, 2, 0, "systemd")
	p1.UID, p1.GID, p1.EUID, p1.EGID = 0, 0, 0, 0
	p1.Executable, p1.WorkingDir = "/usr/lib/systemd/systemd", "/"
	p1.Args, p1.ArgsCount = []string{"/sbin/init", "splash"}, 2
	p1.CgroupID = inode(t, filepath.Join(cgroot, "init.scope"))

	p2 := base(2, 0, 0, 0, "kthreadd")
	p2.UID, p2.GID, p2.EUID, p2.EGID = 0, 0, 0, 0
	p2.CgroupID = inode(t, cgroot)

	p3 := base(3, 2, 0, 0, "kworker/0:0H-events_highpri")
	p3.UID, p3.GID, p3.EUID, p3.EGID = 0, 0, 0, 0

	p100 := base(100, 1, 500, 2, "my (weird) prog) x")
	p100.UID, p100.EUID, p100.GID, p100.EGID = 1000, 0, 1000, 1000
	p100.AUID, p100.SessionID = 1000, 3
	p100.Executable, p100.WorkingDir = "/opt/prog (deleted)", "/home/user dir"
	p100.Args, p100.ArgsCount = []string{"/opt/prog", "--flag", "", "last word"}, 4
	p100.CgroupID = inode(t, filepath.Join(cgroot, "user.slice/user-1000.slice/session-3.scope"))

	p101 := base(101, 100, 600, 500, "long")
	p101.Args, p101.ArgsCount, p101.ArgsTruncated = []string{long[:64]}, 2, true

	known.TID = 300
	want := map[Key]event.Process{
		{1, 2}: p1, {2, 0}: p2, {3, 0}: p3, {100, 500}: p100, {101, 600}: p101, {300, 800}: known,
	}
	got := map[Key]event.Process{}
	h.c.mu.Lock()
	for k, e := range h.c.entries {
		got[k] = e.process()
	}
	h.c.mu.Unlock()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("cached processes (-want +got):\n%s", d)
	}

	children := map[Key]int{}
	for k := range want {
		en, _ := h.c.Lookup(k)
		children[k] = en.Children
	}
	wantChildren := map[Key]int{{1, 2}: 2, {2, 0}: 1, {3, 0}: 0, {100, 500}: 1, {101, 600}: 0, {300, 800}: 0}
	if d := cmp.Diff(wantChildren, children); d != "" {
		t.Errorf("children (-want +got):\n%s", d)
	}
	if got := h.c.Stats(); got.Scanned != 5 || got.Alive != 6 {
		t.Errorf("stats = %+v", got)
	}

	// A second scan adds nothing.
	if n, err := h.c.ScanProcfs(); n != 0 || err != nil {
		t.Errorf("second scan = %d, %v", n, err)
	}
	// Enrich finds the scanned ancestry.
	ev := event.Event{Process: proc(102, 900, 101, 600)}
	h.c.Enrich(&ev, 8)
	var pids []uint32
	for _, a := range ev.Ancestors {
		pids = append(pids, a.PID)
	}
	if ev.Parent == nil || ev.Parent.PID != 101 || !slices.Equal(pids, []uint32{100, 1}) {
		t.Errorf("enrich: parent %+v, ancestors %v", ev.Parent, pids)
	}

	if _, err := New(Config{ProcRoot: filepath.Join(root, "missing")}).ScanProcfs(); err == nil {
		t.Error("scan of a missing ProcRoot: no error")
	}
}

// TestScanRealProcfs scans the machine's /proc and finds the test itself.
func TestScanRealProcfs(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no procfs:", err)
	}
	c := New(Config{BootID: "real"})
	n, err := c.ScanProcfs()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Fatalf("ScanProcfs found %d processes", n)
	}
	k, ok := c.Current(uint32(os.Getpid()))
	if !ok {
		t.Fatal("own PID not found")
	}
	p, st, ok := c.Get(k)
	if !ok || st != Alive {
		t.Fatalf("Get(%v) = %v, %v", k, st, ok)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.Executable != exe {
		t.Errorf("Executable = %q, want %q", p.Executable, exe)
	}
	if d := cmp.Diff(os.Args, p.Args); d != "" {
		t.Errorf("Args (-os.Args +got):\n%s", d)
	}
	if p.PPID != uint32(os.Getppid()) || !p.FromProcfs || p.UID != uint32(os.Getuid()) || p.EUID != uint32(os.Geteuid()) {
		t.Errorf("process = %+v", p)
	}
	wd, _ := os.Getwd()
	if p.WorkingDir != wd {
		t.Errorf("WorkingDir = %q, want %q", p.WorkingDir, wd)
	}
	// Our parent is cached with the right start time: Enrich finds it.
	ev := event.Event{Process: p}
	c.Enrich(&ev, 64)
	if ev.Parent == nil || ev.Parent.PID != p.PPID {
		t.Errorf("parent = %+v, want PID %d", ev.Parent, p.PPID)
	}
	// Nothing scanned is gone yet, except perhaps short-lived processes.
	if ss := c.Sweep(); ss.Alive < 1 {
		t.Errorf("sweep = %+v", ss)
	}
	if _, st, _ := c.Get(k); st != Alive {
		t.Errorf("after sweep: %v", st)
	}
}
