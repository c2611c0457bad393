package rules

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

// TestFastPathsEquivalent checks that the fast paths change nothing: the
// same alerts, and the same evaluation errors, as CEL's own evaluation.
func TestFastPathsEquivalent(t *testing.T) {
	extra := files("extra.yaml", `lists:
  - name: ports
    items: [443, 4444]
  - name: empty
    items: []
rules:
  - id: mixed
    name: Mixed
    severity: info
    on: [exec, net, file]
    condition: >
      process.name != "ls" && destination.port in ports && !(process.name in empty) &&
      process.executable.endsWith("/sh") && process.executable.contains("bin") &&
      process.parent.executable.startsWith("/usr") && process.parent.name.endsWithAny(["x", "l"]) &&
      process.args[0].containsAny(["a", "s"]) && 443 == destination.port && process.pid != 7
  - id: index
    name: Index
    severity: info
    on: [exec]
    condition: process.args[1] == "-d"
`)
	fast := mustLoad(t, Dir("testdata/bench"), extra)
	noFastPaths = true
	slow, err := Load(Dir("testdata/bench"), extra)
	noFastPaths = false
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	var events []*event.Event
	for range 5000 {
		e := randomEvent(rnd)
		if e.Net != nil && rnd.IntN(2) == 0 {
			e.Process.Executable = "/usr/bin/sh"
		}
		events = append(events, e)
	}
	total, mixed := 0, 0
	for _, e := range events {
		want, got := alerts(t, slow, e), alerts(t, fast, e)
		total += len(want)
		for _, a := range want {
			if strings.HasPrefix(a, "mixed:") {
				mixed++
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("event %+v: alerts (-CEL +fast paths):\n%s", e, diff)
		}
	}
	if diff := cmp.Diff(slow.EvalErrors(), fast.EvalErrors()); diff != "" {
		t.Errorf("evaluation errors (-CEL +fast paths):\n%s", diff)
	}
	if total < 1000 || mixed == 0 || fast.EvalErrors()["index"] == 0 {
		t.Errorf("%d alerts, %d of mixed, %d errors: the events test too little", total, mixed, fast.EvalErrors()["index"])
	}
}
