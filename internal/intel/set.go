package intel

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// Kinds of list.
const (
	KindIP     = "ip"
	KindDomain = "domain"
)

// List is one list file and what to do with what it holds.
type List struct {
	Name  string // as alerts name it; the file's base name when empty
	Path  string
	Kind  string // KindIP or KindDomain
	Block bool   // block, not only alert
}

// Hit says which list holds an address or a name.
type Hit struct {
	List  int // index in the lists given to Load
	Name  string
	Block bool
	// Match is the listed prefix or domain that matched.
	Match string
}

// Set is the loaded lists. It is immutable: a reload makes a new one.
type Set struct {
	lists    []List
	prefixes map[netip.Prefix]int // to the list index; the first list holding a prefix wins, a blocking one over others
	bits     []int                // prefix lengths present, longest first, IPv4 and IPv6 apart
	bits6    []int
	domains  map[string]int
	stamps   []stamp
}

type stamp struct {
	mod  time.Time
	size int64
	err  bool
}

// Load reads every list. A file that cannot be opened is an error in the
// returned slice and holds nothing; lines that cannot be read are reported
// in the slice too (at most 100 per file, and a count of the rest).
func Load(lists []List) (*Set, []error) {
	s := &Set{lists: slices.Clone(lists), prefixes: map[netip.Prefix]int{}, domains: map[string]int{}}
	var errs []error
	b4, b6 := map[int]bool{}, map[int]bool{}
	for i, l := range s.lists {
		if s.lists[i].Name == "" {
			base := l.Path[strings.LastIndexByte(l.Path, '/')+1:]
			s.lists[i].Name = base
		}
		s.stamps = append(s.stamps, statOf(l.Path))
		f, err := os.Open(l.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("intel list %s: %w", l.Path, err))
			continue
		}
		var r *Result
		if l.Kind == KindDomain {
			r, err = ParseDomains(f, l.Path)
		} else {
			r, err = ParseAddrs(f, l.Path)
		}
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("intel list %s: %w", l.Path, err))
		}
		for _, e := range r.Errors {
			errs = append(errs, e)
		}
		if r.Bad > len(r.Errors) {
			errs = append(errs, fmt.Errorf("%s: %d more lines could not be read", l.Path, r.Bad-len(r.Errors)))
		}
		for _, p := range r.Prefixes {
			if j, ok := s.prefixes[p]; !ok || l.Block && !s.lists[j].Block {
				s.prefixes[p] = i
			}
			if p.Addr().Is4() {
				b4[p.Bits()] = true
			} else {
				b6[p.Bits()] = true
			}
		}
		for _, d := range r.Domains {
			if j, ok := s.domains[d]; !ok || l.Block && !s.lists[j].Block {
				s.domains[d] = i
			}
		}
	}
	for b := range b4 {
		s.bits = append(s.bits, b)
	}
	for b := range b6 {
		s.bits6 = append(s.bits6, b)
	}
	slices.SortFunc(s.bits, func(a, b int) int { return b - a })
	slices.SortFunc(s.bits6, func(a, b int) int { return b - a })
	return s, errs
}

func statOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{err: true}
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}
}

// Changed reports whether a list file changed (time, size, appeared or
// disappeared) since the set was loaded.
func (s *Set) Changed() bool {
	for i, l := range s.lists {
		if statOf(l.Path) != s.stamps[i] {
			return true
		}
	}
	return false
}

// Lists are the lists, names filled in.
func (s *Set) Lists() []List { return s.lists }

// Prefixes returns every listed prefix with its list index.
func (s *Set) Prefixes() map[netip.Prefix]int { return s.prefixes }

// Domains counts the listed domains.
func (s *Set) Domains() int { return len(s.domains) }

// Addr looks an address up: the longest listed prefix holding it.
func (s *Set) Addr(a netip.Addr) (Hit, bool) {
	if s == nil || !a.IsValid() {
		return Hit{}, false
	}
	a = a.Unmap()
	bits := s.bits6
	if a.Is4() {
		bits = s.bits
	}
	for _, b := range bits {
		p, _ := a.Prefix(b)
		if i, ok := s.prefixes[p]; ok {
			return s.hit(i, p.String()), true
		}
	}
	return Hit{}, false
}

// Domain looks a DNS name up: the name itself or a domain it is under
// ("a.b.evil.example" is under "evil.example").
func (s *Set) Domain(name string) (Hit, bool) {
	if s == nil || len(s.domains) == 0 {
		return Hit{}, false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for {
		if i, ok := s.domains[name]; ok {
			return s.hit(i, name), true
		}
		dot := strings.IndexByte(name, '.')
		if dot < 0 {
			return Hit{}, false
		}
		name = name[dot+1:]
	}
}

func (s *Set) hit(i int, match string) Hit {
	return Hit{List: i, Name: s.lists[i].Name, Block: s.lists[i].Block, Match: match}
}
