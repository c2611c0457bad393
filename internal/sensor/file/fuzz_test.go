package file

import (
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/sensortest"
)

// FuzzDecode: run longer with go test -fuzz FuzzDecode ./internal/sensor/file
func FuzzDecode(f *testing.F) {
	f.Add(rec(f, bpfFileEvent{Op: uint32(bpfFileOpFILE_OPEN), Flags: resolved | watched}, enc("/etc/shadow"), cstr("/etc/shadow"), nil, nil))
	f.Add(rec(f, bpfFileEvent{Op: uint32(bpfFileOpFILE_RENAME), Flags: truncated}, enc("/tmp"), cstr("a\nb\x1b[0m\xff"), enc("/etc"), cstr("../x")))
	f.Add(rec(f, bpfFileEvent{Op: uint32(bpfFileOpFILE_SYMLINK)}, nil, cstr("/etc/passwd"), enc("/tmp"), cstr("l")))
	f.Add(rec(f, bpfFileEvent{Op: 99, Ret: -13}, nil, nil, nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := Decode(b, sensor.ClockAt(boot), &e); err != nil {
			return
		}
		sensortest.CheckDecoded(t, b, &e)
	})
}
