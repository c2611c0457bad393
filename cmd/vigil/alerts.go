package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/term"
)

// queryFlags are the filters `vigil alerts` and `vigil events` share.
type queryFlags struct {
	cfgPath, db, since, rule, severity, process, container, host, format string
	kinds                                                                []string
	pid                                                                  uint32
	limit                                                                int
	follow                                                               bool
}

func (q *queryFlags) register(cmd *cobra.Command, alerts bool) {
	f := cmd.Flags()
	f.StringVarP(&q.cfgPath, "config", "c", "", "the agent's configuration file, to find its store")
	f.StringVar(&q.db, "db", "", "the store's database (default: store.path from the configuration)")
	f.StringVar(&q.since, "since", "", "only newer than this: a duration (30m, 24h) or a time (2026-03-01, 2026-03-01T12:00:00Z)")
	f.StringVar(&q.process, "process", "", "process name, executable path, or the executable's base name")
	f.Uint32Var(&q.pid, "pid", 0, "process id")
	f.StringVar(&q.container, "container", "", "container id, or its first characters")
	f.StringVar(&q.host, "host", "", "host name")
	f.IntVarP(&q.limit, "limit", "n", 50, "show the newest N")
	f.BoolVarP(&q.follow, "follow", "f", false, "keep printing new ones as they are stored")
	f.StringVarP(&q.format, "output", "o", "table", "table, or json (one ECS document per line)")
	if alerts {
		f.StringVar(&q.rule, "rule", "", "rule id; * and ? match any characters (exec-*)")
		f.StringVar(&q.severity, "severity", "", "at least this severity: info, notice, warning, error, critical")
	} else {
		f.StringSliceVar(&q.kinds, "kind", nil, "event kinds: exec, fork, exit, file, cred, net, kernel (repeat or comma-separate)")
	}
}

func (q *queryFlags) filter(now time.Time) (store.Filter, error) {
	f := store.Filter{Rule: q.rule, Process: q.process, PID: q.pid, Container: q.container, Host: q.host,
		Kinds: q.kinds, Limit: q.limit}
	if q.limit < 1 {
		return f, fmt.Errorf("--limit %d: must be at least 1", q.limit)
	}
	if q.since != "" {
		t, err := parseSince(q.since, now)
		if err != nil {
			return f, err
		}
		f.Since = t
	}
	if q.severity != "" {
		sev, ok := event.ParseSeverity(q.severity)
		if !ok {
			return f, fmt.Errorf("--severity %q: use info, notice, warning, error or critical", q.severity)
		}
		f.MinSeverity = sev
	}
	for _, k := range q.kinds {
		ok := false
		for _, kind := range event.Kinds() {
			ok = ok || kind.String() == k
		}
		if !ok {
			return f, fmt.Errorf("--kind %q: use exec, fork, exit, file, cred, net or kernel", k)
		}
	}
	switch q.format {
	case "table", "json":
	default:
		return f, fmt.Errorf("--output %q: use table or json", q.format)
	}
	return f, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration back from now must be positive", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration like 30m or 24h, or a time like 2026-03-01 or 2026-03-01T12:00:00Z", s)
}

func (q *queryFlags) open() (*store.Reader, error) {
	path := q.db
	if path == "" {
		cfg, err := config.Load(q.cfgPath)
		if err != nil {
			return nil, err
		}
		if cfg.Store.Path == "" {
			return nil, fmt.Errorf("the store is disabled in the configuration (store.path is empty)")
		}
		path = cfg.Store.Path
	}
	r, err := store.OpenReader(path)
	if err != nil && os.IsPermission(err) {
		return nil, fmt.Errorf("%s: permission denied: the store is root only", path)
	}
	return r, err
}

func alertsCmd() *cobra.Command {
	var q queryFlags
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Show the alerts the agent stored",
		Long: `Show the alerts in the agent's store, oldest first: the newest --limit, or
with --follow, then every new one as it is stored. The agent may be running:
reading never disturbs it. Table output escapes control characters in what
processes chose (names, arguments, paths); -o json prints ECS documents.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := q.filter(time.Now())
			if err != nil {
				return err
			}
			r, err := q.open()
			if err != nil {
				return err
			}
			defer r.Close()
			return follow(cmd.Context(), q, f, func(ctx context.Context, f store.Filter) ([]row, error) {
				al, err := r.Alerts(ctx, f)
				rows := make([]row, len(al))
				for i, a := range al {
					rows[i] = row{id: a.ID, doc: a.Doc, cells: []string{a.Time.Format(tableTime), a.Severity,
						term.Safe(a.RuleID), fmt.Sprint(a.PID), term.Safe(term.Cut(processOf(a.ProcessName, a.Executable), 40)),
						term.Safe(term.Cut(a.Message, 160))}}
				}
				return rows, err
			}, "TIME\tSEVERITY\tRULE\tPID\tPROCESS\tMESSAGE")
		},
	}
	q.register(cmd, true)
	return cmd
}

func eventsCmd() *cobra.Command {
	var q queryFlags
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the events the agent stored (store.events says which kinds)",
		Long: `Show the events in the agent's store, oldest first. The agent stores the
kinds listed in store.events (none by default: alerts only). Filters and
output as for vigil alerts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := q.filter(time.Now())
			if err != nil {
				return err
			}
			r, err := q.open()
			if err != nil {
				return err
			}
			defer r.Close()
			return follow(cmd.Context(), q, f, func(ctx context.Context, f store.Filter) ([]row, error) {
				evs, err := r.Events(ctx, f)
				rows := make([]row, len(evs))
				for i, e := range evs {
					rows[i] = row{id: e.ID, doc: e.Doc, cells: []string{e.Time.Format(tableTime), e.Kind, fmt.Sprint(e.PID),
						term.Safe(term.Cut(processOf(e.ProcessName, e.Executable), 40)), term.Safe(term.Cut(e.Summary, 160))}}
				}
				return rows, err
			}, "TIME\tKIND\tPID\tPROCESS\tWHAT")
		},
	}
	q.register(cmd, false)
	return cmd
}

const tableTime = "2006-01-02 15:04:05"

func processOf(name, exe string) string {
	if exe != "" {
		return exe
	}
	return name
}

// row is one line of output: its table cells (already made safe) and its
// JSON document.
type row struct {
	id    int64
	doc   []byte
	cells []string
}

// follow prints what query returns, then with --follow polls for newer rows
// until interrupted.
func follow(ctx context.Context, q queryFlags, f store.Filter, query func(context.Context, store.Filter) ([]row, error), header string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := query(ctx, f)
	if err != nil {
		return err
	}
	show := func(w io.Writer, rows []row, withHeader bool) {
		if q.format == "json" {
			for _, r := range rows {
				w.Write(append(r.doc, '\n'))
			}
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if withHeader {
			fmt.Fprintln(tw, header)
		}
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r.cells, "\t"))
		}
		tw.Flush()
	}
	show(os.Stdout, rows, true)
	if !q.follow {
		return nil
	}
	// Follow from the newest row that matched, or when none did, from the
	// newest row of any kind, so that older rows are never printed late.
	last := int64(-1)
	if len(rows) > 0 {
		last = rows[len(rows)-1].id
	} else if newest, err := query(ctx, store.Filter{Limit: 1}); err == nil && len(newest) > 0 {
		last = newest[0].id
	}
	f.Limit = 1000
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		f.AfterID = last
		rows, err := query(ctx, f)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			last = rows[len(rows)-1].id
			show(os.Stdout, rows, false)
		}
	}
}
