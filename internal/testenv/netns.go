package testenv

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// Netns is a network namespace joined to the test's own by a veth pair. The
// namespace, both interfaces and the /30 between them belong to the test,
// and are removed when it ends.
type Netns struct {
	Name   string     // the namespace, for ip netns exec
	HostIf string     // the veth end on the test's side
	PeerIf string     // the end inside the namespace
	HostIP netip.Addr // HostIf's address; with PeerIP, a /30
	PeerIP netip.Addr // PeerIf's address
}

// NewNetns makes a Netns, its interfaces named prefix (three letters, one
// prefix per package) and six random hex digits, the peer's with a "p" after
// them, and its /30 a random one in 10.subnet.0.0/16, so that packages that
// run at once don't collide. Both ends and the namespace's lo are up; the
// link may still take a moment to pass packets.
func NewNetns(t testing.TB, subnet byte, prefix string) *Netns {
	t.Helper()
	r := make([]byte, 5)
	rand.Read(r)
	id := fmt.Sprintf("%x", r[:3])
	base := netip.AddrFrom4([4]byte{10, subnet, r[3], r[4] &^ 3})
	n := &Netns{Name: "vigil-test-" + id, HostIf: prefix + id, PeerIf: prefix + id + "p"}
	n.HostIP = base.Next()
	n.PeerIP = n.HostIP.Next()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", n.Name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.HostIf).Run()
		exec.Command("ip", "netns", "del", n.Name).Run()
	})
	run("link", "add", n.HostIf, "type", "veth", "peer", "name", n.PeerIf)
	run("link", "set", n.PeerIf, "netns", n.Name)
	run("addr", "add", n.HostIP.String()+"/30", "dev", n.HostIf)
	run("link", "set", n.HostIf, "up")
	run("-n", n.Name, "addr", "add", n.PeerIP.String()+"/30", "dev", n.PeerIf)
	run("-n", n.Name, "link", "set", n.PeerIf, "up")
	run("-n", n.Name, "link", "set", "lo", "up")
	return n
}

// TCPServer listens on addr (host:0 for a free port), reads what each
// connection sends and closes it, until the test ends; it returns the
// address it listens on.
func TCPServer(t testing.TB, addr string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}
