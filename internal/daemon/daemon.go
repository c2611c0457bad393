// Package daemon is Vigil's composition root: it wires the kernel sensors to
// the process cache, and the enriched events to the sinks.
//
//	ring buffer -> decode -> process cache (update, enrich) -> queue -> sinks
//
// The reader goroutine never blocks: the process cache is updated in line, so
// process lifecycle is never lost to a full queue, and events that do not fit
// in the queue are dropped and counted per kind.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/netdef"
	"github.com/vigilsec/vigil/internal/proc"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/file"
	"github.com/vigilsec/vigil/internal/sensor/process"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/jsonl"
)

// numTypes bounds the per-type counters.
const numTypes = sensor.TypeMax

// Agent is a running Vigil.
type Agent struct {
	cfg   config.Config
	log   *slog.Logger
	host  event.Host
	clock sensor.Clock
	cache *proc.Cache
	ctrs  *containers // container attribution and resources; nil when off
	sinks []sink.Sink

	shared       *sensor.Shared
	sensors      []attached
	sensorErrors []SensorStatus // sensors that failed to load
	decoders     [numTypes]decoder
	reader       *sensor.Reader

	queue  chan *event.Event
	alerts chan *event.Event // written before queued events
	rules  atomic.Pointer[rules.Set]
	// ruleFailures keeps the evaluation errors and cost-limit stops of the
	// rule sets that reloads replaced, so the counts never go back.
	ruleFailures ruleFailures
	// fileSensor is kept to add the rules' watches to its interest set.
	fileSensor *file.Sensor
	learned    *learned     // nil unless anomaly detection is on
	ransom     *ransomState // nil unless the ransomware detector is on (ransom.go)
	fim        *fimLive     // nil unless live integrity checks are on (fim.go)
	// procSensor and resp carry out the rules' responses (respond.go).
	procSensor *process.Sensor
	resp       *responders
	sbx        *sandboxes       // sandbox profiles (sandbox.go); nil when none
	kernel     kernelcap.Report // what this kernel offers; the mechanism per job
	netdef     *netdef.Defender // nil when network defence is off (netdef.go)
	payload    payloadRules     // payload rules (netdef.go)
	reloadMu   sync.Mutex       // one Reload at a time
	started    time.Time
	ready      chan struct{} // closed once Run reads the ring

	received     [numTypes]atomic.Uint64 // decoded and handled
	dropped      [numTypes]atomic.Uint64 // queue full
	kindOff      [numTypes]atomic.Bool   // the kernel filter is off for the type
	decodeErrors atomic.Uint64
	duplicates   atomic.Uint64 // second exit report of one process
	sinkErrors   atomic.Uint64
	written      atomic.Uint64
	// writtenKind counts what reached the sinks by event.Kind, so that each
	// kind's counters add up: received = written + queue dropped.
	writtenKind [event.KindResponse + 1]atomic.Uint64
	final       atomic.Pointer[Status] // the counters once Run has drained everything
	protected   []string               // files whose changes are tampering (tamper.go)
	bpfSeen     map[string]bool        // process/bpf command pairs alerted (tamper.go; reader goroutine)
	bpfRepeats  atomic.Uint64          // bpf() changes not alerted again

	alertsRaised   atomic.Uint64
	alertsDropped  atomic.Uint64 // alert queue full
	reloads        atomic.Uint64
	reloadFailures atomic.Uint64

	rate      atomic.Uint64 // events/s over the last sample, as float64 bits
	closeOnce sync.Once

	out outputs // store, web page, metrics: outputs.go
}

// New checks the machine, opens the configured output, and loads and attaches
// the sensors. Nothing is read until Run. Extra sinks receive every event too;
// the agent closes them.
func New(cfg config.Config, log *slog.Logger, sinks ...sink.Sink) (*Agent, error) {
	if err := sensor.Preflight(cfg.Paths.BTF); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:    cfg,
		log:    log,
		host:   hostInfo(cfg.Paths.Procfs),
		clock:  sensor.NewClock(),
		sinks:  sinks,
		queue:  make(chan *event.Event, cfg.Queue.Size),
		alerts: make(chan *event.Event, 4096),
		ready:  make(chan struct{}),
	}
	// Rules first: a rule set with errors stops the agent before anything
	// is attached, with the file, line and column of each problem.
	set, err := a.loadRules()
	if err != nil {
		return nil, err
	}
	a.rules.Store(set)
	a.kernel = probeKernel(log)
	out, err := jsonl.Open(cfg.Output, &a.host)
	if err != nil {
		return nil, err
	}
	a.sinks = append([]sink.Sink{out}, sinks...)
	configured, err := OpenSinks(cfg, &a.host, log)
	if err != nil {
		out.Close()
		return nil, err
	}
	a.sinks = append(a.sinks, configured...)
	if cfg.Record != "" {
		rec, err := openRecording(cfg.Record)
		if err != nil {
			for _, s := range a.sinks {
				s.Close()
			}
			return nil, err
		}
		a.sinks = append(a.sinks, rec)
	}
	if err := a.openStore(); err != nil {
		for _, s := range a.sinks {
			s.Close()
		}
		return nil, err
	}
	a.cache = proc.New(proc.Config{
		BootID:     a.host.BootID,
		BootTime:   a.clock.Boot(),
		ProcRoot:   cfg.Paths.Procfs,
		CgroupRoot: cfg.Paths.Cgroupfs,
		MaxEntries: cfg.Process.MaxEntries,
		ExitGrace:  cfg.Process.ExitGrace.D(),
	})
	a.ctrs = newContainers(cfg, log)

	if err := a.attach(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.setupResponse(set); err != nil {
		a.Close()
		return nil, err
	}
	if a.sbx, err = a.newSandboxes(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.setupNetDefense(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.setupFIM(); err != nil {
		log.Warn("live file integrity checks off", "err", err)
	}
	a.protectDefaults()
	names := make([]string, len(a.sensors))
	for i, s := range a.sensors {
		names[i] = s.name
	}
	log.Info("sensors attached", "sensors", names, "ring_buffer_mib", cfg.Kernel.RingBufferMiB, "kernel", a.host.Kernel)
	return a, nil
}

// Ready is closed once Run has filled the process cache and reads events.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// AddSink adds an output. Call it before Run.
func (a *Agent) AddSink(s sink.Sink) { a.sinks = append(a.sinks, s) }

// Run reads events until ctx is done, then detaches everything and flushes the
// sinks. Processes that exist before Run are learned from /proc first.
func (a *Agent) Run(ctx context.Context) error {
	defer a.Close()
	a.started = time.Now()

	// The sensors are attached: a process that starts now is seen by them,
	// one that started before is in /proc. Scan before reading, so events
	// about pre-existing processes find them in the cache.
	n, err := a.cache.ScanProcfs()
	if err != nil {
		a.log.Warn("procfs scan incomplete", "err", err)
	}
	a.log.Info("process cache filled from procfs", "processes", n)
	a.selectExisting()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.writeLoop() }()
	go func() { defer wg.Done(); a.housekeeping(ctx) }()
	if a.cfg.Rules.Watch {
		wg.Add(1)
		go func() { defer wg.Done(); a.watchRuleDirs(ctx) }()
	}

	var statusErr error
	if a.cfg.StatusSocket != "" {
		srv, err := listenStatus(a.cfg.StatusSocket, a.Status)
		if err != nil {
			statusErr = err
			a.log.Warn("status socket unavailable", "err", err)
		} else {
			defer srv.Close()
			go srv.Serve()
		}
	}

	stopSampler := a.ctrs.start(ctx, a.emitAlert)
	stopHTTP := a.serveHTTP()
	defer stopHTTP()
	stopResponse := a.startResponse(ctx)
	stopSandboxes := a.sbx.start(ctx, a.ctrs.list)
	stopNetDefense := a.startNetDefense(ctx)
	stopFIM := a.startFIM(ctx)

	close(a.ready)
	err = a.reader.Run(ctx, a.handle)
	stopSampler()  // it emits alerts: stop it before they are closed
	stopResponse() // the Denier sends to alerts too
	stopSandboxes()
	stopNetDefense()
	stopFIM()
	// Detach, then read what the programs sent up to the moment they were
	// detached: the final counters account for every record the kernel
	// counted as sent (hardening.md).
	if derr := a.closeSensors(); derr != nil {
		a.log.Warn("detach sensors", "err", derr)
	}
	if derr := a.reader.Drain(a.handle); derr != nil && err == nil {
		err = derr
	}
	close(a.queue) // the reader is the only sender to both
	close(a.alerts)
	wg.Wait()
	final := a.Status()
	a.final.Store(&final)
	a.logCounters("final counters")
	if err == nil && statusErr != nil && ctx.Err() == nil {
		err = statusErr
	}
	return err
}

// handle runs on the reader goroutine for every record.
func (a *Agent) handle(rec []byte) {
	h, err := sensor.ParseHeader(rec)
	if err != nil || h.Type == 0 || h.Type >= numTypes {
		a.decodeErrors.Add(1)
		return
	}
	if h.Type == sensor.TypeSyscalls {
		a.handleSyscalls(rec) // detector input, not an event
		return
	}
	if h.Type == sensor.TypeWrite {
		a.handleWrite(rec) // detector input, not an event
		return
	}
	decode := a.decoders[h.Type]
	if decode == nil {
		a.decodeErrors.Add(1)
		return
	}
	e := new(event.Event)
	if err := decode(rec, a.clock, e); err != nil {
		a.decodeErrors.Add(1)
		return
	}
	switch h.Type {
	case sensor.TypeExec:
		a.cache.Exec(&e.Process)
	case sensor.TypeFork:
		a.cache.Fork(&e.Process)
	case sensor.TypeExit:
		if !a.cache.Exit(&e.Process, *e.Exit) {
			a.duplicates.Add(1)
			return
		}
	default:
		// The kernel knows the task, not the program it runs: fill that in.
		a.cache.Complete(&e.Process)
	}
	a.received[h.Type].Add(1)
	a.cache.Enrich(e, a.cfg.Process.AncestryDepth)
	a.ctrs.enrich(e, a.emitAlert)
	a.sbx.observe(e)
	a.netDefenseEvent(e)
	if a.learned != nil {
		a.anomalyEvent(e)
	}
	a.checkTamper(e)
	a.evalRules(e)
	a.fimEvent(e)
	select {
	case a.queue <- e:
	default:
		a.dropped[h.Type].Add(1)
	}
}

// writeLoop feeds the sinks until both queues are closed and drained.
// Alerts go first.
func (a *Agent) writeLoop() {
	queue, alerts := a.queue, a.alerts
	for queue != nil || alerts != nil {
		var e *event.Event
		var ok bool
		select {
		case e, ok = <-alerts:
			if !ok {
				alerts = nil
				continue
			}
		default:
			select {
			case e, ok = <-alerts:
				if !ok {
					alerts = nil
					continue
				}
			case e, ok = <-queue:
				if !ok {
					queue = nil
					continue
				}
			}
		}
		a.write(e)
		if len(a.queue) == 0 && len(a.alerts) == 0 {
			a.flush()
		}
	}
	a.flush()
}

func (a *Agent) write(e *event.Event) {
	for _, s := range a.sinks {
		if err := s.Write(e); err != nil {
			a.sinkError(err)
		}
	}
	a.written.Add(1)
	if int(e.Kind) < len(a.writtenKind) {
		a.writtenKind[e.Kind].Add(1)
	}
}

func (a *Agent) flush() {
	for _, s := range a.sinks {
		if err := s.Flush(); err != nil {
			a.sinkError(err)
		}
	}
}

func (a *Agent) sinkError(err error) {
	// Log the first error and then every thousandth, not one per event.
	if n := a.sinkErrors.Add(1); n == 1 || n%1000 == 0 {
		a.log.Error("sink write failed", "err", err, "failures", n)
	}
}

// housekeeping sweeps the process cache, samples the event rate and logs the
// counters now and then.
func (a *Agent) housekeeping(ctx context.Context) {
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	var logC <-chan time.Time
	if d := a.cfg.StatsInterval.D(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		logC = t.C
	}
	last, lastAt := a.totalReceived(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sweep.C:
			a.cache.Sweep()
			cur := a.totalReceived()
			a.setRate(float64(cur-last) / now.Sub(lastAt).Seconds())
			last, lastAt = cur, now
		case <-logC:
			a.logCounters("counters")
		}
	}
}

func (a *Agent) totalReceived() uint64 {
	var n uint64
	for i := range a.received {
		n += a.received[i].Load()
	}
	return n
}

func (a *Agent) logCounters(msg string) {
	st := a.Status()
	attrs := []any{"uptime", time.Duration(st.UptimeSeconds * float64(time.Second)).Round(time.Second)}
	for _, k := range st.Events {
		attrs = append(attrs, slog.Group(k.Kind, "kernel_sent", k.KernelSent, "kernel_lost", k.KernelLost,
			"kernel_filtered", k.KernelFiltered, "received", k.Received, "queue_dropped", k.QueueDropped))
	}
	attrs = append(attrs, "decode_errors", st.DecodeErrors, "sink_errors", st.SinkErrors,
		"processes", st.ProcessCache.Entries())
	a.log.Info(msg, attrs...)
}

// Close detaches the sensors and closes the sinks. Run calls it; it is safe
// to call more than once, and needed only when Run is never called.
func (a *Agent) Close() error {
	var errs []error
	a.closeOnce.Do(func() {
		if a.reader != nil {
			errs = append(errs, a.reader.Close())
		}
		errs = append(errs, a.closeNetDefense())
		errs = append(errs, a.closeResponse())
		errs = append(errs, a.sbx.close())
		errs = append(errs, a.closeSensors())
		errs = append(errs, a.shared.Close())
		errs = append(errs, a.ctrs.close())
		for _, s := range a.sinks {
			errs = append(errs, s.Close())
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}
