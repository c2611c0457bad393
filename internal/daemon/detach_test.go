package daemon

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
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

// heldPrograms lists the ids of the BPF programs this process holds a
// descriptor of: those this test binary's agents loaded, and no other
// process's (other agents may be loading the same programs meanwhile).
func heldPrograms(t *testing.T) map[ebpf.ProgramID]bool {
	t.Helper()
	held := map[ebpf.ProgramID]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || l != "anon_inode:bpf-prog" {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					held[ebpf.ProgramID(id)] = true
				}
			}
		}
	}
	return held
}

func TestStopDetachesEverything(t *testing.T) {
	before := vigilPrograms(t)
	h := start(t)
	during := vigilPrograms(t)
	held := heldPrograms(t)
	ours := map[ebpf.ProgramID]string{}
	for id, name := range during {
		if _, ok := before[id]; !ok && held[id] {
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
