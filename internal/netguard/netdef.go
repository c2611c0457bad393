package netguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Network defence in the XDP and tcx programs (netdef.h): per-source
// accounting, flood limits decided in the kernel, threat-intelligence
// prefixes and payload signatures. All of it is off until set.

// Limits of the payload signatures the kernel searches.
const (
	MaxSignatures     = 32
	MaxSignatureLen   = 32
	SignatureScanLen  = 128 // payload bytes searched
	SignatureFlowPkts = 3   // payload packets searched per flow and direction
)

// Accounting configures the XDP accounting and the kernel's flood limits.
type Accounting struct {
	// Enabled counts every IP packet that passes the block list, per source.
	Enabled bool
	// AutoBlock blocks, in the kernel, a source over a limit within one
	// CPU's one-second window, for BlockFor. Zero limits are off.
	AutoBlock           bool
	PPS, BitsPS, SYNsPS uint64
	BlockFor            time.Duration
	// PairWindow: a (source, port) or (source, host) pair seen longer ago
	// than this counts as new again. Default one minute.
	PairWindow time.Duration
	// NoticeInterval: at most one threat-intelligence notice per address
	// and direction in it. Default one minute.
	NoticeInterval time.Duration
	// UDPPortMax: UDP datagrams count as probes only to ports below it, so
	// that replies to this host's queries (to ephemeral ports) do not look
	// like a scan. Default 32768.
	UDPPortMax uint16
}

func (g *Guard) netdefConfig() (bpfNetdefConfig, error) {
	var c bpfNetdefConfig
	if err := g.objs.VgNdConfig.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("netdef config: %w", err)
	}
	return c, nil
}

func (g *Guard) setNetdefConfig(f func(*bpfNetdefConfig)) error {
	c, err := g.netdefConfig()
	if err != nil {
		return err
	}
	f(&c)
	if c.PairNs == 0 {
		c.PairNs = uint64(time.Minute)
	}
	if c.NoticeNs == 0 {
		c.NoticeNs = uint64(time.Minute)
	}
	if c.UdpPortMax == 0 {
		c.UdpPortMax = 32768
	}
	if err := g.objs.VgNdConfig.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("netdef config: %w", err)
	}
	return nil
}

// SetAccounting turns accounting and the kernel's flood limits on or off.
func (g *Guard) SetAccounting(a Accounting) error {
	if a.AutoBlock && a.BlockFor <= 0 {
		return errors.New("accounting: auto block needs a positive BlockFor")
	}
	return g.setNetdefConfig(func(c *bpfNetdefConfig) {
		c.Account, c.AutoBlock = b32(a.Enabled), b32(a.Enabled && a.AutoBlock)
		c.Pps, c.Bits, c.Syns = a.PPS, a.BitsPS, a.SYNsPS
		c.BlockNs = uint64(a.BlockFor)
		c.PairNs, c.NoticeNs, c.UdpPortMax = uint64(a.PairWindow), uint64(a.NoticeInterval), uint32(a.UDPPortMax)
	})
}

func b32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// SetFloodAllow replaces the prefixes the kernel's flood limits never block.
func (g *Guard) SetFloodAllow(allow []netip.Prefix) error {
	return replaceTrie(g.objs.VgNdAllow, allow, func(netip.Prefix) any { v := uint32(1); return &v })
}

func replaceTrie(m *ebpf.Map, want []netip.Prefix, val func(netip.Prefix) any) error {
	keep := map[bpfLpmKey]bool{}
	for _, p := range want {
		if !p.IsValid() {
			return fmt.Errorf("invalid prefix %v", p)
		}
		k := keyOf(p)
		keep[k] = true
		if err := m.Put(&k, val(p)); err != nil {
			return fmt.Errorf("%v: %w", p, err)
		}
	}
	old, err := trieKeys(m)
	for _, k := range old {
		if !keep[k] {
			m.Delete(&k)
		}
	}
	return err
}

// trieKeys lists an LPM trie's keys.
func trieKeys(m *ebpf.Map) ([]bpfLpmKey, error) {
	var out []bpfLpmKey
	var k bpfLpmKey
	var prev any // nil: the first key
	for {
		if err := m.NextKey(prev, &k); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return out, nil
			}
			return out, err
		}
		out = append(out, k)
		kk := k
		prev = &kk
	}
}

// SourceStats are the counts of one source address, summed over CPUs,
// since the kernel first saw it (or since its entry was recycled: the map
// is an LRU of 16384 sources).
type SourceStats struct {
	Addr    netip.Addr
	Packets uint64
	Bytes   uint64
	// SYNs without ACK; RawSYNs of them carry at most 4 bytes of TCP
	// options, as crafted probes do (nmap -sS), where a kernel's connect
	// sends 20.
	SYNs, RawSYNs uint64
	// Probes: TCP with only FIN, with no flag (NULL), with FIN, PSH and URG
	// (Xmas); UDP to a port below Accounting.UDPPortMax.
	FINs, NULLs, Xmas, UDP uint64
	// Ports and Hosts count new (source, destination port) and (source,
	// destination address) pairs of probes.
	Ports, Hosts uint64
	// Last is when the source last sent, CLOCK_BOOTTIME.
	Last time.Duration
}

// Sources reads the per-source counters.
func (g *Guard) Sources() ([]SourceStats, error) {
	var out []SourceStats
	var k [16]byte
	var per []bpfSrcStats
	it := g.objs.VgSrc.Iterate()
	for it.Next(&k, &per) {
		s := SourceStats{Addr: netip.AddrFrom16(k).Unmap()}
		for _, v := range per {
			s.Packets += v.Packets
			s.Bytes += v.Bytes
			s.SYNs += v.Syns
			s.RawSYNs += v.SynsRaw
			s.FINs += v.Fins
			s.NULLs += v.Nulls
			s.Xmas += v.Xmas
			s.UDP += v.Udp
			s.Ports += v.Ports
			s.Hosts += v.Hosts
			s.Last = max(s.Last, time.Duration(v.Last))
		}
		out = append(out, s)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read sources: %w", err)
	}
	return out, nil
}

// Totals are every accounted packet, all sources together.
type Totals struct {
	Packets, Bytes, SYNs uint64
}

// Totals reads the totals.
func (g *Guard) Totals() (Totals, error) {
	var per []bpfNdTotal
	if err := g.objs.VgNdTotal.Lookup(uint32(0), &per); err != nil {
		return Totals{}, fmt.Errorf("read totals: %w", err)
	}
	var t Totals
	for _, v := range per {
		t.Packets += v.Packets
		t.Bytes += v.Bytes
		t.SYNs += v.Syns
	}
	return t, nil
}

// IntelEntry is what the kernel does with a listed prefix.
type IntelEntry struct {
	List  uint32 // the caller's list number, reported in notices
	Block bool   // drop on ingress and egress, refuse connects
}

// SetIntel replaces the threat-intelligence prefixes.
func (g *Guard) SetIntel(entries map[netip.Prefix]IntelEntry) error {
	// Lookups stop while the set is empty.
	if len(entries) == 0 {
		if err := g.setNetdefConfig(func(c *bpfNetdefConfig) { c.Intel = 0 }); err != nil {
			return err
		}
	}
	keep := make(map[bpfLpmKey]bool, len(entries))
	for p, e := range entries {
		if !p.IsValid() {
			return fmt.Errorf("intel: invalid prefix %v", p)
		}
		k := keyOf(p)
		keep[k] = true
		v := bpfIntelVal{List: e.List, Block: b32(e.Block)}
		if err := g.objs.VgIntel.Put(&k, &v); err != nil {
			return fmt.Errorf("intel %v: %w", p, err)
		}
	}
	old, err := trieKeys(g.objs.VgIntel)
	if err != nil {
		return fmt.Errorf("intel: %w", err)
	}
	for _, k := range old {
		if !keep[k] {
			g.objs.VgIntel.Delete(&k)
		}
	}
	return g.setNetdefConfig(func(c *bpfNetdefConfig) { c.Intel = uint32(len(entries)) })
}

// Direction of a payload signature.
const (
	DirBoth    = 0
	DirIngress = 1
	DirEgress  = 2
)

// Signature is a byte pattern the kernel searches for in the first
// SignatureScanLen payload bytes of the first SignatureFlowPkts payload
// packets of each TCP or UDP flow, per direction.
type Signature struct {
	Pattern []byte // 1 to MaxSignatureLen bytes
	Proto   uint8  // 6, 17, or 0 for both
	Port    uint16 // either end's port; 0: any
	Dir     uint8  // DirBoth, DirIngress, DirEgress
	Block   bool   // drop the packet that matched
}

// SetSignatures replaces the payload signatures; notices name them by index.
func (g *Guard) SetSignatures(sigs []Signature) error {
	if len(sigs) > MaxSignatures {
		return fmt.Errorf("signatures: %d, at most %d", len(sigs), MaxSignatures)
	}
	if err := g.setNetdefConfig(func(c *bpfNetdefConfig) { c.Signatures = 0 }); err != nil {
		return err
	}
	for i, s := range sigs {
		if len(s.Pattern) == 0 || len(s.Pattern) > MaxSignatureLen {
			return fmt.Errorf("signature %d: pattern of %d bytes, want 1 to %d", i, len(s.Pattern), MaxSignatureLen)
		}
		v := bpfSig{Len: uint32(len(s.Pattern)), Port: s.Port, Proto: s.Proto, Dir: s.Dir, Block: uint8(b32(s.Block))}
		copy(v.Pat[:], s.Pattern)
		if err := g.objs.VgSigs.Put(uint32(i), &v); err != nil {
			return fmt.Errorf("signature %d: %w", i, err)
		}
	}
	return g.setNetdefConfig(func(c *bpfNetdefConfig) { c.Signatures = uint32(len(sigs)) })
}

// NoticeKind says what a notice is about.
type NoticeKind uint32

const (
	NoticeFlood   = NoticeKind(bpfNoticeKindNOTICE_FLOOD)
	NoticeIntel   = NoticeKind(bpfNoticeKindNOTICE_INTEL)
	NoticePayload = NoticeKind(bpfNoticeKindNOTICE_PAYLOAD)
)

// FloodReason is the limit a source went over.
type FloodReason uint32

const (
	FloodPPS  = FloodReason(bpfFloodReasonFLOOD_PPS)
	FloodBits = FloodReason(bpfFloodReasonFLOOD_BITS)
	FloodSYNs = FloodReason(bpfFloodReasonFLOOD_SYNS)
)

func (r FloodReason) String() string {
	switch r {
	case FloodPPS:
		return "packets/s"
	case FloodBits:
		return "bits/s"
	case FloodSYNs:
		return "SYNs/s"
	}
	return fmt.Sprintf("reason-%d", uint32(r))
}

// Notice is what the kernel did or saw and tells user space about.
type Notice struct {
	Kind NoticeKind
	// Flood: the reason; Intel: the list; Payload: the signature's index.
	Reason uint32
	// Flood and payload: the packet's ends. Intel: Src is the listed
	// remote address, whichever the direction.
	Src, Dst     netip.Addr
	Sport, Dport uint16
	Proto        uint8
	Ingress      bool
	// Block: the kernel blocked the source (flood), dropped or refused
	// (intel, payload).
	Block bool
	// Flood: the count in the CPU's one-second window, and the expiry of the block.
	Rate    uint64
	Expires time.Time
}

// NoticeReader reads the kernel's notices.
type NoticeReader struct {
	r *ringbuf.Reader
}

// Notices opens the notice ring. Only one reader should read it.
func (g *Guard) Notices() (*NoticeReader, error) {
	r, err := ringbuf.NewReader(g.objs.VgNotice)
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	return &NoticeReader{r: r}, nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t.
func (n *NoticeReader) SetDeadline(t time.Time) { n.r.SetDeadline(t) }

// Read waits for the next notice. After Close it returns ErrClosed.
func (n *NoticeReader) Read() (Notice, error) {
	rec, err := n.r.Read()
	if err != nil {
		if errors.Is(err, ringbuf.ErrClosed) {
			return Notice{}, ErrClosed
		}
		return Notice{}, err
	}
	return decodeNotice(rec.RawSample)
}

// ErrClosed: the reader was closed.
var ErrClosed = errors.New("notice reader closed")

// Close stops the reader; a pending Read returns ErrClosed.
func (n *NoticeReader) Close() error { return n.r.Close() }

func decodeNotice(b []byte) (Notice, error) {
	var raw bpfNotice
	if _, err := binary.Decode(b, binary.LittleEndian, &raw); err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	n := Notice{
		Kind: NoticeKind(raw.Kind), Reason: raw.Reason,
		Src: netip.AddrFrom16(raw.Src).Unmap(), Dst: netip.AddrFrom16(raw.Dst).Unmap(),
		Sport: raw.Sport, Dport: raw.Dport, Proto: raw.Proto,
		Ingress: raw.Ingress != 0, Block: raw.Block != 0, Rate: raw.Rate,
	}
	if raw.Expires != 0 {
		bn, now := bootNow()
		n.Expires = now.Add(time.Duration(int64(raw.Expires) - int64(bn))).Round(time.Millisecond)
	}
	if n.Kind != NoticeIntel && raw.Dst == ([16]byte{}) {
		n.Dst = netip.Addr{}
	}
	return n, nil
}

// NetdefStats are the kernel's counts of network-defence actions.
type NetdefStats struct {
	IntelDropsIn        uint64 `json:"intel_drops_ingress"`
	IntelDropsOut       uint64 `json:"intel_drops_egress"`
	IntelDeniedConnects uint64 `json:"intel_denied_connects"`
	FloodBlocks         uint64 `json:"flood_blocks"`
	PayloadMatches      uint64 `json:"payload_matches"`
	PayloadDrops        uint64 `json:"payload_drops"`
	// NoticesLost: notices (floods, intel hits, payload matches) the
	// kernel could not queue because the notice ring was full.
	NoticesLost uint64 `json:"notices_lost"`
}

// NetdefStats reads the counters.
func (g *Guard) NetdefStats() (NetdefStats, error) {
	var vals [7]uint64
	for i := range vals {
		var per []uint64
		if err := g.objs.VgNdStats.Lookup(uint32(i), &per); err != nil {
			return NetdefStats{}, fmt.Errorf("netdef stats: %w", err)
		}
		for _, n := range per {
			vals[i] += n
		}
	}
	return NetdefStats{vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6]}, nil
}
