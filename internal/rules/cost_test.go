package rules_test

import (
	"slices"
	"testing"

	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/rules/defaults"
)

// The built-in rules all run without cost tracking: their worst case is
// below the runtime limit, so nothing is added to the hot path.
func TestBuiltinRulesCost(t *testing.T) {
	set, err := rules.Load(defaults.Source())
	if err != nil {
		t.Fatal(err)
	}
	type rc struct {
		id   string
		cost uint64
	}
	var all []rc
	for id, c := range set.Costs() {
		all = append(all, rc{id, c})
		if c > rules.RuntimeCostLimit {
			t.Errorf("built-in rule %s: worst case %d, above the runtime limit %d", id, c, uint64(rules.RuntimeCostLimit))
		}
	}
	slices.SortFunc(all, func(a, b rc) int { return int(b.cost) - int(a.cost) })
	for _, r := range all[:min(8, len(all))] {
		t.Logf("%-40s %d", r.id, r.cost)
	}
}
