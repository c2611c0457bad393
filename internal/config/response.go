package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Response is the `response:` section: how rules' responses are carried
// out, and the safety limits around them. docs/response.md describes it.
type Response struct {
	// DryRun reports every response (as an event) without carrying it out.
	DryRun bool `yaml:"dry_run"`
	// AllowPrograms are executables never killed, frozen or denied.
	AllowPrograms []string `yaml:"allow_programs"`
	// RateLimit is the most actions per second (burst as many); 0: none.
	RateLimit int `yaml:"rate_limit"`
	// FailOpen allows an open or exec the rules did not decide within
	// DecisionTimeout; otherwise it is refused.
	FailOpen bool `yaml:"fail_open"`
	// DecisionTimeout bounds how long fanotify holds an open or exec for
	// the rules to decide.
	DecisionTimeout Duration `yaml:"decision_timeout"`
	// BlockFor is how long a rule's block-ip lasts; 0: until removed.
	BlockFor Duration `yaml:"block_for"`
	// NeverBlock: prefixes a rule never blocks (management, the sinks).
	NeverBlock []Prefix `yaml:"never_block"`
	// IsolateAllow: what isolation leaves reachable (loopback always is).
	IsolateAllow []Prefix `yaml:"isolate_allow"`
	// Network loads the network enforcement (connect/bind hooks, XDP, tcx).
	Network bool `yaml:"network"`
	// Interfaces get the XDP and tcx programs: "*" for every interface but
	// loopback, present when the agent starts.
	Interfaces []string `yaml:"interfaces"`
	// XDPMode is where the ingress work (block list, isolation, threat
	// intelligence, accounting) runs: auto (native XDP where the driver has
	// it and is not veth, tcx otherwise), native, generic (XDP), or tcx (no
	// XDP: the tcx ingress program does it). Native XDP on a physical NIC
	// drops before the kernel builds an skb; on veth the skb exists already
	// and tcx is the cheaper (bench/flood.sh).
	XDPMode string `yaml:"xdp_mode"`
	// SocketCgroup is the cgroup v2 directory whose connects and binds deny
	// rules apply to; empty: the whole host (paths.cgroupfs).
	SocketCgroup string `yaml:"socket_cgroup"`
	// PinDir keeps blocks and isolation in bpffs.
	PinDir string `yaml:"pin_dir"`
	// Fanotify enables open and exec deny.
	Fanotify bool `yaml:"fanotify"`
}

// DefaultResponse is the `response:` section's defaults.
func DefaultResponse() Response {
	return Response{
		RateLimit:       10,
		FailOpen:        true,
		DecisionTimeout: Duration(250 * time.Millisecond),
		BlockFor:        Duration(time.Hour),
		Network:         true,
		Interfaces:      []string{"*"},
		XDPMode:         "auto",
		PinDir:          "/sys/fs/bpf/vigil",
		Fanotify:        true,
	}
}

// Prefix is an address or CIDR in YAML: "10.0.0.0/8", "192.0.2.7", "2001:db8::/32".
type Prefix netip.Prefix

func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePrefix(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*p = Prefix(v)
	return nil
}

func (p Prefix) MarshalYAML() (any, error) { return netip.Prefix(p).String(), nil }

// ParsePrefix reads an address (a /32 or /128) or a CIDR.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR like 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR like 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Prefixes converts a list.
func Prefixes(ps []Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.Prefix(p)
	}
	return out
}

func (r Response) validate() []error {
	var errs []error
	if r.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("response.rate_limit: %d must not be negative", r.RateLimit))
	}
	switch r.XDPMode {
	case "auto", "native", "generic", "tcx":
	default:
		errs = append(errs, fmt.Errorf("response.xdp_mode: %q is not auto, native, generic or tcx", r.XDPMode))
	}
	if r.DecisionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("response.decision_timeout: must be positive"))
	}
	if r.BlockFor < 0 {
		errs = append(errs, fmt.Errorf("response.block_for: must not be negative"))
	}
	for _, p := range r.AllowPrograms {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("response.allow_programs: %q is not an absolute path", p))
		}
	}
	if !strings.HasPrefix(r.PinDir, "/") {
		errs = append(errs, fmt.Errorf("response.pin_dir: %q is not an absolute path", r.PinDir))
	}
	return errs
}
