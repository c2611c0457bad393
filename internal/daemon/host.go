package daemon

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
)

// hostInfo describes this machine once, for every event.
func hostInfo(procfs string) event.Host {
	h := event.Host{}
	h.Name, _ = os.Hostname()
	h.ID = readTrim("/etc/machine-id")
	h.BootID = readTrim(filepath.Join(procfs, "sys/kernel/random/boot_id"))
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h.Kernel = unix.ByteSliceToString(uts.Release[:])
		h.Arch = unix.ByteSliceToString(uts.Machine[:])
	}
	return h
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
