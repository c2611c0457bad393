// Package kernelcap finds out, at start-up, what the running kernel lets
// Vigil use, and picks the mechanism for each job from that: BPF LSM for
// in-kernel deny where it is active, the response engine's fallbacks
// (fanotify permission events, cgroup socket hooks) where it is not.
//
// Every probe loads (and where it matters attaches) a real, minimal program
// or map: a kernel can list a feature and still refuse it (the development
// machines list "bpf" among their LSMs and refuse every lsm program with
// EPERM), so reading configuration alone would lie.
package kernelcap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Feature names, in the order Probe reports them.
const (
	TPBTF      = "tp_btf"      // BTF raw tracepoints (tp_btf/sched_process_exec)
	RingBuffer = "ring_buffer" // BPF_MAP_TYPE_RINGBUF
	BPFLoop    = "bpf_loop"    // the bpf_loop helper
	Fentry     = "fentry"      // BPF trampolines (fentry/fexit)
	BPFLSM     = "bpf_lsm"     // "bpf" in the active LSMs and an lsm program attaches
	CgroupV2   = "cgroup_v2"   // a cgroup2 mount
	SendSignal = "send_signal" // bpf_send_signal from a tracepoint
)

// Jobs Probe picks a mechanism for.
const (
	JobDetect      = "detect"       // process, file, network events
	JobDenyOpen    = "deny_open"    // refuse open(2) of a file with EPERM
	JobDenyExec    = "deny_exec"    // refuse execve(2) of a file with EPERM
	JobDenyConnect = "deny_connect" // refuse connect/bind of a cgroup's sockets
	JobKill        = "kill"         // kill a process at exec
)

// Mechanisms.
const (
	MechTracepoint = "tp_btf+tracepoints"
	MechLSM        = "bpf_lsm"
	MechFanotify   = "fanotify"
	MechCgroupSock = "cgroup_sock_addr"
	MechSignal     = "bpf_send_signal"
	MechNone       = "none"
)

// Feature is one probe's outcome.
type Feature struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"` // why not, or what was found
}

// Choice is the mechanism picked for a job.
type Choice struct {
	Job       string `json:"job"`
	Mechanism string `json:"mechanism"`
}

// Report is what Probe found.
type Report struct {
	Kernel   string    `json:"kernel"`
	Features []Feature `json:"features"`
	Choices  []Choice  `json:"mechanisms"`
}

// Has reports whether the named feature works.
func (r Report) Has(name string) bool {
	for _, f := range r.Features {
		if f.Name == name {
			return f.OK
		}
	}
	return false
}

// Mechanism is the mechanism picked for job, or MechNone.
func (r Report) Mechanism(job string) string {
	for _, c := range r.Choices {
		if c.Job == job {
			return c.Mechanism
		}
	}
	return MechNone
}

// Paths are the host files Probe reads, for tests with fixtures.
type Paths struct {
	LSM     string // /sys/kernel/security/lsm
	Procfs  string // /proc, for mounts
	Release string // /proc/sys/kernel/osrelease
}

// DefaultPaths are the host's.
var DefaultPaths = Paths{
	LSM:     "/sys/kernel/security/lsm",
	Procfs:  "/proc",
	Release: "/proc/sys/kernel/osrelease",
}

// Probe tests each feature on the running kernel and picks the mechanisms.
// It needs the privileges the agent runs with (root); without them every
// BPF probe fails and says why. Nothing it loads stays loaded.
func Probe(p Paths) Report {
	r := Report{Kernel: readTrim(p.Release)}
	add := func(name string, err error, ok string) {
		f := Feature{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			f.Detail = err.Error()
		}
		r.Features = append(r.Features, f)
	}
	add(TPBTF, ProbeTPBTF(), "")
	add(RingBuffer, ProbeRingBuffer(), "")
	add(BPFLoop, ProbeBPFLoop(), "")
	add(Fentry, ProbeFentry(), "")
	add(BPFLSM, ProbeLSM(p.LSM), "")
	cg, err := cgroup2Mount(p.Procfs)
	add(CgroupV2, err, cg)
	add(SendSignal, ProbeSendSignal(), "")
	r.Choices = choose(r)
	return r
}

func choose(r Report) []Choice {
	pick := func(job string, mechs ...string) Choice {
		return Choice{Job: job, Mechanism: firstOf(mechs)}
	}
	detect := MechNone
	if r.Has(TPBTF) && r.Has(RingBuffer) && r.Has(BPFLoop) {
		detect = MechTracepoint
	}
	lsm := ""
	if r.Has(BPFLSM) {
		lsm = MechLSM
	}
	cgsock := ""
	if r.Has(CgroupV2) {
		cgsock = MechCgroupSock
	}
	kill := ""
	if r.Has(SendSignal) {
		kill = MechSignal
	}
	// fanotify permission events are in every kernel Vigil runs on
	// (CONFIG_FANOTIFY_ACCESS_PERMISSIONS, on in every major distribution);
	// the response engine reports it when fanotify_init fails.
	return []Choice{
		{Job: JobDetect, Mechanism: detect},
		pick(JobDenyOpen, lsm, MechFanotify),
		pick(JobDenyExec, lsm, MechFanotify),
		pick(JobDenyConnect, lsm, cgsock),
		pick(JobKill, kill),
	}
}

func firstOf(s []string) string {
	for _, m := range s {
		if m != "" {
			return m
		}
	}
	return MechNone
}

// ErrLSMInactive is ProbeLSM's answer when the kernel does not run the BPF
// LSM: "bpf" is not among the active LSMs (the lsm= boot parameter or
// CONFIG_LSM decide that).
var ErrLSMInactive = errors.New(`"bpf" is not among the active LSMs`)

// ProbeLSM reports whether BPF LSM programs work here: "bpf" is listed in
// lsmFile (securityfs) and a program that allows everything loads and
// attaches to file_open. nil means yes.
func ProbeLSM(lsmFile string) error {
	b, err := os.ReadFile(lsmFile)
	if errors.Is(err, os.ErrNotExist) && lsmFile == DefaultPaths.LSM {
		// Not mounted: a minimal system, or a machine without systemd.
		if merr := ensureSecurityfs(filepath.Dir(lsmFile)); merr != nil {
			return fmt.Errorf("read active LSMs: %w (%v)", err, merr)
		}
		b, err = os.ReadFile(lsmFile)
	}
	if err != nil {
		return fmt.Errorf("read active LSMs: %w", err)
	}
	listed := false
	for _, l := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if l == "bpf" {
			listed = true
		}
	}
	if !listed {
		return fmt.Errorf("%w (%s: %s)", ErrLSMInactive, lsmFile, bytes.TrimSpace(b))
	}
	return ProbeLSMProgram()
}

// ProbeLSMProgram loads a BPF LSM program that allows everything and
// attaches it to file_open, then removes it; nil when both worked. It does
// not check that the kernel calls the program: that takes "bpf" among the
// active LSMs (ProbeLSM checks both).
func ProbeLSMProgram() error {
	return attachRet0("lsm/file_open", &ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open"},
		func(p *ebpf.Program) (link.Link, error) { return link.AttachLSM(link.LSMOptions{Program: p}) })
}

const securityfsMagic = 0x73636673

// ensureSecurityfs mounts securityfs at dir unless it is there, as the
// agent mounts tracefs (sensor.EnsureTracefs): the list of active LSMs is
// only found there.
func ensureSecurityfs(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == securityfsMagic {
		return nil
	}
	if err := unix.Mount("securityfs", dir, "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount securityfs at %s: %w", dir, err)
	}
	return nil
}

// The probes below are the ones internal/doctor shares: each loads (and
// attaches, where that can fail on its own) a minimal program or map and
// removes it again; nil means the mechanism works.

// ProbeFentry loads and attaches an fentry program that does nothing.
func ProbeFentry() error {
	return attachRet0("fentry/security_file_open", &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: "security_file_open"},
		func(p *ebpf.Program) (link.Link, error) {
			return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceFEntry})
		})
}

// ProbeTPBTF loads a tp_btf program on sched_process_exec and attaches it,
// as the process sensor does.
func ProbeTPBTF() error {
	return attachRet0("tp_btf/sched_process_exec", &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "sched_process_exec"},
		func(p *ebpf.Program) (link.Link, error) { return link.AttachTracing(link.TracingOptions{Program: p}) })
}

// ProbeRingBuffer creates a BPF_MAP_TYPE_RINGBUF map.
func ProbeRingBuffer() error {
	return refused("create ring buffer", features.HaveMapType(ebpf.RingBuf))
}

// ProbeBPFLoop checks for the bpf_loop helper in a tracepoint program.
func ProbeBPFLoop() error {
	return refused("bpf_loop", features.HaveProgramHelper(ebpf.TracePoint, asm.FnLoop))
}

// ProbeSendSignal checks for the bpf_send_signal helper in a tracepoint
// program.
func ProbeSendSignal() error {
	return refused("bpf_send_signal", features.HaveProgramHelper(ebpf.TracePoint, asm.FnSendSignal))
}

// attachRet0 loads spec as a program that returns 0, attaches it with fn,
// then detaches and unloads it.
func attachRet0(what string, spec *ebpf.ProgramSpec, fn func(*ebpf.Program) (link.Link, error)) error {
	spec.License = "GPL"
	spec.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		return refused("load "+what, err)
	}
	defer prog.Close()
	l, err := fn(prog)
	if err != nil {
		return refused("attach "+what, err)
	}
	return l.Close()
}

// cgroup2Mount is the first cgroup2 mount in procfs/self/mounts.
func cgroup2Mount(procfs string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procfs, "self/mounts"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			var st unix.Statfs_t
			if err := unix.Statfs(f[1], &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
				return f[1], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount")
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

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}
