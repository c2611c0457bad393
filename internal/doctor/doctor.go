// Package doctor checks whether this host can run Vigil, and how: it probes
// each kernel mechanism Vigil may use by loading (and where that is what can
// fail, attaching) a tiny program, reads what the kernel and the host say
// about themselves (BTF, active LSMs, lockdown, cgroup layout, network
// interfaces, the clock, disk), and says for each job what Vigil will use,
// what it falls back to, and what the operator could change.
//
// Everything read from files goes through Options' roots, so other machines
// can be described by fixtures; everything that needs the live kernel goes
// through the Kernel interface, whose real implementation is Live.
//
// Package kernelcap probes a subset of the same mechanisms at the agent's
// start-up (`vigil status` shows them); for those (tp_btf, ring buffer,
// bpf_loop, bpf_send_signal, fentry, the BPF LSM program) Live runs
// kernelcap's probes, so the two cannot disagree.
package doctor

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Status is a check's verdict.
type Status int

const (
	// OK: present and used, or present and not needed.
	OK Status = iota
	// Info: absent or refused, and Vigil does not need it.
	Info
	// Warn: absent or refused; Vigil runs with a fallback or without a feature.
	Warn
	// Fail: Vigil cannot run on this host.
	Fail
)

func (s Status) String() string { return [...]string{"ok", "info", "warn", "FAIL"}[s] }

// MarshalText names the status in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(strings.ToLower(s.String())), nil }

// Check is one thing the doctor looked at.
type Check struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Found is what the host has, or why the probe failed.
	Found string `json:"found"`
	// Fix is what the operator could change, when there is something.
	Fix string `json:"fix,omitempty"`
}

// Use is what Vigil will use for one job, and what it fell back from.
type Use struct {
	Job string `json:"job"`
	// Mechanism is what Vigil uses; "none" when the job cannot be done here.
	Mechanism string `json:"mechanism"`
	// Instead is the preferred mechanism that is not available, if any.
	Instead string `json:"instead_of,omitempty"`
}

// Report is the doctor's findings.
type Report struct {
	Kernel string  `json:"kernel"`
	Checks []Check `json:"checks"`
	Uses   []Use   `json:"uses"`
	// Interfaces are the network interfaces and their XDP modes.
	Interfaces []Interface `json:"interfaces"`
}

// CanRun says whether Vigil can run at all: no check failed.
func (r Report) CanRun() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return false
		}
	}
	return true
}

// Check returns the check with the given id.
func (r Report) Check(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Use returns the mechanism used for job, or "none".
func (r Report) Use(job string) string {
	for _, u := range r.Uses {
		if u.Job == job {
			return u.Mechanism
		}
	}
	return "none"
}

// Options say where the host's files are and how to reach its kernel.
type Options struct {
	// Procfs and Sysfs are the roots of /proc and /sys.
	Procfs string
	Sysfs  string
	// Boot is where kernel configs (config-<release>) are looked for when
	// procfs has no config.gz.
	Boot string
	// StateDir is where Vigil keeps state (profiles, the event store); the
	// disk check looks at the filesystem that holds it.
	StateDir string
	// Kernel answers the probes that need the live kernel; nil means Live().
	Kernel Kernel
}

// DefaultOptions are this host's.
func DefaultOptions() Options {
	return Options{Procfs: "/proc", Sysfs: "/sys", Boot: "/boot", StateDir: "/var/lib/vigil"}
}

// MinKernel is the oldest kernel Vigil's sensors load on (tp_btf, ring
// buffers, bpf_loop); it matches sensor.MinKernel.
var MinKernel = [2]int{5, 17}

// MinFreeBytes is the free space below which the disk check warns.
const MinFreeBytes = 1 << 30

// Run performs every check.
func Run(o Options) Report {
	if o.Kernel == nil {
		o.Kernel = Live()
	}
	d := &doctor{o: o, probes: map[Mechanism]error{}}
	d.r.Kernel = d.read("sys/kernel/osrelease")
	d.kconfig = readKernelConfig(o, d.r.Kernel)

	d.checkPrivileges()
	d.checkKernel()
	d.checkBTF()
	d.checkLockdown()
	d.checkBPF()
	d.checkTracefs()
	d.checkUnneeded()
	d.checkLSM()
	d.checkCgroup()
	d.checkFanotify()
	d.checkNetwork()
	d.checkClock()
	d.checkDisk()
	d.plan()
	return d.r
}

type doctor struct {
	o       Options
	r       Report
	probes  map[Mechanism]error
	kconfig map[string]string // CONFIG_X -> y, m, "..." ; nil when unknown
	cgroup  cgroupLayout
}

func (d *doctor) add(id string, s Status, found, fix string) {
	d.r.Checks = append(d.r.Checks, Check{ID: id, Status: s, Found: found, Fix: fix})
}

func (d *doctor) probe(m Mechanism) error {
	if err, ok := d.probes[m]; ok {
		return err
	}
	err := d.o.Kernel.Probe(m)
	d.probes[m] = err
	return err
}

// proc and sys join a path below the procfs or sysfs root.
func (d *doctor) proc(p string) string { return filepath.Join(d.o.Procfs, p) }
func (d *doctor) sys(p string) string  { return filepath.Join(d.o.Sysfs, p) }

// read is a procfs file, trimmed; "" when unreadable.
func (d *doctor) read(p string) string {
	b, _ := os.ReadFile(d.proc(p))
	return strings.TrimSpace(string(b))
}

// config is a kernel config option's value ("y", "m", a string), "n" when
// the config says it is not set, and "" when the config is unknown.
func (d *doctor) config(name string) string {
	if d.kconfig == nil {
		return ""
	}
	if v, ok := d.kconfig[name]; ok {
		return v
	}
	return "n"
}

// configNote says what the kernel config says about an option, for Found.
func (d *doctor) configNote(name string) string {
	switch v := d.config(name); v {
	case "":
		return ""
	case "n":
		return "; " + name + " is not set"
	default:
		return "; " + name + "=" + v
	}
}

// Capability is one capability the agent needs, and why.
type Capability struct {
	Name string
	Bit  uint
	Why  string
}

// Capabilities are what `vigil run` needs, no more: the systemd unit and the
// Kubernetes DaemonSet grant exactly these (their tests check it).
// CAP_SYS_RESOURCE is not among them: it only lifts RLIMIT_MEMLOCK, which
// kernels since 5.11 no longer apply to BPF maps (memory cgroup accounting),
// and Vigil needs 5.17; the development machines run every kernel test as a
// root without it.
var Capabilities = []Capability{
	{"CAP_BPF", 39, "create BPF maps and load programs"},
	{"CAP_PERFMON", 38, "tracing programs, and reading kernel memory from them"},
	{"CAP_SYS_ADMIN", 21, "fanotify permission events, mounting tracefs, cgroup BPF attach, bpf_send_signal to other users' processes"},
	{"CAP_NET_ADMIN", 12, "XDP and tcx programs on interfaces"},
	{"CAP_SYS_PTRACE", 19, "reading /proc/<pid>/exe, cwd and environ of other users' processes"},
	{"CAP_KILL", 5, "killing processes as a response"},
	{"CAP_DAC_READ_SEARCH", 2, "reading any file and directory: rules, container runtime state, executables"},
}

func (d *doctor) checkPrivileges() {
	status := d.read("self/status")
	var eff uint64
	found := false
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
				eff, found = n, true
			}
		}
	}
	uid := -1
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) >= 2 {
				uid, _ = strconv.Atoi(f[1]) // effective
			}
		}
	}
	if !found {
		d.add("privileges", Warn, "cannot read the effective capabilities from "+d.proc("self/status"), "")
		return
	}
	var missing []string
	for _, c := range Capabilities {
		if eff&(1<<c.Bit) == 0 {
			missing = append(missing, c.Name)
		}
	}
	switch {
	case uid != 0:
		d.add("privileges", Fail, fmt.Sprintf("running as uid %d; vigil run needs uid 0", uid),
			"run vigil as root (sudo), or the systemd unit / DaemonSet in deploy/")
	case len(missing) > 0:
		d.add("privileges", Fail, "root, but without "+strings.Join(missing, ", "),
			"grant the capabilities listed in deploy/systemd/vigil.service (CapabilityBoundingSet)")
	default:
		d.add("privileges", OK, "root with every capability Vigil needs", "")
	}
}

func (d *doctor) checkKernel() {
	maj, min, ok := parseRelease(d.r.Kernel)
	switch {
	case d.r.Kernel == "":
		d.add("kernel", Warn, "cannot read the kernel release from "+d.proc("sys/kernel/osrelease"), "")
	case !ok:
		d.add("kernel", Warn, fmt.Sprintf("cannot parse the kernel release %q", d.r.Kernel), "")
	case maj < MinKernel[0] || maj == MinKernel[0] && min < MinKernel[1]:
		d.add("kernel", Fail, fmt.Sprintf("Linux %s is older than %d.%d", d.r.Kernel, MinKernel[0], MinKernel[1]),
			fmt.Sprintf("Vigil needs Linux %d.%d or newer (BTF tracepoints, ring buffers, bpf_loop)", MinKernel[0], MinKernel[1]))
	default:
		d.add("kernel", OK, fmt.Sprintf("Linux %s (%d.%d or newer is needed)", d.r.Kernel, MinKernel[0], MinKernel[1]), "")
	}
}

func (d *doctor) checkBTF() {
	p := d.sys("kernel/btf/vmlinux")
	st, err := os.Stat(p)
	if err != nil {
		d.add("btf", Fail, "no kernel BTF: "+p+" is missing"+d.configNote("CONFIG_DEBUG_INFO_BTF"),
			"use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution's kernel since 2020 has it)")
		return
	}
	d.add("btf", OK, fmt.Sprintf("%s (%.1f MiB)", p, float64(st.Size())/(1<<20)), "")
}

func (d *doctor) checkLockdown() {
	b, err := os.ReadFile(d.sys("kernel/security/lockdown"))
	if err != nil {
		d.add("lockdown", OK, "no lockdown LSM state (securityfs not mounted, or no lockdown LSM)", "")
		return
	}
	mode := bracketed(string(b))
	switch mode {
	case "confidentiality":
		d.add("lockdown", Fail, "lockdown=confidentiality: BPF programs may not read kernel memory",
			"boot with lockdown=integrity (or none); Vigil's sensors read kernel structures")
	case "":
		d.add("lockdown", Warn, fmt.Sprintf("cannot parse %q", strings.TrimSpace(string(b))), "")
	default:
		d.add("lockdown", OK, "lockdown="+mode+" (only confidentiality stops Vigil)", "")
	}
}

// Mechanisms and what the checks call them.
func (d *doctor) checkBPF() {
	if err := d.probe(BPF); err != nil {
		d.add("bpf", Fail, "the kernel refused a BPF map: "+err.Error()+d.configNote("CONFIG_BPF_SYSCALL"),
			"run as root; a container needs CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN and a seccomp profile that allows bpf(2)")
		// Nothing else will load: record the rest as not probed.
		for _, m := range []Mechanism{Tracepoint, RawTracepoint, TPBTF, RingBuffer, BPFLoop, SendSignal, Kprobe, Fentry, LSM, CgroupSockAddr, XDP, TCX} {
			d.probes[m] = errors.New("not probed: BPF is unavailable")
		}
		return
	}
	d.add("bpf", OK, "bpf(2) creates maps", "")
	need := []struct {
		id   string
		m    Mechanism
		what string
	}{
		{"tp_btf", TPBTF, "BTF tracepoints (process exec, fork, exit; syscall entry)"},
		{"tracepoint", Tracepoint, "syscall tracepoints (files, network, credentials, kernel)"},
		{"raw_tracepoint", RawTracepoint, "raw tracepoints"},
		{"ring_buffer", RingBuffer, "BPF ring buffer (every event reaches user space through it)"},
		{"bpf_loop", BPFLoop, "bpf_loop helper (path walks, arguments)"},
	}
	for _, n := range need {
		if err := d.probe(n.m); err != nil {
			st := Fail
			if n.m == RawTracepoint {
				st = Info // not used by the sensors today
			}
			d.add(n.id, st, n.what+": "+err.Error(), fmt.Sprintf("Vigil needs Linux %d.%d or newer with BPF enabled", MinKernel[0], MinKernel[1]))
			continue
		}
		d.add(n.id, OK, n.what, "")
	}
	if err := d.probe(SendSignal); err != nil {
		d.add("send_signal", Warn, "bpf_send_signal: "+err.Error(), "kill responses fall back to kill(2) from user space, after the program has started")
	} else {
		d.add("send_signal", OK, "bpf_send_signal (kill at exec, before the program's first instruction)", "")
	}
}

func (d *doctor) checkTracefs() {
	for _, dir := range []string{"kernel/tracing/events/syscalls", "kernel/debug/tracing/events/syscalls"} {
		if _, err := os.Stat(d.sys(dir)); err == nil {
			d.add("tracefs", OK, "syscall tracepoints at "+d.sys(dir), "")
			return
		}
	}
	if fs, _ := os.ReadFile(d.proc("filesystems")); strings.Contains(string(fs), "\ttracefs\n") {
		if _, err := os.Stat(d.sys("kernel/tracing")); err == nil {
			d.add("tracefs", OK, "tracefs is not mounted; Vigil mounts it at "+d.sys("kernel/tracing")+" on start", "")
			return
		}
	}
	d.add("tracefs", Fail, "no syscall tracepoints (tracefs or CONFIG_FTRACE_SYSCALLS missing)"+d.configNote("CONFIG_FTRACE_SYSCALLS"),
		"use a kernel with CONFIG_FTRACE_SYSCALLS=y, and mount tracefs at /sys/kernel/tracing")
}

// checkUnneeded reports mechanisms Vigil does not need, for the operator's
// picture of the host (and for tools like bpftrace that do need them).
func (d *doctor) checkUnneeded() {
	if d.probes[BPF] != nil {
		return // nothing loads; the bpf check says why
	}
	if err := d.probe(Kprobe); err != nil {
		d.add("kprobe", Info, "kprobes unavailable: "+err.Error()+d.configNote("CONFIG_KPROBES"), "")
	} else {
		d.add("kprobe", OK, "kprobes attach (Vigil does not use them)", "")
	}
	if err := d.probe(Fentry); err != nil {
		d.add("fentry", Info, "BPF trampolines (fentry/fexit) refused: "+err.Error(), "")
	} else {
		d.add("fentry", OK, "BPF trampolines (fentry/fexit) attach (Vigil does not need them)", "")
	}
	if err := d.probe(TCX); err != nil {
		d.add("tcx", Info, "tcx: "+err.Error()+" (Linux 6.6+)", "")
	} else {
		d.add("tcx", OK, "tcx ingress/egress programs attach", "")
	}
}

func (d *doctor) checkLSM() {
	b, err := os.ReadFile(d.sys("kernel/security/lsm"))
	active := strings.Split(strings.TrimSpace(string(b)), ",")
	if err != nil {
		d.add("bpf_lsm", Warn, "cannot read the active LSMs: "+err.Error(), "mount securityfs at /sys/kernel/security")
		d.probes[LSM] = err
		return
	}
	listed := false
	for _, l := range active {
		if l == "bpf" {
			listed = true
		}
	}
	fallback := "deny falls back to fanotify permission events (open, exec) and cgroup socket hooks (connect)"
	switch {
	case !listed && d.config("CONFIG_BPF_LSM") == "n":
		d.probes[LSM] = ErrLSMInactive
		d.add("bpf_lsm", Warn, "the kernel is built without CONFIG_BPF_LSM; "+fallback,
			"a kernel with CONFIG_BPF_LSM=y and bpf in lsm= would let Vigil deny in the kernel")
	case !listed:
		d.probes[LSM] = ErrLSMInactive
		want := strings.Join(append(nonEmpty(active), "bpf"), ",")
		d.add("bpf_lsm", Warn, fmt.Sprintf("\"bpf\" is not among the active LSMs (%s)%s; %s", strings.Join(nonEmpty(active), ","), d.configNote("CONFIG_BPF_LSM"), fallback),
			"add bpf to the lsm= boot parameter, e.g. lsm="+want+" (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)")
	case d.probes[BPF] != nil:
		d.add("bpf_lsm", Warn, "\"bpf\" is an active LSM; lsm programs not probed: BPF is unavailable", "")
	default:
		if err := d.probe(LSM); err != nil {
			fix := "none from Vigil's side"
			if d.probe(Fentry) != nil {
				fix = "the kernel refuses BPF trampolines (fentry too): a host policy or hypervisor forbids them; a distribution kernel on bare metal or a full VM allows them"
			}
			d.add("bpf_lsm", Warn, "\"bpf\" is an active LSM but lsm programs are refused: "+err.Error()+"; "+fallback, fix)
			return
		}
		d.add("bpf_lsm", OK, "BPF LSM programs attach (in-kernel deny of open, exec, connect)", "")
	}
}

func nonEmpty(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// bracketed is the [selected] word of a sysfs choice list.
func bracketed(s string) string {
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

func parseRelease(r string) (maj, min int, ok bool) {
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	m := parts[1]
	if i := strings.IndexFunc(m, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		m = m[:i]
	}
	min, err2 := strconv.Atoi(m)
	return maj, min, err1 == nil && err2 == nil
}

// readKernelConfig reads procfs/config.gz, else Boot/config-<release>. nil
// when neither is there.
func readKernelConfig(o Options, release string) map[string]string {
	var r io.Reader
	if f, err := os.Open(filepath.Join(o.Procfs, "config.gz")); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil
		}
		r = zr
	} else if o.Boot != "" && release != "" {
		f, err := os.Open(filepath.Join(o.Boot, "config-"+release))
		if err != nil {
			return nil
		}
		defer f.Close()
		r = f
	} else {
		return nil
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = strings.Trim(v, `"`)
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return cfg
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
