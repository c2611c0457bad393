package config

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sandboxes is the `sandboxes:` section: per-container allowlists of
// programs, writable paths and network destinations (docs/containers.md,
// "Sandboxes"). A container takes the first profile that matches it.
type Sandboxes []Sandbox

// Sandbox is one profile. Paths are the container's own (as seen inside it).
type Sandbox struct {
	// Name names the profile in alerts (rule.ruleset sandbox:<name>).
	Name string `yaml:"name"`
	// Match says which containers the profile applies to.
	Match SandboxMatch `yaml:"match"`
	// Mode is enforce (the default: deny what is not allowed, and alert) or audit
	// (alert only).
	Mode string `yaml:"mode"`
	// Exec are the programs the container may run: files, or directories
	// (ending in /) for everything below them. Absent (no exec key): any
	// program; empty: none.
	Exec []string `yaml:"exec"`
	// Write are the files, or directories (ending in /), the container may
	// open for writing. Empty: nowhere (but /dev/null and the terminal).
	// Absent (no write key): anywhere.
	Write []string `yaml:"write"`
	// Connect are the destinations the container may connect or send to:
	// CIDR:port, address:port, [IPv6 CIDR]:port; port is a number, a range
	// lo-hi or *; * for the address is any. Empty: none. Absent: any.
	Connect []string `yaml:"connect"`

	// Line is the profile's line in the configuration file.
	Line int `yaml:"-"`
	// HasExec, HasWrite, HasConnect: the key was given (an empty list
	// allows nothing; an absent key leaves that part unchecked).
	HasExec, HasWrite, HasConnect bool `yaml:"-"`
	// Destinations are Connect parsed.
	Destinations []SandboxDest `yaml:"-"`
}

// SandboxMatch selects containers by glob (path.Match: * does not cross
// /). Every list given must match (one of its patterns); at least one is
// required.
type SandboxMatch struct {
	// Names are globs of the container's name (docker's, the CRI's, ...).
	Names []string `yaml:"names"`
	// Images are globs of the container's image (busybox:1.36, nginx:*).
	Images []string `yaml:"images"`
	// Cgroups are globs of the container's cgroup path, relative to the
	// hierarchy's root (/system.slice/docker-*.scope).
	Cgroups []string `yaml:"cgroups"`
}

// SandboxDest is one allowed destination: an address prefix and a port
// range (0-65535 for any).
type SandboxDest struct {
	Prefix         netip.Prefix
	PortLo, PortHi uint16
}

func (d SandboxDest) String() string {
	addr := "*"
	if d.Prefix.IsValid() {
		addr = d.Prefix.String()
		if d.Prefix.Addr().Is6() {
			addr = "[" + addr + "]"
		}
	}
	port := strconv.Itoa(int(d.PortLo))
	switch {
	case d.PortLo == 0 && d.PortHi == 65535:
		port = "*"
	case d.PortLo != d.PortHi:
		port += "-" + strconv.Itoa(int(d.PortHi))
	}
	return addr + ":" + port
}

var (
	sandboxKeys     = []string{"name", "match", "mode", "exec", "write", "connect"}
	sandboxMatchKey = []string{"names", "images", "cgroups"}
	sandboxName     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// UnmarshalYAML reads the profiles and reports every problem with its
// line, all at once.
func (s *Sandboxes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		if n.Tag == "!!null" {
			*s = nil
			return nil
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: sandboxes: want a list of profiles", n.Line)}}
	}
	var errs []string
	seen := map[string]int{}
	out := Sandboxes{}
	for _, item := range n.Content {
		sb, e := parseSandbox(item)
		errs = append(errs, e...)
		if sb.Name != "" {
			if first, ok := seen[sb.Name]; ok {
				errs = append(errs, fmt.Sprintf("line %d: sandboxes: duplicate profile name %q (first at line %d)", item.Line, sb.Name, first))
			}
			seen[sb.Name] = item.Line
		}
		out = append(out, sb)
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	*s = out
	return nil
}

func parseSandbox(n *yaml.Node) (Sandbox, []string) {
	sb := Sandbox{Line: n.Line, Mode: "enforce"}
	var errs []string
	bad := func(at *yaml.Node, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("line %d: sandboxes: ", at.Line)+fmt.Sprintf(format, args...))
	}
	if n.Kind != yaml.MappingNode {
		bad(n, "a profile is a mapping with name, match, mode, exec, write, connect")
		return sb, errs
	}
	strList := func(v *yaml.Node, key string) []string {
		if v.Kind != yaml.SequenceNode {
			bad(v, "%s: want a list", key)
			return nil
		}
		out := []string{}
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				bad(it, "%s: want a string", key)
				continue
			}
			out = append(out, it.Value)
		}
		return out
	}
	paths := func(v *yaml.Node, key string) []string {
		list := strList(v, key)
		for i, p := range list {
			if !strings.HasPrefix(p, "/") {
				bad(v.Content[i], "%s: %q is not an absolute path", key, p)
			} else if c := path.Clean(p); c != strings.TrimSuffix(p, "/") && !(p == "/" && c == "/") {
				bad(v.Content[i], "%s: %q is not a clean path (want %q)", key, p, c)
			}
		}
		return list
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			sb.Name = v.Value
			if !sandboxName.MatchString(v.Value) {
				bad(v, "name %q: use lower case letters, digits, '.', '_' and '-'", v.Value)
			}
		case "mode":
			sb.Mode = v.Value
			if v.Value != "enforce" && v.Value != "audit" {
				bad(v, "mode %q is not one of enforce, audit", v.Value)
			}
		case "match":
			if v.Kind != yaml.MappingNode {
				bad(v, "match: want a mapping with names, images, cgroups")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				mk, mv := v.Content[j], v.Content[j+1]
				var to *[]string
				switch mk.Value {
				case "names":
					to = &sb.Match.Names
				case "images":
					to = &sb.Match.Images
				case "cgroups":
					to = &sb.Match.Cgroups
				default:
					bad(mk, "unknown key %q in match (want %s)", mk.Value, strings.Join(sandboxMatchKey, ", "))
					continue
				}
				*to = strList(mv, "match."+mk.Value)
				for x, g := range *to {
					if _, err := path.Match(g, ""); err != nil || g == "" {
						bad(mv.Content[x], "match.%s: %q is not a glob", mk.Value, g)
					}
				}
			}
		case "exec":
			sb.Exec, sb.HasExec = paths(v, "exec"), true
		case "write":
			sb.Write, sb.HasWrite = paths(v, "write"), true
		case "connect":
			sb.Connect, sb.HasConnect = strList(v, "connect"), true
			for x, c := range sb.Connect {
				d, err := ParseSandboxDest(c)
				if err != nil {
					bad(v.Content[x], "connect: %v", err)
					continue
				}
				sb.Destinations = append(sb.Destinations, d)
			}
		default:
			bad(k, "unknown key %q in profile (want %s)", k.Value, strings.Join(sandboxKeys, ", "))
		}
	}
	if sb.Name == "" {
		bad(n, "profile without a name")
	}
	if m := sb.Match; len(m.Names)+len(m.Images)+len(m.Cgroups) == 0 {
		bad(n, "profile %q matches no container: give match.names, match.images or match.cgroups", sb.Name)
	}
	if !sb.HasExec && !sb.HasWrite && !sb.HasConnect {
		bad(n, "profile %q restricts nothing: give exec, write or connect", sb.Name)
	}
	return sb, errs
}

// ParseSandboxDest reads CIDR:port, address:port or [IPv6]:port, where
// port is a number, lo-hi or *, and the address may be * (any).
func ParseSandboxDest(s string) (SandboxDest, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return SandboxDest{}, fmt.Errorf("%q: want address:port, CIDR:port or [IPv6]:port (port a number, lo-hi or *)", s)
	}
	addr, port := s[:i], s[i+1:]
	var d SandboxDest
	switch {
	case port == "*":
		d.PortLo, d.PortHi = 0, 65535
	case strings.Contains(port, "-"):
		lo, hi, _ := strings.Cut(port, "-")
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || l > h {
			return d, fmt.Errorf("%q: port range %q is not lo-hi within 0-65535", s, port)
		}
		d.PortLo, d.PortHi = uint16(l), uint16(h)
	default:
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return d, fmt.Errorf("%q: port %q is not a number within 0-65535, lo-hi or *", s, port)
		}
		d.PortLo, d.PortHi = uint16(p), uint16(p)
	}
	if addr == "*" {
		d.Prefix = netip.Prefix{} // any: both families, set by the caller
		return d, nil
	}
	if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		addr = addr[1 : len(addr)-1]
	} else if strings.Contains(addr, ":") {
		return d, fmt.Errorf("%q: write IPv6 addresses in brackets: [2001:db8::/32]:443", s)
	}
	p, err := ParsePrefix(addr)
	if err != nil {
		return d, fmt.Errorf("%q: %v", s, err)
	}
	d.Prefix = p
	return d, nil
}

// Any reports whether the destination is any address.
func (d SandboxDest) Any() bool { return !d.Prefix.IsValid() }
