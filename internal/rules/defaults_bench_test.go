package rules_test

import (
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/rules/defaults"
)

// BenchmarkBuiltinRules is the cost of the full built-in rule set per event,
// on ordinary events of each kind that no rule matches (most events are):
//
//	go test -run - -bench BuiltinRules ./internal/rules/
func BenchmarkBuiltinRules(b *testing.B) {
	set, err := rules.Load(defaults.Source())
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	proc := event.Process{PID: 20911, PPID: 20910, Start: at, EntityID: "7f1e0f2a0b7cda79", Name: "ls",
		Executable: "/usr/bin/ls", Filename: "/bin/ls", Args: []string{"ls", "-la", "/var/log"}, ArgsCount: 3,
		WorkingDir: "/home/alice", UID: 1000, GID: 1000, EUID: 1000, EGID: 1000, AUID: 1000, SessionID: 3, CgroupID: 4242}
	parent := &event.Process{PID: 20910, PPID: 1800, EntityID: "1ee4a1b2c9c288f5", Name: "bash", Executable: "/usr/bin/bash",
		Args: []string{"bash"}, ArgsCount: 1, WorkingDir: "/home/alice", UID: 1000, GID: 1000, EUID: 1000, EGID: 1000}
	ancestors := []event.Ancestor{{PID: 1800, Name: "sshd", Executable: "/usr/sbin/sshd"}, {PID: 1, Name: "systemd", Executable: "/usr/lib/systemd/systemd"}}
	with := func(name, exe string, args ...string) event.Process {
		p := proc
		p.Name, p.Executable, p.Args = name, exe, append([]string{name}, args...)
		return p
	}
	events := []struct {
		name string
		e    event.Event
	}{
		{"exec", event.Event{Kind: event.KindExec, Process: proc, Parent: parent, Ancestors: ancestors, Exec: &event.Exec{}}},
		{"file", event.Event{Kind: event.KindFile, Process: with("vim", "/usr/bin/vim", "notes.txt"), Parent: parent, Ancestors: ancestors,
			File: &event.File{Op: event.FileOpen, Path: "/home/alice/notes.txt", PathResolved: true, Write: true, UID: event.NoUID, GID: event.NoUID}}},
		{"file-rename", event.Event{Kind: event.KindFile, Process: with("vim", "/usr/bin/vim", "notes.txt"), Parent: parent, Ancestors: ancestors,
			File: &event.File{Op: event.FileRename, Path: "/home/alice/.notes.txt.swp", TargetPath: "/home/alice/notes.txt", PathResolved: true, UID: event.NoUID, GID: event.NoUID}}},
		{"file-log-append", event.Event{Kind: event.KindFile, Process: with("rsyslogd", "/usr/sbin/rsyslogd", "-n"), Parent: parent, Ancestors: ancestors,
			File: &event.File{Op: event.FileOpen, Path: "/var/log/syslog", PathResolved: true, Write: true, OpenFlags: 02101, UID: event.NoUID, GID: event.NoUID}}},
		{"file-create-tmp", event.Event{Kind: event.KindFile, Process: with("cc1", "/usr/libexec/gcc/x86_64-linux-gnu/14/cc1"), Parent: parent, Ancestors: ancestors,
			File: &event.File{Op: event.FileCreate, Path: "/tmp/ccA1b2.s", PathResolved: true, Write: true, UID: event.NoUID, GID: event.NoUID}}},
		{"file-chmod", event.Event{Kind: event.KindFile, Process: with("chmod", "/usr/bin/chmod", "+x", "build.sh"), Parent: parent, Ancestors: ancestors,
			File: &event.File{Op: event.FileChmod, Path: "/home/alice/build.sh", Mode: 0o755, PathResolved: true, UID: event.NoUID, GID: event.NoUID}}},
		{"net", event.Event{Kind: event.KindNet, Process: with("curl", "/usr/bin/curl", "https://example.com/"), Parent: parent, Ancestors: ancestors,
			Net: &event.Net{Op: event.NetConnect, Family: "ipv4", Protocol: "tcp", Type: "stream",
				Source: netip.MustParseAddrPort("10.0.0.5:51234"), Destination: netip.MustParseAddrPort("93.184.216.34:443"), FD: 3}}},
		{"net-listen", event.Event{Kind: event.KindNet, Process: with("sshd", "/usr/sbin/sshd", "-D"), Parent: parent, Ancestors: ancestors,
			Net: &event.Net{Op: event.NetListen, Family: "ipv4", Protocol: "tcp", Type: "stream", Source: netip.MustParseAddrPort("0.0.0.0:22"), FD: 3}}},
		{"cred", event.Event{Kind: event.KindCred, Process: with("cron", "/usr/sbin/cron", "-f"), Parent: parent, Ancestors: ancestors,
			Cred: &event.Cred{Op: event.CredSetresuid, Old: event.Creds{}, New: event.Creds{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000}}}},
		{"kernel", event.Event{Kind: event.KindKernel, Process: with("bpftool", "/usr/sbin/bpftool", "prog", "show"), Parent: parent, Ancestors: ancestors,
			Kernel: &event.Kernel{Op: event.KernelBPF, ArgName: "BPF_OBJ_GET_INFO_BY_FD"}}},
	}
	for _, ev := range events {
		b.Run(ev.name, func(b *testing.B) {
			e := ev.e
			e.Time = at
			b.ReportAllocs()
			alerts := 0
			cpu := cpuTime()
			for b.Loop() {
				set.Eval(&e, func(al *event.Event) { alerts++ })
			}
			// CPU time, unlike ns/op, leaves out the time other processes of a
			// busy machine took.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			if alerts != 0 {
				b.Errorf("%d alerts: the benchmark's %s event must match no rule", alerts/b.N, ev.name)
			}
		})
	}
}

// cpuTime is the process's user and system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
