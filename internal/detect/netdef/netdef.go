// Package netdef detects floods and port scans from the kernel's
// per-source packet counters (netguard's XDP accounting) and from connect
// events.
//
//   - Floods: a source whose packets, bits or SYNs per second, over the
//     interval between two samples, exceed the per-source limits; and
//     totals over the total limits with no dominant source (no source with
//     at least DominantShare of the rate): a distributed attack.
//   - Inbound scans: a source whose probes (SYN, FIN, NULL, Xmas, UDP)
//     reached ScanPorts new ports or ScanHosts new hosts within ScanWindow,
//     with at least as many probes of one kind; the kind names the scan.
//     SYNs with at most 4 bytes of TCP options are crafted (nmap -sS, a
//     "SYN scan"); SYNs a kernel's connect() sends carry 20 (a "connect
//     scan").
//   - Outbound scans: a local process connecting to OutPorts ports of one
//     host, or to OutHosts hosts, within OutWindow.
//
// It is pure: samples and events carry their times; nothing reads a clock.
package netdef

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Counts are a source's cumulative counters (netguard.SourceStats).
type Counts struct {
	Packets, Bytes, SYNs, RawSYNs uint64
	FINs, NULLs, Xmas, UDP        uint64
	Ports, Hosts                  uint64
}

// Source is one source's counters.
type Source struct {
	Addr netip.Addr
	Counts
}

// Sample is a reading of every source's counters and the totals.
type Sample struct {
	At      time.Time
	Sources []Source
	Total   Counts
}

// Config sets the limits; zero ones are off.
type Config struct {
	SourcePPS, SourceBits, SourceSYNs float64 // per second
	TotalPPS, TotalBits, TotalSYNs    float64
	// DominantShare: a source with at least this share of the total's
	// rate dominates it (default 0.5); without one, totals over their
	// limits are a distributed attack.
	DominantShare float64

	ScanWindow           time.Duration
	ScanPorts, ScanHosts int
	OutWindow            time.Duration
	OutPorts, OutHosts   int
}

// Kinds of finding.
const (
	FloodSource      = "flood-source"
	FloodDistributed = "flood-distributed"
	ScanInbound      = "scan-inbound"
	ScanOutbound     = "scan-outbound"
)

// Scan types.
const (
	ScanSYN     = "syn"
	ScanConnect = "connect"
	ScanFIN     = "fin"
	ScanNULL    = "null"
	ScanXmas    = "xmas"
	ScanUDP     = "udp"
	ScanPorts   = "ports" // outbound: many ports of one host
	ScanHosts   = "hosts" // outbound: many hosts
)

// Rates are per second.
type Rates struct {
	PPS, Bits, SYNs float64
}

// Finding is a flood or a scan.
type Finding struct {
	Kind string
	At   time.Time
	// Addr: the flooding or scanning source; outbound: the host a port
	// scan targets.
	Addr netip.Addr
	// Floods: the rates seen and the limit crossed ("packets/s", "bits/s",
	// "SYNs/s"); distributed: the totals, the number of sources that sent
	// in the interval and the largest one's share.
	Rates    Rates
	Limit    string
	Sources  int
	TopShare float64
	// Scans: the type, and the new ports and hosts and the probes of the
	// type within the window.
	ScanType     string
	Ports, Hosts int
	Probes       uint64
	Window       time.Duration
	// Outbound scans: the connect that crossed the threshold.
	Trigger *event.Event
}

// Detector keeps the state between samples. It is safe for concurrent use.
type Detector struct {
	cfg Config

	mu        sync.Mutex
	prevAt    time.Time
	prev      map[netip.Addr]Counts
	prevTotal Counts
	flooding  map[netip.Addr]bool
	distrib   bool
	hist      map[netip.Addr][]point
	scanned   map[scanKey]time.Time
	out       map[procKey]*outState
	talk      Talkers
}

// Talker is one source's rates over the last interval between samples, and
// its cumulative counts.
type Talker struct {
	Addr   netip.Addr `json:"addr"`
	PPS    float64    `json:"pps"`
	BitsPS float64    `json:"bits_per_second"`
	SYNsPS float64    `json:"syns_per_second"`
	// Packets and Bytes since the source's counters began; Ports and
	// Hosts are the distinct destinations it reached in the scan window.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Ports   uint64 `json:"ports"`
	Hosts   uint64 `json:"hosts"`
	// Blocked: the source is on the block list (filled by the caller).
	Blocked bool `json:"blocked,omitempty"`
}

// Talkers are the busiest sources of the last interval.
type Talkers struct {
	At       time.Time     `json:"at"`
	Interval time.Duration `json:"interval_ns"`
	// Sources is how many sent in the interval; Top the MaxTalkers busiest
	// by packets per second.
	Sources int      `json:"sources"`
	Total   Talker   `json:"total"` // Addr is unset
	Top     []Talker `json:"top"`
}

// MaxTalkers bounds Talkers.Top.
const MaxTalkers = 50

type point struct {
	at time.Time
	c  Counts
}

type scanKey struct {
	addr netip.Addr
	typ  string
}

// New makes a Detector.
func New(cfg Config) *Detector {
	if cfg.DominantShare <= 0 {
		cfg.DominantShare = 0.5
	}
	if cfg.ScanWindow <= 0 {
		cfg.ScanWindow = time.Minute
	}
	if cfg.OutWindow <= 0 {
		cfg.OutWindow = time.Minute
	}
	return &Detector{cfg: cfg, prev: map[netip.Addr]Counts{}, flooding: map[netip.Addr]bool{},
		hist: map[netip.Addr][]point{}, scanned: map[scanKey]time.Time{}, out: map[procKey]*outState{}}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return a // the counters restarted (the entry was recycled)
	}
	return a - b
}

func rates(cur, prev Counts, secs float64) Rates {
	return Rates{
		PPS:  float64(sub(cur.Packets, prev.Packets)) / secs,
		Bits: float64(sub(cur.Bytes, prev.Bytes)) * 8 / secs,
		SYNs: float64(sub(cur.SYNs, prev.SYNs)) / secs,
	}
}

// over names the first limit r exceeds, or "".
func over(r Rates, pps, bits, syns float64) string {
	switch {
	case pps > 0 && r.PPS > pps:
		return "packets/s"
	case bits > 0 && r.Bits > bits:
		return "bits/s"
	case syns > 0 && r.SYNs > syns:
		return "SYNs/s"
	}
	return ""
}

// addTalker inserts t into top, sorted by packets per second, keeping at
// most MaxTalkers.
func addTalker(top []Talker, t Talker) []Talker {
	i, _ := slices.BinarySearchFunc(top, t.PPS, func(x Talker, pps float64) int {
		switch {
		case x.PPS > pps:
			return -1
		case x.PPS < pps:
			return 1
		}
		return 0
	})
	if i >= MaxTalkers {
		return top
	}
	top = slices.Insert(top, i, t)
	if len(top) > MaxTalkers {
		top = top[:MaxTalkers]
	}
	return top
}

// Talkers returns the busiest sources of the last interval between two
// samples (none before the second sample).
func (d *Detector) Talkers() Talkers {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.talk
	t.Top = slices.Clone(t.Top)
	return t
}

// Observe takes a sample and returns what it shows.
func (d *Detector) Observe(s Sample) []Finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Finding
	first := d.prevAt.IsZero()
	secs := s.At.Sub(d.prevAt).Seconds()
	if !first && secs > 0 {
		out = append(out, d.floods(s, secs)...)
	}
	out = append(out, d.scans(s, first)...)
	d.prev = make(map[netip.Addr]Counts, len(s.Sources))
	for _, src := range s.Sources {
		d.prev[src.Addr] = src.Counts
	}
	d.prevAt, d.prevTotal = s.At, s.Total
	return out
}

func (d *Detector) floods(s Sample, secs float64) []Finding {
	var out []Finding
	var top Rates
	active := 0
	talkers := make([]Talker, 0, MaxTalkers+1)
	for _, src := range s.Sources {
		prev, seen := d.prev[src.Addr]
		if !seen {
			prev = Counts{} // new since the last sample: all of it is in the interval
		}
		r := rates(src.Counts, prev, secs)
		if r.PPS > 0 {
			active++
			talkers = addTalker(talkers, Talker{Addr: src.Addr, PPS: r.PPS, BitsPS: r.Bits, SYNsPS: r.SYNs,
				Packets: src.Packets, Bytes: src.Bytes, Ports: src.Ports, Hosts: src.Hosts})
		}
		top.PPS, top.Bits, top.SYNs = max(top.PPS, r.PPS), max(top.Bits, r.Bits), max(top.SYNs, r.SYNs)
		limit := over(r, d.cfg.SourcePPS, d.cfg.SourceBits, d.cfg.SourceSYNs)
		if limit == "" {
			delete(d.flooding, src.Addr)
			continue
		}
		if d.flooding[src.Addr] {
			continue
		}
		d.flooding[src.Addr] = true
		out = append(out, Finding{Kind: FloodSource, At: s.At, Addr: src.Addr, Rates: r, Limit: limit})
	}
	for a := range d.flooding {
		if !slices.ContainsFunc(s.Sources, func(src Source) bool { return src.Addr == a }) {
			delete(d.flooding, a)
		}
	}
	tot := rates(s.Total, d.prevTotal, secs)
	d.talk = Talkers{At: s.At, Interval: time.Duration(secs * float64(time.Second)), Sources: active, Top: talkers,
		Total: Talker{PPS: tot.PPS, BitsPS: tot.Bits, SYNsPS: tot.SYNs, Packets: s.Total.Packets, Bytes: s.Total.Bytes}}
	limit := over(tot, d.cfg.TotalPPS, d.cfg.TotalBits, d.cfg.TotalSYNs)
	if limit == "" {
		d.distrib = false
		return out
	}
	var share float64
	switch limit {
	case "packets/s":
		share = top.PPS / tot.PPS
	case "bits/s":
		share = top.Bits / tot.Bits
	default:
		share = top.SYNs / tot.SYNs
	}
	if share >= d.cfg.DominantShare || d.distrib {
		return out
	}
	d.distrib = true
	return append(out, Finding{Kind: FloodDistributed, At: s.At, Rates: tot, Limit: limit, Sources: active, TopShare: share})
}

func (d *Detector) scans(s Sample, first bool) []Finding {
	if d.cfg.ScanPorts <= 0 && d.cfg.ScanHosts <= 0 {
		return nil
	}
	var out []Finding
	w := d.cfg.ScanWindow
	seen := make(map[netip.Addr]bool, len(s.Sources))
	for _, src := range s.Sources {
		seen[src.Addr] = true
		h := d.hist[src.Addr]
		if n := len(h); n > 0 && src.Packets < h[n-1].c.Packets {
			h = nil // recycled: start again
		}
		if len(h) == 0 {
			// First sight: everything counted so far is recent, but for
			// the first sample, which holds what came before the detector.
			base := Counts{}
			if first {
				base = src.Counts
			}
			h = append(h, point{at: s.At.Add(-time.Nanosecond), c: base})
		} else if h[len(h)-1].c == src.Counts {
			// Nothing new: keep the history as it is.
			d.hist[src.Addr] = trim(h, s.At.Add(-w))
			continue
		}
		h = append(trim(h, s.At.Add(-w)), point{at: s.At, c: src.Counts})
		d.hist[src.Addr] = h
		base := h[0].c
		ports, hosts := int(sub(src.Ports, base.Ports)), int(sub(src.Hosts, base.Hosts))
		wide := d.cfg.ScanPorts > 0 && ports >= d.cfg.ScanPorts || d.cfg.ScanHosts > 0 && hosts >= d.cfg.ScanHosts
		if !wide {
			continue
		}
		need := uint64(min(nz(d.cfg.ScanPorts), nz(d.cfg.ScanHosts)))
		for _, c := range []struct {
			typ string
			n   uint64
		}{
			{ScanSYN, sub(src.RawSYNs, base.RawSYNs)},
			{ScanConnect, sub(src.SYNs-src.RawSYNs, base.SYNs-base.RawSYNs)},
			{ScanFIN, sub(src.FINs, base.FINs)},
			{ScanNULL, sub(src.NULLs, base.NULLs)},
			{ScanXmas, sub(src.Xmas, base.Xmas)},
			{ScanUDP, sub(src.UDP, base.UDP)},
		} {
			if c.n < need {
				continue
			}
			k := scanKey{src.Addr, c.typ}
			if at, ok := d.scanned[k]; ok && s.At.Sub(at) < w {
				continue
			}
			d.scanned[k] = s.At
			out = append(out, Finding{Kind: ScanInbound, At: s.At, Addr: src.Addr, ScanType: c.typ,
				Ports: ports, Hosts: hosts, Probes: c.n, Window: w})
		}
	}
	for a, h := range d.hist {
		if !seen[a] || s.At.Sub(h[len(h)-1].at) > 2*w {
			delete(d.hist, a)
		}
	}
	for k, at := range d.scanned {
		if s.At.Sub(at) > w {
			delete(d.scanned, k)
		}
	}
	return out
}

func nz(n int) int {
	if n <= 0 {
		return int(^uint(0) >> 1)
	}
	return n
}

// trim drops the points before since, keeping the last of them as the
// window's base.
func trim(h []point, since time.Time) []point {
	i := 0
	for i+1 < len(h) && !h[i+1].at.After(since) {
		i++
	}
	return h[i:]
}

// ---- outbound ----

type procKey struct {
	pid   uint32
	start uint64
}

type dest struct {
	at   time.Time
	addr netip.Addr
	port uint16
}

type outState struct {
	dests   []dest                 // within the window, oldest first
	hosts   map[netip.Addr]int     // connects per host in dests
	pairs   map[netip.AddrPort]int // connects per host and port in dests
	ports   map[netip.Addr]int     // distinct ports per host in dests
	alerted map[string]time.Time   // by scan type
}

func (st *outState) add(x dest) {
	st.dests = append(st.dests, x)
	st.hosts[x.addr]++
	ap := netip.AddrPortFrom(x.addr, x.port)
	if st.pairs[ap]++; st.pairs[ap] == 1 {
		st.ports[x.addr]++
	}
}

func (st *outState) drop() {
	x := st.dests[0]
	st.dests = st.dests[1:]
	if st.hosts[x.addr]--; st.hosts[x.addr] == 0 {
		delete(st.hosts, x.addr)
	}
	ap := netip.AddrPortFrom(x.addr, x.port)
	if st.pairs[ap]--; st.pairs[ap] == 0 {
		delete(st.pairs, ap)
		if st.ports[x.addr]--; st.ports[x.addr] == 0 {
			delete(st.ports, x.addr)
		}
	}
}

// maxDests bounds what is kept per process.
const maxDests = 4096

// ObserveConnect takes a connect event and returns an outbound scan it
// completes, if any. Its cost does not grow with the window's contents.
func (d *Detector) ObserveConnect(e *event.Event) []Finding {
	if e.Net == nil || e.Net.Op != event.NetConnect || !e.Net.Destination.IsValid() ||
		d.cfg.OutPorts <= 0 && d.cfg.OutHosts <= 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := procKey{e.Process.PID, e.Process.StartBoot}
	st := d.out[k]
	if st == nil {
		st = &outState{hosts: map[netip.Addr]int{}, pairs: map[netip.AddrPort]int{}, ports: map[netip.Addr]int{},
			alerted: map[string]time.Time{}}
		d.out[k] = st
	}
	w := d.cfg.OutWindow
	since := e.Time.Add(-w)
	for len(st.dests) > 0 && (st.dests[0].at.Before(since) || len(st.dests) >= maxDests) {
		st.drop()
	}
	dst := e.Net.Destination
	addr := dst.Addr().Unmap()
	st.add(dest{at: e.Time, addr: addr, port: dst.Port()})
	nports, nhosts := st.ports[addr], len(st.hosts)
	var out []Finding
	emit := func(typ string, a netip.Addr) {
		if at, ok := st.alerted[typ]; ok && e.Time.Sub(at) < w {
			return
		}
		st.alerted[typ] = e.Time
		out = append(out, Finding{Kind: ScanOutbound, At: e.Time, Addr: a, ScanType: typ,
			Ports: nports, Hosts: nhosts, Window: w, Trigger: e})
	}
	if d.cfg.OutPorts > 0 && nports >= d.cfg.OutPorts {
		emit(ScanPorts, addr)
	}
	if d.cfg.OutHosts > 0 && nhosts >= d.cfg.OutHosts {
		emit(ScanHosts, netip.Addr{})
	}
	return out
}

// Forget drops processes that exited or made no connect since before.
func (d *Detector) Forget(before time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, st := range d.out {
		if len(st.dests) == 0 || st.dests[len(st.dests)-1].at.Before(before) {
			delete(d.out, k)
		}
	}
}
