package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/file"
	"github.com/vigilsec/vigil/internal/testenv"
	"github.com/vigilsec/vigil/test/storm"
)

// stormTrigger is one storm worker (test/storm) in the test's cgroup: it
// prints its counts as JSON.
func stormTrigger(name string) error {
	d, err := time.ParseDuration(os.Getenv("VIGIL_STORM_DURATION"))
	if err != nil {
		return err
	}
	c, err := storm.Run(strings.TrimPrefix(name, "storm-"), os.Getenv("VIGIL_STORM_DIR"), d)
	json.NewEncoder(os.Stdout).Encode(c)
	return err
}

// stormCounter is a sink that counts, per kind, the events the workers'
// activity made, without keeping them (a storm is millions of events).
type stormCounter struct {
	cgroup  uint64
	dir     string
	mu      sync.Mutex
	execers map[uint32]bool // pids of the exec workers
	n       map[event.Kind]*atomic.Uint64
	others  []string
}

func (c *stormCounter) Write(e *event.Event) error {
	if e.Process.CgroupID != c.cgroup {
		return nil
	}
	match := false
	switch e.Kind {
	case event.KindFile:
		match = strings.HasPrefix(e.File.Path, c.dir+"/storm-")
	case event.KindNet:
		match = e.Net.Op == event.NetConnect && e.Net.Destination.Port() == 9
	case event.KindFork, event.KindExec, event.KindExit:
		// A child of an exec worker: /bin/true (forks carry the parent's
		// program until the exec).
		c.mu.Lock()
		match = c.execers[e.Process.PPID]
		c.mu.Unlock()
	}
	if match {
		c.n[e.Kind].Add(1)
	} else if e.Kind == event.KindFile || e.Kind == event.KindNet {
		// Not the workers' doing: would spoil the exact sums below.
		c.mu.Lock()
		if len(c.others) < 10 {
			c.others = append(c.others, fmt.Sprintf("%v %s %+v %+v", e.Kind, e.Process.Executable, e.File, e.Net))
		}
		c.mu.Unlock()
	}
	return nil
}
func (c *stormCounter) Flush() error { return nil }
func (c *stormCounter) Close() error { return nil }

// TestStormCountersAddUp runs an event storm (tight open, connect and exec
// loops) through an agent with the built-in rules, a small ring buffer and
// a small queue, so that both stages drop, and checks that nothing vanishes
// uncounted: the events the workers made (counted by the workers) equal
// those delivered to the sinks plus those counted as lost in the kernel or
// dropped from the queue. The file and net kinds are scoped to the test's
// cgroup, so their sums are exact; process lifecycle cannot be scoped (the
// cache needs every process), so for exec, fork and exit other processes'
// losses may be in the drop counters too, and the check is >=. Within the
// agent, every kind's counters add up exactly once it has stopped.
// bench/storm.sh is the minute-long version, with the figures.
func TestStormCountersAddUp(t *testing.T) {
	testenv.RequirePrivileged(t)
	const d = 4 * time.Second
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.Kernel.RingBufferMiB = 1
	cfg.Queue.Size = 1024
	cfg.Sensors.File.WatchWrites = append(append([]string{}, file.DefaultWatchedWrites...), dir)
	cg := testenv.NewCgroup(t)
	counter := &stormCounter{cgroup: cg.ID, dir: dir, execers: map[uint32]bool{}, n: map[event.Kind]*atomic.Uint64{}}
	for _, k := range []event.Kind{event.KindExec, event.KindFork, event.KindExit, event.KindFile, event.KindNet} {
		counter.n[k] = new(atomic.Uint64)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), counter)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()
	// Only the test's cgroup sends file and net events.
	if err := a.shared.MarkCgroup(cg.ID, sensor.Include); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []uint16{sensor.TypeFile, sensor.TypeNet} {
		f, err := a.shared.Kind(typ)
		if err != nil {
			t.Fatal(err)
		}
		f.CgroupScope = sensor.ScopeIncluded
		if err := a.shared.SetKind(typ, f); err != nil {
			t.Fatal(err)
		}
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type worker struct {
		out  strings.Builder
		done chan error
	}
	var workers []*worker
	for _, kind := range []string{"open", "open", "connect", "exec"} {
		w := &worker{done: make(chan error, 1)}
		cmd := cg.Command(self)
		cmd.Env = append(os.Environ(), "VIGIL_TRIGGER=storm-"+kind, "VIGIL_STORM_DIR="+dir, "VIGIL_STORM_DURATION="+d.String())
		cmd.Stdout, cmd.Stderr = &w.out, &w.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kind == "exec" {
			counter.mu.Lock()
			counter.execers[uint32(cmd.Process.Pid)] = true
			counter.mu.Unlock()
		}
		go func() { w.done <- cmd.Wait() }()
		workers = append(workers, w)
	}
	// The agent answers `vigil status` throughout.
	var slowest time.Duration
	for running := true; running; {
		begin := time.Now()
		if _, err := QueryStatus(cfg.StatusSocket); err != nil {
			t.Errorf("status during the storm: %v", err)
		}
		slowest = max(slowest, time.Since(begin))
		time.Sleep(250 * time.Millisecond)
		running = false
		for _, w := range workers {
			if len(w.done) == 0 {
				running = true
			}
		}
	}
	produced := map[string]uint64{}
	for _, w := range workers {
		if err := <-w.done; err != nil {
			t.Fatalf("storm worker: %v: %s", err, w.out.String())
		}
		var c storm.Counts
		if err := json.Unmarshal([]byte(w.out.String()), &c); err != nil {
			t.Fatalf("storm worker output %q: %v", w.out.String(), err)
		}
		for k, n := range c.Events() {
			produced[k] += n
		}
	}

	cancel() // detach, drain, write everything: then the counters are final
	if err := <-done; err != nil {
		t.Errorf("agent: %v", err)
	}
	done <- nil // for the deferred receive
	st := a.FinalStatus()
	if st == nil {
		t.Fatal("no final status after Run returned")
	}
	t.Logf("status answered within %v during the storm", slowest.Round(time.Millisecond))

	// Within the agent: every record sent is received, every one received
	// written or dropped.
	if st.DecodeErrors != 0 {
		t.Errorf("%d records failed to decode", st.DecodeErrors)
	}
	for _, k := range st.Events {
		dups := uint64(0)
		if k.Kind == "exit" {
			dups = st.DuplicateExits
		}
		if k.KernelSent != k.Received+dups {
			t.Errorf("%s: kernel sent %d, user space received %d (+%d duplicate exits)", k.Kind, k.KernelSent, k.Received, dups)
		}
		// Syscall batches and sampled writes are detectors' input (anomaly,
		// ransomware): received is where they end, not written as events.
		if k.DetectorInput != (k.Kind == "syscalls" || k.Kind == "write") {
			t.Errorf("%s: detector input %v", k.Kind, k.DetectorInput)
		}
		if k.DetectorInput {
			if k.Written != 0 {
				t.Errorf("%s: written %d, but detector input is never written", k.Kind, k.Written)
			}
			continue
		}
		if k.Received != k.Written+k.QueueDropped {
			t.Errorf("%s: received %d != written %d + queue dropped %d", k.Kind, k.Received, k.Written, k.QueueDropped)
		}
	}
	if r := st.Rules; r.AlertsRaised != r.AlertsWritten+r.AlertsDropped {
		t.Errorf("alerts: raised %d != written %d + dropped %d", r.AlertsRaised, r.AlertsWritten, r.AlertsDropped)
	}

	// Against the workers' own count.
	var total uint64
	for _, k := range st.Events {
		want, ok := produced[k.Kind]
		if !ok {
			continue
		}
		kind := map[string]event.Kind{"exec": event.KindExec, "fork": event.KindFork, "exit": event.KindExit,
			"file": event.KindFile, "net": event.KindNet}[k.Kind]
		got := counter.n[kind].Load()
		total += want
		t.Logf("%-5s produced %8d  delivered %8d  kernel lost %7d  queue dropped %7d", k.Kind, want, got, k.KernelLost, k.QueueDropped)
		if got > want {
			t.Errorf("%s: %d delivered for %d produced", k.Kind, got, want)
		}
		if got == 0 {
			t.Errorf("%s: none of %d delivered", k.Kind, want)
		}
		// Load shedding (bpf/lib/output.h) keeps the last quarter of the
		// ring for process lifecycle: the file and net storm is refused
		// first.
		if (kind == event.KindExec || kind == event.KindFork || kind == event.KindExit) && k.KernelLost != 0 {
			t.Errorf("%s: %d lost in the kernel: lifecycle must not be crowded out of the ring", k.Kind, k.KernelLost)
		}
		accounted := got + k.KernelLost + k.QueueDropped
		switch k.Kind {
		case "file", "net":
			if accounted != want {
				t.Errorf("%s: produced %d != delivered %d + kernel lost %d + queue dropped %d", k.Kind, want, got, k.KernelLost, k.QueueDropped)
			}
		default:
			if accounted < want {
				t.Errorf("%s: produced %d > delivered %d + kernel lost %d + queue dropped %d: %d vanished uncounted",
					k.Kind, want, got, k.KernelLost, k.QueueDropped, want-accounted)
			}
		}
	}
	if len(counter.others) > 0 {
		t.Logf("other file and net events in the cgroup: %q", counter.others)
	}
	t.Logf("%d events in %v: %.0f/s offered", total, d, float64(total)/d.Seconds())
}
