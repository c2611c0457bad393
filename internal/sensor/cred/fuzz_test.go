package cred

import (
	"encoding/binary"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/sensortest"
)

// FuzzDecode: run longer with go test -fuzz FuzzDecode ./internal/sensor/cred
func FuzzDecode(f *testing.F) {
	for _, op := range []bpfCredOp{bpfCredOpCRED_SETRESUID, bpfCredOpCRED_SETGID, 0, 77} {
		raw := bpfCredEvent{
			Hdr:  bpfEventHeader{KtimeNs: 5e9, Type: sensor.TypeCred, Size: uint32(recordSize)},
			Task: task(), Op: uint32(op), Args: [3]uint32{0, 0xffffffff, 65534}, Old: rawRoot,
		}
		b, err := binary.Append(nil, binary.LittleEndian, &raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := Decode(b, sensor.ClockAt(boot), &e); err != nil {
			return
		}
		sensortest.CheckDecoded(t, b, &e)
	})
}
