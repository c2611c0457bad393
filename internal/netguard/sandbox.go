package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// SandboxNet enforces sandbox profiles' network allowlists
// (sandbox.bpf.c): connect and sendmsg hooks attached to the cgroup of each
// sandboxed container refuse, with EPERM, every destination the container's
// profile does not list. Unlike the Guard's deny hooks, which are attached
// once for the whole host, these run only for the cgroups they are attached
// to (and those below): a deny scoped to a cgroup. Nothing is pinned: the
// hooks are gone when the agent is.
type SandboxNet struct {
	mu     sync.Mutex
	spec   *ebpf.CollectionSpec
	allow  *ebpf.Map
	denied *ebpf.Map
	progs  map[uint32]*sbxPrograms
	links  map[string][]link.Link // by cgroup directory
}

// NetAllow is a destination a profile allows: an address prefix (invalid:
// any address) and a port range.
type NetAllow struct {
	Prefix         netip.Prefix
	PortLo, PortHi uint16
}

// MaxSandboxProfiles bounds profile numbers (1 to MaxSandboxProfiles-1).
const MaxSandboxProfiles = 1024

// OpenSandboxNet loads the shared maps. Programs are loaded per profile by
// SetProfile.
func OpenSandboxNet() (*SandboxNet, error) {
	spec, err := loadSbx()
	if err != nil {
		return nil, fmt.Errorf("sandbox net: %w", err)
	}
	s := &SandboxNet{spec: spec, progs: map[uint32]*sbxPrograms{}, links: map[string][]link.Link{}}
	if s.allow, err = ebpf.NewMap(spec.Maps[sbxMapVgSbxAllow]); err != nil {
		return nil, fmt.Errorf("sandbox net: %w", err)
	}
	if s.denied, err = ebpf.NewMap(spec.Maps[sbxMapVgSbxDenied]); err != nil {
		s.allow.Close()
		return nil, fmt.Errorf("sandbox net: %w", err)
	}
	return s, nil
}

// v6 is p in the IPv6 space the kernel keys by (IPv4 mapped).
func v6(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96).Masked()
	}
	return p.Masked()
}

func covers(a, b netip.Prefix) bool { return a.Bits() <= b.Bits() && a.Contains(b.Addr()) }

// sandboxEntries turns a profile's allowlist into trie entries: for each
// prefix, the ports of every entry whose prefix holds it, since the
// kernel's longest-prefix match finds one entry only.
func sandboxEntries(id uint32, allow []NetAllow) map[sbxSbxKey]*sbxSbxPorts {
	out := map[sbxSbxKey]*sbxSbxPorts{}
	for _, a := range allow {
		p := v6(a.Prefix)
		k := sbxSbxKey{Prefixlen: uint32(32 + p.Bits()), Profile: id, Addr: p.Addr().As16()}
		if out[k] == nil {
			out[k] = &sbxSbxPorts{}
		}
	}
	for k, bits := range out {
		kp := netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)-32)
		for _, a := range allow {
			if !covers(v6(a.Prefix), kp) {
				continue
			}
			for port := int(a.PortLo); port <= int(a.PortHi); port++ {
				bits.Bits[port>>3] |= 1 << (port & 7)
			}
		}
	}
	return out
}

// SetProfile replaces what profile id (1 to MaxSandboxProfiles-1) allows,
// loading its programs the first time. An empty list allows nothing.
func (s *SandboxNet) SetProfile(id uint32, allow []NetAllow) error {
	if id == 0 || id >= MaxSandboxProfiles {
		return fmt.Errorf("sandbox net: profile %d out of range", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allow == nil {
		return errors.New("sandbox net: closed")
	}
	if s.progs[id] == nil {
		spec := s.spec.Copy()
		if err := spec.Variables["sbx_profile"].Set(id); err != nil {
			return fmt.Errorf("sandbox net: %w", err)
		}
		var progs sbxPrograms
		opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{sbxMapVgSbxAllow: s.allow, sbxMapVgSbxDenied: s.denied}}
		if err := spec.LoadAndAssign(&progs, opts); err != nil {
			return fmt.Errorf("sandbox net: load: %w", err)
		}
		s.progs[id] = &progs
	}
	want := sandboxEntries(id, allow)
	var old []sbxSbxKey
	var k sbxSbxKey
	var v sbxSbxPorts
	it := s.allow.Iterate()
	for it.Next(&k, &v) {
		if k.Profile == id {
			old = append(old, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("sandbox net: %w", err)
	}
	var errs []error
	for k, v := range want {
		if err := s.allow.Put(&k, v); err != nil {
			errs = append(errs, fmt.Errorf("allow %v/%d: %w", netip.AddrFrom16(k.Addr), k.Prefixlen-32, err))
		}
	}
	for _, k := range old {
		if _, ok := want[k]; !ok {
			if err := s.allow.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sandbox net: %w", err)
	}
	return nil
}

// Attach puts profile id's hooks on the cgroup v2 directory dir: from now
// on, connects and sends of its processes (and of cgroups below it) go only
// where the profile allows. Attaching a directory again replaces its hooks.
func (s *SandboxNet) Attach(id uint32, dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.progs[id]
	if p == nil {
		return fmt.Errorf("sandbox net: profile %d not set", id)
	}
	var ls []link.Link
	for _, h := range []struct {
		name string
		at   ebpf.AttachType
		prog *ebpf.Program
	}{
		{"connect4", ebpf.AttachCGroupInet4Connect, p.VgSbxConn4},
		{"connect6", ebpf.AttachCGroupInet6Connect, p.VgSbxConn6},
		{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, p.VgSbxSend4},
		{"sendmsg6", ebpf.AttachCGroupUDP6Sendmsg, p.VgSbxSend6},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: h.at, Program: h.prog})
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("sandbox net: attach cgroup/%s to %s: %w", h.name, dir, err)
		}
		ls = append(ls, l)
	}
	s.detachLocked(dir)
	s.links[dir] = ls
	return nil
}

// Detach removes the hooks from dir (a container that is gone).
func (s *SandboxNet) Detach(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detachLocked(dir)
}

func (s *SandboxNet) detachLocked(dir string) error {
	var errs []error
	for _, l := range s.links[dir] {
		errs = append(errs, l.Close())
	}
	delete(s.links, dir)
	return errors.Join(errs...)
}

// Attached lists the cgroup directories with hooks.
func (s *SandboxNet) Attached() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.links))
	for d := range s.links {
		out = append(out, d)
	}
	return out
}

// Denied is how many connects and sends profile id refused.
func (s *SandboxNet) Denied(id uint32) (uint64, error) {
	var per []uint64
	if err := s.denied.Lookup(id, &per); err != nil {
		return 0, fmt.Errorf("sandbox net: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close detaches every hook and unloads the programs. It is safe to call
// more than once.
func (s *SandboxNet) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for dir := range s.links {
		errs = append(errs, s.detachLocked(dir))
	}
	for _, p := range s.progs {
		errs = append(errs, p.Close())
	}
	s.progs = map[uint32]*sbxPrograms{}
	if s.allow != nil {
		errs = append(errs, s.allow.Close(), s.denied.Close())
		s.allow, s.denied = nil, nil
	}
	return errors.Join(errs...)
}
