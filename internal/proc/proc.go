// Package proc is Vigil's process cache: every process the agent knows of,
// keyed by PID and start time (Key), with the program it runs, its
// credentials and its place in the process tree.
//
// Sensors report forks, execs and exits (Cache.Fork, Cache.Exec, Cache.Exit);
// ScanProcfs learns the processes that already run when the agent starts;
// Enrich adds the parent and ancestors to an event; Sweep removes processes
// that are gone. One goroutine normally drives the cache, but every method is
// safe for concurrent use (a status goroutine reads Stats).
//
// An entry is Alive until its exit, then Exited for Config.ExitGrace (late
// lookups still find it) and for as long as any of its children is cached, so
// that the ancestry of live processes resolves even after their parents have
// gone; then Sweep reaps it.
//
// Values returned by the cache are copies, except Args, whose backing array is
// shared with the cache: the cache never modifies a stored slice in place, and
// callers must treat Args as read-only (appending is safe: the returned slices
// have no spare capacity). Likewise the cache keeps the Args slice passed to
// Exec, Fork and Exit: callers must not modify it afterwards.
package proc

import (
	"math"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Defaults for the zero fields of Config.
const (
	DefaultProcRoot     = "/proc"          // Config.ProcRoot
	DefaultMaxEntries   = 65536            // Config.MaxEntries
	DefaultExitGrace    = 30 * time.Second // Config.ExitGrace
	DefaultMaxArgsBytes = 16384            // Config.MaxArgsBytes: VIGIL_ARGS_MAX in bpf/events.h
)

// Config configures a Cache. The zero value is usable: every zero field gets
// its default.
type Config struct {
	// BootID is the kernel's boot id (/proc/sys/kernel/random/boot_id), part
	// of every EntityID.
	BootID string
	// ProcRoot is where procfs is mounted: DefaultProcRoot by default; tests
	// use fixture directories. It must show the host's PID namespace, the
	// one sensors report PIDs in.
	ProcRoot string
	// CgroupRoot is where the cgroup v2 hierarchy is mounted, used to turn
	// the cgroup path in /proc/<pid>/cgroup into a cgroup id (the inode of
	// its directory). By default: /sys/fs/cgroup/unified when that is a
	// cgroup2 mount (hybrid hierarchy), else /sys/fs/cgroup.
	CgroupRoot string
	// BootTime is the wall-clock time of boot. When set, processes learned
	// from procfs get Start = BootTime + StartBoot; otherwise their Start
	// stays zero. The cache never sets Start for processes reported by
	// sensors: their callers do.
	BootTime time.Time
	// MaxEntries bounds the number of entries (DefaultMaxEntries by
	// default). Sweep evicts Exited entries, oldest first, to stay within
	// it; between sweeps, inserts evict once the cache exceeds it by a
	// quarter. Alive entries are never evicted: pid_max bounds them.
	MaxEntries int
	// ExitGrace is how long an Exited entry stays for late lookups
	// (DefaultExitGrace by default). Negative values mean zero.
	ExitGrace time.Duration
	// MaxArgsBytes bounds the bytes of a procfs command line kept as Args
	// (DefaultMaxArgsBytes by default, as for sensors); longer command
	// lines are cut and marked ArgsTruncated.
	MaxArgsBytes int
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Cache is the process cache. Create one with New.
type Cache struct {
	cfg      Config
	bootHash uint64
	// hardMax is where inserts start evicting (MaxEntries + a quarter).
	hardMax int

	mu      sync.Mutex
	entries map[Key]*entry
	pids    map[uint32]Key // PID -> key of its newest incarnation
	nAlive  int
	nExited int
	stats   Stats
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	cfg.ProcRoot = filepath.Clean(cfg.ProcRoot)
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = defaultCgroupRoot()
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.ExitGrace == 0 {
		cfg.ExitGrace = DefaultExitGrace
	} else if cfg.ExitGrace < 0 {
		cfg.ExitGrace = 0
	}
	if cfg.MaxArgsBytes <= 0 {
		cfg.MaxArgsBytes = DefaultMaxArgsBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{
		cfg:      cfg,
		bootHash: bootHash(cfg.BootID),
		hardMax:  cfg.MaxEntries + max(cfg.MaxEntries/4, 1),
		entries:  make(map[Key]*entry),
		pids:     make(map[uint32]Key),
	}
}

const cgroup2SuperMagic = 0x63677270

func defaultCgroupRoot() string {
	const unified = "/sys/fs/cgroup/unified"
	var st syscall.Statfs_t
	if err := syscall.Statfs(unified, &st); err == nil && int64(st.Type) == cgroup2SuperMagic {
		return unified
	}
	return "/sys/fs/cgroup"
}

// entry is what the cache keeps of one process: event.Process without the
// per-event fields (TID), plus its life cycle.
type entry struct {
	key             Key
	startBoot       uint64
	parentStartBoot uint64
	cgroupID        uint64
	start           time.Time
	exitedAt        time.Time

	entityID   string
	name       string
	executable string
	script     string
	filename   string
	workingDir string
	args       []string // never modified in place: replaced whole

	argsCount            int32
	ppid                 uint32
	uid, gid, euid, egid uint32
	auid, sessionID      uint32
	execs                uint32
	// refs counts the cached entries (alive or exited) linked to this one as
	// their parent. An Exited entry is reaped only once it drops to zero.
	refs       int32
	exitCode   int32
	exitSignal uint8
	state      State
	flags      entryFlags
}

type entryFlags uint8

const (
	flagArgsTruncated entryFlags = 1 << iota
	flagPathTruncated
	flagFromProcfs
	flagLinked   // counted in its parent's refs
	flagExitSeen // an exit was reported, not inferred
	flagCoreDumped
)

func (e *entry) setExit(st event.ExitStatus) {
	e.exitCode, e.exitSignal = int32(st.Code), uint8(st.Signal)
	e.flags |= flagExitSeen
	if st.CoreDumped {
		e.flags |= flagCoreDumped
	}
}

func (e *entry) exitStatus() event.ExitStatus {
	return event.ExitStatus{Code: int(e.exitCode), Signal: int(e.exitSignal), CoreDumped: e.flags&flagCoreDumped != 0}
}

func (e *entry) parentKey() Key { return KeyOf(e.ppid, e.parentStartBoot) }

func clip(s []string) []string { return s[:len(s):len(s)] }

func (c *Cache) newEntry(p *event.Process, st State) *entry {
	k := KeyOf(p.PID, p.StartBoot)
	e := &entry{
		key:             k,
		ppid:            p.PPID,
		startBoot:       p.StartBoot,
		parentStartBoot: p.ParentStartBoot,
		start:           p.Start,
		entityID:        entityID(c.bootHash, k),
		state:           st,
	}
	e.setImage(p)
	if p.FromProcfs {
		e.flags |= flagFromProcfs
	}
	return e
}

// setImage replaces what an exec changes: the program, its arguments, the
// credentials and the cgroup.
func (e *entry) setImage(p *event.Process) {
	if p.Name != "" {
		e.name = p.Name
	}
	e.executable = p.Executable
	e.script = p.Script
	e.filename = p.Filename
	e.workingDir = p.WorkingDir
	e.args = clip(p.Args)
	e.argsCount = int32(min(p.ArgsCount, math.MaxInt32))
	e.flags &^= flagArgsTruncated | flagPathTruncated
	if p.ArgsTruncated {
		e.flags |= flagArgsTruncated
	}
	if p.PathTruncated {
		e.flags |= flagPathTruncated
	}
	e.uid, e.gid, e.euid, e.egid = p.UID, p.GID, p.EUID, p.EGID
	e.auid, e.sessionID = p.AUID, p.SessionID
	e.cgroupID = p.CgroupID
}

// fillImage fills what p lacks of the program it runs from e: the name; the
// executable with its script, filename and path truncation; the arguments;
// the working directory. Each group is filled only when p has none of it.
func fillImage(p *event.Process, e *entry) {
	if p.Name == "" {
		p.Name = e.name
	}
	if p.Executable == "" {
		p.Executable = e.executable
		p.Script = e.script
		p.Filename = e.filename
		p.PathTruncated = p.PathTruncated || e.flags&flagPathTruncated != 0
	}
	if len(p.Args) == 0 && p.ArgsCount == 0 {
		p.Args = clip(e.args)
		p.ArgsCount = int(e.argsCount)
		p.ArgsTruncated = e.flags&flagArgsTruncated != 0
	}
	if p.WorkingDir == "" {
		p.WorkingDir = e.workingDir
	}
}

// process returns a copy of e as an event.Process. TID is the PID: the
// thread-group leader.
func (e *entry) process() event.Process {
	return event.Process{
		PID:             e.key.PID,
		TID:             e.key.PID,
		PPID:            e.ppid,
		Start:           e.start,
		StartBoot:       e.startBoot,
		ParentStartBoot: e.parentStartBoot,
		EntityID:        e.entityID,
		Name:            e.name,
		Executable:      e.executable,
		Script:          e.script,
		Filename:        e.filename,
		Args:            clip(e.args),
		ArgsCount:       int(e.argsCount),
		ArgsTruncated:   e.flags&flagArgsTruncated != 0,
		WorkingDir:      e.workingDir,
		PathTruncated:   e.flags&flagPathTruncated != 0,
		UID:             e.uid,
		GID:             e.gid,
		EUID:            e.euid,
		EGID:            e.egid,
		AUID:            e.auid,
		SessionID:       e.sessionID,
		CgroupID:        e.cgroupID,
		FromProcfs:      e.flags&flagFromProcfs != 0,
	}
}

func (e *entry) ancestor() event.Ancestor {
	return event.Ancestor{
		PID:        e.key.PID,
		EntityID:   e.entityID,
		Name:       e.name,
		Executable: e.executable,
		Args:       clip(e.args),
	}
}

// insertLocked adds e, which must be new, and links it to its parent.
func (c *Cache) insertLocked(e *entry) {
	c.entries[e.key] = e
	switch e.state {
	case Alive:
		c.nAlive++
	case Exited:
		c.nExited++
	}
	c.indexPIDLocked(e)
	c.linkLocked(e)
	if len(c.entries) > c.hardMax && c.nExited >= max(c.cfg.MaxEntries/4, 1) {
		c.stats.Evicted += uint64(c.evictLocked(c.cfg.MaxEntries))
	}
}

// indexPIDLocked makes e the current process of its PID unless a newer one is
// known. A PID is reused only after its previous process is gone, so an
// older incarnation still Alive lost its exit.
func (c *Cache) indexPIDLocked(e *entry) {
	pid := e.key.PID
	cur, ok := c.pids[pid]
	switch {
	case !ok:
		c.pids[pid] = e.key
	case cur == e.key:
	case cur.StartTicks < e.key.StartTicks:
		c.pids[pid] = e.key
		if old := c.entries[cur]; old != nil && old.state == Alive {
			c.markLostLocked(old)
		}
	default: // e is an older incarnation, reported late: it is gone
		if e.state == Alive {
			c.markLostLocked(e)
		}
	}
}

// linkLocked counts e in its parent's refs, if the parent is cached.
func (c *Cache) linkLocked(e *entry) {
	if e.flags&flagLinked != 0 || e.ppid == 0 {
		return
	}
	pk := e.parentKey()
	if pk == e.key {
		return
	}
	if p := c.entries[pk]; p != nil {
		p.refs++
		e.flags |= flagLinked
	}
}

// removeLocked deletes e from the cache and from its parent's refs.
func (c *Cache) removeLocked(e *entry) {
	delete(c.entries, e.key)
	if cur, ok := c.pids[e.key.PID]; ok && cur == e.key {
		delete(c.pids, e.key.PID)
	}
	switch e.state {
	case Alive:
		c.nAlive--
	case Exited:
		c.nExited--
	}
	if e.flags&flagLinked != 0 {
		if p := c.entries[e.parentKey()]; p != nil && p.refs > 0 {
			p.refs--
		}
		e.flags &^= flagLinked
	}
	e.state = Reaped
}

// markExitedLocked moves an Alive entry to Exited.
func (c *Cache) markExitedLocked(e *entry) {
	if e.state != Alive {
		return
	}
	e.state = Exited
	e.exitedAt = c.cfg.Now()
	c.nAlive--
	c.nExited++
}

// markLostLocked marks an Alive entry Exited without an exit event.
func (c *Cache) markLostLocked(e *entry) {
	c.markExitedLocked(e)
	c.stats.LostExits++
}

// Fork records a new process p. While a child has not exec'd it runs its
// parent's program, so the image fields the sensor left empty (Executable
// with Script, Filename and PathTruncated; Args; WorkingDir; Name) are copied
// from the parent's entry (KeyOf(p.PPID, p.ParentStartBoot)) into p and into
// the new entry. Fork sets p.EntityID. If p is already cached (learned from
// /proc at startup, or reported twice) the entry is kept as it is and p is
// filled from it instead.
func (c *Cache) Fork(p *event.Process) {
	k := KeyOf(p.PID, p.StartBoot)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Forks++
	if e := c.entries[k]; e != nil {
		fillImage(p, e)
		p.EntityID = e.entityID
		return
	}
	if par := c.entries[KeyOf(p.PPID, p.ParentStartBoot)]; par != nil {
		fillImage(p, par)
	}
	e := c.newEntry(p, Alive)
	c.insertLocked(e)
	p.EntityID = e.entityID
}

// Exec records that p exec'd a new program. The entry keeps its identity
// (PID, start time, parent, entity id) and takes p's image: Executable,
// Script, Filename, Args, ArgsCount, ArgsTruncated, PathTruncated,
// WorkingDir, Name (unless empty), credentials and cgroup. Its exec count
// grows by one and it is no longer FromProcfs. A process not cached yet (its
// fork was missed) is inserted Alive. Exec sets p.EntityID.
func (c *Cache) Exec(p *event.Process) {
	k := KeyOf(p.PID, p.StartBoot)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Execs++
	e := c.entries[k]
	if e == nil {
		e = c.newEntry(p, Alive)
		e.execs = 1
		e.flags &^= flagFromProcfs
		c.insertLocked(e)
		p.EntityID = e.entityID
		return
	}
	e.setImage(p)
	e.execs++
	e.flags &^= flagFromProcfs
	if e.start.IsZero() {
		e.start = p.Start
	}
	if e.ppid == 0 && p.PPID != 0 {
		e.ppid, e.parentStartBoot = p.PPID, p.ParentStartBoot
		c.linkLocked(e)
	}
	p.EntityID = e.entityID
}

// Exit records that p exited with status st, and reports whether this is the
// first exit reported for it. The kernel may report an exit twice when the
// last threads of a process exit together: callers drop the event when first
// is false. An entry that Sweep had already found dead (a lost exit) takes
// the late exit event as its first. A process not cached is inserted as
// Exited, its image copied from its parent as for Fork.
//
// Exit fills p's empty image fields from the entry (the same fields as Fork),
// so that an exit event carries the executable and arguments, and sets
// p.EntityID. p's identity and credentials are left as the sensor reported
// them (an orphan's PPID is its new parent's).
func (c *Cache) Exit(p *event.Process, st event.ExitStatus) (first bool) {
	k := KeyOf(p.PID, p.StartBoot)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	switch {
	case e == nil:
		if par := c.entries[KeyOf(p.PPID, p.ParentStartBoot)]; par != nil {
			fillImage(p, par)
		}
		e = c.newEntry(p, Exited)
		e.exitedAt = c.cfg.Now()
		e.setExit(st)
		c.insertLocked(e)
		first = true
	case e.flags&flagExitSeen != 0:
		c.stats.DuplicateExits++
	default:
		c.markExitedLocked(e)
		e.setExit(st)
		first = true
	}
	if first {
		c.stats.Exits++
	}
	fillImage(p, e)
	p.EntityID = e.entityID
	return first
}

// Get returns the process cached under k and its state (Alive or Exited).
// ok is false when k is unknown or was reaped.
func (c *Cache) Get(k Key) (p event.Process, st State, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return event.Process{}, 0, false
	}
	return e.process(), e.state, true
}

// Entry is everything the cache knows of one process.
type Entry struct {
	Process event.Process
	State   State
	// Execs counts the execs reported for the process.
	Execs int
	// ExitTime is when the entry became Exited, by the cache's clock.
	ExitTime time.Time
	// Exit is the reported exit status; nil until an exit is reported (an
	// exit inferred by Sweep has none).
	Exit *event.ExitStatus
	// Children counts the cached processes (alive or exited) whose parent
	// this is. An Exited entry stays while it is not zero.
	Children int
}

// Lookup is Get with the life-cycle details.
func (c *Cache) Lookup(k Key) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return Entry{}, false
	}
	en := Entry{
		Process:  e.process(),
		State:    e.state,
		Execs:    int(e.execs),
		ExitTime: e.exitedAt,
		Children: int(e.refs),
	}
	if e.flags&flagExitSeen != 0 {
		st := e.exitStatus()
		en.Exit = &st
	}
	return en, true
}

// Current returns the key of the newest process known with the given PID,
// Alive or not; false once that process is reaped.
func (c *Cache) Current(pid uint32) (Key, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.pids[pid]
	return k, ok
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Stats describes the cache: its entries now, and counters since New.
type Stats struct {
	Alive  int // entries Alive now
	Exited int // entries Exited now

	Forks          uint64 // Fork calls
	Execs          uint64 // Exec calls
	Exits          uint64 // Exit calls that were first
	DuplicateExits uint64 // Exit calls that were not first
	// LostExits counts Alive entries found to be gone without an exit
	// event: by Sweep (their PID is gone from procfs, or runs a process
	// started at another time), or because a newer process took their PID.
	LostExits    uint64
	Reaped       uint64 // Exited entries removed by Sweep after ExitGrace
	Evicted      uint64 // Exited entries removed early to respect MaxEntries
	Scanned      uint64 // entries learned by ScanProcfs
	LazyFills    uint64 // entries learned from procfs by Enrich
	ParentMisses uint64 // Enrich calls that found no parent for a PPID other than 0
}

// Entries returns the number of entries, Alive and Exited.
func (s Stats) Entries() int { return s.Alive + s.Exited }

// Stats returns the cache's statistics.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Alive, s.Exited = c.nAlive, c.nExited
	return s
}

// Programs calls fn with the pid, executable and script of every Alive
// process, for callers that pick processes by program (the anomaly sensor
// selects those that started before the agent this way).
func (c *Cache) Programs(fn func(pid uint32, executable, script string)) {
	type prog struct {
		pid            uint32
		executable, sc string
	}
	c.mu.Lock()
	progs := make([]prog, 0, c.nAlive)
	for k, e := range c.entries {
		if e.state == Alive {
			progs = append(progs, prog{k.PID, e.executable, e.script})
		}
	}
	c.mu.Unlock()
	for _, p := range progs {
		fn(p.pid, p.executable, p.sc)
	}
}
