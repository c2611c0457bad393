// Command trigger does what the kernel sensor's tests expect to see, acting
// only on processes it starts itself and, for signals, on the pid it is given
// (the test process) with signal 0, which only checks that it may signal.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	runtime.LockOSThread()
	if len(os.Args) < 2 {
		fail("usage: trigger <scenario> [args]")
	}
	switch os.Args[1] {
	case "clone":
		// os/exec clones with clone(2) unless it needs clone3.
		runNS(unix.CLONE_NEWUTS | unix.CLONE_NEWNS)
	case "clone3":
		// CLONE_NEWTIME makes os/exec use clone3(2).
		runNS(unix.CLONE_NEWTIME | unix.CLONE_NEWUTS)
	case "forks":
		forks(atoi(os.Args[2]))
	case "ptrace":
		ptrace()
	case "pidfd-setns":
		pidfd, err := unix.PidfdOpen(atoi(os.Args[2]), 0)
		must(err)
		must(unix.Setns(pidfd, unix.CLONE_NEWUTS))
	case "signal":
		// Signal 0 by tgkill and by pidfd to the pid given.
		pid := atoi(os.Args[2])
		must(unix.Tgkill(pid, pid, 0))
		pidfd, err := unix.PidfdOpen(pid, 0)
		must(err)
		must(unix.PidfdSendSignal(pidfd, 0, nil, 0))
	case "memfd-exec":
		// fexecve of a memfd holding /bin/true.
		fd, err := unix.MemfdCreate("vigil-test", 0)
		must(err)
		src, err := os.Open("/bin/true")
		must(err)
		_, err = io.Copy(os.NewFile(uintptr(fd), "memfd"), src)
		must(err)
		fmt.Println(fd)
		must(execveat(fd, "", []string{"true"}, os.Environ(), unix.AT_EMPTY_PATH))
	case "execveat-dir":
		// execveat of a name relative to a directory fd.
		dir, err := unix.Open(os.Args[2], unix.O_PATH|unix.O_DIRECTORY, 0)
		must(err)
		fmt.Println(dir)
		must(execveat(dir, "true", []string{"true"}, os.Environ(), 0))
	case "finit":
		// A regular file that is no module: the kernel must refuse it.
		f, err := os.Open(os.Args[2])
		must(err)
		err = unix.FinitModule(int(f.Fd()), "vigil_test=1", 0)
		if err == nil {
			fail("finit_module of a non-module succeeded")
		}
		fmt.Println(f.Fd())
	default:
		fail("unknown scenario " + os.Args[1])
	}
}

// runNS runs /bin/true in new namespaces and prints its pid.
func runNS(flags uintptr) {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	must(cmd.Run())
	fmt.Println(cmd.Process.Pid)
}

// forks makes n processes with a plain clone(SIGCHLD) that exit at once.
func forks(n int) {
	for range n {
		pid, _, errno := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		if errno != 0 {
			fail("clone: " + errno.Error())
		}
		if pid == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != nil {
			fail("wait: " + err.Error())
		}
	}
}

// ptrace attaches to one child, peeks and detaches, and seizes another.
// Prints both pids.
func ptrace() {
	a, b := sleeper(), sleeper()
	defer func() { a.Process.Kill(); b.Process.Kill(); a.Wait(); b.Wait() }()
	must(unix.PtraceAttach(a.Process.Pid))
	var ws unix.WaitStatus
	_, err := unix.Wait4(a.Process.Pid, &ws, unix.WALL, nil)
	must(err)
	buf := make([]byte, 8)
	var regs unix.PtraceRegs
	must(unix.PtraceGetRegs(a.Process.Pid, &regs))
	_, err = unix.PtracePeekData(a.Process.Pid, uintptr(regs.Rsp), buf)
	must(err)
	must(unix.PtraceDetach(a.Process.Pid))
	must(unix.PtraceSeize(b.Process.Pid))
	fmt.Println(a.Process.Pid, b.Process.Pid)
}

func execveat(fd int, path string, argv, env []string, flags int) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	a, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	e, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&e[0])), uintptr(flags), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func sleeper() *exec.Cmd {
	cmd := exec.Command("/bin/sleep", "30")
	must(cmd.Start())
	return cmd
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	must(err)
	return n
}

func must(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "trigger:", msg)
	os.Exit(1)
}
