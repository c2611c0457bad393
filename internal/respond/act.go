package respond

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's starttime on every
// Linux architecture Vigil runs on.
const clockTicks = 100

// KillProcess sends SIGKILL to pid, if it is still the process that
// started at startBoot (ns since boot): a pidfd pins the process, then its
// start time is checked, so a pid reused since the event is never killed.
func KillProcess(procRoot string, pid uint32, startBoot uint64) error {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pid %d has exited", pid)
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if startBoot != 0 {
		ticks, err := startTicks(procRoot, pid)
		if err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		if want := startBoot / (1e9 / clockTicks); ticks != want {
			return fmt.Errorf("pid %d is another process now (started at tick %d, the event's at %d): not killed", pid, ticks, want)
		}
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pid %d has exited", pid)
		}
		return fmt.Errorf("pidfd_send_signal %d: %w", pid, err)
	}
	return nil
}

// startTicks reads field 22 of /proc/<pid>/stat.
func startTicks(procRoot string, pid uint32) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(int(pid)), "stat"))
	if err != nil {
		return 0, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return 0, errors.New("stat: too few fields")
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
}

// CgroupPath finds the directory of cgroup id (its inode number) under the
// cgroup v2 root.
func CgroupPath(root string, id uint64) (string, error) {
	if id == 0 {
		return "", errors.New("no cgroup id")
	}
	found := ""
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Ino == id {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("cgroup %d not found under %s", id, root)
	}
	return found, nil
}

// FreezeCgroup freezes cgroup id through cgroup.freeze (cgroup v2) and
// returns its path.
func FreezeCgroup(root string, id uint64) (string, error) {
	p, err := CgroupPath(root, id)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(p, "cgroup.freeze"), []byte("1"), 0); err != nil {
		return p, fmt.Errorf("freeze %s: %w", p, err)
	}
	return p, nil
}

// cgroupSafe says why a cgroup must not be frozen, or "": the root (the
// whole host), and Vigil's own cgroup and those above it.
func (r *Responder) cgroupSafe(id uint64) string {
	if id == 0 {
		return "the process's cgroup is not known"
	}
	root := r.cfg.CgroupRoot
	if root == "" {
		return "no cgroup v2 hierarchy configured (paths.cgroupfs)"
	}
	var st syscall.Stat_t
	if syscall.Stat(root, &st) == nil && st.Ino == id {
		return "the root cgroup (the whole host) is never frozen"
	}
	own := ownCgroup(r.cfg.ProcRoot, root)
	for p := own; strings.HasPrefix(p, root); p = filepath.Dir(p) {
		if syscall.Stat(p, &st) == nil && st.Ino == id {
			return "Vigil's own cgroup, or one above it, is never frozen"
		}
		if p == root || p == filepath.Dir(p) {
			break
		}
	}
	return ""
}

// ownCgroup is the directory of the agent's cgroup v2.
func ownCgroup(procRoot, cgroupRoot string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(cgroupRoot, p)
		}
	}
	return ""
}
