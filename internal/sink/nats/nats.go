// Package nats publishes events to NATS JetStream, for fleets: every host
// publishes to one stream, on subjects of its own,
//
//	<prefix>.<host>.alerts   alerts
//	<prefix>.<host>.events   everything else
//
// with the event's ECS JSON document as the payload. Each message carries a
// Nats-Msg-Id fixed when the event was queued, so a message published again
// (after a lost acknowledgement, a retry, or a replay of the spool after a
// crash) is dropped by the stream: delivery is exactly once within the
// stream's duplicate window (2 minutes unless the stream says otherwise),
// and at least once beyond it. A message counts as sent when the stream
// acknowledged it.
package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// Options configure a NATS sink.
type Options struct {
	// URL is one or more server URLs, comma-separated (nats://host:4222).
	URL string
	// SubjectPrefix starts every subject (default "vigil").
	SubjectPrefix string
	// Stream, when set with CreateStream, is created if missing, with
	// subjects <prefix>.> and DuplicateWindow. Otherwise the stream is
	// the administrator's: the sink only publishes.
	Stream          string
	CreateStream    bool
	DuplicateWindow time.Duration
	// Credentials: a .creds file, a token, or a user and password.
	CredsFile, Token, User, Password string
	// Timeout bounds waiting for the stream's acknowledgements (default 5s).
	Timeout time.Duration
	Kinds   []event.Kind
	Host    *event.Host
	Queue   spool.Options
}

// New connects (in the background: a server that is down now is retried)
// and starts the sink.
func New(o Options) (*spool.Sink, error) {
	if o.URL == "" {
		return nil, errors.New("nats: url is empty")
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "vigil"
	}
	if strings.ContainsAny(o.SubjectPrefix, " \t\r\n*>") || strings.HasPrefix(o.SubjectPrefix, ".") || strings.HasSuffix(o.SubjectPrefix, ".") {
		return nil, fmt.Errorf("nats: subject_prefix %q is not a subject (no spaces, wildcards or leading/trailing dots)", o.SubjectPrefix)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Queue.Type == "" {
		o.Queue.Type = "nats"
	}
	host := "unknown"
	if o.Host != nil && o.Host.Name != "" {
		host = Token(o.Host.Name)
	}
	subjAlerts := o.SubjectPrefix + "." + host + ".alerts"
	subjEvents := o.SubjectPrefix + "." + host + ".events"

	opts := []natsgo.Option{
		natsgo.Name("vigil " + host),
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(time.Second),
		// Publishing while disconnected fails at once: the spool keeps
		// the records, not the client's buffer.
		natsgo.ReconnectBufSize(-1),
		natsgo.Timeout(o.Timeout),
	}
	switch {
	case o.CredsFile != "":
		opts = append(opts, natsgo.UserCredentials(o.CredsFile))
	case o.Token != "":
		opts = append(opts, natsgo.Token(o.Token))
	case o.User != "":
		opts = append(opts, natsgo.UserInfo(o.User, o.Password))
	}
	nc, err := natsgo.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(o.Timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s := &sender{opts: o, nc: nc, js: js}
	seq := sink.NewSequencer()
	enc := func(e *event.Event) ([]byte, error) {
		n, id := seq.Next()
		body, err := sink.MarshalDoc(e, o.Host, n)
		if err != nil {
			return nil, err
		}
		subj := subjEvents
		if e.Kind == event.KindAlert {
			subj = subjAlerts
		}
		return spool.Record([]byte(subj), []byte(id), body), nil
	}
	out, err := spool.NewSink(o.Queue, o.Kinds, enc, s)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return out, nil
}

// Token makes s a single subject token: letters, digits, '-' and '_';
// anything else (dots, wildcards, spaces) becomes '_'.
func Token(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

type sender struct {
	opts        Options
	nc          *natsgo.Conn
	js          jetstream.JetStream
	streamReady bool
}

func (s *sender) ensureStream(ctx context.Context) error {
	if s.streamReady || s.opts.Stream == "" || !s.opts.CreateStream {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	_, err := s.js.Stream(ctx, s.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       s.opts.Stream,
			Subjects:   []string{s.opts.SubjectPrefix + ".>"},
			Storage:    jetstream.FileStorage,
			Duplicates: s.opts.DuplicateWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another host made it first
		}
	}
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", s.opts.Stream, err)
	}
	s.streamReady = true
	return nil
}

// Send publishes the batch asynchronously and waits for every
// acknowledgement; records whose publish or acknowledgement failed are
// retried with their Nats-Msg-Id, so the stream drops any it already has.
func (s *sender) Send(ctx context.Context, batch [][]byte) error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("nats: not connected (%s)", s.nc.Status())
	}
	if err := s.ensureStream(ctx); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, len(batch))
	outcomes := make([]spool.Outcome, len(batch))
	var first error
	fail := func(i int, o spool.Outcome, err error) {
		outcomes[i] = o
		if first == nil {
			first = fmt.Errorf("nats: %w", err)
		}
	}
	for i, rec := range batch {
		f, err := spool.Fields(rec, 3)
		if err != nil {
			fail(i, spool.Rejected, err)
			continue
		}
		msg := &natsgo.Msg{Subject: string(f[0]), Data: f[2], Header: natsgo.Header{}}
		fut, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(string(f[1])))
		if err != nil {
			fail(i, spool.Retry, err)
			continue
		}
		futures[i] = fut
	}
	timeout := time.NewTimer(s.opts.Timeout)
	defer timeout.Stop()
	for i, fut := range futures {
		if fut == nil {
			continue
		}
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			fail(i, spool.Retry, err)
		case <-timeout.C:
			fail(i, spool.Retry, errors.New("timed out waiting for the stream's acknowledgement"))
			timeout.Reset(0)
		case <-ctx.Done():
			fail(i, spool.Retry, ctx.Err())
		}
	}
	if first == nil {
		return nil
	}
	return &spool.BatchError{Outcomes: outcomes, Err: first}
}

func (s *sender) Close() error {
	s.nc.Close()
	return nil
}
