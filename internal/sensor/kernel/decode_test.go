package kernel

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var boot = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func task() bpfTaskInfo {
	ti := bpfTaskInfo{
		StartNs: 4e9, ParentStartNs: 1e9, CgroupId: 77,
		Pid: 100, Tid: 100, Ppid: 42, Uid: 1000, Gid: 1000, Auid: 1000, Sessionid: 3,
	}
	for i, c := range "evil" {
		ti.Comm[i] = int8(c)
	}
	return ti
}

func wantProcess() event.Process {
	return event.Process{
		PID: 100, TID: 100, PPID: 42,
		Start: boot.Add(4 * time.Second), StartBoot: 4e9, ParentStartBoot: 1e9,
		Name: "evil", UID: 1000, GID: 1000, AUID: 1000, SessionID: 3, CgroupID: 77,
	}
}

// str is a NUL-terminated string, as bpf_probe_read_user_str writes it.
func str(s string) []byte { return append([]byte(s), 0) }

// components is a path as path_write lays it out: leaf first.
func components(parts ...string) []byte {
	var b []byte
	for i := len(parts) - 1; i >= 0; i-- {
		b = append(append(b, parts[i]...), 0)
	}
	return b
}

type fixture struct {
	op         bpfKernelOp
	ret        int32
	flags, arg uint64
	target     uint32
	s1, s2, s3 []byte
}

func (f fixture) record(t testing.TB) []byte {
	t.Helper()
	raw := bpfKernelEvent{
		Hdr:  bpfEventHeader{KtimeNs: 5e9, Type: sensor.TypeKernel},
		Task: task(), Op: uint32(f.op), Ret: f.ret, Flags: f.flags, Arg: f.arg, TargetPid: f.target,
		Str1Len: uint16(len(f.s1)), Str2Len: uint16(len(f.s2)), Str3Len: uint16(len(f.s3)),
	}
	raw.Hdr.Size = uint32(recordSize + len(f.s1) + len(f.s2) + len(f.s3))
	b, err := binary.Append(nil, binary.LittleEndian, &raw)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(append(b, f.s1...), f.s2...), f.s3...)
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   fixture
		ret  int64
		want event.Kernel
	}{
		{
			name: "unshare",
			in:   fixture{op: bpfKernelOpKERNEL_UNSHARE, flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS},
			want: event.Kernel{Op: event.KernelUnshare, Flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS, FlagNames: []string{"CLONE_NEWNS", "CLONE_NEWUSER"}},
		},
		{
			name: "unshare of a time namespace and an unknown bit",
			in:   fixture{op: bpfKernelOpKERNEL_UNSHARE, ret: -1, flags: unix.CLONE_NEWTIME | 1<<40},
			ret:  -1,
			want: event.Kernel{Op: event.KernelUnshare, Flags: unix.CLONE_NEWTIME | 1<<40, FlagNames: []string{"CLONE_NEWTIME", "0x10000000000"}},
		},
		{
			name: "setns of a namespace file",
			in:   fixture{op: bpfKernelOpKERNEL_SETNS, arg: unix.CLONE_NEWNET, s1: str("net:[4026532281]")},
			want: event.Kernel{Op: event.KernelSetns, Arg: unix.CLONE_NEWNET, ArgName: "CLONE_NEWNET", Path: "net:[4026532281]"},
		},
		{
			name: "setns of a pidfd",
			in:   fixture{op: bpfKernelOpKERNEL_SETNS, arg: unix.CLONE_NEWNET | unix.CLONE_NEWNS, target: 555},
			want: event.Kernel{Op: event.KernelSetns, Arg: unix.CLONE_NEWNET | unix.CLONE_NEWNS, ArgName: "CLONE_NEWNS|CLONE_NEWNET", TargetPID: 555},
		},
		{
			name: "setns of any type",
			in:   fixture{op: bpfKernelOpKERNEL_SETNS, s1: str("mnt:[4026531841]")},
			want: event.Kernel{Op: event.KernelSetns, Path: "mnt:[4026531841]"},
		},
		{
			name: "clone with namespaces",
			in:   fixture{op: bpfKernelOpKERNEL_CLONE_NS, ret: 4242, target: 4242, flags: unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_VFORK},
			ret:  4242,
			want: event.Kernel{Op: event.KernelCloneNS, TargetPID: 4242, Flags: unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_VFORK,
				FlagNames: []string{"CLONE_NEWPID", "CLONE_NEWNET", "CLONE_VFORK"}},
		},
		{
			name: "mount",
			in: fixture{op: bpfKernelOpKERNEL_MOUNT, flags: unix.MS_MGC_VAL | unix.MS_NOSUID | unix.MS_NODEV,
				s1: str("overlay"), s2: str("merged"), s3: str("overlay")},
			want: event.Kernel{Op: event.KernelMount, Flags: unix.MS_MGC_VAL | unix.MS_NOSUID | unix.MS_NODEV,
				FlagNames: []string{"MS_NOSUID", "MS_NODEV"}, Source: "overlay", Target: "merged", FSType: "overlay"},
		},
		{
			name: "bind mount without fstype",
			in:   fixture{op: bpfKernelOpKERNEL_MOUNT, flags: unix.MS_BIND | unix.MS_REC, s1: str("/"), s2: str("/mnt/host")},
			want: event.Kernel{Op: event.KernelMount, Flags: unix.MS_BIND | unix.MS_REC, FlagNames: []string{"MS_BIND", "MS_REC"}, Source: "/", Target: "/mnt/host"},
		},
		{
			name: "umount",
			in:   fixture{op: bpfKernelOpKERNEL_UMOUNT, flags: unix.MNT_DETACH, s1: str("/proc")},
			want: event.Kernel{Op: event.KernelUmount, Flags: unix.MNT_DETACH, FlagNames: []string{"MNT_DETACH"}, Target: "/proc"},
		},
		{
			name: "pivot_root",
			in:   fixture{op: bpfKernelOpKERNEL_PIVOT_ROOT, ret: -22, s1: str("/new"), s2: str("/new/old")},
			ret:  -22,
			want: event.Kernel{Op: event.KernelPivotRoot, Source: "/new", Target: "/new/old"},
		},
		{
			name: "ptrace",
			in:   fixture{op: bpfKernelOpKERNEL_PTRACE, arg: unix.PTRACE_SEIZE, target: 1},
			want: event.Kernel{Op: event.KernelPtrace, Arg: unix.PTRACE_SEIZE, ArgName: "PTRACE_SEIZE", TargetPID: 1},
		},
		{
			name: "ptrace unknown request",
			in:   fixture{op: bpfKernelOpKERNEL_PTRACE, arg: 0x4299},
			want: event.Kernel{Op: event.KernelPtrace, Arg: 0x4299, ArgName: "PTRACE_0x4299"},
		},
		{
			name: "finit_module",
			in: fixture{op: bpfKernelOpKERNEL_MODULE_LOAD, ret: -8, arg: 3, flags: 2,
				s1: components("tmp", "rootkit.ko"), s2: str("hide=1")},
			ret: -8,
			want: event.Kernel{Op: event.KernelModuleLoad, Arg: 3, Flags: 2, FlagNames: []string{"MODULE_INIT_IGNORE_VERMAGIC"},
				Path: "/tmp/rootkit.ko", Params: "hide=1"},
		},
		{
			name: "init_module",
			in:   fixture{op: bpfKernelOpKERNEL_MODULE_LOAD, arg: 123456, s2: str("")},
			want: event.Kernel{Op: event.KernelModuleLoad, Arg: 123456},
		},
		{
			name: "memfd_create",
			in:   fixture{op: bpfKernelOpKERNEL_MEMFD_CREATE, ret: 3, flags: unix.MFD_CLOEXEC | unix.MFD_EXEC, s1: str("payload")},
			ret:  3,
			want: event.Kernel{Op: event.KernelMemfdCreate, Flags: unix.MFD_CLOEXEC | unix.MFD_EXEC, FlagNames: []string{"MFD_CLOEXEC", "MFD_EXEC"}, Name: "payload"},
		},
		{
			name: "execveat of a memfd",
			in:   fixture{op: bpfKernelOpKERNEL_EXECVEAT, arg: 3, flags: unix.AT_EMPTY_PATH, s1: components("memfd:payload"), s2: str("")},
			want: event.Kernel{Op: event.KernelExecveat, Arg: 3, Flags: unix.AT_EMPTY_PATH, FlagNames: []string{"AT_EMPTY_PATH"}, Path: "/memfd:payload"},
		},
		{
			name: "execveat relative to a directory fd",
			in:   fixture{op: bpfKernelOpKERNEL_EXECVEAT, arg: 5, s1: components("usr", "bin"), s2: str("../sbin/x")},
			want: event.Kernel{Op: event.KernelExecveat, Arg: 5, Path: "/usr/sbin/x", Name: "../sbin/x"},
		},
		{
			name: "execveat relative to the root",
			in:   fixture{op: bpfKernelOpKERNEL_EXECVEAT, arg: 5, s2: str("bin/sh")},
			want: event.Kernel{Op: event.KernelExecveat, Arg: 5, Path: "/bin/sh", Name: "bin/sh"},
		},
		{
			name: "execveat of an absolute path ignores the fd",
			in:   fixture{op: bpfKernelOpKERNEL_EXECVEAT, arg: 5, s2: str("/bin/sh")},
			want: event.Kernel{Op: event.KernelExecveat, Arg: 5, Path: "/bin/sh", Name: "/bin/sh"},
		},
		{
			name: "execveat of the cwd",
			in:   fixture{op: bpfKernelOpKERNEL_EXECVEAT, arg: 0xffffff9c, flags: unix.AT_EMPTY_PATH, s1: components("tmp", "x"), s2: str("")},
			want: event.Kernel{Op: event.KernelExecveat, Arg: 0xffffff9c, ArgName: "AT_FDCWD", Flags: unix.AT_EMPTY_PATH,
				FlagNames: []string{"AT_EMPTY_PATH"}, Path: "/tmp/x"},
		},
		{
			name: "bpf",
			in:   fixture{op: bpfKernelOpKERNEL_BPF, ret: 7, arg: 5},
			ret:  7,
			want: event.Kernel{Op: event.KernelBPF, Arg: 5, ArgName: "BPF_PROG_LOAD"},
		},
		{
			name: "bpf unknown command",
			in:   fixture{op: bpfKernelOpKERNEL_BPF, ret: -22, arg: 99},
			ret:  -22,
			want: event.Kernel{Op: event.KernelBPF, Arg: 99, ArgName: "BPF_CMD_99"},
		},
		{
			name: "signal to the agent",
			in:   fixture{op: bpfKernelOpKERNEL_SIGNAL_AGENT, arg: 9, target: 1234},
			want: event.Kernel{Op: event.KernelSignalAgent, Arg: 9, ArgName: "SIGKILL", TargetPID: 1234},
		},
		{
			name: "pidfd_open of the agent",
			in:   fixture{op: bpfKernelOpKERNEL_PIDFD_AGENT, ret: 3, flags: 0x800 | 0x80, target: 1234},
			ret:  3,
			want: event.Kernel{Op: event.KernelPidfdAgent, Flags: 0x880, FlagNames: []string{"PIDFD_NONBLOCK", "PIDFD_THREAD"}, TargetPID: 1234},
		},
		{
			name: "signal 0 to the agent",
			in:   fixture{op: bpfKernelOpKERNEL_SIGNAL_AGENT, ret: -1, target: 1234},
			ret:  -1,
			want: event.Kernel{Op: event.KernelSignalAgent, ArgName: "SIG0", TargetPID: 1234},
		},
		{
			name: "signal to another process",
			in:   fixture{op: bpfKernelOpKERNEL_SIGNAL, arg: 15, target: 4321},
			want: event.Kernel{Op: event.KernelSignal, Arg: 15, ArgName: "SIGTERM", TargetPID: 4321},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got event.Event
			if err := Decode(tt.in.record(t), sensor.ClockAt(boot), &got); err != nil {
				t.Fatal(err)
			}
			want := event.Event{Time: boot.Add(5 * time.Second), Kind: event.KindKernel, Process: wantProcess(), Return: tt.ret, Kernel: &tt.want}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeHostileStrings(t *testing.T) {
	in := fixture{op: bpfKernelOpKERNEL_MOUNT, s1: str("a\nb\x1b[31m"), s2: str("/tmp/\"x\""), s3: str("")}
	var got event.Event
	if err := Decode(in.record(t), sensor.ClockAt(boot), &got); err != nil {
		t.Fatal(err)
	}
	if k := got.Kernel; k.Source != "a\nb\x1b[31m" || k.Target != "/tmp/\"x\"" || k.FSType != "" {
		t.Errorf("strings not carried as they are: %+v", *k)
	}
}

func TestDecodeRejects(t *testing.T) {
	rec := fixture{op: bpfKernelOpKERNEL_MOUNT, s1: str("a"), s2: str("/b"), s3: str("c")}.record(t)
	for _, n := range []int{0, 10, sensor.HeaderSize + sensor.TaskSize, recordSize - 1, len(rec) - 1} {
		var e event.Event
		if err := Decode(rec[:n], sensor.ClockAt(boot), &e); err == nil {
			t.Errorf("Decode of %d of %d bytes succeeded", n, len(rec))
		}
	}
	var e event.Event
	if err := Decode(fixture{op: 99}.record(t), sensor.ClockAt(boot), &e); err == nil {
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
	for hook := range optional {
		if !slices.Contains(Hooks, hook) {
			t.Errorf("optional hook %s is not in Hooks", hook)
		}
	}
}

func BenchmarkDecodeMount(b *testing.B) {
	rec := fixture{op: bpfKernelOpKERNEL_MOUNT, flags: unix.MS_BIND, s1: str("/var/lib/x"), s2: str("/mnt/y"), s3: str("none")}.record(b)
	clk := sensor.ClockAt(boot)
	b.ReportAllocs()
	var e event.Event
	for b.Loop() {
		if err := Decode(rec, clk, &e); err != nil {
			b.Fatal(err)
		}
	}
}
