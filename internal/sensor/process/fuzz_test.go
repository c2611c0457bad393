package process

import (
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/sensortest"
)

// FuzzDecode feeds the process decoders records the kernel never writes:
// lengths that lie, strings without NULs, invalid UTF-8, terminal escapes.
// The byte after the record picks the decoder, so one corpus covers all
// three. Run longer with: go test -fuzz FuzzDecode ./internal/sensor/process
func FuzzDecode(f *testing.F) {
	f.Add(execRecord(f, 0, 3, []string{"usr", "bin", "true"}, []string{"usr", "bin"}, "./true", []byte("./true\x00a\x00b c\x00")), byte(sensor.TypeExec))
	f.Add(execRecord(f, uint32(bpfExecFlagEXEC_INTERPRETED|bpfExecFlagEXEC_ARGS_TRUNCATED), 10000,
		[]string{"tmp", "\x1b[31mred"}, []string{"tmp\n"}, "../x\xff\xfe", []byte("a\x00\x1b]0;title\x07\x00\xc3\x28")), byte(sensor.TypeExec))
	f.Add(execRecord(f, 0, 0, nil, nil, "", nil), byte(sensor.TypeExec))
	f.Add(make([]byte, forkSize), byte(sensor.TypeFork))
	f.Add(make([]byte, exitSize), byte(sensor.TypeExit))
	f.Fuzz(func(t *testing.T, rec []byte, typ byte) {
		decode := DecodeExec
		switch uint16(typ) % 3 {
		case sensor.TypeFork % 3:
			decode = DecodeFork
		case sensor.TypeExit % 3:
			decode = DecodeExit
		}
		var e event.Event
		if err := decode(rec, sensor.ClockAt(boot), &e); err != nil {
			return
		}
		sensortest.CheckDecoded(t, rec, &e)
		if e.Kind == event.KindExec && len(e.Process.Args) > len(rec) {
			t.Fatalf("%d args from a %d-byte record", len(e.Process.Args), len(rec))
		}
	})
}
