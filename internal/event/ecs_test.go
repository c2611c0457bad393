package event

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func render(t *testing.T, e *Event) map[string]any {
	t.Helper()
	b, err := json.Marshal(e.Doc(&Host{Name: "h1", BootID: "b"}, 7))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") {
		t.Fatalf("document contains a raw newline: %s", b)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func get(d map[string]any, path string) any {
	var cur any = d
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func TestDocFields(t *testing.T) {
	at := time.Date(2026, 11, 27, 6, 0, 0, 123, time.UTC)
	proc := Process{PID: 10, TID: 11, PPID: 1, Name: "x", Executable: "/usr/bin/x", Args: []string{"x", "a\nb", "\x1b[0m"},
		UID: 1000, EUID: 0, AUID: NoUID, SessionID: NoUID, CgroupID: 5}
	tests := []struct {
		name string
		e    Event
		want map[string]any
	}{
		{"exec", Event{Time: at, Kind: KindExec, Process: proc, Exec: &Exec{SecureExec: true, StdinSocket: true}}, map[string]any{
			"@timestamp": "2026-11-27T06:00:00.000000123Z", "event.action": "exec", "event.type": []any{"start"},
			"event.dataset": "vigil.process", "event.sequence": 7.0, "process.pid": 10.0, "process.thread.id": 11.0,
			"process.args": []any{"x", "a\nb", "\x1b[0m"}, "process.user.id": "0", "process.real_user.id": "1000",
			"user.id": "1000", "user.audit": nil, "vigil.exec.secure_exec": true, "vigil.exec.stdin_socket": true,
			"vigil.cgroup.id": 5.0, "host.name": "h1", "host.boot.id": "b", "event.outcome": nil,
		}},
		{"exit by signal", Event{Time: at, Kind: KindExit, Process: proc, Exit: &ExitStatus{Code: 137, Signal: 9}}, map[string]any{
			"event.type": []any{"end"}, "process.exit_code": 137.0, "vigil.exit.signal_name": "SIGKILL", "process.end": "2026-11-27T06:00:00.000000123Z",
		}},
		{"file rename failed", Event{Kind: KindFile, Process: proc, Return: -13, File: &File{Op: FileRename, Path: "/etc/a", TargetPath: "/etc/b", RawPath: "a"}}, map[string]any{
			"event.category": []any{"file"}, "event.type": []any{"change"}, "event.action": "rename", "event.outcome": "failure",
			"error.code": "EACCES", "vigil.return": -13.0, "file.path": "/etc/a", "file.name": "a", "file.directory": "/etc",
			"file.target_path": "/etc/b", "vigil.file.raw_path": "a", "event.dataset": "vigil.file",
		}},
		{"chmod setuid", Event{Kind: KindFile, Process: proc, File: &File{Op: FileChmod, Path: "/tmp/x", Mode: 0o104755, Inode: 42, Device: 8<<20 | 1}}, map[string]any{
			"file.mode": "04755", "file.inode": "42", "file.device": "8:1", "event.outcome": "success",
		}},
		{"dns", Event{Kind: KindNet, Process: proc, Net: &Net{Op: NetDNS, Family: "ipv4", Protocol: "udp",
			Destination: netip.MustParseAddrPort("127.0.0.1:53"), DNS: &DNSQuestion{ID: 9, Name: "evil.example", Type: "TXT"}}}, map[string]any{
			"destination.ip": "127.0.0.1", "destination.port": 53.0, "network.transport": "udp", "network.direction": "egress",
			"dns.question.name": "evil.example", "dns.question.type": "TXT", "event.category": []any{"network"},
		}},
		{"cred", Event{Kind: KindCred, Process: proc, Cred: &Cred{Op: CredSetuid, Args: []uint32{0}, Old: Creds{UID: 1000}, New: Creds{CapEffective: 0x1ff}}}, map[string]any{
			"event.action": "setuid", "vigil.cred.old.uid": 1000.0, "vigil.cred.new.cap_effective": "0x1ff",
		}},
		{"kernel", Event{Kind: KindKernel, Process: proc, Kernel: &Kernel{Op: KernelMount, Source: "none", Target: "/mnt", FSType: "tmpfs"}}, map[string]any{
			"event.category": []any{"configuration"}, "vigil.kernel.target": "/mnt", "vigil.kernel.fstype": "tmpfs",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := render(t, &tt.e)
			got := map[string]any{}
			for k := range tt.want {
				got[k] = get(d, k)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("document fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeWaitStatus(t *testing.T) {
	for ws, want := range map[uint32]ExitStatus{0: {}, 1 << 8: {Code: 1}, 255 << 8: {Code: 255}, 9: {Code: 137, Signal: 9}, 6 | 0x80: {Code: 134, Signal: 6, CoreDumped: true}} {
		if got := DecodeWaitStatus(ws); got != want {
			t.Errorf("DecodeWaitStatus(%#x) = %+v, want %+v", ws, got, want)
		}
	}
}

func TestAlertDoc(t *testing.T) {
	trigger := &Event{Kind: KindExec, Process: Process{PID: 3, Executable: "/tmp/x"}}
	a := NewAlert(Alert{RuleID: "exec-from-writable-dir", RuleName: "Exec from /tmp", Severity: SeverityWarning,
		MITRE: []string{"T1059"}, Tags: []string{"execution"}, Message: "x ran\n", Response: "alert"}, trigger)
	d := render(t, a)
	want := map[string]any{
		"event.kind": "alert", "event.severity": 3.0, "rule.id": "exec-from-writable-dir", "message": "x ran\n",
		"threat.technique": []any{map[string]any{"id": "T1059"}}, "vigil.alert.severity": "warning",
		"vigil.alert.trigger.process.executable": "/tmp/x", "process.executable": "/tmp/x", "tags": []any{"execution"},
	}
	got := map[string]any{}
	for k := range want {
		got[k] = get(d, k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alert document (-want +got):\n%s", diff)
	}
}
