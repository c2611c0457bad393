package container

import (
	"strings"
)

// Runtimes, as container.runtime reads.
const (
	Docker     = "docker"
	Containerd = "containerd"
	CRIO       = "cri-o"
	Podman     = "podman"
	Runc       = "runc"
	Crun       = "crun"
	Nspawn     = "systemd-nspawn"
	LXC        = "lxc"
)

// Ref is what a cgroup path alone says about a container.
type Ref struct {
	// ID is the container id (64 hex digits for docker, containerd, CRI-O
	// and podman), or the machine name for systemd-nspawn and LXC.
	ID string
	// Runtime, when the path names it; empty for the cgroupfs layouts that
	// several runtimes share (/kubepods/<qos>/pod<uid>/<id>), where the
	// runtime's state decides.
	Runtime string
	// Path is the container's own cgroup (a prefix of the parsed path: a
	// process may sit in a sub-cgroup of its container).
	Path string
	// PodUID and QoS come from a Kubernetes pod cgroup above the container's.
	PodUID string
	QoS    string
}

// ParsePath reads a cgroup path, relative to the root of its hierarchy (as in
// /proc/<pid>/cgroup), and says whether it is a container's. The innermost
// container wins (docker in docker). It recognises:
//
//	docker          /system.slice/docker-<id>.scope      /docker/<id>
//	containerd      .../cri-containerd-<id>.scope        /kubepods/<qos>/pod<uid>/<id>
//	CRI-O           .../crio-<id>.scope                   (crio-conmon-<id>.scope is the monitor: host)
//	podman          /machine.slice/libpod-<id>.scope[/container]   /libpod_parent/libpod-<id>
//	runc, crun      /system.slice/runc-<id>.scope, /machine.slice/crun-<id>.scope (systemd driver)
//	systemd-nspawn  /machine.slice/machine-<name>.scope   /machine.slice/systemd-nspawn@<name>.service/payload
//	LXC             /lxc.payload.<name>                   /lxc/<name>
//
// and Kubernetes pods (kubepods[-<qos>]-pod<uid>.slice, or pod<uid> with
// the cgroupfs driver) above any of them. Paths of runc or crun containers
// started with a cgroupsPath of the caller's choosing carry no mark: the
// Resolver finds those in the runtimes' state.
func ParsePath(p string) (Ref, bool) {
	p = strings.TrimSuffix(p, "/")
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		var parent string
		if i > 0 {
			parent = segs[i-1]
		}
		r, ok, stop := parseSegment(s, parent, segs[:i])
		if stop {
			return Ref{}, false
		}
		if !ok {
			continue
		}
		r.Path = "/" + strings.Join(segs[:i+1], "/")
		r.PodUID, r.QoS = podOf(segs[:i])
		return r, true
	}
	return Ref{}, false
}

// parseSegment reads one path segment. stop says the segment belongs to a
// runtime's own process (conmon, nspawn's supervisor), on the host side.
func parseSegment(s, parent string, above []string) (r Ref, ok, stop bool) {
	base, isScope := strings.CutSuffix(s, ".scope")
	// The runtimes' own scopes, with the systemd driver or (CRI-O's
	// cgroupfs driver) without ".scope".
	for _, m := range []struct{ prefix, runtime string }{
		{"crio-conmon-", ""}, {"libpod-conmon-", ""},
		{"docker-", Docker}, {"cri-containerd-", Containerd}, {"crio-", CRIO}, {"libpod-", Podman},
		{"cri-dockerd-", Docker},
	} {
		id, found := strings.CutPrefix(base, m.prefix)
		if !found {
			continue
		}
		if m.runtime == "" {
			return Ref{}, false, isHexID(id)
		}
		if isHexID(id) {
			return Ref{ID: id, Runtime: m.runtime}, true, false
		}
		return Ref{}, false, false
	}
	if isScope {
		if id, found := strings.CutPrefix(base, "runc-"); found && id != "" {
			return Ref{ID: unescapeUnit(id), Runtime: Runc}, true, false
		}
		if id, found := strings.CutPrefix(base, "crun-"); found && id != "" {
			return Ref{ID: unescapeUnit(id), Runtime: Crun}, true, false
		}
		if name, found := strings.CutPrefix(base, "machine-"); found && name != "" && parent == "machine.slice" {
			return Ref{ID: unescapeUnit(name), Runtime: Nspawn}, true, false
		}
		return Ref{}, false, false
	}
	if name, found := strings.CutPrefix(s, "systemd-nspawn@"); found {
		if name, found = strings.CutSuffix(name, ".service"); found && name != "" {
			return Ref{ID: unescapeUnit(name), Runtime: Nspawn}, true, false
		}
	}
	if s == "supervisor" && strings.HasPrefix(parent, "systemd-nspawn@") {
		return Ref{}, false, true
	}
	if name, found := strings.CutPrefix(s, "lxc.payload."); found && name != "" {
		return Ref{ID: name, Runtime: LXC}, true, false
	}
	if s == "lxc.monitor" || strings.HasPrefix(s, "lxc.monitor.") {
		return Ref{}, false, true
	}
	if parent == "lxc" && len(above) == 1 {
		return Ref{ID: s, Runtime: LXC}, true, false
	}
	if isHexID(s) {
		// cgroupfs driver: /docker/<id>, /kubepods/.../pod<uid>/<id>,
		// /<containerd namespace>/<id>.
		r := Ref{ID: s}
		if parent == "docker" {
			r.Runtime = Docker
		}
		return r, true, false
	}
	return Ref{}, false, false
}

// podOf finds a Kubernetes pod cgroup among the segments above a container.
func podOf(segs []string) (uid, qos string) {
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if rest, ok := strings.CutPrefix(s, "kubepods"); ok && strings.HasSuffix(rest, ".slice") {
			// systemd driver: kubepods-burstable-pod<uid>.slice, kubepods-pod<uid>.slice
			rest = strings.TrimSuffix(rest, ".slice")
			j := strings.LastIndex(rest, "-pod")
			if j < 0 {
				continue
			}
			uid = strings.ReplaceAll(rest[j+len("-pod"):], "_", "-")
			qos = strings.TrimPrefix(rest[:j], "-")
			if qos == "" {
				qos = "guaranteed"
			}
			return uid, qos
		}
		if u, ok := strings.CutPrefix(s, "pod"); ok && len(u) >= 32 && inKubepods(segs[:i]) {
			// cgroupfs driver: /kubepods/<qos>/pod<uid>, /kubepods/pod<uid>
			qos = "guaranteed"
			if i > 0 && (segs[i-1] == "burstable" || segs[i-1] == "besteffort") {
				qos = segs[i-1]
			}
			return u, qos
		}
	}
	return "", ""
}

func inKubepods(segs []string) bool {
	for _, s := range segs {
		if s == "kubepods" || strings.HasPrefix(s, "kubepods.") || strings.HasPrefix(s, "kubepods-") {
			return true
		}
	}
	return false
}

// isHexID reports a 64-digit lower-case hex id, as docker, containerd,
// CRI-O and podman make.
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// unescapeUnit undoes systemd's unit name escaping (\x2d for "-").
func unescapeUnit(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, ok := hexByte(s[i+2], s[i+3]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hexByte(a, b byte) (byte, bool) {
	h := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	x, ok1 := h(a)
	y, ok2 := h(b)
	return x<<4 | y, ok1 && ok2
}

// ProcCgroup is /proc/<pid>/cgroup parsed: the cgroup v2 path ("0::" line)
// and the cgroup v1 paths by controller (or name=systemd).
type ProcCgroup struct {
	V2 string
	V1 map[string]string
}

// ParseProcCgroup parses the content of /proc/<pid>/cgroup.
func ParseProcCgroup(b []byte) ProcCgroup {
	var pc ProcCgroup
	for _, line := range strings.Split(string(b), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && ctrls == "" {
			pc.V2 = path
			continue
		}
		if pc.V1 == nil {
			pc.V1 = map[string]string{}
		}
		for _, c := range strings.Split(ctrls, ",") {
			pc.V1[c] = path
		}
	}
	return pc
}

// Ref finds the container in the process's cgroup paths: the v2 path first,
// then the v1 ones (name=systemd, then the controllers runtimes always set).
// ok is false for a host process.
func (pc ProcCgroup) Ref() (Ref, bool) {
	if r, ok := ParsePath(pc.V2); ok {
		return r, true
	}
	for _, c := range []string{"name=systemd", "pids", "memory", "cpu", "cpuacct", "blkio", "devices", "freezer"} {
		if p, ok := pc.V1[c]; ok {
			if r, ok := ParsePath(p); ok {
				return r, true
			}
		}
	}
	return Ref{}, false
}
