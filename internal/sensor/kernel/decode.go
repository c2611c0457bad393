package kernel

import (
	"encoding/binary"
	"fmt"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var recordSize = binary.Size(bpfKernelEvent{})

const atFDCWD = -100

// Decode decodes a kernel record into e. It does not retain rec.
//
// Where each operation puts its strings:
//   - mount: Source, Target, FSType as the caller passed them (Target may be
//     relative to the caller's working directory); umount: Target.
//   - pivot_root: Source is new_root, Target is put_old, as passed.
//   - setns: Path is the namespace as readlink of /proc/<pid>/ns/<type> shows
//     it ("net:[4026531840]"); for a pidfd, Path is empty and TargetPID is
//     its process. ArgName names nstype ("" for 0: any type).
//   - module_load: Path is the file of finit_module (empty for init_module),
//     Params the parameters; Arg is the fd (finit) or the image length (init).
//   - memfd_create: Name.
//   - execveat: Name is the pathname as passed, Path the file: the fd's path
//     joined with Name when Name is empty or relative. Reported before the
//     exec happens, so Return is always 0. Arg is the fd.
//   - signal_agent: Arg is the signal (0 for kill -0), TargetPID the agent.
//   - pidfd_agent: pidfd_open of the agent; Flags (PIDFD_*), TargetPID the agent.
//   - signal (only with Config.SignalsAll): a signal to any other process.
//     Arg is the signal, TargetPID the first argument as the caller passed
//     it (for kill(2), 0 and negative values name process groups: read it as
//     an int32), or the process of a pidfd (0 when it was no pidfd).
func Decode(rec []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfKernelEvent
	if _, err := binary.Decode(rec, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("kernel record: %w", err)
	}
	data := rec[recordSize:]
	str1, data, err := sensor.Split(data, int(raw.Str1Len))
	if err != nil {
		return fmt.Errorf("kernel record: %w", err)
	}
	str2, data, err := sensor.Split(data, int(raw.Str2Len))
	if err != nil {
		return fmt.Errorf("kernel record: %w", err)
	}
	str3, _, err := sensor.Split(data, int(raw.Str3Len))
	if err != nil {
		return fmt.Errorf("kernel record: %w", err)
	}

	k := &event.Kernel{Flags: raw.Flags, Arg: raw.Arg, TargetPID: raw.TargetPid}
	switch bpfKernelOp(raw.Op) {
	case bpfKernelOpKERNEL_UNSHARE:
		k.Op, k.FlagNames = event.KernelUnshare, flagNames(raw.Flags, cloneFlags)
	case bpfKernelOpKERNEL_SETNS:
		k.Op, k.ArgName, k.Path = event.KernelSetns, nsTypeName(raw.Arg), sensor.CString(str1)
	case bpfKernelOpKERNEL_CLONE_NS:
		k.Op, k.FlagNames = event.KernelCloneNS, flagNames(raw.Flags, cloneFlags)
	case bpfKernelOpKERNEL_MOUNT:
		k.Op, k.FlagNames = event.KernelMount, mountFlagNames(raw.Flags)
		k.Source, k.Target, k.FSType = sensor.CString(str1), sensor.CString(str2), sensor.CString(str3)
	case bpfKernelOpKERNEL_UMOUNT:
		k.Op, k.FlagNames, k.Target = event.KernelUmount, flagNames(raw.Flags, umountFlags), sensor.CString(str1)
	case bpfKernelOpKERNEL_PIVOT_ROOT:
		k.Op, k.Source, k.Target = event.KernelPivotRoot, sensor.CString(str1), sensor.CString(str2)
	case bpfKernelOpKERNEL_PTRACE:
		k.Op, k.ArgName = event.KernelPtrace, ptraceRequestName(raw.Arg)
	case bpfKernelOpKERNEL_MODULE_LOAD:
		k.Op, k.FlagNames, k.Params = event.KernelModuleLoad, flagNames(raw.Flags, moduleFlags), sensor.CString(str2)
		if len(str1) > 0 {
			k.Path = sensor.JoinComponents(str1)
		}
	case bpfKernelOpKERNEL_MEMFD_CREATE:
		k.Op, k.FlagNames, k.Name = event.KernelMemfdCreate, flagNames(raw.Flags, memfdFlags), sensor.CString(str1)
	case bpfKernelOpKERNEL_EXECVEAT:
		k.Op, k.FlagNames, k.Name = event.KernelExecveat, flagNames(raw.Flags, execveatFlags), sensor.CString(str2)
		if int32(raw.Arg) == atFDCWD {
			k.ArgName = "AT_FDCWD"
		}
		if len(k.Name) > 0 && k.Name[0] == '/' {
			k.Path = k.Name
		} else {
			// The kernel walked the fd's path; an empty walk is the root.
			k.Path = sensor.Resolve(k.Name, sensor.JoinComponents(str1))
		}
	case bpfKernelOpKERNEL_BPF:
		k.Op, k.ArgName = event.KernelBPF, bpfCommandName(raw.Arg)
	case bpfKernelOpKERNEL_SIGNAL_AGENT:
		k.Op, k.ArgName = event.KernelSignalAgent, event.SignalName(int(raw.Arg))
	case bpfKernelOpKERNEL_SIGNAL:
		k.Op, k.ArgName = event.KernelSignal, event.SignalName(int(raw.Arg))
	case bpfKernelOpKERNEL_PIDFD_AGENT:
		k.Op, k.FlagNames = event.KernelPidfdAgent, flagNames(raw.Flags, pidfdFlags)
	default:
		return fmt.Errorf("kernel record: unknown op %d", raw.Op)
	}

	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindKernel, Return: int64(raw.Ret), Kernel: k}
	return sensor.DecodeTask(rec, clk, &e.Process)
}
