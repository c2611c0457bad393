// Package netdef runs Vigil's network defence: it configures netguard's
// kernel side (XDP accounting and flood limits, threat-intelligence tries,
// the patterns of payload rules), reads its counters and notices, feeds the
// flood and scan detector (internal/detect/netdef) and the
// threat-intelligence lists (internal/intel), and turns what they find into
// alerts, blocks and response events; packets that matched a payload rule
// go back to the agent as events for the rule to decide. docs/network.md
// describes it.
package netdef

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	detect "github.com/vigilsec/vigil/internal/detect/netdef"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/intel"
	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/rules"
)

// Deps are what the defender reports to and asks.
type Deps struct {
	Log *slog.Logger
	// Alert receives alerts, Response the response events of blocks.
	Alert, Response func(*event.Event)
	// AddrSafe says why an address must never be blocked, or "" (the
	// responder's check: loopback, response.never_block, isolate_allow).
	AddrSafe func(netip.Addr) string
	// NeverBlock are prefixes the kernel's flood limits must never block,
	// besides netdefense.flood.allow.
	NeverBlock []netip.Prefix
	// ExpireBlocks: report and remove expired blocks on each poll (the
	// agent's response housekeeping does it instead when it runs).
	ExpireBlocks bool
	// Payload receives the packets that matched a payload rule's pattern,
	// as net events (event.NetPayload), with the rule's id.
	Payload func(e *event.Event, ruleID string)
}

// PayloadRule is a payload rule's pattern as the kernel searches for it.
type PayloadRule struct {
	ID      string
	Payload rules.Payload
	// Drop: the kernel drops the packets that match (response deny).
	Drop bool
}

// PacketOp is the operation of the synthetic net events that carry a
// packet's addresses as an alert's trigger.
const PacketOp event.NetOp = "packet"

// Defender is the running network defence.
type Defender struct {
	cfg    config.NetDefense
	g      *netguard.Guard
	d      Deps
	det    *detect.Detector
	notice *netguard.NoticeReader

	mu        sync.Mutex
	payload   []string // the payload rules' ids, by signature index
	lists     *intel.Set
	queries   map[uint32]query // by pid: the last query for a listed domain
	attrib    map[string]bool  // pid/destination pairs attributed already
	blocked   map[netip.Addr]time.Time
	egressHit map[netip.Addr]time.Time   // connect events' intel alerts
	pending   map[netip.Addr]pendingNote // kernel egress notices held back
}

type query struct {
	at    time.Time
	start uint64
	name  string
	hit   intel.Hit
}

type pendingNote struct {
	n  netguard.Notice
	at time.Time
}

// New configures the kernel side and loads the lists. Problems in list
// files are logged with file and line; the rest loads.
func New(cfg config.NetDefense, g *netguard.Guard, d Deps) (*Defender, error) {
	if d.AddrSafe == nil {
		d.AddrSafe = func(a netip.Addr) string {
			if a.IsLoopback() || a.IsUnspecified() {
				return "loopback and unspecified addresses are never blocked"
			}
			return ""
		}
	}
	df := &Defender{cfg: cfg, g: g, d: d, queries: map[uint32]query{}, attrib: map[string]bool{},
		blocked: map[netip.Addr]time.Time{}, egressHit: map[netip.Addr]time.Time{}, pending: map[netip.Addr]pendingNote{}}
	f, s := cfg.Flood, cfg.Scan
	dc := detect.Config{DominantShare: f.DominantShare}
	if f.Enabled {
		dc.SourcePPS, dc.SourceBits, dc.SourceSYNs = float64(f.Source.PPS), float64(f.Source.BitsPerSecond), float64(f.Source.SYNsPerSecond)
		dc.TotalPPS, dc.TotalBits, dc.TotalSYNs = float64(f.Total.PPS), float64(f.Total.BitsPerSecond), float64(f.Total.SYNsPerSecond)
	}
	if s.Enabled {
		dc.ScanWindow, dc.ScanPorts, dc.ScanHosts = s.Window.D(), s.Ports, s.Hosts
		if s.Outbound.Enabled {
			dc.OutWindow, dc.OutPorts, dc.OutHosts = s.Outbound.Window.D(), s.Outbound.Ports, s.Outbound.Hosts
		}
	}
	df.det = detect.New(dc)
	acct := netguard.Accounting{
		Enabled:   f.Enabled || s.Enabled,
		AutoBlock: f.Enabled && f.Block,
		PPS:       f.Source.PPS, BitsPS: f.Source.BitsPerSecond, SYNsPS: f.Source.SYNsPerSecond,
		BlockFor: f.BlockFor.D(), PairWindow: s.Window.D(), UDPPortMax: s.UDPPortMax,
	}
	if err := g.SetAccounting(acct); err != nil {
		return nil, err
	}
	allow := append(config.Prefixes(f.Allow), d.NeverBlock...)
	if err := g.SetFloodAllow(allow); err != nil {
		return nil, fmt.Errorf("flood allowlist: %w", err)
	}
	if err := df.loadLists(); err != nil {
		return nil, err
	}
	n, err := g.Notices()
	if err != nil {
		return nil, err
	}
	df.notice = n
	return df, nil
}

// SetPayloadRules gives the kernel the patterns of the payload rules, in
// place of the previous ones.
func (df *Defender) SetPayloadRules(prs []PayloadRule) error {
	ks := make([]netguard.Signature, 0, len(prs))
	ids := make([]string, 0, len(prs))
	for _, pr := range prs {
		k := netguard.Signature{Pattern: pr.Payload.Pattern, Port: pr.Payload.Port, Block: pr.Drop}
		switch pr.Payload.Protocol {
		case "tcp":
			k.Proto = 6
		case "udp":
			k.Proto = 17
		}
		switch pr.Payload.Direction {
		case "ingress":
			k.Dir = netguard.DirIngress
		case "egress":
			k.Dir = netguard.DirEgress
		}
		ks = append(ks, k)
		ids = append(ids, pr.ID)
	}
	// Notices already queued name the old indexes: hold the lock across
	// the kernel's update so none is read against the wrong list.
	df.mu.Lock()
	defer df.mu.Unlock()
	if err := df.g.SetSignatures(ks); err != nil {
		return err
	}
	df.payload = ids
	return nil
}

func (df *Defender) listConfig() []intel.List {
	var out []intel.List
	for _, l := range df.cfg.Intel.Lists {
		out = append(out, intel.List{Name: l.Name, Path: l.Path, Kind: l.Kind, Block: l.Action == "block"})
	}
	return out
}

// loadLists reads the lists and gives the kernel their prefixes.
func (df *Defender) loadLists() error {
	set, errs := intel.Load(df.listConfig())
	for _, err := range errs {
		df.d.Log.Warn("threat intelligence: not loaded", "err", err)
	}
	entries := make(map[netip.Prefix]netguard.IntelEntry, len(set.Prefixes()))
	for p, i := range set.Prefixes() {
		entries[p] = netguard.IntelEntry{List: uint32(i), Block: set.Lists()[i].Block}
	}
	if err := df.g.SetIntel(entries); err != nil {
		return fmt.Errorf("threat intelligence: %w", err)
	}
	if len(df.cfg.Intel.Lists) > 0 {
		df.d.Log.Info("threat intelligence loaded", "prefixes", len(entries), "domains", set.Domains(), "problems", len(errs))
	}
	df.mu.Lock()
	df.lists = set
	df.mu.Unlock()
	return nil
}

// Start runs the counter poller, the notice reader and the list reloader
// until the returned stop is called; stop returns once they have stopped.
func (df *Defender) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); df.poll(ctx) }()
	go func() { defer wg.Done(); df.readNotices(ctx) }()
	go func() { defer wg.Done(); df.reload(ctx) }()
	return func() {
		cancel()
		df.notice.Close()
		wg.Wait()
	}
}

// Status is network defence's state, for `vigil status` and `vigil net top`.
type Status struct {
	PayloadRules  int `json:"payload_rules"`
	IntelLists    int `json:"intel_lists"`
	IntelPrefixes int `json:"intel_prefixes"`
	IntelDomains  int `json:"intel_domains"`
	// Blocked is how many addresses and prefixes are on the block list
	// (any source: detector, rules, vigil block).
	Blocked int                  `json:"blocked"`
	Kernel  netguard.NetdefStats `json:"kernel"`
	Talkers detect.Talkers       `json:"talkers"`
	// PayloadEventsDropped: packets that matched a payload rule whose event
	// the agent's full queue refused (filled by the agent).
	PayloadEventsDropped uint64 `json:"payload_events_dropped"`
	Error                string `json:"error,omitempty"` // counters that could not be read
}

// Status reads the counters and the busiest sources of the last poll.
func (df *Defender) Status() Status {
	df.mu.Lock()
	st := Status{PayloadRules: len(df.payload), IntelLists: len(df.lists.Lists()),
		IntelPrefixes: len(df.lists.Prefixes()), IntelDomains: df.lists.Domains()}
	df.mu.Unlock()
	var errs []error
	var err error
	if st.Kernel, err = df.g.NetdefStats(); err != nil {
		errs = append(errs, err)
	}
	st.Talkers = df.det.Talkers()
	blocks, err := df.g.List()
	if err != nil {
		errs = append(errs, err)
	}
	st.Blocked = len(blocks)
	for i := range st.Talkers.Top {
		t := &st.Talkers.Top[i]
		t.Blocked = slices.ContainsFunc(blocks, func(b netguard.Block) bool { return b.Prefix.Contains(t.Addr) })
	}
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	}
	return st
}

// Close turns the kernel side off: accounting, signatures and lists.
func (df *Defender) Close() error {
	df.notice.Close()
	return errors.Join(df.g.SetAccounting(netguard.Accounting{}), df.g.SetSignatures(nil), df.g.SetIntel(nil))
}

func (df *Defender) poll(ctx context.Context) {
	t := time.NewTicker(df.cfg.Poll.D())
	defer t.Stop()
	df.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			df.sample(now)
			df.flushPending(now)
			if df.d.ExpireBlocks {
				df.expire()
			}
			df.det.Forget(now.Add(-2 * df.cfg.Scan.Outbound.Window.D()))
		}
	}
}

func (df *Defender) sample(now time.Time) {
	srcs, err := df.g.Sources()
	if err != nil {
		df.d.Log.Warn("network defence: counters not read", "err", err)
		return
	}
	tot, err := df.g.Totals()
	if err != nil {
		df.d.Log.Warn("network defence: totals not read", "err", err)
		return
	}
	s := detect.Sample{At: now, Total: detect.Counts{Packets: tot.Packets, Bytes: tot.Bytes, SYNs: tot.SYNs}}
	for _, x := range srcs {
		s.Sources = append(s.Sources, detect.Source{Addr: x.Addr, Counts: detect.Counts{
			Packets: x.Packets, Bytes: x.Bytes, SYNs: x.SYNs, RawSYNs: x.RawSYNs,
			FINs: x.FINs, NULLs: x.NULLs, Xmas: x.Xmas, UDP: x.UDP, Ports: x.Ports, Hosts: x.Hosts}})
	}
	for _, f := range df.det.Observe(s) {
		df.found(f)
	}
}

func (df *Defender) expire() {
	gone, err := df.g.Expire()
	if err != nil {
		df.d.Log.Warn("block expiry", "err", err)
	}
	for _, b := range gone {
		df.d.Response(event.NewResponse(event.Response{Action: "unblock", Mechanism: "xdp+tcx",
			Target: b.Prefix.String(), Outcome: event.ResponseDone, Reason: "the block expired (" + b.Source.String() + ")"}, nil))
	}
}

func (df *Defender) reload(ctx context.Context) {
	t := time.NewTicker(df.cfg.Intel.Reload.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		df.mu.Lock()
		changed := df.lists.Changed()
		df.mu.Unlock()
		if !changed {
			continue
		}
		if err := df.loadLists(); err != nil {
			df.d.Log.Warn("threat intelligence: reload failed, the previous lists stay in the kernel", "err", err)
		}
	}
}

func (df *Defender) readNotices(ctx context.Context) {
	for {
		n, err := df.notice.Read()
		if err != nil {
			if errors.Is(err, netguard.ErrClosed) || ctx.Err() != nil {
				return
			}
			df.d.Log.Warn("network defence: notice", "err", err)
			continue
		}
		df.handleNotice(n, time.Now())
	}
}

// ---- alerts ----

func packetEvent(at time.Time, src, dst netip.Addr, sport, dport uint16, proto uint8) *event.Event {
	n := &event.Net{Op: PacketOp}
	switch proto {
	case 6:
		n.Protocol = "tcp"
	case 17:
		n.Protocol = "udp"
	}
	if src.IsValid() {
		n.Source = netip.AddrPortFrom(src, sport)
		n.Family = "ipv4"
		if src.Is6() {
			n.Family = "ipv6"
		}
	}
	if dst.IsValid() {
		n.Destination = netip.AddrPortFrom(dst, dport)
	}
	return &event.Event{Time: at, Kind: event.KindNet, Net: n}
}

func (df *Defender) alert(trigger *event.Event, id, name string, sev event.Severity, mitre []string, msg string) *event.Event {
	al := event.NewAlert(event.Alert{RuleID: id, RuleName: name, Severity: sev, Tags: []string{"network"},
		MITRE: mitre, Message: msg, Description: "Network defence (docs/network.md)."}, trigger)
	df.d.Alert(al)
	return al
}

// block blocks a at the detector's request and reports it.
func (df *Defender) block(trigger *event.Event, rule string, a netip.Addr, d time.Duration, why string) {
	a = a.Unmap()
	p := netip.PrefixFrom(a, a.BitLen())
	res := event.Response{RuleID: rule, Action: "block-ip", Mechanism: "xdp+tcx", Target: fmt.Sprintf("%s for %s", p, d)}
	if reason := df.d.AddrSafe(a); reason != "" {
		res.Outcome, res.Reason = event.ResponseRefused, reason
	} else if err := df.g.Block(p, time.Now().Add(d), netguard.SourceDetector); err != nil {
		res.Outcome, res.Reason = event.ResponseFailed, err.Error()
	} else {
		res.Outcome, res.Reason = event.ResponseDone, why
		df.mu.Lock()
		df.blocked[a] = time.Now().Add(d)
		df.mu.Unlock()
	}
	df.d.Response(event.NewResponse(res, trigger))
}

func (df *Defender) recentlyBlocked(a netip.Addr, now time.Time) bool {
	df.mu.Lock()
	defer df.mu.Unlock()
	until, ok := df.blocked[a]
	return ok && now.Before(until)
}

func (df *Defender) found(f detect.Finding) {
	switch f.Kind {
	case detect.FloodSource:
		if df.recentlyBlocked(f.Addr, f.At) {
			return // the kernel blocked it and said so
		}
		tr := packetEvent(f.At, f.Addr, netip.Addr{}, 0, 0, 0)
		df.alert(tr, "netdef-flood-source", "Flood from one source", event.SeverityError, []string{"T1498"},
			fmt.Sprintf("%s sends %.0f packets/s, %.0f bits/s, %.0f SYNs/s: over the %s limit", f.Addr, f.Rates.PPS, f.Rates.Bits, f.Rates.SYNs, f.Limit))
		if df.cfg.Flood.Block {
			df.block(tr, "netdef-flood-source", f.Addr, df.cfg.Flood.BlockFor.D(), "over the flood limit (summed over CPUs)")
		}
	case detect.FloodDistributed:
		df.alert(packetEvent(f.At, netip.Addr{}, netip.Addr{}, 0, 0, 0), "netdef-flood-distributed", "Distributed flood", event.SeverityCritical, []string{"T1498"},
			fmt.Sprintf("%.0f packets/s, %.0f bits/s, %.0f SYNs/s in total from %d sources, over the total %s limit; the largest source sends %.1f%% of it",
				f.Rates.PPS, f.Rates.Bits, f.Rates.SYNs, f.Sources, f.Limit, 100*f.TopShare))
	case detect.ScanInbound:
		tr := packetEvent(f.At, f.Addr, netip.Addr{}, 0, 0, 0)
		df.alert(tr, "netdef-scan-inbound", "Port scan of this host", event.SeverityWarning, []string{"T1046"},
			fmt.Sprintf("%s scan from %s: %d new ports and %d new hosts probed within %s (%d %s probes)",
				scanName(f.ScanType), f.Addr, f.Ports, f.Hosts, f.Window, f.Probes, f.ScanType))
		if df.cfg.Scan.Action == "block" && !df.recentlyBlocked(f.Addr, f.At) {
			df.block(tr, "netdef-scan-inbound", f.Addr, df.cfg.Scan.BlockFor.D(), "port scan")
		}
	case detect.ScanOutbound:
		what := fmt.Sprintf("connected to %d ports of %s", f.Ports, f.Addr)
		if f.ScanType == detect.ScanHosts {
			what = fmt.Sprintf("connected to %d hosts", f.Hosts)
		}
		df.alert(f.Trigger, "netdef-scan-outbound", "Process scans the network", event.SeverityWarning, []string{"T1046"},
			fmt.Sprintf("%s (pid %d) %s within %s", f.Trigger.Process.Executable, f.Trigger.Process.PID, what, f.Window))
		if df.cfg.Scan.Outbound.Action == "block" && f.ScanType == detect.ScanPorts {
			df.block(f.Trigger, "netdef-scan-outbound", f.Addr, df.cfg.Scan.BlockFor.D(), "scanned by a local process")
		}
	}
}

func scanName(t string) string {
	switch t {
	case detect.ScanSYN:
		return "SYN"
	case detect.ScanConnect:
		return "TCP connect"
	case detect.ScanFIN:
		return "FIN"
	case detect.ScanNULL:
		return "NULL"
	case detect.ScanXmas:
		return "Xmas"
	case detect.ScanUDP:
		return "UDP"
	}
	return t
}

func (df *Defender) handleNotice(n netguard.Notice, now time.Time) {
	switch n.Kind {
	case netguard.NoticeFlood:
		df.mu.Lock()
		until, dup := df.blocked[n.Src]
		dup = dup && now.Before(until) && until.Sub(n.Expires).Abs() < 2*time.Second
		if !dup {
			df.blocked[n.Src] = n.Expires
		}
		df.mu.Unlock()
		if dup {
			return // another CPU's notice of the same block
		}
		reason := netguard.FloodReason(n.Reason)
		tr := packetEvent(now, n.Src, n.Dst, 0, 0, n.Proto)
		df.alert(tr, "netdef-flood-source", "Flood from one source", event.SeverityError, []string{"T1498"},
			fmt.Sprintf("%s sent %d %s within one second on one CPU: blocked in the kernel until %s",
				n.Src, n.Rate, strings.TrimSuffix(reason.String(), "/s"), n.Expires.Format(time.RFC3339)))
		d := n.Expires.Sub(now).Round(time.Second)
		df.d.Response(event.NewResponse(event.Response{RuleID: "netdef-flood-source", Action: "block-ip",
			Mechanism: "xdp (kernel flood limit)", Target: fmt.Sprintf("%s for %s", netip.PrefixFrom(n.Src, n.Src.BitLen()), d),
			Outcome: event.ResponseDone, Reason: fmt.Sprintf("over %s in the kernel", reason)}, tr))
	case netguard.NoticeIntel:
		if !n.Ingress {
			df.mu.Lock()
			if _, ok := df.pending[n.Src]; !ok {
				df.pending[n.Src] = pendingNote{n, now}
			}
			df.mu.Unlock()
			return
		}
		df.intelNotice(n, now)
	case netguard.NoticePayload:
		df.mu.Lock()
		var id string
		if int(n.Reason) < len(df.payload) {
			id = df.payload[n.Reason]
		}
		df.mu.Unlock()
		if id == "" || df.d.Payload == nil {
			return
		}
		df.d.Payload(payloadEvent(now, n), id)
	}
}

// payloadEnds are a payload notice's local and remote ends.
func payloadEnds(n netguard.Notice) (local, remote netip.AddrPort) {
	src, dst := netip.AddrPortFrom(n.Src, n.Sport), netip.AddrPortFrom(n.Dst, n.Dport)
	if n.Ingress {
		return dst, src
	}
	return src, dst
}

// payloadEvent is the net event of a packet that matched a payload rule:
// its local end is the source, its remote end the destination, as in
// connect events. Return is -1 when the kernel dropped it (a deny rule), as
// for a connect the cgroup hook refused.
func payloadEvent(at time.Time, n netguard.Notice) *event.Event {
	e := packetEvent(at, netip.Addr{}, netip.Addr{}, 0, 0, n.Proto)
	if n.Block {
		e.Return = -1
	}
	e.Net.Op, e.Net.Dir = event.NetPayload, "egress"
	if n.Ingress {
		e.Net.Dir = "ingress"
	}
	e.Net.Source, e.Net.Destination = payloadEnds(n)
	e.Net.Family = "ipv4"
	if n.Src.Is6() && !n.Src.Is4In6() {
		e.Net.Family = "ipv6"
	}
	return e
}

func (df *Defender) intelNotice(n netguard.Notice, now time.Time) {
	df.mu.Lock()
	lists := df.lists
	df.mu.Unlock()
	name := fmt.Sprintf("list %d", n.Reason)
	if ls := lists.Lists(); int(n.Reason) < len(ls) {
		name = ls[n.Reason].Name
	}
	did := "seen"
	if n.Block {
		did = "dropped"
	}
	var tr *event.Event
	id, dir := "netdef-intel-ingress", "from"
	if n.Ingress {
		tr = packetEvent(now, n.Src, netip.Addr{}, 0, 0, 0)
	} else {
		id, dir = "netdef-intel-egress", "to"
		tr = packetEvent(now, netip.Addr{}, n.Src, 0, 0, 0)
	}
	df.alert(tr, id, "Traffic with a listed address", event.SeverityError, []string{"T1071"},
		fmt.Sprintf("packets %s %s, listed in %s: %s", dir, n.Src, name, did))
}

// flushPending reports the kernel's egress intel notices that no connect
// event explained within two seconds (UDP, or a process outside the
// sensor's view).
func (df *Defender) flushPending(now time.Time) {
	df.mu.Lock()
	var out []netguard.Notice
	for a, p := range df.pending {
		if now.Sub(p.at) < 2*time.Second {
			continue
		}
		delete(df.pending, a)
		if at, ok := df.egressHit[a]; ok && now.Sub(at) < time.Minute {
			continue
		}
		out = append(out, p.n)
	}
	for a, at := range df.egressHit {
		if now.Sub(at) > time.Minute {
			delete(df.egressHit, a)
		}
	}
	for pid, q := range df.queries {
		if now.Sub(q.at) > df.cfg.Intel.Attribute.D() {
			delete(df.queries, pid)
		}
	}
	df.mu.Unlock()
	for _, n := range out {
		df.intelNotice(n, now)
	}
}

// Observe takes a net event (on the agent's reader goroutine): connects
// feed the outbound scan detector and are checked against the lists, DNS
// queries against the domain lists.
func (df *Defender) Observe(e *event.Event) {
	if e.Net == nil {
		return
	}
	switch e.Net.Op {
	case event.NetConnect:
		df.connect(e)
	case event.NetDNS:
		df.dns(e)
	}
}

func (df *Defender) dns(e *event.Event) {
	q := e.Net.DNS
	if q == nil {
		return
	}
	df.mu.Lock()
	hit, ok := df.lists.Domain(q.Name)
	if ok {
		df.queries[e.Process.PID] = query{at: e.Time, start: e.Process.StartBoot, name: q.Name, hit: hit}
	}
	df.mu.Unlock()
	if !ok {
		return
	}
	df.alert(e, "netdef-intel-dns", "DNS query for a listed domain", event.SeverityError, []string{"T1071.004"},
		fmt.Sprintf("%s (pid %d) asked for %s, listed in %s (%s)", e.Process.Executable, e.Process.PID, q.Name, hit.Name, hit.Match))
}

func (df *Defender) connect(e *event.Event) {
	if df.cfg.Scan.Enabled && df.cfg.Scan.Outbound.Enabled {
		for _, f := range df.det.ObserveConnect(e) {
			df.found(f)
		}
	}
	dst := e.Net.Destination.Addr().Unmap()
	if !dst.IsValid() {
		return
	}
	df.mu.Lock()
	hit, listed := df.lists.Addr(dst)
	if listed {
		df.egressHit[dst] = e.Time
	}
	q, queried := df.queries[e.Process.PID]
	queried = queried && q.start == e.Process.StartBoot && e.Time.Sub(q.at) <= df.cfg.Intel.Attribute.D()
	if queried {
		key := fmt.Sprintf("%d/%d/%s", e.Process.PID, e.Process.StartBoot, dst)
		if df.attrib[key] {
			queried = false
		} else {
			if len(df.attrib) > 65536 {
				clear(df.attrib)
			}
			df.attrib[key] = true
		}
	}
	df.mu.Unlock()
	if listed {
		did := "made"
		if e.Return < 0 {
			did = fmt.Sprintf("failed (%d)", e.Return)
		}
		if hit.Block && e.Return == -1 /* EPERM */ {
			did = "refused by the cgroup connect hook"
		}
		df.alert(e, "netdef-intel-egress", "Connection to a listed address", event.SeverityError, []string{"T1071"},
			fmt.Sprintf("%s (pid %d) connected to %s, listed in %s (%s): %s", e.Process.Executable, e.Process.PID, e.Net.Destination, hit.Name, hit.Match, did))
	}
	if queried {
		df.alert(e, "netdef-intel-domain-connect", "Connection after a query for a listed domain", event.SeverityError, []string{"T1071"},
			fmt.Sprintf("%s (pid %d) connected to %s %s after asking for %s, listed in %s; attributed by the process's preceding query (DNS answers are not seen)",
				e.Process.Executable, e.Process.PID, e.Net.Destination, e.Time.Sub(q.at).Round(time.Millisecond), q.name, q.hit.Name))
		if q.hit.Block {
			df.block(e, "netdef-intel-domain-connect", dst, df.cfg.Intel.BlockFor.D(), "attributed to "+q.name)
		}
	}
}
