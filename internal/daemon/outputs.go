package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/metrics"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/web"
)

// outputs are where results go besides the sinks' streams: the store, the
// web page and /metrics, and the counters only they need.
type outputs struct {
	store   *store.Store
	talkers *web.Talkers
	metrics *metrics.Metrics

	ruleHits sync.Map // rule id -> *atomic.Uint64
	blocks   atomic.Pointer[blockListBox]

	webAddr, metricsAddr string
}

type blockListBox struct{ web.BlockList }

// openStore opens the store and adds it, and the talkers' counter, to the
// sinks. New calls it.
func (a *Agent) openStore() error {
	a.out.metrics = metrics.New(a.metricsSnapshot)
	a.out.talkers = web.NewTalkers()
	a.sinks = append(a.sinks, a.out.talkers)
	c := a.cfg.Store
	if c.Path == "" {
		return nil
	}
	kinds := make([]string, len(c.Events))
	for i, k := range c.Events {
		kinds[i] = string(k)
	}
	s, err := store.Open(store.Options{Path: c.Path, Kinds: kinds, MaxAge: c.MaxAge.D(),
		MaxSize: int64(c.MaxSizeMiB) << 20, Queue: c.Queue, Host: &a.host, Log: a.log})
	if err != nil {
		return fmt.Errorf("%w (store.path in the configuration; \"\" disables the store)", err)
	}
	a.out.store = s
	a.sinks = append(a.sinks, s)
	return nil
}

// ruleHit counts an alert for its rule; emitAlert calls it.
func (a *Agent) ruleHit(al *event.Alert) {
	if al == nil {
		return
	}
	v, ok := a.out.ruleHits.Load(al.RuleID)
	if !ok {
		v, _ = a.out.ruleHits.LoadOrStore(al.RuleID, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// SetBlockList gives the web page the block-ip response's list. Safe at
// any time.
func (a *Agent) SetBlockList(b web.BlockList) { a.out.blocks.Store(&blockListBox{b}) }

// Responses is the counter responders increment, by action and result.
func (a *Agent) Responses() *prometheus.CounterVec { return a.out.metrics.Responses }

// WebAddr and MetricsAddr are where the page and /metrics listen once Run
// is ready, "" when disabled or unavailable.
func (a *Agent) WebAddr() string     { return a.out.webAddr }
func (a *Agent) MetricsAddr() string { return a.out.metricsAddr }

// serveHTTP starts the web page and /metrics. A listener that cannot start
// is logged, not fatal: detection does not depend on it. The returned
// function stops both.
func (a *Agent) serveHTTP() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var servers []*http.Server
	start := func(what, addr string, h http.Handler) string {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			a.log.Warn(what+" unavailable", "err", err)
			return ""
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }}
		servers = append(servers, srv)
		go srv.Serve(ln)
		a.log.Info(what+" listening", "addr", ln.Addr().String())
		return ln.Addr().String()
	}
	if addr := string(a.cfg.Web.Listen); addr != "" {
		if h, err := a.webHandler(ctx); err != nil {
			a.log.Warn("web page unavailable", "err", err)
		} else {
			a.out.webAddr = start("web page", addr, h)
		}
	}
	if addr := string(a.cfg.Metrics.Listen); addr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.out.metrics.Handler())
		a.out.metricsAddr = start("metrics", addr, mux)
	}
	return func() {
		cancel() // ends the live streams
		sctx, done := context.WithTimeout(context.Background(), 3*time.Second)
		defer done()
		for _, s := range servers {
			if err := s.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
				s.Close()
			}
		}
	}
}

func (a *Agent) webHandler(ctx context.Context) (http.Handler, error) {
	if a.out.store == nil {
		return nil, errors.New("the page needs the store (store.path)")
	}
	tok, err := web.LoadToken(a.cfg.Web.TokenFile)
	if err != nil {
		return nil, err
	}
	rd, err := a.out.store.Reader()
	if err != nil {
		return nil, err
	}
	a.log.Info("web page token", "token_file", a.cfg.Web.TokenFile)
	return web.New(ctx, web.Options{Token: tok, Store: rd, Alerts: a.out.store, Health: a.webHealth,
		Talkers: a.out.talkers, Log: a.log,
		Blocks: func() web.BlockList {
			if b := a.out.blocks.Load(); b != nil {
				return b.BlockList
			}
			return nil
		}}), nil
}

func (a *Agent) sinkStats() []sink.Stats {
	var out []sink.Stats
	for _, s := range a.sinks {
		if r, ok := s.(sink.Reporter); ok {
			out = append(out, r.Stats())
		}
	}
	return out
}

func (a *Agent) webHealth() web.Health {
	st := a.Status()
	h := web.Health{Version: st.Version, Host: a.host.Name, UptimeSeconds: st.UptimeSeconds,
		EventsPerSecond: st.EventsPerSecond, Sinks: a.sinkStats(), DecodeErrors: st.DecodeErrors,
		SinkErrors: st.SinkErrors, AlertsRaised: st.Rules.AlertsRaised, AlertsDropped: st.Rules.AlertsDropped}
	for _, s := range st.Sensors {
		ws := web.Sensor{Name: s.Name, State: "running"}
		switch {
		case s.Error != "":
			ws.State, ws.Detail = "failed", s.Error
		case len(s.Missing) > 0:
			ws.State, ws.Detail = "partial", fmt.Sprintf("this kernel lacks %v", s.Missing)
		}
		h.Sensors = append(h.Sensors, ws)
	}
	for _, k := range st.Events {
		h.Kinds = append(h.Kinds, web.KindDrops{Kind: k.Kind, Received: k.Received, KernelLost: k.KernelLost,
			QueueDropped: k.QueueDropped})
	}
	return h
}

func (a *Agent) metricsSnapshot() metrics.Snapshot {
	st := a.Status()
	s := metrics.Snapshot{DecodeErrors: st.DecodeErrors, SinkErrors: st.SinkErrors,
		AlertsRaised: st.Rules.AlertsRaised, AlertsDropped: st.Rules.AlertsDropped,
		RuleHits: map[string]uint64{}, Sinks: a.sinkStats(),
		RuleEvalErrors: st.Rules.EvalErrors, RuleCostExceeded: st.Rules.CostExceeded,
		Queue:      metrics.Level{Used: st.Queue.Used, Capacity: st.Queue.Capacity},
		RingBuffer: metrics.Level{Used: st.RingBuffer.Used, Capacity: st.RingBuffer.Capacity},
		Processes:  st.ProcessCache.Entries()}
	for _, k := range st.Events {
		s.Kinds = append(s.Kinds, metrics.Kind{Name: k.Kind, KernelSent: k.KernelSent, KernelLost: k.KernelLost,
			KernelFiltered: k.KernelFiltered, Received: k.Received, QueueDropped: k.QueueDropped})
	}
	a.out.ruleHits.Range(func(k, v any) bool {
		s.RuleHits[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	for _, sn := range st.Sensors {
		s.Sensors = append(s.Sensors, metrics.Sensor{Name: sn.Name, Up: sn.Error == ""})
	}
	if st.Network != nil && st.Network.Defence != nil {
		d := st.Network.Defence
		k := d.Kernel
		s.NetDefence = &metrics.NetDefence{IntelDropsIn: k.IntelDropsIn, IntelDropsOut: k.IntelDropsOut,
			IntelDeniedConnects: k.IntelDeniedConnects, FloodBlocks: k.FloodBlocks, PayloadMatches: k.PayloadMatches,
			PayloadDrops: k.PayloadDrops, NoticesLost: k.NoticesLost + d.PayloadEventsDropped,
			Blocked: d.Blocked, Sources: d.Talkers.Sources, PPS: d.Talkers.Total.PPS, BitsPS: d.Talkers.Total.BitsPS}
	}
	return s
}
