// Command trigger makes the credential changes the cred sensor's tests
// expect. It uses raw syscalls on one locked thread, so each change is one
// syscall (Go's syscall.Setuid would repeat it on every thread).
package main

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const nobody = 65534

func main() {
	runtime.LockOSThread()
	if len(os.Args) < 2 {
		fail("usage: trigger drop|capset|fs|misc")
	}
	switch os.Args[1] {
	case "drop":
		// Root drops to nobody, then tries to get root back.
		must(sys(unix.SYS_SETGROUPS, 0, 0, 0))
		must(sys(unix.SYS_SETRESGID, nobody, nobody, nobody))
		must(sys(unix.SYS_SETRESUID, nobody, nobody, nobody))
		if err := sys(unix.SYS_SETUID, 0, 0, 0); err != unix.EPERM {
			fail(fmt.Sprintf("setuid(0) as nobody: %v, want EPERM", err))
		}
	case "capset":
		// Keep only CAP_CHOWN and CAP_SETUID (permitted and effective).
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		must(unix.Capget(&hdr, &data[0]))
		keep := uint32(1<<unix.CAP_CHOWN | 1<<unix.CAP_SETUID)
		data[0] = unix.CapUserData{Effective: keep, Permitted: keep}
		data[1] = unix.CapUserData{}
		must(unix.Capset(&hdr, &data[0]))
	case "fs":
		// setfsuid returns the previous id; then a query with -1.
		old, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, 4321, 0, 0)
		if old != 0 {
			fail(fmt.Sprintf("setfsuid(4321) returned %d, want 0", old))
		}
		unix.RawSyscall(unix.SYS_SETFSGID, 8765, 0, 0)
		unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	case "misc":
		// setgroups with groups, setregid with one id left alone (-1),
		// setreuid, setgid and setuid, ending as 2001.
		groups := []uint32{10, 20, 30}
		if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); errno != 0 {
			fail(errno.Error())
		}
		must(sys(unix.SYS_SETREGID, ^uintptr(0), 3000, 0))
		must(sys(unix.SYS_SETGID, 3001, 0, 0))
		must(sys(unix.SYS_SETREUID, 2000, 2000, 0))
		if err := sys(unix.SYS_SETUID, 2001, 0, 0); err != unix.EPERM {
			fail(fmt.Sprintf("setuid(2001) as 2000: %v, want EPERM", err))
		}
	default:
		fail("unknown trigger " + os.Args[1])
	}
}

func sys(nr, a, b, c uintptr) error {
	if _, _, errno := unix.RawSyscall(nr, a, b, c); errno != 0 {
		return errno
	}
	return nil
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
