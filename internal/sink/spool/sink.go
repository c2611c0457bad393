package spool

import (
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
)

// Encoder renders an event as the record a Sender delivers: everything the
// sender needs, fixed at the time of the event (its id above all), so a
// record replayed from the spool after a restart is sent exactly as it
// would have been.
type Encoder func(e *event.Event) ([]byte, error)

// Sink is a sink.Sink on a Queue: Write encodes and queues, nothing more.
type Sink struct {
	q     *Queue
	enc   Encoder
	kinds []bool // nil: every kind
}

// NewSink starts a queue that delivers through s what enc renders. When
// kinds is not empty, only events of those kinds are written.
func NewSink(opts Options, kinds []event.Kind, enc Encoder, s Sender) (*Sink, error) {
	q, err := New(opts, s)
	if err != nil {
		return nil, err
	}
	out := &Sink{q: q, enc: enc}
	if len(kinds) > 0 {
		out.kinds = make([]bool, event.KindAlert+1)
		for _, k := range kinds {
			if int(k) < len(out.kinds) {
				out.kinds[k] = true
			}
		}
	}
	return out, nil
}

// Write encodes e and queues it; it never waits on the network.
func (s *Sink) Write(e *event.Event) error {
	if s.kinds != nil && (int(e.Kind) >= len(s.kinds) || !s.kinds[e.Kind]) {
		return nil
	}
	rec, err := s.enc(e)
	if err != nil {
		s.q.dropped.Add(1)
		return err
	}
	s.q.Put(rec)
	return nil
}

func (s *Sink) Flush() error      { return s.q.Flush() }
func (s *Sink) Close() error      { return s.q.Close() }
func (s *Sink) Stats() sink.Stats { return s.q.Stats() }
func (s *Sink) Queue() *Queue     { return s.q }

var _ interface {
	sink.Sink
	sink.Reporter
} = (*Sink)(nil)
