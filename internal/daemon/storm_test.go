package daemon

import (
	"fmt"
	"github.com/vigilsec/vigil/internal/testenv"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// TestStormEveryProcessAccountedFor runs 5,000 short-lived processes and
// checks that each exec and exit was either delivered or counted as lost: by
// the kernel (ring buffer full) or by the queue (sinks too slow).
func TestStormEveryProcessAccountedFor(t *testing.T) {
	n := 5000
	if testenv.InGuest() {
		n = 500 // under emulation 5,000 take most of the package's time limit
	}
	h := join(t)
	before := h.agent.Status()

	h.cg.Run(t, "bash", "-c", fmt.Sprintf("for ((i = 0; i < %d; i++)); do /bin/true; done", n))

	isTrue := func(k event.Kind) func(*event.Event) bool {
		return func(e *event.Event) bool { return e.Kind == k && e.Process.Executable == "/usr/bin/true" }
	}
	// Wait until the stream is drained: the counts stop moving.
	var execs, exits int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		e, x := h.events.count(isTrue(event.KindExec)), h.events.count(isTrue(event.KindExit))
		if e == execs && x == exits && e > 0 && h.agent.reader.Pending() == 0 && len(h.agent.queue) == 0 {
			break
		}
		execs, exits = e, x
		time.Sleep(200 * time.Millisecond)
	}
	after := h.agent.Status()

	lost := func(kind string) (kernel, queue uint64) {
		for i, k := range after.Events {
			if k.Kind == kind {
				return k.KernelLost - before.Events[i].KernelLost, k.QueueDropped - before.Events[i].QueueDropped
			}
		}
		t.Fatalf("no counters for %s", kind)
		return 0, 0
	}
	for _, c := range []struct {
		kind string
		seen int
	}{{"exec", execs}, {"exit", exits}} {
		kl, ql := lost(c.kind)
		t.Logf("%s: %d delivered, %d lost in the kernel, %d dropped from the queue", c.kind, c.seen, kl, ql)
		// Losses are counted globally, so other processes' losses may be in
		// them too: delivered + lost covers every process, never less.
		if uint64(c.seen)+kl+ql < uint64(n) {
			t.Errorf("%s: %d delivered + %d + %d lost < %d: events vanished without being counted", c.kind, c.seen, kl, ql, n)
		}
		if c.seen > n {
			t.Errorf("%s: %d delivered for %d processes", c.kind, c.seen, n)
		}
	}
	// What the kernel sent, user space handled. The host keeps running while
	// the counters are read, so allow for records still in flight.
	const inFlight = 100
	for _, k := range after.Events {
		handled := k.Received + dupsFor(k.Kind, after) + after.DecodeErrors
		if k.KernelSent > handled+inFlight || handled > k.KernelSent+inFlight {
			t.Errorf("%s: kernel sent %d, user space handled %d", k.Kind, k.KernelSent, handled)
		}
	}
}

func dupsFor(kind string, st Status) uint64 {
	if kind == "exit" {
		return st.DuplicateExits
	}
	return 0
}
