// Command loop is the benchmark workload: it repeats one system activity N
// times and prints how long that took.
//
//	loop open N [PATH]   open and close a file (/etc/hostname) N times
//	loop exec N          fork and exec /bin/true N times, waiting for each
//	loop connect N       TCP connect to a loopback listener of its own and close, N times
//	loop udp-connect N   connect a UDP socket to 127.0.0.1:9 and close, N times (nothing is sent)
//	loop write N DIR     write N files of 64 KiB (16 writes each) in DIR (write.go)
//	loop devnull N       write 64 bytes to /dev/null N times
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fmt.Fprintln(os.Stderr, "usage: loop open|exec|connect|udp-connect|write|devnull N [PATH]")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "loop: N must be a positive number")
		os.Exit(2)
	}
	path := "/etc/hostname"
	if len(os.Args) == 4 {
		path = os.Args[3]
	}
	var ln *listener
	if os.Args[1] == "connect" {
		if ln, err = listen(); err != nil {
			fmt.Fprintln(os.Stderr, "loop:", err)
			os.Exit(1)
		}
	}
	start := time.Now()
	switch os.Args[1] {
	case "open":
		err = openLoop(n, path)
	case "connect":
		err = connectLoop(n, ln)
	case "udp-connect":
		err = udpConnectLoop(n)
	case "exec":
		err = execLoop(n)
	case "write":
		err = writeLoop(n, path)
	case "devnull":
		err = devnullLoop(n)
	default:
		err = fmt.Errorf("unknown workload %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loop:", err)
		os.Exit(1)
	}
	fmt.Printf("%.6f\n", time.Since(start).Seconds())
}

func openLoop(n int, name string) error {
	path, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		// Raw syscalls: the Go runtime's file machinery would dominate.
		fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(0xffffff9c), uintptr(unsafe.Pointer(path)), syscall.O_RDONLY, 0, 0, 0)
		if errno != 0 {
			return errno
		}
		syscall.Syscall(syscall.SYS_CLOSE, fd, 0, 0)
	}
	return nil
}

func execLoop(n int) error {
	attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, attr)
		if err != nil {
			return err
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return err
		}
	}
	return nil
}
