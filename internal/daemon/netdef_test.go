package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// Through the agent: a process's DNS query for a domain of a list (seen by
// the net sensor) raises an alert with the process, and its next connect is
// attributed to the domain; the list says block, and loopback is refused
// as never blocked.
func TestNetDefenseDomainListThroughTheAgent(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "pools.txt")
	if err := os.WriteFile(list, []byte("# pools\npool.evil.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.NetDefense.Intel.Lists = []config.IntelList{{Name: "pools", Path: list, Kind: "domain", Action: "block"}}
	cg := testenv.NewCgroup(t)
	col := newCollector(cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), col)
	if err != nil {
		t.Fatal(err)
	}
	if a.netdef == nil {
		t.Fatal("network defence not started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()

	port := testenv.TCPServer(t, "127.0.0.1:0").Port()
	script := fmt.Sprintf(`import socket, struct
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in "x.pool.evil.example".split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(q, ("127.0.0.1", 53))
socket.create_connection(("127.0.0.1", %d)).close()
`, port)
	if out, err := cg.Command("python3", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("trigger: %v: %s", err, out)
	}
	isAlert := func(rule, text string) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindAlert && e.Alert.RuleID == rule && strings.Contains(e.Alert.Message, text)
		}
	}
	dns := col.waitFor(t, "netdef-intel-dns alert", isAlert("netdef-intel-dns", "asked for x.pool.evil.example, listed in pools"))
	if !strings.HasSuffix(dns.Process.Executable, "python3") && !strings.Contains(dns.Process.Executable, "python") {
		t.Errorf("alert's process %q, want python3", dns.Process.Executable)
	}
	col.waitFor(t, "netdef-intel-domain-connect alert", isAlert("netdef-intel-domain-connect", fmt.Sprintf("connected to 127.0.0.1:%d", port)))
	col.waitFor(t, "refused block response", func(e *event.Event) bool {
		return e.Kind == event.KindResponse && e.Response.RuleID == "netdef-intel-domain-connect" && e.Response.Outcome == event.ResponseRefused
	})
}
