package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/testenv"
)

// vigil block and vigil isolate change the maps an agent pinned.
func TestBlockAndIsolateCommands(t *testing.T) {
	testenv.RequirePrivileged(t)
	bin := vigil(t)
	dir := t.TempDir()
	pin := "/sys/fs/bpf/vigil-test-" + filepath.Base(dir)
	g, err := netguard.Open(netguard.Config{PinDir: pin}) // the maps an agent pins, nothing attached
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	cfg := filepath.Join(dir, "vigil.yaml")
	db := filepath.Join(dir, "vigil.db")
	os.WriteFile(cfg, []byte(fmt.Sprintf("response:\n  pin_dir: %s\n  isolate_allow: [192.0.2.0/24]\nstore:\n  path: %s\n", pin, db)), 0o644)
	// What an agent's store holds of a detector's block: the response event.
	st, err := store.Open(store.Options{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []event.Response{
		{RuleID: "netdef-flood-source", Action: "block-ip", Target: "203.0.113.0/24 for 10m0s", Outcome: event.ResponseDone, Reason: "over packets/s\n\x1b[31min the kernel"},
		{RuleID: "other", Action: "block-ip", Target: "198.51.100.7/32 for 1h", Outcome: event.ResponseRefused, Reason: "refused ones are not why"},
	} {
		e := event.NewResponse(r, nil)
		e.Time = time.Now()
		st.Write(e)
	}
	st.Close()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vigil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("block", "add", "198.51.100.7", "2001:db8::/32", "--for", "1h")
	run("block", "add", "203.0.113.0/24")
	bl, err := g.List()
	if err != nil || len(bl) != 3 {
		t.Fatalf("List = %+v, %v", bl, err)
	}
	out := run("block", "list")
	for _, want := range []string{"198.51.100.7/32", "2001:db8::/32", "203.0.113.0/24", "removed", "manual",
		`netdef-flood-source: over packets/s\n\e[31min the kernel (`, "vigil block add"} {
		if !strings.Contains(out, want) {
			t.Errorf("block list lacks %q:\n%s", want, out)
		}
	}
	run("block", "remove", "198.51.100.7")
	if bl, _ := g.List(); len(bl) != 2 {
		t.Errorf("after remove: %+v", bl)
	}
	if out, err := exec.Command(bin, "block", "add", "300.1.1.1", "--config", cfg).CombinedOutput(); err == nil || !strings.Contains(string(out), `"300.1.1.1" is not an address or CIDR`) {
		t.Errorf("bad address: %v %s", err, out)
	}

	run("isolate", "on", "--allow", "10.9.0.0/16")
	iso, allow, _ := g.Isolation()
	want := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")}
	if !iso || fmt.Sprint(allow) != fmt.Sprint(want) {
		t.Errorf("isolation %v %v, want %v", iso, allow, want)
	}
	if out := run("isolate", "status"); !strings.Contains(out, "isolated; allowed") {
		t.Errorf("status: %s", out)
	}
	run("isolate", "off")
	if iso, _, _ := g.Isolation(); iso {
		t.Error("still isolated after isolate off")
	}
}
