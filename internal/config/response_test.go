package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestResponseSection(t *testing.T) {
	got, err := Load(write(t, `response:
  dry_run: true
  never_block: [10.0.0.0/8, 192.0.2.7, "2001:db8::1/32"]
  isolate_allow: [198.51.100.0/24]
  block_for: 10m
  interfaces: []
`))
	if err != nil {
		t.Fatal(err)
	}
	r := got.Response
	if !r.DryRun || r.BlockFor.D() != 10*time.Minute || len(r.Interfaces) != 0 || r.RateLimit != 10 || !r.FailOpen {
		t.Errorf("response %+v", r)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	for i, p := range Prefixes(r.NeverBlock) {
		if p != want[i] {
			t.Errorf("never_block[%d] = %v, want %v", i, p, want[i])
		}
	}
}

func TestResponseErrors(t *testing.T) {
	for body, want := range map[string]string{
		"response:\n  isolate_allow:\n    - 10.0.0.0/8\n    - 10.0.0.300\n": `line 4: "10.0.0.300" is not an address or CIDR`,
		"response:\n  rate_limit: -1\n":                                     "response.rate_limit: -1 must not be negative",
		"response:\n  allow_programs: [sshd]\n":                             `response.allow_programs: "sshd" is not an absolute path`,
		"response:\n  decision_timeout: soon\n":                             `line 2: "soon" is not a duration`,
	} {
		p := write(t, body)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want the file and %q", body, err, want)
		}
	}
}
