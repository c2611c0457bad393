package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/detect/anomaly"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/netdef"
	"github.com/vigilsec/vigil/internal/proc"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/version"
)

// Status is what `vigil status` shows: the agent's health and its counters.
type Status struct {
	Version         string                  `json:"version"`
	PID             int                     `json:"pid"`
	Started         time.Time               `json:"started"`
	UptimeSeconds   float64                 `json:"uptime_seconds"`
	Sensors         []SensorStatus          `json:"sensors"`
	EventsPerSecond float64                 `json:"events_per_second"`
	Events          []KindCounts            `json:"events"`
	DecodeErrors    uint64                  `json:"decode_errors"`
	DuplicateExits  uint64                  `json:"duplicate_exits"`
	Written         uint64                  `json:"written"`
	SinkErrors      uint64                  `json:"sink_errors"`
	Queue           Gauge                   `json:"queue"`
	RingBuffer      Gauge                   `json:"ring_buffer_bytes"`
	ProcessCache    proc.Stats              `json:"process_cache"`
	Rules           RuleStatus              `json:"rules"`
	Anomaly         []anomaly.ProfileStatus `json:"anomaly,omitempty"`
	KernelError     string                  `json:"kernel_error,omitempty"`

	// Kernel is what the kernel offers, probed at start-up, and the
	// mechanism picked for each job.
	Kernel kernelcap.Report `json:"kernel"`
	// Network is the network enforcement: block-ip, isolate-host, deny
	// on connects and binds, network defence.
	Network *NetworkStatus `json:"network,omitempty"`
}

// SensorStatus says which kernel hooks a sensor holds, or why it is not running.
type SensorStatus struct {
	Name    string   `json:"name"`
	Hooks   []string `json:"hooks,omitempty"`
	Missing []string `json:"missing,omitempty"` // hooks this kernel lacks
	Error   string   `json:"error,omitempty"`
}

// KindCounts accounts for one kind of event from the kernel to the sinks:
// KernelSent = Received + still in the ring (+ DuplicateExits for exit, +
// records that failed to decode); KernelLost never reached user space;
// Received = Written + QueueDropped + still in the queue. Once Run has
// returned (FinalStatus) nothing is in flight and the sums are exact.
type KindCounts struct {
	Kind string `json:"kind"`
	// Off: the kernel sends none of these (the sensor is off, or on auto
	// and no loaded rule is on the kind).
	Off            bool   `json:"off,omitempty"`
	KernelSent     uint64 `json:"kernel_sent"`
	KernelLost     uint64 `json:"kernel_lost"`
	KernelFiltered uint64 `json:"kernel_filtered"` // not sent: no rule needs them
	Received       uint64 `json:"received"`
	QueueDropped   uint64 `json:"queue_dropped"`
	Written        uint64 `json:"written"` // handed to every sink
	// DetectorInput: records a detector consumes (syscall sequences, write
	// samples), never written as events; Received is where they end.
	DetectorInput bool `json:"detector_input,omitempty"`
}

// RuleStatus is the detection side of the agent.
type RuleStatus struct {
	Loaded         int    `json:"loaded"`
	Enabled        int    `json:"enabled"`
	AlertsRaised   uint64 `json:"alerts_raised"`
	AlertsDropped  uint64 `json:"alerts_dropped"` // alert queue full
	AlertsWritten  uint64 `json:"alerts_written"` // raised = written + dropped + queued
	Reloads        uint64 `json:"reloads"`
	ReloadFailures uint64 `json:"reload_failures"`
	// EvalErrors counts, by rule id, the evaluations that failed (an index
	// out of range, say): the rule did not match. CostExceeded counts the
	// evaluations stopped by the runtime cost limit, which did not match
	// either. Both are since the agent started, over reloads; rules with
	// none are left out.
	EvalErrors   map[string]uint64 `json:"eval_errors,omitempty"`
	CostExceeded map[string]uint64 `json:"cost_exceeded,omitempty"`
}

// NetworkStatus says whether network enforcement is attached, and where.
type NetworkStatus struct {
	Attached bool              `json:"attached"`
	Error    string            `json:"error,omitempty"`   // why it is not
	XDP      map[string]string `json:"xdp,omitempty"`     // interface -> native, generic (XDP) or tcx
	Skipped  map[string]string `json:"skipped,omitempty"` // interface -> why it was left alone
	// Defence is network defence (floods, scans, threat intelligence,
	// payload rules); nil when it is off.
	Defence *netdef.Status `json:"defence,omitempty"`
}

// Gauge is a current level against its capacity.
type Gauge struct {
	Used     int `json:"used"`
	Capacity int `json:"capacity"`
}

// Status is a snapshot of the agent's counters. It is safe to call at any time.
func (a *Agent) Status() Status {
	st := Status{
		Version:         version.String(),
		PID:             os.Getpid(),
		Started:         a.started,
		EventsPerSecond: math.Float64frombits(a.rate.Load()),
		DecodeErrors:    a.decodeErrors.Load(),
		DuplicateExits:  a.duplicates.Load(),
		Written:         a.written.Load(),
		SinkErrors:      a.sinkErrors.Load(),
		Queue:           Gauge{Used: len(a.queue), Capacity: cap(a.queue)},
		RingBuffer:      Gauge{Used: a.reader.Pending(), Capacity: int(a.shared.Events.MaxEntries())},
		ProcessCache:    a.cache.Stats(),
	}
	st.Anomaly = a.AnomalyStatus()
	if rs := a.resp; rs != nil {
		switch {
		case rs.guard != nil:
			st.Network = &NetworkStatus{Attached: true, XDP: rs.guard.XDPModes(), Skipped: rs.guard.Skipped()}
			if a.netdef != nil {
				d := a.netdef.Status()
				d.PayloadEventsDropped = a.payload.dropped.Load()
				st.Network.Defence = &d
			}
		case rs.guardErr != nil:
			st.Network = &NetworkStatus{Error: rs.guardErr.Error()}
		}
	}
	st.Kernel = a.kernel
	st.Rules = RuleStatus{AlertsRaised: a.alertsRaised.Load(), AlertsDropped: a.alertsDropped.Load(),
		AlertsWritten: a.writtenKind[event.KindAlert].Load(),
		Reloads:       a.reloads.Load(), ReloadFailures: a.reloadFailures.Load()}
	st.Rules.EvalErrors, st.Rules.CostExceeded = a.ruleFailures.get(a.rules.Load())
	if set := a.rules.Load(); set != nil {
		for _, r := range set.Rules() {
			st.Rules.Loaded++
			if r.Enabled {
				st.Rules.Enabled++
			}
		}
	}
	for _, s := range a.sensors {
		st.Sensors = append(st.Sensors, SensorStatus{Name: s.name, Hooks: s.hooks, Missing: s.missing})
	}
	st.Sensors = append(st.Sensors, a.sensorErrors...)
	if !a.started.IsZero() {
		st.UptimeSeconds = time.Since(a.started).Seconds()
	}
	kc, err := a.shared.KernelCounts()
	if err != nil {
		st.KernelError = err.Error()
	}
	for t := uint16(1); t < numTypes; t++ {
		st.Events = append(st.Events, KindCounts{
			Kind:           sensor.TypeName(t),
			Off:            a.kindOff[t].Load(),
			KernelSent:     kc[t].Sent,
			KernelLost:     kc[t].Lost,
			KernelFiltered: kc[t].Filtered,
			Received:       a.received[t].Load(),
			QueueDropped:   a.dropped[t].Load(),
		})
		if k := &st.Events[len(st.Events)-1]; t <= sensor.TypeKernel {
			k.Written = a.writtenKind[t].Load() // record types 1-7 are event kinds 1-7
		} else {
			k.DetectorInput = true // syscall sequences, write samples
		}
	}
	return st
}

// FinalStatus is the agent's counters after Run returned: the sensors
// detached, the ring buffer and the queues drained, nothing in flight. Nil
// before then.
func (a *Agent) FinalStatus() *Status { return a.final.Load() }

func (a *Agent) setRate(r float64) { a.rate.Store(math.Float64bits(r)) }

// statusServer answers every connection on a root-only unix socket with one
// JSON Status.
type statusServer struct {
	ln     *net.UnixListener
	path   string
	status func() Status
}

func listenStatus(path string, status func() Status) (*statusServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// A socket left by an agent that died is stale; a live one is a conflict.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("status socket %s: another vigil is running", path)
	}
	os.Remove(path)
	old := unix.Umask(0o077)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	return &statusServer{ln: ln, path: path, status: status}, nil
}

func (s *statusServer) Serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		go s.answer(c)
	}
}

func (s *statusServer) answer(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if !peerIsRoot(c) {
		return
	}
	json.NewEncoder(c).Encode(s.status())
}

// peerIsRoot checks the connecting process's credentials: the file mode
// already keeps others out; this holds even if the mode is changed.
func peerIsRoot(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return cerr == nil && cred != nil && cred.Uid == 0
}

func (s *statusServer) Close() error { return s.ln.Close() }

// QueryStatus asks the agent listening on path for its Status.
func QueryStatus(path string) (Status, error) {
	var st Status
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return st, fmt.Errorf("no vigil agent is running (nothing listens on %s)", path)
		}
		if errors.Is(err, os.ErrPermission) {
			return st, fmt.Errorf("%s: permission denied: vigil status needs root", path)
		}
		return st, fmt.Errorf("status: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewDecoder(c).Decode(&st); err != nil {
		return st, fmt.Errorf("status from %s: %w", path, err)
	}
	return st, nil
}
