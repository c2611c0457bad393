package netguard

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// frame is an Ethernet/IPv4/TCP SYN from src to 10.0.0.1:port.
func frame(src netip.Addr, port uint16) []byte {
	b := make([]byte, 14+20+20+10)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	ip[8], ip[9] = 64, 6
	s := src.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], []byte{10, 0, 0, 1})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], port)
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	return b
}

// BenchmarkXDP runs the XDP program on one frame with BPF_PROG_TEST_RUN:
// the cost per packet of the program alone, without a driver or a sender
// in the way. bench/xdp.sh reports it as packets/s.
func BenchmarkXDP(b *testing.B) {
	testenv.RequirePrivileged(b)
	dir := "/sys/fs/bpf/vigil-test-bench-" + randHex(4)
	g, err := Open(Config{PinDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Remove()
	pkt := frame(netip.MustParseAddr("192.0.2.7"), 80)
	intel := map[netip.Prefix]IntelEntry{}
	for i := range 10000 {
		intel[netip.PrefixFrom(netip.AddrFrom4([4]byte{198, byte(i >> 8), byte(i), 0}), 24)] = IntelEntry{List: 1}
	}
	for _, c := range []struct {
		name  string
		acct  Accounting
		intel bool
	}{
		{"accounting=off", Accounting{}, false},
		{"accounting=on", Accounting{Enabled: true, AutoBlock: true, PPS: 1 << 40, BlockFor: time.Minute}, false},
		{"accounting=on,intel=10000", Accounting{Enabled: true, AutoBlock: true, PPS: 1 << 40, BlockFor: time.Minute}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			if err := g.SetAccounting(c.acct); err != nil {
				b.Fatal(err)
			}
			in := map[netip.Prefix]IntelEntry{}
			if c.intel {
				in = intel
			}
			if err := g.SetIntel(in); err != nil {
				b.Fatal(err)
			}
			ret, d, err := g.objs.VgXdpIn.Benchmark(pkt, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			if ret != 2 { // XDP_PASS
				b.Fatalf("XDP returned %d, want XDP_PASS", ret)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
			b.ReportMetric(1e9/float64(d.Nanoseconds()+1), "pkt/s")
		})
	}
}
