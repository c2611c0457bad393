// Package netsensor is the network sensor: connect, bind, listen, accept and
// DNS queries, on syscall tracepoints (net.bpf.c). The directory is net; the
// package is netsensor so that it does not shadow the standard library's net.
package netsensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/sensor"
)

// Config tunes the sensor before it is loaded.
type Config struct {
	// PortableFDWalk makes the programs find a send's socket with a probe
	// read per field, as they must on kernels without bpf_rdonly_cast
	// (before 6.2), even where the faster walk is available. For tests.
	PortableFDWalk bool
}

// Sensor is the loaded and attached network sensor.
type Sensor struct {
	// Only the programs: the maps they write to belong to sensor.Shared, and
	// the sensor's own maps (scratch, per-thread arguments) live as long as
	// the programs that reference them.
	progs bpfPrograms
	links []link.Link
}

// hook is one syscall tracepoint and its program.
type hook struct {
	name string // tracepoint in the syscalls group
	prog func(*bpfPrograms) *ebpf.Program
}

// hooks in attach order: every sys_exit before its sys_enter, so that no
// arguments are kept for a call whose exit would not be seen.
var hooks = []hook{
	{"sys_exit_connect", func(p *bpfPrograms) *ebpf.Program { return p.VigilConnect }},
	{"sys_enter_connect", func(p *bpfPrograms) *ebpf.Program { return p.VigilConnectE }},
	{"sys_exit_bind", func(p *bpfPrograms) *ebpf.Program { return p.VigilBind }},
	{"sys_enter_bind", func(p *bpfPrograms) *ebpf.Program { return p.VigilBindE }},
	{"sys_exit_listen", func(p *bpfPrograms) *ebpf.Program { return p.VigilListen }},
	{"sys_exit_accept", func(p *bpfPrograms) *ebpf.Program { return p.VigilAccept }},
	{"sys_exit_accept4", func(p *bpfPrograms) *ebpf.Program { return p.VigilAccept4 }},
	{"sys_exit_sendto", func(p *bpfPrograms) *ebpf.Program { return p.VigilSendto }},
	{"sys_exit_sendmsg", func(p *bpfPrograms) *ebpf.Program { return p.VigilSendmsg }},
	{"sys_exit_sendmmsg", func(p *bpfPrograms) *ebpf.Program { return p.VigilSendmmsg }},
}

// Hooks names the kernel hooks the sensor attaches to, for status and errors.
var Hooks = func() []string {
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = "tracepoint/syscalls/" + h.name
	}
	return names
}()

// New loads the sensor's programs, writing to the shared maps, and attaches them.
func New(cfg Config, shared *sensor.Shared) (*Sensor, error) {
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("net sensor: %w", err)
	}
	direct := !cfg.PortableFDWalk && kernelHasFunc("bpf_rdonly_cast")
	if err := spec.Variables["fd_walk_direct"].Set(direct); err != nil {
		return nil, fmt.Errorf("net sensor: set fd_walk_direct: %w", err)
	}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("net sensor: %w", err)
	}
	s := &Sensor{}
	opts := &ebpf.CollectionOptions{MapReplacements: repl}
	if err := spec.LoadAndAssign(&s.progs, opts); err != nil {
		return nil, sensor.Explain("net sensor: load", err)
	}
	for i, h := range hooks {
		l, err := link.Tracepoint("syscalls", h.name, h.prog(&s.progs), nil)
		if err != nil {
			s.Close()
			return nil, sensor.Explain("net sensor: attach "+Hooks[i], err)
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// kernelHasFunc reports whether the kernel's BTF has a function (a kfunc the
// programs may call) by that name.
func kernelHasFunc(name string) bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var fn *btf.Func
	return spec.TypeByName(name, &fn) == nil
}

// Close detaches and unloads everything. It is safe to call more than once.
func (s *Sensor) Close() error {
	var errs []error
	// Detach in reverse: every sys_enter before its sys_exit.
	for i := len(s.links) - 1; i >= 0; i-- {
		errs = append(errs, s.links[i].Close())
	}
	s.links = nil
	errs = append(errs, s.progs.Close())
	s.progs = bpfPrograms{}
	return errors.Join(errs...)
}
