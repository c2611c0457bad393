package sink

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync/atomic"

	"github.com/vigilsec/vigil/internal/event"
)

// Sequencer numbers the documents a sink renders and names each with an id
// that is unique across hosts and agent restarts: a random prefix drawn when
// the sink starts, and the sequence number. Receivers deduplicate on it
// (NATS Nats-Msg-Id, the Elasticsearch _id, the webhook delivery header).
type Sequencer struct {
	prefix string
	n      atomic.Uint64
}

// NewSequencer draws a fresh prefix.
func NewSequencer() *Sequencer {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return &Sequencer{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Next returns the next sequence number and its id.
func (s *Sequencer) Next() (uint64, string) {
	n := s.n.Add(1)
	return n, s.prefix + strconv.FormatUint(n, 10)
}

// MarshalDoc renders e as its ECS document (docs/events.md), as compact
// JSON without a trailing newline. Strings from the monitored host are
// attacker-controlled: encoding/json escapes quotes, backslashes and control
// characters, and replaces invalid UTF-8, so no string can break out of its
// value or its line.
func MarshalDoc(e *event.Event, host *event.Host, seq uint64) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e.Doc(host, seq)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
