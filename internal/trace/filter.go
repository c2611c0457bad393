package trace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// maxCgroups bounds the cgroups --cgroup may stand for (vigil_cgroups holds 4096).
const maxCgroups = 4000

// userFilter is every filter, applied in user space to each event of the kind.
type userFilter struct {
	pids    map[uint32]bool
	comms   map[string]bool // cut to 15 bytes
	cgroups map[uint64]bool
	uids    map[uint32]bool
	ports   map[uint16]bool
	paths   []string // clean and absolute, with their symlink-free spellings
	outcome sensor.Outcome
}

func newUserFilter(o *Options) (*userFilter, error) {
	f := &userFilter{}
	for _, p := range o.PIDs {
		f.pids = setAdd(f.pids, p)
	}
	for _, c := range o.Comms {
		k := sensor.CommKey(c)
		f.comms = setAdd(f.comms, sensor.CString(k[:]))
	}
	for _, u := range o.UIDs {
		f.uids = setAdd(f.uids, u)
	}
	for _, p := range o.Ports {
		f.ports = setAdd(f.ports, p)
	}
	for _, p := range o.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("--path %s: %w", p, err)
		}
		f.paths = append(f.paths, abs)
		// The kernel reports the path it resolved: /usr/bin/true for /bin/true.
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			f.paths = append(f.paths, real)
		}
	}
	cgroups := o.Cgroups
	if len(o.Containers) > 0 {
		dirs, err := resolveContainers(o.CgroupRoot, o.Containers)
		if err != nil {
			return nil, err
		}
		cgroups = append(slices.Clone(cgroups), dirs...)
	}
	if len(cgroups) > 0 {
		ids, err := resolveCgroups(o.CgroupRoot, cgroups)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			f.cgroups = setAdd(f.cgroups, id)
		}
	}
	switch {
	case o.Failed:
		f.outcome = sensor.OutcomeFailure
	case o.Success:
		f.outcome = sensor.OutcomeSuccess
	}
	return f, nil
}

func setAdd[K comparable](m map[K]bool, k K) map[K]bool {
	if m == nil {
		m = map[K]bool{}
	}
	m[k] = true
	return m
}

// describe names the filters applied only here: all of them when the kind
// has no kernel-side filter, else those the kernel cannot apply.
func (f *userFilter) describe(all bool) []string {
	var out []string
	if all {
		for _, c := range []struct {
			name string
			on   bool
		}{{"--pid", len(f.pids) > 0}, {"--comm", len(f.comms) > 0}, {"--cgroup", len(f.cgroups) > 0}} {
			if c.on {
				out = append(out, c.name)
			}
		}
	}
	if len(f.uids) > 0 {
		out = append(out, "--uid")
	}
	if len(f.ports) > 0 {
		out = append(out, "--port")
	}
	if len(f.paths) > 0 {
		out = append(out, "--path")
	}
	return out
}

// match applies every filter to an event of the traced kind.
func (f *userFilter) match(e *event.Event) bool {
	p := &e.Process
	switch {
	case f.pids != nil && !f.pids[p.PID],
		f.comms != nil && !f.comms[p.Name],
		f.cgroups != nil && !f.cgroups[p.CgroupID],
		f.uids != nil && !f.uids[p.UID],
		f.outcome == sensor.OutcomeSuccess && e.Return < 0,
		f.outcome == sensor.OutcomeFailure && e.Return >= 0:
		return false
	}
	if f.ports != nil {
		n := e.Net
		if n == nil || !f.ports[n.Source.Port()] && !f.ports[n.Destination.Port()] {
			return false
		}
	}
	if f.paths != nil && !f.pathMatch(e) {
		return false
	}
	return true
}

func (f *userFilter) pathMatch(e *event.Event) bool {
	var cands []string
	switch {
	case e.File != nil:
		cands = []string{e.File.Path, e.File.TargetPath}
	case e.Kind == event.KindExec:
		p := &e.Process
		cands = []string{p.Executable, p.Script, sensor.Resolve(p.Filename, p.WorkingDir)}
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		for _, prefix := range f.paths {
			if hasPathPrefix(c, prefix) {
				return true
			}
		}
	}
	return false
}

// hasPathPrefix: p is prefix or below it, component by component (/etc
// covers /etc/passwd, not /etcetera).
func hasPathPrefix(p, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(p, "/")
	}
	prefix = strings.TrimSuffix(prefix, "/")
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

const cgroup2Magic = 0x63677270

// cgroupV2Root is where the cgroup v2 hierarchy is mounted: the unified
// directory of a hybrid setup, or /sys/fs/cgroup.
func cgroupV2Root() string {
	const unified = "/sys/fs/cgroup/unified"
	var st syscall.Statfs_t
	if err := syscall.Statfs(unified, &st); err == nil && int64(st.Type) == cgroup2Magic {
		return unified
	}
	return "/sys/fs/cgroup"
}

// resolveCgroups turns --cgroup values into cgroup ids: a number is an id, and
// anything else a cgroup v2 directory, absolute or relative to root. A
// directory stands for itself and the cgroups below it now (a process is in
// exactly one cgroup, often a child of the one a container or service is
// named by); so does an id whose directory is found under root. Cgroups made
// later below it are not covered.
func resolveCgroups(root string, values []string) ([]uint64, error) {
	var ids []uint64
	for _, v := range values {
		var dir string
		if id, err := strconv.ParseUint(v, 10, 64); err == nil {
			dir = findCgroup(root, id)
			if dir == "" {
				ids = append(ids, id) // not under root (or gone): the id alone
				continue
			}
		} else {
			dir = v
			if !filepath.IsAbs(dir) {
				if _, err := os.Stat(dir); err != nil {
					dir = filepath.Join(root, dir)
				}
			}
			var st syscall.Statfs_t
			if err := syscall.Statfs(dir, &st); err != nil {
				return nil, fmt.Errorf("--cgroup %s: %w", v, err)
			}
			if int64(st.Type) != cgroup2Magic {
				return nil, fmt.Errorf("--cgroup %s: %s is not in a cgroup v2 hierarchy (that is at %s)", v, dir, root)
			}
		}
		below, err := cgroupTree(dir)
		if err != nil {
			return nil, fmt.Errorf("--cgroup %s: %w", v, err)
		}
		ids = append(ids, below...)
		if len(ids) > maxCgroups {
			return nil, fmt.Errorf("--cgroup %s: more than %d cgroups at and below it; name a smaller subtree", v, maxCgroups)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// cgroupTree lists the ids (directory inodes) of dir and every cgroup below it.
func cgroupTree(dir string) ([]uint64, error) {
	var ids []uint64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			ids = append(ids, st.Ino)
		}
		if len(ids) > maxCgroups {
			return fs.SkipAll
		}
		return nil
	})
	return ids, err
}

// findCgroup is the directory under root whose id is id, or "".
func findCgroup(root string, id uint64) string {
	var found string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Ino == id {
				found = p
				return fs.SkipAll
			}
		}
		return nil
	})
	return found
}

// containerDirPatterns are how container runtimes name a container's cgroup:
// docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
// libpod-<id>.scope with the systemd driver, and a bare <id> directory with
// the cgroupfs driver (/docker/<id>, /kubepods/.../<id>).
var containerDirPrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", ""}

// containerOf returns the container id a cgroup directory's name carries,
// or "".
func containerOf(name string) string {
	base := strings.TrimSuffix(name, ".scope")
	for _, p := range containerDirPrefixes {
		if id, ok := strings.CutPrefix(base, p); ok && len(id) == 64 && isHex(id) {
			return id
		}
	}
	return ""
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// resolveContainers finds the cgroup directory of each container, given its
// id or a unique prefix of it (at least 4 characters, as docker accepts).
func resolveContainers(root string, ids []string) ([]string, error) {
	var dirs []string
	for _, want := range ids {
		if len(want) < 4 || !isHex(want) {
			return nil, fmt.Errorf("--container %q: want a container id (hex, at least 4 characters)", want)
		}
		var found []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if id := containerOf(d.Name()); id != "" && strings.HasPrefix(id, want) {
				found = append(found, p)
				return fs.SkipDir
			}
			return nil
		})
		switch {
		case len(found) == 0:
			return nil, fmt.Errorf("--container %s: no running container's cgroup has this id under %s", want, root)
		case len(found) > 1 && !sameContainer(found):
			return nil, fmt.Errorf("--container %s: matches more than one container: %s", want, strings.Join(found, ", "))
		}
		dirs = append(dirs, found...)
	}
	return dirs, nil
}

func sameContainer(dirs []string) bool {
	first := containerOf(filepath.Base(dirs[0]))
	for _, d := range dirs[1:] {
		if containerOf(filepath.Base(d)) != first {
			return false
		}
	}
	return true
}
