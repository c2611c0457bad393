package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/testenv"
)

// TestBlocksAndIsolationSurviveAgentRestart: blocks and isolation set with
// the CLI on a running `vigil run` outlive a SIGTERM and are in force again
// after the next start. The agent's pins are in a directory of the test's
// own, and its XDP and tcx programs go on one interface only: the host end
// of a veth pair whose other end is in a network namespace the test made,
// so blocks and isolation act on that link alone (the cgroup connect and
// bind hooks, attached host-wide, consult deny rules and threat intel,
// never the block list or isolation). A permanent block of the peer's
// address and isolation are checked by connecting from the peer; a timed
// block (198.51.100.7 for 1h) by the pinned list.
func TestBlocksAndIsolationSurviveAgentRestart(t *testing.T) {
	testenv.SkipInGuest(t, "the agent starts slower under emulation than the test waits")
	testenv.RequirePrivileged(t)
	testenv.RequireKernel(t, 6, 6, "tcx links, which the XDP/tcx programs attach with")
	testenv.RequireCommand(t, "ip")
	bin := vigil(t)
	dir := t.TempDir()
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	pin := "/sys/fs/bpf/vigil-test-" + id
	t.Cleanup(func() {
		if g, err := netguard.OpenPinned(pin); err == nil {
			g.Remove()
		}
		os.RemoveAll(pin)
	})

	// The veth pair, the host end guarded, the peer end in the namespace.
	n := testenv.NewNetns(t, 237, "vrt")
	ns, hostIf, hostIP, peerIP := n.Name, n.HostIf, n.HostIP, n.PeerIP
	port := testenv.TCPServer(t, hostIP.String()+":0").Port()
	// dial connects from the peer to the host: "ok" or "refused or timeout".
	dial := func() string {
		err := exec.Command("ip", "netns", "exec", ns, "timeout", "2", "bash", "-c",
			fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", hostIP, port)).Run()
		if err != nil {
			return "no connection"
		}
		return "ok"
	}
	// expect retries dial until it gives want (the veth takes a moment to
	// come up; the agent a moment to attach).
	expect := func(what, want string) {
		t.Helper()
		got := ""
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if got = dial(); got == want || time.Now().After(deadline) {
				break
			}
		}
		if got != want {
			t.Fatalf("%s: connect from the peer: %s, want %s", what, got, want)
		}
	}

	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output: %s
status_socket: %s
store:
  path: %s
web:
  listen: ""
metrics:
  listen: ""
ransomware:
  kill: false
  kernel_kill: false
netdefense:
  enabled: false
response:
  pin_dir: %s
  interfaces: [%s]
`, filepath.Join(dir, "events.json"), filepath.Join(dir, "status.sock"), filepath.Join(dir, "vigil.db"), pin, hostIf)), 0o600)
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vigil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var agent *exec.Cmd
	var stderr *lockedBuffer
	start := func() {
		t.Helper()
		stderr = &lockedBuffer{}
		agent = exec.Command(bin, "run", "--config", cfg)
		agent.Stderr = stderr
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "agent start", stderr, "process cache filled")
		if out := cli("status"); !strings.Contains(out, "network enforcement attached; ingress map["+hostIf+":") {
			t.Fatalf("status does not say network enforcement is attached on %s:\n%s", hostIf, out)
		}
	}
	stop := func() {
		t.Helper()
		if agent == nil {
			return
		}
		agent.Process.Signal(syscall.SIGTERM)
		if err := agent.Wait(); err != nil {
			t.Errorf("vigil run after SIGTERM: %v\n%s", err, stderr.String())
		}
		agent = nil
	}
	defer stop()
	pinnedBlocks := func() map[string]bool { // prefix -> has an expiry
		t.Helper()
		g, err := netguard.OpenPinned(pin)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		bl, err := g.List()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, b := range bl {
			out[b.Prefix.String()] = !b.Until.IsZero()
			if !b.Until.IsZero() && time.Until(b.Until) < 50*time.Minute {
				t.Errorf("block %v expires at %v, want about an hour from now", b.Prefix, b.Until)
			}
		}
		return out
	}
	peer := peerIP.String() + "/32"
	wantBlocks := fmt.Sprint(map[string]bool{"198.51.100.7/32": true, peer: false})

	start()
	expect("before any block", "ok")
	cli("block", "add", "198.51.100.7", "--for", "1h")
	cli("block", "add", peerIP.String())
	expect("peer blocked", "no connection")

	stop()
	if got := fmt.Sprint(pinnedBlocks()); got != wantBlocks {
		t.Errorf("pinned blocks with the agent stopped: %s, want %s", got, wantBlocks)
	}

	start()
	if got := fmt.Sprint(pinnedBlocks()); got != wantBlocks {
		t.Errorf("pinned blocks after the restart: %s, want %s", got, wantBlocks)
	}
	out := cli("block", "list")
	for _, want := range []string{"198.51.100.7/32", peer} {
		if !strings.Contains(out, want) {
			t.Errorf("block list after the restart lacks %s:\n%s", want, out)
		}
	}
	expect("peer blocked, after the restart", "no connection")
	cli("block", "remove", peerIP.String())
	expect("peer unblocked", "ok")

	// Isolation: everything on the link but the allow list is dropped.
	cli("isolate", "on", "--allow", "192.0.2.0/24")
	expect("isolated", "no connection")
	stop()
	g, err := netguard.OpenPinned(pin)
	if err != nil {
		t.Fatal(err)
	}
	iso, allow, err := g.Isolation()
	g.Close()
	if !iso || fmt.Sprint(allow) != "[192.0.2.0/24]" || err != nil {
		t.Errorf("pinned isolation with the agent stopped: %v %v %v, want isolated, allowing 192.0.2.0/24", iso, allow, err)
	}
	start()
	if out := cli("isolate", "status"); !strings.Contains(out, "isolated; allowed") || !strings.Contains(out, "192.0.2.0/24") {
		t.Errorf("isolate status after the restart:\n%s", out)
	}
	expect("isolated, after the restart", "no connection")
	cli("isolate", "off")
	expect("isolation lifted", "ok")
}
