package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSandboxesConfig(t *testing.T) {
	cfg, err := Load(write(t, `sandboxes:
  - name: web
    match:
      names: [web-*]
      images: ["nginx:*"]
    exec: [/usr/sbin/nginx, /usr/lib/]
    write: [/tmp/, /var/log/nginx/]
    connect: ["10.0.0.0/8:5432", "127.0.0.1:8000-8100", "[2001:db8::/32]:443", "*:53", "192.0.2.7:*"]
  - name: batch
    mode: audit
    match:
      cgroups: [/system.slice/docker-*.scope]
    write: []
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Sandboxes{
		{Name: "web", Line: 2, Mode: "enforce", Match: SandboxMatch{Names: []string{"web-*"}, Images: []string{"nginx:*"}},
			Exec: []string{"/usr/sbin/nginx", "/usr/lib/"}, Write: []string{"/tmp/", "/var/log/nginx/"},
			Connect: []string{"10.0.0.0/8:5432", "127.0.0.1:8000-8100", "[2001:db8::/32]:443", "*:53", "192.0.2.7:*"},
			HasExec: true, HasWrite: true, HasConnect: true,
			Destinations: []SandboxDest{
				{Prefix: netip.MustParsePrefix("10.0.0.0/8"), PortLo: 5432, PortHi: 5432},
				{Prefix: netip.MustParsePrefix("127.0.0.1/32"), PortLo: 8000, PortHi: 8100},
				{Prefix: netip.MustParsePrefix("2001:db8::/32"), PortLo: 443, PortHi: 443},
				{PortLo: 53, PortHi: 53},
				{Prefix: netip.MustParsePrefix("192.0.2.7/32"), PortLo: 0, PortHi: 65535},
			}},
		{Name: "batch", Line: 9, Mode: "audit", Match: SandboxMatch{Cgroups: []string{"/system.slice/docker-*.scope"}},
			Write: []string{}, HasWrite: true},
	}
	if diff := cmp.Diff(want, cfg.Sandboxes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var got []string
	for _, d := range cfg.Sandboxes[0].Destinations {
		got = append(got, d.String())
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8:5432", "127.0.0.1/32:8000-8100", "[2001:db8::/32]:443", "*:53", "192.0.2.7/32:*"}, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

// Every problem is reported at once, each with the file and its line.
func TestSandboxesConfigErrors(t *testing.T) {
	body := `sandboxes:
  - name: Web
    match: {names: ["web-["]}
    exec: [usr/bin/x, /a/../b]
    write: /tmp
    connect: ["10.0.0.0/8", "10.0.0.0/33:80", "2001:db8::1:443", "1.2.3.4:70000", "1.2.3.4:9-1"]
    mode: strict
    wirte: []
  - name: empty
    match: {}
  - name: dup
    match: {images: [x]}
    exec: []
  - name: dup
    match: {images: [y], labels: [z]}
    exec: []
`
	_, err := Load(write(t, body))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"vigil.yaml: line 2: sandboxes: name \"Web\"",
		`line 3: sandboxes: match.names: "web-[" is not a glob`,
		`line 4: sandboxes: exec: "usr/bin/x" is not an absolute path`,
		`line 4: sandboxes: exec: "/a/../b" is not a clean path`,
		"line 5: sandboxes: write: want a list",
		`line 6: sandboxes: connect: "10.0.0.0/8": want address:port`,
		`line 6: sandboxes: connect: "10.0.0.0/33:80"`,
		`line 6: sandboxes: connect: "2001:db8::1:443": write IPv6 addresses in brackets`,
		`line 6: sandboxes: connect: "1.2.3.4:70000": port "70000"`,
		`line 6: sandboxes: connect: "1.2.3.4:9-1": port range`,
		`line 7: sandboxes: mode "strict" is not one of enforce, audit`,
		`line 8: sandboxes: unknown key "wirte" in profile`,
		`line 9: sandboxes: profile "empty" matches no container`,
		`line 9: sandboxes: profile "empty" restricts nothing`,
		`line 14: sandboxes: duplicate profile name "dup" (first at line 11)`,
		`line 15: sandboxes: unknown key "labels" in match`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, strings.ReplaceAll(msg, "; ", "\n"))
		}
	}
}
