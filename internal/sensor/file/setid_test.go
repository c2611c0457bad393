package file

import (
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// TestSetidChmodIsAlwaysReported: a chmod that sets the setuid or setgid bit
// is reported, as watched, in a directory no watch list names and below an
// ignored one; the same chmods without those bits are not.
func TestSetidChmodIsAlwaysReported(t *testing.T) { forEachLoadMode(t, testSetidChmod) }

func testSetidChmod(t *testing.T, cfg Config) {
	h := newHarnessConfig(t, cfg, sensor.KindFilter{FileWrites: sensor.InterestWatched, FileReads: sensor.InterestNone})
	watched := h.dir + "/watched" // only for settle
	d := t.TempDir()              // not watched
	mkdir(t, watched)
	mkdir(t, h.dir+"/ign")
	h.watch(t, sensor.WatchWrite, watched)
	h.watch(t, sensor.Ignore, h.dir+"/ign")
	mkfile(t, d+"/shell")
	mkfile(t, h.dir+"/ign/shell")
	ino, dev, _ := stat(t, d+"/shell")

	var quiet []uint32
	for _, run := range [][]string{
		{"chmod", "shell", "755"},
		{"fchmodat", "@" + d + "/shell", "1777"}, // sticky is not setid
		{"fchmod", "shell", "644"},
	} {
		pid, _ := h.trigger(t, d, run...)
		quiet = append(quiet, pid)
	}

	pid, ret := h.trigger(t, d, "chmod", "shell", "4755")
	checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: d + "/shell",
		RawPath: "shell", Mode: 0o4755, UID: event.NoUID, GID: event.NoUID, Watched: true})
	pid, ret = h.trigger(t, d, "fchmodat", "@"+d+"/shell", "2755")
	checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: d + "/shell",
		RawPath: "shell", Mode: 0o2755, UID: event.NoUID, GID: event.NoUID, Watched: true})
	pid, ret = h.trigger(t, d, "fchmod", "shell", "6755")
	// fchmod: the kernel has the file open, so its owner (root) is known.
	checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: d + "/shell",
		PathResolved: true, Mode: 0o6755, Inode: ino, Device: dev, Watched: true})
	pid, ret = h.trigger(t, h.dir+"/ign", "chmod", "shell", "4755")
	checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: h.dir + "/ign/shell",
		RawPath: "shell", Mode: 0o4755, UID: event.NoUID, GID: event.NoUID, Watched: true})

	h.settle(t, watched)
	for _, pid := range quiet {
		if got := h.eventsOf(pid); len(got) != 0 {
			t.Errorf("chmod without setuid or setgid in an unwatched directory reported: %+v", *got[0].File)
		}
	}

	// The file kind's interest still rules: none means none.
	h.setKind(t, sensor.KindFilter{Enabled: true, CgroupScope: sensor.ScopeIncluded, FileWrites: sensor.InterestNone})
	pid, _ = h.trigger(t, d, "chmod", "shell", "4755")
	h.setKind(t, sensor.KindFilter{Enabled: true, CgroupScope: sensor.ScopeIncluded, FileWrites: sensor.InterestWatched})
	h.settle(t, watched)
	if got := h.eventsOf(pid); len(got) != 0 {
		t.Errorf("setuid chmod reported with file writes off: %+v", *got[0].File)
	}
}
