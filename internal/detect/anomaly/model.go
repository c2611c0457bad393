// Package anomaly learns what each program's syscall behaviour looks like
// and scores how far new behaviour departs from it.
//
// The model is the stide family of "A Sense of Self for Unix Processes"
// (Forrest, Hofmeyr, Somayaji and Longstaff, 1996) and its successors: a
// program's normal behaviour is the set of the n-grams (short runs of n
// consecutive syscall numbers) its threads make while it is learned. New
// behaviour is scored over a locality frame, the last Frame n-grams of a
// thread: each n-gram weighs 1 if it was never seen, and less the more often
// it was (1/(1+count), so an n-gram seen once weighs 1/2), and the frame's
// score is the mean weight. A run of unseen or rare n-grams, such as a server
// thread that forks and execs a shell, makes a high score; a single new
// n-gram in a long run of known ones does not.
//
// A trace's score is the highest score of any of its frames. The threshold is
// calibrated on normal data the model was not trained on, to a target rate of
// false alarms: see Calibrate.
//
// The package is pure Go: no kernel, no clock of its own.
package anomaly

import (
	"fmt"
	"slices"
)

// Params shape a model.
type Params struct {
	N     int // n-gram length, 2..MaxN
	Frame int // n-grams per locality frame
}

// MaxN is the longest n-gram: n numbers of 10 bits fit in 64 bits.
const MaxN = 6

// MaxSyscall bounds syscall numbers: they are packed in 10 bits.
const MaxSyscall = 1 << 10

// DefaultParams are those of the literature (n = 6, a frame of 20).
var DefaultParams = Params{N: 6, Frame: 20}

func (p Params) check() error {
	if p.N < 2 || p.N > MaxN {
		return fmt.Errorf("n-gram length %d is not in 2..%d", p.N, MaxN)
	}
	if p.Frame < 1 || p.Frame > 4096 {
		return fmt.Errorf("frame %d is not in 1..4096", p.Frame)
	}
	return nil
}

// Model is the learned behaviour of one program.
type Model struct {
	Params
	// Grams counts each n-gram seen in training, packed by pack.
	Grams map[uint64]uint32
	// Total is the number of n-grams seen in training.
	Total uint64
	// Threshold: a frame scoring above it is an anomaly.
	Threshold float64
}

// NewModel makes an empty model.
func NewModel(p Params) (*Model, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return &Model{Params: p, Grams: map[uint64]uint32{}}, nil
}

// pack makes the key of the n-gram that ends a window of n numbers.
func pack(w []uint16) uint64 {
	var k uint64
	for _, x := range w {
		k = k<<10 | uint64(x&(MaxSyscall-1))
	}
	return k
}

// unpack is the inverse of pack for an n-gram of n numbers.
func unpack(k uint64, n int) []uint16 {
	out := make([]uint16, n)
	for i := n - 1; i >= 0; i-- {
		out[i] = uint16(k & (MaxSyscall - 1))
		k >>= 10
	}
	return out
}

// Learn adds the n-grams of a trace.
func (m *Model) Learn(trace []uint16) {
	for i := m.N; i <= len(trace); i++ {
		m.add(pack(trace[i-m.N : i]))
	}
}

func (m *Model) add(k uint64) {
	if c := m.Grams[k]; c < ^uint32(0) {
		m.Grams[k] = c + 1
	}
	m.Total++
}

// weight is how unusual an n-gram is: 1 if never seen, 1/(1+count) else.
func (m *Model) weight(k uint64) float64 {
	c := m.Grams[k]
	if c == 0 {
		return 1
	}
	return 1 / float64(1+c)
}

// Score is the highest frame score of a trace, in [0, 1]. A trace shorter
// than a frame is scored as one frame over the n-grams it has.
func (m *Model) Score(trace []uint16) float64 {
	s := m.NewStream()
	best := 0.0
	for _, x := range trace {
		if v, ok := s.Add(x); ok && v > best {
			best = v
		}
	}
	if s.grams > 0 && s.grams < m.Frame {
		best = s.sum / float64(s.grams)
	}
	return best
}

// Stream scores the syscalls of one thread as they come.
type Stream struct {
	m      *Model
	window []uint16  // the last n numbers
	frame  []float64 // weights of the last Frame n-grams, a ring
	keys   []uint64  // their n-grams
	next   int
	grams  int // n-grams seen, up to Frame
	sum    float64
}

// NewStream starts scoring a thread.
func (m *Model) NewStream() *Stream {
	return &Stream{m: m, window: make([]uint16, 0, m.N), frame: make([]float64, m.Frame), keys: make([]uint64, m.Frame)}
}

// Add scores one more syscall: the frame's score, once the stream has made
// its first n-gram (ok).
func (s *Stream) Add(x uint16) (score float64, ok bool) {
	if len(s.window) == s.m.N {
		copy(s.window, s.window[1:])
		s.window = s.window[:s.m.N-1]
	}
	s.window = append(s.window, x)
	if len(s.window) < s.m.N {
		return 0, false
	}
	k := pack(s.window)
	w := s.m.weight(k)
	s.sum += w - s.frame[s.next]
	s.frame[s.next], s.keys[s.next] = w, k
	s.next = (s.next + 1) % len(s.frame)
	if s.grams < len(s.frame) {
		s.grams++
		if s.grams < len(s.frame) {
			return 0, false
		}
	}
	// The running sum drifts by rounding; a frame's score is in [0, 1].
	s.sum = max(0, min(s.sum, float64(len(s.frame))))
	return s.sum / float64(len(s.frame)), true
}

// Unusual lists the distinct n-grams of the current frame the model never
// saw, oldest first.
func (s *Stream) Unusual() [][]uint16 {
	var out [][]uint16
	var seen []uint64
	for i := range s.grams {
		j := (s.next - s.grams + i + len(s.frame)) % len(s.frame)
		if s.frame[j] == 1 && !slices.Contains(seen, s.keys[j]) {
			seen = append(seen, s.keys[j])
			out = append(out, unpack(s.keys[j], s.m.N))
		}
	}
	return out
}

// Reset forgets the stream's history, as after a gap in it.
func (s *Stream) Reset() {
	s.window = s.window[:0]
	clear(s.frame)
	s.next, s.grams, s.sum = 0, 0, 0
}
