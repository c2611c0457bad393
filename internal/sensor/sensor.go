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
	"os"

	"github.com/cilium/ebpf"
)

// Names of the maps sensor objects share (bpf/lib/output.h, bpf/lib/filter.h).
const (
	MapEvents  = "vigil_events"
	MapStats   = "vigil_stats"
	MapKinds   = "vigil_kinds"
	MapPIDs    = "vigil_pids"
	MapCgroups = "vigil_cgroups"
	MapComms   = "vigil_comms"
	MapInodes  = "vigil_inodes"
	MapBloom   = "vigil_inode_bloom"
)

// Record types, mirroring enum event_type in bpf/events.h.
const (
	TypeExec   uint16 = 1
	TypeFork   uint16 = 2
	TypeExit   uint16 = 3
	TypeFile   uint16 = 4
	TypeCred   uint16 = 5
	TypeNet    uint16 = 6
	TypeKernel uint16 = 7
	// TypeSyscalls carries syscall sequences for learned-behaviour models.
	TypeSyscalls uint16 = 8
	// TypeWrite carries the ransomware sensor's records (written files
	// closed, unlinks and renames by writers, decoys).
	TypeWrite uint16 = 9
	// TypeMax bounds record types: every type is below it.
	TypeMax = 10
)

var typeNames = [TypeMax]string{"", "exec", "fork", "exit", "file", "cred", "net", "kernel", "syscalls", "write"}

// TypeName names a record type for counters and logs.
func TypeName(t uint16) string {
	if t > 0 && t < TypeMax {
		return typeNames[t]
	}
	return fmt.Sprintf("type%d", t)
}

// Shared is the set of maps all sensors write to and filter with.
type Shared struct {
	Events  *ebpf.Map // ring buffer
	Stats   *ebpf.Map // per-CPU struct kstats per record type
	Kinds   *ebpf.Map // struct kind_filter per record type
	PIDs    *ebpf.Map // tgid -> enum scope_mark
	Cgroups *ebpf.Map // cgroup id -> enum scope_mark
	Comms   *ebpf.Map // task name (CommKey) -> enum scope_mark
	Inodes  *ebpf.Map // struct inode_key -> enum inode_mark
	Bloom   *ebpf.Map // summary of Inodes: a clear bit proves an inode unmarked
}

// NewShared creates the ring buffer, ringBytes long (a power of two, at least
// one page), the counters and the filter maps. Every kind starts disabled.
func NewShared(ringBytes int) (*Shared, error) {
	if ringBytes < 4096 || ringBytes&(ringBytes-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: must be a power of two of at least 4096 bytes", ringBytes)
	}
	if err := EnsureTracefs(); err != nil {
		return nil, err
	}
	s := &Shared{}
	for _, m := range []struct {
		dst  **ebpf.Map
		spec ebpf.MapSpec
	}{
		{&s.Events, ebpf.MapSpec{Name: MapEvents, Type: ebpf.RingBuf, MaxEntries: uint32(ringBytes)}},
		{&s.Stats, ebpf.MapSpec{Name: MapStats, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: kstatsSize, MaxEntries: TypeMax}},
		{&s.Kinds, ebpf.MapSpec{Name: MapKinds, Type: ebpf.Array, KeySize: 4, ValueSize: kindFilterSize, MaxEntries: TypeMax}},
		{&s.PIDs, ebpf.MapSpec{Name: MapPIDs, Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 4096}},
		{&s.Cgroups, ebpf.MapSpec{Name: MapCgroups, Type: ebpf.Hash, KeySize: 8, ValueSize: 1, MaxEntries: 4096}},
		{&s.Comms, ebpf.MapSpec{Name: MapComms, Type: ebpf.Hash, KeySize: CommLen, ValueSize: 1, MaxEntries: 1024}},
		{&s.Inodes, ebpf.MapSpec{Name: MapInodes, Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: 16384}},
		{&s.Bloom, ebpf.MapSpec{Name: MapBloom, Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: bloomWords}},
	} {
		var err error
		if *m.dst, err = ebpf.NewMap(&m.spec); err != nil {
			s.Close()
			return nil, fmt.Errorf("create map %s: %w", m.spec.Name, explain(err))
		}
	}
	return s, nil
}

func (s *Shared) maps() map[string]**ebpf.Map {
	return map[string]**ebpf.Map{
		MapEvents: &s.Events, MapStats: &s.Stats, MapKinds: &s.Kinds,
		MapPIDs: &s.PIDs, MapCgroups: &s.Cgroups, MapComms: &s.Comms, MapInodes: &s.Inodes, MapBloom: &s.Bloom,
	}
}

// Prepare readies a sensor's collection spec to load against the shared maps:
// it sizes the spec's ring buffer to match, sets the wakeup threshold, tells
// the programs which process is the agent (so they never report it), and
// returns the MapReplacements to load with.
func (s *Shared) Prepare(spec *ebpf.CollectionSpec) (map[string]*ebpf.Map, error) {
	if m, ok := spec.Maps[MapEvents]; ok {
		m.MaxEntries = s.Events.MaxEntries()
	}
	// Past an eighth of the ring, the next record wakes the reader instead
	// of waiting for its next poll (bpf/lib/output.h).
	if v, ok := spec.Variables["wakeup_bytes"]; ok {
		if err := v.Set(uint64(s.Events.MaxEntries()) / 8); err != nil {
			return nil, fmt.Errorf("set wakeup_bytes: %w", err)
		}
	}
	// Past three quarters, only process lifecycle is still let in.
	if v, ok := spec.Variables["shed_bytes"]; ok {
		if err := v.Set(uint64(s.Events.MaxEntries()) / 4 * 3); err != nil {
			return nil, fmt.Errorf("set shed_bytes: %w", err)
		}
	}
	if v, ok := spec.Variables["vigil_tgid"]; ok {
		if err := v.Set(uint32(os.Getpid())); err != nil {
			return nil, fmt.Errorf("set vigil_tgid: %w", err)
		}
	}
	repl := map[string]*ebpf.Map{}
	for name, m := range s.maps() {
		if _, ok := spec.Maps[name]; ok {
			repl[name] = *m
		}
	}
	return repl, nil
}

// Close releases the maps. It is safe to call more than once.
func (s *Shared) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, m := range s.maps() {
		if *m != nil {
			errs = append(errs, (*m).Close())
			*m = nil
		}
	}
	return errors.Join(errs...)
}

// Counts is what the kernel side reports for one record type.
type Counts struct {
	Sent     uint64 // accepted by the ring buffer
	Lost     uint64 // refused because the ring buffer was full
	Filtered uint64 // not sent because no rule needs them
}

const kstatsSize = 24 // struct kstats

// KernelCounts sums the per-CPU counters, indexed by record type.
func (s *Shared) KernelCounts() (map[uint16]Counts, error) {
	out := make(map[uint16]Counts, TypeMax)
	for t := uint32(1); t < TypeMax; t++ {
		var perCPU []Counts
		if err := s.Stats.Lookup(t, &perCPU); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		var c Counts
		for _, v := range perCPU {
			c.Sent += v.Sent
			c.Lost += v.Lost
			c.Filtered += v.Filtered
		}
		out[uint16(t)] = c
	}
	return out, nil
}
