// Command trigger makes the socket calls the net sensor's kernel tests look
// for, with raw system calls so that each one is exactly the call named (Go's
// net package would use non-blocking connects, accept4 and write). It talks to
// loopback addresses only, and prints what the tests need to know, one
// "key=value ..." line per operation.
//
//	trigger connect [nb:]ADDR:PORT... TCP connects, blocking or (nb:) not
//	trigger serve IP                  bind IP:0, listen, connect to it, accept
//	trigger dns IP                    DNS queries to IP:53 by sendto, sendmsg, sendmmsg, send
//	trigger udpconnect N ADDR:PORT    N connects of one UDP socket
//	trigger sendto N ADDR:PORT        N datagrams to ADDR:PORT, then one DNS query to 127.0.0.1:53
package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DNSName is the name every query asks for.
const DNSName = "vigil-test.example.com"

// Query types.
const (
	typeA    = 1
	typeTXT  = 16
	typeAAAA = 28
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: trigger connect|serve|dns|udpconnect|sendto ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "connect":
		for _, a := range args {
			a, nonblock := strings.CutPrefix(a, "nb:")
			connectTCP(netip.MustParseAddrPort(a), nonblock)
		}
	case "serve":
		serve(netip.MustParseAddr(args[0]))
	case "dns":
		dns(netip.MustParseAddr(args[0]))
	case "udpconnect":
		udpConnect(atoi(args[0]), netip.MustParseAddrPort(args[1]))
	case "sendto":
		sendLoop(atoi(args[0]), netip.MustParseAddrPort(args[1]))
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func connectTCP(ap netip.AddrPort, nonblock bool) {
	typ := unix.SOCK_STREAM
	if nonblock {
		typ |= unix.SOCK_NONBLOCK
	}
	fd := socket(ap.Addr(), typ)
	err := unix.Connect(fd, sockaddr(ap))
	errno := 0
	if err != nil {
		errno = int(err.(unix.Errno))
	}
	fmt.Printf("op=connect dst=%s fd=%d errno=%d sport=%d\n", ap, fd, errno, localPort(fd))
	unix.Close(fd)
}

func serve(ip netip.Addr) {
	lfd := socket(ip, unix.SOCK_STREAM)
	check(unix.Bind(lfd, sockaddr(netip.AddrPortFrom(ip, 0))))
	port := localPort(lfd)
	check(unix.Listen(lfd, 8))
	cfd := socket(ip, unix.SOCK_STREAM)
	check(unix.Connect(cfd, sockaddr(netip.AddrPortFrom(ip, uint16(port)))))
	afd, _, err := unix.Accept4(lfd, 0)
	check(err)
	fmt.Printf("op=serve lfd=%d port=%d cfd=%d cport=%d afd=%d\n", lfd, port, cfd, localPort(cfd), afd)
	// The same through accept(2) itself, which Go's unix package does not call.
	cfd2 := socket(ip, unix.SOCK_STREAM)
	check(unix.Connect(cfd2, sockaddr(netip.AddrPortFrom(ip, uint16(port)))))
	r, _, e := unix.Syscall(unix.SYS_ACCEPT, uintptr(lfd), 0, 0)
	if e != 0 {
		fail("accept: " + e.Error())
	}
	fmt.Printf("op=serve2 cport=%d afd=%d\n", localPort(cfd2), r)
}

// dns sends queries to ip:53 in every way a resolver does. IDs say which.
func dns(ip netip.Addr) {
	dst := netip.AddrPortFrom(ip, 53)
	fd := socket(ip, unix.SOCK_DGRAM)

	// 1: sendto with the address (musl, many stub resolvers)
	check(unix.Sendto(fd, query(1, typeA), 0, sockaddr(dst)))
	// 2: sendmsg with the address
	_, err := unix.SendmsgN(fd, query(2, typeAAAA), nil, sockaddr(dst), 0)
	check(err)
	// 3, 4: sendmmsg, both with the address
	sa := rawSockaddr(dst)
	sendmmsg(fd, sa, query(3, typeA), query(4, typeAAAA))
	fmt.Printf("op=dns fd=%d sport=%d\n", fd, localPort(fd))

	// A connected socket, as glibc uses: no address in the calls. Nothing
	// listens on port 53, so after the first datagram the kernel may answer
	// ECONNREFUSED: the calls are still made, which is what counts here.
	cfd := socket(ip, unix.SOCK_DGRAM)
	check(unix.Connect(cfd, sockaddr(dst)))
	// 5: send(), which is sendto with no address
	_ = unix.Sendto(cfd, query(5, typeA), 0, nil)
	// 6, 7: sendmmsg without addresses (glibc's A and AAAA)
	sendmmsg(cfd, nil, query(6, typeA), query(7, typeAAAA))
	// 8: sendmsg without an address
	_, _ = unix.SendmsgN(cfd, query(8, typeAAAA), nil, nil, 0)
	fmt.Printf("op=dnsconnected fd=%d sport=%d\n", cfd, localPort(cfd))
}

func udpConnect(n int, ap netip.AddrPort) {
	fd := socket(ap.Addr(), unix.SOCK_DGRAM)
	for range n {
		check(unix.Connect(fd, sockaddr(ap)))
	}
	fmt.Printf("op=udpconnect n=%d\n", n)
}

func sendLoop(n int, ap netip.AddrPort) {
	fd := socket(ap.Addr(), unix.SOCK_DGRAM)
	b := query(0, typeA) // a DNS message, to a port that is not 53
	sa := sockaddr(ap)
	for range n {
		_ = unix.Sendto(fd, b, 0, sa)
	}
	// The marker: once it is seen, everything before it has been.
	mfd := socket(netip.MustParseAddr("127.0.0.1"), unix.SOCK_DGRAM)
	check(unix.Sendto(mfd, query(9, typeTXT), 0, sockaddr(netip.MustParseAddrPort("127.0.0.1:53"))))
	fmt.Printf("op=sendto n=%d\n", n)
}

// query is a DNS query for DNSName with recursion desired.
func query(id uint16, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
	for _, l := range strings.Split(DNSName, ".") {
		b = append(append(b, byte(len(l))), l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1)
}

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// sendmmsg sends the messages in one sendmmsg(2), each to sa (nil: none).
func sendmmsg(fd int, sa []byte, msgs ...[]byte) {
	hdrs := make([]mmsghdr, len(msgs))
	iovs := make([]unix.Iovec, len(msgs))
	for i, m := range msgs {
		iovs[i].Base = &m[0]
		iovs[i].SetLen(len(m))
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.SetIovlen(1)
		if sa != nil {
			hdrs[i].hdr.Name = &sa[0]
			hdrs[i].hdr.Namelen = uint32(len(sa))
		}
	}
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
	if e != 0 && e != unix.ECONNREFUSED {
		fail("sendmmsg: " + e.Error())
	}
	fmt.Printf("op=sendmmsg fd=%d sent=%d\n", fd, int(n))
}

// rawSockaddr is the sockaddr_in or sockaddr_in6 of ap, as bytes.
func rawSockaddr(ap netip.AddrPort) []byte {
	if ap.Addr().Is4() {
		b := make([]byte, unix.SizeofSockaddrInet4)
		binary.LittleEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		a := ap.Addr().As4()
		copy(b[4:], a[:])
		return b
	}
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.LittleEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a := ap.Addr().As16()
	copy(b[8:], a[:])
	return b
}

func socket(ip netip.Addr, typ int) int {
	family := unix.AF_INET6
	if ip.Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	check(err)
	return fd
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func localPort(fd int) int {
	sa, err := unix.Getsockname(fd)
	check(err)
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return 0
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	check(err)
	return n
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "trigger:", msg)
	os.Exit(2)
}
