// Package netguard is Vigil's network enforcement in the kernel
// (netguard.bpf.c): connect and bind refused with EPERM by cgroup hooks,
// addresses and prefixes blocked with an expiry by XDP on ingress and tcx on
// egress, and host isolation (everything but an allowlist dropped).
//
// The state lives in BPF maps pinned in a directory of Vigil's own
// (/sys/fs/bpf/vigil by default), shared by manual blocks (`vigil block`),
// rules (block-ip) and detectors: whoever opens the directory sees and
// changes the same block list. With Persist, the attachments are pinned too
// while anything is blocked or the host is isolated, so that enforcement
// outlives the agent until it is lifted.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where the agent pins its enforcement state.
const DefaultPinDir = "/sys/fs/bpf/vigil"

// Source says who asked for a block.
type Source uint32

const (
	SourceManual   Source = 1 // vigil block add
	SourceRule     Source = 2 // a rule's block-ip response
	SourceDetector Source = 3 // a detector (flood, scan)
)

func (s Source) String() string {
	switch s {
	case SourceManual:
		return "manual"
	case SourceRule:
		return "rule"
	case SourceDetector:
		return "detector"
	}
	return fmt.Sprintf("source-%d", uint32(s))
}

// Config says where the guard attaches.
type Config struct {
	// PinDir holds the pinned maps (and links). Required.
	PinDir string
	// Cgroup is the cgroup v2 directory whose processes' connects and binds
	// are checked; "" attaches no socket hooks. The v2 root covers the host.
	Cgroup string
	// Interfaces get the XDP (ingress) and tcx (egress) programs.
	Interfaces []string
	// XDPMode is "native" (the driver's XDP), "generic" (XDP after the
	// kernel built the skb), "tcx" (no XDP: the tcx ingress program does the
	// work), or "" for native where the driver has it and is not veth, tcx
	// otherwise.
	XDPMode string
	// SkipRefused: an interface that refuses the programs (another XDP
	// program holds it, say) is left alone and reported by Skipped, instead
	// of failing Open. For interfaces found by a wildcard, not named.
	SkipRefused bool
	// Persist keeps the attachments pinned at Close while a block is active
	// or the host is isolated, so they outlive the process.
	Persist bool
}

// Block is one blocked prefix.
type Block struct {
	Prefix netip.Prefix
	Until  time.Time // zero: until removed
	Source Source
}

// Deny is a connect or bind the socket hooks refuse.
type Deny struct {
	Bind bool       // a bind; otherwise a connect
	Addr netip.Addr // remote (connect) or local (bind) address; invalid: any
	Port uint16     // 0: any
}

// Guard is the loaded enforcement programs and their pinned state.
type Guard struct {
	cfg   Config
	objs  bpfObjects
	links map[string]link.Link // by pin name
	// xdpModes says how XDP attached per interface: native, generic, or
	// taken over (a link pinned by an earlier run, in the mode it had).
	xdpModes map[string]string
	skipped  map[string]string // interface -> why it was left alone
}

// XDPModes says how XDP is attached, by interface.
func (g *Guard) XDPModes() map[string]string { return g.xdpModes }

// Skipped lists the interfaces left alone (Config.SkipRefused) and why.
func (g *Guard) Skipped() map[string]string { return g.skipped }

// Hook names, for status.
func (g *Guard) Hooks() []string {
	var out []string
	for name := range g.links {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Open loads the programs, reusing the maps pinned in cfg.PinDir (so a
// restarted agent finds the blocks and isolation it left), and attaches them.
// A link pinned by an earlier run is updated to the new program.
func Open(cfg Config) (*Guard, error) {
	if cfg.PinDir == "" {
		return nil, errors.New("netguard: no pin directory")
	}
	g, err := load(cfg, false)
	if err != nil {
		return nil, err
	}
	if err := g.attach(); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// OpenPinned opens the state an agent pinned in dir, without attaching
// anything: what `vigil block` and `vigil isolate` use.
func OpenPinned(dir string) (*Guard, error) {
	if _, err := os.Stat(filepath.Join(dir, "vg_block")); err != nil {
		return nil, fmt.Errorf("no enforcement state in %s (is the agent running, with response.network on?): %w", dir, err)
	}
	return load(Config{PinDir: dir}, true)
}

func load(cfg Config, mapsOnly bool) (*Guard, error) {
	if err := EnsureBPFFS(cfg.PinDir); err != nil {
		return nil, fmt.Errorf("netguard: %w", err)
	}
	if err := os.MkdirAll(cfg.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("netguard: %w", err)
	}
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("netguard: %w", err)
	}
	for name, m := range spec.Maps {
		if strings.HasPrefix(name, "vg_") {
			m.Pinning = ebpf.PinByName
		}
	}
	g := &Guard{cfg: cfg, links: map[string]link.Link{}, xdpModes: map[string]string{}, skipped: map[string]string{}}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinDir}}
	var to any = &g.objs
	if mapsOnly {
		to = &g.objs.bpfMaps
	}
	if err := spec.LoadAndAssign(to, opts); err != nil {
		return nil, fmt.Errorf("netguard: load: %w", err)
	}
	return g, nil
}

func (g *Guard) attach() error {
	if cg := g.cfg.Cgroup; cg != "" {
		for _, h := range []struct {
			name string
			at   ebpf.AttachType
			prog *ebpf.Program
		}{
			{"connect4", ebpf.AttachCGroupInet4Connect, g.objs.VgConnect4},
			{"connect6", ebpf.AttachCGroupInet6Connect, g.objs.VgConnect6},
			{"bind4", ebpf.AttachCGroupInet4Bind, g.objs.VgBind4},
			{"bind6", ebpf.AttachCGroupInet6Bind, g.objs.VgBind6},
		} {
			err := g.link("cgroup-"+h.name, h.prog, func() (link.Link, error) {
				return link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: h.at, Program: h.prog})
			})
			if err != nil {
				return fmt.Errorf("netguard: attach cgroup/%s to %s: %w", h.name, cg, err)
			}
		}
	}
	for _, name := range g.cfg.Interfaces {
		if err := g.attachInterface(name); err != nil {
			if !g.cfg.SkipRefused {
				return err
			}
			// Leave it as it was: drop whatever attached before the refusal.
			for _, hook := range []string{"xdp-", "tcx-egress-", "tcx-ingress-"} {
				if l, ok := g.links[hook+name]; ok {
					l.Close()
					delete(g.links, hook+name)
				}
			}
			delete(g.xdpModes, name)
			g.skipped[name] = err.Error()
		}
	}
	return nil
}

// attachInterface gives one interface the XDP and tcx programs.
func (g *Guard) attachInterface(name string) error {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("netguard: interface %q: %w", name, err)
	}
	in := g.objs.VgTcIn
	tcx := g.ingressMode(name) == "tcx"
	if !tcx {
		if err := g.attachXDP(name, ifc.Index); errors.Is(err, errNoNativeXDP) {
			tcx = true // auto mode, and the driver has no native XDP
		} else if err != nil {
			return err
		}
	}
	if tcx {
		// The ingress work is in the tcx ingress program. A run in another
		// mode may have left its XDP link pinned.
		if l, err := link.LoadPinnedLink(filepath.Join(g.linkDir(), "xdp-"+name), nil); err == nil {
			l.Unpin()
			l.Close()
		}
		g.xdpModes[name] = "tcx"
		in = g.objs.VgTcInFull
	}
	err = g.link("tcx-egress-"+name, g.objs.VgTcOut, func() (link.Link, error) {
		return link.AttachTCX(link.TCXOptions{Program: g.objs.VgTcOut, Interface: ifc.Index, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
	})
	if err != nil {
		return fmt.Errorf("netguard: attach tcx egress to %s: %w", name, err)
	}
	err = g.link("tcx-ingress-"+name, in, func() (link.Link, error) {
		return link.AttachTCX(link.TCXOptions{Program: in, Interface: ifc.Index, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
	})
	if err != nil {
		return fmt.Errorf("netguard: attach tcx ingress to %s: %w", name, err)
	}
	return nil
}

// ingressMode says where an interface's ingress work runs: "tcx" when
// configured, or in auto mode on veth; "xdp" otherwise (in auto mode an
// interface whose driver has no native XDP falls back to tcx at attach).
func (g *Guard) ingressMode(name string) string {
	switch {
	case g.cfg.XDPMode == "tcx", g.cfg.XDPMode == "" && driver(name) == "veth":
		return "tcx"
	}
	return "xdp"
}

// driver names an interface's driver ("veth", "virtio_net"...), or "".
func driver(name string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}

// errNoNativeXDP: in auto mode, the driver refused native XDP.
var errNoNativeXDP = errors.New("no native XDP")

// attachXDP attaches the XDP program in the configured mode: native or
// generic as asked, or in auto mode native, failing with errNoNativeXDP
// where the driver has none.
func (g *Guard) attachXDP(name string, index int) error {
	mode := "taken over"
	err := g.link("xdp-"+name, g.objs.VgXdpIn, func() (link.Link, error) {
		if g.cfg.XDPMode == "generic" {
			mode = "generic"
			return link.AttachXDP(link.XDPOptions{Program: g.objs.VgXdpIn, Interface: index, Flags: link.XDPGenericMode})
		}
		mode = "native"
		l, err := link.AttachXDP(link.XDPOptions{Program: g.objs.VgXdpIn, Interface: index, Flags: link.XDPDriverMode})
		if err != nil && g.cfg.XDPMode == "" {
			return nil, fmt.Errorf("%w: %w", errNoNativeXDP, err)
		}
		return l, err
	})
	if errors.Is(err, errNoNativeXDP) {
		return err
	}
	if err != nil {
		return fmt.Errorf("netguard: attach xdp to %s: %w", name, err)
	}
	g.xdpModes[name] = mode
	return nil
}

// link takes over a link pinned by an earlier run, or attaches a new one.
func (g *Guard) link(name string, prog *ebpf.Program, attach func() (link.Link, error)) error {
	pin := filepath.Join(g.linkDir(), name)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(prog); err == nil {
			g.links[name] = l
			return nil
		}
		// Gone stale (its interface was removed, say): start afresh.
		l.Unpin()
		l.Close()
	}
	l, err := attach()
	if err != nil {
		return err
	}
	g.links[name] = l
	return nil
}

func (g *Guard) linkDir() string { return filepath.Join(g.cfg.PinDir, "links") }

// Linked reports whether enforcement programs are pinned in the directory,
// that is, attached by an agent that is running or that left blocks or
// isolation in force.
func Linked(dir string) bool {
	ents, _ := os.ReadDir(filepath.Join(dir, "links"))
	return len(ents) > 0
}

// bootNow is CLOCK_BOOTTIME, the clock of block expiries.
func bootNow() (uint64, time.Time) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano()), time.Now()
}

func keyOf(p netip.Prefix) bpfLpmKey {
	p = p.Masked()
	a := p.Addr()
	bits := p.Bits()
	if a.Is4() {
		bits += 96
	}
	return bpfLpmKey{Prefixlen: uint32(bits), Addr: a.As16()}
}

func prefixOf(k bpfLpmKey) netip.Prefix {
	a := netip.AddrFrom16(k.Addr)
	bits := int(k.Prefixlen)
	if a.Is4In6() && bits >= 96 {
		return netip.PrefixFrom(a.Unmap(), bits-96)
	}
	return netip.PrefixFrom(a, bits)
}

// Block drops traffic from and to p until until (zero: until Unblock). A
// block of the same prefix is replaced.
func (g *Guard) Block(p netip.Prefix, until time.Time, src Source) error {
	if !p.IsValid() {
		return fmt.Errorf("block: invalid prefix %v", p)
	}
	v := bpfBlockVal{Source: uint32(src)}
	if !until.IsZero() {
		bn, now := bootNow()
		d := until.Sub(now)
		if d <= 0 {
			return fmt.Errorf("block %v: expiry %v is in the past", p, until.Format(time.RFC3339))
		}
		v.Expires = bn + uint64(d)
	}
	k := keyOf(p)
	if err := g.objs.VgBlock.Put(&k, &v); err != nil {
		return fmt.Errorf("block %v: %w", p, err)
	}
	return nil
}

// Unblock lifts the block of exactly p. It reports ErrNotBlocked if there was none.
func (g *Guard) Unblock(p netip.Prefix) error {
	k := keyOf(p)
	if err := g.objs.VgBlock.Delete(&k); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unblock %v: %w", p, ErrNotBlocked)
		}
		return fmt.Errorf("unblock %v: %w", p, err)
	}
	return nil
}

// ErrNotBlocked: Unblock of a prefix that is not blocked.
var ErrNotBlocked = errors.New("not blocked")

// List returns the blocks in force, expired ones left out.
func (g *Guard) List() ([]Block, error) {
	bn, now := bootNow()
	var out []Block
	var k bpfLpmKey
	var v bpfBlockVal
	it := g.objs.VgBlock.Iterate()
	for it.Next(&k, &v) {
		if v.Expires != 0 && v.Expires <= bn {
			continue
		}
		b := Block{Prefix: prefixOf(k), Source: Source(v.Source)}
		if v.Expires != 0 {
			b.Until = now.Add(time.Duration(v.Expires - bn)).Round(time.Millisecond)
		}
		out = append(out, b)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	slices.SortFunc(out, func(a, b Block) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out, nil
}

// Expire deletes the blocks whose time is up (the kernel already ignores
// them) and returns them.
func (g *Guard) Expire() ([]Block, error) {
	bn, _ := bootNow()
	var gone []bpfLpmKey
	var out []Block
	var k bpfLpmKey
	var v bpfBlockVal
	it := g.objs.VgBlock.Iterate()
	for it.Next(&k, &v) {
		if v.Expires != 0 && v.Expires <= bn {
			gone = append(gone, k)
			out = append(out, Block{Prefix: prefixOf(k), Source: Source(v.Source)})
		}
	}
	var errs []error
	for _, k := range gone {
		if err := g.objs.VgBlock.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(it.Err(), errors.Join(errs...))
}

// Isolate drops every IP packet on the guarded interfaces whose remote end
// is not in allow. Loopback is never guarded. Calling it again replaces the
// allowlist.
func (g *Guard) Isolate(allow []netip.Prefix) error {
	if err := g.setAllow(allow); err != nil {
		return err
	}
	return g.setConfig(func(c *bpfGuardConfig) { c.Isolate = 1 })
}

// Unisolate lifts isolation.
func (g *Guard) Unisolate() error {
	if err := g.setConfig(func(c *bpfGuardConfig) { c.Isolate = 0 }); err != nil {
		return err
	}
	return g.setAllow(nil)
}

// Isolation reports whether the host is isolated, and its allowlist.
func (g *Guard) Isolation() (bool, []netip.Prefix, error) {
	c, err := g.config()
	if err != nil {
		return false, nil, err
	}
	var allow []netip.Prefix
	var k bpfLpmKey
	var v uint32
	it := g.objs.VgAllow.Iterate()
	for it.Next(&k, &v) {
		allow = append(allow, prefixOf(k))
	}
	slices.SortFunc(allow, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return c.Isolate != 0, allow, it.Err()
}

func (g *Guard) setAllow(allow []netip.Prefix) error {
	var old []bpfLpmKey
	var k bpfLpmKey
	var v uint32
	it := g.objs.VgAllow.Iterate()
	for it.Next(&k, &v) {
		old = append(old, k)
	}
	want := map[bpfLpmKey]bool{}
	for _, p := range allow {
		if !p.IsValid() {
			return fmt.Errorf("isolate: invalid allowed prefix %v", p)
		}
		k := keyOf(p)
		want[k] = true
		one := uint32(1)
		if err := g.objs.VgAllow.Put(&k, &one); err != nil {
			return fmt.Errorf("isolate: allow %v: %w", p, err)
		}
	}
	for _, k := range old {
		if !want[k] {
			g.objs.VgAllow.Delete(&k)
		}
	}
	return nil
}

func (g *Guard) config() (bpfGuardConfig, error) {
	var c bpfGuardConfig
	if err := g.objs.VgConfig.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("netguard config: %w", err)
	}
	return c, nil
}

func (g *Guard) setConfig(f func(*bpfGuardConfig)) error {
	c, err := g.config()
	if err != nil {
		return err
	}
	f(&c)
	if err := g.objs.VgConfig.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("netguard config: %w", err)
	}
	return nil
}

// SetDenies replaces the connects and binds the socket hooks refuse.
func (g *Guard) SetDenies(denies []Deny) error {
	want := map[bpfDenyKey]bool{}
	for _, d := range denies {
		k := bpfDenyKey{Op: 1, Port: d.Port}
		if d.Bind {
			k.Op = 2
		}
		if d.Addr.IsValid() {
			k.Addr = d.Addr.As16()
		}
		want[k] = true
	}
	// Stop the lookups first when the set shrinks to nothing, start them
	// last when it grows from nothing.
	if len(want) == 0 {
		if err := g.setConfig(func(c *bpfGuardConfig) { c.DenyRules = 0 }); err != nil {
			return err
		}
	}
	var old []bpfDenyKey
	var k bpfDenyKey
	var v uint32
	it := g.objs.VgDeny.Iterate()
	for it.Next(&k, &v) {
		old = append(old, k)
	}
	for _, k := range old {
		if !want[k] {
			g.objs.VgDeny.Delete(&k)
		}
	}
	for k := range want {
		one := uint32(1)
		if err := g.objs.VgDeny.Put(&k, &one); err != nil {
			return fmt.Errorf("deny: %w", err)
		}
	}
	return g.setConfig(func(c *bpfGuardConfig) { c.DenyRules = uint32(len(want)) })
}

// Stats are the kernel's counts of what it refused and dropped.
type Stats struct {
	DeniedConnects, DeniedBinds         uint64
	BlockedIn, BlockedOut               uint64
	IsolationDropsIn, IsolationDropsOut uint64
}

// Stats reads the counters.
func (g *Guard) Stats() (Stats, error) {
	var vals [6]uint64
	for i := range vals {
		var per []uint64
		if err := g.objs.VgStats.Lookup(uint32(i), &per); err != nil {
			return Stats{}, fmt.Errorf("netguard stats: %w", err)
		}
		for _, n := range per {
			vals[i] += n
		}
	}
	return Stats{vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]}, nil
}

// active reports whether anything is blocked or the host is isolated.
func (g *Guard) active() bool {
	bl, _ := g.List()
	iso, _, _ := g.Isolation()
	return len(bl) > 0 || iso
}

// Close detaches the programs, clears the rules' denies and removes the
// pinned state. With Persist, while a block is active or the host is
// isolated, the maps and attachments stay pinned instead, in force, for the
// next agent or `vigil isolate off` to take over. A Guard from OpenPinned
// only closes its maps.
func (g *Guard) Close() error {
	if g.links == nil {
		return nil
	}
	var errs []error
	if len(g.links) > 0 {
		errs = append(errs, g.SetDenies(nil))
	}
	persist := g.cfg.Persist && len(g.links) > 0 && g.active()
	if persist {
		errs = append(errs, os.MkdirAll(g.linkDir(), 0o700))
	}
	for name, l := range g.links {
		pin := filepath.Join(g.linkDir(), name)
		if persist {
			if err := l.Pin(pin); err != nil {
				errs = append(errs, fmt.Errorf("pin %s: %w", name, err))
			}
		} else {
			errs = append(errs, l.Unpin())
		}
		errs = append(errs, l.Close())
	}
	attached := len(g.links) > 0
	g.links = nil
	errs = append(errs, g.objs.Close())
	if attached && !persist {
		// Nothing in force: no state to keep.
		errs = append(errs, os.RemoveAll(g.cfg.PinDir))
	}
	return errors.Join(errs...)
}

// Remove detaches everything, pinned attachments included, and removes the
// pinned state: blocks and isolation are gone.
func (g *Guard) Remove() error {
	g.cfg.Persist = false
	errs := []error{g.Close()}
	ents, _ := os.ReadDir(g.linkDir())
	for _, e := range ents {
		if l, err := link.LoadPinnedLink(filepath.Join(g.linkDir(), e.Name()), nil); err == nil {
			errs = append(errs, l.Unpin(), l.Close())
		}
	}
	errs = append(errs, os.RemoveAll(g.cfg.PinDir))
	return errors.Join(errs...)
}
