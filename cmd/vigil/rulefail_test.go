package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/daemon"
	"github.com/vigilsec/vigil/internal/testenv"
)

// TestRuleEvalErrorsInStatusAndMetrics: a rule that fails on a real
// program's exec (an index past the end of its argv) is counted, by rule,
// in `vigil status` (text and JSON) and in /metrics, and the count
// survives a reload (SIGHUP), which replaces the rule set.
func TestRuleEvalErrorsInStatusAndMetrics(t *testing.T) {
	testenv.SkipInGuest(t, "the agent starts slower under emulation than the test waits")
	testenv.RequirePrivileged(t)
	bin := vigil(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules.d")
	os.Mkdir(rulesDir, 0o700)
	os.WriteFile(filepath.Join(rulesDir, "fail.yaml"), []byte(`rules:
  - id: bad-index
    name: an index past the end of argv
    severity: notice
    on: [exec]
    condition: process.name == "vigil-evalerr" && process.args[5] == "x"
`), 0o600)
	sock := filepath.Join(dir, "status.sock")
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output: %s
status_socket: %s
store:
  path: %s
web:
  listen: ""
metrics:
  listen: 127.0.0.1:0
rules:
  dirs: [%s]
  watch: false
`+testScope, filepath.Join(dir, "events.json"), sock, filepath.Join(dir, "vigil.db"), rulesDir)), 0o600)

	agent, stderr := startAgent(t, bin, cfg)
	m := regexp.MustCompile(`metrics listening.*addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", stderr.String())
	}
	metricsURL := "http://" + m[1] + "/metrics"

	status := func() daemon.Status {
		t.Helper()
		out, err := exec.Command(bin, "status", "--config", cfg, "-o", "json").Output()
		if err != nil {
			t.Fatalf("vigil status -o json: %v", err)
		}
		var st daemon.Status
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		return st
	}
	if st := status(); len(st.Rules.EvalErrors) != 0 || len(st.Rules.CostExceeded) != 0 {
		t.Fatalf("failures before any: %v %v", st.Rules.EvalErrors, st.Rules.CostExceeded)
	}

	cg := testenv.NewCgroup(t)
	prog := filepath.Join(t.TempDir(), "vigil-evalerr")
	copyTrue(t, prog)
	// waitErrors runs the program until the agent has counted want errors.
	waitErrors := func(want uint64) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got := status().Rules.EvalErrors["bad-index"]
			if got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("bad-index: %d evaluation errors after 15s, want %d\n%s", got, want, stderr.String())
			}
			cg.Run(t, prog, "one")
		}
	}
	waitErrors(1)
	before := status().Rules.EvalErrors["bad-index"]

	text, err := exec.Command(bin, "status", "--config", cfg).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^rule evaluation errors \(the rule did not match\): bad-index \d+$`).Match(text) {
		t.Errorf("vigil status does not list the rule's errors:\n%s", text)
	}
	series := regexp.MustCompile(`(?m)^vigil_rule_eval_errors_total\{rule="bad-index"\} (\d+)$`)
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !series.Match(body) {
		t.Errorf("/metrics lacks vigil_rule_eval_errors_total for bad-index:\n%s", grepLines(body, "vigil_rule"))
	}

	// A reload replaces the rule set, whose own counts start again at 0;
	// the agent's do not go back.
	agent.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", stderr, "rules reloaded")
	if got := status().Rules.EvalErrors["bad-index"]; got < before {
		t.Errorf("bad-index errors went from %d to %d over a reload", before, got)
	}
	waitErrors(before + 1)
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPrintStatusRuleFailures: both per-rule counts print as one line
// each, sorted by rule id, escaped; none prints nothing.
func TestPrintStatusRuleFailures(t *testing.T) {
	var st daemon.Status
	var b strings.Builder
	printStatus(&b, st)
	if strings.Contains(b.String(), "rule evaluation") {
		t.Errorf("lines for no failures:\n%s", b.String())
	}
	st.Rules.EvalErrors = map[string]uint64{"zeta": 2, "alpha": 1}
	st.Rules.CostExceeded = map[string]uint64{"scan\x1b[2J": 7}
	b.Reset()
	printStatus(&b, st)
	for _, want := range []string{
		"\nrule evaluation errors (the rule did not match): alpha 1, zeta 2\n",
		"\nrule evaluations stopped at the cost limit (the rule did not match): scan\\e[2J 7\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
