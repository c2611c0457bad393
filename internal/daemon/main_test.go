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
	empty, _ := unix.BytePtrFromString("")
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return errno
}
