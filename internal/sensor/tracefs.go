package sensor

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TracefsDir is where syscall tracepoints are found and, when no one has
// mounted tracefs, where Vigil mounts it.
const TracefsDir = "/sys/kernel/tracing"

const tracefsMagic = 0x74726163

// EnsureTracefs makes the tracepoints' directory available: tracepoint
// programs are attached by ids read from tracefs, and a freshly booted
// minimal system may not mount it. It mounts tracefs at TracefsDir when
// neither that nor the old debugfs location has it.
func EnsureTracefs() error {
	for _, dir := range []string{TracefsDir + "/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(TracefsDir, &st); err == nil && st.Type == tracefsMagic {
		return nil
	}
	if err := unix.Mount("tracefs", TracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return &Problem{What: "the kernel has no tracefs", Fix: "vigil needs a kernel with CONFIG_TRACING (every distribution kernel has it)", Err: err}
		}
		return &Problem{What: fmt.Sprintf("tracefs is not mounted and mounting it at %s failed", TracefsDir),
			Fix: "mount it: mount -t tracefs nodev " + TracefsDir, Err: err}
	}
	return nil
}
