// Package store is Vigil's embedded event store: a SQLite database (pure Go,
// no cgo) that keeps every alert and the events of the kinds configured,
// pruned by age and size.
//
// The agent writes through Store, a sink: Write renders the row on the
// daemon's write goroutine and hands it to a bounded queue; one goroutine
// inserts what is queued in one transaction at a time. When the queue is
// full the row is dropped and counted, so a slow disk never slows the agent.
//
// Readers (the CLI, the web page) open the same file with OpenReader. The
// database is in WAL mode: readers never block the writer nor each other,
// and see whole transactions only.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
)

// Options configure the writer.
type Options struct {
	Path string
	// Kinds are the kinds of events stored beside alerts ("exec", ...,
	// or "all").
	Kinds   []string
	MaxAge  time.Duration // 0: keep
	MaxSize int64         // bytes of database; 0: no bound
	Queue   int           // rows waiting for the database; default 8192
	Host    *event.Host
	// ContainerOf names the container a cgroup belongs to, "" for none,
	// for events that carry no container of their own. Nil: none.
	ContainerOf func(cgroupID uint64) string
	// PruneEvery is how often retention runs; default one minute.
	PruneEvery time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// maxBatch bounds one transaction, so readers see new rows often.
const maxBatch = 4096

// Store is the writing side: a sink the daemon writes every event to.
type Store struct {
	opt   Options
	db    *sql.DB
	kinds [event.KindResponse + 1]bool
	queue chan *row
	done  chan struct{}

	written       atomic.Uint64
	dropped       atomic.Uint64
	alertsDropped atomic.Uint64
	failures      atomic.Uint64
	pruned        atomic.Uint64
	closed        atomic.Bool
	closeOnce     sync.Once
	closeErr      error

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}

	readerOnce sync.Once
	reader     *Reader
	readerErr  error
}

// row is one alert or event, rendered off the event so the sink keeps
// nothing of it after Write.
type row struct {
	alert     bool
	time      int64
	kind      string
	ruleID    string
	ruleName  string
	severity  int
	message   string
	pid       uint32
	name      string
	exe       string
	entity    string
	cgroup    uint64
	container string
	host      string
	summary   string
	doc       []byte
}

const schema = `
CREATE TABLE IF NOT EXISTS alerts (
	id INTEGER PRIMARY KEY,
	time INTEGER NOT NULL,
	rule_id TEXT NOT NULL,
	rule_name TEXT NOT NULL,
	severity INTEGER NOT NULL,
	message TEXT NOT NULL,
	pid INTEGER NOT NULL,
	process_name TEXT NOT NULL,
	executable TEXT NOT NULL,
	entity_id TEXT NOT NULL,
	cgroup_id INTEGER NOT NULL,
	container_id TEXT NOT NULL,
	host TEXT NOT NULL,
	summary TEXT NOT NULL,
	doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts(time);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule_id);
CREATE INDEX IF NOT EXISTS alerts_entity ON alerts(entity_id);
CREATE TABLE IF NOT EXISTS events (
	id INTEGER PRIMARY KEY,
	time INTEGER NOT NULL,
	kind TEXT NOT NULL,
	pid INTEGER NOT NULL,
	process_name TEXT NOT NULL,
	executable TEXT NOT NULL,
	entity_id TEXT NOT NULL,
	cgroup_id INTEGER NOT NULL,
	container_id TEXT NOT NULL,
	host TEXT NOT NULL,
	summary TEXT NOT NULL,
	doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_entity ON events(entity_id);
`

// dsn opens path with the settings every connection needs: WAL (set once,
// kept in the file), a busy timeout so a reader and the writer wait for each
// other's checkpoints rather than fail, and foreign keys off (none used).
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Set("mode", "rw") // never create a database a reader asked for
	} else {
		// auto_vacuum takes effect only on a new database, before WAL
		// mode writes its first page: it lets retention give pages back.
		q.Add("_pragma", "auto_vacuum(INCREMENTAL)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open creates or opens the database at o.Path (its directory is made root
// only when missing) and starts the writer.
func Open(o Options) (*Store, error) {
	if o.Queue <= 0 {
		o.Queue = 8192
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The file holds what the host did: root only, from the start.
	f, err := os.OpenFile(o.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	db, err := sql.Open("sqlite", dsn(o.Path, false))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", o.Path, err)
	}
	db.SetMaxOpenConns(1) // one writer; readers have their own pool
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", o.Path, err)
	}
	s := &Store{opt: o, db: db, queue: make(chan *row, o.Queue), done: make(chan struct{}),
		subs: map[chan struct{}]struct{}{}}
	// Alerts, and what responses did about them, are always kept.
	s.kinds[event.KindAlert] = true
	s.kinds[event.KindResponse] = true
	for _, k := range o.Kinds {
		for _, kind := range event.Kinds() {
			if k == "all" || k == kind.String() {
				s.kinds[kind] = true
			}
		}
	}
	if err := s.Prune(); err != nil {
		o.Log.Warn("store retention", "err", err)
	}
	go s.run()
	return s, nil
}

// Write queues e when the store keeps its kind; it never blocks.
func (s *Store) Write(e *event.Event) error {
	if int(e.Kind) >= len(s.kinds) || !s.kinds[e.Kind] || s.closed.Load() {
		return nil
	}
	r, err := s.render(e)
	if err != nil {
		s.failures.Add(1)
		return fmt.Errorf("store: %w", err)
	}
	select {
	case s.queue <- r:
	default:
		s.dropped.Add(1)
		if r.alert {
			s.alertsDropped.Add(1)
		}
	}
	return nil
}

func (s *Store) render(e *event.Event) (*row, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e.Doc(s.opt.Host, 0)); err != nil {
		return nil, err
	}
	r := &row{
		time:    e.Time.UnixNano(),
		kind:    e.Kind.String(),
		pid:     e.Process.PID,
		name:    e.Process.Name,
		exe:     e.Process.Executable,
		entity:  e.Process.EntityID,
		cgroup:  e.Process.CgroupID,
		summary: Summary(e),
		doc:     bytes.TrimRight(buf.Bytes(), "\n"),
	}
	if s.opt.Host != nil {
		r.host = s.opt.Host.Name
	}
	switch {
	case e.Container != nil:
		r.container = e.Container.ID
	case s.opt.ContainerOf != nil && r.cgroup != 0:
		r.container = s.opt.ContainerOf(r.cgroup)
	}
	if a := e.Alert; e.Kind == event.KindAlert && a != nil {
		r.alert = true
		r.ruleID, r.ruleName, r.severity, r.message = a.RuleID, a.RuleName, int(a.Severity), a.Message
		if a.Trigger != nil {
			r.summary = Summary(a.Trigger)
		}
	}
	return r, nil
}

// Flush does nothing: the writer commits whenever its queue runs empty.
func (s *Store) Flush() error { return nil }

// Close writes what is queued, stops the writer and closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.queue)
		<-s.done
		if s.reader != nil {
			s.reader.Close()
		}
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Stats reports the queue and what became of the rows.
func (s *Store) Stats() sink.Stats {
	return sink.Stats{Name: "store", Queued: len(s.queue), Capacity: cap(s.queue),
		Written: s.written.Load(), Dropped: s.dropped.Load(), Failures: s.failures.Load()}
}

// AlertsDropped counts alerts the full queue refused (within Stats().Dropped).
func (s *Store) AlertsDropped() uint64 { return s.alertsDropped.Load() }

// Reader is a reader on the same database, closed with the store.
func (s *Store) Reader() (*Reader, error) {
	s.readerOnce.Do(func() { s.reader, s.readerErr = OpenReader(s.opt.Path) })
	return s.reader, s.readerErr
}

// Subscribe returns a channel that receives a signal after each commit that
// stored alerts; cancel stops it. Signals coalesce: read the store for what
// is new.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.subMu.Lock()
	s.subs[ch] = struct{}{}
	s.subMu.Unlock()
	return ch, func() {
		s.subMu.Lock()
		delete(s.subs, ch)
		s.subMu.Unlock()
	}
}

func (s *Store) notify() {
	s.subMu.Lock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.subMu.Unlock()
}

// run inserts queued rows in batches until the queue is closed, and prunes.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(s.opt.PruneEvery)
	defer tick.Stop()
	batch := make([]*row, 0, maxBatch)
	for {
		select {
		case <-tick.C:
			if err := s.Prune(); err != nil {
				s.opt.Log.Warn("store retention", "err", err)
			}
			continue
		case r, ok := <-s.queue:
			if !ok {
				return
			}
			batch = append(batch[:0], r)
		}
		closed := false
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.insert(batch)
		if closed {
			return
		}
	}
}

func (s *Store) insert(batch []*row) {
	err := s.insertTx(batch)
	if err != nil {
		// Log the first failure and then every hundredth.
		if n := s.failures.Add(uint64(len(batch))); n == uint64(len(batch)) || n/100 != (n-uint64(len(batch)))/100 {
			s.opt.Log.Error("store write failed", "err", err, "rows", len(batch), "failures", n)
		}
		return
	}
	s.written.Add(uint64(len(batch)))
	for _, r := range batch {
		if r.alert {
			s.notify()
			break
		}
	}
}

func (s *Store) insertTx(batch []*row) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var alertStmt, eventStmt *sql.Stmt
	for _, r := range batch {
		if r.alert {
			if alertStmt == nil {
				if alertStmt, err = tx.PrepareContext(ctx, `INSERT INTO alerts (time, rule_id, rule_name, severity,
					message, pid, process_name, executable, entity_id, cgroup_id, container_id, host, summary, doc)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
					return err
				}
			}
			_, err = alertStmt.ExecContext(ctx, r.time, r.ruleID, r.ruleName, r.severity, r.message, r.pid, r.name,
				r.exe, r.entity, int64(r.cgroup), r.container, r.host, r.summary, r.doc)
		} else {
			if eventStmt == nil {
				if eventStmt, err = tx.PrepareContext(ctx, `INSERT INTO events (time, kind, pid, process_name,
					executable, entity_id, cgroup_id, container_id, host, summary, doc)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
					return err
				}
			}
			_, err = eventStmt.ExecContext(ctx, r.time, r.kind, r.pid, r.name, r.exe, r.entity, int64(r.cgroup),
				r.container, r.host, r.summary, r.doc)
		}
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Prune applies retention now: rows older than MaxAge go, then, while the
// database is larger than MaxSize, the oldest events and then the oldest
// alerts, a tenth at a time. Freed pages go back to the file system.
func (s *Store) Prune() error {
	var n int64
	if s.opt.MaxAge > 0 {
		cut := s.opt.Now().Add(-s.opt.MaxAge).UnixNano()
		for _, table := range []string{"events", "alerts"} {
			res, err := s.db.Exec(`DELETE FROM `+table+` WHERE time < ?`, cut)
			if err != nil {
				return fmt.Errorf("prune %s by age: %w", table, err)
			}
			k, _ := res.RowsAffected()
			n += k
		}
	}
	if s.opt.MaxSize > 0 {
		for round := 0; round < 200; round++ {
			size, err := s.usedSize()
			if err != nil {
				return err
			}
			if size <= s.opt.MaxSize {
				break
			}
			k, err := s.deleteOldest("events")
			if err == nil && k == 0 {
				k, err = s.deleteOldest("alerts")
			}
			if err != nil {
				return fmt.Errorf("prune by size: %w", err)
			}
			if k == 0 {
				break
			}
			n += k
		}
	}
	if n > 0 {
		s.pruned.Add(uint64(n))
		// Free pages go back to the file system, and the WAL into the file.
		if _, err := s.db.Exec("PRAGMA incremental_vacuum"); err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
		if _, err := s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return nil
}

// Pruned counts rows retention deleted.
func (s *Store) Pruned() uint64 { return s.pruned.Load() }

// usedSize is the bytes of pages in use: the file's size after a vacuum.
func (s *Store) usedSize() (int64, error) {
	var pages, free, size int64
	err := errors.Join(
		s.db.QueryRow("PRAGMA page_count").Scan(&pages),
		s.db.QueryRow("PRAGMA freelist_count").Scan(&free),
		s.db.QueryRow("PRAGMA page_size").Scan(&size))
	return (pages - free) * size, err
}

func (s *Store) deleteOldest(table string) (int64, error) {
	var count int64
	if err := s.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&count); err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, nil
	}
	res, err := s.db.Exec(`DELETE FROM `+table+` WHERE id <= (SELECT id FROM `+table+` ORDER BY id LIMIT 1 OFFSET ?)`,
		max(count/10, 1)-1)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
