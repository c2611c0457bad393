package daemon

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary double as a trigger program: with
// VIGIL_TRIGGER set it does that one thing instead of running tests.
func TestMain(m *testing.M) {
	if t := os.Getenv("VIGIL_TRIGGER"); t != "" {
		if err := trigger(t); err != nil {
			fmt.Fprintln(os.Stderr, "trigger:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := m.Run()
	stopSharedAgent()
	os.Exit(code)
}

func trigger(name string) error {
	switch name {
	case "memfd-exec":
		// Fileless execution: copy a program into a memfd and run it from
		// there, as droppers do.
		fd, err := unix.MemfdCreate("vigil-test", unix.MFD_CLOEXEC)
		if err != nil {
			return err
		}
		prog, err := os.ReadFile("/usr/bin/true")
		if err != nil {
			return err
		}
		if _, err := unix.Write(fd, prog); err != nil {
			return err
		}
		return execveat(fd, []string{"true", "from-memfd"})
	case "execveat-dirfd":
		// execveat(dirfd, NAME, ...): the program named relative to a
		// directory descriptor (close-on-exec, as Python's os.open makes
		// it), which the kernel calls /dev/fd/N/NAME.
		dir, name := os.Getenv("VIGIL_TRIGGER_DIR"), os.Getenv("VIGIL_TRIGGER_NAME")
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return execveatName(fd, name, []string{name})
	case "nonleader-exec":
		return nonLeaderExec()
	case "storm-open", "storm-connect", "storm-exec":
		return stormTrigger(name)
	case "exec-rules-noop", "exec-rules-listen", "exec-rules-ptrace", "exec-rules-bpf-load",
		"exec-rules-setresuid-root", "exec-rules-seteuid-roundtrip", "exec-rules-finit":
		// The built-in rules' live tests: rules_live_exec_test.go.
		return execRulesTrigger(name)
	}
	return fmt.Errorf("unknown trigger %q", name)
}

// execveat(fd, "", argv, envp, AT_EMPTY_PATH): x/sys/unix has no wrapper.
func execveat(fd int, argv []string) error {
	return execveatAt(fd, "", argv, unix.AT_EMPTY_PATH)
}

// execveatName is execveat(dirfd, name, argv, envp, 0).
func execveatName(dirfd int, name string, argv []string) error {
	return execveatAt(dirfd, name, argv, 0)
}

func execveatAt(fd int, name string, argv []string, flags int) error {
	namep, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(namep)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), uintptr(flags), 0)
	return errno
}
