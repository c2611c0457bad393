package proc

import "github.com/vigilsec/vigil/internal/event"

// ancestorsOnStack is how many ancestors Enrich collects before it needs the
// heap for more than the result.
const ancestorsOnStack = 16

// Enrich fills e.Parent with a copy of the parent of e.Process and
// e.Ancestors with the grandparent and those above it, nearest first, at most
// maxDepth of them (none when maxDepth <= 0). It also sets
// e.Process.EntityID when empty. Fields it finds nothing for are left as
// they were.
//
// The parent is the entry KeyOf(e.Process.PPID, e.Process.ParentStartBoot).
// When it is not cached Enrich reads it from procfs (a lazy fill: the fork
// was missed, or the process predates a scan) and caches it. When the
// event does not give the parent's start time (ParentStartBoot is 0), the
// current Alive entry for PPID is taken instead if it started no later than
// the process. Each ancestor is found the same way from the entry below it.
// The walk stops at a PPID of 0 (above PID 1 and kernel threads), after
// PID 1, on a miss, or where it would visit an entry twice.
func (c *Cache) Enrich(e *event.Event, maxDepth int) {
	p := &e.Process
	self := KeyOf(p.PID, p.StartBoot)
	if p.EntityID == "" {
		p.EntityID = entityID(c.bootHash, self)
	}
	if p.PPID == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	par := c.findParentLocked(self, p.StartBoot != 0, p.PPID, p.ParentStartBoot)
	if par == nil {
		c.stats.ParentMisses++
		return
	}
	pp := par.process()
	e.Parent = &pp
	if maxDepth <= 0 {
		return
	}

	var buf [ancestorsOnStack]event.Ancestor
	anc := buf[:0]
	var seenBuf [ancestorsOnStack + 2]Key
	seen := append(seenBuf[:0], self, par.key)
	cur := par
	for len(anc) < maxDepth && cur.ppid != 0 && cur.key.PID != 1 {
		// findParentLocked may unlock: copy what it needs from cur first.
		next := c.findParentLocked(cur.key, cur.startBoot != 0, cur.ppid, cur.parentStartBoot)
		if next == nil || contains(seen, next.key) {
			break
		}
		anc = append(anc, next.ancestor())
		seen = append(seen, next.key)
		cur = next
	}
	if len(anc) > 0 {
		e.Ancestors = append([]event.Ancestor(nil), anc...)
	}
}

func contains(keys []Key, k Key) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// findParentLocked returns the entry of the parent (ppid, parentStartBoot) of
// the process child, or nil. childKnown says whether child.StartTicks is
// known. It is called with c.mu held and may release it while it reads
// procfs: entries held by the caller may be stale when it returns.
func (c *Cache) findParentLocked(child Key, childKnown bool, ppid uint32, parentStartBoot uint64) *entry {
	want := KeyOf(ppid, parentStartBoot)
	if e := c.entries[want]; e != nil {
		return e
	}
	// Without the parent's start time, the PID's current process will do
	// if it could be the parent: a process that took the PID after the
	// parent died started after the child.
	plausible := func(k Key) bool {
		if parentStartBoot != 0 {
			return k == want
		}
		return !childKnown || k.StartTicks <= child.StartTicks
	}
	if parentStartBoot == 0 {
		if k, ok := c.pids[ppid]; ok && plausible(k) {
			if e := c.entries[k]; e != nil && e.state == Alive {
				return e
			}
		}
	}
	// Lazy fill from procfs. With a known start time the exact key is the
	// only candidate: the current entry for the PID, if any, is another
	// process.
	c.mu.Unlock()
	rec, err := c.readProcess(ppid)
	c.mu.Lock()
	if err != nil || !plausible(KeyOf(ppid, rec.StartBoot)) {
		return nil
	}
	e, added := c.insertProcfsLocked(&rec)
	if added {
		c.stats.LazyFills++
	}
	if ch := c.entries[child]; ch != nil {
		c.linkLocked(ch)
	}
	return e
}

// insertProcfsLocked caches a process read from procfs unless its key is
// cached already, and returns the entry for its key.
func (c *Cache) insertProcfsLocked(p *event.Process) (e *entry, added bool) {
	k := KeyOf(p.PID, p.StartBoot)
	if e := c.entries[k]; e != nil {
		return e, false
	}
	e = c.newEntry(p, Alive)
	c.insertLocked(e)
	return e, true
}

// Complete fills what a sensor cannot know about the process that acted —
// the program it runs, its arguments and working directory, and its entity
// id — from its cache entry. A process the cache lacks is read from procfs
// (a lazy fill), provided it is the same process (same start time).
func (c *Cache) Complete(p *event.Process) {
	k := KeyOf(p.PID, p.StartBoot)
	if p.EntityID == "" {
		p.EntityID = entityID(c.bootHash, k)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil && p.StartBoot != 0 {
		e = c.findParentLocked(Key{}, false, p.PID, p.StartBoot)
	}
	if e != nil {
		fillImage(p, e)
	}
}
