package resource

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

var (
	t0  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ctr = &event.Container{ID: "4f2c9a0b1e3d5f7a", Name: "web", Runtime: "docker", CgroupPath: "/docker/4f2c"}
)

// feed sends one sample per interval; cpu is the CPU share of each
// interval (100 = one CPU) and the other values are per-sample levels.
func feed(d *Detector, interval time.Duration, cpu []float64, mem, pids []uint64, ioPerSec []uint64) []string {
	var got []string
	var cum time.Duration
	var ioCum uint64
	n := max(len(cpu), len(mem), len(pids), len(ioPerSec))
	for i := 0; i < n; i++ {
		s := Sample{At: t0.Add(time.Duration(i) * interval), Container: ctr}
		if i < len(cpu) {
			if i > 0 {
				cum += time.Duration(cpu[i] / 100 * float64(interval))
			}
			s.CPU, s.HasCPU = cum, true
		}
		if i < len(mem) {
			s.Memory, s.HasMemory = mem[i], true
		}
		if i < len(pids) {
			s.PIDs, s.HasPIDs = pids[i], true
		}
		if i < len(ioPerSec) {
			if i > 0 {
				ioCum += ioPerSec[i] * uint64(interval/time.Second)
			}
			s.IOBytes, s.HasIO = ioCum, true
		}
		for _, a := range d.Observe(s) {
			got = append(got, a.Alert.RuleID+"@"+a.Time.Sub(t0).String())
		}
	}
	return got
}

func TestThresholds(t *testing.T) {
	cfg := Config{CPUPercent: 80, MemoryBytes: 1000, PIDs: 50, IOBytesPerSecond: 1 << 20, Sustain: 30 * time.Second}
	const iv = 10 * time.Second
	tests := []struct {
		name      string
		cpu       []float64
		mem, pids []uint64
		io        []uint64
		want      []string
	}{
		{"cpu sustained", []float64{0, 95, 95, 95, 95, 95}, nil, nil, nil, []string{"container-cpu-high@40s"}},
		{"cpu spikes", []float64{0, 95, 95, 95, 10, 95, 95, 95, 20}, nil, nil, nil, nil},
		{"cpu twice, two episodes", []float64{0, 95, 95, 95, 95, 10, 95, 95, 95, 95}, nil, nil, nil,
			[]string{"container-cpu-high@40s", "container-cpu-high@1m30s"}},
		{"cpu at the threshold is not above", []float64{0, 80, 80, 80, 80, 80}, nil, nil, nil, nil},
		{"memory", nil, []uint64{10, 2000, 2000, 2000, 2000}, nil, nil, []string{"container-memory-high@40s"}},
		{"pids", nil, nil, []uint64{1, 60, 60, 60, 60, 60, 60}, nil, []string{"container-pids-high@40s"}},
		{"io", nil, nil, nil, []uint64{0, 2 << 20, 2 << 20, 2 << 20, 2 << 20}, []string{"container-io-high@40s"}},
		{"io low", nil, nil, nil, []uint64{0, 1 << 10, 1 << 10, 1 << 10, 1 << 10}, nil},
	}
	for _, tt := range tests {
		got := feed(New(cfg), iv, tt.cpu, tt.mem, tt.pids, tt.io)
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
	// A zero threshold disables its check.
	if got := feed(New(Config{Sustain: time.Second}), iv, []float64{0, 400, 400, 400}, []uint64{1 << 40, 1 << 40}, nil, nil); got != nil {
		t.Errorf("disabled checks alerted: %v", got)
	}
}

func netEv(at time.Time, op event.NetOp, dst string, dns string) *event.Event {
	n := &event.Net{Op: op, Protocol: "tcp"}
	if dst != "" {
		n.Destination = netip.MustParseAddrPort(dst)
	}
	if dns != "" {
		n.DNS = &event.DNSQuestion{Name: dns, Type: "A"}
	}
	return &event.Event{Time: at, Kind: event.KindNet, Net: n, Origin: event.OriginContainer, Container: ctr,
		Process: event.Process{PID: 77, Name: "xmrig", Executable: "/tmp/xmrig"}}
}

func TestMiner(t *testing.T) {
	cfg := Config{MinerCPUPercent: 50, Sustain: 30 * time.Second, MinerWindow: 5 * time.Minute,
		MinerPorts: []uint16{3333, 14444}, MinerDomains: []string{"supportxmr.com"}}
	hot := func(d *Detector, n int) []*event.Event {
		var out []*event.Event
		var cum time.Duration
		for i := 0; i < n; i++ {
			if i > 0 {
				cum += 9 * time.Second // 90% of 10s
			}
			out = append(out, d.Observe(Sample{At: t0.Add(time.Duration(i) * 10 * time.Second), Container: ctr, CPU: cum, HasCPU: true})...)
		}
		return out
	}

	// Pool connection first, CPU after: the miner alert comes with the sample
	// that completes the sustain period, with the connection as trigger.
	d := New(cfg)
	if a := d.ObserveNet(netEv(t0, event.NetConnect, "10.1.2.3:3333", "")); a != nil {
		t.Fatalf("alert before high CPU: %v", a)
	}
	got := hot(d, 6)
	if len(got) != 1 || got[0].Alert.RuleID != RuleMiner || got[0].Alert.Trigger == nil || got[0].Process.Name != "xmrig" ||
		got[0].Container != ctr || got[0].Alert.Severity != event.SeverityCritical {
		t.Fatalf("pool then CPU: %+v", got)
	}
	if got[0].Time != t0.Add(40*time.Second) {
		t.Errorf("miner alert at %v, want after 30s above (40s)", got[0].Time.Sub(t0))
	}
	// Once per episode.
	if more := d.ObserveNet(netEv(t0.Add(50*time.Second), event.NetConnect, "10.1.2.3:3333", "")); more != nil {
		t.Errorf("second alert in one episode: %v", more)
	}

	// CPU first, then a DNS query for a pool domain: the query alerts.
	d = New(cfg)
	if got := hot(d, 6); len(got) != 0 {
		t.Fatalf("CPU alone: %v", got)
	}
	a := d.ObserveNet(netEv(t0.Add(55*time.Second), event.NetDNS, "", "pool.supportxmr.com"))
	if len(a) != 1 || a[0].Alert.RuleID != RuleMiner {
		t.Fatalf("CPU then pool DNS: %v", a)
	}

	// Pool traffic without the CPU, and CPU with ordinary traffic: nothing.
	d = New(cfg)
	d.ObserveNet(netEv(t0, event.NetConnect, "10.1.2.3:443", ""))
	d.ObserveNet(netEv(t0, event.NetDNS, "", "example.com"))
	if got := hot(d, 8); len(got) != 0 {
		t.Errorf("CPU with ordinary traffic: %v", got)
	}
	d = New(cfg)
	d.ObserveNet(netEv(t0, event.NetConnect, "10.1.2.3:14444", ""))
	var cum time.Duration
	for i := 0; i < 8; i++ {
		cum += time.Second // 10%
		if got := d.Observe(Sample{At: t0.Add(time.Duration(i) * 10 * time.Second), Container: ctr, CPU: cum, HasCPU: true}); len(got) != 0 {
			t.Errorf("pool with low CPU: %v", got)
		}
	}
	// A pool connection older than the window does not count.
	d = New(cfg)
	d.ObserveNet(netEv(t0.Add(-10*time.Minute), event.NetConnect, "10.1.2.3:3333", ""))
	if got := hot(d, 6); len(got) != 0 {
		t.Errorf("stale pool connection: %v", got)
	}
}

func TestForget(t *testing.T) {
	d := New(Config{CPUPercent: 10, Sustain: time.Second})
	d.Observe(Sample{At: t0, Container: ctr, HasCPU: true})
	d.Forget(t0.Add(time.Minute))
	if len(d.state) != 0 {
		t.Errorf("state kept for a container gone: %d", len(d.state))
	}
}
