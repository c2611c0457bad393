package sensor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// HeaderSize is the size of struct event_header, which starts every record.
const HeaderSize = 16

// Header is the decoded struct event_header.
type Header struct {
	KtimeNs uint64 // CLOCK_BOOTTIME
	Size    uint32
	Type    uint16
	CPU     uint16
}

// ParseHeader reads the header at the start of a record.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("record of %d bytes is shorter than its header", len(b))
	}
	return Header{
		KtimeNs: binary.LittleEndian.Uint64(b[0:]),
		Size:    binary.LittleEndian.Uint32(b[8:]),
		Type:    binary.LittleEndian.Uint16(b[12:]),
		CPU:     binary.LittleEndian.Uint16(b[14:]),
	}, nil
}

// Reader drains the ring buffer. Records arrive without a wakeup per record
// (bpf/lib/output.h), so the reader polls: it wakes at least every Poll
// interval and reads whatever is waiting.
type Reader struct {
	rd   *ringbuf.Reader
	poll time.Duration

	mu     sync.Mutex // guards closed: the ring is unmapped on Close
	closed bool
}

// NewReader opens a reader on the shared ring buffer.
func NewReader(s *Shared, poll time.Duration) (*Reader, error) {
	rd, err := ringbuf.NewReader(s.Events)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	return &Reader{rd: rd, poll: poll}, nil
}

// Run calls handle for every record until ctx is done, then returns after one
// last pass that drains what the ring still holds, so records written before
// the stop are not lost. The slice passed to handle is reused: handle must copy
// what it keeps. handle runs on the reader's goroutine and must not block.
func (r *Reader) Run(ctx context.Context, handle func(rec []byte)) error {
	var rec ringbuf.Record
	r.rd.SetDeadline(time.Now().Add(r.poll))
	for {
		err := r.rd.ReadInto(&rec)
		switch {
		case err == nil:
			handle(rec.RawSample)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// ReadInto returns this only once the ring is empty.
			if ctx.Err() != nil {
				return nil
			}
			r.rd.SetDeadline(time.Now().Add(r.poll))
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// Drain hands every record still in the ring to handle, without waiting for
// more: after the programs are detached, it empties the ring for good.
func (r *Reader) Drain(handle func(rec []byte)) error {
	var rec ringbuf.Record
	r.rd.SetDeadline(time.Now())
	for {
		err := r.rd.ReadInto(&rec)
		switch {
		case err == nil:
			handle(rec.RawSample)
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("drain ring buffer: %w", err)
		}
	}
}

// Pending is the number of bytes waiting in the ring buffer, 0 once closed.
func (r *Reader) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0
	}
	return r.rd.AvailableBytes()
}

// Close stops the reader. It is safe to call more than once.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.rd.Close()
}
