package proc

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

const testBoot = "0f4c9a7e-3b1d-4e55-9a0c-7d2b8e6f1a23"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// harness drives a cache with a fake clock and a fixture procfs.
type harness struct {
	t    *testing.T
	c    *Cache
	clk  *fakeClock
	root string
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clk: &fakeClock{now: t0}, root: t.TempDir()}
	cfg := Config{
		BootID:     testBoot,
		ProcRoot:   h.root,
		CgroupRoot: t.TempDir(),
		ExitGrace:  30 * time.Second,
		Now:        h.clk.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	h.c = New(cfg)
	return h
}

// proc returns a process as a sensor reports it, without image fields.
// Start times are given in ticks; the nanoseconds below a tick are noise
// that KeyOf must ignore.
func proc(pid uint32, ticks uint64, ppid uint32, pticks uint64) event.Process {
	p := event.Process{
		PID: pid, TID: pid, PPID: ppid,
		StartBoot: ticks*NsPerTick + 123,
		UID:       1000, GID: 1000, EUID: 1000, EGID: 1000,
		AUID: 1000, SessionID: 7, CgroupID: 42,
	}
	if ppid != 0 {
		p.ParentStartBoot = pticks*NsPerTick + 45
	}
	return p
}

func (h *harness) fork(pid uint32, ticks uint64, ppid uint32, pticks uint64) event.Process {
	p := proc(pid, ticks, ppid, pticks)
	h.c.Fork(&p)
	return p
}

func (h *harness) exec(pid uint32, ticks uint64, ppid uint32, pticks uint64, exe string, args ...string) event.Process {
	p := proc(pid, ticks, ppid, pticks)
	p.Name = filepath.Base(exe)
	p.Executable = exe
	p.Filename = exe
	p.Args = args
	p.ArgsCount = len(args)
	p.WorkingDir = "/home/u"
	h.c.Exec(&p)
	return p
}

func (h *harness) exit(pid uint32, ticks uint64, ppid uint32, pticks uint64, code int) (event.Process, bool) {
	p := proc(pid, ticks, ppid, pticks)
	first := h.c.Exit(&p, event.ExitStatus{Code: code})
	return p, first
}

// sweep makes the fixture procfs show every Alive entry, then sweeps: no
// lost exits unless a test wants them.
func (h *harness) sweep() SweepStats {
	h.t.Helper()
	h.c.mu.Lock()
	var alive []Key
	for k, e := range h.c.entries {
		if e.state == Alive {
			alive = append(alive, k)
		}
	}
	h.c.mu.Unlock()
	for _, k := range alive {
		writeProc(h.t, h.root, fproc{pid: k.PID, ticks: k.StartTicks, comm: "x"})
	}
	return h.c.Sweep()
}

func (h *harness) key(pid uint32, ticks uint64) Key { return Key{pid, ticks} }

// view is the part of an entry that life-cycle tests compare.
type view struct {
	Key      Key
	State    State
	PPID     uint32
	Name     string
	Exe      string
	Args     []string
	Execs    int
	Children int
	Exit     *event.ExitStatus
}

func (h *harness) dump() []view {
	h.c.mu.Lock()
	keys := make([]Key, 0, len(h.c.entries))
	for k := range h.c.entries {
		keys = append(keys, k)
	}
	h.c.mu.Unlock()
	slices.SortFunc(keys, func(a, b Key) int {
		if r := cmp.Compare(a.PID, b.PID); r != 0 {
			return r
		}
		return cmp.Compare(a.StartTicks, b.StartTicks)
	})
	var out []view
	for _, k := range keys {
		en, ok := h.c.Lookup(k)
		if !ok {
			continue
		}
		out = append(out, view{
			Key: k, State: en.State, PPID: en.Process.PPID,
			Name: en.Process.Name, Exe: en.Process.Executable, Args: en.Process.Args,
			Execs: en.Execs, Children: en.Children, Exit: en.Exit,
		})
	}
	return out
}

// fproc describes one fixture /proc/<pid> directory.
type fproc struct {
	pid, ppid uint32
	ticks     uint64
	comm      string
	noStat    bool
	// status: written when hasStatus
	hasStatus            bool
	uid, euid, gid, egid uint32
	loginuid, sessionid  string // file contents; "" means no file
	cmdline              *string
	exe, cwd             string // symlink targets; "" means no link
	cgroup               string // file contents; "" means no file
}

func statLine(pid, ppid uint32, comm string, ticks uint64) string {
	// Fields 3.. as the kernel writes them; starttime is field 22.
	f := []string{"S", strconv.Itoa(int(ppid)), "1", "1", "0", "-1", "4194560",
		"120", "0", "3", "0", "5", "2", "0", "0", "20", "0", "1", "0",
		strconv.FormatUint(ticks, 10), "2351104", "312", "18446744073709551615"}
	return fmt.Sprintf("%d (%s) %s\n", pid, comm, strings.Join(f, " "))
}

func writeProc(t testing.TB, root string, p fproc) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(int(p.pid)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !p.noStat {
		write("stat", statLine(p.pid, p.ppid, p.comm, p.ticks))
	}
	if p.hasStatus {
		write("status", fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t%d\n"+
			"Uid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\nFDSize:\t64\n",
			p.comm, p.pid, p.pid, p.ppid, p.uid, p.euid, p.euid, p.euid, p.gid, p.egid, p.egid, p.egid))
	}
	if p.loginuid != "" {
		write("loginuid", p.loginuid)
	}
	if p.sessionid != "" {
		write("sessionid", p.sessionid)
	}
	if p.cmdline != nil {
		write("cmdline", *p.cmdline)
	}
	if p.cgroup != "" {
		write("cgroup", p.cgroup)
	}
	for name, target := range map[string]string{"exe": p.exe, "cwd": p.cwd} {
		if target == "" {
			continue
		}
		os.Remove(filepath.Join(dir, name))
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
