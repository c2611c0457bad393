package daemon

import (
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

// A program that changes BPF maps all the time raises one agent-bpf-modified
// alert per process and command, not one per call.
func TestBPFChangesAlertOncePerProcessAndCommand(t *testing.T) {
	a := &Agent{alerts: make(chan *event.Event, 16)}
	bpf := func(entity, cmd string) *event.Event {
		return &event.Event{Kind: event.KindKernel, Process: event.Process{EntityID: entity, Executable: "/usr/bin/tool"},
			Kernel: &event.Kernel{Op: event.KernelBPF, ArgName: cmd}}
	}
	for range 100 {
		a.checkTamper(bpf("p1", "BPF_MAP_UPDATE_ELEM"))
	}
	a.checkTamper(bpf("p1", "BPF_LINK_DETACH"))
	a.checkTamper(bpf("p2", "BPF_MAP_UPDATE_ELEM"))
	a.checkTamper(bpf("p2", "BPF_MAP_LOOKUP_ELEM")) // reads are not tampering
	if n := len(a.alerts); n != 3 {
		t.Errorf("%d alerts, want 3: p1 update, p1 link detach, p2 update", n)
	}
	if n := a.bpfRepeats.Load(); n != 99 {
		t.Errorf("%d repeats counted, want 99", n)
	}
}
