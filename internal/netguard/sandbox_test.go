package netguard

import (
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/testenv"
)

func TestSandboxEntries(t *testing.T) {
	e := sandboxEntries(3, []NetAllow{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), PortLo: 5432, PortHi: 5432},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), PortLo: 80, PortHi: 81},
		{PortLo: 53, PortHi: 53}, // any address
	})
	got := map[string][]int{}
	for k, v := range e {
		if k.Profile != 3 {
			t.Errorf("key %+v: profile %d", k, k.Profile)
		}
		name := netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)-32).String()
		for p := 0; p < 65536; p++ {
			if v.Bits[p>>3]&(1<<(p&7)) != 0 {
				got[name] = append(got[name], p)
			}
		}
	}
	// The /16 holds the /8's port and the any-address port too: the kernel
	// finds the longest prefix only.
	want := map[string][]int{
		"::ffff:10.0.0.0/104": {53, 5432},
		"::ffff:10.1.0.0/112": {53, 80, 81, 5432},
		"::/0":                {53},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// udpSend sends one datagram with sendto (no connect) from the cgroup.
func udpSend(t *testing.T, cg *testenv.Cgroup, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := cg.Command("python3", "-c", `import socket,sys
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2]))); print("ok")
except PermissionError: print("EPERM")
`, host, port)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// A profile's hooks on one test cgroup refuse what the profile does not
// list, for that cgroup only; another test cgroup is untouched.
func TestSandboxNet(t *testing.T) {
	testenv.RequirePrivileged(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is needed for the sendto check: %v", err)
	}
	boxed, free := testenv.NewCgroup(t), testenv.NewCgroup(t)
	s, err := OpenSandboxNet()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allowed, denied := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	ap := netip.MustParseAddrPort(allowed)
	if err := s.SetProfile(7, []NetAllow{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), PortLo: ap.Port(), PortHi: ap.Port()}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Attach(7, boxed.Path); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cg         *testenv.Cgroup
		addr, want string
	}{
		{boxed, allowed, "ok"},
		{boxed, denied, "EPERM"},
		{free, allowed, "ok"},
		{free, denied, "ok"},
	} {
		if got := helperOut(t, inCgroup(tt.cg, "dial", tt.addr)); got != tt.want {
			t.Errorf("connect from %s to %s: %s, want %s", tt.cg.Path, tt.addr, got, tt.want)
		}
	}
	// sendto without connect goes through the sendmsg hooks.
	udpDenied := "127.0.0.1:" + strconv.Itoa(int(netip.MustParseAddrPort(denied).Port()))
	if got := udpSend(t, boxed, udpDenied); got != "EPERM" {
		t.Errorf("sendto from the sandboxed cgroup to %s: %s, want EPERM", udpDenied, got)
	}
	if got := udpSend(t, free, udpDenied); got != "ok" {
		t.Errorf("sendto from the other cgroup to %s: %s, want ok", udpDenied, got)
	}
	if n, err := s.Denied(7); err != nil || n != 2 {
		t.Errorf("denied count %d (%v), want 2", n, err)
	}
	// The allowlist changes in place; detaching lifts everything.
	if err := s.SetProfile(7, nil); err != nil {
		t.Fatal(err)
	}
	if got := helperOut(t, inCgroup(boxed, "dial", allowed)); got != "EPERM" {
		t.Errorf("empty allowlist: connect to %s: %s, want EPERM", allowed, got)
	}
	if err := s.Detach(boxed.Path); err != nil {
		t.Fatal(err)
	}
	if got := helperOut(t, inCgroup(boxed, "dial", denied)); got != "ok" {
		t.Errorf("detached: connect to %s: %s, want ok", denied, got)
	}
}
