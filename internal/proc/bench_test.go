package proc

import (
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

func benchCache(b *testing.B) (*Cache, *fakeClock, string) {
	root := b.TempDir()
	clk := &fakeClock{now: t0}
	c := New(Config{BootID: testBoot, ProcRoot: root, CgroupRoot: root, ExitGrace: time.Second, Now: clk.Now})
	return c, clk, root
}

// BenchmarkExecEnrich: an exec in a tree 8 deep, enriched with its whole
// ancestry, as for every exec event.
func BenchmarkExecEnrich(b *testing.B) {
	c, _, _ := benchCache(b)
	ppid, pstart := uint32(0), uint64(0)
	for pid := uint32(1); pid <= 8; pid++ {
		p := proc(pid, uint64(pid), ppid, pstart)
		p.Executable, p.Name, p.Args, p.ArgsCount = "/usr/bin/prog", "prog", []string{"prog", "-x"}, 2
		c.Exec(&p)
		ppid, pstart = pid, p.StartBoot/NsPerTick
	}
	const pool = 1024
	procs := make([]event.Process, pool)
	for i := range procs {
		p := proc(uint32(100+i), uint64(100+i), 8, 8)
		p.Executable, p.Filename, p.Name = "/usr/bin/ls", "ls", "ls"
		p.Args, p.ArgsCount, p.WorkingDir = []string{"ls", "-l", "/tmp"}, 3, "/tmp"
		c.Fork(&p)
		procs[i] = p
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := event.Event{Kind: event.KindExec, Process: procs[i%pool]}
		ev.Process.EntityID = ""
		c.Exec(&ev.Process)
		c.Enrich(&ev, 16)
		if len(ev.Ancestors) != 7 {
			b.Fatalf("ancestors: %d", len(ev.Ancestors))
		}
		i++
	}
}

// BenchmarkForkExitChurn: short-lived processes, forked and exited, with a
// sweep every 1024 of them reaping what passed its grace.
func BenchmarkForkExitChurn(b *testing.B) {
	c, clk, root := benchCache(b)
	writeProc(b, root, fproc{pid: 1, ticks: 1, comm: "init"})
	initp := proc(1, 1, 0, 0)
	initp.Executable, initp.Name, initp.Args, initp.ArgsCount = "/sbin/init", "init", []string{"init"}, 1
	c.Exec(&initp)
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		pid := uint32(2 + n%4_000_000)
		p := proc(pid, 2+n, 1, 1)
		c.Fork(&p)
		c.Exit(&p, event.ExitStatus{})
		if n%1024 == 0 {
			clk.Advance(2 * time.Second)
			c.Sweep()
		}
	}
	if s := c.Stats(); s.Alive != 1 || s.Entries() > 2048 {
		b.Fatalf("stats %+v", s)
	}
}
