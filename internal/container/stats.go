package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Usage is what a container's cgroup has consumed: CPU and I/O are
// cumulative, memory and pids are current levels. Has* say which were
// readable (a controller may be missing).
type Usage struct {
	CPU                               time.Duration
	MemoryBytes                       uint64
	PIDs                              uint64
	IOReadBytes, IOWriteBytes         uint64
	HasCPU, HasMemory, HasPIDs, HasIO bool
}

// ReadUsage reads a cgroup's usage from the v2 hierarchy (cpu.stat,
// memory.current, pids.current, io.stat) and, for what v2 lacks (on a
// hybrid host the controllers stay on v1; on a v1 host there is no v2),
// from the v1 hierarchies under v1Root (cpuacct.usage,
// memory.usage_in_bytes, pids.current, blkio's io_service_bytes).
func ReadUsage(v2Root, v1Root, path string) (Usage, error) {
	var u Usage
	if v2Root != "" {
		dir := filepath.Join(v2Root, path)
		if _, err := os.Stat(dir); err == nil {
			if v, ok := keyed(filepath.Join(dir, "cpu.stat"), "usage_usec"); ok {
				u.CPU, u.HasCPU = time.Duration(v)*time.Microsecond, true
			}
			if v, ok := single(filepath.Join(dir, "memory.current")); ok {
				u.MemoryBytes, u.HasMemory = v, true
			}
			if v, ok := single(filepath.Join(dir, "pids.current")); ok {
				u.PIDs, u.HasPIDs = v, true
			}
			if r, w, ok := ioStat(filepath.Join(dir, "io.stat")); ok {
				u.IOReadBytes, u.IOWriteBytes, u.HasIO = r, w, true
			}
		}
	}
	if v1Root != "" {
		v1 := func(ctrl, file string) string {
			for _, d := range v1Dirs[ctrl] {
				p := filepath.Join(v1Root, d, path, file)
				if _, err := os.Stat(p); err == nil {
					return p
				}
			}
			return ""
		}
		if !u.HasCPU {
			if p := v1("cpuacct", "cpuacct.usage"); p != "" {
				if v, ok := single(p); ok {
					u.CPU, u.HasCPU = time.Duration(v), true
				}
			}
		}
		if !u.HasMemory {
			if p := v1("memory", "memory.usage_in_bytes"); p != "" {
				u.MemoryBytes, u.HasMemory = single(p)
			}
		}
		if !u.HasPIDs {
			if p := v1("pids", "pids.current"); p != "" {
				u.PIDs, u.HasPIDs = single(p)
			}
		}
		if !u.HasIO {
			for _, f := range []string{"blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive"} {
				if p := v1("blkio", f); p != "" {
					if r, w, ok := blkioBytes(p); ok {
						u.IOReadBytes, u.IOWriteBytes, u.HasIO = r, w, true
						break
					}
				}
			}
		}
	}
	if !u.HasCPU && !u.HasMemory && !u.HasPIDs && !u.HasIO {
		return u, fmt.Errorf("cgroup %s: no usage readable", path)
	}
	return u, nil
}

// v1Dirs: where each v1 controller may be mounted (alone or co-mounted).
var v1Dirs = map[string][]string{
	"cpuacct": {"cpuacct", "cpu,cpuacct", "cpuacct,cpu"},
	"memory":  {"memory"},
	"pids":    {"pids"},
	"blkio":   {"blkio", "blkio,io"},
}

func single(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// keyed reads "key value" lines (cpu.stat).
func keyed(path, key string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// ioStat sums rbytes and wbytes over the devices of a v2 io.stat.
func ioStat(path string) (r, w uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, f := range strings.Fields(line) {
			k, v, found := strings.Cut(f, "=")
			if !found {
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				r += n
			case "wbytes":
				w += n
			}
		}
	}
	return r, w, true
}

// blkioBytes sums the Read and Write lines of a v1 io_service_bytes file.
func blkioBytes(path string) (r, w uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		n, _ := strconv.ParseUint(f[2], 10, 64)
		switch f[1] {
		case "Read":
			r += n
		case "Write":
			w += n
		}
	}
	return r, w, true
}

// Containers lists the containers whose cgroups exist now, found by walking
// the v2 hierarchy (the name=systemd or memory v1 hierarchy on a v1 host)
// for cgroup paths ParsePath recognises and for the cgroups of runc and
// crun containers in the runtimes' state. Idle containers are listed too:
// they need not have produced an event.
func (r *Resolver) Containers() ([]*event.Container, error) {
	root := r.cfg.CgroupRoot
	if root == "" {
		for _, d := range []string{"systemd", "memory"} {
			if _, err := os.Stat(filepath.Join(r.cfg.V1Root, d)); err == nil {
				root = filepath.Join(r.cfg.V1Root, d)
				break
			}
		}
	}
	if root == "" {
		return nil, errors.New("no cgroup hierarchy to list containers from")
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*event.Container
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = cleanCgroupPath(rel)
		ref, ok := ParsePath(rel)
		if !ok {
			ref, ok = r.fromIndexLocked(rel, now)
		}
		if !ok || ref.Path != rel || seen[rel] {
			return nil
		}
		seen[rel] = true
		out = append(out, r.describedLocked(ref, now))
		return fs.SkipDir // its sub-cgroups are the same container
	})
	return out, err
}

// describedLocked returns the cached description of a container's cgroup
// path, describing it when new.
func (r *Resolver) describedLocked(ref Ref, now time.Time) *event.Container {
	if r.byPath == nil {
		r.byPath = map[string]*entry{}
	}
	e := r.byPath[ref.Path]
	if e == nil {
		if len(r.byPath) >= r.cfg.MaxEntries {
			clear(r.byPath)
		}
		e = &entry{ref: ref}
		r.describeLocked(e, now)
		r.byPath[ref.Path] = e
	} else {
		r.refreshLocked(e, now)
	}
	return e.c
}

// Usage reads a container's usage.
func (r *Resolver) Usage(c *event.Container) (Usage, error) {
	return ReadUsage(r.cfg.CgroupRoot, r.cfg.V1Root, c.CgroupPath)
}
