package proc

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		pid  uint32
		ns   uint64
		want Key
	}{
		{1, 0, Key{1, 0}},
		{1, NsPerTick - 1, Key{1, 0}},
		{1, NsPerTick, Key{1, 1}},
		{4242, 123*NsPerTick + 9_999_999, Key{4242, 123}},
	}
	for _, tt := range tests {
		if got := KeyOf(tt.pid, tt.ns); got != tt.want {
			t.Errorf("KeyOf(%d, %d) = %v, want %v", tt.pid, tt.ns, got, tt.want)
		}
	}
	// A procfs process (ticks) and a sensor process (ns) get one key.
	if a, b := KeyOf(7, 55*NsPerTick), KeyOf(7, 55*NsPerTick+4_000_000); a != b {
		t.Errorf("procfs key %v != sensor key %v", a, b)
	}
	if got := (Key{12, 34}).String(); got != "12@34" {
		t.Errorf("String = %q", got)
	}
}

func TestEntityID(t *testing.T) {
	k := Key{PID: 4242, StartTicks: 987654}
	h := fnv.New64a()
	h.Write([]byte(testBoot))
	h.Write([]byte{0})
	h.Write(binary.LittleEndian.AppendUint32(nil, k.PID))
	h.Write(binary.LittleEndian.AppendUint64(nil, k.StartTicks))
	want := fmt.Sprintf("%016x", h.Sum64())
	if got := EntityID(testBoot, k); got != want {
		t.Errorf("EntityID = %q, want %q", got, want)
	}
	distinct := map[string]string{}
	for _, c := range []struct {
		boot string
		k    Key
	}{{testBoot, k}, {"other-boot", k}, {testBoot, Key{4242, 987655}}, {testBoot, Key{4243, 987654}}} {
		id := EntityID(c.boot, c.k)
		if len(id) != 16 {
			t.Errorf("EntityID(%q, %v) = %q: want 16 hex digits", c.boot, c.k, id)
		}
		if prev, dup := distinct[id]; dup {
			t.Errorf("EntityID(%q, %v) = %q, same as %s", c.boot, c.k, id, prev)
		}
		distinct[id] = fmt.Sprint(c)
	}
}

func TestStateString(t *testing.T) {
	for st, want := range map[State]string{0: "unknown", Alive: "alive", Exited: "exited", Reaped: "reaped", 9: "unknown"} {
		if got := st.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", st, got, want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	init1 := view{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1}
	tests := []struct {
		name      string
		run       func(t *testing.T, h *harness)
		want      []view
		wantStats Stats
	}{
		{
			name: "fork copies the parent's image",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(100, 50, 1, 1, "/bin/bash", "bash", "-l")
				got := h.fork(200, 60, 100, 50)
				want := proc(200, 60, 100, 50)
				want.EntityID = EntityID(testBoot, Key{200, 60})
				want.Name, want.Executable, want.Filename = "bash", "/bin/bash", "/bin/bash"
				want.Args, want.ArgsCount, want.WorkingDir = []string{"bash", "-l"}, 2, "/home/u"
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("forked process (-want +got):\n%s", d)
				}
				gotCached, st, ok := h.c.Get(Key{200, 60})
				if !ok || st != Alive {
					t.Fatalf("Get = %v, %v", st, ok)
				}
				if d := cmp.Diff(want, gotCached); d != "" {
					t.Errorf("cached process (-want +got):\n%s", d)
				}
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 1},
				{Key: Key{100, 50}, State: Alive, PPID: 1, Name: "bash", Exe: "/bin/bash", Args: []string{"bash", "-l"}, Execs: 1, Children: 1},
				{Key: Key{200, 60}, State: Alive, PPID: 100, Name: "bash", Exe: "/bin/bash", Args: []string{"bash", "-l"}},
			},
			wantStats: Stats{Alive: 3, Forks: 1, Execs: 2},
		},
		{
			name: "exec replaces the image and keeps the identity",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				f := h.fork(200, 60, 1, 1)
				p := proc(200, 60, 1, 1)
				p.Name, p.Executable, p.Script = "sh", "/bin/sh", "/opt/run.sh"
				p.Args, p.ArgsCount, p.ArgsTruncated = []string{"/bin/sh", "/opt/run.sh"}, 9, true
				p.UID, p.EUID = 0, 0
				h.c.Exec(&p)
				e2 := h.exec(200, 60, 1, 1, "/usr/bin/cat", "cat", "x")
				if f.EntityID != p.EntityID || p.EntityID != e2.EntityID {
					t.Errorf("entity ids differ: fork %s, exec %s, exec %s", f.EntityID, p.EntityID, e2.EntityID)
				}
				got, _, _ := h.c.Get(Key{200, 60})
				want := e2
				want.TID = 200
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("after the second exec (-want +got):\n%s", d)
				}
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 1},
				{Key: Key{200, 60}, State: Alive, PPID: 1, Name: "cat", Exe: "/usr/bin/cat", Args: []string{"cat", "x"}, Execs: 2},
			},
			wantStats: Stats{Alive: 2, Forks: 1, Execs: 3},
		},
		{
			name: "exit once, then a duplicate",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(300, 70, 1, 1, "/usr/bin/sleep", "sleep", "1")
				p, first := h.exit(300, 70, 1, 1, 3)
				if !first {
					t.Error("first exit: first = false")
				}
				if p.Executable != "/usr/bin/sleep" || !cmp.Equal(p.Args, []string{"sleep", "1"}) || p.Name != "sleep" {
					t.Errorf("exit event not filled: %q %q %q", p.Name, p.Executable, p.Args)
				}
				if p.EntityID != EntityID(testBoot, Key{300, 70}) {
					t.Errorf("EntityID = %q", p.EntityID)
				}
				if _, first := h.exit(300, 70, 1, 1, 3); first {
					t.Error("duplicate exit: first = true")
				}
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 1},
				{Key: Key{300, 70}, State: Exited, PPID: 1, Name: "sleep", Exe: "/usr/bin/sleep", Args: []string{"sleep", "1"}, Execs: 1, Exit: &event.ExitStatus{Code: 3}},
			},
			wantStats: Stats{Alive: 1, Exited: 1, Execs: 2, Exits: 1, DuplicateExits: 1},
		},
		{
			name: "sweep keeps an exited process for the grace period",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(300, 70, 1, 1, "/usr/bin/true", "true")
				h.exit(300, 70, 1, 1, 0)
				h.clk.Advance(29 * time.Second)
				if got, want := h.sweep(), (SweepStats{Alive: 1, Exited: 1}); got != want {
					t.Errorf("sweep within grace = %+v, want %+v", got, want)
				}
				if _, st, ok := h.c.Get(Key{300, 70}); !ok || st != Exited {
					t.Errorf("within grace: Get = %v, %v", st, ok)
				}
				h.clk.Advance(time.Second)
				if got, want := h.sweep(), (SweepStats{Reaped: 1, Alive: 1}); got != want {
					t.Errorf("sweep after grace = %+v, want %+v", got, want)
				}
				if _, _, ok := h.c.Get(Key{300, 70}); ok {
					t.Error("Get found a reaped process")
				}
				if _, ok := h.c.Current(300); ok {
					t.Error("Current found a reaped PID")
				}
			},
			want:      []view{init1},
			wantStats: Stats{Alive: 1, Execs: 2, Exits: 1, Reaped: 1},
		},
		{
			name: "an exited parent stays while its child lives",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(100, 50, 1, 1, "/usr/bin/daemon", "daemon")
				h.fork(200, 60, 100, 50)
				h.exec(300, 61, 200, 60, "/usr/bin/worker", "worker")
				h.exit(100, 50, 1, 1, 0)
				h.exit(200, 60, 1, 1, 0) // reparented to init
				h.clk.Advance(time.Hour)
				if got, want := h.sweep(), (SweepStats{Alive: 2, Exited: 2}); got != want {
					t.Errorf("sweep = %+v, want %+v", got, want)
				}
				ev := event.Event{Process: proc(300, 61, 1, 1)} // the kernel's parent now
				ev.Process.ParentStartBoot = 0
				h.c.Enrich(&ev, 8)
				if ev.Parent == nil || ev.Parent.PID != 1 {
					t.Errorf("parent now = %+v, want init", ev.Parent)
				}
				ev = event.Event{Process: proc(300, 61, 200, 60)} // as it was forked
				h.c.Enrich(&ev, 8)
				if ev.Parent == nil || ev.Parent.PID != 200 {
					t.Fatalf("original parent = %+v, want 200", ev.Parent)
				}
				var pids []uint32
				for _, a := range ev.Ancestors {
					pids = append(pids, a.PID)
				}
				if d := cmp.Diff([]uint32{100, 1}, pids); d != "" {
					t.Errorf("ancestors (-want +got):\n%s", d)
				}
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 1},
				{Key: Key{100, 50}, State: Exited, PPID: 1, Name: "daemon", Exe: "/usr/bin/daemon", Args: []string{"daemon"}, Execs: 1, Children: 1, Exit: &event.ExitStatus{}},
				{Key: Key{200, 60}, State: Exited, PPID: 100, Name: "daemon", Exe: "/usr/bin/daemon", Args: []string{"daemon"}, Children: 1, Exit: &event.ExitStatus{}},
				{Key: Key{300, 61}, State: Alive, PPID: 200, Name: "worker", Exe: "/usr/bin/worker", Args: []string{"worker"}, Execs: 1},
			},
			wantStats: Stats{Alive: 2, Exited: 2, Forks: 1, Execs: 3, Exits: 2},
		},
		{
			name: "a parent is reaped with its last child",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(100, 50, 1, 1, "/usr/bin/daemon", "daemon")
				h.fork(200, 60, 100, 50)
				h.exit(100, 50, 1, 1, 0)
				h.clk.Advance(time.Minute)
				h.exit(200, 60, 1, 1, 0)
				h.clk.Advance(10 * time.Second)
				if got, want := h.sweep(), (SweepStats{Alive: 1, Exited: 2}); got != want {
					t.Errorf("sweep in the child's grace = %+v, want %+v", got, want)
				}
				h.clk.Advance(20 * time.Second)
				if got, want := h.sweep(), (SweepStats{Reaped: 2, Alive: 1}); got != want {
					t.Errorf("sweep after the child's grace = %+v, want %+v", got, want)
				}
			},
			want:      []view{init1},
			wantStats: Stats{Alive: 1, Forks: 1, Execs: 2, Exits: 2, Reaped: 2},
		},
		{
			name: "PID reuse",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(100, 10, 1, 1, "/usr/bin/old", "old")
				h.exit(100, 10, 1, 1, 0)
				h.exec(100, 500, 1, 1, "/usr/bin/new", "new")
				h.fork(300, 510, 100, 500)
				if p, st, ok := h.c.Get(Key{100, 10}); !ok || st != Exited || p.Executable != "/usr/bin/old" {
					t.Errorf("old: %q %v %v", p.Executable, st, ok)
				}
				if p, st, ok := h.c.Get(Key{100, 500}); !ok || st != Alive || p.Executable != "/usr/bin/new" {
					t.Errorf("new: %q %v %v", p.Executable, st, ok)
				}
				if k, _ := h.c.Current(100); k != (Key{100, 500}) {
					t.Errorf("Current(100) = %v", k)
				}
				ev := event.Event{Process: proc(300, 510, 100, 500)}
				h.c.Enrich(&ev, 4)
				if ev.Parent == nil || ev.Parent.Executable != "/usr/bin/new" {
					t.Errorf("parent = %+v, want the new 100", ev.Parent)
				}
				// The old one's exit was seen: a late duplicate stays a duplicate.
				if _, first := h.exit(100, 10, 1, 1, 0); first {
					t.Error("old process: duplicate exit reported first")
				}
				h.clk.Advance(time.Minute)
				h.sweep()
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 1},
				{Key: Key{100, 500}, State: Alive, PPID: 1, Name: "new", Exe: "/usr/bin/new", Args: []string{"new"}, Execs: 1, Children: 1},
				{Key: Key{300, 510}, State: Alive, PPID: 100, Name: "new", Exe: "/usr/bin/new", Args: []string{"new"}},
			},
			wantStats: Stats{Alive: 3, Forks: 1, Execs: 3, Exits: 1, DuplicateExits: 1, Reaped: 1},
		},
		{
			name: "PID reuse reveals a lost exit",
			run: func(t *testing.T, h *harness) {
				h.exec(100, 10, 0, 0, "/usr/bin/old", "old")
				h.exec(100, 500, 0, 0, "/usr/bin/new", "new")
				// A late event for the old incarnation of another PID.
				h.exec(200, 900, 0, 0, "/usr/bin/b2", "b2")
				h.exec(200, 20, 0, 0, "/usr/bin/b1", "b1")
				// The real exit arrives late: it is the first.
				if _, first := h.exit(100, 10, 0, 0, 1); !first {
					t.Error("late exit after a lost exit: first = false")
				}
			},
			want: []view{
				{Key: Key{100, 10}, State: Exited, Name: "old", Exe: "/usr/bin/old", Args: []string{"old"}, Execs: 1, Exit: &event.ExitStatus{Code: 1}},
				{Key: Key{100, 500}, State: Alive, Name: "new", Exe: "/usr/bin/new", Args: []string{"new"}, Execs: 1},
				{Key: Key{200, 20}, State: Exited, Name: "b1", Exe: "/usr/bin/b1", Args: []string{"b1"}, Execs: 1},
				{Key: Key{200, 900}, State: Alive, Name: "b2", Exe: "/usr/bin/b2", Args: []string{"b2"}, Execs: 1},
			},
			wantStats: Stats{Alive: 2, Exited: 2, Execs: 4, Exits: 1, LostExits: 2},
		},
		{
			name: "exec and exit of unknown processes",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(400, 80, 1, 1, "/usr/bin/missed", "missed")
				p, first := h.exit(500, 90, 1, 1, 2)
				if !first || p.Executable != "/sbin/init" {
					t.Errorf("unknown exit: first %v, executable %q (want the parent's)", first, p.Executable)
				}
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 2},
				{Key: Key{400, 80}, State: Alive, PPID: 1, Name: "missed", Exe: "/usr/bin/missed", Args: []string{"missed"}, Execs: 1},
				{Key: Key{500, 90}, State: Exited, PPID: 1, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Exit: &event.ExitStatus{Code: 2}},
			},
			wantStats: Stats{Alive: 2, Exited: 1, Execs: 2, Exits: 1},
		},
		{
			name: "fork of a known process keeps the entry",
			run: func(t *testing.T, h *harness) {
				h.exec(1, 1, 0, 0, "/sbin/init", "init")
				h.exec(600, 100, 1, 1, "/usr/bin/known", "known")
				p := h.fork(600, 100, 1, 1)
				if p.Executable != "/usr/bin/known" {
					t.Errorf("fork of a known process: executable %q", p.Executable)
				}
			},
			want: []view{
				{Key: Key{1, 1}, State: Alive, Name: "init", Exe: "/sbin/init", Args: []string{"init"}, Execs: 1, Children: 1},
				{Key: Key{600, 100}, State: Alive, PPID: 1, Name: "known", Exe: "/usr/bin/known", Args: []string{"known"}, Execs: 1},
			},
			wantStats: Stats{Alive: 2, Forks: 1, Execs: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			tt.run(t, h)
			if d := cmp.Diff(tt.want, h.dump()); d != "" {
				t.Errorf("entries (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantStats, h.c.Stats()); d != "" {
				t.Errorf("stats (-want +got):\n%s", d)
			}
		})
	}
}

// TestReturnedValuesAreCopies checks that callers cannot change the cache
// through what it returns.
func TestReturnedValuesAreCopies(t *testing.T) {
	h := newHarness(t, nil)
	h.exec(1, 1, 0, 0, "/sbin/init", "init")
	h.exec(10, 5, 1, 1, "/bin/sh", "sh", "-c", "x")
	p, _, _ := h.c.Get(Key{10, 5})
	p.Executable = "changed"
	p.Args = append(p.Args, "appended")
	ev := event.Event{Process: proc(20, 6, 10, 5)}
	h.c.Enrich(&ev, 4)
	ev.Parent.Name = "changed"
	ev.Parent.Args = append(ev.Parent.Args, "appended")
	ev.Ancestors[0].Args = append(ev.Ancestors[0].Args, "appended")
	got, _, _ := h.c.Get(Key{10, 5})
	if got.Executable != "/bin/sh" || got.Name != "sh" || !cmp.Equal(got.Args, []string{"sh", "-c", "x"}) {
		t.Errorf("cache changed through a returned value: %+v", got)
	}
	if init, _, _ := h.c.Get(Key{1, 1}); !cmp.Equal(init.Args, []string{"init"}) {
		t.Errorf("init args = %q", init.Args)
	}
}

func TestEnrich(t *testing.T) {
	h := newHarness(t, nil)
	// 1 <- 10 <- 20 <- 30 <- 40 <- 50
	h.exec(1, 1, 0, 0, "/sbin/init", "init")
	prev := Key{1, 1}
	for _, pid := range []uint32{10, 20, 30, 40, 50} {
		h.exec(pid, uint64(pid), prev.PID, prev.StartTicks, fmt.Sprintf("/bin/p%d", pid), fmt.Sprintf("p%d", pid))
		prev = Key{pid, uint64(pid)}
	}
	// A cycle: 70's parent is 80 and 80's parent is 70.
	h.exec(70, 70, 80, 80, "/bin/p70", "p70")
	h.exec(80, 80, 70, 70, "/bin/p80", "p80")
	// A process whose PID 90 is now someone else.
	h.exec(90, 900, 1, 1, "/bin/new90", "new90")

	anc := func(pid uint32) event.Ancestor {
		if pid == 1 {
			return event.Ancestor{PID: 1, EntityID: EntityID(testBoot, Key{1, 1}), Name: "init", Executable: "/sbin/init", Args: []string{"init"}}
		}
		name := fmt.Sprintf("p%d", pid)
		return event.Ancestor{PID: pid, EntityID: EntityID(testBoot, Key{pid, uint64(pid)}), Name: name, Executable: "/bin/" + name, Args: []string{name}}
	}
	tests := []struct {
		name       string
		p          event.Process
		depth      int
		wantParent uint32 // 0: none
		want       []event.Ancestor
	}{
		{"depth 2", proc(60, 60, 50, 50), 2, 50, []event.Ancestor{anc(40), anc(30)}},
		{"up to init", proc(60, 60, 50, 50), 10, 50, []event.Ancestor{anc(40), anc(30), anc(20), anc(10), anc(1)}},
		{"depth 0", proc(60, 60, 50, 50), 0, 50, nil},
		{"child of init", proc(60, 60, 1, 1), 5, 1, nil},
		{"cycle", proc(75, 75, 70, 70), 10, 70, []event.Ancestor{anc(80)}},
		{"no parent", proc(1, 1, 0, 0), 5, 0, nil},
		{"parent start time unknown", func() event.Process { p := proc(60, 60, 50, 0); p.ParentStartBoot = 0; return p }(), 1, 50, []event.Ancestor{anc(40)}},
		{"parent start time wrong, PID reused", proc(95, 95, 90, 90), 5, 0, nil},
		{"parent start unknown, PID reused after child started", func() event.Process { p := proc(95, 95, 90, 0); p.ParentStartBoot = 0; return p }(), 5, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event.Event{Process: tt.p}
			h.c.Enrich(&ev, tt.depth)
			if ev.Process.EntityID != EntityID(testBoot, KeyOf(tt.p.PID, tt.p.StartBoot)) {
				t.Errorf("EntityID = %q", ev.Process.EntityID)
			}
			var gotParent uint32
			if ev.Parent != nil {
				gotParent = ev.Parent.PID
			}
			if gotParent != tt.wantParent {
				t.Errorf("parent = %d, want %d", gotParent, tt.wantParent)
			}
			if d := cmp.Diff(tt.want, ev.Ancestors); d != "" {
				t.Errorf("ancestors (-want +got):\n%s", d)
			}
		})
	}
	if got := h.c.Stats().ParentMisses; got != 2 {
		t.Errorf("ParentMisses = %d, want 2", got)
	}
}

func TestEnrichLazyFill(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BootTime = t0.Add(-time.Hour) })
	writeProc(t, h.root, fproc{pid: 1, ticks: 1, comm: "systemd", exe: "/usr/lib/systemd/systemd", cmdline: ptr("/sbin/init\x00")})
	writeProc(t, h.root, fproc{pid: 77, ppid: 1, ticks: 700, comm: "sshd", hasStatus: true,
		exe: "/usr/sbin/sshd", cwd: "/", cmdline: ptr("sshd: user [priv]\x00"), loginuid: "1000", sessionid: "4"})
	h.exec(88, 800, 77, 700, "/bin/bash", "-bash")

	ev := event.Event{Process: proc(88, 800, 77, 700)}
	h.c.Enrich(&ev, 3)
	want := &event.Process{
		PID: 77, TID: 77, PPID: 1,
		Start:     t0.Add(-time.Hour).Add(7 * time.Second),
		StartBoot: 700 * NsPerTick, ParentStartBoot: NsPerTick,
		EntityID: EntityID(testBoot, Key{77, 700}),
		Name:     "sshd", Executable: "/usr/sbin/sshd",
		Args: []string{"sshd: user [priv]"}, ArgsCount: 1, WorkingDir: "/",
		AUID: 1000, SessionID: 4, FromProcfs: true,
	}
	if d := cmp.Diff(want, ev.Parent); d != "" {
		t.Errorf("lazily filled parent (-want +got):\n%s", d)
	}
	wantAnc := []event.Ancestor{{PID: 1, EntityID: EntityID(testBoot, Key{1, 1}), Name: "systemd", Executable: "/usr/lib/systemd/systemd", Args: []string{"/sbin/init"}}}
	if d := cmp.Diff(wantAnc, ev.Ancestors); d != "" {
		t.Errorf("ancestors (-want +got):\n%s", d)
	}
	if en, _ := h.c.Lookup(Key{77, 700}); en.Children != 1 || en.State != Alive {
		t.Errorf("filled parent: children %d, state %v; want 1, alive", en.Children, en.State)
	}
	if got := h.c.Stats().LazyFills; got != 2 {
		t.Errorf("LazyFills = %d, want 2", got)
	}
	// A parent that does not exist, or exists with another start time.
	for _, p := range []event.Process{proc(89, 801, 66, 600), proc(89, 801, 77, 650)} {
		ev = event.Event{Process: p}
		h.c.Enrich(&ev, 3)
		if ev.Parent != nil {
			t.Errorf("parent of %d@%d: got %+v, want none", p.PPID, p.ParentStartBoot, ev.Parent)
		}
	}
}

func TestSweepEvicts(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxEntries = 8 })
	h.exec(1, 1, 0, 0, "/sbin/init", "init")
	h.fork(10, 10, 1, 1)
	h.fork(20, 20, 10, 10)
	h.exit(10, 10, 1, 1, 0) // oldest exit, but it has a child
	for pid := uint32(11); pid <= 15; pid++ {
		h.clk.Advance(time.Second)
		h.fork(pid, uint64(pid), 1, 1)
		h.exit(pid, uint64(pid), 1, 1, 0)
	}
	h.fork(30, 30, 1, 1)
	h.fork(31, 31, 1, 1)
	if n := h.c.Len(); n != 10 {
		t.Fatalf("Len = %d, want 10", n)
	}
	if got, want := h.sweep(), (SweepStats{Evicted: 2, Alive: 4, Exited: 4}); got != want {
		t.Errorf("sweep = %+v, want %+v", got, want)
	}
	for _, k := range []Key{{11, 11}, {12, 12}} {
		if _, _, ok := h.c.Get(k); ok {
			t.Errorf("%v was not evicted", k)
		}
	}
	for _, k := range []Key{{10, 10}, {13, 13}, {20, 20}} {
		if _, _, ok := h.c.Get(k); !ok {
			t.Errorf("%v was evicted", k)
		}
	}

	// Alive entries are never evicted, and an exited parent goes last.
	h.c.cfg.MaxEntries = 2
	if got, want := h.sweep(), (SweepStats{Evicted: 4, Alive: 4}); got != want {
		t.Errorf("sweep = %+v, want %+v", got, want)
	}
	if en, _ := h.c.Lookup(Key{20, 20}); en.State != Alive {
		t.Errorf("child of an evicted parent: %v", en.State)
	}
	// The child was unlinked from its evicted parent: if the parent's
	// exit is reported again, the child does not count for it.
	h.exit(10, 10, 1, 1, 0)
	if en, _ := h.c.Lookup(Key{10, 10}); en.Children != 0 {
		t.Errorf("re-added parent: Children = %d, want 0", en.Children)
	}
	if got := h.c.Stats().Evicted; got != 6 {
		t.Errorf("Stats.Evicted = %d, want 6", got)
	}
}

func TestInsertEvictsUnderPressure(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxEntries = 16 })
	h.exec(1, 1, 0, 0, "/sbin/init", "init")
	for i := uint32(2); i < 1000; i++ {
		h.fork(i, uint64(i), 1, 1)
		h.exit(i, uint64(i), 1, 1, 0)
		if n := h.c.Len(); n > 20 {
			t.Fatalf("after %d forks: %d entries, want at most 20", i, n)
		}
	}
	s := h.c.Stats()
	if s.Evicted == 0 || s.Alive != 1 || s.Entries() != h.c.Len() {
		t.Errorf("stats = %+v", s)
	}
	if en, _ := h.c.Lookup(Key{1, 1}); en.Children != s.Exited {
		t.Errorf("init: Children = %d, want %d", en.Children, s.Exited)
	}
}

func TestSweepReconcilesLostExits(t *testing.T) {
	h := newHarness(t, nil)
	writeProc(t, h.root, fproc{pid: 1, ticks: 1, comm: "init"})
	writeProc(t, h.root, fproc{pid: 100, ppid: 1, ticks: 10, comm: "alive"})
	writeProc(t, h.root, fproc{pid: 200, ppid: 1, ticks: 99, comm: "reused"})
	writeProc(t, h.root, fproc{pid: 400, ppid: 1, ticks: 40, comm: "zombie-ish", noStat: true})
	h.exec(1, 1, 0, 0, "/sbin/init", "init")
	h.fork(100, 10, 1, 1)
	h.fork(200, 20, 1, 1) // PID 200 runs a process started at tick 99 now
	h.fork(300, 30, 1, 1) // gone
	h.fork(400, 40, 1, 1) // gone: no stat

	if got, want := h.c.Sweep(), (SweepStats{Lost: 3, Alive: 2, Exited: 3}); got != want {
		t.Errorf("sweep = %+v, want %+v", got, want)
	}
	for k, want := range map[Key]State{{1, 1}: Alive, {100, 10}: Alive, {200, 20}: Exited, {300, 30}: Exited, {400, 40}: Exited} {
		if _, st, _ := h.c.Get(k); st != want {
			t.Errorf("%v: %v, want %v", k, st, want)
		}
	}
	if en, _ := h.c.Lookup(Key{300, 30}); en.Exit != nil || en.ExitTime != t0 {
		t.Errorf("lost exit: Exit %v, ExitTime %v", en.Exit, en.ExitTime)
	}
	if _, first := h.exit(300, 30, 1, 1, 0); !first {
		t.Error("exit reported after reconciliation: first = false")
	}
	if _, first := h.exit(300, 30, 1, 1, 0); first {
		t.Error("second exit after reconciliation: first = true")
	}
	want := Stats{Alive: 2, Exited: 3, Forks: 4, Execs: 1, Exits: 1, DuplicateExits: 1, LostExits: 3}
	if d := cmp.Diff(want, h.c.Stats()); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	h.clk.Advance(30 * time.Second)
	if got, want := h.c.Sweep(), (SweepStats{Reaped: 3, Alive: 2}); got != want {
		t.Errorf("second sweep = %+v, want %+v", got, want)
	}

	// Without a procfs there is nothing to reconcile against.
	h2 := newHarness(t, func(c *Config) { c.ProcRoot = "/nonexistent/proc" })
	h2.fork(100, 10, 0, 0)
	if got, want := h2.c.Sweep(), (SweepStats{Alive: 1}); got != want {
		t.Errorf("sweep without procfs = %+v, want %+v", got, want)
	}
}

func TestConcurrentReaders(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxEntries = 64; c.ExitGrace = -1 })
	h.exec(1, 1, 0, 0, "/sbin/init", "init")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			_ = h.c.Stats()
			_, _, _ = h.c.Get(Key{1, 1})
		}
	}()
	for i := uint32(2); i < 2000; i++ {
		p := proc(i, uint64(i), 1, 1)
		h.c.Fork(&p)
		ev := event.Event{Process: p}
		h.c.Enrich(&ev, 4)
		h.c.Exit(&p, event.ExitStatus{})
	}
	<-done
}

func TestExitStatusKept(t *testing.T) {
	h := newHarness(t, nil)
	p := proc(10, 10, 0, 0)
	h.c.Fork(&p)
	st := event.DecodeWaitStatus(0x8b) // SIGSEGV, core dumped
	if !h.c.Exit(&p, st) {
		t.Fatal("first = false")
	}
	en, ok := h.c.Lookup(Key{10, 10})
	want := &event.ExitStatus{Code: 139, Signal: 11, CoreDumped: true}
	if d := cmp.Diff(want, en.Exit); !ok || d != "" {
		t.Errorf("exit status (-want +got):\n%s", d)
	}
	if en.ExitTime != t0 || en.State != Exited {
		t.Errorf("ExitTime %v, State %v", en.ExitTime, en.State)
	}
}

func TestCompleteFillsTheProgramOfTheActor(t *testing.T) {
	c := New(Config{BootID: "b", ProcRoot: t.TempDir()})
	p := event.Process{PID: 50, PPID: 1, StartBoot: 7e9, Executable: "/usr/bin/vi", Args: []string{"vi", "/etc/shadow"}, WorkingDir: "/root"}
	c.Exec(&p)

	got := event.Process{PID: 50, PPID: 1, StartBoot: 7e9, Name: "vi"}
	c.Complete(&got)
	if got.Executable != "/usr/bin/vi" || len(got.Args) != 2 || got.WorkingDir != "/root" || got.EntityID != p.EntityID {
		t.Errorf("Complete = %+v", got)
	}

	// Another process with the same pid (different start) is not taken.
	other := event.Process{PID: 50, StartBoot: 9e9}
	c.Complete(&other)
	if other.Executable != "" {
		t.Errorf("Complete took a different process's image: %+v", other)
	}
}
