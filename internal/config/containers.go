package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Containers configures container attribution and the resource abuse
// detector (docs/containers.md).
type Containers struct {
	// Enabled attributes every event to a container or the host.
	Enabled bool `yaml:"enabled"`
	// StateRoot prefixes the runtimes' state paths (/run/containerd,
	// /var/lib/docker...): "/" unless the host's filesystem is mounted
	// elsewhere (the agent itself in a container).
	StateRoot string    `yaml:"state_root"`
	Resources Resources `yaml:"resources"`
}

// Resources are the per-container thresholds. A zero threshold is off.
type Resources struct {
	// Enabled turns the per-container resource checks on.
	Enabled bool `yaml:"enabled"`
	// Interval is how often every container's cgroup is read (at least 100ms).
	Interval Duration `yaml:"interval"`
	// Sustain is how long a value must stay above its threshold to alert.
	Sustain Duration `yaml:"sustain"`
	// CPUPercent is CPU time over wall time: 100 is one whole CPU.
	CPUPercent Percent `yaml:"cpu_percent"`
	// Memory is the memory threshold in bytes.
	Memory Size `yaml:"memory"`
	// PIDs is the threshold on a container's number of processes and threads.
	PIDs uint64 `yaml:"pids"`
	// IOPerSecond is the threshold on block reads plus writes, in bytes per second.
	IOPerSecond Size  `yaml:"io_per_second"`
	Miner       Miner `yaml:"miner"`
}

// Miner is the likely-cryptominer check: sustained CPU with pool traffic.
type Miner struct {
	// CPUPercent is the sustained CPU that, with pool traffic, marks a
	// likely miner; 0 turns the check off.
	CPUPercent Percent `yaml:"cpu_percent"`
	// Window: pool traffic this close to the high CPU counts.
	Window Duration `yaml:"window"`
	// Ports are the mining pool ports a connection to counts as pool traffic.
	Ports []uint16 `yaml:"ports"`
	// Domains are the mining pools a DNS query for (or below) counts as pool traffic.
	Domains []string `yaml:"domains"`
}

// DefaultMinerPorts are stratum ports that mining pools commonly listen on.
var DefaultMinerPorts = []uint16{3333, 3334, 3357, 4444, 5555, 5556, 7777, 8888, 9999, 10128, 10343, 14433, 14444, 19999, 20535, 45560, 45700}

// DefaultMinerDomains are well-known public mining pools.
var DefaultMinerDomains = []string{"supportxmr.com", "moneroocean.stream", "nanopool.org", "minexmr.com", "hashvault.pro",
	"c3pool.com", "2miners.com", "f2pool.com", "viabtc.com", "herominers.com", "nicehash.com", "unmineable.com",
	"minergate.com", "xmrpool.eu", "dwarfpool.com", "ethermine.org", "antpool.com", "poolin.com", "zpool.ca", "p2pool.io"}

func defaultContainers() Containers {
	return Containers{
		Enabled:   true,
		StateRoot: "/",
		Resources: Resources{
			Enabled: true, Interval: Duration(10 * time.Second), Sustain: Duration(time.Minute),
			CPUPercent: 90,
			Miner: Miner{CPUPercent: 50, Window: Duration(10 * time.Minute),
				Ports: DefaultMinerPorts, Domains: DefaultMinerDomains},
		},
	}
}

func (c Containers) validate() error {
	var errs []error
	if !strings.HasPrefix(c.StateRoot, "/") {
		errs = append(errs, fmt.Errorf("containers.state_root: %q is not an absolute path", c.StateRoot))
	}
	r := c.Resources
	if r.Enabled && r.Interval.D() < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("containers.resources.interval: %s is shorter than 100ms", r.Interval.D()))
	}
	if r.Sustain < 0 || r.Miner.Window < 0 {
		errs = append(errs, errors.New("containers.resources: sustain and miner.window must not be negative"))
	}
	return errors.Join(errs...)
}

// Percent is a CPU share in percent (100 = one CPU), written 90 or "90%".
type Percent float64

func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(n.Value), "%"), 64)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a percentage like 90 or 250%% (100 is one CPU)", n.Line, n.Value)
	}
	*p = Percent(v)
	return nil
}

// Size is a number of bytes, written 1048576, 512MiB, 2GiB or 100MB.
type Size uint64

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}

func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize reads a byte size: a number with an optional unit (KiB, MiB,
// GiB, TiB, KB, MB, GB, TB, B).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size like 512MiB, 2GiB or 1048576", s)
	}
	return uint64(v * float64(mult)), nil
}
