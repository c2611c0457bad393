// Package spool is what every network sink shares: a bounded memory queue,
// a disk spool behind it, and one goroutine that delivers batches with
// retries and backoff, so that an outage of the destination loses nothing
// and never slows the agent.
//
//	Put -> memory queue (bounded) --+--> batch -> Sender.Send -> retry with backoff
//	    \-> disk spool (bounded) ---/
//
// Records are delivered oldest first. Put goes to the memory queue while it
// has room and the spool is empty; otherwise to the end of the disk spool
// (so order holds: what is in memory is always older than what is on disk).
// When the spool is full too, the new record is dropped and counted: the
// older records already spooled are kept. Close delivers what it can within
// Options.DrainTimeout and writes the rest to the spool, which the next
// start replays first.
package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/internal/sink"
)

// Options tune a queue. Zero values take the defaults noted.
type Options struct {
	// Name and Type label the counters and logs.
	Name, Type string
	// Dir is the disk spool directory, one per sink. Empty: memory only,
	// and what does not fit is dropped.
	Dir string
	// MemoryRecords bounds the memory queue (default 4096).
	MemoryRecords int
	// MaxBytes bounds the disk spool (default 256 MiB).
	MaxBytes int64
	// SegmentBytes is the size of one spool file (default MaxBytes/16,
	// between 64 KiB and 16 MiB).
	SegmentBytes int64
	// MaxBatch and MaxBatchBytes bound one Send (default 500, 1 MiB).
	MaxBatch      int
	MaxBatchBytes int
	// MinBackoff and MaxBackoff bound the wait between failed attempts,
	// which doubles from one to the other (default 100ms, 30s), with jitter.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout is how long Close keeps delivering before it spools the
	// rest (default 5s).
	DrainTimeout time.Duration
	Log          *slog.Logger
}

func (o *Options) defaults() {
	if o.MemoryRecords <= 0 {
		o.MemoryRecords = 4096
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(max(o.MaxBytes/16, 64<<10), 16<<20)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 1 << 20
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Sender delivers a batch of records, oldest first. It returns nil when the
// destination took them all; a *BatchError to say what became of each; an
// error made with Permanent when the destination refused the whole batch for
// good; any other error to retry the whole batch after a backoff. ctx is
// cancelled when Close gives up draining. Send is only ever called from one
// goroutine. A Sender that is an io.Closer is closed after the last Send.
type Sender interface {
	Send(ctx context.Context, batch [][]byte) error
}

// Outcome is what became of one record of a batch.
type Outcome uint8

const (
	Delivered Outcome = iota
	Retry             // try again later
	Rejected          // refused for good: counted as failed and dropped
)

// BatchError reports a batch that was delivered in part.
type BatchError struct {
	Outcomes []Outcome // one per record of the batch
	Err      error     // the first problem, for the log
}

func (e *BatchError) Error() string { return e.Err.Error() }
func (e *BatchError) Unwrap() error { return e.Err }

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks err as a refusal that retrying cannot fix.
func Permanent(err error) error { return permanent{err} }

// Queue is a delivery queue for one sink.
type Queue struct {
	opts Options
	send Sender
	log  *slog.Logger

	mu   sync.Mutex
	mem  ring
	disk *disk // nil without a spool directory

	// The batch being delivered; owned by the run goroutine until done.
	batch    [][]byte
	fromDisk bool
	diskEnd  int64
	diskRecs int
	inflight atomic.Int64 // len(batch) when it came from memory

	wake    chan struct{}
	closing chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	closeMu sync.Once
	closed  atomic.Bool

	queued, spooled, sent, failed, dropped, retries atomic.Uint64
	failing                                         bool // run goroutine only
}

// New opens the spool (replaying what an earlier run left) and starts
// delivering.
func New(opts Options, s Sender) (*Queue, error) {
	opts.defaults()
	q := &Queue{
		opts:    opts,
		send:    s,
		log:     opts.Log.With("sink", opts.Name),
		mem:     newRing(opts.MemoryRecords),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if opts.Dir != "" {
		d, err := openDisk(opts.Dir, opts.MaxBytes, opts.SegmentBytes)
		if err != nil {
			return nil, err
		}
		q.disk = d
		if d.records > 0 {
			q.log.Info("replaying spooled records", "records", d.records, "bytes", d.bytes)
		}
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q, nil
}

// Put queues a record. It never waits for the destination: at worst it
// appends to a local file. It does not keep rec.
func (q *Queue) Put(rec []byte) {
	q.mu.Lock()
	switch {
	case q.closed.Load():
		q.dropped.Add(1)
	case (q.disk == nil || q.disk.empty()) && q.mem.len() < q.mem.cap():
		q.mem.push(rec)
		q.queued.Add(1)
	case q.disk != nil:
		ok, err := q.disk.append(rec)
		switch {
		case err != nil:
			q.dropped.Add(1)
			if n := q.dropped.Load(); n == 1 || n%10000 == 0 {
				q.log.Error("spool write failed; record dropped", "err", err, "dropped", n)
			}
		case !ok:
			if n := q.dropped.Add(1); n == 1 || n%10000 == 0 {
				q.log.Warn("spool full; new records are dropped", "max_bytes", q.opts.MaxBytes, "dropped", n)
			}
		default:
			q.spooled.Add(1)
		}
	default:
		if n := q.dropped.Add(1); n == 1 || n%10000 == 0 {
			q.log.Warn("queue full and no spool; new records are dropped", "dropped", n)
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Flush writes what the spool buffers to its file, so a crash loses less.
func (q *Queue) Flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.disk == nil {
		return nil
	}
	return q.disk.flush()
}

// Stats returns the counters; Name and Type are the options'.
func (q *Queue) Stats() sink.Stats {
	q.mu.Lock()
	st := sink.Stats{Queued: q.mem.len() + int(q.inflight.Load()), Capacity: q.mem.cap()}
	if q.disk != nil {
		st.SpoolDepth, st.SpoolBytes, st.SpoolLimit = q.disk.records, q.disk.bytes, q.opts.MaxBytes
	}
	q.mu.Unlock()
	st.Name, st.Type = q.opts.Name, q.opts.Type
	st.Enqueued, st.Spooled = q.queued.Load(), q.spooled.Load()
	st.Written, st.Failures = q.sent.Load(), q.failed.Load()
	st.Dropped, st.Retries = q.dropped.Load(), q.retries.Load()
	return st
}

// Close stops taking records, delivers what it can within DrainTimeout, and
// spools the rest for the next start. It is idempotent.
func (q *Queue) Close() error {
	var err error
	q.closeMu.Do(func() {
		q.mu.Lock()
		q.closed.Store(true)
		q.mu.Unlock()
		close(q.closing)
		t := time.AfterFunc(q.opts.DrainTimeout, q.cancel)
		<-q.done
		t.Stop()
		q.cancel()
		err = q.persist()
		if c, ok := q.send.(io.Closer); ok {
			err = errors.Join(err, c.Close())
		}
	})
	return err
}

// persist runs after the run goroutine ended: what was not delivered goes
// to the front of the spool.
func (q *Queue) persist() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	rest := q.batch
	q.batch = nil
	q.inflight.Store(0)
	if q.disk == nil {
		n := len(rest) + q.mem.len()
		if n > 0 {
			q.dropped.Add(uint64(n))
			q.log.Warn("undelivered records dropped at close (no spool)", "records", n)
		}
		return nil
	}
	for q.mem.len() > 0 {
		rest = append(rest, q.mem.pop())
	}
	if q.fromDisk {
		// The batch's records go into the new segment: consume them here.
		if _, err := q.disk.advance(q.diskEnd, q.diskRecs); err != nil {
			return err
		}
	}
	var curID uint64
	if len(q.disk.segs) > 0 {
		curID = q.disk.segs[0].id
	}
	curOff := q.disk.rOff
	err := q.disk.prepend(rest)
	if err == nil && len(rest) > 0 {
		q.log.Info("undelivered records spooled for the next start", "records", q.disk.records)
	}
	return errors.Join(err, q.disk.close(curID, curOff))
}

// take fills q.batch from memory, or else from the spool. Called with mu held.
func (q *Queue) take() error {
	bytes := 0
	for q.mem.len() > 0 && len(q.batch) < q.opts.MaxBatch && bytes < q.opts.MaxBatchBytes {
		r := q.mem.pop()
		bytes += len(r)
		q.batch = append(q.batch, r)
	}
	if len(q.batch) > 0 {
		q.fromDisk = false
		q.inflight.Store(int64(len(q.batch)))
		return nil
	}
	for q.disk != nil && !q.disk.empty() {
		recs, off, err := q.disk.peek(q.opts.MaxBatch, q.opts.MaxBatchBytes)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			q.batch, q.fromDisk, q.diskEnd, q.diskRecs = recs, true, off, len(recs)
			return nil
		}
		if off == q.disk.rOff {
			return nil // nothing readable yet
		}
		// Only corrupt records: skip them.
		if err := q.advanceDisk(off, 0); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) advanceDisk(off int64, recs int) error {
	corrupt, err := q.disk.advance(off, recs)
	if corrupt > 0 {
		q.dropped.Add(uint64(corrupt))
		q.log.Warn("corrupt spool records skipped", "records", corrupt)
	}
	return err
}

func (q *Queue) run() {
	defer close(q.done)
	backoff := q.opts.MinBackoff
	for {
		if len(q.batch) == 0 {
			q.mu.Lock()
			err := q.take()
			q.mu.Unlock()
			if err != nil {
				q.log.Error("spool read failed", "err", err)
			}
			if len(q.batch) == 0 {
				if err != nil && !q.sleep(backoff) {
					return
				}
				select {
				case <-q.wake:
				case <-q.closing:
					q.mu.Lock()
					err := q.take()
					q.mu.Unlock()
					if err != nil || len(q.batch) == 0 {
						return
					}
				}
				continue
			}
		}
		if q.ctx.Err() != nil {
			return
		}
		retry := q.deliver()
		if retry == nil {
			backoff = q.opts.MinBackoff
			continue
		}
		if !q.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, q.opts.MaxBackoff)
	}
}

// deliver sends the batch once and keeps in it what is to be retried. It
// returns the error when something is left to retry.
func (q *Queue) deliver() error {
	err := q.send.Send(q.ctx, q.batch)
	outcomes := make([]Outcome, len(q.batch))
	var be *BatchError
	var perm permanent
	switch {
	case err == nil:
	case errors.As(err, &be) && len(be.Outcomes) == len(q.batch):
		copy(outcomes, be.Outcomes)
	case errors.As(err, &perm):
		for i := range outcomes {
			outcomes[i] = Rejected
		}
	default:
		for i := range outcomes {
			outcomes[i] = Retry
		}
	}
	keep := q.batch[:0]
	var sent, failed uint64
	for i, o := range outcomes {
		switch o {
		case Delivered:
			sent++
		case Rejected:
			failed++
		default:
			keep = append(keep, q.batch[i])
		}
	}
	q.sent.Add(sent)
	if failed > 0 {
		n := q.failed.Add(failed)
		q.log.Warn("records refused by the destination", "records", failed, "failed", n, "err", err)
	}
	clear(q.batch[len(keep):])
	q.batch = keep
	if len(keep) > 0 {
		q.retries.Add(uint64(len(keep)))
		if !q.failing {
			q.failing = true
			q.log.Warn("delivery failing; retrying with backoff", "err", err)
		}
		if !q.fromDisk {
			q.inflight.Store(int64(len(keep)))
		}
		if err == nil {
			err = fmt.Errorf("%d records to retry", len(keep))
		}
		return err
	}
	if q.failing {
		q.failing = false
		q.log.Info("delivery resumed")
	}
	q.inflight.Store(0)
	if q.fromDisk {
		q.mu.Lock()
		err := q.advanceDisk(q.diskEnd, q.diskRecs)
		q.mu.Unlock()
		q.fromDisk = false
		if err != nil {
			q.log.Error("spool advance failed", "err", err)
		}
	}
	return nil
}

// sleep waits d with ±20% jitter; false when Close gave up.
func (q *Queue) sleep(d time.Duration) bool {
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-q.ctx.Done():
		return false
	}
}

// ring is a fixed-capacity FIFO of records.
type ring struct {
	buf        [][]byte
	head, size int
}

func newRing(n int) ring { return ring{buf: make([][]byte, n)} }

func (r *ring) len() int { return r.size }
func (r *ring) cap() int { return len(r.buf) }

func (r *ring) push(rec []byte) {
	r.buf[(r.head+r.size)%len(r.buf)] = append([]byte(nil), rec...)
	r.size++
}

func (r *ring) pop() []byte {
	rec := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return rec
}
