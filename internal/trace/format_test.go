package trace

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

func TestEsc(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/etc/passwd", "/etc/passwd"},
		{"", `""`},
		{"a b", `"a b"`},
		{"a\nb", `"a\nb"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{`q"uote`, `"q\"uote"`},
		{`back\slash`, `"back\\slash"`},
		{"caf\xc3\xa9", `"café"`},
		{"bad\xff", `"bad\xff"`},
		{"rtl\u202eoverride", `"rtl\u202eoverride"`},
		{"del\x7f", `"del\x7f"`},
	} {
		if got := esc(tt.in); got != tt.want {
			t.Errorf("esc(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestOpenFlags(t *testing.T) {
	for _, tt := range []struct {
		in   uint32
		want string
	}{
		{0, "RDONLY"},
		{0o2000000, "RDONLY|CLOEXEC"},
		{0o1101, "WRONLY|CREAT|TRUNC"},
		{0o2, "RDWR"},
		{0o20200002, "RDWR|TMPFILE"},
		{0o200000, "RDONLY|DIRECTORY"},
		{1 << 30, "RDONLY|0x40000000"},
	} {
		if got := openFlags(tt.in); got != tt.want {
			t.Errorf("openFlags(%#o) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFormatLine(t *testing.T) {
	at := time.Date(2026, 11, 27, 6, 0, 40, 593_000_000, time.Local)
	proc := event.Process{PID: 20911, PPID: 20910, Name: "true", UID: 1000, CgroupID: 4242}
	tests := []struct {
		kind Kind
		e    event.Event
		want string
	}{
		{Exec, event.Event{Kind: event.KindExec, Process: event.Process{PID: 20911, PPID: 20910, Name: "true", UID: 1000,
			CgroupID: 4242, Executable: "/usr/bin/true", Args: []string{"/bin/true", "a", "b c", "x\ny"}}},
			`06:00:40.593   20911 true             4242       20910 1000   /usr/bin/true /bin/true a "b c" "x\ny"`},
		{Open, event.Event{Kind: event.KindFile, Process: proc, Return: 3,
			File: &event.File{Op: event.FileOpen, Path: "/etc/hostname", OpenFlags: 0o2000000}},
			`06:00:40.593   20911 true             4242     open   3       RDONLY|CLOEXEC       /etc/hostname`},
		{Open, event.Event{Kind: event.KindFile, Process: proc, Return: -2,
			File: &event.File{Op: event.FileOpen, Path: "/nope"}},
			`06:00:40.593   20911 true             4242     open   ENOENT  RDONLY               /nope`},
		{File, event.Event{Kind: event.KindFile, Process: proc,
			File: &event.File{Op: event.FileRename, Path: "/tmp/a", TargetPath: "/tmp/b\tc"}},
			`06:00:40.593   20911 true             4242     rename   0       /tmp/a -> "/tmp/b\tc"`},
		{File, event.Event{Kind: event.KindFile, Process: proc,
			File: &event.File{Op: event.FileSymlink, RawPath: "../x"}},
			`06:00:40.593   20911 true             4242     symlink  0       "" -> ../x`},
		{Connect, event.Event{Kind: event.KindNet, Process: proc, Return: -111, Net: &event.Net{Op: event.NetConnect,
			Protocol: "tcp", Source: netip.MustParseAddrPort("10.0.0.1:40000"), Destination: netip.MustParseAddrPort("[::1]:22")}},
			`06:00:40.593   20911 true             4242     connect ECONNREFUSED tcp   10.0.0.1:40000         [::1]:22`},
		{Connect, event.Event{Kind: event.KindNet, Process: proc, Return: -2, Net: &event.Net{Op: event.NetConnect, Family: "unix"}},
			`06:00:40.593   20911 true             4242     connect ENOENT       unix  -                      -`},
		{DNS, event.Event{Kind: event.KindNet, Process: proc, Return: 41, Net: &event.Net{Op: event.NetDNS,
			Destination: netip.MustParseAddrPort("127.0.0.53:53"), DNS: &event.DNSQuestion{Name: "evil\x00.com", Type: "TXT"}}},
			`06:00:40.593   20911 true             4242     41      127.0.0.53:53          TXT    "evil\x00.com"`},
		{Cred, event.Event{Kind: event.KindCred, Process: proc, Cred: &event.Cred{Op: event.CredSetreuid,
			Args: []uint32{65534, event.NoUID}, Old: event.Creds{UID: 0, EUID: 0, SUID: 0}, New: event.Creds{UID: 65534, EUID: 0, SUID: 0}}},
			`06:00:40.593   20911 true             4242     setreuid(65534,-1)       0       uid 0->65534`},
		{Signal, event.Event{Kind: event.KindKernel, Process: proc, Kernel: &event.Kernel{Op: event.KernelSignal,
			ArgName: "SIGTERM", TargetPID: uint32(0xffffffff - 99)}},
			`06:00:40.593   20911 true             4242     0          -100 SIGTERM`},
	}
	for _, tt := range tests {
		tt.e.Time = at
		got := string(formatLine(nil, tt.kind, &tt.e))
		if diff := cmp.Diff(tt.want+"\n", got); diff != "" {
			t.Errorf("%s line (-want +got):\n%s", tt.kind, diff)
		}
		if strings.Count(got, "\n") != 1 {
			t.Errorf("%s line is not one line: %q", tt.kind, got)
		}
		// The header names every column of fixed-size lines.
		if h, l := len(strings.Fields(header(tt.kind))), len(strings.Fields(got)); tt.kind != Exec && tt.kind != File && tt.kind != Cred && h != l {
			t.Errorf("%s: header has %d columns, line %d", tt.kind, h, l)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string // in the error; "" for none
	}{
		{Options{Kind: Open}, ""},
		{Options{Kind: "nope"}, "no trace kind"},
		{Options{Kind: Open, Failed: true, Success: true}, "exclude each other"},
		{Options{Kind: Exec, Failed: true}, "failed execs"},
		{Options{Kind: Exec, Success: true}, ""},
		{Options{Kind: Open, Ports: []uint16{80}}, "--port applies"},
		{Options{Kind: Connect, Ports: []uint16{80}}, ""},
		{Options{Kind: Cred, Paths: []string{"/etc"}}, "--path applies"},
		{Options{Kind: Exec, Paths: []string{"/tmp"}}, ""},
		{Options{Kind: Open, Count: -1}, "--count"},
		{Options{Kind: Open, Comms: []string{""}}, "empty"},
		{Options{Kind: Open, RingBufferMiB: 3}, "power of two"},
	} {
		err := tt.o.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.o, err, tt.want)
		}
	}
}

func TestHasPathPrefix(t *testing.T) {
	for _, tt := range []struct {
		p, prefix string
		want      bool
	}{
		{"/etc/passwd", "/etc", true},
		{"/etc", "/etc", true},
		{"/etc/", "/etc/", true},
		{"/etcetera", "/etc", false},
		{"/etc/passwd", "/etc/passwd", true},
		{"/etc/passwd-", "/etc/passwd", false},
		{"/anything", "/", true},
	} {
		if got := hasPathPrefix(tt.p, tt.prefix); got != tt.want {
			t.Errorf("hasPathPrefix(%q, %q) = %v", tt.p, tt.prefix, got)
		}
	}
}

func TestUserFilter(t *testing.T) {
	f, err := newUserFilter(&Options{Kind: Open, PIDs: []uint32{7}, Comms: []string{"a-very-long-process-name"},
		UIDs: []uint32{1000}, Paths: []string{"/srv/data/"}, Failed: true})
	if err != nil {
		t.Fatal(err)
	}
	ok := event.Event{Return: -13, Process: event.Process{PID: 7, Name: "a-very-long-pro", UID: 1000},
		File: &event.File{Op: event.FileOpen, Path: "/srv/data/x"}}
	if !f.match(&ok) {
		t.Errorf("%+v does not match", ok)
	}
	for name, change := range map[string]func(e *event.Event){
		"pid":     func(e *event.Event) { e.Process.PID = 8 },
		"comm":    func(e *event.Event) { e.Process.Name = "other" },
		"uid":     func(e *event.Event) { e.Process.UID = 0 },
		"path":    func(e *event.Event) { e.File = &event.File{Op: event.FileOpen, Path: "/srv/database"} },
		"outcome": func(e *event.Event) { e.Return = 3 },
	} {
		e := ok
		change(&e)
		if f.match(&e) {
			t.Errorf("another %s matches: %+v", name, e)
		}
	}
	rename := ok
	rename.File = &event.File{Op: event.FileRename, Path: "/tmp/x", TargetPath: "/srv/data/x"}
	if !f.match(&rename) {
		t.Error("a rename into the path does not match")
	}

	ports, _ := newUserFilter(&Options{Kind: Connect, Ports: []uint16{443}})
	conn := event.Event{Net: &event.Net{Source: netip.MustParseAddrPort("10.0.0.1:5000"), Destination: netip.MustParseAddrPort("1.1.1.1:443")}}
	if !ports.match(&conn) {
		t.Error("the remote port does not match")
	}
	conn.Net.Destination = netip.MustParseAddrPort("1.1.1.1:80")
	if ports.match(&conn) {
		t.Error("port 80 matches --port 443")
	}
}

func TestSummary(t *testing.T) {
	s := Stats{Kind: Open, Records: "file", Received: 10, Shown: 4,
		Kernel: map[string]sensor.Counts{"file": {Sent: 10, Lost: 1, Filtered: 500}}}
	want := "4 events shown; 10 file records received, 6 of them left out by user-space filters\n" +
		"in the kernel, file records: sent 10, lost (ring buffer full) 1, filtered 500"
	if diff := cmp.Diff(want, s.Summary()); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}
