// Command init is PID 1 of the guest that test/kernels/run.sh boots under
// qemu: it sets up the minimal system the kernel tests need, runs each
// package's test binary, prints one result line per package on the serial
// console and powers the machine off.
//
// The same binary doubles as the guest's `go` (run.sh links /usr/local/bin/go
// to it): the kernel tests build their trigger programs with
// `go build -o OUT ./testdata/<name>`, and the guest has no toolchain, so that
// command copies the trigger run.sh built on the host (static, CGO_ENABLED=0)
// next to its sources, as testdata/<name>/prebuilt, to OUT.
//
// What it reads, all written by run.sh:
//
//	/kt/manifest   one package a line: <import path> TAB <test binary> TAB <working dir>
//	/proc/cmdline  vigil.run=REGEX (-test.run), vigil.pkgs=a,b (a subset, by
//	               import path suffix), vigil.timeout=DURATION (-test.timeout),
//	               vigil.expect=a,b (kernel features the tests must find:
//	               VIGIL_KT_EXPECT, read by internal/kernelcap's tests)
//
// Every line it prints itself starts with "VIGIL-KT"; the host script reads
// the RESULT and DONE lines.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const tag = "VIGIL-KT"

// console is where everything goes: the serial console, once /dev is mounted.
var console io.Writer = os.Stdout

func main() {
	if filepath.Base(os.Args[0]) == "go" || os.Getpid() != 1 {
		os.Exit(goShim(os.Args[1:]))
	}
	defer func() {
		if r := recover(); r != nil {
			say("init panicked: %v", r)
		}
		powerOff()
	}()
	setup()
	runAll()
}

func say(format string, args ...any) {
	fmt.Fprintf(console, tag+" "+format+"\n", args...)
}

// ---- the guest's `go` ----

// goShim handles `go build -o OUT PKG`, the only go command the tests run, by
// copying PKG/prebuilt (relative to the working directory) to OUT.
func goShim(args []string) int {
	usage := func() int {
		fmt.Fprintf(os.Stderr, "go (kernel-test guest, VIGIL_GUEST=1): no Go toolchain here; only `go build -o OUT DIR` of what test/kernels/run.sh prebuilt works, got %q\n", args)
		return 2
	}
	if len(args) < 1 || args[0] != "build" {
		return usage()
	}
	var out, pkg string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" && i+1 < len(args):
			out = args[i+1]
			i++
		case strings.HasPrefix(a, "-o="):
			out = strings.TrimPrefix(a, "-o=")
		case strings.HasPrefix(a, "-"):
			// flags that do not change what is built are ignored
		default:
			if pkg != "" {
				return usage()
			}
			pkg = a
		}
	}
	if out == "" || pkg == "" {
		return usage()
	}
	src := filepath.Join(pkg, "prebuilt")
	b, err := os.ReadFile(src)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go (kernel-test guest, VIGIL_GUEST=1): no Go toolchain here, and no prebuilt program for %s: %v (run.sh prebuilds the package under test and its testdata/<prog> when they are main packages)\n", pkg, err)
		return 1
	}
	if err := os.WriteFile(out, b, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "go (guest):", err)
		return 1
	}
	return 0
}

// ---- system setup ----

func setup() {
	// /dev first: until then there may be no console to print on.
	mount("devtmpfs", "/dev", "devtmpfs", 0, "mode=0755")
	if f, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			unix.Dup2(int(f.Fd()), fd)
		}
		console = f
	}
	mount("proc", "/proc", "proc", 0, "")
	mount("sysfs", "/sys", "sysfs", 0, "")
	mount("devpts", "/dev/pts", "devpts", 0, "")
	mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777")
	mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777")
	mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
	mount("bpf", "/sys/fs/bpf", "bpf", 0, "")
	mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "")
	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, "")
	mount("securityfs", "/sys/kernel/security", "securityfs", 0, "")
	// cgroup v2 only, at /sys/fs/cgroup: internal/testenv.CgroupV2Root picks
	// it because /sys/fs/cgroup/unified does not exist here.
	mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, "nsdelegate")
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		os.Symlink(l[0], l[1])
	}

	const hostname = "vigil-guest"
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		say("sethostname: %v", err)
	}
	loopbackUp()
}

func mount(src, target, fstype string, flags uintptr, data string) {
	os.MkdirAll(target, 0o755)
	if err := unix.Mount(src, target, fstype, flags, data); err != nil && err != unix.EBUSY {
		say("mount %s on %s: %v", fstype, target, err)
	}
}

// loopbackUp brings lo up: the net tests listen and connect on 127.0.0.1
// and ::1, which the kernel adds to lo when it goes up.
func loopbackUp() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		say("loopback: %v", err)
		return
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr)
	}
	if err == nil {
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
		err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	}
	if err != nil {
		say("loopback up: %v", err)
	}
}

// ---- running the tests ----

type pkg struct {
	name, bin, dir string
}

type result struct {
	pkg                     pkg
	exit                    int
	took                    time.Duration
	passed, failed, skipped []string
}

func (r *result) ok() bool { return r.exit == 0 && len(r.failed) == 0 }

func runAll() {
	params := cmdline()
	var uts unix.Utsname
	unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	say("BOOTED kernel=%s", release)

	pkgs, err := manifest("/kt/manifest")
	if err != nil {
		say("manifest: %v", err)
		return
	}
	if sel := params["vigil.pkgs"]; sel != "" {
		var keep []pkg
		for _, p := range pkgs {
			for _, s := range strings.Split(sel, ",") {
				if s != "" && (p.name == s || strings.HasSuffix(p.name, "/"+s)) {
					keep = append(keep, p)
					break
				}
			}
		}
		pkgs = keep
	}
	timeout := params["vigil.timeout"]
	if timeout == "" {
		timeout = "15m"
	}
	hardLimit, err := time.ParseDuration(timeout)
	if err != nil {
		say("vigil.timeout=%s: %v", timeout, err)
		hardLimit = 15 * time.Minute
	}
	args := []string{"-test.v", "-test.count=1", "-test.timeout=" + timeout}
	if run := params["vigil.run"]; run != "" {
		args = append(args, "-test.run="+run)
	}
	env := []string{
		"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin",
		"HOME=/root",
		"USER=root",
		"LOGNAME=root",
		// As a login or sudo sets it. Without SHELL, bash looks the user up
		// (getpwuid), and glibc first tries nscd: an AF_UNIX connect that
		// tests counting connects would see.
		"SHELL=/bin/bash",
		"TERM=dumb",
		"VIGIL_REQUIRE_PRIVILEGED=1",
		// Tells a test it runs in this minimal qemu guest (testenv.InGuest).
		"VIGIL_GUEST=1",
		// What this kernel is known to offer (kernelcap feature names):
		// a test that finds one missing fails rather than skips.
		"VIGIL_KT_EXPECT=" + params["vigil.expect"],
	}

	say("PACKAGES %d", len(pkgs))
	var results []*result
	for _, p := range pkgs {
		say("START %s", p.name)
		r := runOne(p, args, env, hardLimit+time.Minute)
		results = append(results, r)
		status := "PASS"
		if !r.ok() {
			status = "FAIL"
		}
		say("END %s %s (%.1fs)", status, p.name, r.took.Seconds())
	}

	dumpKernelLog()

	nfail := 0
	say("==== summary: kernel %s ====", release)
	for _, r := range results {
		status := "PASS"
		if !r.ok() {
			status = "FAIL"
			nfail++
		}
		say("RESULT %s %-24s %7.1fs exit=%d tests=%d passed=%d failed=%d skipped=%d",
			status, r.pkg.name, r.took.Seconds(), r.exit,
			len(r.passed)+len(r.failed)+len(r.skipped), len(r.passed), len(r.failed), len(r.skipped))
		if len(r.failed) > 0 {
			say("  failed:  %s", strings.Join(r.failed, " "))
		}
		if len(r.skipped) > 0 {
			say("  skipped: %s", strings.Join(r.skipped, " "))
		}
	}
	say("DONE kernel=%s packages=%d pass=%d fail=%d", release, len(results), len(results)-nfail, nfail)
}

func cmdline() map[string]string {
	out := map[string]string{}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

func manifest(path string) ([]pkg, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []pkg
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("bad manifest line %q", l)
		}
		out = append(out, pkg{f[0], f[1], f[2]})
	}
	return out, nil
}

var testLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// runOne runs one test binary with its output on the console, reaping every
// process that ends meanwhile (this is PID 1: orphans come here), and kills
// whatever the package left running once it is done.
func runOne(p pkg, args, env []string, limit time.Duration) *result {
	r := &result{pkg: p, exit: -1}
	start := time.Now()
	defer func() { r.took = time.Since(start) }()

	// Run it from where go test would: /tmp/go-build<N>/b001/<name>.test.
	bin, cleanup, err := goBuildCopy(p.bin)
	if err != nil {
		say("copy %s: %v", p.bin, err)
		return r
	}
	defer cleanup()

	pr, pw, err := os.Pipe()
	if err != nil {
		say("pipe: %v", err)
		return r
	}
	devnull, _ := os.Open("/dev/null")
	proc, err := os.StartProcess(bin, append([]string{bin}, args...), &os.ProcAttr{
		Dir: p.dir, Env: env, Files: []*os.File{devnull, pw, pw},
	})
	pw.Close()
	devnull.Close()
	if err != nil {
		pr.Close()
		say("start %s: %v", bin, err)
		return r
	}

	var mu sync.Mutex
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		br := bufio.NewReaderSize(pr, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				console.Write([]byte(line))
				if m := testLine.FindStringSubmatch(line); m != nil {
					mu.Lock()
					switch m[1] {
					case "PASS":
						r.passed = append(r.passed, m[2])
					case "FAIL":
						r.failed = append(r.failed, m[2])
					case "SKIP":
						r.skipped = append(r.skipped, m[2])
					}
					mu.Unlock()
				}
			}
			if err != nil {
				return
			}
		}
	}()

	// -test.timeout makes a hung test panic with every goroutine's stack;
	// this is the backstop if even that does not end the binary.
	killer := time.AfterFunc(limit, func() {
		say("%s still running after %v: killing it", p.name, limit)
		unix.Kill(proc.Pid, unix.SIGKILL)
	})
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			say("wait: %v", err)
			break
		}
		if pid == proc.Pid {
			switch {
			case ws.Exited():
				r.exit = ws.ExitStatus()
			case ws.Signaled():
				r.exit = 128 + int(ws.Signal())
			}
			break
		}
	}
	killer.Stop()
	killStragglers()
	select {
	case <-readerDone:
	case <-time.After(5 * time.Second):
		say("output of %s still open 5s after it exited", p.name)
	}
	pr.Close()
	<-readerDone
	mu.Lock()
	defer mu.Unlock()
	return r
}

// goBuildCopy copies a test binary into a fresh go-build directory under /tmp.
func goBuildCopy(src string) (string, func(), error) {
	dir, err := os.MkdirTemp("/tmp", "go-build")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.MkdirAll(filepath.Join(dir, "b001"), 0o755)
	}
	dst := filepath.Join(dir, "b001", filepath.Base(src))
	if err == nil {
		err = os.WriteFile(dst, b, 0o755)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return dst, cleanup, nil
}

// killStragglers kills every user process but this one and reaps them, so
// that nothing a package left behind runs into the next one.
func killStragglers() {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name; flags is the 9th field.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 7 {
			continue
		}
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		const pfKthread = 0x00200000
		if flags&pfKthread != 0 {
			continue
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			n++
		}
	}
	if n > 0 {
		say("killed %d process(es) left behind", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			return
		}
		if pid <= 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// dumpKernelLog prints the kernel's warnings and errors of the whole run:
// with `quiet` they reach the console only at level err and above.
func dumpKernelLog() {
	size, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || size <= 0 {
		return
	}
	buf := make([]byte, size)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return
	}
	var lines []string
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		if len(l) > 3 && l[0] == '<' && l[2] == '>' && l[1] >= '0' && l[1] <= '4' {
			lines = append(lines, l)
		}
	}
	say("---- kernel log, warnings and worse: %d lines ----", len(lines))
	for _, l := range lines {
		fmt.Fprintln(console, l)
	}
	say("---- end of kernel log ----")
}

func powerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Not reached unless power off failed; with qemu -no-reboot a reboot
	// ends qemu too, and returning from init would panic the kernel (panic=-1).
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
