package rules

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRunTests(t *testing.T) {
	s := mustLoad(t, Dir("testdata/tests"))
	got := s.RunTests()
	const f = "testdata/tests/rules.yaml"
	want := []TestResult{
		{RuleID: "exec-from-writable-dir", Name: "binary in /tmp", Pos: Pos{f, 17, 9}, Pass: true, Reason: "matched",
			Message: "/tmp/x run by /usr/bin/bash"},
		{RuleID: "exec-from-writable-dir", Name: "binary in /usr/bin", Pos: Pos{f, 23, 9}, Pass: true, Reason: "condition is false"},
		{RuleID: "exec-from-writable-dir", Name: "go test binary", Pos: Pos{f, 26, 9}, Pass: true,
			Reason: `suppressed by exception "test-runner"`},
		{RuleID: "exec-from-writable-dir", Name: "fails, the exception suppresses it", Pos: Pos{f, 32, 9},
			Reason: `want a match, got: suppressed by exception "test-runner"`},
		{RuleID: "shadow-read", Name: "read by a user", Pos: Pos{f, 41, 9}, Pass: true, Reason: "matched", Message: "Shadow read"},
		{RuleID: "shadow-read", Name: "fails, wrong kind", Pos: Pos{f, 44, 9}, Reason: "want a match, got: kind exec is not in on [file]"},
		{RuleID: "shadow-read", Name: "fails, the condition is false", Pos: Pos{f, 47, 9}, Reason: "want a match, got: condition is false"},
		{RuleID: "connect-out", Name: "nc", Pos: Pos{f, 57, 9}, Pass: true, Reason: "matched", Message: "nc -> 10.0.0.1:4444"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RunTests (-want +got):\n%s", diff)
	}
}

// TestBenchRulesMatch checks that the benchmark's rules are not vacuous:
// each matches an event built for it.
func TestBenchRulesMatch(t *testing.T) {
	s := mustLoad(t, Dir("testdata/bench"))
	for _, r := range s.RunTests() {
		if !r.Pass {
			t.Errorf("%s: %s %q: %s", r.Pos, r.RuleID, r.Name, r.Reason)
		}
	}
}
