package doctor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kernelcap"
)

// Mechanism is a kernel facility a probe tests.
type Mechanism string

const (
	BPF            Mechanism = "bpf"              // bpf(2): an array map
	Tracepoint     Mechanism = "tracepoint"       // tracepoint/syscalls/sys_enter_getpid, attached
	RawTracepoint  Mechanism = "raw_tracepoint"   // raw_tracepoint/sys_enter, attached
	TPBTF          Mechanism = "tp_btf"           // tp_btf/sched_process_exec, attached
	RingBuffer     Mechanism = "ring_buffer"      // a BPF_MAP_TYPE_RINGBUF map
	BPFLoop        Mechanism = "bpf_loop"         // the bpf_loop helper in a tracepoint program
	SendSignal     Mechanism = "send_signal"      // the bpf_send_signal helper in a tracepoint program
	Kprobe         Mechanism = "kprobe"           // kprobe/vfs_read, attached
	Fentry         Mechanism = "fentry"           // fentry/security_file_open, attached
	LSM            Mechanism = "bpf_lsm"          // lsm/file_open, attached (only probed when "bpf" is an active LSM)
	CgroupSockAddr Mechanism = "cgroup_sock_addr" // cgroup/connect4 on a fresh cgroup v2 directory, attached
	XDP            Mechanism = "xdp"              // XDP_PASS, attached in generic mode to lo
	TCX            Mechanism = "tcx"              // TCX_NEXT, attached to lo ingress
	Fanotify       Mechanism = "fanotify"         // FAN_CLASS_CONTENT group, permission marks on a fresh directory
)

// Kernel answers what only the live kernel can: it is Live() on a real
// host, and a recording of another machine in tests.
type Kernel interface {
	// Probe returns nil when the mechanism works, else why not. Nothing a
	// probe loads or attaches outlives the call.
	Probe(Mechanism) error
	// XDPFeatures maps interface indexes to their NETDEV_XDP_ACT_* bits.
	XDPFeatures() (map[int]uint64, error)
	// Clock is the state of the system clock.
	Clock() (ClockState, error)
}

// ClockState is what adjtimex(2) says about the system clock.
type ClockState struct {
	Synchronized   bool
	EstErrorMicros int64
}

// ErrLSMInactive: "bpf" is not among the active LSMs (kernelcap's error).
var ErrLSMInactive = kernelcap.ErrLSMInactive

// Live probes the running kernel. It needs the agent's privileges.
func Live() Kernel { return live{} }

type live struct{}

func (live) Probe(m Mechanism) error {
	switch m {
	case BPF:
		mp, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			return refused("create array map", err)
		}
		return mp.Close()
	// The probes kernelcap runs at the agent's start-up are kernelcap's,
	// so that doctor and `vigil status` cannot disagree.
	case RingBuffer:
		return kernelcap.ProbeRingBuffer()
	case BPFLoop:
		return kernelcap.ProbeBPFLoop()
	case SendSignal:
		return kernelcap.ProbeSendSignal()
	case Tracepoint:
		return attach("tracepoint/syscalls/sys_enter_getpid", &ebpf.ProgramSpec{Type: ebpf.TracePoint}, func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("syscalls", "sys_enter_getpid", p, nil)
		})
	case RawTracepoint:
		return attach("raw_tracepoint/sys_enter", &ebpf.ProgramSpec{Type: ebpf.RawTracepoint}, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
		})
	case TPBTF:
		return kernelcap.ProbeTPBTF()
	case Kprobe:
		return attach("kprobe/vfs_read", &ebpf.ProgramSpec{Type: ebpf.Kprobe}, func(p *ebpf.Program) (link.Link, error) {
			return link.Kprobe("vfs_read", p, nil)
		})
	case Fentry:
		return kernelcap.ProbeFentry()
	case LSM:
		// checkLSM has read the active LSMs: this is the program half.
		return kernelcap.ProbeLSMProgram()
	case CgroupSockAddr:
		return probeCgroupConnect()
	case XDP:
		return attach("xdp (generic, lo)", &ebpf.ProgramSpec{Type: ebpf.XDP, Instructions: ret(2)}, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachXDP(link.XDPOptions{Program: p, Interface: 1, Flags: link.XDPGenericMode})
		})
	case TCX:
		return attach("tcx ingress (lo)", &ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: ret(-1)}, func(p *ebpf.Program) (link.Link, error) {
			return link.AttachTCX(link.TCXOptions{Program: p, Interface: 1, Attach: ebpf.AttachTCXIngress})
		})
	case Fanotify:
		return probeFanotify()
	}
	return fmt.Errorf("unknown mechanism %q", m)
}

// ret is a program that returns v.
func ret(v int32) asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, v), asm.Return()}
}

// attach loads spec (a program returning 0 unless it has instructions) and
// attaches it with fn, then detaches and unloads it. An interface that
// already has a program (EBUSY, EEXIST) counts as working: the load passed.
func attach(what string, spec *ebpf.ProgramSpec, fn func(*ebpf.Program) (link.Link, error)) error {
	spec.License = "GPL"
	if spec.Instructions == nil {
		spec.Instructions = ret(0)
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return refused("load "+what, err)
	}
	defer p.Close()
	l, err := fn(p)
	if err != nil {
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil
		}
		return refused("attach "+what, err)
	}
	return l.Close()
}

// refused names what failed. For EPERM it drops cilium/ebpf's hint about
// MEMLOCK, which is wrong for kernels that refuse a program type outright.
func refused(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: %w by this kernel", what, unix.EPERM)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: not supported by this kernel", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// probeCgroupConnect attaches an allow-all cgroup/connect4 program to a
// cgroup made for the probe under the cgroup v2 root, then removes both.
func probeCgroupConnect() error {
	root, err := cgroup2Root()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(root, "vigil-doctor-")
	if err != nil {
		return fmt.Errorf("make a cgroup for the probe: %w", err)
	}
	defer os.Remove(dir)
	return attach("cgroup/connect4", &ebpf.ProgramSpec{Type: ebpf.CGroupSockAddr, AttachType: ebpf.AttachCGroupInet4Connect, Instructions: ret(1)},
		func(p *ebpf.Program) (link.Link, error) {
			return link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: ebpf.AttachCGroupInet4Connect, Program: p})
		})
}

func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "cgroup2" {
			return f[1], nil
		}
	}
	return "", errors.New("no cgroup2 mount")
}

// probeFanotify makes a permission-class fanotify group and marks a fresh
// directory for open and exec permission events; closing the group drops
// the marks. Nothing opens the directory meanwhile, so no event is asked.
func probeFanotify() error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("fanotify_init(FAN_CLASS_CONTENT): %w (kernel without CONFIG_FANOTIFY_ACCESS_PERMISSIONS)", err)
		}
		return fmt.Errorf("fanotify_init(FAN_CLASS_CONTENT): %w", err)
	}
	defer unix.Close(fd)
	dir, err := os.MkdirTemp("", "vigil-doctor-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM|unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, filepath.Clean(dir)); err != nil {
		return fmt.Errorf("fanotify_mark(FAN_OPEN_PERM|FAN_OPEN_EXEC_PERM): %w", err)
	}
	return nil
}

func (live) Clock() (ClockState, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return ClockState{}, fmt.Errorf("adjtimex: %w", err)
	}
	return ClockState{
		Synchronized:   state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0,
		EstErrorMicros: tx.Esterror,
	}, nil
}

func (live) XDPFeatures() (map[int]uint64, error) { return netdevXDPFeatures() }
