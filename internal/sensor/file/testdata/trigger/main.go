// Command trigger makes exactly the file syscalls the file sensor's tests
// ask for, with raw system calls so that no library picks a different one.
//
//	trigger <syscall> args...
//
// Paths are passed as written (relative ones start from the working
// directory); "@dir/name" means: open dir and pass its fd as the dirfd with
// name. Numbers are octal for modes and flags, decimal otherwise. It prints
// the syscall's return value, or -errno.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: trigger <syscall> args...")
		os.Exit(2)
	}
	ret, err := run(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "trigger:", err)
		os.Exit(2)
	}
	fmt.Println(ret)
}

func str(s string) uintptr {
	p, err := syscall.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return uintptr(unsafe.Pointer(p))
}

func oct(s string) uintptr {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		panic(err)
	}
	return uintptr(n)
}

func dec(s string) uintptr {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return uintptr(n)
}

// at splits "@dir/name" into an fd open on dir and name; anything else is
// relative to the working directory.
func at(s string) (uintptr, uintptr) {
	if !strings.HasPrefix(s, "@") {
		return cwdFD(), str(s)
	}
	i := strings.LastIndex(s, "/")
	fd, err := unix.Open(s[1:i], unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		panic(err)
	}
	return uintptr(fd), str(s[i+1:])
}

func cwdFD() uintptr {
	fd := unix.AT_FDCWD
	return uintptr(fd)
}

func openFD(p string, flags int) uintptr {
	fd, err := unix.Open(p, flags, 0)
	if err != nil {
		panic(err)
	}
	return uintptr(fd)
}

func run(name string, a []string) (int64, error) {
	var nr, a1, a2, a3, a4, a5 uintptr
	switch name {
	case "open": // path flags [mode]
		nr, a1, a2 = unix.SYS_OPEN, str(a[0]), oct(a[1])
		if len(a) > 2 {
			a3 = oct(a[2])
		}
	case "openat": // path flags [mode]
		nr = unix.SYS_OPENAT
		a1, a2 = at(a[0])
		a3 = oct(a[1])
		if len(a) > 2 {
			a4 = oct(a[2])
		}
	case "creat": // path mode
		nr, a1, a2 = unix.SYS_CREAT, str(a[0]), oct(a[1])
	case "openat2": // path flags mode
		how := unix.OpenHow{Flags: uint64(oct(a[1])), Mode: uint64(oct(a[2]))}
		nr = unix.SYS_OPENAT2
		a1, a2 = at(a[0])
		a3, a4 = uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how)
	case "openloop": // path flags n: n opens and closes, prints the count
		p, flags := str(a[0]), oct(a[1])
		n := int(dec(a[2]))
		for i := 0; i < n; i++ {
			fd, _, e := unix.Syscall6(unix.SYS_OPENAT, cwdFD(), p, flags, 0o644, 0, 0)
			if e != 0 {
				return -int64(e), nil
			}
			unix.Syscall(unix.SYS_CLOSE, fd, 0, 0)
		}
		return int64(n), nil
	case "unlink":
		nr, a1 = unix.SYS_UNLINK, str(a[0])
	case "unlinkat": // path flags
		nr, a3 = unix.SYS_UNLINKAT, dec(a[1])
		a1, a2 = at(a[0])
	case "rmdir":
		nr, a1 = unix.SYS_RMDIR, str(a[0])
	case "mkdir": // path mode
		nr, a1, a2 = unix.SYS_MKDIR, str(a[0]), oct(a[1])
	case "mkdirat": // path mode
		nr, a3 = unix.SYS_MKDIRAT, oct(a[1])
		a1, a2 = at(a[0])
	case "rename":
		nr, a1, a2 = unix.SYS_RENAME, str(a[0]), str(a[1])
	case "renameat2": // old new flags
		nr, a5 = unix.SYS_RENAMEAT2, dec(a[2])
		a1, a2 = at(a[0])
		a3, a4 = at(a[1])
	case "link":
		nr, a1, a2 = unix.SYS_LINK, str(a[0]), str(a[1])
	case "linkat": // old new
		nr = unix.SYS_LINKAT
		a1, a2 = at(a[0])
		a3, a4 = at(a[1])
	case "symlink": // target link
		nr, a1, a2 = unix.SYS_SYMLINK, str(a[0]), str(a[1])
	case "symlinkat": // target link
		nr, a1 = unix.SYS_SYMLINKAT, str(a[0])
		a2, a3 = at(a[1])
	case "chmod": // path mode
		nr, a1, a2 = unix.SYS_CHMOD, str(a[0]), oct(a[1])
	case "fchmod": // path mode
		nr, a1, a2 = unix.SYS_FCHMOD, openFD(a[0], unix.O_RDONLY), oct(a[1])
	case "fchmodat": // path mode
		nr, a3 = unix.SYS_FCHMODAT, oct(a[1])
		a1, a2 = at(a[0])
	case "chown", "lchown": // path uid gid
		nr, a1, a2, a3 = unix.SYS_CHOWN, str(a[0]), dec(a[1]), dec(a[2])
		if name == "lchown" {
			nr = unix.SYS_LCHOWN
		}
	case "fchown": // path uid gid
		nr, a1, a2, a3 = unix.SYS_FCHOWN, openFD(a[0], unix.O_RDONLY), dec(a[1]), dec(a[2])
	case "fchownat": // path uid gid flags
		nr, a3, a4, a5 = unix.SYS_FCHOWNAT, dec(a[1]), dec(a[2]), dec(a[3])
		a1, a2 = at(a[0])
	case "truncate": // path length
		nr, a1, a2 = unix.SYS_TRUNCATE, str(a[0]), dec(a[1])
	case "ftruncate": // path length
		nr, a1, a2 = unix.SYS_FTRUNCATE, openFD(a[0], unix.O_WRONLY), dec(a[1])
	default:
		return 0, fmt.Errorf("unknown syscall %q", name)
	}
	r, _, e := unix.Syscall6(nr, a1, a2, a3, a4, a5, 0)
	if e != 0 {
		return -int64(e), nil
	}
	return int64(r), nil
}
