package kernel

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/sensortest"
)

// FuzzDecode: run longer with go test -fuzz FuzzDecode ./internal/sensor/kernel
func FuzzDecode(f *testing.F) {
	for _, fx := range []fixture{
		{op: bpfKernelOpKERNEL_UNSHARE, flags: unix.CLONE_NEWUSER | 1<<40},
		{op: bpfKernelOpKERNEL_SETNS, arg: unix.CLONE_NEWNET, s1: str("net:[4026532281]")},
		{op: bpfKernelOpKERNEL_MOUNT, s1: str("/dev/sda1\x1b[2J"), s2: components("mnt", "x\n"), s3: str("ext4\xff")},
		{op: bpfKernelOpKERNEL_SIGNAL_AGENT, arg: 9, target: 1234},
		{op: bpfKernelOpKERNEL_PIDFD_AGENT, flags: 0x800, target: 1234},
		{op: bpfKernelOpKERNEL_BPF, arg: 5},
		{op: 200, ret: -1},
	} {
		f.Add(fx.record(f))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := Decode(b, sensor.ClockAt(boot), &e); err != nil {
			return
		}
		sensortest.CheckDecoded(t, b, &e)
	})
}
