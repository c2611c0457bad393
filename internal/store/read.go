package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// ErrNoStore: there is no database at the path (the agent never ran with it).
var ErrNoStore = errors.New("no store")

// ErrNotFound: no row with that id.
var ErrNotFound = errors.New("not found")

// Reader queries a store, while the agent writes to it or not. It never
// writes (the connections are query_only).
type Reader struct {
	db *sql.DB
}

// OpenReader opens the database at path for queries.
func OpenReader(path string) (*Reader, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s: vigil run creates it (store.path in the configuration)", ErrNoStore, path)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('alerts', 'events')`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if n != 2 {
		db.Close()
		return nil, fmt.Errorf("store %s: not a vigil store (no alerts and events tables)", path)
	}
	return &Reader{db: db}, nil
}

func (r *Reader) Close() error { return r.db.Close() }

// Filter selects rows. Zero fields select everything.
type Filter struct {
	Since time.Time
	// AfterID, when not 0, selects rows with a larger id, oldest first (for
	// --follow); -1 starts from the first row.
	AfterID     int64
	Rule        string
	MinSeverity event.Severity
	Process     string // process name, executable, or executable's base name
	PID         uint32
	Container   string // container id, or a prefix of it
	Host        string
	EntityID    string
	Kinds       []string // events only
	// Limit: at most this many rows; without AfterID the newest ones.
	// 0 means 100.
	Limit int
}

// Alert is a stored alert.
type Alert struct {
	ID          int64           `json:"id"`
	Time        time.Time       `json:"time"`
	RuleID      string          `json:"rule_id"`
	RuleName    string          `json:"rule_name"`
	Severity    string          `json:"severity"`
	Message     string          `json:"message"`
	PID         uint32          `json:"pid"`
	ProcessName string          `json:"process_name"`
	Executable  string          `json:"executable"`
	EntityID    string          `json:"entity_id"`
	CgroupID    uint64          `json:"cgroup_id"`
	ContainerID string          `json:"container_id"`
	Host        string          `json:"host"`
	Summary     string          `json:"summary"`
	Doc         json.RawMessage `json:"doc,omitempty"`
}

// Event is a stored event.
type Event struct {
	ID          int64           `json:"id"`
	Time        time.Time       `json:"time"`
	Kind        string          `json:"kind"`
	PID         uint32          `json:"pid"`
	ProcessName string          `json:"process_name"`
	Executable  string          `json:"executable"`
	EntityID    string          `json:"entity_id"`
	CgroupID    uint64          `json:"cgroup_id"`
	ContainerID string          `json:"container_id"`
	Host        string          `json:"host"`
	Summary     string          `json:"summary"`
	Doc         json.RawMessage `json:"doc,omitempty"`
}

// where builds the WHERE clause shared by both tables.
func (f Filter) where(alerts bool) (string, []any) {
	var conds []string
	var args []any
	add := func(c string, a ...any) { conds = append(conds, c); args = append(args, a...) }
	if !f.Since.IsZero() {
		add("time >= ?", f.Since.UnixNano())
	}
	if f.AfterID != 0 {
		add("id > ?", f.AfterID)
	}
	if p := f.Process; p != "" {
		// Name, full path, or base name of the executable; no LIKE, so a
		// filter with % or _ in it means what it says.
		add(`(process_name = ? OR executable = ? OR
			(length(executable) > length(?) AND substr(executable, length(executable) - length(?)) = '/' || ?))`,
			p, p, p, p, p)
	}
	if f.PID != 0 {
		add("pid = ?", f.PID)
	}
	if f.Container != "" {
		add("substr(container_id, 1, length(?)) = ?", f.Container, f.Container)
	}
	if f.Host != "" {
		add("host = ?", f.Host)
	}
	if f.EntityID != "" {
		add("entity_id = ?", f.EntityID)
	}
	if alerts {
		if f.Rule != "" {
			add("rule_id GLOB ?", f.Rule) // exact ids are globs too
		}
		if f.MinSeverity > 0 {
			add("severity >= ?", int(f.MinSeverity))
		}
	} else if len(f.Kinds) > 0 {
		conds = append(conds, "kind IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.Kinds)), ",")+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (f Filter) order() (string, bool) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if f.AfterID != 0 {
		return fmt.Sprintf(" ORDER BY id ASC LIMIT %d", limit), false
	}
	return fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit), true
}

const alertCols = `id, time, rule_id, rule_name, severity, message, pid, process_name, executable, entity_id,
	cgroup_id, container_id, host, summary, doc`

// Alerts returns the alerts f selects, oldest first.
func (r *Reader) Alerts(ctx context.Context, f Filter) ([]Alert, error) {
	where, args := f.where(true)
	order, reverse := f.order()
	rows, err := r.db.QueryContext(ctx, `SELECT `+alertCols+` FROM alerts`+where+order, args...)
	if err != nil {
		return nil, fmt.Errorf("query alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query alerts: %w", err)
	}
	if reverse {
		reverseSlice(out)
	}
	return out, nil
}

// Alert returns the alert with id.
func (r *Reader) Alert(ctx context.Context, id int64) (Alert, error) {
	a, err := scanAlert(r.db.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	return a, err
}

type scanner interface{ Scan(...any) error }

func scanAlert(s scanner) (Alert, error) {
	var a Alert
	var t, cg int64
	var sev int
	var doc string
	if err := s.Scan(&a.ID, &t, &a.RuleID, &a.RuleName, &sev, &a.Message, &a.PID, &a.ProcessName, &a.Executable,
		&a.EntityID, &cg, &a.ContainerID, &a.Host, &a.Summary, &doc); err != nil {
		return a, err
	}
	a.Time, a.CgroupID, a.Severity, a.Doc = time.Unix(0, t), uint64(cg), event.Severity(sev).String(), json.RawMessage(doc)
	return a, nil
}

// Events returns the events f selects, oldest first.
func (r *Reader) Events(ctx context.Context, f Filter) ([]Event, error) {
	where, args := f.where(false)
	order, reverse := f.order()
	rows, err := r.db.QueryContext(ctx, `SELECT id, time, kind, pid, process_name, executable, entity_id, cgroup_id,
		container_id, host, summary, doc FROM events`+where+order, args...)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var t, cg int64
		var doc string
		if err := rows.Scan(&e.ID, &t, &e.Kind, &e.PID, &e.ProcessName, &e.Executable, &e.EntityID, &cg,
			&e.ContainerID, &e.Host, &e.Summary, &doc); err != nil {
			return nil, fmt.Errorf("query events: %w", err)
		}
		e.Time, e.CgroupID, e.Doc = time.Unix(0, t), uint64(cg), json.RawMessage(doc)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	if reverse {
		reverseSlice(out)
	}
	return out, nil
}

// RuleCount is how many stored alerts a rule raised.
type RuleCount struct {
	RuleID   string    `json:"rule_id"`
	RuleName string    `json:"rule_name"`
	Count    int64     `json:"count"`
	Last     time.Time `json:"last"`
}

// RuleCounts counts the stored alerts by rule, most first.
func (r *Reader) RuleCounts(ctx context.Context) ([]RuleCount, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT rule_id, max(rule_name), count(*), max(time) FROM alerts
		GROUP BY rule_id ORDER BY count(*) DESC, rule_id`)
	if err != nil {
		return nil, fmt.Errorf("count alerts: %w", err)
	}
	defer rows.Close()
	var out []RuleCount
	for rows.Next() {
		var c RuleCount
		var t int64
		if err := rows.Scan(&c.RuleID, &c.RuleName, &c.Count, &t); err != nil {
			return nil, fmt.Errorf("count alerts: %w", err)
		}
		c.Last = time.Unix(0, t)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastAlertID is the id of the newest alert, 0 when there is none.
func (r *Reader) LastAlertID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	err := r.db.QueryRowContext(ctx, `SELECT max(id) FROM alerts`).Scan(&id)
	return id.Int64, err
}

func reverseSlice[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}
