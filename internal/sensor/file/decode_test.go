package file

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var boot = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// enc encodes a path the way bpf/lib/path.h writes it: components leaf
// first, each NUL-terminated.
func enc(p string) []byte {
	var b []byte
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" {
			b = append(append(b, parts[i]...), 0)
		}
	}
	return b
}

func cstr(s string) []byte {
	if s == "" {
		return nil
	}
	return append([]byte(s), 0)
}

// rec builds a file record the way file.bpf.c lays it out.
func rec(t testing.TB, raw bpfFileEvent, path1, raw1, path2, raw2 []byte) []byte {
	t.Helper()
	raw.Hdr = bpfEventHeader{KtimeNs: 5e9, Type: sensor.TypeFile}
	raw.Task = task()
	raw.PathLen, raw.RawLen, raw.Path2Len, raw.Raw2Len = uint16(len(path1)), uint16(len(raw1)), uint16(len(path2)), uint16(len(raw2))
	b, err := binary.Append(nil, binary.LittleEndian, &raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]byte{path1, raw1, path2, raw2} {
		b = append(b, part...)
	}
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)))
	return b
}

func task() bpfTaskInfo {
	ti := bpfTaskInfo{StartNs: 4e9, ParentStartNs: 1e9, CgroupId: 77, Pid: 100, Tid: 101, Ppid: 42, Uid: 1000, Gid: 1000,
		Euid: 0, Egid: 0, Auid: 1000, Sessionid: 3}
	for i, c := range "vi" {
		ti.Comm[i] = int8(c)
	}
	return ti
}

func wantEvent(ret int64, f event.File) event.Event {
	return event.Event{
		Time: boot.Add(5 * time.Second), Kind: event.KindFile, Return: ret,
		Process: event.Process{PID: 100, TID: 101, PPID: 42, Start: boot.Add(4 * time.Second), StartBoot: 4e9,
			ParentStartBoot: 1e9, Name: "vi", UID: 1000, GID: 1000, AUID: 1000, SessionID: 3, CgroupID: 77},
		File: &f,
	}
}

const (
	resolved  = uint32(bpfFileFlagFILE_PATH_RESOLVED)
	watched   = uint32(bpfFileFlagFILE_WATCHED)
	write     = uint32(bpfFileFlagFILE_WRITE)
	truncated = uint32(bpfFileFlagFILE_PATH_TRUNCATED)
	noID      = event.NoUID
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		rec  []byte
		want event.Event
	}{
		{
			name: "write-open resolved from the fd",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_OPEN), Ret: 3, Flags: resolved | watched | write,
				OpenFlags: 0o1101, Mode: 0o100644, Ino: 42, Dev: 8<<20 | 1},
				enc("/etc/cron.d/evil"), cstr("evil"), nil, nil),
			want: wantEvent(3, event.File{Op: event.FileOpen, Path: "/etc/cron.d/evil", PathResolved: true, RawPath: "evil",
				OpenFlags: 0o1101, Mode: 0o100644, Inode: 42, Device: 8<<20 | 1, Write: true, Watched: true}),
		},
		{
			name: "create",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_CREATE), Ret: 4, Flags: resolved | write,
				OpenFlags: 0o101, Mode: 0o100600, Uid: 1000, Gid: 1000, Ino: 7, Dev: 3},
				enc("/tmp/x"), cstr("/tmp/./x"), nil, nil),
			want: wantEvent(4, event.File{Op: event.FileCreate, Path: "/tmp/x", PathResolved: true, RawPath: "/tmp/./x",
				OpenFlags: 0o101, Mode: 0o100600, UID: 1000, GID: 1000, Inode: 7, Device: 3, Write: true}),
		},
		{
			name: "failed open: base directory and string joined",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_OPEN), Ret: -2, Flags: write, OpenFlags: 1, Uid: noID, Gid: noID},
				enc("/home/u"), cstr("../v/./nodir/x"), nil, nil),
			want: wantEvent(-2, event.File{Op: event.FileOpen, Path: "/home/v/nodir/x", RawPath: "../v/./nodir/x",
				OpenFlags: 1, UID: noID, GID: noID, Write: true}),
		},
		{
			name: "absolute string from the root",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_UNLINK), Flags: watched, Uid: noID, Gid: noID},
				nil, cstr("/etc//cron.d/x"), nil, nil),
			want: wantEvent(0, event.File{Op: event.FileUnlink, Path: "/etc/cron.d/x", RawPath: "/etc//cron.d/x",
				UID: noID, GID: noID, Watched: true}),
		},
		{
			name: "absolute string from a chroot",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_UNLINK), Uid: noID, Gid: noID},
				enc("/srv/jail"), cstr("/etc/passwd"), nil, nil),
			want: wantEvent(0, event.File{Op: event.FileUnlink, Path: "/srv/jail/etc/passwd", RawPath: "/etc/passwd",
				UID: noID, GID: noID}),
		},
		{
			name: "rename",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_RENAME), Flags: watched, Uid: noID, Gid: noID},
				enc("/tmp"), cstr("evil"), enc("/"), cstr("usr/bin/ls")),
			want: wantEvent(0, event.File{Op: event.FileRename, Path: "/tmp/evil", RawPath: "evil",
				TargetPath: "/usr/bin/ls", TargetRawPath: "usr/bin/ls", UID: noID, GID: noID, Watched: true}),
		},
		{
			name: "symlink: content seen from the link's directory",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_SYMLINK), Uid: noID, Gid: noID},
				nil, cstr("../../etc/shadow"), enc("/var/www/html"), cstr("s")),
			want: wantEvent(0, event.File{Op: event.FileSymlink, Path: "/var/etc/shadow", RawPath: "../../etc/shadow",
				TargetPath: "/var/www/html/s", TargetRawPath: "s", UID: noID, GID: noID}),
		},
		{
			name: "chmod setuid",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_CHMOD), Mode: 0o4755, Uid: noID, Gid: noID},
				enc("/tmp"), cstr("sh"), nil, nil),
			want: wantEvent(0, event.File{Op: event.FileChmod, Path: "/tmp/sh", RawPath: "sh", Mode: 0o4755, UID: noID, GID: noID}),
		},
		{
			name: "fchown resolved, gid unchanged",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_CHOWN), Flags: resolved, Uid: 0, Gid: noID, Ino: 9, Dev: 1},
				enc("/tmp/sh"), nil, nil, nil),
			want: wantEvent(0, event.File{Op: event.FileChown, Path: "/tmp/sh", PathResolved: true, UID: 0, GID: noID,
				Inode: 9, Device: 1}),
		},
		{
			name: "failed rmdir, truncated",
			rec: rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_RMDIR), Ret: -39, Flags: truncated, Uid: noID, Gid: noID},
				enc("/a"), cstr("b"), nil, nil),
			want: wantEvent(-39, event.File{Op: event.FileRmdir, Path: "/a/b", RawPath: "b", PathTruncated: true,
				UID: noID, GID: noID}),
		},
		{
			name: "unknown op",
			rec: rec(t, bpfFileEvent{Op: 99, Uid: noID, Gid: noID},
				enc("/a"), cstr("b"), nil, nil),
			want: wantEvent(0, event.File{Op: "op99", Path: "/a/b", RawPath: "b", UID: noID, GID: noID}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got event.Event
			if err := Decode(tt.rec, sensor.ClockAt(boot), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRejectsShortRecords(t *testing.T) {
	r := rec(t, bpfFileEvent{Op: uint32(bpfFileOpFILE_RENAME)}, enc("/tmp"), cstr("a"), enc("/tmp"), cstr("b"))
	for _, n := range []int{0, 10, fileSize - 1, len(r) - 1} {
		var e event.Event
		if err := Decode(r[:n], sensor.ClockAt(boot), &e); err == nil {
			t.Errorf("Decode of %d of %d bytes succeeded", n, len(r))
		}
	}
}

func TestRecordLayout(t *testing.T) {
	if got := binary.Size(bpfEventHeader{}); got != sensor.HeaderSize {
		t.Fatalf("event_header is %d bytes, sensor.HeaderSize says %d", got, sensor.HeaderSize)
	}
	if got := binary.Size(bpfTaskInfo{}); got != sensor.TaskSize {
		t.Fatalf("task_info is %d bytes, sensor.TaskSize says %d", got, sensor.TaskSize)
	}
	if int(bpfFileOpFILE_MKDIR) != len(opNames)-1 {
		t.Fatalf("enum file_op has ops the decoder does not name")
	}
}

// TestHooksMatchPrograms: every hook has its program and every syscall
// program its hook, so New attaches everything it loads.
func TestHooksMatchPrograms(t *testing.T) {
	progs := map[string]bool{}
	v := reflect.TypeOf(bpfPrograms{})
	for i := 0; i < v.NumField(); i++ {
		progs[v.Field(i).Tag.Get("ebpf")] = true
	}
	delete(progs, "vigil_file_rpt") // tail-called, not attached
	for _, hook := range Hooks {
		name := "vigil_" + strings.TrimPrefix(hook, "tracepoint/syscalls/sys_exit_")
		if !progs[name] {
			t.Errorf("hook %s has no program %s", hook, name)
		}
		delete(progs, name)
	}
	for name := range progs {
		t.Errorf("program %s has no hook", name)
	}
}

func BenchmarkDecode(b *testing.B) {
	r := rec(b, bpfFileEvent{Op: uint32(bpfFileOpFILE_OPEN), Ret: 3, Flags: resolved | watched | write,
		OpenFlags: 1, Mode: 0o100644, Ino: 42, Dev: 1},
		enc("/var/lib/postgresql/16/main/base/16384/2619"), cstr("base/16384/2619"), nil, nil)
	clk := sensor.ClockAt(boot)
	b.ReportAllocs()
	b.SetBytes(int64(len(r)))
	var e event.Event
	for b.Loop() {
		if err := Decode(r, clk, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRename(b *testing.B) {
	r := rec(b, bpfFileEvent{Op: uint32(bpfFileOpFILE_RENAME), Uid: noID, Gid: noID},
		enc("/home/user/project"), cstr("build/.tmp123"), enc("/home/user/project"), cstr("build/output.o"))
	clk := sensor.ClockAt(boot)
	b.ReportAllocs()
	var e event.Event
	for b.Loop() {
		if err := Decode(r, clk, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestJoinComponents(t *testing.T) {
	for _, b := range []string{"", "\x00", "a\x00", "c\x00b\x00a\x00", "x y\x00\x00z\x00", "tmp\x00"} {
		if got, want := joinComponents([]byte(b)), sensor.JoinComponents([]byte(b)); got != want {
			t.Errorf("joinComponents(%q) = %q, sensor.JoinComponents says %q", b, got, want)
		}
	}
}
