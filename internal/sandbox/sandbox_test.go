package sandbox

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
)

func load(t *testing.T, body string) *Policy {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg.Sandboxes)
}

const policy = `sandboxes:
  - name: web
    match: {names: ["web-*"], images: ["nginx:*"]}
    exec: [/usr/sbin/nginx, /usr/lib/nginx/]
    write: [/tmp/, /var/run/nginx.pid]
    connect: ["10.0.0.0/8:5432", "[2001:db8::/32]:443", "*:53"]
  - name: any-docker
    mode: audit
    match: {cgroups: ["/system.slice/docker-*.scope"]}
    connect: []
`

func TestMatch(t *testing.T) {
	p := load(t, policy)
	for _, tt := range []struct {
		c    event.Container
		want string
	}{
		{event.Container{Name: "web-1", Image: "nginx:1.27", CgroupPath: "/system.slice/docker-ab.scope"}, "web"},
		// Every list given must match: the image is not nginx's.
		{event.Container{Name: "web-1", Image: "httpd:2", CgroupPath: "/system.slice/docker-ab.scope"}, "any-docker"},
		{event.Container{Name: "web-1", Image: "httpd:2", CgroupPath: "/kubepods/besteffort/podx/ab"}, ""},
		// * does not cross /.
		{event.Container{CgroupPath: "/system.slice/x/docker-ab.scope"}, ""},
		// A name not known yet matches no name glob.
		{event.Container{Image: "nginx:1"}, ""},
	} {
		got := ""
		if pr := p.Match(&tt.c); pr != nil {
			got = pr.Name
		}
		if got != tt.want {
			t.Errorf("%+v: profile %q, want %q", tt.c, got, tt.want)
		}
	}
	if p.Match(nil) != nil {
		t.Error("the host matched a profile")
	}
}

func TestAllowed(t *testing.T) {
	p := load(t, policy)
	web, audit := p.Profiles[0], p.Profiles[1]
	if web.ID != 1 || audit.ID != 2 || !web.Enforce || audit.Enforce || audit.Mode() != "audit" || web.Ruleset() != "sandbox:web" {
		t.Errorf("profiles %+v %+v", web, audit)
	}
	for _, tt := range []struct {
		what string
		got  bool
		want bool
	}{
		{"exec nginx", web.ExecAllowed("/usr/sbin/nginx"), true},
		{"exec in the tree", web.ExecAllowed("/usr/lib/nginx/modules/x.so"), true},
		{"exec the tree's directory itself", web.ExecAllowed("/usr/lib/nginx"), false},
		{"exec a sibling with the prefix", web.ExecAllowed("/usr/lib/nginxx/y"), false},
		{"exec sh", web.ExecAllowed("/bin/sh"), false},
		{"exec unchecked", audit.ExecAllowed("/bin/sh"), true},
		{"write /tmp", web.WriteAllowed("/tmp/a/b"), true},
		{"write pid file", web.WriteAllowed("/var/run/nginx.pid"), true},
		{"write deleted tmp file", web.WriteAllowed("/tmp/x (deleted)"), true},
		{"write /etc", web.WriteAllowed("/etc/passwd"), false},
		{"write /dev/null", web.WriteAllowed("/dev/null"), true},
		{"write a pty", web.WriteAllowed("/dev/pts/3"), true},
		{"write /dev/sda", web.WriteAllowed("/dev/sda"), false},
		{"write unchecked", audit.WriteAllowed("/etc/passwd"), true},
		{"connect db", web.ConnectAllowed(netip.MustParseAddrPort("10.2.3.4:5432")), true},
		{"connect db, mapped", web.ConnectAllowed(netip.MustParseAddrPort("[::ffff:10.2.3.4]:5432")), true},
		{"connect db, other port", web.ConnectAllowed(netip.MustParseAddrPort("10.2.3.4:5433")), false},
		{"connect v6", web.ConnectAllowed(netip.MustParseAddrPort("[2001:db8::1]:443")), true},
		{"connect dns anywhere", web.ConnectAllowed(netip.MustParseAddrPort("192.0.2.1:53")), true},
		{"connect elsewhere", web.ConnectAllowed(netip.MustParseAddrPort("192.0.2.1:443")), false},
		{"connect, empty allowlist", audit.ConnectAllowed(netip.MustParseAddrPort("10.2.3.4:5432")), false},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

func TestAlert(t *testing.T) {
	p := load(t, policy)
	trig := &event.Event{Kind: event.KindExec, Process: event.Process{PID: 42, Executable: "/bin/sh"}, Origin: event.OriginContainer,
		Container: &event.Container{ID: "4f2c9a0b1e3d4f2c9a0b1e3d", Name: "web-1"}}
	al := p.Profiles[0].Alert(RuleExec, trig, "deny", "/bin/sh refused")
	b, err := json.Marshal(al)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"rule":{"id":"sandbox-exec"`, `"ruleset":"sandbox:web"`, `"message":"sandbox web (enforce): /bin/sh refused in web-1"`,
		`"response":"deny"`, `"container":{"id":"4f2c9a0b1e3d4f2c9a0b1e3d"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("alert lacks %s:\n%s", want, b)
		}
	}
}
