// Package storm is an event storm: tight loops of the system activity Vigil
// reports, each counting what it did, so that the agent's counters can be
// checked against a count it did not make. bench/storm.sh runs it for a
// minute; internal/daemon's storm test for seconds.
package storm

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"
)

// Counts is what one worker did. Every call is counted, failed or not: the
// sensors report failures too (outcome any).
type Counts struct {
	Kind  string `json:"kind"`
	PID   int    `json:"pid"`
	Ops   uint64 `json:"ops"`   // opens, connects, or execs that ran /bin/true
	Fails uint64 `json:"fails"` // of those, the calls that returned an error
}

// Events is how many events of each kind the worker's calls make: an exec
// is a fork, an exec and an exit; an open is one file event; a connect one
// net event, and the open worker removes its file at the end (one more).
func (c Counts) Events() map[string]uint64 {
	switch c.Kind {
	case "exec":
		return map[string]uint64{"fork": c.Ops, "exec": c.Ops - c.Fails, "exit": c.Ops}
	case "open":
		return map[string]uint64{"file": c.Ops + 1}
	case "connect":
		return map[string]uint64{"net": c.Ops}
	}
	return nil
}

// Run repeats one kind of activity until stop is closed or d has passed:
//
//	open     openat(O_WRONLY|O_CREAT) and close of a file in dir
//	connect  a UDP socket connected to 127.0.0.1:9 and closed (nothing sent)
//	exec     fork, exec /bin/true, wait
func Run(kind, dir string, d time.Duration) (Counts, error) {
	c := Counts{Kind: kind, PID: os.Getpid()}
	end := time.Now().Add(d)
	var step func() error
	switch kind {
	case "open":
		name := filepath.Join(dir, fmt.Sprintf("storm-%d", os.Getpid()))
		path, err := syscall.BytePtrFromString(name)
		if err != nil {
			return c, err
		}
		defer os.Remove(name)
		step = func() error {
			// Raw syscalls: the Go runtime's file machinery would dominate.
			fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(0xffffff9c), uintptr(unsafe.Pointer(path)),
				syscall.O_WRONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o600, 0, 0)
			if errno != 0 {
				return errno
			}
			syscall.Syscall(syscall.SYS_CLOSE, fd, 0, 0)
			return nil
		}
	case "connect":
		addr := &syscall.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}
		step = func() error {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err) // no connect made: fatal below
			}
			err = syscall.Connect(fd, addr)
			syscall.Close(fd)
			return err
		}
	case "exec":
		attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}
		step = func() error {
			pid, err := syscall.ForkExec("/bin/true", []string{"true"}, attr)
			if err != nil {
				return err
			}
			var ws syscall.WaitStatus
			_, err = syscall.Wait4(pid, &ws, 0, nil)
			return err
		}
	default:
		return c, fmt.Errorf("unknown storm kind %q", kind)
	}
	for {
		for i := 0; i < 256; i++ {
			c.Ops++
			if err := step(); err != nil {
				if kind != "open" {
					// A failed socket or fork made none of the events counted.
					return c, err
				}
				c.Fails++
			}
		}
		if time.Now().After(end) {
			return c, nil
		}
	}
}
