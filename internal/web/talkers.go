package web

import (
	"net/netip"
	"sort"
	"sync"

	"github.com/vigilsec/vigil/internal/event"
)

// Talkers counts connections by remote address and by program, from net
// events. It is a sink: the daemon writes every event to it.
type Talkers struct {
	mu     sync.Mutex
	remote map[netip.Addr]*Talker
	prog   map[string]*Talker
}

// Talker is one remote address or program and its connections.
type Talker struct {
	Name     string `json:"name"`
	Out      uint64 `json:"out"` // connects
	In       uint64 `json:"in"`  // accepts
	Failures uint64 `json:"failures"`
}

// maxTalkers bounds each table; past it, the entries seen once go.
const maxTalkers = 4096

func NewTalkers() *Talkers {
	return &Talkers{remote: map[netip.Addr]*Talker{}, prog: map[string]*Talker{}}
}

func (t *Talkers) Write(e *event.Event) error {
	n := e.Net
	if e.Kind != event.KindNet || n == nil || (n.Op != event.NetConnect && n.Op != event.NetAccept) {
		return nil
	}
	addr := n.Destination.Addr()
	if !addr.IsValid() {
		return nil
	}
	prog := e.Process.Executable
	if prog == "" {
		prog = e.Process.Name
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.remote[addr]
	if r == nil {
		if len(t.remote) >= maxTalkers {
			evictOnce(t.remote)
		}
		r = &Talker{Name: addr.String()}
		t.remote[addr] = r
	}
	p := t.prog[prog]
	if p == nil {
		if len(t.prog) >= maxTalkers {
			evictOnce(t.prog)
		}
		p = &Talker{Name: prog}
		t.prog[prog] = p
	}
	for _, x := range []*Talker{r, p} {
		if n.Op == event.NetConnect {
			x.Out++
		} else {
			x.In++
		}
		if e.Return < 0 {
			x.Failures++
		}
	}
	return nil
}

func evictOnce[K comparable](m map[K]*Talker) {
	for k, v := range m {
		if v.Out+v.In <= 1 {
			delete(m, k)
		}
	}
	if len(m) >= maxTalkers { // everything repeats: drop arbitrary ones
		for k := range m {
			delete(m, k)
			if len(m) < maxTalkers*3/4 {
				break
			}
		}
	}
}

func (t *Talkers) Flush() error { return nil }
func (t *Talkers) Close() error { return nil }

// Top returns the n busiest remote addresses and programs.
func (t *Talkers) Top(n int) (remote, programs []Talker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return top(t.remote, n), top(t.prog, n)
}

func top[K comparable](m map[K]*Talker, n int) []Talker {
	out := make([]Talker, 0, len(m))
	for _, v := range m {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Out+out[i].In, out[j].Out+out[j].In
		if a != b {
			return a > b
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
