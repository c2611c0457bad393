package proc

import (
	"slices"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

func TestDescendants(t *testing.T) {
	h := newHarness(t, nil)
	// 10 -> 11 -> 12, 10 -> 13 (exited), 13 -> 14; 20 unrelated.
	for _, p := range []event.Process{proc(10, 1, 1, 0), proc(11, 2, 10, 1), proc(12, 3, 11, 2),
		proc(13, 4, 10, 1), proc(14, 5, 13, 4), proc(20, 6, 1, 0)} {
		h.c.Fork(&p)
	}
	p13 := proc(13, 4, 10, 1)
	h.c.Exit(&p13, event.ExitStatus{})
	var got []uint32
	for _, p := range h.c.Descendants(KeyOf(10, 1*NsPerTick)) {
		got = append(got, p.PID)
	}
	slices.Sort(got)
	if want := []uint32{11, 12, 14}; !slices.Equal(got, want) {
		t.Errorf("descendants of 10: %v, want %v (13 exited, 14 is still its child)", got, want)
	}
	if d := h.c.Descendants(KeyOf(20, 6*NsPerTick)); len(d) != 0 {
		t.Errorf("descendants of 20: %v", d)
	}
}
