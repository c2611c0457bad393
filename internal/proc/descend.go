package proc

import "github.com/vigilsec/vigil/internal/event"

// Descendants returns the alive processes forked, directly or not, from the
// process k, as the cache saw them forked: a child the kernel reparented
// since (its parent died or was killed) is still found. Order: parents
// before their children. It walks the whole cache, so it is for responses,
// not for every event.
func (c *Cache) Descendants(k Key) []event.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	children := map[Key][]*entry{}
	for _, e := range c.entries {
		if pk := e.parentKey(); pk != e.key {
			children[pk] = append(children[pk], e)
		}
	}
	var out []event.Process
	seen := map[Key]bool{k: true}
	queue := []Key{k}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, e := range children[cur] {
			if seen[e.key] {
				continue
			}
			seen[e.key] = true
			queue = append(queue, e.key)
			if e.state == Alive {
				out = append(out, e.process())
			}
		}
	}
	return out
}
