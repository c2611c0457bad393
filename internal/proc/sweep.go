package proc

import (
	"cmp"
	"os"
	"slices"
)

// SweepStats is what one Sweep did.
type SweepStats struct {
	Lost    int // Alive entries found gone (lost exits), now Exited
	Reaped  int // Exited entries removed after ExitGrace
	Evicted int // Exited entries removed early to respect MaxEntries
	Alive   int // entries Alive afterwards
	Exited  int // entries Exited afterwards
}

// Sweep tidies the cache; call it periodically (every few seconds).
//
// First it reconciles: an Alive entry whose PID no longer exists in ProcRoot,
// or exists with another start time, lost its exit event and becomes Exited.
// Then it reaps: Exited entries older than ExitGrace with no cached children
// are removed, and a parent whose last child goes this way is reaped with it
// when it qualifies. Last, while the cache holds more than MaxEntries, it
// evicts Exited entries: childless ones before parents, oldest exits first.
// Alive entries are never evicted.
//
// Procfs is read without holding the lock. If ProcRoot cannot be read at all
// there is no reconciliation.
func (c *Cache) Sweep() SweepStats {
	var ss SweepStats
	lost := c.findLost()

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range lost {
		if e := c.entries[k]; e != nil && e.state == Alive {
			c.markLostLocked(e)
			ss.Lost++
		}
	}

	now := c.cfg.Now()
	reapable := func(e *entry) bool {
		return e.state == Exited && e.refs == 0 && now.Sub(e.exitedAt) >= c.cfg.ExitGrace
	}
	for _, e := range c.entries {
		for e != nil && reapable(e) {
			pk, linked := e.parentKey(), e.flags&flagLinked != 0
			c.removeLocked(e)
			ss.Reaped++
			e = nil
			if linked {
				e = c.entries[pk]
			}
		}
	}
	c.stats.Reaped += uint64(ss.Reaped)

	if len(c.entries) > c.cfg.MaxEntries {
		ss.Evicted = c.evictLocked(c.cfg.MaxEntries)
		c.stats.Evicted += uint64(ss.Evicted)
	}
	ss.Alive, ss.Exited = c.nAlive, c.nExited
	return ss
}

// findLost returns the keys of Alive entries whose process is gone.
func (c *Cache) findLost() []Key {
	if fi, err := os.Stat(c.cfg.ProcRoot); err != nil || !fi.IsDir() {
		return nil
	}
	c.mu.Lock()
	alive := make([]Key, 0, c.nAlive)
	for k, e := range c.entries {
		if e.state == Alive {
			alive = append(alive, k)
		}
	}
	c.mu.Unlock()

	var lost []Key
	for _, k := range alive {
		st, err := c.readStat(k.PID)
		switch {
		case err == errGone:
		case err != nil:
			continue // cannot tell
		case st.ticks == k.StartTicks:
			continue
		}
		lost = append(lost, k)
	}
	return lost
}

// evictLocked removes Exited entries until at most target remain, or none is
// Exited: childless entries first, then by exit time. It returns how many it
// removed.
func (c *Cache) evictLocked(target int) int {
	if len(c.entries) <= target || c.nExited == 0 {
		return 0
	}
	cands := make([]*entry, 0, c.nExited)
	for _, e := range c.entries {
		if e.state == Exited {
			cands = append(cands, e)
		}
	}
	slices.SortFunc(cands, func(a, b *entry) int {
		if ap, bp := a.refs > 0, b.refs > 0; ap != bp {
			if ap {
				return 1
			}
			return -1
		}
		if r := a.exitedAt.Compare(b.exitedAt); r != 0 {
			return r
		}
		if r := cmp.Compare(a.key.PID, b.key.PID); r != 0 {
			return r
		}
		return cmp.Compare(a.key.StartTicks, b.key.StartTicks)
	})
	n := 0
	orphans := false
	for _, e := range cands {
		if len(c.entries) <= target {
			break
		}
		orphans = orphans || e.refs > 0
		c.removeLocked(e)
		n++
	}
	if orphans {
		// Children of evicted parents: no longer counted anywhere.
		for _, e := range c.entries {
			if e.flags&flagLinked != 0 && c.entries[e.parentKey()] == nil {
				e.flags &^= flagLinked
			}
		}
	}
	return n
}
