package netguard

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const bpffsMagic = 0xcafe4a11

// EnsureBPFFS makes sure the directory that will hold dir is on a BPF
// filesystem, mounting one at /sys/fs/bpf when nothing is mounted there
// (systemd mounts it at boot; minimal systems may not), the way the agent
// mounts tracefs.
func EnsureBPFFS(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			if st.Type == bpffsMagic {
				return nil
			}
			break // the nearest existing directory is not bpffs
		}
		if d == "/" {
			break
		}
	}
	const root = "/sys/fs/bpf"
	if rel, err := filepath.Rel(root, dir); err != nil || rel == ".." || len(rel) > 1 && rel[:2] == ".." {
		return fmt.Errorf("pin directory %s is not on a BPF filesystem (mount one: mount -t bpf bpf DIR)", dir)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("bpffs: %w", err)
	}
	if err := unix.Mount("bpf", root, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return fmt.Errorf("the BPF filesystem is not mounted and mounting it at %s failed (mount -t bpf bpf %s): %w", root, root, err)
	}
	return nil
}
