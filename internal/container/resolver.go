// Package container attributes processes to containers: from the cgroup id
// the kernel puts on every event to the container's id, runtime, name,
// image and Kubernetes pod, or to the host.
//
// A cgroup id is the inode number of the cgroup's directory in the cgroup
// v2 hierarchy. The Resolver turns it into the cgroup's path (with
// open_by_handle_at, or by walking the hierarchy when that is refused),
// reads the path (ParsePath) and then the runtime's state on disk for the
// names. Results are cached by cgroup id: an event costs a map lookup. On
// cgroup v1 hosts, and for processes a hybrid host leaves at the root of
// the v2 hierarchy, the process's /proc/<pid>/cgroup is read instead, once
// per process.
//
// The package reads files only; it never imports cilium/ebpf.
package container

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
)

// Defaults of the zero Config fields.
const (
	DefaultProcRoot   = "/proc"
	DefaultStateRoot  = "/"
	DefaultV1Root     = "/sys/fs/cgroup"
	DefaultMaxEntries = 16384
	// missRetry is how long a cgroup id that could not be found is not
	// looked up again.
	missRetry = 2 * time.Second
	// indexRefresh bounds how often the runc and crun state directories
	// are listed, to find containers whose cgroup path carries no mark.
	indexRefresh = time.Second
	// nameRetry: a container whose runtime state named nothing yet is
	// described again after this long (state written after the first
	// event), a few times.
	nameRetry = 2 * time.Second
)

// Config configures a Resolver. The zero value is usable.
type Config struct {
	// CgroupRoot is the cgroup v2 hierarchy: /sys/fs/cgroup/unified on a
	// hybrid host, /sys/fs/cgroup on a unified one; empty on a v1-only host
	// (then detected).
	CgroupRoot string
	// V1Root is where the cgroup v1 hierarchies are mounted, each in a
	// directory named after its controllers.
	V1Root string
	// ProcRoot is procfs, in the PID namespace events report.
	ProcRoot string
	// StateRoot prefixes the runtimes' state paths (/run/containerd, ...):
	// "/" on a host, a fixture directory in tests.
	StateRoot string
	// MaxEntries bounds the cache.
	MaxEntries int
	// Now is the clock.
	Now func() time.Time
}

// DetectCgroupRoot is the cgroup v2 hierarchy of this host, or "" when
// there is none (cgroup v1 only).
func DetectCgroupRoot() string {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// Stats counts the Resolver's work.
type Stats struct {
	Entries     int
	Hits        uint64
	Resolved    uint64 // cgroup ids resolved to a path
	Walks       uint64 // resolutions that walked the hierarchy
	Unresolved  uint64 // cgroup ids not found (gone already)
	ProcReads   uint64 // /proc/<pid>/cgroup reads (v1, or v2 root on hybrid)
	Containers  int    // cached cgroups that are containers'
	HandleError string `json:",omitempty"` // why open_by_handle_at is not used
}

// Resolver maps cgroup ids to containers. It is safe for concurrent use.
type Resolver struct {
	cfg    Config
	rootID uint64 // inode of the v2 root; 0 without v2
	// hasV1: cgroup v1 hierarchies are in use (v1 or hybrid host), so a
	// process at the v2 root may still be a container's.
	hasV1 bool
	mntFD int // the v2 root, for open_by_handle_at; -1 when unusable

	mu       sync.Mutex
	byID     map[uint64]*entry
	byPID    map[pidKey]*entry
	byPath   map[string]*entry       // containers listed by Containers
	index    map[string]runtimeState // runc/crun containers by cgroup path
	indexAt  time.Time
	stats    Stats
	closeErr error
}

type entry struct {
	c      *event.Container // nil: host
	missAt time.Time        // non-zero: not found at this time
	tries  int              // descriptions so far
	descAt time.Time
	ref    Ref
}

type pidKey struct {
	pid   uint32
	start uint64
}

// New makes a Resolver. It fails only when CgroupRoot is set and cannot be
// opened.
func New(cfg Config) (*Resolver, error) {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.StateRoot == "" {
		cfg.StateRoot = DefaultStateRoot
	}
	if cfg.V1Root == "" {
		cfg.V1Root = DefaultV1Root
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Resolver{cfg: cfg, mntFD: -1, byID: map[uint64]*entry{}, byPID: map[pidKey]*entry{}}
	if b, err := os.ReadFile(filepath.Join(cfg.ProcRoot, "self", "cgroup")); err == nil {
		r.hasV1 = len(ParseProcCgroup(b).V1) > 0
	}
	if cfg.CgroupRoot != "" {
		var st syscall.Stat_t
		if err := syscall.Stat(cfg.CgroupRoot, &st); err != nil {
			return nil, fmt.Errorf("container: cgroup v2 root: %w", err)
		}
		r.rootID = st.Ino
		fd, err := unix.Open(cfg.CgroupRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("container: open cgroup v2 root: %w", err)
		}
		r.mntFD = fd
		if _, err := r.pathByHandle(r.rootID); err != nil {
			r.stats.HandleError = err.Error()
			unix.Close(fd)
			r.mntFD = -1
		}
	}
	return r, nil
}

// Close releases the cgroup root. It is safe to call more than once.
func (r *Resolver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mntFD >= 0 {
		r.closeErr = unix.Close(r.mntFD)
		r.mntFD = -1
	}
	return r.closeErr
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Entries = len(r.byID) + len(r.byPID)
	for _, e := range r.byID {
		if e.c != nil {
			s.Containers++
		}
	}
	return s
}

// Enrich sets e.Origin and e.Container from the process's cgroup.
func (r *Resolver) Enrich(e *event.Event) {
	c, origin := r.Lookup(e.Process.CgroupID, e.Process.PID, e.Process.StartBoot)
	e.Origin, e.Container = origin, c
}

// Lookup attributes a process, given its cgroup id and, for hosts where
// the id does not tell (cgroup v1, or the v2 root of a hybrid host), its
// PID and start time. The returned Container is shared: callers must not
// modify it.
func (r *Resolver) Lookup(cgroupID uint64, pid uint32, startBoot uint64) (*event.Container, event.Origin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cgroupID == 0 || cgroupID == r.rootID || r.rootID == 0 {
		if cgroupID != 0 && cgroupID == r.rootID && !r.hasV1 {
			return nil, event.OriginHost
		}
		if pid == 0 {
			return nil, event.OriginUnknown
		}
		return r.lookupPIDLocked(pid, startBoot)
	}
	e := r.byID[cgroupID]
	if e != nil && e.missAt.IsZero() {
		r.stats.Hits++
		if e.incomplete() {
			r.refreshLocked(e, r.cfg.Now())
		}
		return e.result()
	}
	now := r.cfg.Now()
	if e != nil && now.Sub(e.missAt) < missRetry {
		return nil, event.OriginUnknown
	}
	path, err := r.pathOf(cgroupID)
	if err != nil {
		r.stats.Unresolved++
		r.storeLocked(cgroupID, &entry{missAt: now})
		return nil, event.OriginUnknown
	}
	r.stats.Resolved++
	e = r.entryForPathLocked(path, now)
	r.storeLocked(cgroupID, e)
	return e.result()
}

// incomplete: a container the runtime's state named nothing of yet, to be
// described again (at most three descriptions).
func (e *entry) incomplete() bool {
	return e.c != nil && e.tries < 3 && (e.c.Name == "" || e.c.Runtime == "")
}

func (e *entry) result() (*event.Container, event.Origin) {
	if e.c == nil {
		return nil, event.OriginHost
	}
	return e.c, event.OriginContainer
}

func (r *Resolver) storeLocked(id uint64, e *entry) {
	if len(r.byID) >= r.cfg.MaxEntries {
		// Cgroup ids are never reused: start again rather than track age.
		clear(r.byID)
	}
	r.byID[id] = e
}

// entryForPathLocked attributes a cgroup path.
func (r *Resolver) entryForPathLocked(path string, now time.Time) *entry {
	ref, ok := ParsePath(path)
	if !ok {
		ref, ok = r.fromIndexLocked(path, now)
	}
	if !ok {
		return &entry{}
	}
	e := &entry{ref: ref}
	r.describeLocked(e, now)
	return e
}

func (r *Resolver) describeLocked(e *entry, now time.Time) {
	e.c = describe(r.cfg.StateRoot, e.ref)
	e.tries++
	e.descAt = now
}

// refreshLocked describes a container again when its state named nothing
// the first time: runtimes may write their state after the first process
// of the container has run.
func (r *Resolver) refreshLocked(e *entry, now time.Time) {
	if !e.incomplete() || now.Sub(e.descAt) < nameRetry {
		return
	}
	r.describeLocked(e, now)
}

// fromIndexLocked finds a runc or crun container by its cgroup path, for
// paths chosen by whoever ran the runtime.
func (r *Resolver) fromIndexLocked(path string, now time.Time) (Ref, bool) {
	if r.index == nil || now.Sub(r.indexAt) >= indexRefresh {
		r.index = map[string]runtimeState{}
		for _, st := range listRuntimeStates(r.cfg.StateRoot) {
			p := st.cgroupPath
			if r.cfg.CgroupRoot != "" {
				if rel, ok := strings.CutPrefix(p, r.cfg.CgroupRoot); ok {
					p = cleanCgroupPath(rel)
				}
			}
			if p != "" && p != "/" {
				r.index[p] = st
			}
		}
		r.indexAt = now
	}
	// The process may be in a sub-cgroup of the container's.
	for p := path; p != "/" && p != "." && p != ""; p = filepath.Dir(p) {
		if st, ok := r.index[p]; ok {
			return Ref{ID: st.id, Runtime: st.runtime, Path: p}, true
		}
	}
	return Ref{}, false
}

// lookupPIDLocked attributes a process by its /proc/<pid>/cgroup.
func (r *Resolver) lookupPIDLocked(pid uint32, startBoot uint64) (*event.Container, event.Origin) {
	k := pidKey{pid, startBoot}
	if e := r.byPID[k]; e != nil && startBoot != 0 {
		r.stats.Hits++
		return e.result()
	}
	b, err := os.ReadFile(filepath.Join(r.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	r.stats.ProcReads++
	if err != nil {
		return nil, event.OriginUnknown
	}
	now := r.cfg.Now()
	pc := ParseProcCgroup(b)
	var e *entry
	if ref, ok := pc.Ref(); ok {
		e = &entry{ref: ref}
		r.describeLocked(e, now)
	} else {
		e = &entry{}
		for _, p := range []string{pc.V1["name=systemd"], pc.V2} {
			if p != "" && p != "/" {
				if ref, ok := r.fromIndexLocked(p, now); ok {
					e = &entry{ref: ref}
					r.describeLocked(e, now)
					break
				}
			}
		}
	}
	if startBoot != 0 {
		if len(r.byPID) >= r.cfg.MaxEntries {
			clear(r.byPID)
		}
		r.byPID[k] = e
	}
	return e.result()
}

// Forget drops what is cached about a process that exited (cgroup v1 and
// v2-root attributions are cached per process).
func (r *Resolver) Forget(pid uint32, startBoot uint64) {
	r.mu.Lock()
	delete(r.byPID, pidKey{pid, startBoot})
	r.mu.Unlock()
}

// pathOf finds the path of a v2 cgroup, relative to the hierarchy's root.
func (r *Resolver) pathOf(id uint64) (string, error) {
	if r.mntFD >= 0 {
		if p, err := r.pathByHandle(id); err == nil {
			return p, nil
		}
	}
	r.stats.Walks++
	return WalkFind(r.cfg.CgroupRoot, id)
}

// fileidKernfs is the kernel's FILEID_KERNFS handle type: kernfs (cgroupfs)
// handles are the 64-bit node id, which is the cgroup id.
const fileidKernfs = 0xfe

// pathByHandle opens the cgroup by its id and reads its path back.
func (r *Resolver) pathByHandle(id uint64) (string, error) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(r.mntFD, unix.NewFileHandle(fileidKernfs, b[:]), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("open_by_handle_at: %w", err)
	}
	defer unix.Close(fd)
	full, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	rel, ok := strings.CutPrefix(full, r.cfg.CgroupRoot)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", fmt.Errorf("cgroup %d at %s, outside %s", id, full, r.cfg.CgroupRoot)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

// errNotFound: no directory under the root has the cgroup id.
var errNotFound = errors.New("cgroup not found")

// WalkFind walks a cgroup v2 hierarchy for the directory whose inode is id
// and returns its path relative to root.
func WalkFind(root string, id uint64) (string, error) {
	var found string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed during the walk
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Ino == id {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", errNotFound
	}
	rel, _ := filepath.Rel(root, found)
	return cleanCgroupPath(rel), nil
}
