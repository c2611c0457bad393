// Package cred is the credential sensor: set*id, setgroups and capset, with
// the caller's credentials before and after the call (cred.bpf.c).
package cred

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/sensor"
)

// Config tunes the sensor before it is loaded.
type Config struct {
}

// Sensor is the loaded and attached credential sensor.
type Sensor struct {
	// The collection holds the programs, the sensor's own maps and clones of
	// the shared ones; closing it leaves the shared maps open.
	coll  *ebpf.Collection
	links []link.Link
}

// syscalls the sensor watches, each on its sys_enter and sys_exit tracepoints.
var syscalls = []string{
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
	"setfsuid", "setfsgid", "setgroups", "capset",
}

// Hooks names the kernel hooks the sensor attaches to, for status and errors.
var Hooks = func() []string {
	var h []string
	for _, sc := range syscalls {
		h = append(h, "tracepoint/syscalls/sys_enter_"+sc, "tracepoint/syscalls/sys_exit_"+sc)
	}
	return h
}()

// New loads the sensor's programs, writing to the shared maps, and attaches them.
func New(cfg Config, shared *sensor.Shared) (*Sensor, error) {
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("cred sensor: %w", err)
	}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("cred sensor: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, sensor.Explain("cred sensor: load", err)
	}
	s := &Sensor{coll: coll}
	if err := s.attach(spec); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
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
			return fmt.Errorf("cred sensor: program %s: section %q is not a tracepoint", name, sec)
		}
		l, err := link.Tracepoint(group, tp, s.coll.Programs[name], nil)
		if err != nil {
			return sensor.Explain("cred sensor: attach "+sec, err)
		}
		s.links = append(s.links, l)
	}
	return nil
}

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
