package netsensor

import (
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/sensortest"
)

// FuzzDecode: the whole record, where FuzzParseDNSQuestion is its payload.
// Run longer with go test -fuzz FuzzDecode ./internal/sensor/net
func FuzzDecode(f *testing.F) {
	f.Add(netRecord(f, bpfNetEvent{Op: uint32(bpfNetOpNET_CONNECT), Family: afInet, Daddr: v4("10.0.0.1"), Dport: 443}, nil))
	f.Add(netRecord(f, bpfNetEvent{Op: uint32(bpfNetOpNET_DNS), Family: afInet}, dnsQuery(7, "a\x1b.example.com", 1)))
	f.Add(netRecord(f, bpfNetEvent{Op: 99, Family: 77}, []byte("\xff\xfe")))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := Decode(b, sensor.ClockAt(boot), &e); err != nil {
			return
		}
		sensortest.CheckDecoded(t, b, &e)
	})
}
