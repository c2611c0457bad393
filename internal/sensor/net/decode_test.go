package netsensor

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var boot = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// netRecord builds a net record the way net.bpf.c lays it out.
func netRecord(t testing.TB, raw bpfNetEvent, payload []byte) []byte {
	t.Helper()
	raw.Hdr = bpfEventHeader{KtimeNs: 5e9, Type: sensor.TypeNet, Size: uint32(netSize + len(payload))}
	raw.Task = task()
	raw.PayloadLen = uint16(len(payload))
	b, err := binary.Append(nil, binary.LittleEndian, &raw)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, payload...)
}

func task() bpfTaskInfo {
	ti := bpfTaskInfo{
		StartNs: 4e9, ParentStartNs: 1e9, CgroupId: 77,
		Pid: 100, Tid: 101, Ppid: 42,
		Uid: 1000, Gid: 1000, Auid: 1000, Sessionid: 3,
	}
	for i, c := range "curl" {
		ti.Comm[i] = int8(c)
	}
	return ti
}

func wantProcess() event.Process {
	return event.Process{
		PID: 100, TID: 101, PPID: 42,
		Start: boot.Add(4 * time.Second), StartBoot: 4e9, ParentStartBoot: 1e9,
		Name: "curl", UID: 1000, GID: 1000, AUID: 1000, SessionID: 3, CgroupID: 77,
	}
}

func v4(s string) (b [16]byte) {
	a := netip.MustParseAddr(s).As4()
	copy(b[:], a[:])
	return b
}

func v6(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// dnsQuery builds a query as a stub resolver does: header with RD, one question.
func dnsQuery(id uint16, name string, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; QDCOUNT 1
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l != "" {
			b = append(append(b, byte(len(l))), l...)
		}
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1) // IN
}

func TestDecode(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name    string
		raw     bpfNetEvent
		payload []byte
		want    event.Net
		ret     int64
	}{
		{
			name: "connect ipv4 tcp",
			raw: bpfNetEvent{Op: uint32(bpfNetOpNET_CONNECT), Family: afInet, Type: 1, Protocol: 6, Fd: 3,
				Saddr: v4("127.0.0.1"), Sport: 40000, Daddr: v4("127.0.0.1"), Dport: 8080},
			want: event.Net{Op: event.NetConnect, Family: "ipv4", Protocol: "tcp", Type: "stream", FD: 3,
				Source: ap("127.0.0.1:40000"), Destination: ap("127.0.0.1:8080")},
		},
		{
			name: "connect refused: no local end",
			raw: bpfNetEvent{Op: uint32(bpfNetOpNET_CONNECT), Ret: -111, Family: afInet6, Type: 1, Protocol: 6, Fd: 4,
				Daddr: v6("::1"), Dport: 9},
			ret: -111,
			want: event.Net{Op: event.NetConnect, Family: "ipv6", Protocol: "tcp", Type: "stream", FD: 4,
				Destination: ap("[::1]:9")},
		},
		{
			name: "ipv4-mapped kept on an ipv6 socket",
			raw: bpfNetEvent{Op: uint32(bpfNetOpNET_CONNECT), Family: afInet6, Type: 1, Protocol: 6, Fd: 5,
				Daddr: v6("::ffff:10.1.2.3"), Dport: 443},
			want: event.Net{Op: event.NetConnect, Family: "ipv6", Protocol: "tcp", Type: "stream", FD: 5,
				Destination: ap("[::ffff:10.1.2.3]:443")},
		},
		{
			name: "bind any address",
			raw:  bpfNetEvent{Op: uint32(bpfNetOpNET_BIND), Family: afInet, Type: 2, Protocol: 17, Fd: 6, Sport: 5353},
			want: event.Net{Op: event.NetBind, Family: "ipv4", Protocol: "udp", Type: "dgram", FD: 6,
				Source: ap("0.0.0.0:5353")},
		},
		{
			name: "listen ipv6",
			raw:  bpfNetEvent{Op: uint32(bpfNetOpNET_LISTEN), Family: afInet6, Type: 1, Protocol: 6, Fd: 3, Saddr: v6("::1"), Sport: 22},
			want: event.Net{Op: event.NetListen, Family: "ipv6", Protocol: "tcp", Type: "stream", FD: 3, Source: ap("[::1]:22")},
		},
		{
			name: "accept",
			raw: bpfNetEvent{Op: uint32(bpfNetOpNET_ACCEPT), Ret: 7, Family: afInet, Type: 1, Protocol: 6, Fd: 7,
				Saddr: v4("127.0.0.1"), Sport: 22, Daddr: v4("127.0.0.1"), Dport: 51000},
			ret: 7,
			want: event.Net{Op: event.NetAccept, Family: "ipv4", Protocol: "tcp", Type: "stream", FD: 7,
				Source: ap("127.0.0.1:22"), Destination: ap("127.0.0.1:51000")},
		},
		{
			name: "unix connect: no protocol, no addresses",
			raw:  bpfNetEvent{Op: uint32(bpfNetOpNET_CONNECT), Family: afUnix, Type: 1, Fd: 3},
			want: event.Net{Op: event.NetConnect, Family: "unix", Type: "stream", FD: 3},
		},
		{
			name: "unknown numbers",
			raw:  bpfNetEvent{Op: uint32(bpfNetOpNET_BIND), Family: 99, Type: 77, Protocol: 300, Fd: 3},
			want: event.Net{Op: event.NetBind, Family: "af99", Type: "type77", FD: 3},
		},
		{
			name: "dns A",
			raw: bpfNetEvent{Op: uint32(bpfNetOpNET_DNS), Ret: 40, Family: afInet, Type: 2, Protocol: 17, Fd: 3,
				Sport: 33333, Daddr: v4("127.0.0.53"), Dport: 53},
			payload: dnsQuery(0xbeef, "vigil-test.example.com", 1),
			ret:     40,
			want: event.Net{Op: event.NetDNS, Family: "ipv4", Protocol: "udp", Type: "dgram", FD: 3,
				Source: ap("0.0.0.0:33333"), Destination: ap("127.0.0.53:53"),
				DNS: &event.DNSQuestion{ID: 0xbeef, Name: "vigil-test.example.com", Type: "A"}},
		},
		{
			name: "dns payload that is not a query",
			raw: bpfNetEvent{Op: uint32(bpfNetOpNET_DNS), Ret: 5, Family: afInet6, Type: 2, Protocol: 17, Fd: 3,
				Daddr: v6("::1"), Dport: 53},
			payload: []byte("hello"),
			ret:     5,
			want: event.Net{Op: event.NetDNS, Family: "ipv6", Protocol: "udp", Type: "dgram", FD: 3,
				Destination: ap("[::1]:53")},
		},
	}
	clk := sensor.ClockAt(boot)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got event.Event
			if err := Decode(netRecord(t, tt.raw, tt.payload), clk, &got); err != nil {
				t.Fatal(err)
			}
			net := tt.want
			want := event.Event{Time: boot.Add(5 * time.Second), Kind: event.KindNet, Process: wantProcess(),
				Return: tt.ret, Net: &net}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	clk := sensor.ClockAt(boot)
	good := netRecord(t, bpfNetEvent{Op: uint32(bpfNetOpNET_DNS), Family: afInet}, dnsQuery(1, "a.b", 1))
	tests := map[string][]byte{
		"empty":            nil,
		"short":            good[:netSize-1],
		"payload cut":      good[:len(good)-1],
		"unknown op":       netRecord(t, bpfNetEvent{Op: 99}, nil),
		"op zero":          netRecord(t, bpfNetEvent{}, nil),
		"header says more": netRecord(t, bpfNetEvent{Op: 1}, nil)[:netSize-8],
	}
	for name, rec := range tests {
		var e event.Event
		if err := Decode(rec, clk, &e); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseDNSQuestion(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	tests := []struct {
		name string
		msg  []byte
		want *event.DNSQuestion // nil: an error
	}{
		{"A", dnsQuery(7, "vigil-test.example.com", 1), &event.DNSQuestion{ID: 7, Name: "vigil-test.example.com", Type: "A"}},
		{"AAAA", dnsQuery(8, "vigil-test.example.com.", 28), &event.DNSQuestion{ID: 8, Name: "vigil-test.example.com", Type: "AAAA"}},
		{"HTTPS", dnsQuery(9, "example.org", 65), &event.DNSQuestion{ID: 9, Name: "example.org", Type: "HTTPS"}},
		{"unnamed type", dnsQuery(9, "example.org", 4242), &event.DNSQuestion{ID: 9, Name: "example.org", Type: "TYPE4242"}},
		{"root", dnsQuery(1, ".", 2), &event.DNSQuestion{ID: 1, Name: ".", Type: "NS"}},
		{"case kept", dnsQuery(1, "ExAmPle.COM", 1), &event.DNSQuestion{ID: 1, Name: "ExAmPle.COM", Type: "A"}},
		{
			"escapes", append(append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 5, 'a', '.', 'b', '\\', 0x07, 2, 0xff, ' ', 0), 0, 16, 0, 1),
			&event.DNSQuestion{ID: 1, Name: `a\.b\\\007.\255\032`, Type: "TXT"},
		},
		{
			"longest name", dnsQuery(3, strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, "."), 1),
			&event.DNSQuestion{ID: 3, Name: strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, "."), Type: "A"},
		},
		{"name too long", dnsQuery(3, strings.Join([]string{label63, label63, label63, strings.Repeat("b", 62)}, "."), 1), nil},
		{"label too long", dnsQuery(3, strings.Repeat("a", 64), 1), nil},
		{"short header", []byte{0, 1, 1, 0, 0, 1}, nil},
		{"no question", []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}, nil},
		{"name cut", dnsQuery(1, "example.com", 1)[:18], nil},
		{"no terminator", dnsQuery(1, "example.com", 1)[:25], nil},
		{"type cut", dnsQuery(1, "example.com", 1)[:27], nil},
		{"pointer to itself", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0xc0, 12, 0, 1, 0, 1), nil},
		{"pointer into header", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 1, 'a', 0xc0, 2, 0, 1, 0, 1), nil},
		{"pointer loop", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 1, 'a', 0xc0, 12, 0, 1, 0, 1), nil},
		{"pointer cut", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 1, 'a', 0xc0), nil},
		{"extended label", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0x41, 0, 0, 1, 0, 1), nil},
		{"reserved label", append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0x80, 0, 0, 1, 0, 1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDNSQuestion(tt.msg)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// A pointer is followed when it points back before the name's start: not
// possible in the first question, but the name walk allows it elsewhere.
func TestDNSNamePointer(t *testing.T) {
	msg := append(dnsQuery(1, "example.com", 1), 3, 'w', 'w', 'w', 0xc0, 12)
	name, end, err := dnsName(msg, 29)
	if err != nil || name != "www.example.com" || end != len(msg) {
		t.Errorf("got %q, %d, %v; want www.example.com, %d", name, end, err, len(msg))
	}
}

func FuzzParseDNSQuestion(f *testing.F) {
	f.Add(dnsQuery(0x1234, "vigil-test.example.com", 1))
	f.Add(dnsQuery(0x1234, "vigil-test.example.com", 28))
	f.Add(dnsQuery(1, ".", 255))
	f.Add(append(dnsQuery(1, "example.com", 1), 3, 'w', 'w', 'w', 0xc0, 12))
	f.Add(append([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 1, 'a', 0xc0, 12, 0, 1, 0, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseDNSQuestion(b)
		if err != nil {
			if q != nil {
				t.Fatal("question with an error")
			}
			return
		}
		// 255 bytes on the wire, each shown as at most 4 characters.
		if q.Name == "" || len(q.Name) > 4*dnsMaxName || q.Type == "" {
			t.Fatalf("implausible question %+v", q)
		}
		for _, c := range []byte(q.Name) {
			if c <= ' ' || c >= 0x7f {
				t.Fatalf("unescaped byte %#x in %q", c, q.Name)
			}
		}
		// The same bytes in a record decode the same way, and never fail.
		var e event.Event
		raw := bpfNetEvent{Op: uint32(bpfNetOpNET_DNS), Family: afInet}
		if err := Decode(netRecord(t, raw, b[:min(len(b), 512)]), sensor.ClockAt(boot), &e); err != nil {
			t.Fatal(err)
		}
	})
}
