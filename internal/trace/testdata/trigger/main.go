// Command trigger makes the socket calls the trace tests look for, on
// loopback only, with raw system calls so that each is exactly the call named.
//
//	trigger serve   bind 127.0.0.1:0, listen, connect to it, accept; prints "port=N"
//	trigger dns     one DNS query (A vigil-trace.example.com) by sendto to 127.0.0.1:53
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// DNSName is the name the query asks for.
const DNSName = "vigil-trace.example.com"

func main() {
	if len(os.Args) != 2 {
		fail("usage: trigger serve|dns")
	}
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	switch os.Args[1] {
	case "serve":
		lfd := socket(unix.SOCK_STREAM)
		check(unix.Bind(lfd, lo))
		check(unix.Listen(lfd, 8))
		sa, err := unix.Getsockname(lfd)
		check(err)
		port := sa.(*unix.SockaddrInet4).Port
		cfd := socket(unix.SOCK_STREAM)
		check(unix.Connect(cfd, &unix.SockaddrInet4{Addr: lo.Addr, Port: port}))
		afd, _, err := unix.Accept4(lfd, 0)
		check(err)
		fmt.Printf("port=%d afd=%d\n", port, afd)
	case "dns":
		fd := socket(unix.SOCK_DGRAM)
		check(unix.Sendto(fd, query(0x1234), 0, &unix.SockaddrInet4{Addr: lo.Addr, Port: 53}))
		fmt.Println("sent")
	default:
		fail("unknown mode " + os.Args[1])
	}
}

// query is a DNS query for an A record of DNSName.
func query(id uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
	for _, l := range strings.Split(DNSName, ".") {
		b = append(append(b, byte(len(l))), l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

func socket(typ int) int {
	fd, err := unix.Socket(unix.AF_INET, typ, 0)
	check(err)
	return fd
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "trigger:", msg)
	os.Exit(1)
}
