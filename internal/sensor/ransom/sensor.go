// Package ransom is the ransomware sensor (ransom.bpf.c): for every regular
// file a process opens for writing, the bytes and write calls it made, and a
// sample of the first write judged in the kernel (entropy, known format);
// unlinks and renames by processes that wrote files; writes, unlinks and
// renames of decoy files. The kernel keeps a score per process and can kill
// at a threshold, before user space hears of it.
//
// Its records are detector input (internal/detect/ransom), not events.
//
// Not seen: writes through mmap, io_uring, sendfile, copy_file_range and
// splice (no write syscall carries the data), 32-bit syscalls, fds
// duplicated by fcntl(F_DUPFD) or inherited by a child, and fds closed by
// close_range or exit (their files send no record). dup, dup2 and dup3 are
// followed (a shell's "> file").
package ransom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// Config tunes the kernel side. Zero values take the defaults.
type Config struct {
	// SampleBytes is the most bytes of a first write judged, 256..512.
	SampleBytes int
	// EntropyMin is the sample entropy, in bits per byte, from which data
	// of no known format counts as encrypted.
	EntropyMin float64
	// Window is how long the kernel's per-process score keeps counting
	// (it starts over after).
	Window time.Duration
	// KillScore: the kernel kills a process whose score reaches it; 0:
	// never (user space decides alone).
	KillScore int
	// DecoyKill: the kernel kills a process that writes, unlinks or renames a decoy.
	DecoyKill bool
	// OnlyCgroup restricts the sensor, and so its kills, to the processes
	// of one cgroup v2 (its id); 0: every process.
	OnlyCgroup uint64
}

// Defaults: see docs/files.md for what they let through.
const (
	DefaultSampleBytes = 512
	DefaultEntropyMin  = 7.0
	DefaultWindow      = 10 * time.Minute
)

// Hooks names the kernel hooks, for status and errors.
var Hooks = []string{
	"tracepoint/syscalls/sys_exit_openat", "tracepoint/syscalls/sys_exit_open", "tracepoint/syscalls/sys_exit_creat",
	"tracepoint/syscalls/sys_exit_openat2", "tracepoint/syscalls/sys_enter_write", "tracepoint/syscalls/sys_enter_pwrite64",
	"tracepoint/syscalls/sys_enter_writev", "tracepoint/syscalls/sys_enter_pwritev", "tracepoint/syscalls/sys_enter_close",
	"tracepoint/syscalls/sys_exit_unlink", "tracepoint/syscalls/sys_exit_unlinkat", "tracepoint/syscalls/sys_exit_rename",
	"tracepoint/syscalls/sys_exit_renameat", "tracepoint/syscalls/sys_exit_renameat2",
	"tracepoint/syscalls/sys_exit_dup", "tracepoint/syscalls/sys_exit_dup2", "tracepoint/syscalls/sys_exit_dup3",
}

// Sensor is the loaded and attached ransomware sensor.
type Sensor struct {
	objs   bpfObjects
	links  []link.Link
	mu     sync.Mutex
	decoys map[string]sensor.InodeKey // path -> inode marked
	// Skipped lists hooks this kernel lacks.
	Skipped []string
}

// New loads and attaches the sensor.
func New(cfg Config, shared *sensor.Shared) (*Sensor, error) {
	if cfg.SampleBytes == 0 {
		cfg.SampleBytes = DefaultSampleBytes
	}
	if cfg.EntropyMin == 0 {
		cfg.EntropyMin = DefaultEntropyMin
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.SampleBytes < 256 || cfg.SampleBytes > 512 {
		return nil, fmt.Errorf("ransom sensor: sample of %d bytes: must be 256..512", cfg.SampleBytes)
	}
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("ransom sensor: %w", err)
	}
	for name, v := range map[string]any{
		"sample_max":  uint32(cfg.SampleBytes),
		"entropy_min": uint32(cfg.EntropyMin * 1000),
		"window_ns":   uint64(cfg.Window),
		"kill_score":  uint32(cfg.KillScore),
		"decoy_kill":  cfg.DecoyKill,
		"decoy_names": true,
		"only_cgroup": cfg.OnlyCgroup,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("ransom sensor: set %s: %w", name, err)
		}
	}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("ransom sensor: %w", err)
	}
	s := &Sensor{decoys: map[string]sensor.InodeKey{}}
	if err := spec.LoadAndAssign(&s.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return nil, sensor.Explain("ransom sensor: load", err)
	}
	progs := map[string]*ebpf.Program{
		"sys_exit_openat": s.objs.VigilRwOpenat, "sys_exit_open": s.objs.VigilRwOpen, "sys_exit_creat": s.objs.VigilRwCreat,
		"sys_exit_openat2": s.objs.VigilRwOpenat2, "sys_enter_write": s.objs.VigilRwWrite, "sys_enter_pwrite64": s.objs.VigilRwPwrite,
		"sys_enter_writev": s.objs.VigilRwWritev, "sys_enter_pwritev": s.objs.VigilRwPwritev, "sys_enter_close": s.objs.VigilRwClose,
		"sys_exit_unlink": s.objs.VigilRwUnlink, "sys_exit_unlinkat": s.objs.VigilRwUnlinkat, "sys_exit_rename": s.objs.VigilRwRename,
		"sys_exit_renameat": s.objs.VigilRwRenameat, "sys_exit_renameat2": s.objs.VigilRwRenameat2,
		"sys_exit_dup": s.objs.VigilRwDup, "sys_exit_dup2": s.objs.VigilRwDup2, "sys_exit_dup3": s.objs.VigilRwDup3,
	}
	for _, hook := range Hooks {
		tp := strings.TrimPrefix(hook, "tracepoint/syscalls/")
		l, err := link.Tracepoint("syscalls", tp, progs[tp], nil)
		if err != nil {
			switch tp {
			case "sys_exit_openat", "sys_enter_write", "sys_enter_close":
				s.Close()
				return nil, sensor.Explain("ransom sensor: attach "+hook, err)
			}
			s.Skipped = append(s.Skipped, fmt.Sprintf("%s: %v", hook, err))
			continue
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// Close detaches and unloads everything. It is safe to call more than once.
func (s *Sensor) Close() error {
	errs := make([]error, len(s.links))
	var wg sync.WaitGroup
	for i, l := range s.links {
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	s.links = nil
	errs = append(errs, s.objs.bpfPrograms.Close())
	for _, m := range []**ebpf.Map{&s.objs.VigilRwFds, &s.objs.VigilRwProcs, &s.objs.VigilDecoyInodes, &s.objs.VigilDecoyNames, &s.objs.VigilScratch} {
		if *m != nil {
			errs = append(errs, (*m).Close())
			*m = nil
		}
	}
	s.objs.bpfPrograms = bpfPrograms{}
	return errors.Join(errs...)
}

// NameHash is the kernel's hash of a file name (FNV-1a, 64 bits), for
// decoys' unlinks and renames.
func NameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// SetDecoys makes paths the decoys: the kernel reports (and with DecoyKill
// kills) a process that opens one for writing, or unlinks or renames a file
// of that name. Decoys set before and not in paths are forgotten.
func (s *Sensor) SetDecoys(paths []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]sensor.InodeKey{}
	for _, p := range paths {
		k, err := sensor.InodeOf(p)
		if err != nil {
			return fmt.Errorf("decoy %s: %w", p, err)
		}
		want[p] = k
	}
	for p, k := range s.decoys {
		if nk, ok := want[p]; !ok || nk != k {
			if err := s.objs.VigilDecoyInodes.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("decoy %s: %w", p, err)
			}
		}
	}
	names := map[uint64]bool{}
	for p, k := range want {
		if err := s.objs.VigilDecoyInodes.Put(k, uint8(1)); err != nil {
			return fmt.Errorf("decoy %s: %w", p, err)
		}
		names[NameHash(filepath.Base(p))] = true
	}
	var stale []uint64
	var h uint64
	var v uint8
	it := s.objs.VigilDecoyNames.Iterate()
	for it.Next(&h, &v) {
		if !names[h] {
			stale = append(stale, h)
		}
	}
	for _, h := range stale {
		if err := s.objs.VigilDecoyNames.Delete(h); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("decoys: %w", err)
		}
	}
	for h := range names {
		if err := s.objs.VigilDecoyNames.Put(h, uint8(1)); err != nil {
			return fmt.Errorf("decoys: %w", err)
		}
	}
	s.decoys = want
	return nil
}

// Op is what a record reports.
type Op uint8

const (
	// OpClose: a regular file opened for writing, written, and closed (or
	// being written when the kernel killed the process).
	OpClose Op = Op(bpfWriteOpWRITE_CLOSE)
	// OpUnlink and OpRename by a process that wrote a file in the window,
	// or of a decoy.
	OpUnlink Op = Op(bpfWriteOpWRITE_UNLINK)
	OpRename Op = Op(bpfWriteOpWRITE_RENAME)
	// OpDecoyOpen: a decoy opened for writing.
	OpDecoyOpen Op = Op(bpfWriteOpWRITE_DECOY_OPEN)
)

func (o Op) String() string {
	switch o {
	case OpClose:
		return "write"
	case OpUnlink:
		return "unlink"
	case OpRename:
		return "rename"
	case OpDecoyOpen:
		return "decoy-open"
	}
	return fmt.Sprintf("op%d", o)
}

// Record is one record of the sensor.
type Record struct {
	Time    time.Time
	Op      Op
	Path    string // the file (close, decoy open), or the name unlinked or renamed
	NewPath string // rename: the new name
	Inode   uint64
	Device  uint32

	Created, Truncated bool
	Sampled            bool    // Entropy and Magic are measured
	Entropy            float64 // bits per byte of the sample
	SampleLen          int
	Magic              string // known format the sample starts with, "" for none
	AtOffset           bool   // the sample was not at offset 0: Magic not judged
	HighEntropy        bool   // Entropy >= the kernel's threshold and no Magic
	Bytes              uint64 // asked to be written
	Writes             uint32
	Decoy              bool // a decoy was touched
	Killed             bool // the kernel sent SIGKILL with this operation
	Score              uint32
	PathTruncated      bool
}

var (
	recSize = int(unsafe.Sizeof(bpfWriteEvent{}))
	layout  bpfWriteEvent
	offLens = unsafe.Offsetof(layout.PathLen)
)

// Decode decodes a record of type sensor.TypeWrite into r and the task into p.
func Decode(rec []byte, clk sensor.Clock, p *event.Process, r *Record) error {
	if len(rec) < recSize {
		return fmt.Errorf("write record: %d bytes, shorter than its %d fixed bytes", len(rec), recSize)
	}
	if err := sensor.DecodeTask(rec, clk, p); err != nil {
		return err
	}
	var e bpfWriteEvent
	if _, err := binary.Decode(rec[:recSize], binary.LittleEndian, &e); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	var lens [4]int
	want := 0
	for i := range lens {
		lens[i] = int(binary.LittleEndian.Uint16(rec[offLens+2*uintptr(i):]))
		want += lens[i]
	}
	data := rec[recSize:]
	if len(data) < want {
		return fmt.Errorf("write record: %d bytes of data, header says %d", len(data), want)
	}
	p1, data := data[:lens[0]], data[lens[0]:]
	r1, data := data[:lens[1]], data[lens[1]:]
	p2, data := data[:lens[2]], data[lens[2]:]
	r2 := data[:lens[3]]
	f := bpfWriteFlag(e.Flags)
	*r = Record{
		Time: clk.Time(e.Hdr.KtimeNs), Op: Op(e.Op), Inode: e.Ino, Device: e.Dev,
		Created: f&bpfWriteFlagWRITE_CREATED != 0, Truncated: f&bpfWriteFlagWRITE_TRUNCATED != 0,
		Sampled: f&bpfWriteFlagWRITE_SAMPLED != 0, AtOffset: f&bpfWriteFlagWRITE_OFFSET != 0,
		HighEntropy: f&bpfWriteFlagWRITE_HIGH_ENTROPY != 0, Decoy: f&bpfWriteFlagWRITE_DECOY != 0,
		Killed: f&bpfWriteFlagWRITE_KILLED != 0, PathTruncated: f&bpfWriteFlagWRITE_PATH_TRUNCATED != 0,
		Bytes: e.Bytes, Writes: e.Writes, Score: e.Score, SampleLen: int(e.SampleLen),
	}
	if r.Sampled {
		r.Entropy = float64(e.Entropy) / 1000
		if e.Magic > 0 && int(e.Magic) <= len(magicNames) {
			r.Magic = magicNames[e.Magic-1]
		}
	}
	if f&bpfWriteFlagWRITE_PATH_RESOLVED != 0 {
		r.Path = sensor.JoinComponents(p1)
	} else {
		r.Path = sensor.Resolve(sensor.CString(r1), sensor.JoinComponents(p1))
	}
	if r.Op == OpRename {
		r.NewPath = sensor.Resolve(sensor.CString(r2), sensor.JoinComponents(p2))
	}
	if r.Path == "" {
		r.Path = "/"
	}
	r.Path = path.Clean(r.Path)
	return nil
}
