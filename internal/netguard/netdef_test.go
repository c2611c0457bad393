package netguard

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

func init() {
	extraHelper = func(op, addr string) error {
		switch op {
		case "flood":
			// UDP datagrams as fast as the socket takes them, for
			// VIGIL_FLOOD_MS milliseconds. Writes that fail (the host's
			// ICMP replies turn into ECONNREFUSED) are ignored.
			ms, _ := strconv.Atoi(os.Getenv("VIGIL_FLOOD_MS"))
			c, err := net.Dial("udp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			buf := make([]byte, 64)
			end := time.Now().Add(time.Duration(ms) * time.Millisecond)
			for i := 0; ; i++ {
				if i%256 == 0 && time.Now().After(end) {
					return nil
				}
				c.Write(buf)
			}
		case "send-tcp", "send-udp":
			c, err := net.DialTimeout(op[5:], addr, 700*time.Millisecond)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(os.Getenv("VIGIL_PAYLOAD")))
			return err
		}
		return errors.New("unknown helper " + op)
	}
}

func (n *netns) peerWith(t *testing.T, op, addr string, env ...string) string {
	cmd := exec.Command("ip", "netns", "exec", n.Name, os.Args[0], addr)
	cmd.Env = append(helperEnv(op), env...)
	return helperOut(t, cmd)
}

// readNotice waits for a notice that match accepts.
func readNotice(t *testing.T, r *NoticeReader, d time.Duration, match func(Notice) bool) (Notice, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r.SetDeadline(deadline)
		n, err := r.Read()
		if err != nil {
			return Notice{}, false
		}
		if match(n) {
			return n, true
		}
	}
}

func openNetdef(t *testing.T, n *netns, cgroup string) (*Guard, *NoticeReader) {
	t.Helper()
	g, err := Open(Config{PinDir: pinDir(t), Interfaces: []string{n.HostIf}, Cgroup: cgroup})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Remove() })
	if m := g.XDPModes()[n.HostIf]; m != "tcx" { // auto, on a veth
		t.Errorf("XDP mode on %s: %q", n.HostIf, m)
	}
	r, err := g.Notices()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return g, r
}

// A UDP flood from the namespace goes over the kernel's packets/s limit:
// the kernel blocks its source with an expiry and says so; the block drops
// the source's traffic and expires by itself. An allowlisted source is
// counted but never blocked.
func TestFloodBlockedInKernelAndExpires(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	g, notices := openNetdef(t, n, "")
	srv := listen(t, n.HostIP.String()+":0")
	if got := waitFor("ok", 5*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Fatalf("before the flood: connect from the namespace: %s", got)
	}
	const pps = 2000
	err := g.SetAccounting(Accounting{Enabled: true, AutoBlock: true, PPS: pps, BlockFor: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(n.HostIP, 9).String()
	n.peerWith(t, "flood", target, "VIGIL_FLOOD_MS=1000")

	no, ok := readNotice(t, notices, 3*time.Second, func(no Notice) bool { return no.Kind == NoticeFlood })
	if !ok {
		st, _ := g.Sources()
		t.Fatalf("no flood notice; sources: %+v", st)
	}
	if no.Src != n.PeerIP || FloodReason(no.Reason) != FloodPPS || no.Rate <= pps || !no.Block || no.Expires.IsZero() {
		t.Errorf("flood notice %+v: want the peer %v over %d packets/s, blocked with an expiry", no, n.PeerIP, pps)
	}
	list, err := g.List()
	peer := netip.PrefixFrom(n.PeerIP, 32)
	if err != nil || len(list) != 1 || list[0].Prefix != peer || list[0].Source != SourceDetector || list[0].Until.IsZero() {
		t.Fatalf("List = %+v, %v; want the detector's block of %v with an expiry", list, err, peer)
	}
	st, _ := g.Stats()
	nst, _ := g.NetdefStats()
	if st.BlockedIn == 0 || nst.FloodBlocks == 0 {
		t.Errorf("stats %+v %+v: want the flood's packets dropped by the block", st, nst)
	}
	srcs, _ := g.Sources()
	var seen SourceStats
	for _, s := range srcs {
		if s.Addr == n.PeerIP {
			seen = s
		}
	}
	if seen.Packets <= pps || seen.Ports != 1 || seen.Hosts != 1 {
		t.Errorf("peer's counters %+v: want more than %d packets, to one port of one host", seen, pps)
	}
	if tot, _ := g.Totals(); tot.Packets < seen.Packets {
		t.Errorf("totals %+v below the peer's %d packets", tot, seen.Packets)
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("blocked: connect from the namespace: %s, want timeout", got)
	}
	if got := waitFor("ok", 10*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Fatalf("after the block's expiry: connect from the namespace: %s", got)
	}
	if gone, err := g.Expire(); err != nil || len(gone) != 1 || gone[0].Prefix != peer || gone[0].Source != SourceDetector {
		t.Errorf("Expire = %+v, %v; want the detector's expired block of %v", gone, err, peer)
	}

	// Allowlisted: the same flood is never blocked.
	if err := g.SetFloodAllow([]netip.Prefix{peer.Masked()}); err != nil {
		t.Fatal(err)
	}
	n.peerWith(t, "flood", target, "VIGIL_FLOOD_MS=1000")
	if no, ok := readNotice(t, notices, time.Second, func(no Notice) bool { return no.Kind == NoticeFlood }); ok {
		t.Errorf("allowlisted source: flood notice %+v", no)
	}
	if list, _ := g.List(); len(list) != 0 {
		t.Errorf("allowlisted source blocked: %+v", list)
	}
}

// Listed addresses are reported on ingress and egress; listed with block,
// they are dropped both ways and connects to them refused.
func TestIntelBothDirections(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	cg := testenv.NewCgroup(t)
	g, notices := openNetdef(t, n, cg.Path)
	srv := listen(t, n.HostIP.String()+":0")
	peerClosed := netip.AddrPortFrom(n.PeerIP, 9).String()
	if got := waitFor("ok", 5*time.Second, func() string { return n.fromPeer(t, "dial", srv) }); got != "ok" {
		t.Fatalf("before: connect from the namespace: %s", got)
	}
	if err := g.SetAccounting(Accounting{NoticeInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	listed := netip.PrefixFrom(n.PeerIP, 30).Masked()
	if err := g.SetIntel(map[netip.Prefix]IntelEntry{listed: {List: 7}}); err != nil {
		t.Fatal(err)
	}
	// Alert only: traffic passes, both directions are reported.
	if got := n.fromPeer(t, "dial", srv); got != "ok" {
		t.Errorf("listed (alert): connect in: %s, want ok", got)
	}
	in := func(ingress, block bool) func(Notice) bool {
		return func(no Notice) bool {
			return no.Kind == NoticeIntel && no.Ingress == ingress && no.Block == block && no.Src == n.PeerIP && no.Reason == 7
		}
	}
	if _, ok := readNotice(t, notices, 2*time.Second, in(true, false)); !ok {
		t.Error("no ingress intel notice for the listed peer")
	}
	if got := n.fromHost(t, "dial", peerClosed); got != "refused" {
		t.Errorf("listed (alert): connect out: %s, want refused (nothing listens)", got)
	}
	if _, ok := readNotice(t, notices, 2*time.Second, in(false, false)); !ok {
		t.Error("no egress intel notice for the listed peer")
	}

	// Block: dropped in, dropped out, connects refused.
	if err := g.SetIntel(map[netip.Prefix]IntelEntry{listed: {List: 7, Block: true}}); err != nil {
		t.Fatal(err)
	}
	if got := n.fromPeer(t, "dial", srv); got != "timeout" {
		t.Errorf("listed (block): connect in: %s, want timeout", got)
	}
	if _, ok := readNotice(t, notices, 2*time.Second, in(true, true)); !ok {
		t.Error("no ingress intel notice of the drop")
	}
	if got := n.fromHost(t, "dial", peerClosed); got != "timeout" {
		t.Errorf("listed (block): connect out from outside the hook's cgroup: %s, want timeout (tcx)", got)
	}
	if got := helperOut(t, inCgroup(cg, "dial", peerClosed)); got != "EPERM" {
		t.Errorf("listed (block): connect out from the hook's cgroup: %s, want EPERM", got)
	}
	nst, _ := g.NetdefStats()
	if nst.IntelDropsIn == 0 || nst.IntelDropsOut == 0 || nst.IntelDeniedConnects == 0 {
		t.Errorf("stats %+v: want drops both ways and a refused connect", nst)
	}
	if err := g.SetIntel(nil); err != nil {
		t.Fatal(err)
	}
	if got := n.fromPeer(t, "dial", srv); got != "ok" {
		t.Errorf("list emptied: connect in: %s", got)
	}
}

// The stratum handshake of a miner matches a signature on ingress (TCP)
// and egress (UDP); a blocking signature drops its packet.
func TestPayloadSignatures(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	g, notices := openNetdef(t, n, "")
	l, err := net.Listen("tcp", n.HostIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 512)
			k, _ := c.Read(b)
			got <- b[:k]
			c.Close()
		}
	}()
	if r := waitFor("ok", 5*time.Second, func() string { return n.fromPeer(t, "dial", l.Addr().String()) }); r != "ok" {
		t.Fatalf("before: connect from the namespace: %s", r)
	}
	<-got
	err = g.SetSignatures([]Signature{
		{Pattern: []byte(`"method": "mining.subscribe"`)},
		{Pattern: []byte("VIGIL-DROP-ME"), Proto: 17, Dir: DirIngress, Block: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	stratum := `{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}` + "\n"
	if r := n.peerWith(t, "send-tcp", l.Addr().String(), "VIGIL_PAYLOAD="+stratum); r != "ok" {
		t.Fatalf("stratum handshake: %s", r)
	}
	if b := <-got; !bytes.Contains(b, []byte("mining.subscribe")) {
		t.Errorf("server read %q: an alert-only signature must not drop", b)
	}
	srvPort := netip.MustParseAddrPort(l.Addr().String()).Port()
	no, ok := readNotice(t, notices, 2*time.Second, func(no Notice) bool { return no.Kind == NoticePayload })
	if !ok {
		t.Fatal("no payload notice for the stratum handshake")
	}
	if no.Reason != 0 || !no.Ingress || no.Src != n.PeerIP || no.Dst != n.HostIP || no.Dport != srvPort || no.Proto != 6 || no.Block {
		t.Errorf("notice %+v: want signature 0, ingress TCP from %v to %v:%d, not blocked", no, n.PeerIP, n.HostIP, srvPort)
	}

	// Egress, UDP: nothing needs to listen.
	c, err := net.Dial("udp", netip.AddrPortFrom(n.PeerIP, 3333).String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(stratum))
	c.Close()
	no, ok = readNotice(t, notices, 2*time.Second, func(no Notice) bool { return no.Kind == NoticePayload })
	if !ok || no.Ingress || no.Dport != 3333 || no.Proto != 17 || no.Reason != 0 {
		t.Errorf("egress UDP stratum: notice %+v, %v", no, ok)
	}

	// A blocking signature drops the datagram; others pass.
	u, err := net.ListenPacket("udp", n.HostIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	recv := func() string {
		u.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 256)
		k, _, err := u.ReadFrom(b)
		if err != nil {
			return "nothing"
		}
		return string(b[:k])
	}
	n.peerWith(t, "send-udp", u.LocalAddr().String(), "VIGIL_PAYLOAD=xx VIGIL-DROP-ME xx")
	if r := recv(); r != "nothing" {
		t.Errorf("blocking signature: the datagram arrived: %q", r)
	}
	if no, ok := readNotice(t, notices, 2*time.Second, func(no Notice) bool { return no.Kind == NoticePayload }); !ok || no.Reason != 1 || !no.Block {
		t.Errorf("blocking signature: notice %+v, %v", no, ok)
	}
	n.peerWith(t, "send-udp", u.LocalAddr().String(), "VIGIL_PAYLOAD=harmless")
	if r := recv(); r != "harmless" {
		t.Errorf("a datagram without a signature: %q", r)
	}
	nst, _ := g.NetdefStats()
	if nst.PayloadMatches < 3 || nst.PayloadDrops != 1 {
		t.Errorf("stats %+v: want 3 matches, 1 drop", nst)
	}
}
