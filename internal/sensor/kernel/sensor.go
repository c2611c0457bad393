// Package kernel is the sensor for the kernel's attack surface: namespaces,
// mounts, pivot_root, ptrace, module loading, memfd_create, execveat of a
// descriptor, bpf() and signals aimed at the agent, or with Config.SignalsAll
// at anyone (kernel.bpf.c).
package kernel

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/sensor"
)

// Config tunes the sensor before it is loaded.
type Config struct {
	// PtraceAll reports every ptrace request. By default only those that
	// take control of a process or write to it are reported (TRACEME,
	// ATTACH, SEIZE, POKE*, SET*REGS*, SETSIGINFO, SETSIGMASK,
	// SET_THREAD_AREA, ARCH_PRCTL, SET_SYSCALL_INFO,
	// SET_SYSCALL_USER_DISPATCH_CONFIG): a debugger's reads and resumes
	// would otherwise flood the ring.
	PtraceAll bool
	// SignalsAll reports kill, tkill, tgkill, rt_sigqueueinfo,
	// rt_tgsigqueueinfo and pidfd_send_signal whatever their target, as
	// event.KernelSignal (signals to the agent stay event.KernelSignalAgent).
	// By default only signals aimed at the agent are reported. Busy Go
	// programs tgkill themselves often (preemption): scope the kind to the
	// processes of interest when this is on.
	SignalsAll bool
}

// Sensor is the loaded and attached kernel sensor.
type Sensor struct {
	// The collection holds the programs, the scratch map and clones of the
	// shared maps; closing it leaves the shared maps open.
	coll    *ebpf.Collection
	links   []link.Link
	missing []string
}

// Hooks names the kernel hooks the sensor attaches to, for status and errors.
var Hooks = []string{
	"tracepoint/syscalls/sys_enter_execveat",
	"tracepoint/syscalls/sys_exit_bpf",
	"tracepoint/syscalls/sys_exit_clone",
	"tracepoint/syscalls/sys_exit_clone3",
	"tracepoint/syscalls/sys_exit_finit_module",
	"tracepoint/syscalls/sys_exit_init_module",
	"tracepoint/syscalls/sys_exit_kill",
	"tracepoint/syscalls/sys_exit_memfd_create",
	"tracepoint/syscalls/sys_exit_mount",
	"tracepoint/syscalls/sys_exit_pidfd_open",
	"tracepoint/syscalls/sys_exit_pidfd_send_signal",
	"tracepoint/syscalls/sys_exit_pivot_root",
	"tracepoint/syscalls/sys_exit_ptrace",
	"tracepoint/syscalls/sys_exit_rt_sigqueueinfo",
	"tracepoint/syscalls/sys_exit_rt_tgsigqueueinfo",
	"tracepoint/syscalls/sys_exit_setns",
	"tracepoint/syscalls/sys_exit_tgkill",
	"tracepoint/syscalls/sys_exit_tkill",
	"tracepoint/syscalls/sys_exit_umount", // umount2(2)
	"tracepoint/syscalls/sys_exit_unshare",
}

// optional hooks may be missing: a kernel built without CONFIG_MODULES has
// no module syscalls (they fail with ENOSYS) and so no tracepoints for them.
var optional = map[string]bool{
	"tracepoint/syscalls/sys_exit_finit_module": true,
	"tracepoint/syscalls/sys_exit_init_module":  true,
}

// New loads the sensor's programs, writing to the shared maps, and attaches them.
func New(cfg Config, shared *sensor.Shared) (*Sensor, error) {
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("kernel sensor: %w", err)
	}
	set := map[string]any{
		"ptrace_all":  cfg.PtraceAll,
		"signals_all": cfg.SignalsAll,
		"agent_pidns": ownPIDNamespace(),
	}
	for name, v := range set {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("kernel sensor: set %s: %w", name, err)
		}
	}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("kernel sensor: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, sensor.Explain("kernel sensor: load", err)
	}
	s := &Sensor{coll: coll}
	if err := s.attach(spec); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ownPIDNamespace is the inode number of this process's pid namespace, 0 if
// unknown (then pids in signal syscalls are compared without it).
func ownPIDNamespace() uint32 {
	fi, err := os.Stat("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	return uint32(st.Ino)
}

// attach links every program to the tracepoint its section names.
func (s *Sensor) attach(spec *ebpf.CollectionSpec) error {
	names := make([]string, 0, len(spec.Programs))
	for name := range spec.Programs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sec := spec.Programs[name].SectionName
		group, tp, ok := strings.Cut(strings.TrimPrefix(sec, "tracepoint/"), "/")
		if !ok {
			return fmt.Errorf("kernel sensor: program %s: section %q is not a tracepoint", name, sec)
		}
		l, err := link.Tracepoint(group, tp, s.coll.Programs[name], nil)
		if err != nil {
			if optional[sec] && errors.Is(err, os.ErrNotExist) {
				s.missing = append(s.missing, sec)
				continue
			}
			return sensor.Explain("kernel sensor: attach "+sec, err)
		}
		s.links = append(s.links, l)
	}
	return nil
}

// Missing lists the optional hooks this kernel does not have (the module
// syscalls when it was built without module support).
func (s *Sensor) Missing() []string { return s.missing }

// Close detaches and unloads everything. It is safe to call more than once.
func (s *Sensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
	return errors.Join(errs...)
}
