package netguard

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// The test binary doubles as the trigger: with VIGIL_NETGUARD_HELPER set it
// connects or binds as asked and prints the outcome, so that the socket
// operation happens in a process the test put in its cgroup or netns.
func TestMain(m *testing.M) {
	if op := os.Getenv("VIGIL_NETGUARD_HELPER"); op != "" {
		os.Exit(helper(op, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// extraHelper does the operations of netdef_test.go.
var extraHelper func(op, addr string) error

func helper(op, addr string) int {
	var err error
	switch op {
	case "dial":
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 700*time.Millisecond)
		if err == nil {
			c.Close()
		}
	case "bind":
		var l net.Listener
		l, err = net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		}
	default:
		if extraHelper != nil {
			err = extraHelper(op, addr)
		}
	}
	switch {
	case err == nil:
		fmt.Print("ok")
	case errors.Is(err, syscall.EPERM):
		fmt.Print("EPERM")
	case errors.Is(err, syscall.ECONNREFUSED):
		fmt.Print("refused")
	case os.IsTimeout(err):
		fmt.Print("timeout")
	default:
		fmt.Print(err)
	}
	return 0
}

// helperCmd runs the helper, wrapped by prefix (ip netns exec ...) if any.
func helperOut(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v: %s", cmd.Args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func helperEnv(op string) []string { return append(os.Environ(), "VIGIL_NETGUARD_HELPER="+op) }

func inCgroup(cg *testenv.Cgroup, op, addr string) *exec.Cmd {
	cmd := cg.Command(os.Args[0], addr)
	cmd.Env = helperEnv(op)
	return cmd
}

func pinDir(t *testing.T) string {
	dir := filepath.Join("/sys/fs/bpf", "vigil-test-"+randHex(4))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func listen(t *testing.T, addr string) string {
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
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestDenyConnectAndBind(t *testing.T) {
	testenv.RequirePrivileged(t)
	cg := testenv.NewCgroup(t)
	g, err := Open(Config{PinDir: pinDir(t), Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()

	denied := listen(t, "127.0.0.1:0")
	other := listen(t, "127.0.0.1:0")
	ap := netip.MustParseAddrPort(denied)
	if got := helperOut(t, inCgroup(cg, "dial", denied)); got != "ok" {
		t.Fatalf("before the deny: connect %s", got)
	}
	freePort := func() uint16 {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return netip.MustParseAddrPort(l.Addr().String()).Port()
	}()
	err = g.SetDenies([]Deny{
		{Addr: ap.Addr(), Port: ap.Port()},
		{Bind: true, Port: freePort},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := helperOut(t, inCgroup(cg, "dial", denied)); got != "EPERM" {
		t.Errorf("connect from the test cgroup to the denied %s: %s, want EPERM", denied, got)
	}
	if got := helperOut(t, inCgroup(cg, "dial", other)); got != "ok" {
		t.Errorf("connect from the test cgroup to %s (not denied): %s, want ok", other, got)
	}
	bindAddr := fmt.Sprintf("127.0.0.1:%d", freePort)
	if got := helperOut(t, inCgroup(cg, "bind", bindAddr)); got != "EPERM" {
		t.Errorf("bind in the test cgroup to the denied port %s: %s, want EPERM", bindAddr, got)
	}
	// Outside the cgroup nothing is refused: the hooks are the test's own.
	if c, err := net.Dial("tcp", denied); err != nil {
		t.Errorf("connect from outside the test cgroup: %v", err)
	} else {
		c.Close()
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DeniedConnects < 1 || st.DeniedBinds < 1 {
		t.Errorf("stats %+v: want a denied connect and bind counted", st)
	}
	if err := g.SetDenies(nil); err != nil {
		t.Fatal(err)
	}
	if got := helperOut(t, inCgroup(cg, "dial", denied)); got != "ok" {
		t.Errorf("after the deny is lifted: connect %s", got)
	}
}

// netns is a network namespace joined to the host by a veth pair, both ends
// the test's own, with addresses in a /30 of 10.231.0.0/16.
type netns struct{ *testenv.Netns }

// newNetns makes a namespace joined to the host by a veth pair, both ends
// the test's own, addresses in 10.231.0.0/16.
func newNetns(t *testing.T) *netns {
	t.Helper()
	testenv.RequireKernel(t, 6, 6, "tcx links, which the XDP/tcx programs attach with")
	return &netns{testenv.NewNetns(t, 231, "vgt")}
}

// fromPeer runs the helper inside the namespace.
func (n *netns) fromPeer(t *testing.T, op, addr string) string {
	cmd := exec.Command("ip", "netns", "exec", n.Name, os.Args[0], addr)
	cmd.Env = helperEnv(op)
	return helperOut(t, cmd)
}

// fromHost runs the helper on the host side.
func (n *netns) fromHost(t *testing.T, op, addr string) string {
	cmd := exec.Command(os.Args[0], addr)
	cmd.Env = helperEnv(op)
	return helperOut(t, cmd)
}

// waitFor retries f until it returns want or the deadline passes; it
// returns the last result. The veth link takes a moment to come up.
func waitFor(want string, d time.Duration, f func() string) string {
	deadline := time.Now().Add(d)
	for {
		got := f()
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBlockWithExpiry(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	g, err := Open(Config{PinDir: pinDir(t), Interfaces: []string{n.HostIf}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	srv := listen(t, n.HostIP.String()+":0")
	// Nothing listens on the peer's port 9: an unblocked connect is refused.
	peerClosed := netip.AddrPortFrom(n.PeerIP, 9).String()

	if got := waitFor("ok", 5*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Fatalf("before the block: connect from the namespace: %s", got)
	}
	if got := n.fromHost(t, "dial", peerClosed); got != "refused" {
		t.Fatalf("before the block: connect to the namespace: %s, want refused", got)
	}
	peer := netip.PrefixFrom(n.PeerIP, 32)
	if err := g.Block(peer, time.Now().Add(3*time.Second), SourceManual); err != nil {
		t.Fatal(err)
	}
	list, err := g.List()
	if err != nil || len(list) != 1 || list[0].Prefix != peer || list[0].Until.IsZero() || list[0].Source != SourceManual {
		t.Fatalf("List = %+v, %v; want the block of %v with its expiry", list, err, peer)
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("blocked: connect from the namespace: %s, want timeout (dropped by XDP)", got)
	}
	if got := n.fromHost(t, "dial", peerClosed); got != "timeout" {
		t.Errorf("blocked: connect to the namespace: %s, want timeout (dropped by tcx)", got)
	}
	st, _ := g.Stats()
	if st.BlockedIn == 0 || st.BlockedOut == 0 {
		t.Errorf("stats %+v: want drops on ingress and egress", st)
	}
	// The block expires by itself.
	if got := waitFor("ok", 10*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Errorf("after the expiry: connect from the namespace: %s", got)
	}
	gone, err := g.Expire()
	if err != nil || len(gone) != 1 || gone[0].Prefix != peer {
		t.Errorf("Expire = %+v, %v; want the expired block of %v", gone, err, peer)
	}
	if list, _ := g.List(); len(list) != 0 {
		t.Errorf("List after expiry = %+v", list)
	}

	// A CIDR, until removed.
	cidr := netip.PrefixFrom(n.PeerIP, 30).Masked()
	if err := g.Block(cidr, time.Time{}, SourceRule); err != nil {
		t.Fatal(err)
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("%v blocked: connect from the namespace: %s, want timeout", cidr, got)
	}
	if err := g.Unblock(cidr); err != nil {
		t.Fatal(err)
	}
	if err := g.Unblock(cidr); !errors.Is(err, ErrNotBlocked) {
		t.Errorf("second Unblock: %v, want ErrNotBlocked", err)
	}
	if got := n.fromPeer(t, "dial", srv); got != "ok" {
		t.Errorf("unblocked: connect from the namespace: %s", got)
	}
}

func TestIsolate(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	g, err := Open(Config{PinDir: pinDir(t), Interfaces: []string{n.HostIf}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	srv := listen(t, n.HostIP.String()+":0")
	local := listen(t, "127.0.0.1:0")
	peerClosed := netip.AddrPortFrom(n.PeerIP, 9).String()
	if got := waitFor("ok", 5*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Fatalf("before isolation: %s", got)
	}

	if err := g.Isolate(nil); err != nil {
		t.Fatal(err)
	}
	if iso, allow, err := g.Isolation(); err != nil || !iso || len(allow) != 0 {
		t.Errorf("Isolation = %v, %v, %v", iso, allow, err)
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("isolated: connect in: %s, want timeout", got)
	}
	if got := n.fromHost(t, "dial", peerClosed); got != "timeout" {
		t.Errorf("isolated: connect out: %s, want timeout", got)
	}
	if got := n.fromHost(t, "dial", local); got != "ok" {
		t.Errorf("isolated: loopback: %s, want ok", got)
	}

	// The management network is allowed.
	mgmt := netip.PrefixFrom(n.PeerIP, 32)
	if err := g.Isolate([]netip.Prefix{mgmt}); err != nil {
		t.Fatal(err)
	}
	if got := waitFor("ok", 3*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Errorf("isolated, %v allowed: connect in: %s", mgmt, got)
	}
	if got := n.fromHost(t, "dial", peerClosed); got != "refused" {
		t.Errorf("isolated, %v allowed: connect out: %s, want refused", mgmt, got)
	}

	if err := g.Isolate(nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Unisolate(); err != nil {
		t.Fatal(err)
	}
	if got := waitFor("ok", 3*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Errorf("isolation lifted: connect in: %s", got)
	}
	st, _ := g.Stats()
	if st.IsolationDropsIn == 0 || st.IsolationDropsOut == 0 {
		t.Errorf("stats %+v: want isolation drops both ways", st)
	}
}

// Blocks and isolation outlive the guard that set them, and the next one
// takes them over.
func TestPersistAcrossRestart(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	dir := pinDir(t)
	cfg := Config{PinDir: dir, Interfaces: []string{n.HostIf}, Persist: true}
	g, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := listen(t, n.HostIP.String()+":0")
	if got := waitFor("ok", 5*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Fatalf("before isolation: %s", got)
	}
	if err := g.Isolate(nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !Linked(dir) {
		t.Fatal("no links pinned after Close of an isolated guard with Persist")
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("agent gone, isolation in force: connect in: %s, want timeout", got)
	}
	// What `vigil isolate off` does without an agent.
	p, err := OpenPinned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if iso, _, _ := p.Isolation(); !iso {
		t.Error("pinned state does not say isolated")
	}
	if err := p.Unisolate(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got := waitFor("ok", 3*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Errorf("isolation lifted through the pins: %s", got)
	}

	// A restarted guard takes the pinned links over.
	g, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Block(netip.PrefixFrom(n.PeerIP, 32), time.Time{}, SourceManual); err != nil {
		t.Fatal(err)
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("restarted guard, blocked: %s, want timeout", got)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if Linked(dir) {
		t.Error("links still pinned after Remove")
	}
	if got := waitFor("ok", 3*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Errorf("after Remove: %s", got)
	}
}

// An interface another XDP program holds is refused: Open fails when it was
// named, and leaves it alone, reporting why, with SkipRefused (the agent's
// "*"), still guarding the others. (In XDP mode: tcx links share.)
func TestInterfaceHeldByAnotherProgram(t *testing.T) {
	testenv.RequirePrivileged(t)
	held, free := newNetns(t), newNetns(t)
	first, err := Open(Config{PinDir: pinDir(t), Interfaces: []string{held.HostIf}, XDPMode: "native"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Remove()

	if g, err := Open(Config{PinDir: pinDir(t), Interfaces: []string{held.HostIf, free.HostIf}, XDPMode: "native"}); err == nil {
		g.Remove()
		t.Fatalf("Open of a held interface named by the caller succeeded")
	}
	g, err := Open(Config{PinDir: pinDir(t), Interfaces: []string{held.HostIf, free.HostIf}, SkipRefused: true, XDPMode: "native"})
	if err != nil {
		t.Fatalf("Open with SkipRefused: %v", err)
	}
	defer g.Remove()
	if why, ok := g.Skipped()[held.HostIf]; !ok || !strings.Contains(why, "xdp") {
		t.Errorf("skipped %v, want %s with the xdp refusal", g.Skipped(), held.HostIf)
	}
	if _, ok := g.XDPModes()[free.HostIf]; !ok || len(g.Skipped()) != 1 {
		t.Errorf("xdp modes %v, skipped %v: want %s guarded", g.XDPModes(), g.Skipped(), free.HostIf)
	}
	for name := range g.links {
		if strings.HasSuffix(name, held.HostIf) {
			t.Errorf("link %s left on the skipped interface", name)
		}
	}
	// The first guard still holds its interface: a block there works.
	peer := netip.PrefixFrom(held.PeerIP, 32)
	if err := first.Block(peer, time.Time{}, SourceManual); err != nil {
		t.Fatal(err)
	}
	if got := waitFor("timeout", 5*time.Second, func() string { return held.fromPeer(t, "dial", listen(t, held.HostIP.String()+":0")) }); got != "timeout" {
		t.Errorf("connect from the blocked peer of the held interface: %s, want timeout", got)
	}
}
