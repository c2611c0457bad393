// Package seq is the syscall-sequence sensor (seq.bpf.c): the syscall
// numbers each thread of a selected program makes, in order, in batches, for
// the learned-behaviour models of internal/detect/anomaly.
//
// Nothing is collected until Select names a thread group. Its forks inherit
// the selection; an exec ends it.
package seq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/sensor"
)

// Hooks names the kernel hooks the sensor attaches to, for status and errors.
var Hooks = []string{"tp_btf/sys_enter", "tp_btf/sched_process_fork", "tp_btf/sched_process_exec", "tp_btf/sched_process_exit"}

// Batch is one record: up to Max syscall numbers of one thread, in order.
type Batch struct {
	StartBoot uint64 // the thread group leader's start, CLOCK_BOOTTIME ns
	PID, TID  uint32
	Profile   uint32 // what Select was given for the thread group
	Exec      bool   // the thread exec'd after these: its program's sequence ends
	Exit      bool   // the thread exited after these
	Gap       bool   // a batch of the thread was lost before this one
	Nr        []uint16
}

// Max is the most numbers a batch holds (SEQ_BATCH).
const Max = 64

// Sensor is the loaded and attached sequence sensor.
type Sensor struct {
	objs  bpfObjects
	links []link.Link
}

// New loads the sensor's programs, writing to the shared maps, and attaches them.
func New(shared *sensor.Shared) (*Sensor, error) {
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("seq sensor: %w", err)
	}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("seq sensor: %w", err)
	}
	s := &Sensor{}
	if err := spec.LoadAndAssign(&s.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return nil, sensor.Explain("seq sensor: load", err)
	}
	for i, prog := range []*ebpf.Program{s.objs.VigilSeqEnter, s.objs.VigilSeqFork, s.objs.VigilSeqExec, s.objs.VigilSeqExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			s.Close()
			return nil, sensor.Explain("seq sensor: attach "+Hooks[i], err)
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// Select starts collecting the sequences of thread group pid under profile.
func (s *Sensor) Select(pid, profile uint32) error {
	if err := s.objs.VigilSeqPids.Put(pid, profile); err != nil {
		return fmt.Errorf("seq sensor: select %d: %w", pid, err)
	}
	return nil
}

// Unselect stops collecting for pid; it is not an error if it was not selected.
func (s *Sensor) Unselect(pid uint32) error {
	if err := s.objs.VigilSeqPids.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("seq sensor: unselect %d: %w", pid, err)
	}
	return nil
}

// Selected lists the selected thread groups and their profiles.
func (s *Sensor) Selected() (map[uint32]uint32, error) {
	out := map[uint32]uint32{}
	var k, v uint32
	it := s.objs.VigilSeqPids.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	return out, it.Err()
}

// Close detaches and unloads everything. It is safe to call more than once.
func (s *Sensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	errs = append(errs, s.objs.Close())
	s.objs = bpfObjects{}
	return errors.Join(errs...)
}

// recordSize is sizeof(struct syscalls_event).
const recordSize = sensor.HeaderSize + 8 + 4*3 + 2*2 + 2*Max

// Decode reads a syscalls record into b, reusing b.Nr.
func Decode(rec []byte, b *Batch) error {
	if len(rec) < recordSize {
		return fmt.Errorf("syscalls record of %d bytes, want %d", len(rec), recordSize)
	}
	le := binary.LittleEndian
	r := rec[sensor.HeaderSize:]
	b.StartBoot = le.Uint64(r[0:])
	b.PID = le.Uint32(r[8:])
	b.TID = le.Uint32(r[12:])
	b.Profile = le.Uint32(r[16:])
	n := int(le.Uint16(r[20:]))
	flags := le.Uint16(r[22:])
	if n > Max {
		return fmt.Errorf("syscalls record with %d numbers, at most %d", n, Max)
	}
	b.Exec, b.Exit, b.Gap = flags&1 != 0, flags&2 != 0, flags&4 != 0
	b.Nr = b.Nr[:0]
	for i := range n {
		b.Nr = append(b.Nr, le.Uint16(r[24+2*i:]))
	}
	return nil
}

// Name is the name of a syscall number of this architecture, or its number.
func Name(nr uint16) string {
	if n, ok := names[nr]; ok {
		return n
	}
	return strconv.Itoa(int(nr))
}
