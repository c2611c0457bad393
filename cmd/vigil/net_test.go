package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/detect/netdef"
	"github.com/vigilsec/vigil/internal/testenv"
)

// vigil net top: a source sending to the test's veth shows up as the
// busiest, with its rates, in JSON and in the table; vigil status sums up
// network defence.
func TestNetTop(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.RequireKernel(t, 6, 6, "tcx links, which network enforcement attaches with")
	bin := vigil(t)
	n := testenv.NewNetns(t, 235, "vnt")
	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	pin := "/sys/fs/bpf/vigil-test-" + filepath.Base(dir)
	t.Cleanup(func() { os.RemoveAll(pin) })
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output: %s
status_socket: %s
store:
  path: ""
web:
  listen: ""
metrics:
  listen: ""
ransomware:
  kill: false
  kernel_kill: false
response:
  pin_dir: %s
  interfaces: [%s]
netdefense:
  enabled: true
  poll: 200ms
  flood:
    enabled: false
`, filepath.Join(dir, "events.json"), sock, pin, n.HostIf)), 0o644)
	_, stderr := startAgent(t, bin, cfg)

	// About 200 datagrams a second from the peer while the test looks.
	sender := exec.Command("ip", "netns", "exec", n.Name, "timeout", "20", "bash", "-c",
		fmt.Sprintf(`while :; do for i in 1 2 3 4 5 6 7 8 9 10; do echo x >/dev/udp/%s/9; done; sleep 0.05; done`, n.HostIP))
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sender.Process.Kill(); sender.Wait() }()

	var top netdef.Talkers
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(bin, "net", "top", "--socket", sock, "-o", "json", "-n", "5").Output()
		if err != nil {
			t.Fatalf("vigil net top: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatalf("vigil net top -o json: %v\n%s", err, out)
		}
		if len(top.Top) > 0 && top.Top[0].Addr == n.PeerIP && top.Top[0].PPS > 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer %s is not the busiest source after 10s: %+v\nagent log:\n%s", n.PeerIP, top, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p := top.Top[0]; p.BitsPS <= 0 || p.Packets == 0 || p.Bytes == 0 || p.Blocked || len(top.Top) > 5 || top.Interval <= 0 {
		t.Errorf("peer %+v in %+v", p, top)
	}
	out, err := exec.Command(bin, "net", "top", "--socket", sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SOURCE") || !strings.Contains(string(out), n.PeerIP.String()) {
		t.Errorf("vigil net top: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "status", "--socket", sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "network defence: ") || !strings.Contains(string(out), "4 payload rules") {
		t.Errorf("vigil status: %v\n%s", err, out)
	}
	// Without network defence, net top says so.
	cfg2 := filepath.Join(dir, "off.yaml")
	os.WriteFile(cfg2, []byte(fmt.Sprintf("status_socket: %s\n", filepath.Join(dir, "none.sock"))), 0o644)
	if out, err := exec.Command(bin, "net", "top", "--config", cfg2).CombinedOutput(); err == nil {
		t.Errorf("net top without an agent: %s", out)
	}
}
