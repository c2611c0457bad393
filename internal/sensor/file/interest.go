package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/sensor"
)

// The interest set decides which file operations the kernel reports when the
// file kind's filter says sensor.InterestWatched (or, for directories marked
// sensor.Ignore, which it leaves out under sensor.InterestAll):
//
//   - writes (write-opens, create, unlink, rename, chmod, chown, link,
//     symlink, truncate, mkdir): the nearest marked file or directory on the
//     way up from the file decides, at most 16 levels up; WatchWrite reports,
//     Ignore drops.
//   - read-opens: only the file itself and its directory are looked at, for
//     WatchRead. A directory marked WatchRead covers the files directly in it.
//   - a chmod, fchmod or fchmodat that sets the setuid or setgid bit is always
//     reported, with Watched, wherever the file is (Ignore marks included):
//     a setuid shell is made where no watch list looks (/tmp, /dev/shm), and
//     such chmods are rare.
//
// The kernel holds the set twice. By device and inode (the shared
// vigil_inodes map), which is exact and sees through symlinks and bind mounts,
// but needs a dentry: an open file, or the directory a path string starts
// from. And by absolute path (the sensor's own LPM trie), for operations named
// by a string whose file no dentry reaches at sys_exit, such as
// unlink("/etc/cron.d/x") or rename("a", "etc/cron.d/x") from /. "." and
// repeated slashes are dropped before matching; a ".." component cannot be
// matched by path (through a symlink the lexical parent is not the real one),
// so write operations named with one are reported without Watched (user space
// sees the joined path) and failed read-opens named with one are not. Paths
// are matched as the calling task sees them, so a container's /etc/passwd
// matches a watch on /etc.

// Default path lists, the interest set a Falco or Tetragon user would expect.
// They are data the daemon passes to Sensor.Watch; "*" patterns are expanded
// when Watch is called (a home directory made later is not covered).
var (
	// DefaultSensitiveReads are files whose reading is worth a record
	// (sensor.WatchRead): credential stores, sudo and SSH secrets.
	DefaultSensitiveReads = []string{
		"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
		"/etc/security/opasswd", "/etc/master.passwd",
		"/etc/sudoers", "/etc/sudoers.d",
		"/etc/ssh/ssh_host_*_key", // private host keys, not the public ones or ssh_config
		"/root/.ssh", "/home/*/.ssh",
		"/etc/krb5.keytab", "/etc/ssl/private",
	}
	// DefaultWatchedWrites are trees whose modification is worth a record
	// (sensor.WatchWrite): configuration, binaries and libraries, boot,
	// persistence (cron, systemd, shell start-up, authorized_keys), web roots.
	DefaultWatchedWrites = []string{
		"/etc", "/boot", "/root",
		"/bin", "/sbin", "/lib", "/lib64",
		"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64",
		"/usr/local/bin", "/usr/local/sbin", "/usr/local/lib",
		"/etc/ld.so.preload", "/etc/cron.d", "/etc/systemd", "/lib/systemd", "/usr/lib/systemd",
		"/var/spool/cron", "/var/www",
		"/home/*/.ssh", "/home/*/.bashrc", "/home/*/.profile", "/home/*/.bash_profile",
	}
	// DefaultIgnored are trees never worth a write record (sensor.Ignore):
	// pseudo filesystems, Vigil's own runtime directory, and root's cache
	// (build and package caches below the watched /root). Under InterestAll
	// this also leaves out /dev/shm, which is below /dev.
	DefaultIgnored = []string{"/proc", "/sys", "/dev", "/run/vigil", "/root/.cache"}
)

// Watch marks the files and directories at paths in the shared inode map,
// adding mark to any marks they have. "*" patterns are expanded. Paths that do
// not exist are returned, not errors. It does not fill the sensor's path
// trie: the daemon should call Sensor.Watch, which does both.
func Watch(shared *sensor.Shared, paths []string, mark sensor.InodeMark) (missing []string, err error) {
	for _, p := range expand(paths) {
		k, err := sensor.InodeOf(p)
		if isPattern(p) || isMissing(err) {
			missing = append(missing, p)
			continue
		}
		if err != nil {
			return missing, fmt.Errorf("watch %s: %w", p, err)
		}
		var old uint8
		if err := shared.Inodes.Lookup(k, &old); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return missing, fmt.Errorf("watch %s: %w", p, err)
		}
		if err := shared.MarkInode(k, sensor.InodeMark(old)|mark); err != nil {
			return missing, fmt.Errorf("watch %s: %w", p, err)
		}
	}
	return missing, nil
}

// Watch marks paths in the interest set, by inode and by path, adding mark to
// any marks they have. "*" patterns are expanded. Paths that do not exist
// are returned, not errors; they are still watched by path, so a file made
// there later is covered where the kernel matches by path.
func (s *Sensor) Watch(paths []string, mark sensor.InodeMark) (missing []string, err error) {
	s.watch.Lock()
	defer s.watch.Unlock()
	missing, err = Watch(s.shared, paths, mark)
	if err != nil {
		return missing, err
	}
	for _, p := range expand(paths) {
		if isPattern(p) {
			continue
		}
		names := []string{p}
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			names = append(names, real) // /bin -> /usr/bin: both spellings
		}
		for _, name := range names {
			st, err := os.Stat(name)
			dir := err != nil || st.IsDir() // unknown: watch both ways
			if err := s.lexMark(name, false, mark); err != nil {
				return missing, err
			}
			if dir {
				if err := s.lexMark(name, true, mark); err != nil {
					return missing, err
				}
			}
		}
	}
	return missing, nil
}

// WatchDefaults watches the default lists with their marks.
func (s *Sensor) WatchDefaults() (missing []string, err error) {
	for _, l := range []struct {
		paths []string
		mark  sensor.InodeMark
	}{
		{DefaultSensitiveReads, sensor.WatchRead},
		{DefaultWatchedWrites, sensor.WatchWrite},
		{DefaultIgnored, sensor.Ignore},
	} {
		m, err := s.Watch(l.paths, l.mark)
		missing = append(missing, m...)
		if err != nil {
			return missing, err
		}
	}
	return missing, nil
}

// ClearWatches empties the interest set: the shared inode map and the
// sensor's path trie.
func (s *Sensor) ClearWatches() error {
	s.watch.Lock()
	defer s.watch.Unlock()
	for _, m := range []*ebpf.Map{s.shared.Inodes, s.objs.Lex} {
		var keys [][]byte
		var k []byte
		it := m.Iterate()
		var v []byte
		for it.Next(&k, &v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("clear watches: %w", err)
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clear watches: %w", err)
			}
		}
	}
	return nil
}

// lexMark adds mark to the path trie's entry for p: "p\0" for the file
// itself, or "p/" for what is below the directory p.
func (s *Sensor) lexMark(p string, below bool, mark sensor.InodeMark) error {
	entry := p + "\x00"
	if below {
		entry = strings.TrimSuffix(p, "/") + "/"
	}
	if len(entry) > len(bpfLexKey{}.Data) {
		return nil // longer than the kernel compares; the inode map still has it
	}
	key := bpfLexKey{Prefixlen: uint32(len(entry) * 8)}
	copy(key.Data[:], entry)
	val := bpfLexVal{Len: uint16(len(entry))}
	if below {
		val.Dir = 1
	}
	var old bpfLexVal
	// A lookup answers with the longest matching entry: it is this one only
	// when the lengths agree.
	if err := s.objs.Lex.Lookup(&key, &old); err == nil && old.Len == val.Len {
		val.Marks = old.Marks
	} else if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("watch %s: %w", p, err)
	}
	val.Marks |= uint8(mark)
	if err := s.objs.Lex.Put(&key, &val); err != nil {
		return fmt.Errorf("watch %s: %w", p, err)
	}
	return nil
}

// expand makes paths absolute and clean and expands "*" patterns, in order;
// a pattern that matches nothing stays as it is.
func expand(paths []string) []string {
	var out []string
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if !isPattern(p) {
			out = append(out, p)
			continue
		}
		m, err := filepath.Glob(p)
		if err != nil || len(m) == 0 {
			out = append(out, p)
			continue
		}
		out = append(out, m...)
	}
	return out
}

func isPattern(p string) bool { return strings.ContainsAny(p, "*?[") }

// isMissing: the path does not exist, or a part of it is not a directory.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}
