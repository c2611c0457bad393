package rules

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

func TestGuards(t *testing.T) {
	s := mustLoad(t, Dir("testdata/bench"))
	got := map[string]string{}
	for _, r := range s.rules {
		var fields []string
		for _, g := range r.guard {
			fields = append(fields, g.field.name)
		}
		if fields != nil {
			got[r.info.ID] = strings.Join(fields, " ")
		}
	}
	want := map[string]string{
		"web-server-spawns-shell": "name", "reverse-shell": "stdin_socket", "deleted-binary": "file_unlinked",
		"setuid-exec-from-tmp": "executable", "recon-tool": "name", "curl-pipe-shell": "name",
		"base64-decode-exec": "name", "crontab-edit": "name", "sudo-from-web": "name", "passwd-written": "path",
		"shadow-read": "path", "ssh-key-written": "write", "setuid-chmod": "action", "log-deleted": "path",
		"cron-written": "path path", "suspicious-port": "port", "shell-connects-out": "executable name", "history-cleared": "name name",
		"web-server-connects-out": "name", "binary-dir-write": "directory", "dns-tunnel": "action", "listen-from-tmp": "executable",
		"setuid-root": "euid", "module-load": "action", "ptrace-attach": "arg_name", "user-namespace": "action",
		"fileless-exec": "path", "crash-loop": "exit_signal", "exec-from-writable-dir": "executable",
		"interpreter-from-tmp": "script",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("guards (-want +got):\n%s", diff)
	}
}

// randomEvent makes events from values the benchmark's rules test, so
// that guards hold often.
func randomEvent(r *rand.Rand) *event.Event {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	kinds := event.Kinds()
	e := &event.Event{Kind: kinds[r.IntN(len(kinds))], Return: int64(r.IntN(2)) * -1}
	proc := func() event.Process {
		return event.Process{PID: r.Uint32N(100), Name: pick("sh", "bash", "nmap", "base64", "crontab", "sudo", "ls", "rm", "useradd", "sshd"),
			Executable: pick("/tmp/x", "/bin/sh", "/usr/bin/ls", "/dev/shm/y", "/usr/bin/bash", "/tmp", "/tmpx/y", "/var/tmp/z", "/memfd:x", ""), Script: pick("", "/tmp/s.py"),
			Args: []string{pick("x", "-d", "--decode", "/root/.bash_history", "a")}, EUID: r.Uint32N(2) * 1000}
	}
	e.Process = proc()
	if r.IntN(4) > 0 {
		p := proc()
		p.Name = pick("nginx", "bash", "curl", "dpkg", "sshd", "php-fpm")
		e.Parent = &p
	}
	switch e.Kind {
	case event.KindExec:
		e.Exec = &event.Exec{SecureExec: r.IntN(2) == 0, FileUnlinked: r.IntN(2) == 0, StdinSocket: r.IntN(2) == 0, StdoutSocket: r.IntN(2) == 0}
	case event.KindExit:
		e.Exit = &event.ExitStatus{Signal: pick2(r, 0, 11, 9)}
	case event.KindFile:
		e.File = &event.File{Op: event.FileOp(pick("open", "create", "chmod", "unlink")), Write: r.IntN(2) == 0, Mode: uint32(r.IntN(8192)),
			Path: pick("/etc/passwd", "/etc/shadow", "/var/log/x", "/etc/crontab", "/usr/bin/ls", "/home/a/.ssh/authorized_keys", "/tmp/f",
				"/var/log", "/var/logs/x", "/tmp", "/tmpx/f", "", "/", "/etc/sudoers.d/x", "/etc/.x", "/var/log/auth.log", "/etc/cron.d/job"),
			TargetPath: pick("", "/etc/shadow", "/var/log/wtmp", "/etc/sudoers", "/etc/cron.daily/x")}
	case event.KindNet:
		e.Net = &event.Net{Op: event.NetOp(pick("connect", "dns", "listen", "bind")), Family: pick("ipv4", "unix"),
			Destination: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(pick2(r, 443, 4444, 8081))),
			DNS:         &event.DNSQuestion{Name: pick("a.example", string(make([]byte, 120)))}}
	case event.KindCred:
		e.Cred = &event.Cred{Op: event.CredSetuid, Old: event.Creds{EUID: r.Uint32N(2) * 1000}, New: event.Creds{EUID: r.Uint32N(2) * 1000}}
	case event.KindKernel:
		e.Kernel = &event.Kernel{Op: event.KernelOp(pick("module_load", "ptrace", "unshare", "execveat")),
			ArgName: pick("PTRACE_ATTACH", "PTRACE_PEEKDATA"), FlagNames: []string{pick("CLONE_NEWUSER", "CLONE_NEWNS")}, Path: pick("/memfd:x", "/tmp/x.ko")}
	}
	return e
}

func pick2(r *rand.Rand, xs ...int) int { return xs[r.IntN(len(xs))] }

// TestIndexEquivalent checks that the index changes nothing: the same
// alerts as evaluating every rule of the kind.
func TestIndexEquivalent(t *testing.T) {
	for _, dir := range []string{"testdata/bench", "defaults"} {
		t.Run(dir, func(t *testing.T) { testIndexEquivalent(t, mustLoad(t, Dir(dir))) })
	}
}

func testIndexEquivalent(t *testing.T, s *Set) {
	var events []*event.Event
	for _, r := range s.rules {
		for _, tc := range r.tests {
			events = append(events, tc.event)
		}
	}
	var full event.Event
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n, 0)
	events = append(events, &full)
	for _, e := range benchEvents() {
		events = append(events, e)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		events = append(events, randomEvent(rnd))
	}
	total := 0
	for _, e := range events {
		s.noIndex = false
		indexed := alerts(t, s, e)
		s.noIndex = true
		all := alerts(t, s, e)
		total += len(all)
		if diff := cmp.Diff(all, indexed); diff != "" {
			t.Fatalf("event %+v: alerts with the index (-without +with):\n%s", e, diff)
		}
	}
	if total < 1000 {
		t.Errorf("only %d alerts in all: the events test too little", total)
	}
}

func TestPrefixTree(t *testing.T) {
	root := &prefixNode{}
	prefixes := []string{"/etc/", "/etc/sudoers", "/etc/sudoers.d/", "/e", "/var/log/", "/var/lib/", "/", "/etc/"}
	for i, p := range prefixes {
		n := root.insert(p)
		if n.rules == nil {
			n.rules = make([]uint64, 1)
		}
		n.rules[0] |= 1 << i
	}
	for _, v := range []string{"", "/", "/e", "/etc", "/etc/", "/etc/sudoers", "/etc/sudoers.d/x", "/etc/sudoersX", "/var/log", "/var/log/x",
		"/var/lib/x", "/var/li", "x/etc/", "/etc/passwd"} {
		var want uint64
		for i, p := range prefixes {
			if strings.HasPrefix(v, p) {
				want |= 1 << i
			}
		}
		got := make([]uint64, 1)
		root.match(v, got)
		if got[0] != want {
			t.Errorf("match(%q) = %b, want %b", v, got[0], want)
		}
	}
}
