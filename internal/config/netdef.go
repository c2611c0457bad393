package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NetDefense is the `netdefense:` section: floods, port scans, threat
// intelligence and payload signatures (docs/network.md). It works on the
// interfaces of response.interfaces, through the network enforcement
// (response.network).
type NetDefense struct {
	// Enabled turns network defence on (it needs response.network).
	Enabled bool `yaml:"enabled"`
	// Poll is how often the kernel's per-source counters are read.
	Poll    Duration     `yaml:"poll"`
	Flood   Flood        `yaml:"flood"`
	Scan    Scan         `yaml:"scan"`
	Intel   Intel        `yaml:"intel"`
	Payload PayloadRules `yaml:"payload"`
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

// PayloadRules are the payload signatures searched at tcx.
type PayloadRules struct {
	// Signatures are searched in the first bytes of TCP and UDP payloads.
	Signatures []Signature `yaml:"signatures"`
}

// Signature is one byte pattern.
type Signature struct {
	// Name names the signature in alerts.
	Name string `yaml:"name"`
	// Pattern is text; Hex is the same as hex digits. One of them, 1 to 32 bytes.
	Pattern string `yaml:"pattern"`
	// Hex is the pattern as hex digits (spaces allowed), for binary bytes.
	Hex       string `yaml:"hex"`
	Protocol  string `yaml:"protocol"`  // tcp, udp, any
	Direction string `yaml:"direction"` // ingress, egress, both
	Port      uint16 `yaml:"port"`      // either end; 0: any
	Action    string `yaml:"action"`    // alert, block
	// Severity is the alert's: info, notice, warning, error, critical.
	Severity string `yaml:"severity"`
	// MITRE lists ATT&CK technique ids for the alert.
	MITRE []string `yaml:"mitre"`
}

// Bytes is the signature's pattern.
func (s Signature) Bytes() []byte {
	if s.Hex != "" {
		b, _ := hex.DecodeString(strings.ReplaceAll(s.Hex, " ", ""))
		return b
	}
	return []byte(s.Pattern)
}

// DefaultSignatures: the stratum mining protocol and two exploit strings.
func DefaultSignatures() []Signature {
	return []Signature{
		{Name: "stratum-mining-subscribe", Pattern: "mining.subscribe", Protocol: "tcp", Direction: "both", Action: "alert", Severity: "warning", MITRE: []string{"T1496"}},
		{Name: "stratum-mining-authorize", Pattern: "mining.authorize", Protocol: "tcp", Direction: "both", Action: "alert", Severity: "warning", MITRE: []string{"T1496"}},
		{Name: "log4shell-jndi", Pattern: "${jndi:", Protocol: "tcp", Direction: "ingress", Action: "alert", Severity: "error", MITRE: []string{"T1190"}},
		{Name: "shellshock", Pattern: "() { :; };", Protocol: "tcp", Direction: "ingress", Action: "alert", Severity: "error", MITRE: []string{"T1190"}},
	}
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
		Intel:   Intel{Reload: Duration(30 * time.Second), Attribute: Duration(5 * time.Minute), BlockFor: Duration(time.Hour)},
		Payload: PayloadRules{Signatures: DefaultSignatures()},
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
	if len(n.Payload.Signatures) > 32 {
		bad("payload.signatures: %d, at most 32", len(n.Payload.Signatures))
	}
	for i, s := range n.Payload.Signatures {
		where := fmt.Sprintf("payload.signatures[%d] (%s)", i, s.Name)
		if s.Name == "" {
			bad("payload.signatures[%d]: no name", i)
		}
		if (s.Pattern == "") == (s.Hex == "") {
			bad("%s: give one of pattern and hex", where)
		}
		if s.Hex != "" {
			if _, err := hex.DecodeString(strings.ReplaceAll(s.Hex, " ", "")); err != nil {
				bad("%s: hex: %v", where, err)
			}
		}
		if n := len(s.Bytes()); n > 32 {
			bad("%s: pattern of %d bytes, at most 32", where, n)
		}
		if !oneOf(s.Protocol, "tcp", "udp", "any", "") || !oneOf(s.Direction, "ingress", "egress", "both", "") || !oneOf(s.Action, "alert", "block", "") {
			bad("%s: protocol tcp|udp|any, direction ingress|egress|both, action alert|block", where)
		}
		if s.Severity != "" && !oneOf(s.Severity, "info", "notice", "warning", "error", "critical") {
			bad("%s: severity %q", where, s.Severity)
		}
	}
	return errors.Join(errs...)
}
