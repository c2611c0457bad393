package main

import (
	"net"
	"syscall"
)

type listener struct {
	addr syscall.SockaddrInet4
}

// listen accepts and closes connections on a loopback port in the background.
func listen() (*listener, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	a := l.Addr().(*net.TCPAddr)
	return &listener{addr: syscall.SockaddrInet4{Port: a.Port, Addr: [4]byte{127, 0, 0, 1}}}, nil
}

// connectLoop connects and closes n times with raw syscalls.
func connectLoop(n int, l *listener) error {
	for i := 0; i < n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		// SO_LINGER 0: close with a reset, so no TIME_WAIT sockets pile up.
		syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		if err := syscall.Connect(fd, &l.addr); err != nil {
			syscall.Close(fd)
			return err
		}
		syscall.Close(fd)
	}
	return nil
}

// udpConnectLoop connects a UDP socket to a loopback port and closes it, n
// times: connect(2) runs the cgroup connect hook and a route lookup, and
// sends nothing, so the hook's cost is not lost in TCP's handshake.
func udpConnectLoop(n int) error {
	addr := &syscall.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}
	for i := 0; i < n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := syscall.Connect(fd, addr); err != nil {
			syscall.Close(fd)
			return err
		}
		syscall.Close(fd)
	}
	return nil
}
