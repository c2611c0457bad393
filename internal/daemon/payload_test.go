package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

const labPayloadRules = `rules:
  - id: lab-marker
    name: Lab marker from outside
    severity: warning
    payload: {pattern: VIGIL-LAB-MARKER, protocol: tcp, direction: ingress}
    condition: destination.port != 0
    output: "marker from {destination.ip} to local port {source.port}"
    response: block-ip
  - id: lab-drop
    name: Drop marked datagrams
    severity: error
    payload: {hex: "56 49 47 49 4c 2d 44 52 4f 50", protocol: udp}
    response: deny
`

// lockedLog is an agent's log, read by the test.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// peerSend sends data from the namespace to addr over tcp or udp with
// bash's /dev/tcp and /dev/udp; it reports whether the send worked.
func peerSend(n *testenv.Netns, proto string, addr netip.AddrPort, data string) error {
	script := fmt.Sprintf(`exec 3<>/dev/%s/%s/%d && printf '%%s' "$1" >&3 && sleep 0.2`, proto, addr.Addr(), addr.Port())
	out, err := exec.Command("ip", "netns", "exec", n.Name, "timeout", "3", "bash", "-c", script, "_", data).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Payload rules through the agent: rule files give the kernel its patterns,
// real packets from a test namespace match them, and the rules decide:
// the built-in stratum rule alerts, a block-ip rule blocks the sender in
// XDP, a deny rule's datagrams are dropped in the kernel. vigil status
// counts it all, and a reload with too many payload rules keeps the old.
func TestPayloadRulesThroughTheAgent(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.RequireKernel(t, 6, 6, "tcx links, which the payload programs attach with")
	n := testenv.NewNetns(t, 234, "vdp")
	dir := t.TempDir()
	ruleDir := filepath.Join(dir, "rules")
	os.MkdirAll(ruleDir, 0o755)
	if err := os.WriteFile(filepath.Join(ruleDir, "lab.yaml"), []byte(labPayloadRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.Rules.Dirs = []string{ruleDir}
	cfg.Response.Interfaces = []string{n.HostIf}
	cfg.NetDefense.Enabled = true
	cfg.NetDefense.Flood.Enabled = false
	cfg.NetDefense.Poll = config.Duration(200 * time.Millisecond)
	t.Cleanup(func() { os.RemoveAll(cfg.Response.PinDir) })
	col := newCollector(0) // packets have no process
	var logs lockedLog
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), col)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done; a.Close() }()
	<-a.Ready()
	t.Cleanup(func() {
		if t.Failed() {
			if st := a.Status(); st.Network != nil && st.Network.Defence != nil {
				t.Logf("network defence: %+v", *st.Network.Defence)
			}
			t.Logf("agent log:\n%s", logs.String())
		}
	})

	srv := testenv.TCPServer(t, n.HostIP.String()+":0")
	// The link may take a moment.
	deadline := time.Now().Add(5 * time.Second)
	for peerSend(n, "tcp", srv, "hello") != nil {
		if time.Now().After(deadline) {
			t.Fatal("veth link not up")
		}
		time.Sleep(100 * time.Millisecond)
	}

	alert := func(rule string) func(*event.Event) bool {
		return func(e *event.Event) bool { return e.Kind == event.KindAlert && e.Alert.RuleID == rule }
	}
	// The built-in rule, on a real stratum call.
	if err := peerSend(n, "tcp", srv, `{"id":1,"method":"mining.subscribe","params":["xmrig"]}`); err != nil {
		t.Fatal(err)
	}
	al := col.waitFor(t, "payload-stratum-mining alert", alert("payload-stratum-mining"))
	if tr := al.Alert.Trigger; tr == nil || tr.Net == nil || tr.Net.Op != event.NetPayload || tr.Net.Destination.Addr() != n.PeerIP || tr.Net.Source != srv {
		t.Errorf("stratum alert's trigger %+v: want a payload event, remote %v, local %v", al.Alert.Trigger, n.PeerIP, srv)
	}
	col.waitFor(t, "the payload event itself", func(e *event.Event) bool {
		return e.Kind == event.KindNet && e.Net.Op == event.NetPayload && e.Net.Dir == "ingress"
	})

	// A deny rule: the datagram is dropped, the response says so.
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.HostIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	usrv := netip.MustParseAddrPort(u.LocalAddr().String())
	peerSend(n, "udp", usrv, "one VIGIL-DROP")
	peerSend(n, "udp", usrv, "two, delivered")
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 64)
	if k, _, err := u.ReadFrom(b); err != nil || string(b[:k]) != "two, delivered" {
		t.Errorf("read %q, %v: want only the datagram without the pattern", b[:k], err)
	}
	col.waitFor(t, "lab-drop alert", alert("lab-drop"))
	col.waitFor(t, "deny response, done in tcx", func(e *event.Event) bool {
		return e.Kind == event.KindResponse && e.Response.RuleID == "lab-drop" && e.Response.Action == "deny" &&
			e.Response.Mechanism == "tcx" && e.Response.Outcome == event.ResponseDone
	})

	// Too many payload rules: the reload is refused, the old rules run.
	var many strings.Builder
	many.WriteString("rules:\n")
	for i := range 30 {
		fmt.Fprintf(&many, "  - {id: many-%d, name: M, severity: info, payload: {pattern: many-%d}}\n", i, i)
	}
	os.WriteFile(filepath.Join(ruleDir, "many.yaml"), []byte(many.String()), 0o644)
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "at most 32") {
		t.Errorf("reload with 36 payload rules: %v, want refused", err)
	}
	os.Remove(filepath.Join(ruleDir, "many.yaml"))
	peerSend(n, "udp", usrv, "three VIGIL-DROP")
	peerSend(n, "udp", usrv, "four, delivered")
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	if k, _, err := u.ReadFrom(b); err != nil || string(b[:k]) != "four, delivered" {
		t.Errorf("after the refused reload: read %q, %v; the old deny rule must still drop", b[:k], err)
	}

	// A block-ip rule: the sender is blocked at XDP after the rule decides.
	if err := peerSend(n, "tcp", srv, "GET / HTTP/1.0\r\nX-Test: VIGIL-LAB-MARKER\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	al = col.waitFor(t, "lab-marker alert", alert("lab-marker"))
	if want := fmt.Sprintf("marker from %s to local port %d", n.PeerIP, srv.Port()); al.Alert.Message != want {
		t.Errorf("message %q, want %q", al.Alert.Message, want)
	}
	col.waitFor(t, "block-ip of the sender", func(e *event.Event) bool {
		return e.Kind == event.KindResponse && e.Response.RuleID == "lab-marker" && e.Response.Action == "block-ip" &&
			strings.HasPrefix(e.Response.Target, n.PeerIP.String()+"/32") && e.Response.Outcome == event.ResponseDone
	})
	if err := peerSend(n, "tcp", srv, "after the block"); err == nil {
		t.Error("the blocked peer still connects")
	}

	st := a.Status()
	if st.Network == nil || st.Network.Defence == nil {
		t.Fatalf("status has no network defence: %+v", st.Network)
	}
	d := st.Network.Defence
	if d.PayloadRules != 6 || d.Kernel.PayloadMatches < 3 || d.Kernel.PayloadDrops < 1 || d.Blocked < 1 {
		t.Errorf("status: %d payload rules (want 4 built-in + 2), %d matches (want 3+), %d drops (want 1+), %d blocked",
			d.PayloadRules, d.Kernel.PayloadMatches, d.Kernel.PayloadDrops, d.Blocked)
	}

}
