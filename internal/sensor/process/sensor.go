// Package process is the process lifecycle sensor: exec, fork and exit on BTF
// tracepoints (process.bpf.c).
package process

import (
	"errors"
	"fmt"

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
	opts := &ebpf.CollectionOptions{MapReplacements: repl}
	if err := spec.LoadAndAssign(&s.progs, opts); err != nil {
		return nil, sensor.Explain("process sensor: load", err)
	}
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
	return errors.Join(errs...)
}
