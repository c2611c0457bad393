package proc

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// errGone reports that a process disappeared while it was read.
var errGone = errors.New("process is gone")

// statInfo is what the cache uses of /proc/<pid>/stat.
type statInfo struct {
	comm  string
	ppid  uint32
	ticks uint64 // starttime, field 22
}

// parseStat parses /proc/<pid>/stat. The command name (field 2) is written
// between parentheses and may itself contain spaces and parentheses, so it
// runs to the last ')'.
func parseStat(b []byte) (statInfo, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return statInfo{}, errors.New("stat: no command name")
	}
	st := statInfo{comm: string(b[open+1 : end])}
	// Fields after the name: state (3), ppid (4), ... starttime (22).
	rest := b[end+1:]
	var ppid, start []byte
	for n := 3; n <= 22; n++ {
		rest = bytes.TrimLeft(rest, " ")
		i := bytes.IndexByte(rest, ' ')
		var f []byte
		if i < 0 {
			f, rest = bytes.TrimRight(rest, "\n"), nil
		} else {
			f, rest = rest[:i], rest[i+1:]
		}
		switch n {
		case 4:
			ppid = f
		case 22:
			start = f
		}
	}
	v, err := strconv.ParseUint(string(ppid), 10, 32)
	if err != nil {
		return statInfo{}, errors.New("stat: bad ppid")
	}
	st.ppid = uint32(v)
	if st.ticks, err = strconv.ParseUint(string(start), 10, 64); err != nil {
		return statInfo{}, errors.New("stat: bad starttime")
	}
	return st, nil
}

func (c *Cache) pidDir(pid uint32) string {
	return c.cfg.ProcRoot + "/" + strconv.FormatUint(uint64(pid), 10)
}

// gone reports whether err says that a process does not exist (any more).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

func (c *Cache) readStat(pid uint32) (statInfo, error) {
	b, err := os.ReadFile(c.pidDir(pid) + "/stat")
	if err != nil {
		if gone(err) {
			return statInfo{}, errGone
		}
		return statInfo{}, err
	}
	return parseStat(b)
}

// readProcess reads one process from procfs, with its parent's start time
// from the parent's stat.
func (c *Cache) readProcess(pid uint32) (event.Process, error) {
	st, err := c.readStat(pid)
	if err != nil {
		return event.Process{}, err
	}
	var parentTicks uint64
	if st.ppid != 0 {
		if pst, err := c.readStat(st.ppid); err == nil {
			parentTicks = pst.ticks
		}
	}
	return c.readDetails(pid, st, parentTicks)
}

// readDetails reads the rest of a process whose stat is st. Files that
// cannot be read leave their fields empty, except credentials, which become
// event.NoUID rather than a misleading 0 (root). It fails with errGone when
// the process exited, or its PID was reused, while it was read.
func (c *Cache) readDetails(pid uint32, st statInfo, parentTicks uint64) (event.Process, error) {
	dir := c.pidDir(pid)
	p := event.Process{
		PID:             pid,
		TID:             pid,
		PPID:            st.ppid,
		StartBoot:       st.ticks * NsPerTick,
		ParentStartBoot: parentTicks * NsPerTick,
		Name:            st.comm,
		FromProcfs:      true,
	}
	if !c.cfg.BootTime.IsZero() {
		p.Start = c.cfg.BootTime.Add(time.Duration(p.StartBoot))
	}
	p.UID, p.EUID, p.GID, p.EGID = event.NoUID, event.NoUID, event.NoUID, event.NoUID
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		parseStatus(b, &p)
	}
	p.AUID = readID(dir + "/loginuid")
	p.SessionID = readID(dir + "/sessionid")
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
		p.Args, p.ArgsCount, p.ArgsTruncated = parseCmdline(b, c.cfg.MaxArgsBytes)
	}
	// Links are kept as the kernel writes them: a program or directory that
	// was deleted ends in " (deleted)", which is worth seeing.
	p.Executable, _ = os.Readlink(dir + "/exe")
	p.WorkingDir, _ = os.Readlink(dir + "/cwd")
	if b, err := os.ReadFile(dir + "/cgroup"); err == nil {
		p.CgroupID = c.cgroupID(b)
	}
	// Make sure all of that described one process.
	again, err := c.readStat(pid)
	if err != nil || again.ticks != st.ticks {
		return event.Process{}, errGone
	}
	return p, nil
}

// parseStatus takes the real and effective ids from the Uid: and Gid: lines
// of /proc/<pid>/status.
func parseStatus(b []byte, p *event.Process) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		var real, eff *uint32
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			real, eff = &p.UID, &p.EUID
		case bytes.HasPrefix(line, []byte("Gid:")):
			real, eff = &p.GID, &p.EGID
		default:
			continue
		}
		f := strings.Fields(string(line[4:]))
		if len(f) >= 2 {
			if v, err := strconv.ParseUint(f[0], 10, 32); err == nil {
				*real = uint32(v)
			}
			if v, err := strconv.ParseUint(f[1], 10, 32); err == nil {
				*eff = uint32(v)
			}
		}
	}
}

// readID reads a file holding one decimal id (loginuid, sessionid);
// event.NoUID when it cannot.
func readID(path string) uint32 {
	b, err := os.ReadFile(path)
	if err != nil {
		return event.NoUID
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
	if err != nil {
		return event.NoUID
	}
	return uint32(v)
}

// parseCmdline splits a NUL-separated command line, keeping at most maxBytes
// of it. count is the number of arguments in the whole of b.
func parseCmdline(b []byte, maxBytes int) (args []string, count int, truncated bool) {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, 0, false
	}
	count = bytes.Count(b, []byte{0}) + 1
	if len(b) > maxBytes {
		b = bytes.TrimSuffix(b[:maxBytes], []byte{0})
		truncated = true
	}
	// One string for the whole line; the arguments share it.
	return strings.Split(string(b), "\x00"), count, truncated
}

// cgroupID returns the id of the cgroup v2 named in /proc/<pid>/cgroup: the
// inode of its directory under CgroupRoot. 0 when unknown.
func (c *Cache) cgroupID(b []byte) uint64 {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		path, ok := bytes.CutPrefix(line, []byte("0::"))
		if !ok {
			continue
		}
		fi, err := os.Stat(filepath.Join(c.cfg.CgroupRoot, string(path)))
		if err != nil {
			return 0
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return st.Ino
		}
		return 0
	}
	return 0
}

// ScanProcfs caches every process that runs now, read from ProcRoot, and
// returns how many it added. Processes already cached are left alone. For
// each process it reads stat (PPID, start time, name), status (real and
// effective uid and gid), loginuid, sessionid, cmdline, cgroup and the exe
// and cwd links; the parent's start time comes from the parent's stat.
// Entries are Alive and FromProcfs. Kernel threads are included (no
// executable, no arguments).
//
// Processes that exit during the scan are skipped silently; a file that
// cannot be read leaves its fields empty (credentials: event.NoUID). The
// error is about ProcRoot itself. The cache is locked only to insert the
// results, not while procfs is read.
func (c *Cache) ScanProcfs() (int, error) {
	f, err := os.Open(c.cfg.ProcRoot)
	if err != nil {
		return 0, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return 0, err
	}

	type found struct {
		pid uint32
		st  statInfo
	}
	stats := make(map[uint32]statInfo, len(names))
	list := make([]found, 0, len(names))
	for _, name := range names {
		v, err := strconv.ParseUint(name, 10, 32)
		if err != nil || v == 0 {
			continue
		}
		pid := uint32(v)
		st, err := c.readStat(pid)
		if err != nil {
			continue
		}
		stats[pid] = st
		list = append(list, found{pid, st})
	}

	// Skip what is cached already before reading the rest.
	c.mu.Lock()
	n := 0
	for _, p := range list {
		if c.entries[Key{p.pid, p.st.ticks}] == nil {
			list[n] = p
			n++
		}
	}
	list = list[:n]
	c.mu.Unlock()

	procs := make([]event.Process, 0, len(list))
	for _, p := range list {
		var parentTicks uint64
		if p.st.ppid != 0 {
			if pst, ok := stats[p.st.ppid]; ok {
				parentTicks = pst.ticks
			} else if pst, err := c.readStat(p.st.ppid); err == nil {
				parentTicks = pst.ticks
			}
		}
		proc, err := c.readDetails(p.pid, p.st, parentTicks)
		if err != nil {
			continue
		}
		procs = append(procs, proc)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	added := 0
	for i := range procs {
		if _, ok := c.insertProcfsLocked(&procs[i]); ok {
			added++
		}
	}
	// Parents may have come after their children: link what is unlinked.
	for _, e := range c.entries {
		c.linkLocked(e)
	}
	c.stats.Scanned += uint64(added)
	return added, nil
}
