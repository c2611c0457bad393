package doctor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/testenv"
)

// TestAgreesWithKernelcap: for the mechanisms both probe, the doctor's
// verdict is what the agent's start-up probe (kernelcap) found, on whichever
// kernel this runs: the host refuses fentry and the BPF LSM, Debian's 6.1 in
// the kernel-test guest allows both.
func TestAgreesWithKernelcap(t *testing.T) {
	testenv.RequirePrivileged(t)
	k := kernelcap.Probe(kernelcap.DefaultPaths)
	r := Run(DefaultOptions())
	for _, name := range []string{kernelcap.TPBTF, kernelcap.RingBuffer, kernelcap.BPFLoop,
		kernelcap.SendSignal, kernelcap.Fentry, kernelcap.BPFLSM} {
		c, ok := r.Check(name)
		if !ok {
			t.Errorf("no %s check", name)
			continue
		}
		if (c.Status == OK) != k.Has(name) {
			t.Errorf("%s: doctor says %s %q, kernelcap says %v", name, c.Status, c.Found, k.Features)
		}
	}
}

// TestThisMachine runs the real checks, with the real probes, on the
// development machine and asserts what /work/shared/KERNEL.md measured on it.
func TestThisMachine(t *testing.T) {
	testenv.SkipInGuest(t, "needs it asserts what the development host has")
	testenv.RequirePrivileged(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Fatalf("this test describes the development machines (BTF present): %v", err)
	}
	r := Run(DefaultOptions())
	var text strings.Builder
	r.WriteText(&text)
	t.Logf("\n%s", text.String())

	want := []struct {
		id     string
		status Status
		found  string // substring of Found
	}{
		{"privileges", OK, "root"},
		{"kernel", OK, "Linux 6."},
		{"btf", OK, "/sys/kernel/btf/vmlinux"},
		{"lockdown", OK, "lockdown=integrity"},
		{"bpf", OK, ""},
		{"tp_btf", OK, ""},
		{"tracepoint", OK, ""},
		{"raw_tracepoint", OK, ""},
		{"ring_buffer", OK, ""},
		{"bpf_loop", OK, ""},
		{"send_signal", OK, ""},
		{"tracefs", OK, "events/syscalls"},
		// The kernel is built without kprobes: no kprobe_events in tracefs.
		{"kprobe", Info, "CONFIG_KPROBES is not set"},
		// BPF trampolines and the BPF LSM: listed, refused with EPERM.
		{"fentry", Info, "load fentry/security_file_open: operation not permitted"},
		{"bpf_lsm", Warn, "\"bpf\" is an active LSM but lsm programs are refused: load lsm/file_open: operation not permitted"},
		{"tcx", OK, ""},
		{"cgroup", OK, "hybrid: cgroup v2 at /sys/fs/cgroup/unified"},
		{"fanotify", OK, "FAN_OPEN_PERM"},
		{"xdp", OK, "eth0 native"},
		{"disk", OK, "/var/lib/vigil"},
	}
	for _, w := range want {
		c, ok := r.Check(w.id)
		if !ok {
			t.Errorf("no %s check", w.id)
			continue
		}
		if c.Status != w.status || !strings.Contains(c.Found, w.found) {
			t.Errorf("%s: %s %q, want %s and %q", w.id, c.Status, c.Found, w.status, w.found)
		}
	}
	if c, _ := r.Check("bpf_lsm"); !strings.Contains(c.Fix, "trampolines") {
		t.Errorf("bpf_lsm fix %q does not explain that trampolines are refused", c.Fix)
	}
	if c, ok := r.Check("clock"); !ok || c.Status != OK && c.Status != Warn {
		t.Errorf("clock: %+v", c)
	}
	if !r.CanRun() {
		t.Errorf("CanRun = false on the development machine")
	}
	for job, mech := range map[string]string{
		"detect":         "tp_btf + syscall tracepoints -> ring buffer",
		"kill":           "bpf_send_signal at exec",
		"deny open/exec": "fanotify permission events",
		"deny connect":   "cgroup/connect4, connect6 on the cgroup v2 root",
		"containers":     "cgroup v2 ids",
	} {
		if got := r.Use(job); got != mech {
			t.Errorf("%s: uses %q, want %q", job, got, mech)
		}
	}
	// eth0 is virtio_net, which runs XDP natively (the netdev family says
	// so); lo does not.
	ifs := map[string]Interface{}
	for _, in := range r.Interfaces {
		ifs[in.Name] = in
	}
	if in := ifs["eth0"]; !in.NativeKnown || !in.Native || !in.Generic || in.Driver != "virtio_net" {
		t.Errorf("eth0: %+v, want virtio_net with native and generic XDP", in)
	}
	if in := ifs["lo"]; in.Index != 1 || in.Native || !in.Generic {
		t.Errorf("lo: %+v, want index 1, generic XDP only", in)
	}
	if !strings.HasSuffix(text.String(), "Vigil can run here (2 warning(s)).\n") && !strings.HasSuffix(text.String(), "Vigil can run here (1 warning(s)).\n") {
		t.Errorf("verdict line: %q", text.String()[strings.LastIndexByte(strings.TrimSuffix(text.String(), "\n"), '\n')+1:])
	}
	// Nothing the probes made is left behind.
	if left, _ := filepath.Glob("/sys/fs/cgroup/unified/vigil-doctor-*"); len(left) > 0 {
		t.Errorf("probe cgroups left behind: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "vigil-doctor-*")); len(left) > 0 {
		t.Errorf("probe directories left behind: %v", left)
	}
}

// TestLiveXDPFeatures reads the netdev family directly: every interface is
// reported, lo without native XDP.
func TestLiveXDPFeatures(t *testing.T) {
	testenv.SkipInGuest(t, "needs a network interface with a driver")
	f, err := netdevXDPFeatures()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := f[1]; !ok || v&XDPActBasic != 0 {
		t.Errorf("lo (ifindex 1): features %#x, present %v; want present without XDP_ACT_BASIC", v, ok)
	}
	ents, _ := os.ReadDir("/sys/class/net")
	if len(f) != len(ents) {
		t.Errorf("%d interfaces reported, /sys/class/net has %d", len(f), len(ents))
	}
}

// recorded is another machine's kernel, as its probes answered there.
type recorded struct {
	refused map[Mechanism]string // mechanism -> error; absent: works
	xdp     map[int]uint64       // nil: no netdev family
	clock   ClockState
}

func (k recorded) Probe(m Mechanism) error {
	if e, ok := k.refused[m]; ok {
		return errors.New(e)
	}
	return nil
}

func (k recorded) XDPFeatures() (map[int]uint64, error) {
	if k.xdp == nil {
		return nil, ErrNoNetdevFamily
	}
	return k.xdp, nil
}

func (k recorded) Clock() (ClockState, error) { return k.clock, nil }

// machine writes a /proc, /sys and /boot tree in a temporary directory.
func machine(t *testing.T, files map[string]string) Options {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Options{Procfs: filepath.Join(root, "proc"), Sysfs: filepath.Join(root, "sys"), Boot: filepath.Join(root, "boot"), StateDir: filepath.Join(root, "var/lib/vigil")}
}

const rootStatus = "Name:\tvigil\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n"

// debian12 is Debian 12 with its stock 6.1 kernel: BTF, kprobes and BPF
// trampolines, CONFIG_BPF_LSM=y but "bpf" not in the default LSM list,
// unified cgroups, and no netdev family (6.3+).
func debian12(lsm string) map[string]string {
	return map[string]string{
		"proc/sys/kernel/osrelease": "6.1.0-28-amd64\n",
		"proc/self/status":          rootStatus,
		"proc/self/mounts":          "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n",
		"proc/filesystems":          "nodev\tsysfs\nnodev\ttracefs\n",
		"boot/config-6.1.0-28-amd64": "CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_LSM=y\nCONFIG_KPROBES=y\nCONFIG_DEBUG_INFO_BTF=y\n" +
			`CONFIG_LSM="landlock,lockdown,yama,loadpin,safesetid,integrity,apparmor,selinux,smack,tomoyo,bpf"` + "\n",
		"sys/kernel/btf/vmlinux":                                          "BTF",
		"sys/kernel/security/lsm":                                         lsm,
		"sys/kernel/security/lockdown":                                    "[none] integrity confidentiality\n",
		"sys/kernel/tracing/events/syscalls/":                             "",
		"sys/fs/cgroup/cgroup.controllers":                                "cpuset cpu io memory hugetlb pids rdma misc\n",
		"sys/class/net/lo/ifindex":                                        "1\n",
		"sys/class/net/ens3/ifindex":                                      "2\n",
		"sys/class/net/ens3/device/uevent":                                "DRIVER=e1000\n",
		"sys/devices/system/clocksource/clocksource0/current_clocksource": "kvm-clock\n",
	}
}

func TestOtherMachines(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		kernel recorded
		canRun bool
		checks map[string]Status
		found  map[string]string // check -> substring of Found
		fix    map[string]string // check -> substring of Fix
		uses   map[string]string
	}{
		{
			name:   "debian 12, bpf not in lsm=",
			files:  debian12("lockdown,capability,landlock,yama,apparmor"),
			kernel: recorded{clock: ClockState{Synchronized: true, EstErrorMicros: 120}},
			canRun: true,
			checks: map[string]Status{"kernel": OK, "btf": OK, "bpf_lsm": Warn, "fentry": OK, "kprobe": OK, "cgroup": OK, "clock": OK, "xdp": OK},
			found: map[string]string{
				"bpf_lsm": `"bpf" is not among the active LSMs (lockdown,capability,landlock,yama,apparmor); CONFIG_BPF_LSM=y`,
				"cgroup":  "unified: cgroup v2 at /sys/fs/cgroup (v2 controllers: cpuset cpu io memory",
				"xdp":     "ens3 generic (native unknown)",
				"clock":   "clocksource kvm-clock; synchronized (estimated error 120us)",
			},
			fix: map[string]string{"bpf_lsm": "add bpf to the lsm= boot parameter, e.g. lsm=lockdown,capability,landlock,yama,apparmor,bpf"},
			uses: map[string]string{
				"deny open/exec": "fanotify permission events",
				"block network":  "XDP, native on 0 interfaces, generic on 1",
			},
		},
		{
			name:   "debian 12 with lsm=...,bpf",
			files:  debian12("lockdown,capability,landlock,yama,apparmor,bpf"),
			kernel: recorded{xdp: map[int]uint64{1: 0, 2: XDPActBasic | XDPActRedirect}, clock: ClockState{Synchronized: false}},
			canRun: true,
			checks: map[string]Status{"bpf_lsm": OK, "clock": Warn, "xdp": OK},
			found:  map[string]string{"xdp": "ens3 native"},
			fix:    map[string]string{"clock": "NTP"},
			uses: map[string]string{
				"deny open/exec": "BPF LSM (file_open, bprm_check_security)",
				"deny connect":   "BPF LSM (socket_connect)",
				"block network":  "XDP native",
				"kill":           "bpf_send_signal at exec",
			},
		},
		{
			name: "CentOS 7: 3.10, no BTF, cgroup v1",
			files: map[string]string{
				"proc/sys/kernel/osrelease":                 "3.10.0-1160.el7.x86_64\n",
				"proc/self/status":                          rootStatus,
				"proc/self/mounts":                          "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n",
				"boot/config-3.10.0-1160.el7.x86_64":        "CONFIG_BPF_SYSCALL=y\n# CONFIG_DEBUG_INFO_BTF is not set\n",
				"sys/kernel/security/lsm":                   "capability,selinux",
				"sys/kernel/debug/tracing/events/syscalls/": "",
				"sys/class/net/eth0/ifindex":                "2\n",
			},
			kernel: recorded{refused: map[Mechanism]string{BPF: "create array map: function not implemented"}},
			canRun: false,
			checks: map[string]Status{"kernel": Fail, "btf": Fail, "bpf": Fail, "cgroup": Warn, "tracefs": OK, "bpf_lsm": Warn, "xdp": Warn},
			found: map[string]string{
				"kernel": "Linux 3.10.0-1160.el7.x86_64 is older than 5.17",
				"btf":    "CONFIG_DEBUG_INFO_BTF is not set",
				"bpf":    "function not implemented",
				"cgroup": "cgroup v1 only (2 hierarchies)",
			},
			fix:  map[string]string{"cgroup": "systemd.unified_cgroup_hierarchy=1", "btf": "CONFIG_DEBUG_INFO_BTF=y"},
			uses: map[string]string{"detect": "none", "containers": "none", "deny connect": "none"},
		},
		{
			name: "container without CAP_BPF, lockdown=confidentiality",
			files: func() map[string]string {
				m := debian12("lockdown,capability,bpf")
				// docker's default capabilities: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
				m["proc/self/status"] = "Uid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\n"
				m["sys/kernel/security/lockdown"] = "none integrity [confidentiality]\n"
				return m
			}(),
			kernel: recorded{refused: map[Mechanism]string{BPF: "create array map: operation not permitted by this kernel"}},
			canRun: false,
			checks: map[string]Status{"privileges": Fail, "lockdown": Fail, "bpf": Fail, "bpf_lsm": Warn},
			found: map[string]string{
				"privileges": "root, but without CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH",
				"lockdown":   "lockdown=confidentiality",
			},
			fix: map[string]string{"bpf": "CAP_BPF", "lockdown": "lockdown=integrity"},
		},
		{
			name: "not root",
			files: func() map[string]string {
				m := debian12("bpf")
				m["proc/self/status"] = "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n"
				return m
			}(),
			canRun: false,
			checks: map[string]Status{"privileges": Fail},
			found:  map[string]string{"privileges": "running as uid 1000"},
			fix:    map[string]string{"privileges": "sudo"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := machine(t, tt.files)
			o.Kernel = tt.kernel
			r := Run(o)
			var text strings.Builder
			r.WriteText(&text)
			t.Logf("\n%s", text.String())
			if r.CanRun() != tt.canRun {
				t.Errorf("CanRun = %v, want %v", r.CanRun(), tt.canRun)
			}
			for id, st := range tt.checks {
				if c, _ := r.Check(id); c.Status != st {
					t.Errorf("%s: %s (%s), want %s", id, c.Status, c.Found, st)
				}
			}
			for id, s := range tt.found {
				if c, _ := r.Check(id); !strings.Contains(c.Found, s) {
					t.Errorf("%s found %q, want it to contain %q", id, c.Found, s)
				}
			}
			for id, s := range tt.fix {
				if c, _ := r.Check(id); !strings.Contains(c.Fix, s) {
					t.Errorf("%s fix %q, want it to contain %q", id, c.Fix, s)
				}
			}
			for job, m := range tt.uses {
				if got := r.Use(job); got != m {
					t.Errorf("%s: uses %q, want %q", job, got, m)
				}
			}
			verdict := "Vigil can run here"
			if !tt.canRun {
				verdict = "Vigil cannot run here"
			}
			if !strings.Contains(text.String(), verdict) {
				t.Errorf("text lacks %q", verdict)
			}
			b, err := json.Marshal(r)
			if err != nil || !json.Valid(b) || !strings.Contains(string(b), `"status":"`) {
				t.Errorf("json: %v %s", err, b)
			}
		})
	}
}

// TestDisk mounts small tmpfs filesystems, one read-only, one with 1 MiB,
// and checks what the disk check says of state directories on them.
func TestDisk(t *testing.T) {
	testenv.SkipInGuest(t, "needs it mounts tmpfs file systems the guest image lacks tools for")
	testenv.RequirePrivileged(t)
	mount := func(opts string) string {
		dir := t.TempDir()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		return dir
	}
	small, ro := mount("size=1m"), mount("size=2g")
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_RDONLY, "size=2g"); err != nil {
		t.Fatal(err)
	}
	o := machine(t, debian12("bpf"))
	o.Kernel = recorded{}
	for _, tt := range []struct{ dir, want string }{
		{filepath.Join(small, "var/lib/vigil"), "less than 1.0 GiB free"},
		{filepath.Join(ro, "vigil"), "the filesystem is read-only"},
	} {
		o.StateDir = tt.dir
		c, _ := Run(o).Check("disk")
		if c.Status != Warn || !strings.Contains(c.Found, tt.want) || !strings.Contains(c.Found, "(on ") {
			t.Errorf("%s: %+v, want a warning that says %q", tt.dir, c, tt.want)
		}
	}
	o.StateDir = t.TempDir()
	if c, _ := Run(o).Check("disk"); c.Status != OK || strings.Contains(c.Found, "(on ") {
		t.Errorf("%s: %+v", o.StateDir, c)
	}
}
