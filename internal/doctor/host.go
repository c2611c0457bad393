package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type cgroupLayout struct {
	v2   string // the cgroup v2 mount, "" when none
	v1   int    // number of v1 hierarchies mounted
	kind string // unified, hybrid, legacy, none
}

func (d *doctor) checkCgroup() {
	b, err := os.ReadFile(d.proc("self/mounts"))
	if err != nil {
		d.add("cgroup", Warn, "cannot read "+d.proc("self/mounts")+": "+err.Error(), "")
		return
	}
	var l cgroupLayout
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch f[2] {
		case "cgroup2":
			if l.v2 == "" {
				l.v2 = f[1]
			}
		case "cgroup":
			l.v1++
		}
	}
	switch {
	case l.v2 != "" && l.v1 == 0:
		l.kind = "unified"
	case l.v2 != "":
		l.kind = "hybrid"
	case l.v1 > 0:
		l.kind = "legacy"
	default:
		l.kind = "none"
	}
	d.cgroup = l
	switch l.kind {
	case "unified", "hybrid":
		ctrl := strings.Fields(readFile(filepath.Join(d.o.Sysfs, strings.TrimPrefix(l.v2, "/sys"), "cgroup.controllers")))
		found := fmt.Sprintf("%s: cgroup v2 at %s", l.kind, l.v2)
		if l.kind == "hybrid" {
			found += fmt.Sprintf(" beside %d v1 hierarchies", l.v1)
		}
		if len(ctrl) > 0 {
			found += " (v2 controllers: " + strings.Join(ctrl, " ") + ")"
		} else if l.kind == "hybrid" {
			found += " (no controllers on v2: container resource checks read nothing)"
		}
		fix := ""
		if !strings.HasPrefix(l.v2, "/sys/fs/cgroup") {
			fix = "set paths.cgroupfs: " + l.v2 + " in the configuration"
		}
		if err := d.probe(CgroupSockAddr); err != nil {
			d.add("cgroup", Warn, found+"; cgroup socket hooks refused: "+err.Error(), fix)
			return
		}
		d.add("cgroup", OK, found+"; cgroup/connect4 attaches", fix)
	case "legacy":
		d.probes[CgroupSockAddr] = fmt.Errorf("no cgroup v2")
		d.add("cgroup", Warn, fmt.Sprintf("cgroup v1 only (%d hierarchies): no cgroup ids for containers, no cgroup socket hooks", l.v1),
			"boot with systemd.unified_cgroup_hierarchy=1 (or mount cgroup2 at /sys/fs/cgroup/unified)")
	default:
		d.probes[CgroupSockAddr] = fmt.Errorf("no cgroup v2")
		d.add("cgroup", Warn, "no cgroup filesystem is mounted: no container attribution, no cgroup socket hooks",
			"mount cgroup2 at /sys/fs/cgroup")
	}
}

func (d *doctor) checkFanotify() {
	if err := d.probe(Fanotify); err != nil {
		d.add("fanotify", Warn, "fanotify permission events unavailable: "+err.Error()+d.configNote("CONFIG_FANOTIFY_ACCESS_PERMISSIONS"),
			"without BPF LSM or fanotify, Vigil cannot refuse an open or an exec; it can still kill at exec")
		return
	}
	d.add("fanotify", OK, "fanotify permission events (FAN_OPEN_PERM, FAN_OPEN_EXEC_PERM)", "")
}

// Interface is a network interface and the XDP modes it offers.
type Interface struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Driver string `json:"driver,omitempty"` // "" for virtual interfaces
	// Native: the driver runs XDP programs itself; Offload: the NIC does.
	// NativeKnown is false on kernels that do not report XDP features
	// (before 6.3).
	Native      bool `json:"native"`
	Offload     bool `json:"offload"`
	NativeKnown bool `json:"native_known"`
	// Generic XDP works on every interface where XDP programs load.
	Generic bool `json:"generic"`
}

// Mode is the best XDP mode of the interface.
func (i Interface) Mode() string {
	switch {
	case i.Native:
		return "native"
	case i.Generic && !i.NativeKnown:
		return "generic (native unknown)"
	case i.Generic:
		return "generic"
	}
	return "none"
}

func (d *doctor) checkNetwork() {
	xdpErr := d.probe(XDP)
	feats, featErr := d.o.Kernel.XDPFeatures()
	dir := d.sys("class/net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		d.add("xdp", Warn, "cannot list interfaces in "+dir+": "+err.Error(), "")
		return
	}
	var modes []string
	for _, e := range ents {
		name := e.Name()
		idx, err := strconv.Atoi(readFile(filepath.Join(dir, name, "ifindex")))
		if err != nil {
			continue
		}
		in := Interface{Name: name, Index: idx, Generic: xdpErr == nil}
		for _, line := range strings.Split(readFile(filepath.Join(dir, name, "device/uevent")), "\n") {
			if v, ok := strings.CutPrefix(line, "DRIVER="); ok {
				in.Driver = v
			}
		}
		if featErr == nil {
			f := feats[idx]
			in.NativeKnown = true
			in.Native = f&XDPActBasic != 0 && xdpErr == nil
			in.Offload = f&XDPActHWOffload != 0 && xdpErr == nil
		}
		d.r.Interfaces = append(d.r.Interfaces, in)
		if name != "lo" {
			modes = append(modes, name+" "+in.Mode())
		}
	}
	switch {
	case xdpErr != nil:
		d.add("xdp", Warn, "XDP programs refused: "+xdpErr.Error(), "network blocking falls back to cgroup socket hooks (local processes only)")
	case featErr != nil:
		d.add("xdp", OK, "XDP: "+strings.Join(modes, ", ")+"; native support unknown: "+featErr.Error(), "")
	default:
		d.add("xdp", OK, "XDP: "+strings.Join(modes, ", "), "")
	}
}

func (d *doctor) checkClock() {
	src := readFile(d.sys("devices/system/clocksource/clocksource0/current_clocksource"))
	c, err := d.o.Kernel.Clock()
	if err != nil {
		d.add("clock", Warn, "cannot read the clock's state: "+err.Error(), "")
		return
	}
	found := "clocksource " + src
	if src == "" {
		found = "clocksource unknown"
	}
	if !c.Synchronized {
		d.add("clock", Warn, found+"; the system clock is not synchronized (event times may be off)",
			"run an NTP client (systemd-timesyncd, chrony): events from different hosts are compared by time")
		return
	}
	d.add("clock", OK, fmt.Sprintf("%s; synchronized (estimated error %dus)", found, c.EstErrorMicros), "")
}

func (d *doctor) checkDisk() {
	dir := d.o.StateDir
	if dir == "" {
		return
	}
	// The filesystem that will hold dir: its nearest existing ancestor.
	p := filepath.Clean(dir)
	for {
		if _, err := os.Stat(p); err == nil || p == "/" || p == "." {
			break
		}
		p = filepath.Dir(p)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		d.add("disk", Warn, "cannot stat the filesystem of "+dir+": "+err.Error(), "")
		return
	}
	free := st.Bavail * uint64(st.Bsize)
	found := fmt.Sprintf("%s: %s free of %s", dir, bytesString(free), bytesString(st.Blocks*uint64(st.Bsize)))
	if p != dir {
		found += " (on " + p + ")"
	}
	switch {
	case st.Flags&unix.ST_RDONLY != 0:
		d.add("disk", Warn, found+"; the filesystem is read-only", "give Vigil a writable "+dir+" (StateDirectory= in the unit, a hostPath volume in Kubernetes)")
	case free < MinFreeBytes:
		d.add("disk", Warn, found+"; less than "+bytesString(MinFreeBytes)+" free for profiles and the event store", "free space or move the state directory")
	default:
		d.add("disk", OK, found, "")
	}
}

// plan says, per job, what Vigil will use.
func (d *doctor) plan() {
	ok := func(m Mechanism) bool { return d.probes[m] == nil }
	use := func(job string, choices ...string) {
		// choices alternate: mechanism name, available ("" when not).
		u := Use{Job: job, Mechanism: "none"}
		for i, c := range choices {
			if c != "" {
				u.Mechanism = c
				if i > 0 {
					u.Instead = pref[job]
				}
				break
			}
		}
		if u.Mechanism == "none" {
			u.Instead = pref[job]
		}
		d.r.Uses = append(d.r.Uses, u)
	}
	if_ := func(cond bool, s string) string {
		if cond {
			return s
		}
		return ""
	}
	detect := ok(TPBTF) && ok(Tracepoint) && ok(RingBuffer) && ok(BPFLoop)
	use("detect", if_(detect, pref["detect"]))
	use("kill", if_(ok(SendSignal), pref["kill"]), "kill(2) from user space")
	lsm := ok(LSM)
	fan := ok(Fanotify)
	use("deny open/exec", if_(lsm, pref["deny open/exec"]), if_(fan, "fanotify permission events"))
	use("deny connect", if_(lsm, pref["deny connect"]), if_(ok(CgroupSockAddr), "cgroup/connect4, connect6 on the cgroup v2 root"))
	native, generic := 0, 0
	for _, in := range d.r.Interfaces {
		if in.Name == "lo" {
			continue
		}
		if in.Native {
			native++
		} else if in.Generic {
			generic++
		}
	}
	switch {
	case native > 0 && generic == 0:
		use("block network", pref["block network"])
	case native+generic > 0:
		use("block network", "", fmt.Sprintf("XDP, native on %d interfaces, generic on %d", native, generic))
	default:
		use("block network", "", if_(ok(CgroupSockAddr), "cgroup socket hooks (local processes only)"))
	}
	use("containers", if_(d.cgroup.v2 != "", pref["containers"]))
}

// pref is the preferred mechanism for each job.
var pref = map[string]string{
	"detect":         "tp_btf + syscall tracepoints -> ring buffer",
	"kill":           "bpf_send_signal at exec",
	"deny open/exec": "BPF LSM (file_open, bprm_check_security)",
	"deny connect":   "BPF LSM (socket_connect)",
	"block network":  "XDP native",
	"containers":     "cgroup v2 ids",
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func bytesString(n uint64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
