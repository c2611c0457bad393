package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Outcome limits a kind to successful or failed operations (enum outcome).
type Outcome uint8

const (
	OutcomeAny     Outcome = 0
	OutcomeSuccess Outcome = 1
	OutcomeFailure Outcome = 2
)

// Scope limits a kind to some processes or cgroups (enum scope_mode).
type Scope uint8

const (
	ScopeAll      Scope = 0 // everyone: no lookup at all
	ScopeIncluded Scope = 1 // only those marked Include
	ScopeExcluded Scope = 2 // all but those marked Exclude
)

// Mark puts a process or cgroup in or out of scope (enum scope_mark).
type Mark uint8

const (
	Exclude Mark = 1
	Include Mark = 2
)

// Interest says which file operations are reported (enum file_interest).
type Interest uint8

const (
	InterestNone    Interest = 0
	InterestWatched Interest = 1 // only files at or below inodes marked to watch
	InterestAll     Interest = 2 // all but those below ignored directories
)

// InodeMark marks a file or directory (enum inode_mark bits).
type InodeMark uint8

const (
	WatchWrite InodeMark = 1 << 0
	WatchRead  InodeMark = 1 << 1
	Ignore     InodeMark = 1 << 2
)

// KindFilter is struct kind_filter: what the kernel sends of one kind.
type KindFilter struct {
	Enabled     bool
	Outcome     Outcome
	PIDScope    Scope
	CgroupScope Scope
	FileWrites  Interest // file kind only
	FileReads   Interest // file kind only
	CommScope   Scope    // over the task names marked with MarkComm
}

const kindFilterSize = 8

func (f KindFilter) MarshalBinary() ([]byte, error) {
	b := make([]byte, kindFilterSize)
	if f.Enabled {
		b[0] = 1
	}
	b[1], b[2], b[3], b[4], b[5] = byte(f.Outcome), byte(f.PIDScope), byte(f.CgroupScope), byte(f.FileWrites), byte(f.FileReads)
	b[6] = byte(f.CommScope)
	return b, nil
}

func (f *KindFilter) UnmarshalBinary(b []byte) error {
	if len(b) != kindFilterSize {
		return fmt.Errorf("kind_filter: %d bytes", len(b))
	}
	*f = KindFilter{Enabled: b[0] != 0, Outcome: Outcome(b[1]), PIDScope: Scope(b[2]), CgroupScope: Scope(b[3]),
		FileWrites: Interest(b[4]), FileReads: Interest(b[5]), CommScope: Scope(b[6])}
	return nil
}

// SetKind sets what the kernel sends of one record type.
func (s *Shared) SetKind(t uint16, f KindFilter) error {
	if t == 0 || t >= TypeMax {
		return fmt.Errorf("set filter: no record type %d", t)
	}
	if err := s.Kinds.Put(uint32(t), f); err != nil {
		return fmt.Errorf("set filter for %s: %w", TypeName(t), err)
	}
	return nil
}

// Kind reads back the filter of one record type.
func (s *Shared) Kind(t uint16) (KindFilter, error) {
	var f KindFilter
	err := s.Kinds.Lookup(uint32(t), &f)
	return f, err
}

// MarkPID puts a process (by tgid) in or out of the scopes that use marks.
func (s *Shared) MarkPID(tgid uint32, m Mark) error { return s.PIDs.Put(tgid, uint8(m)) }

// UnmarkPID forgets a process's mark.
func (s *Shared) UnmarkPID(tgid uint32) error { return ignoreNotExist(s.PIDs.Delete(tgid)) }

// MarkCgroup puts a cgroup (by id) in or out of the scopes that use marks.
func (s *Shared) MarkCgroup(id uint64, m Mark) error { return s.Cgroups.Put(id, uint8(m)) }

// UnmarkCgroup forgets a cgroup's mark.
func (s *Shared) UnmarkCgroup(id uint64) error { return ignoreNotExist(s.Cgroups.Delete(id)) }

// CommLen is the size of a task name in the kernel (TASK_COMM_LEN), NUL
// included: names are at most CommLen-1 bytes.
const CommLen = 16

// CommKey is a task name as the kernel's bpf_get_current_comm gives it: cut
// to CommLen-1 bytes and NUL-padded, as vigil_comms is keyed.
func CommKey(comm string) [CommLen]byte {
	var k [CommLen]byte
	copy(k[:CommLen-1], comm)
	return k
}

// MarkComm puts a task name (a process's comm, as in /proc/<pid>/comm) in or
// out of the scopes that use marks. Longer names are cut as the kernel cuts
// them.
func (s *Shared) MarkComm(comm string, m Mark) error { return s.Comms.Put(CommKey(comm), uint8(m)) }

// UnmarkComm forgets a task name's mark.
func (s *Shared) UnmarkComm(comm string) error { return ignoreNotExist(s.Comms.Delete(CommKey(comm))) }

// InodeKey identifies a file the way the kernel does: its superblock's device
// (kernel encoding, major << 20 | minor) and inode number.
type InodeKey struct {
	Ino uint64
	Dev uint32
}

func (k InodeKey) MarshalBinary() ([]byte, error) {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, k.Ino)
	binary.LittleEndian.PutUint32(b[8:], k.Dev)
	return b, nil
}

// KernelDev converts a stat(2) st_dev into the kernel's internal encoding.
func KernelDev(statDev uint64) uint32 {
	return unix.Major(statDev)<<20 | unix.Minor(statDev)
}

// InodeOf stats path (following symlinks) and returns its key.
func InodeOf(path string) (InodeKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return InodeKey{}, err
	}
	return InodeKey{Ino: st.Ino, Dev: KernelDev(st.Dev)}, nil
}

// MarkInode sets the marks of a file or directory; 0 removes them.
func (s *Shared) MarkInode(k InodeKey, m InodeMark) error {
	if m == 0 {
		// The inode's Bloom bit stays set: a false positive costs one
		// lookup, a missing bit would lose events.
		return ignoreNotExist(s.Inodes.Delete(k))
	}
	// Bit first: the kernel must never see a mark whose bit is clear.
	word, bit := inodeBloomBit(k)
	var v uint64
	if err := s.Bloom.Lookup(word, &v); err != nil {
		return fmt.Errorf("mark inode: %w", err)
	}
	if err := s.Bloom.Put(word, v|1<<bit); err != nil {
		return fmt.Errorf("mark inode: %w", err)
	}
	return s.Inodes.Put(k, uint8(m))
}

const bloomWords = 1024 // INODE_BLOOM_WORDS

// inodeBloomBit is inode_maybe_marked's hash (bpf/lib/filter.h).
func inodeBloomBit(k InodeKey) (word uint32, bit uint) {
	h := (k.Ino ^ uint64(k.Dev)<<32) * 0x9E3779B97F4A7C15
	b := uint32(h >> 48)
	return b >> 6, uint(b & 63)
}

func ignoreNotExist(err error) error {
	if err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, ebpf.ErrKeyNotExist) }
