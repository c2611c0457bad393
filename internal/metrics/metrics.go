// Package metrics exposes the agent's counters to Prometheus: events by kind
// from the kernel to the sinks, drops at every stage, rule hits, responses,
// the sinks' queues, and the agent's own CPU and memory.
//
// The counters live where they are counted (the daemon, the sinks); this
// package reads a Snapshot of them at each scrape, as node_exporter's
// collectors do, so that nothing on the event path touches Prometheus.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilsec/vigil/internal/sink"
)

// Snapshot is the agent's counters at one moment.
type Snapshot struct {
	Kinds         []Kind
	DecodeErrors  uint64
	SinkErrors    uint64 // write errors over all sinks
	AlertsRaised  uint64
	AlertsDropped uint64 // the alert queue was full
	RuleHits      map[string]uint64
	// RuleEvalErrors and RuleCostExceeded count, by rule id, evaluations
	// that failed and evaluations stopped by the runtime cost limit.
	RuleEvalErrors   map[string]uint64
	RuleCostExceeded map[string]uint64
	Sinks            []sink.Stats
	Queue            Level // between the ring reader and the sinks
	RingBuffer       Level // bytes
	Processes        int   // entries in the process cache
	Sensors          []Sensor
	NetDefence       *NetDefence // nil when network defence is off
}

// NetDefence is network defence's counters and the last poll's traffic.
type NetDefence struct {
	IntelDropsIn, IntelDropsOut, IntelDeniedConnects uint64
	FloodBlocks, PayloadMatches, PayloadDrops        uint64
	NoticesLost                                      uint64 // kernel notices and payload events lost
	Blocked, Sources                                 int
	PPS, BitsPS                                      float64
}

// Kind counts one kind of event from the kernel to the sinks.
type Kind struct {
	Name           string
	KernelSent     uint64
	KernelLost     uint64 // the ring buffer was full
	KernelFiltered uint64
	Received       uint64
	QueueDropped   uint64 // the user-space queue was full
}

// Level is a current level against its capacity.
type Level struct{ Used, Capacity int }

// Sensor says whether a sensor is attached.
type Sensor struct {
	Name string
	Up   bool
}

// Metrics is the agent's registry. No global registry is used.
type Metrics struct {
	reg *prometheus.Registry
	// Responses counts what responders did, by action (kill, deny, block...)
	// and result (ok, failed). Empty until a responder reports.
	Responses *prometheus.CounterVec
}

// New registers the agent's collector, the response counters, and the
// process and Go runtime collectors.
func New(snapshot func() Snapshot) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_responses_total",
			Help: "Responses carried out, by action and result.",
		}, []string{"action", "result"}),
	}
	m.reg.MustRegister(newCollector(snapshot), m.Responses,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

type desc = *prometheus.Desc

type collector struct {
	snapshot func() Snapshot

	kernelSent, kernelLost, kernelFiltered, received, queueDropped        desc
	decodeErrors, sinkErrors, alertsRaised, alertsDropped, ruleHits       desc
	ruleEvalErrors, ruleCostExceeded                                      desc
	sinkQueued, sinkCapacity, sinkWritten, sinkDropped, sinkFailures      desc
	queueUsed, queueCapacity, ringUsed, ringCapacity, processes, sensorUp desc
	ndDropped, ndRefused, ndFloodBlocks, ndPayloadMatches, ndNoticesLost  desc
	ndBlocked, ndSources, ndPPS, ndBits                                   desc
}

func newCollector(snapshot func() Snapshot) *collector {
	d := func(name, help string, labels ...string) desc {
		return prometheus.NewDesc("vigil_"+name, help, labels, nil)
	}
	return &collector{
		snapshot:       snapshot,
		kernelSent:     d("kernel_events_sent_total", "Events the BPF programs put in the ring buffer, by kind.", "kind"),
		kernelLost:     d("kernel_events_lost_total", "Events lost in the kernel because the ring buffer was full, by kind.", "kind"),
		kernelFiltered: d("kernel_events_filtered_total", "Events the kernel did not send because no rule or setting needs them, by kind.", "kind"),
		received:       d("events_received_total", "Events read from the ring buffer and handled, by kind.", "kind"),
		queueDropped:   d("events_dropped_total", "Events dropped in user space because the queue to the sinks was full, by kind.", "kind"),
		decodeErrors:   d("decode_errors_total", "Ring buffer records that could not be decoded."),
		sinkErrors:     d("sink_errors_total", "Write and flush errors over all sinks."),
		alertsRaised:   d("alerts_raised_total", "Alerts raised by the rules."),
		alertsDropped:  d("alerts_dropped_total", "Alerts dropped because the alert queue was full."),
		ruleHits:       d("rule_hits_total", "Alerts raised, by rule.", "rule"),
		ruleEvalErrors: d("rule_eval_errors_total", "Rule evaluations that failed (the rule did not match), by rule.", "rule"),
		ruleCostExceeded: d("rule_cost_exceeded_total",
			"Rule evaluations stopped by the runtime cost limit (the rule did not match), by rule.", "rule"),
		sinkQueued:    d("sink_queue_depth", "Items waiting in a sink's own queue.", "sink"),
		sinkCapacity:  d("sink_queue_capacity", "Bound of a sink's own queue.", "sink"),
		sinkWritten:   d("sink_written_total", "Items a sink delivered.", "sink"),
		sinkDropped:   d("sink_dropped_total", "Items a sink dropped because its queue was full.", "sink"),
		sinkFailures:  d("sink_failures_total", "Items a sink failed to deliver.", "sink"),
		queueUsed:     d("queue_depth", "Events waiting between the ring buffer reader and the sinks."),
		queueCapacity: d("queue_capacity", "Bound of the queue between the ring buffer reader and the sinks."),
		ringUsed:      d("ring_buffer_used_bytes", "Bytes waiting in the ring buffer."),
		ringCapacity:  d("ring_buffer_size_bytes", "Size of the ring buffer."),
		processes:     d("process_cache_entries", "Processes in the process cache."),
		sensorUp:      d("sensor_up", "1 when a sensor is attached, 0 when it failed to load.", "sensor"),

		ndDropped:        d("netdefense_packets_dropped_total", "Packets network defence dropped in the kernel, by reason (intel_ingress, intel_egress, payload).", "reason"),
		ndRefused:        d("netdefense_connects_refused_total", "Connects to listed addresses the cgroup hook refused."),
		ndFloodBlocks:    d("netdefense_flood_blocks_total", "Sources the kernel blocked for exceeding the flood limits."),
		ndPayloadMatches: d("netdefense_payload_matches_total", "Packets that matched a payload rule's pattern."),
		ndNoticesLost:    d("netdefense_notices_lost_total", "Network defence notices and payload events lost because a ring or queue was full."),
		ndBlocked:        d("netdefense_blocked", "Addresses and prefixes on the block list."),
		ndSources:        d("netdefense_sources", "Sources that sent packets in the last poll interval."),
		ndPPS:            d("netdefense_packets_per_second", "Packets per second received on the enforced interfaces over the last poll interval."),
		ndBits:           d("netdefense_bytes_per_second", "Bytes per second received on the enforced interfaces over the last poll interval."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []desc{c.kernelSent, c.kernelLost, c.kernelFiltered, c.received, c.queueDropped,
		c.decodeErrors, c.sinkErrors, c.alertsRaised, c.alertsDropped, c.ruleHits,
		c.ruleEvalErrors, c.ruleCostExceeded,
		c.sinkQueued, c.sinkCapacity, c.sinkWritten, c.sinkDropped, c.sinkFailures,
		c.queueUsed, c.queueCapacity, c.ringUsed, c.ringCapacity, c.processes, c.sensorUp,
		c.ndDropped, c.ndRefused, c.ndFloodBlocks, c.ndPayloadMatches, c.ndNoticesLost,
		c.ndBlocked, c.ndSources, c.ndPPS, c.ndBits} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	counter := func(d desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, k := range s.Kinds {
		counter(c.kernelSent, k.KernelSent, k.Name)
		counter(c.kernelLost, k.KernelLost, k.Name)
		counter(c.kernelFiltered, k.KernelFiltered, k.Name)
		counter(c.received, k.Received, k.Name)
		counter(c.queueDropped, k.QueueDropped, k.Name)
	}
	counter(c.decodeErrors, s.DecodeErrors)
	counter(c.sinkErrors, s.SinkErrors)
	counter(c.alertsRaised, s.AlertsRaised)
	counter(c.alertsDropped, s.AlertsDropped)
	for rule, n := range s.RuleHits {
		counter(c.ruleHits, n, rule)
	}
	for rule, n := range s.RuleEvalErrors {
		counter(c.ruleEvalErrors, n, rule)
	}
	for rule, n := range s.RuleCostExceeded {
		counter(c.ruleCostExceeded, n, rule)
	}
	for _, st := range s.Sinks {
		gauge(c.sinkQueued, float64(st.Queued), st.Name)
		gauge(c.sinkCapacity, float64(st.Capacity), st.Name)
		counter(c.sinkWritten, st.Written, st.Name)
		counter(c.sinkDropped, st.Dropped, st.Name)
		counter(c.sinkFailures, st.Failures, st.Name)
	}
	gauge(c.queueUsed, float64(s.Queue.Used))
	gauge(c.queueCapacity, float64(s.Queue.Capacity))
	gauge(c.ringUsed, float64(s.RingBuffer.Used))
	gauge(c.ringCapacity, float64(s.RingBuffer.Capacity))
	gauge(c.processes, float64(s.Processes))
	for _, sn := range s.Sensors {
		up := 0.0
		if sn.Up {
			up = 1
		}
		gauge(c.sensorUp, up, sn.Name)
	}
	if n := s.NetDefence; n != nil {
		counter(c.ndDropped, n.IntelDropsIn, "intel_ingress")
		counter(c.ndDropped, n.IntelDropsOut, "intel_egress")
		counter(c.ndDropped, n.PayloadDrops, "payload")
		counter(c.ndRefused, n.IntelDeniedConnects)
		counter(c.ndFloodBlocks, n.FloodBlocks)
		counter(c.ndPayloadMatches, n.PayloadMatches)
		counter(c.ndNoticesLost, n.NoticesLost)
		gauge(c.ndBlocked, float64(n.Blocked))
		gauge(c.ndSources, float64(n.Sources))
		gauge(c.ndPPS, n.PPS)
		gauge(c.ndBits, n.BitsPS/8)
	}
}
