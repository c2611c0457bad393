package netdef

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilsec/vigil/internal/event"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind+":"+f.Addr.String()+":"+f.Limit+f.ScanType)
	}
	return out
}

func TestFloodSourceAndDistributed(t *testing.T) {
	d := New(Config{SourcePPS: 1000, SourceSYNs: 100, TotalPPS: 5000})
	a, b := addr("192.0.2.1"), addr("192.0.2.2")
	var tot Counts
	step := func(sec int, srcs ...Source) []Finding {
		tot = Counts{}
		for _, s := range srcs {
			tot.Packets += s.Packets
			tot.SYNs += s.SYNs
		}
		return d.Observe(Sample{At: t0.Add(time.Duration(sec) * time.Second), Sources: srcs, Total: tot})
	}
	// The first sample only sets the base.
	if f := step(0, Source{a, Counts{Packets: 1e6}}); len(f) != 0 {
		t.Fatalf("first sample: %v", kinds(f))
	}
	// a: 2000 packets/s over two seconds.
	f := step(2, Source{a, Counts{Packets: 1e6 + 4000}})
	if d := cmp.Diff([]string{"flood-source:192.0.2.1:packets/s"}, kinds(f)); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if f[0].Rates.PPS != 2000 {
		t.Errorf("rate %v, want 2000", f[0].Rates.PPS)
	}
	// Still flooding: no second alert; b's SYN flood is its own.
	f = step(3, Source{a, Counts{Packets: 1e6 + 6000}}, Source{b, Counts{Packets: 300, SYNs: 300}})
	if d := cmp.Diff([]string{"flood-source:192.0.2.2:SYNs/s"}, kinds(f)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	// a calms down, then floods again: a new episode.
	step(4, Source{a, Counts{Packets: 1e6 + 6010}}, Source{b, Counts{Packets: 300, SYNs: 300}})
	f = step(5, Source{a, Counts{Packets: 1e6 + 9000}}, Source{b, Counts{Packets: 300, SYNs: 300}})
	if d := cmp.Diff([]string{"flood-source:192.0.2.1:packets/s"}, kinds(f)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	// Twenty sources at 500 packets/s each: under the per-source limit,
	// 10000 packets/s in total, none dominant: distributed, once.
	d = New(Config{SourcePPS: 1000, TotalPPS: 5000})
	many := func(sec int) []Finding {
		var srcs []Source
		for i := range 20 {
			srcs = append(srcs, Source{netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Counts{Packets: uint64(500 * sec)}})
		}
		return step(sec, srcs...)
	}
	many(0)
	f = many(1)
	if len(f) != 1 || f[0].Kind != FloodDistributed || f[0].Sources != 20 || f[0].Rates.PPS != 10000 || f[0].TopShare != 0.05 {
		t.Fatalf("distributed: %+v", f)
	}
	if f = many(2); len(f) != 0 {
		t.Errorf("distributed again in the same episode: %v", kinds(f))
	}
	// One source dominating the total is not distributed.
	d = New(Config{TotalPPS: 5000})
	step(0, Source{a, Counts{}}, Source{b, Counts{}})
	if f = step(1, Source{a, Counts{Packets: 9000}}, Source{b, Counts{Packets: 100}}); len(f) != 0 {
		t.Errorf("dominated total: %v", kinds(f))
	}
}

func TestScanInbound(t *testing.T) {
	d := New(Config{ScanWindow: 10 * time.Second, ScanPorts: 20, ScanHosts: 10})
	a := addr("2001:db8::7")
	d.Observe(Sample{At: t0}) // base
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// A slow SYN scan: 5 ports a second with crafted SYNs.
	var c Counts
	var got []Finding
	for s := 1; s <= 6; s++ {
		c.Packets += 5
		c.SYNs += 5
		c.RawSYNs += 5
		c.Ports += 5
		c.Hosts = 1
		got = append(got, d.Observe(Sample{At: at(s), Sources: []Source{{a, c}}})...)
	}
	want := []Finding{{Kind: ScanInbound, At: at(4), Addr: a, ScanType: ScanSYN, Ports: 20, Hosts: 1, Probes: 20, Window: 10 * time.Second}}
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("SYN scan (-want +got):\n%s", d)
	}
	// The same source's FIN scan right after is another finding.
	got = nil
	for s := 7; s <= 9; s++ {
		c.Packets += 10
		c.FINs += 10
		got = append(got, d.Observe(Sample{At: at(s), Sources: []Source{{a, c}}})...)
	}
	if d := cmp.Diff([]string{"scan-inbound:2001:db8::7:fin"}, kinds(got)); d != "" {
		t.Errorf("FIN scan (-want +got):\n%s", d)
	}
	// Too slow for the window: 1 port every 2 seconds never reaches 20 in 10s.
	d = New(Config{ScanWindow: 10 * time.Second, ScanPorts: 20})
	d.Observe(Sample{At: t0})
	c = Counts{}
	for s := 1; s <= 120; s += 2 {
		c.Packets++
		c.UDP++
		c.Ports++
		if f := d.Observe(Sample{At: at(s), Sources: []Source{{a, c}}}); len(f) != 0 {
			t.Fatalf("slow probing at %ds: %v", s, kinds(f))
		}
	}
	// Many SYNs to one port: a busy client, not a scan.
	d = New(Config{ScanWindow: 10 * time.Second, ScanPorts: 20})
	d.Observe(Sample{At: t0})
	if f := d.Observe(Sample{At: at(1), Sources: []Source{{a, Counts{Packets: 5000, SYNs: 5000, Ports: 1, Hosts: 1}}}}); len(f) != 0 {
		t.Errorf("one port: %v", kinds(f))
	}
	// Connect scan: kernel-built SYNs; a host sweep counts too.
	d = New(Config{ScanWindow: 10 * time.Second, ScanPorts: 20, ScanHosts: 10})
	d.Observe(Sample{At: t0})
	f := d.Observe(Sample{At: at(1), Sources: []Source{{a, Counts{Packets: 30, SYNs: 30, RawSYNs: 0, Ports: 3, Hosts: 12}}}})
	if d := cmp.Diff([]string{"scan-inbound:2001:db8::7:connect"}, kinds(f)); d != "" {
		t.Errorf("connect sweep (-want +got):\n%s", d)
	}
}

func TestScanOutbound(t *testing.T) {
	d := New(Config{OutWindow: 10 * time.Second, OutPorts: 5, OutHosts: 4})
	conn := func(s int, pid uint32, dst string) []Finding {
		e := &event.Event{Time: t0.Add(time.Duration(s) * time.Second), Kind: event.KindNet,
			Process: event.Process{PID: pid, StartBoot: 7},
			Net:     &event.Net{Op: event.NetConnect, Destination: netip.MustParseAddrPort(dst)}}
		return d.ObserveConnect(e)
	}
	var got []Finding
	for p := range 6 {
		got = append(got, conn(p, 10, netip.AddrPortFrom(addr("192.0.2.9"), uint16(20+p)).String())...)
	}
	if len(got) != 1 || got[0].ScanType != ScanPorts || got[0].Addr != addr("192.0.2.9") || got[0].Ports != 5 || got[0].Trigger.Process.PID != 10 {
		t.Fatalf("port scan: %+v", got)
	}
	// Another process's connects are its own.
	if f := conn(7, 11, "192.0.2.9:99"); len(f) != 0 {
		t.Errorf("other process: %v", kinds(f))
	}
	// A sweep: one port on many hosts.
	got = nil
	for h := range 4 {
		got = append(got, conn(8, 12, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(h)}), 22).String())...)
	}
	if d := cmp.Diff([]Finding{{Kind: ScanOutbound, At: t0.Add(8 * time.Second), ScanType: ScanHosts, Ports: 1, Hosts: 4, Window: 10 * time.Second}}, got,
		cmpopts.IgnoreFields(Finding{}, "Trigger"), cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("sweep (-want +got):\n%s", d)
	}
	// Spread beyond the window: no scan.
	for p := range 6 {
		if f := conn(100+p*3, 13, netip.AddrPortFrom(addr("192.0.2.9"), uint16(20+p)).String()); len(f) != 0 {
			t.Errorf("slow connects: %v", kinds(f))
		}
	}
	d.Forget(t0.Add(time.Hour))
	if len(d.out) != 0 {
		t.Errorf("Forget left %d processes", len(d.out))
	}
}

func TestTalkers(t *testing.T) {
	d := New(Config{})
	if got := d.Talkers(); len(got.Top) != 0 || !got.At.IsZero() {
		t.Fatalf("before any interval: %+v", got)
	}
	var first, second []Source
	for i := range MaxTalkers + 10 {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		first = append(first, Source{a, Counts{Packets: 100, Bytes: 1000}})
		// Source i sends i packets in the second; 0 sends none.
		second = append(second, Source{a, Counts{Packets: 100 + uint64(i), Bytes: 1000 + 100*uint64(i), Ports: 3}})
	}
	v6 := addr("2001:db8::1")
	second = append(second, Source{v6, Counts{Packets: 5000, Bytes: 5000 * 60, SYNs: 5000}}) // new: all of it counts
	d.Observe(Sample{At: t0, Sources: first, Total: Counts{Packets: 1e4}})
	d.Observe(Sample{At: t0.Add(2 * time.Second), Sources: second, Total: Counts{Packets: 1e4 + 2*7000}})
	got := d.Talkers()
	if got.Sources != MaxTalkers+10 || len(got.Top) != MaxTalkers || got.Interval != 2*time.Second || got.Total.PPS != 7000 {
		t.Fatalf("talkers: %d sources, %d top, interval %v, total %v pps", got.Sources, len(got.Top), got.Interval, got.Total.PPS)
	}
	want := Talker{Addr: v6, PPS: 2500, BitsPS: 2500 * 60 * 8, SYNsPS: 2500, Packets: 5000, Bytes: 300000}
	if d := cmp.Diff(want, got.Top[0], cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("busiest (-want +got):\n%s", d)
	}
	// Then by rate: 192.0.2.59 (29.5/s) down to 192.0.2.11 (5.5/s).
	if got.Top[1].Addr != addr("192.0.2.59") || got.Top[MaxTalkers-1].Addr != addr("192.0.2.11") {
		t.Errorf("order: second %v, last %v", got.Top[1].Addr, got.Top[MaxTalkers-1].Addr)
	}
	for i := 1; i < len(got.Top); i++ {
		if got.Top[i].PPS > got.Top[i-1].PPS {
			t.Fatalf("not sorted at %d: %v after %v", i, got.Top[i].PPS, got.Top[i-1].PPS)
		}
	}
}
