package daemon

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// vigilPrograms lists the ids of loaded BPF programs whose names carry
// Vigil's prefix.
func vigilPrograms(t *testing.T) map[ebpf.ProgramID]string {
	t.Helper()
	ids := map[ebpf.ProgramID]string{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids
		}
		if err != nil {
			t.Fatal(err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil && strings.HasPrefix(info.Name, "vigil_") {
			ids[id] = info.Name
		}
		p.Close()
	}
}

func TestStopDetachesEverything(t *testing.T) {
	before := vigilPrograms(t)
	h := start(t)
	during := vigilPrograms(t)
	ours := map[ebpf.ProgramID]string{}
	for id, name := range during {
		if _, ok := before[id]; !ok {
			ours[id] = name
		}
	}
	if !slices.Contains(slices.Collect(maps.Values(ours)), "vigil_exec") {
		t.Fatalf("agent loaded %v, want vigil_exec among them", ours)
	}
	h.stop(t)
	// The kernel frees a detached program after an RCU grace period.
	var after map[ebpf.ProgramID]string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		after = vigilPrograms(t)
		if !anyOf(ours, after) || time.Now().After(deadline) {
			break
		}
	}
	for id, name := range ours {
		if _, ok := after[id]; ok {
			t.Errorf("program %s (id %d) is still loaded after the agent stopped", name, id)
		}
	}
	if _, err := os.Stat(h.agent.cfg.StatusSocket); !os.IsNotExist(err) {
		t.Errorf("status socket left behind: %v", err)
	}
}

func anyOf(ids, in map[ebpf.ProgramID]string) bool {
	for id := range ids {
		if _, ok := in[id]; ok {
			return true
		}
	}
	return false
}
