// Package process is the process lifecycle sensor: exec, fork and exit on BTF
// tracepoints (process.bpf.c).
package process

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/sensor"
)

// Config tunes the sensor before it is loaded.
type Config struct {
}

// Sensor is the loaded and attached process sensor.
type Sensor struct {
	// Only the programs: the maps they write to belong to sensor.Shared, and
	// the scratch map lives as long as the programs that reference it.
	progs bpfPrograms
	links []link.Link
	kill  execKill // kill.go
}

// Hooks names the kernel hooks the sensor attaches to, for status and errors.
var Hooks = []string{"tp_btf/sched_process_exec", "tp_btf/sched_process_fork", "tp_btf/sched_process_exit"}

// New loads the sensor's programs, writing to the shared maps, and attaches them.
func New(cfg Config, shared *sensor.Shared) (*Sensor, error) {
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("process sensor: %w", err)
	}
	s := &Sensor{}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("process sensor: %w", err)
	}
	if err := spec.Variables["agent_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("process sensor: %w", err)
	}
	opts := &ebpf.CollectionOptions{MapReplacements: repl}
	var objs struct {
		bpfPrograms
		Kill   *ebpf.Map      `ebpf:"vigil_exec_kill"`
		KillOn *ebpf.Variable `ebpf:"exec_kill_on"`
	}
	if err := spec.LoadAndAssign(&objs, opts); err != nil {
		return nil, sensor.Explain("process sensor: load", err)
	}
	s.progs, s.kill = objs.bpfPrograms, execKill{m: objs.Kill, on: objs.KillOn}
	for i, prog := range []*ebpf.Program{s.progs.VigilExec, s.progs.VigilFork, s.progs.VigilExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			s.Close()
			return nil, sensor.Explain("process sensor: attach "+Hooks[i], err)
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// Close detaches and unloads everything. It is safe to call more than once.
func (s *Sensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	errs = append(errs, s.progs.Close())
	s.progs = bpfPrograms{}
	if s.kill.m != nil {
		errs = append(errs, s.kill.m.Close())
	}
	s.kill = execKill{}
	return errors.Join(errs...)
}
