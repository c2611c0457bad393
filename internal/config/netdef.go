package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// NetDefense is the `netdefense:` section: floods, port scans and threat
// intelligence (docs/network.md); payload signatures are rules (a rule
// with payload:, docs/rule-writing.md). It works on the
// interfaces of response.interfaces, through the network enforcement
// (response.network).
type NetDefense struct {
	// Enabled turns network defence on (it needs response.network).
	Enabled bool `yaml:"enabled"`
	// Poll is how often the kernel's per-source counters are read.
	Poll  Duration `yaml:"poll"`
	Flood Flood    `yaml:"flood"`
	Scan  Scan     `yaml:"scan"`
	Intel Intel    `yaml:"intel"`
}

// Rates are per-second limits; 0 is off.
type Rates struct {
	// PPS is packets per second.
	PPS uint64 `yaml:"pps"`
	// BitsPerSecond is bits per second.
	BitsPerSecond uint64 `yaml:"bits_per_second"`
	// SYNsPerSecond is TCP SYNs (without ACK) per second.
	SYNsPerSecond uint64 `yaml:"syns_per_second"`
}

// Flood is the DDoS detection.
type Flood struct {
	// Enabled turns flood detection on.
	Enabled bool `yaml:"enabled"`
	// Source limits apply per source address, in the kernel (one CPU's
	// one-second window) and in user space (all CPUs, per poll).
	Source Rates `yaml:"source"`
	// Total limits apply to everything accounted; over them with no
	// source above DominantShare of the rate is a distributed attack.
	Total Rates `yaml:"total"`
	// DominantShare is the share of the total rate above which one source
	// is the attack rather than part of a distributed one.
	DominantShare float64 `yaml:"dominant_share"`
	// Block blocks a source over its limits for BlockFor.
	Block bool `yaml:"block"`
	// BlockFor is how long a flooding source stays blocked.
	BlockFor Duration `yaml:"block_for"`
	// Allow is never blocked (response.never_block and isolate_allow are
	// never blocked either).
	Allow []Prefix `yaml:"allow"`
}

// Scan is port-scan detection.
type Scan struct {
	// Enabled turns inbound scan detection on.
	Enabled bool `yaml:"enabled"`
	// Window is the time over which a source's probes are counted.
	Window Duration `yaml:"window"`
	Ports  int      `yaml:"ports"` // new ports a source probes within the window
	Hosts  int      `yaml:"hosts"` // new hosts
	// Action: alert, or block the scanning source for BlockFor.
	Action string `yaml:"action"`
	// BlockFor is how long a scanning source stays blocked.
	BlockFor Duration `yaml:"block_for"`
	// UDPPortMax: UDP datagrams count as probes only to ports below it.
	UDPPortMax uint16 `yaml:"udp_port_max"`
	// Outbound is the detection of local processes that scan others.
	Outbound Outbound `yaml:"outbound"`
}

// Outbound is the detection of local processes that scan.
type Outbound struct {
	// Enabled turns outbound scan detection on.
	Enabled bool `yaml:"enabled"`
	// Window is the time over which a process's connects are counted.
	Window Duration `yaml:"window"`
	Ports  int      `yaml:"ports"` // ports of one host
	// Hosts is how many hosts a process may connect to within the window.
	Hosts int `yaml:"hosts"`
	// Action: alert, or block the host a port scan targets.
	Action string `yaml:"action"`
}

// Intel is threat intelligence.
type Intel struct {
	// Lists are the list files: addresses and CIDRs, or domains.
	Lists []IntelList `yaml:"lists"`
	// Reload: how often the files are checked for changes.
	Reload Duration `yaml:"reload"`
	// Attribute: how long after a process's DNS query for a listed domain
	// its connects are attributed to the domain.
	Attribute Duration `yaml:"attribute"`
	// BlockFor: how long the destination of a connect attributed to a
	// listed domain with action block is blocked.
	BlockFor Duration `yaml:"block_for"`
}

// IntelList is one list file.
type IntelList struct {
	// Name names the list in alerts.
	Name string `yaml:"name"`
	// Path is the file: plain lines, FireHOL netset, abuse.ch CSV, hosts.
	Path   string `yaml:"path"`
	Kind   string `yaml:"kind"`   // ip or domain
	Action string `yaml:"action"` // alert or block
}

func defaultNetDefense() NetDefense {
	return NetDefense{
		Enabled: true,
		Poll:    Duration(time.Second),
		Flood: Flood{
			Enabled:       true,
			Source:        Rates{PPS: 100000, SYNsPerSecond: 20000},
			Total:         Rates{PPS: 1000000, SYNsPerSecond: 100000},
			DominantShare: 0.5, Block: true, BlockFor: Duration(10 * time.Minute),
		},
		Scan: Scan{
			Enabled: true, Window: Duration(time.Minute), Ports: 50, Hosts: 20, Action: "alert",
			BlockFor: Duration(time.Hour), UDPPortMax: 32768,
			Outbound: Outbound{Enabled: true, Window: Duration(time.Minute), Ports: 50, Hosts: 50, Action: "alert"},
		},
		Intel: Intel{Reload: Duration(30 * time.Second), Attribute: Duration(5 * time.Minute), BlockFor: Duration(time.Hour)},
	}
}

func oneOf(v string, words ...string) bool {
	for _, w := range words {
		if v == w {
			return true
		}
	}
	return false
}

// Validate checks the section.
func (n NetDefense) Validate() error {
	if !n.Enabled {
		return nil
	}
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("netdefense."+f, a...)) }
	if n.Poll.D() < 100*time.Millisecond {
		bad("poll: %s is shorter than 100ms", n.Poll.D())
	}
	if f := n.Flood; f.Enabled {
		if f.Block && f.BlockFor <= 0 {
			bad("flood.block_for: must be positive when flood.block is on")
		}
		if f.DominantShare <= 0 || f.DominantShare > 1 {
			bad("flood.dominant_share: %v is not in (0, 1]", f.DominantShare)
		}
	}
	if s := n.Scan; s.Enabled {
		if !oneOf(s.Action, "alert", "block") {
			bad("scan.action: %q is not alert or block", s.Action)
		}
		if !oneOf(s.Outbound.Action, "alert", "block") {
			bad("scan.outbound.action: %q is not alert or block", s.Outbound.Action)
		}
		if s.Window <= 0 || s.Outbound.Window <= 0 {
			bad("scan: window and outbound.window must be positive")
		}
		if s.Action == "block" && s.BlockFor <= 0 {
			bad("scan.block_for: must be positive when scan.action is block")
		}
	}
	for i, l := range n.Intel.Lists {
		if !strings.HasPrefix(l.Path, "/") {
			bad("intel.lists[%d].path: %q is not an absolute path", i, l.Path)
		}
		if !oneOf(l.Kind, "ip", "domain") {
			bad("intel.lists[%d].kind: %q is not ip or domain", i, l.Kind)
		}
		if !oneOf(l.Action, "alert", "block") {
			bad("intel.lists[%d].action: %q is not alert or block", i, l.Action)
		}
	}
	if n.Intel.Reload <= 0 || n.Intel.Attribute <= 0 || n.Intel.BlockFor <= 0 {
		bad("intel: reload, attribute and block_for must be positive")
	}
	return errors.Join(errs...)
}
