package cred

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var boot = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func task() bpfTaskInfo {
	ti := bpfTaskInfo{
		StartNs: 4e9, ParentStartNs: 1e9, CgroupId: 77,
		Pid: 100, Tid: 101, Ppid: 42,
		Uid: 0, Gid: 0, Euid: 0, Egid: 0, Auid: 1000, Sessionid: 3,
	}
	for i, c := range "python3" {
		ti.Comm[i] = int8(c)
	}
	return ti
}

func wantProcess() event.Process {
	return event.Process{
		PID: 100, TID: 101, PPID: 42,
		Start: boot.Add(4 * time.Second), StartBoot: 4e9, ParentStartBoot: 1e9,
		Name: "python3", AUID: 1000, SessionID: 3, CgroupID: 77,
	}
}

const fullCaps = 1<<41 - 1

var (
	rawRoot = bpfCredIds{CapEffective: fullCaps, CapPermitted: fullCaps}
	root    = event.Creds{CapEffective: fullCaps, CapPermitted: fullCaps}
)

func record(t *testing.T, op bpfCredOp, ret int32, args [3]uint32, old, new bpfCredIds) []byte {
	t.Helper()
	raw := bpfCredEvent{
		Hdr:  bpfEventHeader{KtimeNs: 5e9, Type: sensor.TypeCred, Size: uint32(recordSize)},
		Task: task(), Op: uint32(op), Ret: ret, Args: args, Old: old, New: new,
	}
	b, err := binary.Append(nil, binary.LittleEndian, &raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	nobody := bpfCredIds{Uid: 65534, Euid: 65534, Suid: 65534, Fsuid: 65534, Gid: 65534, Egid: 65534, Sgid: 65534, Fsgid: 65534}
	nobodyGo := event.Creds{UID: 65534, EUID: 65534, SUID: 65534, FSUID: 65534, GID: 65534, EGID: 65534, SGID: 65534, FSGID: 65534}
	tests := []struct {
		name string
		rec  []byte
		ret  int64
		want event.Cred
	}{
		{
			name: "setresuid drops root",
			rec:  record(t, bpfCredOpCRED_SETRESUID, 0, [3]uint32{65534, 65534, 65534}, rawRoot, nobody),
			want: event.Cred{Op: event.CredSetresuid, Args: []uint32{65534, 65534, 65534}, Old: root, New: nobodyGo},
		},
		{
			name: "setuid refused",
			rec:  record(t, bpfCredOpCRED_SETUID, -1, [3]uint32{0}, nobody, nobody),
			ret:  -1,
			want: event.Cred{Op: event.CredSetuid, Args: []uint32{0}, Old: nobodyGo, New: nobodyGo},
		},
		{
			name: "setreuid keeps -1",
			rec:  record(t, bpfCredOpCRED_SETREUID, 0, [3]uint32{event.NoUID, 1000}, rawRoot, bpfCredIds{Euid: 1000, Suid: 1000, Fsuid: 1000}),
			want: event.Cred{Op: event.CredSetreuid, Args: []uint32{event.NoUID, 1000}, Old: root, New: event.Creds{EUID: 1000, SUID: 1000, FSUID: 1000}},
		},
		{
			name: "setregid",
			rec:  record(t, bpfCredOpCRED_SETREGID, 0, [3]uint32{5, 6}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetregid, Args: []uint32{5, 6}, Old: root, New: root},
		},
		{
			name: "setresgid",
			rec:  record(t, bpfCredOpCRED_SETRESGID, 0, [3]uint32{7, 8, 9}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetresgid, Args: []uint32{7, 8, 9}, Old: root, New: root},
		},
		{
			name: "setgid",
			rec:  record(t, bpfCredOpCRED_SETGID, 0, [3]uint32{3}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetgid, Args: []uint32{3}, Old: root, New: root},
		},
		{
			name: "setfsuid",
			rec:  record(t, bpfCredOpCRED_SETFSUID, 0, [3]uint32{4321}, rawRoot, bpfCredIds{Fsuid: 4321, CapPermitted: fullCaps}),
			want: event.Cred{Op: event.CredSetfsuid, Args: []uint32{4321}, Old: root, New: event.Creds{FSUID: 4321, CapPermitted: fullCaps}},
		},
		{
			name: "setfsgid query",
			rec:  record(t, bpfCredOpCRED_SETFSGID, 0, [3]uint32{event.NoUID}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetfsgid, Args: []uint32{event.NoUID}, Old: root, New: root},
		},
		{
			name: "setgroups empty",
			rec:  record(t, bpfCredOpCRED_SETGROUPS, 0, [3]uint32{0}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetgroups, Args: []uint32{0}, Old: root, New: root},
		},
		{
			name: "setgroups one",
			rec:  record(t, bpfCredOpCRED_SETGROUPS, 0, [3]uint32{1, 27}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetgroups, Args: []uint32{1, 27}, Old: root, New: root},
		},
		{
			name: "setgroups many keeps the first two",
			rec:  record(t, bpfCredOpCRED_SETGROUPS, 0, [3]uint32{40, 4, 24}, rawRoot, rawRoot),
			want: event.Cred{Op: event.CredSetgroups, Args: []uint32{40, 4, 24}, Old: root, New: root},
		},
		{
			name: "capset",
			rec:  record(t, bpfCredOpCRED_CAPSET, 0, [3]uint32{0x81, 0x81, 0}, rawRoot, bpfCredIds{CapEffective: 0x81, CapPermitted: 0x81}),
			want: event.Cred{Op: event.CredCapset, Args: []uint32{0x81, 0x81, 0}, Old: root, New: event.Creds{CapEffective: 0x81, CapPermitted: 0x81}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got event.Event
			if err := Decode(tt.rec, sensor.ClockAt(boot), &got); err != nil {
				t.Fatal(err)
			}
			want := event.Event{Time: boot.Add(5 * time.Second), Kind: event.KindCred, Process: wantProcess(), Return: tt.ret, Cred: &tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	rec := record(t, bpfCredOpCRED_SETUID, 0, [3]uint32{}, rawRoot, rawRoot)
	for _, n := range []int{0, 10, sensor.HeaderSize + sensor.TaskSize, len(rec) - 1} {
		var e event.Event
		if err := Decode(rec[:n], sensor.ClockAt(boot), &e); err == nil {
			t.Errorf("Decode of %d of %d bytes succeeded", n, len(rec))
		}
	}
	var e event.Event
	if err := Decode(record(t, 99, 0, [3]uint32{}, rawRoot, rawRoot), sensor.ClockAt(boot), &e); err == nil {
		t.Error("Decode of an unknown op succeeded")
	}
}

func TestContract(t *testing.T) {
	if got := binary.Size(bpfEventHeader{}); got != sensor.HeaderSize {
		t.Fatalf("event_header is %d bytes, sensor.HeaderSize says %d", got, sensor.HeaderSize)
	}
	if got := binary.Size(bpfTaskInfo{}); got != sensor.TaskSize {
		t.Fatalf("task_info is %d bytes, sensor.TaskSize says %d", got, sensor.TaskSize)
	}
	if recordSize != 216 {
		t.Errorf("cred_event is %d bytes, want 216", recordSize)
	}
	spec, err := loadBpf()
	if err != nil {
		t.Fatal(err)
	}
	var secs []string
	for _, p := range spec.Programs {
		secs = append(secs, p.SectionName)
		if len(p.Name) > 15 {
			t.Errorf("program name %s is longer than 15 characters", p.Name)
		}
	}
	if diff := cmp.Diff(Hooks, secs, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("Hooks differ from the object's sections (-Hooks +sections):\n%s", diff)
	}
}
