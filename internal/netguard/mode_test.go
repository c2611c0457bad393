package netguard

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// XDPMode picks how XDP attaches (or tcx ingress in its place; auto picks
// tcx on a veth), and the accounting and the block list work in each mode.
func TestXDPModes(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.RequireKernel(t, 6, 6, "tcx links, which the interface programs attach with")
	n := testenv.NewNetns(t, 236, "vgm")
	for _, mode := range []string{"native", "generic", "tcx", ""} {
		t.Run("mode="+mode, func(t *testing.T) {
			dir := "/sys/fs/bpf/vigil-test-mode-" + randHex(4)
			t.Cleanup(func() { os.RemoveAll(dir) }) // also when Open fails after pinning
			g, err := Open(Config{PinDir: dir, Interfaces: []string{n.HostIf}, XDPMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Remove()
			want := mode
			if mode == "" {
				want = "tcx" // auto, on a veth
			}
			if got := g.XDPModes()[n.HostIf]; got != want {
				t.Fatalf("attached in %q mode, want %q", got, want)
			}
			ap := testenv.TCPServer(t, n.HostIP.String()+":0")
			ping := func() bool {
				return exec.Command("ip", "netns", "exec", n.Name, "timeout", "2", "bash", "-c",
					fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", ap.Addr(), ap.Port())).Run() == nil
			}
			deadline := time.Now().Add(5 * time.Second)
			for !ping() {
				if time.Now().After(deadline) {
					t.Fatal("no connect through the veth before the block")
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := g.SetAccounting(Accounting{Enabled: true, PPS: 1 << 40, BlockFor: time.Minute, PairWindow: time.Minute, UDPPortMax: 32768}); err != nil {
				t.Fatal(err)
			}
			ping()
			srcs, err := g.Sources()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(srcs, func(s SourceStats) bool { return s.Addr == n.PeerIP && s.Packets > 0 && s.SYNs > 0 }) {
				t.Errorf("%s: the peer's connect is not in the accounting: %+v", mode, srcs)
			}
			if err := g.Block(netip.PrefixFrom(n.PeerIP, 32), time.Time{}, SourceManual); err != nil {
				t.Fatal(err)
			}
			if ping() {
				t.Errorf("%s: the blocked peer still connects", mode)
			}
		})
	}
	if _, err := Open(Config{PinDir: "/sys/fs/bpf/vigil-test-mode-x", Interfaces: []string{"lo"}, XDPMode: "native"}); err == nil ||
		!strings.Contains(err.Error(), "attach xdp to lo") {
		t.Errorf("native mode on lo (no driver XDP): %v, want an attach error", err)
	}
	os.RemoveAll("/sys/fs/bpf/vigil-test-mode-x")
}
