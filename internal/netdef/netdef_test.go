package netdef

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/testenv"
)

// TestMain: with VIGIL_NETDEF_FLOOD set the test binary floods the UDP
// address given for that many milliseconds (the sender of the flood test).
func TestMain(m *testing.M) {
	if ms := os.Getenv("VIGIL_NETDEF_FLOOD"); ms != "" {
		d, _ := time.ParseDuration(ms + "ms")
		c, err := net.Dial("udp", os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		buf := make([]byte, 64)
		for end, i := time.Now().Add(d), 0; i%256 != 0 || time.Now().Before(end); i++ {
			c.Write(buf)
		}
		os.Exit(0)
	}
	if addr := os.Getenv("VIGIL_NETDEF_SEND"); addr != "" {
		// VIGIL_NETDEF_SEND=tcp|udp/addr, the payload in VIGIL_NETDEF_DATA.
		proto, addr, _ := strings.Cut(addr, "/")
		c, err := net.DialTimeout(proto, addr, 700*time.Millisecond)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.Write([]byte(os.Getenv("VIGIL_NETDEF_DATA")))
		time.Sleep(100 * time.Millisecond)
		c.Close()
		os.Exit(0)
	}
	if addr := os.Getenv("VIGIL_NETDEF_DIAL"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, 700*time.Millisecond)
		if err != nil {
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dialFromPeer connects from the namespace to addr; true when it worked.
func (n *netns) dialFromPeer(addr string) bool {
	cmd := exec.Command("ip", "netns", "exec", n.Name, os.Args[0])
	cmd.Env = append(os.Environ(), "VIGIL_NETDEF_DIAL="+addr)
	return cmd.Run() == nil
}

// sendFromPeer sends data from the namespace over proto (tcp, udp) to addr.
func (n *netns) sendFromPeer(t *testing.T, proto, addr, data string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, os.Args[0])
	cmd.Env = append(os.Environ(), "VIGIL_NETDEF_SEND="+proto+"/"+addr, "VIGIL_NETDEF_DATA="+data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send %s to %s from the namespace: %v: %s", proto, addr, err, out)
	}
}

// listen accepts and closes connections on addr until the test ends.
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

type netns struct{ *testenv.Netns }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// newNetns makes a namespace joined to the host by a veth pair, both ends
// the test's own, addresses in 10.232.0.0/16, and waits until a connect from
// the namespace gets through.
func newNetns(t *testing.T) *netns {
	t.Helper()
	testenv.RequireKernel(t, 6, 6, "tcx links, which the XDP/tcx programs attach with")
	n := &netns{testenv.NewNetns(t, 232, "vgd")}
	srv := listen(t, n.HostIP.String()+":0")
	deadline := time.Now().Add(5 * time.Second)
	for !n.dialFromPeer(srv) {
		if time.Now().After(deadline) {
			t.Fatal("veth link not up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// recorder keeps what the defender reports.
type recorder struct {
	mu     sync.Mutex
	events []*event.Event
}

func (r *recorder) add(e *event.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// wait returns the first event match accepts, waiting up to d.
func (r *recorder) wait(d time.Duration, match func(*event.Event) bool) *event.Event {
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if match(e) {
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.events {
		if e.Alert != nil {
			fmt.Fprintf(&b, "\n  alert %s: %s", e.Alert.RuleID, e.Alert.Message)
		}
		if e.Response != nil {
			fmt.Fprintf(&b, "\n  response %s %s %s: %s", e.Response.Action, e.Response.Target, e.Response.Outcome, e.Response.Reason)
		}
	}
	return b.String()
}

func alertOf(rule, contains string) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindAlert && e.Alert.RuleID == rule && strings.Contains(e.Alert.Message, contains)
	}
}

func testConfig() config.NetDefense {
	c := config.Default().NetDefense
	c.Poll = config.Duration(200 * time.Millisecond)
	c.Flood.Enabled = false
	c.Scan.Ports, c.Scan.Hosts = 20, 10
	return c
}

func start(t *testing.T, cfg config.NetDefense, ifs ...string) (*Defender, *netguard.Guard, *recorder) {
	t.Helper()
	dir := filepath.Join("/sys/fs/bpf", "vigil-test-"+randHex(4))
	g, err := netguard.Open(netguard.Config{PinDir: dir, Interfaces: ifs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Remove(); os.RemoveAll(dir) })
	rec := &recorder{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d, err := New(cfg, g, Deps{Log: log, Alert: rec.add, Response: rec.add, ExpireBlocks: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := d.Start(context.Background())
	t.Cleanup(func() { stop(); d.Close() })
	return d, g, rec
}

// nmap scans the host's end of the veth from the namespace in each mode;
// each is detected and named.
func TestNmapScansDetected(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.RequireCommand(t, "nmap")
	n := newNetns(t)
	_, _, rec := start(t, testConfig(), n.HostIf)
	for _, m := range []struct{ flag, name string }{
		{"-sS", "SYN scan"}, {"-sT", "TCP connect scan"}, {"-sF", "FIN scan"},
		{"-sN", "NULL scan"}, {"-sX", "Xmas scan"}, {"-sU", "UDP scan"},
	} {
		t.Run(m.flag, func(t *testing.T) {
			out, err := exec.Command("ip", "netns", "exec", n.Name, "nmap", "-n", "-Pn", m.flag, "-p", "20000-20060",
				"--max-retries", "0", "--min-rate", "2000", "--host-timeout", "60s", n.HostIP.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("nmap %s: %v: %s", m.flag, err, out)
			}
			want := m.name + " from " + n.PeerIP.String()
			if rec.wait(5*time.Second, alertOf("netdef-scan-inbound", want)) == nil {
				t.Errorf("no alert %q; got:%s", want, rec.dump())
			}
		})
	}
}

// A flood from the namespace: the kernel blocks it, the alert carries the
// rate, the block and its expiry are response events.
func TestFloodAlertBlockUnblock(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	cfg := testConfig()
	cfg.Flood.Enabled = true
	cfg.Flood.Source = config.Rates{PPS: 2000}
	cfg.Flood.BlockFor = config.Duration(3 * time.Second)
	_, g, rec := start(t, cfg, n.HostIf)
	cmd := exec.Command("ip", "netns", "exec", n.Name, os.Args[0], netip.AddrPortFrom(n.HostIP, 9).String())
	cmd.Env = append(os.Environ(), "VIGIL_NETDEF_FLOOD=1000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flood: %v: %s", err, out)
	}
	if rec.wait(3*time.Second, alertOf("netdef-flood-source", n.PeerIP.String()+" sent ")) == nil {
		t.Fatalf("no flood alert; got:%s", rec.dump())
	}
	peer := netip.PrefixFrom(n.PeerIP, 32).String()
	blocked := rec.wait(time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindResponse && e.Response.Action == "block-ip" && strings.HasPrefix(e.Response.Target, peer) && e.Response.Outcome == event.ResponseDone
	})
	if blocked == nil {
		t.Fatalf("no block response; got:%s", rec.dump())
	}
	if list, _ := g.List(); len(list) != 1 || list[0].Source != netguard.SourceDetector {
		t.Errorf("block list %+v", list)
	}
	unblocked := rec.wait(10*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindResponse && e.Response.Action == "unblock" && e.Response.Target == peer
	})
	if unblocked == nil {
		t.Fatalf("no unblock response; got:%s", rec.dump())
	}
	if list, _ := g.List(); len(list) != 0 {
		t.Errorf("still blocked after the unblock: %+v", list)
	}
}

// Lists from files: an address list hit on ingress (XDP) and egress
// (connect events), a domain query and the connect attributed to it, which
// the list says to block; malformed lines reported, the rest loaded; a
// changed file reloaded.
func TestIntelBothWaysAndDomains(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	dir := t.TempDir()
	ips := filepath.Join(dir, "bad.netset")
	doms := filepath.Join(dir, "pools.txt")
	os.WriteFile(ips, []byte("# test\n"+n.PeerIP.String()+"\nnot an address\n198.51.100.0/24\n"), 0o644)
	os.WriteFile(doms, []byte("pool.evil.example\n"), 0o644)
	cfg := testConfig()
	cfg.Intel.Reload = config.Duration(200 * time.Millisecond)
	cfg.Intel.Lists = []config.IntelList{
		{Name: "bad", Path: ips, Kind: "ip", Action: "alert"},
		{Name: "pools", Path: doms, Kind: "domain", Action: "block"},
	}
	d, g, rec := start(t, cfg, n.HostIf)

	// Ingress: a connect from the listed peer.
	if !n.dialFromPeer(listen(t, n.HostIP.String()+":0")) {
		t.Fatal("connect from the listed peer (alert only) failed")
	}
	if rec.wait(3*time.Second, alertOf("netdef-intel-ingress", "from "+n.PeerIP.String()+", listed in bad")) == nil {
		t.Errorf("no ingress alert; got:%s", rec.dump())
	}
	// Egress through a connect event (the net sensor's, made here).
	now := time.Now()
	proc := event.Process{PID: 4242, StartBoot: 99, Executable: "/tmp/x/miner"}
	d.Observe(&event.Event{Time: now, Kind: event.KindNet, Process: proc,
		Net: &event.Net{Op: event.NetConnect, Destination: netip.MustParseAddrPort("198.51.100.7:443")}})
	if rec.wait(time.Second, alertOf("netdef-intel-egress", "connected to 198.51.100.7:443, listed in bad (198.51.100.0/24)")) == nil {
		t.Errorf("no egress alert; got:%s", rec.dump())
	}
	// Egress packets with no connect event (the test's own UDP) are
	// reported by tcx after a grace period.
	c, err := net.Dial("udp", netip.AddrPortFrom(n.PeerIP, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	c.Close()
	if rec.wait(5*time.Second, alertOf("netdef-intel-egress", "packets to "+n.PeerIP.String())) == nil {
		t.Errorf("no egress packet alert; got:%s", rec.dump())
	}
	// A query for a listed domain, then a connect of the same process.
	d.Observe(&event.Event{Time: now, Kind: event.KindNet, Process: proc,
		Net: &event.Net{Op: event.NetDNS, Destination: netip.MustParseAddrPort("127.0.0.53:53"),
			DNS: &event.DNSQuestion{Name: "eu.pool.evil.example", Type: "A"}}})
	d.Observe(&event.Event{Time: now.Add(time.Second), Kind: event.KindNet, Process: proc,
		Net: &event.Net{Op: event.NetConnect, Destination: netip.MustParseAddrPort("203.0.113.5:3333")}})
	if rec.wait(time.Second, alertOf("netdef-intel-dns", "asked for eu.pool.evil.example, listed in pools")) == nil {
		t.Errorf("no DNS alert; got:%s", rec.dump())
	}
	if rec.wait(time.Second, alertOf("netdef-intel-domain-connect", "connected to 203.0.113.5:3333 1s after asking for eu.pool.evil.example")) == nil {
		t.Errorf("no attributed connect alert; got:%s", rec.dump())
	}
	if list, _ := g.List(); len(list) != 1 || list[0].Prefix.String() != "203.0.113.5/32" || list[0].Source != netguard.SourceDetector {
		t.Errorf("block list %+v: want 203.0.113.5 blocked by the detector", list)
	}
	// Another process's connect is not attributed.
	other := proc
	other.PID = 4243
	d.Observe(&event.Event{Time: now.Add(time.Second), Kind: event.KindNet, Process: other,
		Net: &event.Net{Op: event.NetConnect, Destination: netip.MustParseAddrPort("203.0.113.6:3333")}})
	time.Sleep(100 * time.Millisecond)
	if e := rec.wait(0, alertOf("netdef-intel-domain-connect", "203.0.113.6")); e != nil {
		t.Errorf("connect of another process attributed: %s", e.Alert.Message)
	}

	// Reload: the peer leaves the list, a new address joins.
	os.WriteFile(ips, []byte("192.0.2.200\n"), 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		_, stillListed := d.lists.Addr(n.PeerIP)
		_, newListed := d.lists.Addr(netip.MustParseAddr("192.0.2.200"))
		d.mu.Unlock()
		if !stillListed && newListed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("list change not reloaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Payload rules from a rule file: the kernel finds their patterns in real
// packets, the packets come back as payload events naming the rule, with
// the local end as source and the remote as destination; a deny rule's
// packets are dropped before the server reads them.
func TestPayloadRules(t *testing.T) {
	testenv.RequirePrivileged(t)
	n := newNetns(t)
	set, err := rules.Load(rules.Source{Name: "t", FS: fstest.MapFS{"p.yaml": {Data: []byte(`rules:
  - id: stratum
    name: Stratum
    severity: warning
    payload: {pattern: '"mining.subscribe"', protocol: tcp}
  - id: drop-udp
    name: Drop
    severity: error
    payload: {hex: "56 49 47 49 4c 2d 44 52 4f 50", protocol: udp, direction: ingress}
    response: deny
`)}}})
	if err != nil {
		t.Fatal(err)
	}
	var prs []PayloadRule
	for _, ri := range set.Rules() {
		prs = append(prs, PayloadRule{ID: ri.ID, Payload: *ri.Payload, Drop: ri.Plan != nil && ri.Plan.PayloadDrop})
	}
	d, _, rec := start(t, testConfig(), n.HostIf)
	matched := &recorder{}
	d.d.Payload = func(e *event.Event, id string) {
		e.Alert = &event.Alert{RuleID: id} // the recorder's way to name it
		matched.add(e)
	}
	if err := d.SetPayloadRules(prs); err != nil {
		t.Fatal(err)
	}

	// Ingress TCP: the stratum call reaches the server, and is reported.
	l, err := net.Listen("tcp", n.HostIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	read := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		read <- string(b)
	}()
	n.sendFromPeer(t, "tcp", l.Addr().String(), `{"id":1,"method":"mining.subscribe","params":[]}`)
	if b := <-read; !strings.Contains(b, "mining.subscribe") {
		t.Errorf("server read %q: an alert rule must not drop", b)
	}
	srv := netip.MustParseAddrPort(l.Addr().String())
	e := matched.wait(3*time.Second, func(e *event.Event) bool { return e.Alert.RuleID == "stratum" })
	if e == nil {
		t.Fatalf("no payload event for the stratum call; got:%s", rec.dump())
	}
	if nt := e.Net; nt.Op != event.NetPayload || nt.Dir != "ingress" || nt.Protocol != "tcp" || nt.Source != srv ||
		nt.Destination.Addr() != n.PeerIP || e.Return != 0 || e.Kind != event.KindNet {
		t.Errorf("stratum event %+v: want ingress tcp, local %v, remote %v, not dropped", nt, srv, n.PeerIP)
	}

	// Ingress UDP with the deny pattern: dropped in the kernel.
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.HostIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	n.sendFromPeer(t, "udp", u.LocalAddr().String(), "hello VIGIL-DROP")
	n.sendFromPeer(t, "udp", u.LocalAddr().String(), "hello, the next one")
	u.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 100)
	k, _, err := u.ReadFrom(b)
	if err != nil || string(b[:k]) != "hello, the next one" {
		t.Errorf("server read %q, %v: want only the datagram without the pattern", b[:k], err)
	}
	e = matched.wait(3*time.Second, func(e *event.Event) bool { return e.Alert.RuleID == "drop-udp" })
	if e == nil {
		t.Fatal("no payload event for the dropped datagram")
	}
	if e.Return != -1 || e.Net.Protocol != "udp" || e.Net.Dir != "ingress" {
		t.Errorf("drop event %+v return %d: want udp ingress, dropped (-1)", e.Net, e.Return)
	}

	// Rules replaced: the old patterns are gone.
	if err := d.SetPayloadRules(nil); err != nil {
		t.Fatal(err)
	}
	n.sendFromPeer(t, "udp", u.LocalAddr().String(), "hello VIGIL-DROP again")
	u.SetReadDeadline(time.Now().Add(2 * time.Second))
	if k, _, err := u.ReadFrom(b); err != nil || !strings.Contains(string(b[:k]), "VIGIL-DROP") {
		t.Errorf("after the rules went: read %q, %v; want the datagram delivered", b[:k], err)
	}
}
