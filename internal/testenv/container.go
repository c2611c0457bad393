package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Busybox is the static busybox a test container's root filesystem is made
// of (Debian's busybox-static package).
const Busybox = "/bin/busybox"

// ContainerSpec is a container for runc to run: a busybox root filesystem
// and the cgroup path a container runtime would have given it.
type ContainerSpec struct {
	// ID is the container id; empty for a random 64-hex id, as docker,
	// containerd and CRI-O make.
	ID string
	// CgroupsPath is the cgroup path runc creates in every hierarchy (the
	// cgroupfs driver): /system.slice/docker-<id>.scope, say. "%s" in it
	// is replaced by the id.
	CgroupsPath string
	// Args is the container's command line.
	Args []string
	// Annotations are written into the bundle's config.json, as runtimes do.
	Annotations map[string]string
	// StateRoot prefixes RuncRoot and BundleDir: the test's stand-in for
	// "/" (empty: a fresh temporary directory).
	StateRoot string
	// RuncRoot is runc's --root, relative to StateRoot (run/runc when
	// empty); BundleDir is the bundle, relative to StateRoot ("%s" for the
	// id; bundle/<id> when empty).
	RuncRoot  string
	BundleDir string
	// Privileged gives the container every capability, as --privileged.
	Privileged bool
}

// Container is a running runc container made by RunContainer.
type Container struct {
	ID         string
	StateRoot  string
	RuncRoot   string // absolute
	Bundle     string // absolute
	CgroupPath string // relative to each hierarchy's root
	CgroupID   uint64 // its cgroup v2 id
	PID        int    // the container's init, in the host's PID namespace
}

// RandomID is a 64-hex container id.
func RandomID(t testing.TB) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// RunContainer starts a runc container (runc run -d) with a busybox root
// filesystem, in the cgroups spec names; it is killed and deleted, and the
// cgroup directories runc made for it are removed, when the test ends.
func RunContainer(t testing.TB, spec ContainerSpec) *Container {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		SkipInGuest(t, "runc and a busybox root filesystem are not in the guest image")
		t.Fatalf("runc is needed for container tests (apt-get install runc): %v", err)
	}
	if _, err := os.Stat(Busybox); err != nil {
		SkipInGuest(t, "runc and a busybox root filesystem are not in the guest image")
		t.Fatalf("a static busybox is needed for container tests (apt-get install busybox-static): %v", err)
	}
	if spec.ID == "" {
		spec.ID = RandomID(t)
	}
	if spec.StateRoot == "" {
		spec.StateRoot = t.TempDir()
	}
	if spec.RuncRoot == "" {
		spec.RuncRoot = "run/runc"
	}
	if spec.BundleDir == "" {
		spec.BundleDir = "bundle/%s"
	}
	c := &Container{
		ID:         spec.ID,
		StateRoot:  spec.StateRoot,
		RuncRoot:   filepath.Join(spec.StateRoot, spec.RuncRoot),
		Bundle:     filepath.Join(spec.StateRoot, strings.ReplaceAll(spec.BundleDir, "%s", spec.ID)),
		CgroupPath: strings.ReplaceAll(spec.CgroupsPath, "%s", spec.ID),
	}
	if err := makeBundle(c, spec); err != nil {
		t.Fatalf("container bundle: %v", err)
	}
	made := missingCgroupDirs(c.CgroupPath)
	t.Cleanup(func() {
		exec.Command(runc, "--root", c.RuncRoot, "kill", c.ID, "KILL").Run()
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, err := exec.Command(runc, "--root", c.RuncRoot, "delete", "-f", c.ID).CombinedOutput()
			if err == nil || strings.Contains(string(out), "does not exist") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The parents runc created for this path, deepest first, when empty.
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	})
	log, err := os.Create(filepath.Join(c.Bundle, "runc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(runc, "--root", c.RuncRoot, "run", "-d", "--bundle", c.Bundle, c.ID)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("runc run %s: %v: %s", c.ID, err, b)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	out, err := exec.Command(runc, "--root", c.RuncRoot, "state", c.ID).Output()
	if err != nil || json.Unmarshal(out, &st) != nil {
		t.Fatalf("runc state %s: %v", c.ID, err)
	}
	c.PID = st.Pid
	var fi syscall.Stat_t
	if err := syscall.Stat(filepath.Join(CgroupV2Root(), c.CgroupPath), &fi); err != nil {
		t.Fatalf("container cgroup: %v", err)
	}
	c.CgroupID = fi.Ino
	return c
}

// Exec runs a command in the container (runc exec) and returns its output;
// a non-zero exit is not an error here.
func (c *Container) Exec(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("runc", append([]string{"--root", c.RuncRoot, "exec", c.ID}, args...)...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("runc exec %v: %v", args, err)
	}
	return string(out)
}

// Kill sends SIGKILL to the container's processes.
func (c *Container) Kill() error {
	return exec.Command("runc", "--root", c.RuncRoot, "kill", "--all", c.ID, "KILL").Run()
}

// makeBundle writes the root filesystem and config.json.
func makeBundle(c *Container, spec ContainerSpec) error {
	rootfs := filepath.Join(c.Bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "run"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(Busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			os.Symlink("busybox", filepath.Join(rootfs, "bin", applet))
		}
	}
	os.WriteFile(filepath.Join(rootfs, "etc", "hostname"), []byte("vigil-test\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)

	if out, err := exec.Command("runc", "spec", "--bundle", c.Bundle).CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %v: %s", err, out)
	}
	path := filepath.Join(c.Bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = spec.Args
	proc["env"] = []string{"PATH=/bin", "HOME=/"}
	if spec.Privileged {
		caps := allCaps()
		proc["capabilities"] = map[string]any{"bounding": caps, "effective": caps, "permitted": caps}
	}
	cfg["root"] = map[string]any{"path": "rootfs", "readonly": false}
	cfg["hostname"] = "vigil-test"
	linux := cfg["linux"].(map[string]any)
	linux["cgroupsPath"] = c.CgroupPath
	if len(spec.Annotations) > 0 {
		cfg["annotations"] = spec.Annotations
	}
	b, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func allCaps() []string {
	var caps []string
	for _, n := range []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
		"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
		"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
		"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
		"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ"} {
		caps = append(caps, "CAP_"+n)
	}
	return caps
}

// missingCgroupDirs lists the directories of path, in every cgroup
// hierarchy of this host, that do not exist yet: runc will make them, and
// the test removes them.
func missingCgroupDirs(path string) []string {
	var roots []string
	roots = append(roots, CgroupV2Root())
	if ents, err := os.ReadDir("/sys/fs/cgroup"); err == nil && CgroupV2Root() != "/sys/fs/cgroup" {
		for _, e := range ents {
			if e.IsDir() && e.Name() != "unified" {
				roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
			}
		}
	}
	var made []string
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, root := range roots {
		for i := range segs {
			d := filepath.Join(root, filepath.Join(segs[:i+1]...))
			if _, err := os.Stat(d); os.IsNotExist(err) {
				made = append(made, d)
			}
		}
	}
	return made
}

// PIDs lists the processes in the container's v2 cgroup.
func (c *Container) PIDs() []int {
	b, _ := os.ReadFile(filepath.Join(CgroupV2Root(), c.CgroupPath, "cgroup.procs"))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}
