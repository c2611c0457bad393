// Package resource detects containers that abuse the host's resources: CPU,
// memory, pids and block I/O above configured thresholds for a sustained
// period, and the likely cryptominer, sustained high CPU together with
// connections to mining-pool ports or DNS queries for pool domains.
//
// It is pure: a sampler feeds it usage samples (Observe) and the agent feeds
// it network events (ObserveNet); the clock is the samples' and events'
// times, or Config.Now. Alerts are events of kind alert.
package resource

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Rule ids of the alerts.
const (
	RuleCPU    = "container-cpu-high"
	RuleMemory = "container-memory-high"
	RulePIDs   = "container-pids-high"
	RuleIO     = "container-io-high"
	RuleMiner  = "container-cryptominer"
)

// Config sets the thresholds. A zero threshold disables its check.
type Config struct {
	// CPUPercent is CPU time over wall time, 100 for one whole CPU.
	CPUPercent  float64
	MemoryBytes uint64
	PIDs        uint64
	// IOBytesPerSecond is block reads and writes together.
	IOBytesPerSecond uint64
	// Sustain is how long a value must stay above its threshold.
	Sustain time.Duration

	// MinerCPUPercent is the sustained CPU that, with pool traffic within
	// MinerWindow, makes a likely miner. Zero disables the miner check.
	MinerCPUPercent float64
	MinerWindow     time.Duration
	// MinerPorts are the TCP ports of mining pools (stratum).
	MinerPorts []uint16
	// MinerDomains are pool domains: a DNS query for one, or a name ending
	// in ".<domain>", counts as pool traffic.
	MinerDomains []string
}

// Sample is one reading of a container's cgroup.
type Sample struct {
	At                                time.Time
	Container                         *event.Container
	CPU                               time.Duration // cumulative
	Memory                            uint64
	PIDs                              uint64
	IOBytes                           uint64 // cumulative reads + writes
	HasCPU, HasMemory, HasPIDs, HasIO bool
}

// Detector keeps per-container state. It is safe for concurrent use.
type Detector struct {
	cfg   Config
	ports map[uint16]bool

	mu    sync.Mutex
	state map[string]*ctrState // by cgroup path
}

type ctrState struct {
	last     Sample
	hasLast  bool
	seenAt   time.Time
	checks   [4]check // cpu, memory, pids, io
	minerCPU check
	// pool is the latest pool connection or query, and when.
	pool   *event.Event
	poolAt time.Time
	miner  bool // alerted
}

// check tracks one metric: since when it has been above its threshold, and
// whether that episode has been alerted.
type check struct {
	since   time.Time
	above   bool
	alerted bool
}

// New makes a Detector.
func New(cfg Config) *Detector {
	d := &Detector{cfg: cfg, ports: map[uint16]bool{}, state: map[string]*ctrState{}}
	for _, p := range cfg.MinerPorts {
		d.ports[p] = true
	}
	if d.cfg.MinerWindow <= 0 {
		d.cfg.MinerWindow = 10 * time.Minute
	}
	return d
}

// Observe takes a sample and returns the alerts it raises.
func (d *Detector) Observe(s Sample) []*event.Event {
	if s.Container == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stateLocked(s.Container.CgroupPath)
	st.seenAt = s.At
	defer func() { st.last, st.hasLast = s, true }()
	var out []*event.Event
	alert := func(rule string, sev event.Severity, name, msg string) {
		out = append(out, d.alert(s.At, s.Container, rule, sev, name, msg, nil))
	}
	level := func(i int, has bool, v, limit uint64, rule, what string) {
		if !has || limit == 0 {
			return
		}
		if fire(&st.checks[i], v > limit, s.At, d.cfg.Sustain) {
			alert(rule, event.SeverityWarning, "Container "+what+" above its threshold",
				fmt.Sprintf("%s of container %s at %d, above %d for %s", what, label(s.Container), v, limit, d.cfg.Sustain))
		}
	}
	level(1, s.HasMemory, s.Memory, d.cfg.MemoryBytes, RuleMemory, "memory")
	level(2, s.HasPIDs, s.PIDs, d.cfg.PIDs, RulePIDs, "pids")
	if !st.hasLast || !s.At.After(st.last.At) {
		return out
	}
	wall := s.At.Sub(st.last.At)
	if s.HasCPU && st.last.HasCPU && s.CPU >= st.last.CPU {
		pct := float64(s.CPU-st.last.CPU) / float64(wall) * 100
		if d.cfg.CPUPercent > 0 && fire(&st.checks[0], pct > d.cfg.CPUPercent, s.At, d.cfg.Sustain) {
			alert(RuleCPU, event.SeverityWarning, "Container CPU above its threshold",
				fmt.Sprintf("CPU of container %s at %.0f%%, above %.0f%% for %s", label(s.Container), pct, d.cfg.CPUPercent, d.cfg.Sustain))
		}
		if d.cfg.MinerCPUPercent > 0 {
			above := pct > d.cfg.MinerCPUPercent
			track(&st.minerCPU, above, s.At)
			if !above {
				st.miner = false
			}
			if ev := d.minerLocked(st, s.At); ev != nil {
				out = append(out, d.alert(s.At, s.Container, RuleMiner, event.SeverityCritical, "Likely cryptominer in a container",
					fmt.Sprintf("container %s used %.0f%% CPU for %s and talked to a mining pool (%s)", label(s.Container), pct,
						s.At.Sub(st.minerCPU.since).Round(time.Second), poolDesc(ev)), ev))
			}
		}
	}
	if s.HasIO && st.last.HasIO && s.IOBytes >= st.last.IOBytes && d.cfg.IOBytesPerSecond > 0 {
		rate := uint64(float64(s.IOBytes-st.last.IOBytes) / wall.Seconds())
		if fire(&st.checks[3], rate > d.cfg.IOBytesPerSecond, s.At, d.cfg.Sustain) {
			alert(RuleIO, event.SeverityWarning, "Container block I/O above its threshold",
				fmt.Sprintf("block I/O of container %s at %d bytes/s, above %d for %s", label(s.Container), rate, d.cfg.IOBytesPerSecond, d.cfg.Sustain))
		}
	}
	return out
}

// ObserveNet takes a network event from a container: a connection to a
// pool port or a DNS query for a pool domain. It returns the miner alert
// when the container's CPU is already high.
func (d *Detector) ObserveNet(e *event.Event) []*event.Event {
	if d.cfg.MinerCPUPercent <= 0 || e.Container == nil || e.Net == nil || !d.isPool(e.Net) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stateLocked(e.Container.CgroupPath)
	st.pool, st.poolAt = e, e.Time
	if ev := d.minerLocked(st, e.Time); ev != nil {
		return []*event.Event{d.alert(e.Time, e.Container, RuleMiner, event.SeverityCritical, "Likely cryptominer in a container",
			fmt.Sprintf("container %s has used high CPU for %s and talked to a mining pool (%s)", label(e.Container),
				e.Time.Sub(st.minerCPU.since).Round(time.Second), poolDesc(ev)), ev)}
	}
	return nil
}

// minerLocked returns the pool event when the container is a likely miner
// not alerted yet: CPU above the miner threshold for Sustain, and pool
// traffic within MinerWindow.
func (d *Detector) minerLocked(st *ctrState, now time.Time) *event.Event {
	if st.miner || st.pool == nil || !st.minerCPU.above || now.Sub(st.minerCPU.since) < d.cfg.Sustain {
		return nil
	}
	if now.Sub(st.poolAt) > d.cfg.MinerWindow || st.poolAt.Sub(now) > d.cfg.MinerWindow {
		return nil
	}
	st.miner = true
	return st.pool
}

func (d *Detector) isPool(n *event.Net) bool {
	switch n.Op {
	case event.NetConnect:
		return d.ports[n.Destination.Port()]
	case event.NetDNS:
		if n.DNS == nil {
			return false
		}
		name := strings.TrimSuffix(strings.ToLower(n.DNS.Name), ".")
		for _, dom := range d.cfg.MinerDomains {
			if name == dom || strings.HasSuffix(name, "."+dom) {
				return true
			}
		}
	}
	return false
}

// Forget drops containers not sampled since before, so that state does
// not grow with containers that are gone.
func (d *Detector) Forget(before time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, st := range d.state {
		if st.seenAt.Before(before) && st.poolAt.Before(before) {
			delete(d.state, k)
		}
	}
}

func (d *Detector) stateLocked(path string) *ctrState {
	st := d.state[path]
	if st == nil {
		st = &ctrState{}
		d.state[path] = st
	}
	return st
}

// track notes whether a value is above its threshold.
func track(c *check, above bool, now time.Time) {
	switch {
	case above && !c.above:
		c.above, c.since = true, now
	case !above:
		c.above, c.alerted = false, false
	}
}

// fire tracks and says whether to alert: above for sustain and not alerted
// in this episode. An episode ends when the value drops below.
func fire(c *check, above bool, now time.Time, sustain time.Duration) bool {
	track(c, above, now)
	if c.above && !c.alerted && now.Sub(c.since) >= sustain {
		c.alerted = true
		return true
	}
	return false
}

func (d *Detector) alert(at time.Time, c *event.Container, rule string, sev event.Severity, name, msg string, trigger *event.Event) *event.Event {
	a := event.Alert{RuleID: rule, RuleName: name, Severity: sev, Tags: []string{"container", "resource"}, Message: msg, Response: "alert"}
	if rule == RuleMiner {
		a.Tags = append(a.Tags, "cryptominer")
		a.MITRE = []string{"T1496"}
	}
	if trigger != nil {
		ev := event.NewAlert(a, trigger)
		ev.Time = at
		return ev
	}
	return &event.Event{Time: at, Kind: event.KindAlert, Origin: event.OriginContainer, Container: c, Alert: &a}
}

func label(c *event.Container) string {
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if c.Name != "" {
		return c.Name + " (" + id + ")"
	}
	return id
}

func poolDesc(e *event.Event) string {
	if e.Net.Op == event.NetDNS && e.Net.DNS != nil {
		return "DNS query " + e.Net.DNS.Name
	}
	return "connect to " + e.Net.Destination.String()
}
