// Package syslog sends events as RFC 5424 messages over a unix datagram
// socket (like /dev/log), UDP, or TCP with octet-counting framing (RFC 6587),
// through a spool.Queue.
//
// Delivery: a unix socket or TCP connection that fails is redialled and the
// batch retried. TCP syslog has no acknowledgements, so a server that stops
// can take unread records with it; the sink checks before each batch that
// the server has not closed the connection, and when it finds the
// connection broken it sends again the records it wrote on it that had not
// yet been seen alive for ConfirmAfter. That makes TCP at least once
// across server restarts, with possible duplicates that the "id" structured
// data parameter identifies. UDP is fire and forget.
package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// Options configure a syslog sink.
type Options struct {
	// Network is "unix" (datagram), "udp" or "tcp".
	Network string
	// Address is a socket path for unix, host:port otherwise.
	Address string
	// Facility is a name from Facilities (default "local0").
	Facility string
	// Format of MSG: "json" (the ECS document, the default) or "text".
	Format string
	// MaxMessageBytes cuts longer messages (default 65507, UDP's limit;
	// rsyslog reads 8 KiB unless its maxMessageSize says more).
	MaxMessageBytes int
	// Timeout bounds a dial and the writes of one batch (default 5s).
	Timeout time.Duration
	// ConfirmAfter: a TCP record counts as received once the connection is
	// still open this long after it was written (default 1s).
	ConfirmAfter time.Duration
	Kinds        []event.Kind
	Host         *event.Host
	Queue        spool.Options
}

// New starts a syslog sink.
func New(o Options) (*spool.Sink, error) {
	switch o.Network {
	case "unix", "udp", "tcp":
	default:
		return nil, fmt.Errorf("syslog: network %q is not one of unix, udp, tcp", o.Network)
	}
	if o.Address == "" {
		return nil, errors.New("syslog: address is empty")
	}
	if o.Facility == "" {
		o.Facility = "local0"
	}
	fac, ok := Facilities[o.Facility]
	if !ok {
		return nil, fmt.Errorf("syslog: unknown facility %q", o.Facility)
	}
	switch o.Format {
	case "":
		o.Format = "json"
	case "json", "text":
	default:
		return nil, fmt.Errorf("syslog: format %q is not json or text", o.Format)
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 65507
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ConfirmAfter <= 0 {
		o.ConfirmAfter = time.Second
	}
	if o.Queue.Type == "" {
		o.Queue.Type = "syslog"
	}
	hostname := "-"
	if o.Host != nil {
		hostname = printASCII(o.Host.Name, 255)
	}
	f := &formatter{facility: fac, hostname: hostname, procid: fmt.Sprint(os.Getpid()),
		json: o.Format == "json", host: o.Host, maxBytes: o.MaxMessageBytes}
	seq := sink.NewSequencer()
	enc := func(e *event.Event) ([]byte, error) {
		n, id := seq.Next()
		msg, err := f.format(e, n, id)
		if err != nil {
			return nil, err
		}
		return frame(o.Network, msg), nil
	}
	s := &sender{opts: o}
	q, err := spool.NewSink(o.Queue, o.Kinds, enc, s)
	if err != nil {
		return nil, err
	}
	return q, nil
}

type written struct {
	at  time.Time
	rec []byte
}

type sender struct {
	opts Options
	conn net.Conn
	// TCP only: records written on conn not yet confirmed, and records to
	// send again on the next connection.
	unconfirmed []written
	resend      [][]byte
}

const maxUnconfirmed = 100000

func (s *sender) Send(ctx context.Context, batch [][]byte) error {
	if s.conn != nil && s.opts.Network == "tcp" && !s.alive() {
		s.broken()
	}
	if s.conn == nil {
		d := net.Dialer{Timeout: s.opts.Timeout}
		network := s.opts.Network
		if network == "unix" {
			network = "unixgram"
		}
		c, err := d.DialContext(ctx, network, s.opts.Address)
		if err != nil {
			return fmt.Errorf("syslog: %w", err)
		}
		s.conn = c
	}
	deadline := time.Now().Add(s.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s.conn.SetWriteDeadline(deadline)
	if s.opts.Network != "tcp" {
		for i, rec := range batch {
			if _, err := s.conn.Write(rec); err != nil {
				s.conn.Close()
				s.conn = nil
				return partial(i, len(batch), err)
			}
		}
		return nil
	}
	// TCP: first what the last connection may have lost, then the batch,
	// in one write each.
	if len(s.resend) > 0 {
		if _, err := s.conn.Write(joined(s.resend)); err != nil {
			s.broken()
			return fmt.Errorf("syslog: %w", err)
		}
		now := time.Now()
		for _, r := range s.resend {
			s.unconfirmed = append(s.unconfirmed, written{now, r})
		}
		s.resend = nil
	}
	if _, err := s.conn.Write(joined(batch)); err != nil {
		// Part of it may be in the server; all of it is retried (the
		// spool keeps the batch), the unconfirmed records too.
		s.broken()
		return fmt.Errorf("syslog: %w", err)
	}
	now := time.Now()
	for _, r := range batch {
		s.unconfirmed = append(s.unconfirmed, written{now, r})
	}
	if n := len(s.unconfirmed) - maxUnconfirmed; n > 0 {
		s.unconfirmed = s.unconfirmed[n:]
	}
	return nil
}

// alive tells whether the server kept the TCP connection open; records
// written long enough ago on a live connection are confirmed.
func (s *sender) alive() bool {
	s.conn.SetReadDeadline(time.Now())
	var b [1]byte
	_, err := s.conn.Read(b[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false // EOF, reset, or the server talked: not a syslog server
	}
	cutoff := time.Now().Add(-s.opts.ConfirmAfter)
	i := 0
	for i < len(s.unconfirmed) && s.unconfirmed[i].at.Before(cutoff) {
		i++
	}
	s.unconfirmed = s.unconfirmed[i:]
	return true
}

// broken drops the connection and keeps its unconfirmed records to resend.
func (s *sender) broken() {
	s.conn.Close()
	s.conn = nil
	for _, w := range s.unconfirmed {
		s.resend = append(s.resend, w.rec)
	}
	s.unconfirmed = nil
}

func joined(recs [][]byte) []byte {
	n := 0
	for _, r := range recs {
		n += len(r)
	}
	out := make([]byte, 0, n)
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

// partial reports that the first sent records of a batch of n went out.
func partial(sent, n int, err error) error {
	be := &spool.BatchError{Outcomes: make([]spool.Outcome, n), Err: fmt.Errorf("syslog: %w", err)}
	for i := sent; i < n; i++ {
		be.Outcomes[i] = spool.Retry
	}
	return be
}

func (s *sender) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
