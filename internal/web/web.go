// Package web is the agent's local web page: live alerts, an alert's process
// tree and triggering events, blocked addresses, top talkers, rule hit
// counts, and the health and drop counters of the sensors and sinks.
//
// It is served on loopback and locked with a token: a form (or an
// Authorization: Bearer header, for scripts) exchanges it for an HttpOnly,
// SameSite=Strict cookie. Everything shown comes from the monitored host and
// is attacker-chosen: the page builds its DOM with textContent only, the
// templates are html/template, and a Content-Security-Policy allows no
// inline script.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/store"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.ParseFS(assets, "assets/*.html"))

// Health is the agent's state, as the page shows it.
type Health struct {
	Version         string       `json:"version"`
	Host            string       `json:"host"`
	UptimeSeconds   float64      `json:"uptime_seconds"`
	EventsPerSecond float64      `json:"events_per_second"`
	Sensors         []Sensor     `json:"sensors"`
	Kinds           []KindDrops  `json:"kinds"`
	Sinks           []sink.Stats `json:"sinks"`
	DecodeErrors    uint64       `json:"decode_errors"`
	SinkErrors      uint64       `json:"sink_errors"`
	AlertsRaised    uint64       `json:"alerts_raised"`
	AlertsDropped   uint64       `json:"alerts_dropped"`
}

// Sensor is one sensor's state: "running", "partial" (some hooks missing)
// or "failed", with why.
type Sensor struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// KindDrops is one kind of event and where it was lost.
type KindDrops struct {
	Kind         string `json:"kind"`
	Received     uint64 `json:"received"`
	KernelLost   uint64 `json:"kernel_lost"`
	QueueDropped uint64 `json:"queue_dropped"`
}

// Blocked is an address a responder blocks.
type Blocked struct {
	Prefix string    `json:"prefix"` // address or CIDR
	Reason string    `json:"reason"` // the rule or operator that asked
	Until  time.Time `json:"until"`  // zero: until removed
}

// BlockList is what the page asks the block-ip response for. Until one is
// set, the section is empty.
type BlockList interface {
	Blocked() []Blocked
}

// Notifier signals new alerts in the store (store.Store is one).
type Notifier interface {
	Subscribe() (<-chan struct{}, func())
}

// Options wire the page to the agent.
type Options struct {
	Token   string
	Store   *store.Reader
	Alerts  Notifier
	Health  func() Health
	Talkers *Talkers
	// Blocks is read at each request, so the daemon can set it later.
	Blocks func() BlockList
	Log    *slog.Logger
}

// Server is the page's HTTP handler.
type Server struct {
	opt Options
	mux *http.ServeMux
	ctx context.Context // ends streams when the server stops
}

const cookieName = "vigil_token"

// New makes the handler. ctx ends the live streams when it is done.
func New(ctx context.Context, o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opt: o, mux: http.NewServeMux(), ctx: ctx}
	static, _ := fs.Sub(assets, "assets")
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	// The script and the style sheet hold no data: the login form uses the
	// style sheet before there is a cookie.
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.Handle("GET /{$}", s.auth(http.HandlerFunc(s.index)))
	s.mux.Handle("GET /api/alerts", s.auth(http.HandlerFunc(s.alerts)))
	s.mux.Handle("GET /api/alerts/{id}", s.auth(http.HandlerFunc(s.alert)))
	s.mux.Handle("GET /api/overview", s.auth(http.HandlerFunc(s.overview)))
	s.mux.Handle("GET /api/stream", s.auth(http.HandlerFunc(s.stream)))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
		"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) validToken(t string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(s.opt.Token)) == 1
}

func (s *Server) authorized(r *http.Request) bool {
	if c, err := r.Cookie(cookieName); err == nil && s.validToken(c.Value) {
		return true
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && a[:7] == "Bearer " {
		return s.validToken(a[7:])
	}
	return false
}

func (s *Server) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authorized(r) {
			h.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		http.Error(w, "token required: log in at /login or send Authorization: Bearer", http.StatusUnauthorized)
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "login.html", map[string]any{"Failed": false})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if !s.validToken(r.PostFormValue("token")) {
		s.render(w, http.StatusUnauthorized, "login.html", map[string]any{"Failed": true})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.opt.Token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	var host string
	if s.opt.Health != nil {
		host = s.opt.Health().Host
	}
	s.render(w, http.StatusOK, "index.html", map[string]any{"Host": host})
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.opt.Log.Warn("web page", "page", name, "err", err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v) // escapes <, > and & too
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	s.opt.Log.Warn("web request", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a number", name, v)
	}
	return n, nil
}

// alerts lists the newest alerts (without their documents), newest last.
func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	al, err := s.opt.Store.Alerts(r.Context(), store.Filter{Limit: int(min(max(limit, 1), 1000))})
	if err != nil {
		s.fail(w, err)
		return
	}
	for i := range al {
		al[i].Doc = nil
	}
	if al == nil {
		al = []store.Alert{} // [], not null: the page iterates it
	}
	writeJSON(w, al)
}

// Node is one process of an alert's process tree, from the root down.
type Node struct {
	PID        uint32   `json:"pid"`
	Name       string   `json:"name,omitempty"`
	Executable string   `json:"executable,omitempty"`
	Args       []string `json:"args,omitempty"`
}

// Detail is an alert with its process tree, triggering event and the
// other stored events and alerts of the same process.
type Detail struct {
	Alert   store.Alert     `json:"alert"`
	Tree    []Node          `json:"tree"`
	Trigger json.RawMessage `json:"trigger,omitempty"`
	Events  []store.Event   `json:"events"`
	Alerts  []store.Alert   `json:"alerts"`
}

type docProcess struct {
	PID        uint32      `json:"pid"`
	Name       string      `json:"name"`
	Executable string      `json:"executable"`
	Args       []string    `json:"args"`
	Parent     *docProcess `json:"parent"`
}

type alertDoc struct {
	Process docProcess `json:"process"`
	Vigil   struct {
		Process struct {
			Ancestors []Node `json:"ancestors"`
		} `json:"process"`
		Alert struct {
			Trigger json.RawMessage `json:"trigger"`
		} `json:"alert"`
	} `json:"vigil"`
}

func (s *Server) alert(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "alert id: not a number", http.StatusBadRequest)
		return
	}
	a, err := s.opt.Store.Alert(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	var doc alertDoc
	if err := json.Unmarshal(a.Doc, &doc); err != nil {
		s.fail(w, fmt.Errorf("alert %d: %w", id, err))
		return
	}
	d := Detail{Alert: a, Trigger: doc.Vigil.Alert.Trigger, Events: []store.Event{}, Alerts: []store.Alert{}}
	d.Alert.Doc = nil
	// Ancestors run from the grandparent up: the tree runs from the root down.
	anc := doc.Vigil.Process.Ancestors
	for i := len(anc) - 1; i >= 0; i-- {
		d.Tree = append(d.Tree, anc[i])
	}
	if p := doc.Process.Parent; p != nil {
		d.Tree = append(d.Tree, Node{PID: p.PID, Name: p.Name, Executable: p.Executable, Args: p.Args})
	}
	p := doc.Process
	d.Tree = append(d.Tree, Node{PID: p.PID, Name: p.Name, Executable: p.Executable, Args: p.Args})
	if a.EntityID != "" {
		f := store.Filter{EntityID: a.EntityID, Limit: 200}
		if d.Events, err = s.opt.Store.Events(r.Context(), f); err != nil {
			s.fail(w, err)
			return
		}
		if d.Alerts, err = s.opt.Store.Alerts(r.Context(), f); err != nil {
			s.fail(w, err)
			return
		}
		for i := range d.Events {
			d.Events[i].Doc = nil
		}
		for i := range d.Alerts {
			d.Alerts[i].Doc = nil
		}
	}
	writeJSON(w, d)
}

// Overview is everything on the page but the alerts.
type Overview struct {
	Health   Health            `json:"health"`
	Rules    []store.RuleCount `json:"rules"`
	Remote   []Talker          `json:"remote"`
	Programs []Talker          `json:"programs"`
	Blocked  []Blocked         `json:"blocked"`
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	var o Overview
	if s.opt.Health != nil {
		o.Health = s.opt.Health()
	}
	var err error
	if o.Rules, err = s.opt.Store.RuleCounts(r.Context()); err != nil {
		s.fail(w, err)
		return
	}
	if s.opt.Talkers != nil {
		o.Remote, o.Programs = s.opt.Talkers.Top(10)
	}
	if s.opt.Blocks != nil {
		if b := s.opt.Blocks(); b != nil {
			o.Blocked = b.Blocked()
		}
	}
	if o.Rules == nil {
		o.Rules = []store.RuleCount{}
	}
	if o.Blocked == nil {
		o.Blocked = []Blocked{}
	}
	writeJSON(w, o)
}

// stream sends each alert stored after ?after=ID as a server-sent event,
// as soon as the store commits it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	after, err := intParam(r, "after", 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" { // a reconnecting EventSource
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > after {
			after = n
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	signal, cancel := s.opt.Alerts.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": vigil alerts\n\n")
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	send := func() error {
		for {
			f := store.Filter{AfterID: after, Limit: 500}
			if after == 0 {
				f.AfterID = -1
			}
			al, err := s.opt.Store.Alerts(r.Context(), f)
			if err != nil {
				return err
			}
			for _, a := range al {
				a.Doc = nil
				b, _ := json.Marshal(a)
				fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", a.ID, b)
				after = a.ID
			}
			fl.Flush()
			if len(al) < 500 {
				return nil
			}
		}
	}
	if err := send(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case <-signal:
			if err := send(); err != nil {
				return
			}
		}
	}
}
