// Package sensor holds what Vigil's kernel sensors share: the ring buffer that
// carries their records to user space, the in-kernel sent/lost counters, the
// checks made before anything is loaded, and the boot clock.
//
// Each sensor (internal/sensor/<name>) loads its own BPF object with the shared
// maps put in place of its copies, so there is one ring buffer and one set of
// counters for all of them.
package sensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Names of the maps every sensor object declares (bpf/lib/output.h).
const (
	MapEvents = "vigil_events"
	MapStats  = "vigil_stats"
)

// Record types, mirroring enum event_type in bpf/events.h.
const (
	TypeExec uint16 = 1
	TypeFork uint16 = 2
	TypeExit uint16 = 3
	typeMax         = 4
)

// TypeName names a record type for counters and logs.
func TypeName(t uint16) string {
	switch t {
	case TypeExec:
		return "exec"
	case TypeFork:
		return "fork"
	case TypeExit:
		return "exit"
	}
	return fmt.Sprintf("type%d", t)
}

// Shared is the set of maps all sensors write to.
type Shared struct {
	Events *ebpf.Map // ring buffer
	Stats  *ebpf.Map // per-CPU struct kstats per record type
}

// NewShared creates the ring buffer, ringBytes long (a power of two, at least
// one page), and the counters.
func NewShared(ringBytes int) (*Shared, error) {
	if ringBytes < 4096 || ringBytes&(ringBytes-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: must be a power of two of at least 4096 bytes", ringBytes)
	}
	events, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       MapEvents,
		Type:       ebpf.RingBuf,
		MaxEntries: uint32(ringBytes),
	})
	if err != nil {
		return nil, fmt.Errorf("create ring buffer: %w", explain(err))
	}
	stats, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       MapStats,
		Type:       ebpf.PerCPUArray,
		KeySize:    4,
		ValueSize:  16,
		MaxEntries: typeMax,
	})
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("create counters: %w", explain(err))
	}
	return &Shared{Events: events, Stats: stats}, nil
}

// Replace points a sensor's collection spec at the shared maps: it returns the
// MapReplacements to load it with, and sizes the spec's ring buffer to match.
func (s *Shared) Replace(spec *ebpf.CollectionSpec) map[string]*ebpf.Map {
	if m, ok := spec.Maps[MapEvents]; ok {
		m.MaxEntries = s.Events.MaxEntries()
	}
	return map[string]*ebpf.Map{MapEvents: s.Events, MapStats: s.Stats}
}

// Close releases the maps. It is safe to call more than once.
func (s *Shared) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	if s.Events != nil {
		errs = append(errs, s.Events.Close())
		s.Events = nil
	}
	if s.Stats != nil {
		errs = append(errs, s.Stats.Close())
		s.Stats = nil
	}
	return errors.Join(errs...)
}

// Counts is what the kernel side reports for one record type.
type Counts struct {
	Sent uint64 // accepted by the ring buffer
	Lost uint64 // refused because the ring buffer was full
}

// KernelCounts sums the per-CPU counters, indexed by record type.
func (s *Shared) KernelCounts() (map[uint16]Counts, error) {
	out := make(map[uint16]Counts, typeMax)
	for t := uint32(1); t < typeMax; t++ {
		var perCPU []struct{ Sent, Lost uint64 }
		if err := s.Stats.Lookup(t, &perCPU); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		var c Counts
		for _, v := range perCPU {
			c.Sent += v.Sent
			c.Lost += v.Lost
		}
		out[uint16(t)] = c
	}
	return out, nil
}
