package metrics

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilsec/vigil/internal/sink"
)

func TestExposition(t *testing.T) {
	m := New(func() Snapshot {
		return Snapshot{
			Kinds:            []Kind{{Name: "exec", KernelSent: 10, KernelLost: 2, Received: 8, QueueDropped: 1}},
			RuleHits:         map[string]uint64{"exec-from-writable-dir": 3},
			RuleEvalErrors:   map[string]uint64{"bad-index": 4},
			RuleCostExceeded: map[string]uint64{"scan": 5, "scan2": 1},
			Sinks:            []sink.Stats{{Name: "store", Queued: 5, Capacity: 8192, Dropped: 7, Failures: 1}},
			Sensors:          []Sensor{{Name: "process", Up: true}, {Name: "net", Up: false}},
			NetDefence: &NetDefence{IntelDropsIn: 4, PayloadDrops: 2, FloodBlocks: 1, PayloadMatches: 6, NoticesLost: 9,
				Blocked: 3, Sources: 12, PPS: 1500, BitsPS: 12e6},
		}
	})
	m.Responses.WithLabelValues("kill", "ok").Add(2)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`vigil_events_received_total{kind="exec"} 8`,
		`vigil_kernel_events_lost_total{kind="exec"} 2`,
		`vigil_events_dropped_total{kind="exec"} 1`,
		`vigil_rule_hits_total{rule="exec-from-writable-dir"} 3`,
		`vigil_rule_eval_errors_total{rule="bad-index"} 4`,
		`vigil_rule_cost_exceeded_total{rule="scan"} 5`,
		`vigil_rule_cost_exceeded_total{rule="scan2"} 1`,
		`vigil_sink_queue_depth{sink="store"} 5`,
		`vigil_sink_failures_total{sink="store"} 1`,
		`vigil_sink_dropped_total{sink="store"} 7`,
		`vigil_sensor_up{sensor="net"} 0`,
		`vigil_responses_total{action="kill",result="ok"} 2`,
		`vigil_netdefense_packets_dropped_total{reason="intel_ingress"} 4`,
		`vigil_netdefense_packets_dropped_total{reason="payload"} 2`,
		`vigil_netdefense_flood_blocks_total 1`,
		`vigil_netdefense_payload_matches_total 6`,
		`vigil_netdefense_notices_lost_total 9`,
		`vigil_netdefense_blocked 3`,
		`vigil_netdefense_packets_per_second 1500`,
		`vigil_netdefense_bytes_per_second 1.5e+06`,
		"process_resident_memory_bytes ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "vigil_rule_hits_total"); err != nil || n != 1 {
		t.Errorf("rule hit series = %d, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(m.Registry()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// TestDashboardUsesExportedSeries: every series the Grafana dashboard in
// deploy/grafana queries is one this package exports.
func TestDashboardUsesExportedSeries(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/vigil.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	m := New(func() Snapshot {
		return Snapshot{Kinds: []Kind{{Name: "exec"}}, RuleHits: map[string]uint64{"r": 1},
			Sinks: []sink.Stats{{Name: "store"}}, Sensors: []Sensor{{Name: "process", Up: true}}}
	})
	m.Responses.WithLabelValues("kill", "ok").Inc()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	name := regexp.MustCompile(`\b(vigil_[a-z_]+|process_[a-z_]+)\b`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, s := range name.FindAllString(tg.Expr, -1) {
				n++
				if !exported[s] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, s)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("the dashboard queries only %d series", n)
	}
}
