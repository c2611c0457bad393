package proc

import "github.com/vigilsec/vigil/internal/event"

// ReadProcfs reads one process from procfs as ScanProcfs would, without
// caching it: for callers that must describe a process the sensors have not
// reported yet (a fanotify permission event can arrive before the exec
// record of the process that caused it).
func (c *Cache) ReadProcfs(pid uint32) (event.Process, error) {
	return c.readProcess(pid)
}
