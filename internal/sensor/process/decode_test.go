package process

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var boot = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// execRecord builds an exec record the way process.bpf.c lays it out.
func execRecord(t testing.TB, flags, argc uint32, path, cwd []string, filename string, args []byte) []byte {
	t.Helper()
	enc := func(components []string) []byte {
		var b []byte
		for i := len(components) - 1; i >= 0; i-- { // leaf first
			b = append(append(b, components[i]...), 0)
		}
		return b
	}
	p, c := enc(path), enc(cwd)
	f := append([]byte(filename), 0)
	raw := bpfExecEvent{
		Hdr:         bpfEventHeader{KtimeNs: 5e9, Type: uint16(sensor.TypeExec)},
		Task:        task(),
		Flags:       flags,
		Argc:        argc,
		ArgsSize:    uint32(len(args)),
		PathLen:     uint16(len(p)),
		CwdLen:      uint16(len(c)),
		FilenameLen: uint16(len(f)),
		ArgsLen:     uint16(len(args)),
	}
	b, err := binary.Append(nil, binary.LittleEndian, &raw)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, p...)
	b = append(b, c...)
	b = append(b, f...)
	return append(b, args...)
}

func task() bpfTaskInfo {
	ti := bpfTaskInfo{
		StartNs: 4e9, ParentStartNs: 1e9, CgroupId: 77,
		Pid: 100, Tid: 100, Ppid: 42,
		Uid: 1000, Gid: 1000, Euid: 0, Egid: 0, Auid: 1000, Sessionid: 3,
	}
	for i, c := range "true" {
		ti.Comm[i] = int8(c)
	}
	return ti
}

func wantProcess() event.Process {
	return event.Process{
		PID: 100, TID: 100, PPID: 42,
		Start: boot.Add(4 * time.Second), StartBoot: 4e9, ParentStartBoot: 1e9,
		Name: "true", UID: 1000, GID: 1000, AUID: 1000, SessionID: 3, CgroupID: 77,
	}
}

func TestDecodeExec(t *testing.T) {
	tests := []struct {
		name  string
		rec   []byte
		patch func(p *event.Process)
	}{
		{
			name: "plain",
			rec:  execRecord(t, 0, 3, []string{"usr", "bin", "true"}, []string{"usr", "bin"}, "./true", []byte("./true\x00a\x00b c\x00")),
			patch: func(p *event.Process) {
				p.Executable, p.WorkingDir, p.Filename = "/usr/bin/true", "/usr/bin", "./true"
				p.Args, p.ArgsCount = []string{"./true", "a", "b c"}, 3
			},
		},
		{
			name: "script relative to cwd",
			rec: execRecord(t, uint32(bpfExecFlagEXEC_INTERPRETED), 2, []string{"usr", "bin", "dash"}, []string{"home", "u"},
				"bin/x.sh", []byte("/bin/sh\x00bin/x.sh\x00")),
			patch: func(p *event.Process) {
				p.Executable, p.WorkingDir, p.Filename, p.Script = "/usr/bin/dash", "/home/u", "bin/x.sh", "/home/u/bin/x.sh"
				p.Args, p.ArgsCount = []string{"/bin/sh", "bin/x.sh"}, 2
			},
		},
		{
			name: "root directory and no args",
			rec:  execRecord(t, 0, 0, []string{"init"}, nil, "/init", nil),
			patch: func(p *event.Process) {
				p.Executable, p.WorkingDir, p.Filename = "/init", "/", "/init"
			},
		},
		{
			name: "truncated argv keeps the cut argument",
			rec: execRecord(t, uint32(bpfExecFlagEXEC_ARGS_TRUNCATED|bpfExecFlagEXEC_PATH_TRUNCATED), 5000,
				[]string{"x"}, []string{"tmp"}, "/x", []byte("/x\x00aaaa\x00bb")),
			patch: func(p *event.Process) {
				p.Executable, p.WorkingDir, p.Filename = "/x", "/tmp", "/x"
				p.Args, p.ArgsCount, p.ArgsTruncated, p.PathTruncated = []string{"/x", "aaaa", "bb"}, 5000, true, true
			},
		},
		{
			name: "hostile strings carried as they are",
			rec: execRecord(t, 0, 2, []string{"tmp", "a\nb"}, []string{"tmp"}, "/tmp/a\nb",
				[]byte("/tmp/a\nb\x00\x1b[31m\r\n{\"x\":1}\x00")),
			patch: func(p *event.Process) {
				p.Executable, p.WorkingDir, p.Filename = "/tmp/a\nb", "/tmp", "/tmp/a\nb"
				p.Args, p.ArgsCount = []string{"/tmp/a\nb", "\x1b[31m\r\n{\"x\":1}"}, 2
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got event.Event
			if err := DecodeExec(tt.rec, sensor.ClockAt(boot), &got); err != nil {
				t.Fatal(err)
			}
			want := event.Event{Time: boot.Add(5 * time.Second), Kind: event.KindExec, Process: wantProcess()}
			tt.patch(&want.Process)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("DecodeExec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeExecRejectsShortRecords(t *testing.T) {
	rec := execRecord(t, 0, 1, []string{"bin", "true"}, []string{"tmp"}, "/bin/true", []byte("true\x00"))
	for _, n := range []int{0, 10, execSize - 1, len(rec) - 1} {
		var e event.Event
		if err := DecodeExec(rec[:n], sensor.ClockAt(boot), &e); err == nil {
			t.Errorf("DecodeExec of %d of %d bytes succeeded", n, len(rec))
		}
	}
}

func TestDecodeForkExit(t *testing.T) {
	fork := bpfForkEvent{Hdr: bpfEventHeader{KtimeNs: 5e9, Type: uint16(sensor.TypeFork)}, Task: task()}
	b, _ := binary.Append(nil, binary.LittleEndian, &fork)
	var got event.Event
	if err := DecodeFork(b, sensor.ClockAt(boot), &got); err != nil {
		t.Fatal(err)
	}
	want := event.Event{Time: boot.Add(5 * time.Second), Kind: event.KindFork, Process: wantProcess()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeFork (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		status uint32
		want   event.ExitStatus
	}{
		{0, event.ExitStatus{}},
		{3 << 8, event.ExitStatus{Code: 3}},
		{9, event.ExitStatus{Code: 137, Signal: 9}},
		{11 | 0x80, event.ExitStatus{Code: 139, Signal: 11, CoreDumped: true}},
	} {
		exit := bpfExitEvent{Hdr: bpfEventHeader{KtimeNs: 5e9, Type: uint16(sensor.TypeExit)}, Task: task(), ExitCode: tt.status}
		b, _ := binary.Append(nil, binary.LittleEndian, &exit)
		if err := DecodeExit(b, sensor.ClockAt(boot), &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&tt.want, got.Exit); diff != "" {
			t.Errorf("DecodeExit(status %#x) (-want +got):\n%s", tt.status, diff)
		}
	}
}

func TestRecordSizesMatchHeaderSize(t *testing.T) {
	// The Go mirrors come from the C structs; this catches a header change
	// that sensor.ParseHeader was not told about.
	if got := binary.Size(bpfEventHeader{}); got != sensor.HeaderSize {
		t.Fatalf("event_header is %d bytes, sensor.HeaderSize says %d", got, sensor.HeaderSize)
	}
	if got := binary.Size(bpfTaskInfo{}); got != sensor.TaskSize {
		t.Fatalf("task_info is %d bytes, sensor.TaskSize says %d", got, sensor.TaskSize)
	}
	if uint16(bpfEventTypeEVENT_EXEC) != sensor.TypeExec || uint16(bpfEventTypeEVENT_FORK) != sensor.TypeFork ||
		uint16(bpfEventTypeEVENT_EXIT) != sensor.TypeExit {
		t.Fatal("sensor.Type* constants differ from enum event_type")
	}
}

func BenchmarkDecodeExec(b *testing.B) {
	args := []byte(strings.Repeat("argument\x00", 20))
	rec := execRecord(b, 0, 20, []string{"usr", "lib", "jvm", "bin", "java"}, []string{"srv", "app"}, "/usr/bin/java", args)
	clk := sensor.ClockAt(boot)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	var e event.Event
	for b.Loop() {
		if err := DecodeExec(rec, clk, &e); err != nil {
			b.Fatal(err)
		}
	}
}
