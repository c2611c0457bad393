package rules

import (
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// benchEvents are typical events: none of them matches a rule of
// testdata/bench, as most events do not.
func benchEvents() map[string]*event.Event {
	at := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	proc := event.Process{PID: 20911, PPID: 20910, Start: at, EntityID: "7f1e0f2a0b7cda79", Name: "ls",
		Executable: "/usr/bin/ls", Filename: "/bin/ls", Args: []string{"ls", "-la", "/var/log"}, ArgsCount: 3,
		WorkingDir: "/home/alice", UID: 1000, GID: 1000, EUID: 1000, EGID: 1000, AUID: 1000, SessionID: 3, CgroupID: 4242}
	parent := &event.Process{PID: 20910, PPID: 1800, EntityID: "1ee4a1b2c9c288f5", Name: "bash", Executable: "/usr/bin/bash",
		Args: []string{"bash"}, ArgsCount: 1, WorkingDir: "/home/alice", UID: 1000, GID: 1000, EUID: 1000, EGID: 1000}
	ancestors := []event.Ancestor{{PID: 1800, Name: "sshd", Executable: "/usr/sbin/sshd"}, {PID: 1, Name: "systemd", Executable: "/usr/lib/systemd/systemd"}}
	editor := proc
	editor.Name, editor.Executable, editor.Args = "vim", "/usr/bin/vim", []string{"vim", "notes.txt"}
	curl := proc
	curl.Name, curl.Executable, curl.Args = "curl", "/usr/bin/curl", []string{"curl", "https://example.com/"}
	return map[string]*event.Event{
		"exec": {Time: at, Kind: event.KindExec, Process: proc, Parent: parent, Ancestors: ancestors, Exec: &event.Exec{}},
		"file": {Time: at, Kind: event.KindFile, Process: editor, Parent: parent, Ancestors: ancestors,
			File: &event.File{Op: event.FileOpen, Path: "/etc/hosts", PathResolved: true, Write: true, UID: event.NoUID, GID: event.NoUID}},
		"net": {Time: at, Kind: event.KindNet, Process: curl, Parent: parent, Ancestors: ancestors,
			Net: &event.Net{Op: event.NetConnect, Family: "ipv4", Protocol: "tcp", Type: "stream",
				Source: netip.MustParseAddrPort("10.0.0.5:51234"), Destination: netip.MustParseAddrPort("93.184.216.34:443"), FD: 3}},
	}
}

// BenchmarkEval measures Set.Eval on events that match no rule of
// testdata/bench (30 rules: 12 on exec, 8 on file, 5 on net), as most
// events do: as shipped ("indexed"), without the guard index ("all-rules"),
// and with CEL's own evaluation only ("cel-only": no index, no fast paths).
func BenchmarkEval(b *testing.B) {
	noFastPaths = true
	slow, err := Load(Dir("testdata/bench"))
	noFastPaths = false
	if err != nil {
		b.Fatal(err)
	}
	slow.noIndex = true
	all := mustLoadB(b)
	all.noIndex = true
	sets := []struct {
		name string
		s    *Set
	}{{"indexed", mustLoadB(b)}, {"all-rules", all}, {"cel-only", slow}}
	runtime.GC() // not to time the collection of what Load left
	for _, set := range sets {
		for _, name := range []string{"exec", "file", "net"} {
			e := benchEvents()[name]
			b.Run(set.name+"/"+name, func(b *testing.B) {
				benchEval(b, set.s, e, 0)
			})
		}
	}
}

// BenchmarkEvalAlert measures an exec event that matches one rule: the
// alert event and its message are made.
func BenchmarkEvalAlert(b *testing.B) {
	s := mustLoadB(b)
	e := benchEvents()["exec"]
	e.Process.Executable, e.Process.Name = "/tmp/x", "x"
	runtime.GC()
	benchEval(b, s, e, 1)
}

func benchEval(b *testing.B, s *Set, e *event.Event, want int) {
	b.ReportAllocs()
	alerts := 0
	cpu := cpuTime()
	for b.Loop() {
		s.Eval(e, func(*event.Event) { alerts++ })
	}
	// CPU time, unlike ns/op, leaves out the time other processes of a
	// busy machine took.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	if alerts != want*b.N {
		b.Fatalf("%d alerts in %d evaluations, want %d each", alerts, b.N, want)
	}
}

func mustLoadB(b *testing.B) *Set {
	s, err := Load(Dir("testdata/bench"))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// cpuTime is the process's user and system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
