package intel

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAddrs(t *testing.T) {
	in := `# FireHOL-style header
1.2.3.4
10.0.0.0/8
192.0.2.0/24 ; SBL123
2001:db8::/32
not-an-address
"2024-01-01 00:00:00","198.51.100.7","443","online","2024-01-02","QakBot"
"2024-01-01","203.0.113.9:8080","botnet_cc"
"only","words","here"
300.1.2.3/8
; comment
// comment
::ffff:192.0.2.9
`
	r, err := ParseAddrs(strings.NewReader(in), "feed.netset")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.Prefixes {
		got = append(got, p.String())
	}
	want := []string{"1.2.3.4/32", "10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32", "203.0.113.9/32", "192.0.2.9/32"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("prefixes (-want +got):\n%s", d)
	}
	var errs []string
	for _, e := range r.Errors {
		errs = append(errs, e.Error())
	}
	wantErrs := []string{
		`feed.netset:6: not an address or CIDR: "not-an-address"`,
		`feed.netset:9: no address or CIDR in any field: "\"only\",\"words\",\"here\""`,
		`feed.netset:10: not an address or CIDR: "300.1.2.3/8"`,
	}
	if d := cmp.Diff(wantErrs, errs); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
}

func TestParseDomains(t *testing.T) {
	in := `# hosts file and plain
0.0.0.0 Pool.Evil.Example
evil2.example.
*.wild.example
bad_domain!
nodot
"1","2024-01-01","http://dl.malware.example:8080/x.sh","online"
"1","2024-01-01","http://192.0.2.1/x.sh"
`
	r, err := ParseDomains(strings.NewReader(in), "d.txt")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"pool.evil.example", "evil2.example", "wild.example", "dl.malware.example"}, r.Domains); d != "" {
		t.Errorf("domains (-want +got):\n%s", d)
	}
	if r.Bad != 3 || r.Errors[0].Line != 5 || r.Errors[1].Line != 6 || r.Errors[2].Line != 8 {
		t.Errorf("errors %v (%d bad): want lines 5, 6 and 8", r.Errors, r.Bad)
	}
}

func TestSetLookupAndReload(t *testing.T) {
	dir := t.TempDir()
	ips := filepath.Join(dir, "ips.netset")
	doms := filepath.Join(dir, "doms.txt")
	os.WriteFile(ips, []byte("10.0.0.0/8\n10.1.2.3\n2001:db8::/32\nbogus\n"), 0o644)
	os.WriteFile(doms, []byte("evil.example\n"), 0o644)
	s, errs := Load([]List{{Path: ips, Kind: KindIP}, {Name: "doms", Path: doms, Kind: KindDomain, Block: true}, {Path: filepath.Join(dir, "missing")}})
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "ips.netset:4") || !strings.Contains(errs[1].Error(), "missing") {
		t.Errorf("errors %v: want the bad line and the missing file", errs)
	}
	for _, c := range []struct {
		addr, match string
		ok          bool
	}{
		{"10.1.2.3", "10.1.2.3/32", true}, {"10.9.9.9", "10.0.0.0/8", true}, {"::ffff:10.9.9.9", "10.0.0.0/8", true},
		{"11.0.0.1", "", false}, {"2001:db8::1", "2001:db8::/32", true}, {"2001:db9::1", "", false},
	} {
		h, ok := s.Addr(netip.MustParseAddr(c.addr))
		if ok != c.ok || h.Match != c.match || ok && h.Name != "ips.netset" {
			t.Errorf("Addr(%s) = %+v, %v; want %q, %v", c.addr, h, ok, c.match, c.ok)
		}
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{{"evil.example", true}, {"A.B.Evil.Example.", true}, {"notevil.example", false}, {"example", false}} {
		h, ok := s.Domain(c.name)
		if ok != c.ok || ok && (h.Name != "doms" || !h.Block || h.Match != "evil.example") {
			t.Errorf("Domain(%s) = %+v, %v", c.name, h, ok)
		}
	}
	if s.Changed() {
		t.Error("Changed before any change")
	}
	os.WriteFile(doms, []byte("evil.example\nother.example\n"), 0o644)
	if !s.Changed() {
		t.Error("not Changed after a list grew")
	}
}
