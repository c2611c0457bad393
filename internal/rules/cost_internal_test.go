package rules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

// A condition whose worst case is above MaxCost is refused at load, at its
// place in the file, with its cost; one just like it without the nesting
// loads and runs untracked.
func TestCostlyConditionRefused(t *testing.T) {
	rule := func(cond string) string {
		return "rules:\n  - id: r\n    name: R\n    severity: warning\n    on: [exec]\n    condition: " + cond + "\n"
	}
	for _, cond := range []string{
		`process.args.exists(a, process.args.exists(b, b == a))`,
		`process.args.all(a, process.parent.args.exists(b, b.startsWith(a)))`,
		`process.args.exists(a, process.args.exists(b, process.args.exists(c, c == "x")))`,
	} {
		errs := loadErrors(t, files("costly.yaml", rule(cond)))
		if len(errs) != 1 || !strings.HasPrefix(errs[0], "costly.yaml:6:16: ") || !strings.Contains(errs[0], `rule "r" is too costly to evaluate: its worst case is `) {
			t.Errorf("%s: errors %q, want one at costly.yaml:6:16 saying it is too costly", cond, errs)
		}
	}
	s := mustLoad(t, files("fine.yaml", rule(`process.args.exists(a, a == "x")`)))
	if c := s.Costs()["r"]; c == 0 || c > runtimeCostLimit {
		t.Errorf("one comprehension costs %d, want between 1 and %d", c, runtimeCostLimit)
	}
	// Exceptions add to the cost of their rule.
	exc := rule(`process.args.exists(a, a == "x")`) + "    exceptions:\n      - name: e\n        condition: process.parent.args.exists(b, process.args.exists(c, c == b))\n"
	if errs := loadErrors(t, files("exc.yaml", exc)); len(errs) != 1 || !strings.Contains(errs[0], "too costly") {
		t.Errorf("a costly exception: errors %q", errs)
	}
}

// A rule whose worst case is above the runtime limit runs with it: an
// evaluation that passes it is stopped and counted, does not match, and
// the other rules on the same event still run. The limit is lowered so an
// ordinary long command line passes it.
func TestRuntimeCostLimit(t *testing.T) {
	defer func(l uint64) { runtimeCostLimit = l }(runtimeCostLimit)
	runtimeCostLimit = 2000
	s := mustLoad(t, files("r.yaml", `rules:
  - id: scan
    name: scan
    severity: warning
    on: [exec]
    condition: process.args.exists(a, a == "needle")
  - id: cheap
    name: cheap
    severity: warning
    on: [exec]
    condition: process.name == "prog"
`))
	if c := s.Costs()["scan"]; c <= runtimeCostLimit {
		t.Fatalf("scan costs %d, not above the lowered limit: the test tests nothing", c)
	}
	eval := func(e *event.Event) []string {
		var got []string
		s.Eval(e, func(a *event.Event) { got = append(got, a.Alert.RuleID) })
		return got
	}
	// Short: within the limit, matches.
	if d := cmp.Diff([]string{"scan", "cheap"}, eval(execEvent("/usr/bin/prog", "prog", "needle"))); d != "" {
		t.Errorf("short argv (-want +got):\n%s", d)
	}
	// The cost starts from zero at each evaluation: many evaluations within
	// the limit add up to more than it, and all match.
	hundred := append(make([]string, 100), "needle")
	for i := range 50 {
		if got := eval(execEvent("/usr/bin/other", hundred...)); len(got) != 1 {
			t.Fatalf("evaluation %d of a 101-argument argv: %v, want scan", i, got)
		}
	}
	// 5,000 arguments, the needle last: stopped before it, counted, and
	// the cheap rule still matches.
	args := append(make([]string, 5000), "needle")
	if d := cmp.Diff([]string{"cheap"}, eval(execEvent("/usr/bin/prog", args...))); d != "" {
		t.Errorf("long argv (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]uint64{"scan": 1}, s.CostExceeded()); d != "" {
		t.Errorf("CostExceeded (-want +got):\n%s", d)
	}
	if errs := s.EvalErrors(); len(errs) != 0 {
		t.Errorf("EvalErrors %v: a stopped evaluation is not an error", errs)
	}
	// And again within the limit afterwards.
	if d := cmp.Diff([]string{"scan", "cheap"}, eval(execEvent("/usr/bin/prog", "needle"))); d != "" {
		t.Errorf("short argv after a long one (-want +got):\n%s", d)
	}
}
