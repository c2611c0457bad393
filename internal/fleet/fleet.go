// Package fleet is the consumer side of a fleet: agents publish to one NATS
// JetStream stream (internal/sink/nats, subjects <prefix>.<host>.alerts and
// .events), and Index reads the stream with a durable consumer and indexes
// the documents into Elasticsearch with the Elasticsearch sink's bulk client.
//
// Delivery is at least once from the stream, exactly once into the index: a
// message is acknowledged only after Elasticsearch took its document, and
// the document's _id is the message's Nats-Msg-Id (fixed by the agent when
// it queued the event), so a message delivered again (a lost ack, a node
// that died, a restart of the consumer) meets 409 and is not indexed twice.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilsec/vigil/internal/sink/elasticsearch"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// Options configure Index.
type Options struct {
	// NATSURL is one or more servers of the cluster, comma-separated.
	NATSURL string
	// Credentials for NATS: a .creds file, a token, or a user and password.
	CredsFile, Token, User, Password string
	// Stream is the stream the agents publish to (default VIGIL).
	Stream string
	// SubjectPrefix is the agents' subject_prefix (default vigil).
	SubjectPrefix string
	// Durable names the consumer, which the stream keeps (and replicates
	// like itself): a restarted Index resumes where it stopped (default
	// vigil-index).
	Durable string
	// Events: index the events too, not only the alerts.
	Events bool
	// CreateStream makes the stream when it is missing: subjects
	// <prefix>.>, file storage, Replicas copies (default 3), and
	// DuplicateWindow (default 2m) for the agents' Nats-Msg-Id.
	CreateStream    bool
	Replicas        int
	DuplicateWindow time.Duration
	// Batch is the most messages per bulk request (default 500).
	Batch int
	// AckWait: a message not acknowledged this long after delivery is
	// delivered again (default 30s).
	AckWait time.Duration
	// ES is where the documents go (Kinds, Host and Queue are not used).
	ES  elasticsearch.Options
	Log *slog.Logger
}

// Stats count what Index did.
type Stats struct {
	Indexed  atomic.Uint64 // acknowledged: indexed now, or before (409)
	Rejected atomic.Uint64 // refused by Elasticsearch for good: terminated
	Retried  atomic.Uint64 // handed back to the stream to deliver again
}

// Index consumes until ctx is done. It returns an error only for options
// it cannot work with; NATS or Elasticsearch being away is waited out.
func Index(ctx context.Context, o Options, st *Stats) error {
	if o.NATSURL == "" {
		return errors.New("fleet: no NATS url")
	}
	if o.Stream == "" {
		o.Stream = "VIGIL"
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "vigil"
	}
	if o.Durable == "" {
		o.Durable = "vigil-index"
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if st == nil {
		st = &Stats{}
	}
	ix, err := elasticsearch.NewIndexer(o.ES)
	if err != nil {
		return err
	}
	opts := []natsgo.Option{
		natsgo.Name("vigil fleet index"),
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250 * time.Millisecond),
	}
	switch {
	case o.CredsFile != "":
		opts = append(opts, natsgo.UserCredentials(o.CredsFile))
	case o.Token != "":
		opts = append(opts, natsgo.Token(o.Token))
	case o.User != "":
		opts = append(opts, natsgo.UserInfo(o.User, o.Password))
	}
	nc, err := natsgo.Connect(o.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("fleet: nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("fleet: nats: %w", err)
	}
	// One filter subject: servers before 2.10 (Debian's) take no more.
	subject := o.SubjectPrefix + ".*.alerts"
	if o.Events {
		subject = o.SubjectPrefix + ".>"
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: subject,
		MaxAckPending: 4 * o.Batch,
	}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := ensureStream(cctx, js, o)
		var cons jetstream.Consumer
		if err == nil {
			cons, err = js.CreateOrUpdateConsumer(cctx, o.Stream, cfg)
		}
		cancel()
		if err != nil {
			o.Log.Warn("fleet: consumer not ready, retrying", "stream", o.Stream, "durable", o.Durable, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		o.Log.Info("fleet: consuming", "stream", o.Stream, "durable", o.Durable, "subject", subject)
		consume(ctx, o, cons, ix, st)
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, o Options) error {
	if !o.CreateStream {
		return nil
	}
	_, err := js.Stream(ctx, o.Stream)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       o.Stream,
		Subjects:   []string{o.SubjectPrefix + ".>"},
		Storage:    jetstream.FileStorage,
		Replicas:   o.Replicas,
		Duplicates: o.DuplicateWindow,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil
	}
	if err == nil {
		o.Log.Info("fleet: stream created", "stream", o.Stream, "replicas", o.Replicas)
	}
	return err
}

// consume fetches and indexes batches until ctx is done or the consumer
// fails too often in a row (then Index looks it up again).
func consume(ctx context.Context, o Options, cons jetstream.Consumer, ix *elasticsearch.Indexer, st *Stats) {
	failures := 0
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil && failures < 10 {
		batch, err := cons.Fetch(o.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			failures++
			o.Log.Debug("fleet: fetch", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) && len(msgs) == 0 {
			failures++
			o.Log.Debug("fleet: fetch", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		failures = 0
		if len(msgs) == 0 {
			continue
		}
		docs := make([]elasticsearch.Doc, len(msgs))
		for i, m := range msgs {
			docs[i] = elasticsearch.Doc{ID: docID(o.Stream, m), Alert: strings.HasSuffix(m.Subject(), ".alerts"), Body: m.Data()}
		}
		outcomes, err := ix.Index(ctx, docs)
		if err != nil {
			o.Log.Warn("fleet: elasticsearch", "err", err)
		}
		retried := false
		for i, m := range msgs {
			switch outcomes[i] {
			case spool.Delivered:
				m.Ack()
				st.Indexed.Add(1)
			case spool.Rejected:
				m.Term()
				st.Rejected.Add(1)
			default:
				m.NakWithDelay(backoff)
				st.Retried.Add(1)
				retried = true
			}
		}
		if retried {
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
	}
}

// docID is the message's Nats-Msg-Id, unique per document across the
// fleet; a message published without one is named by its stream sequence.
func docID(stream string, m jetstream.Msg) string {
	if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	if md, err := m.Metadata(); err == nil {
		return stream + "-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
