package kernel

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// The cost the sensor adds to syscalls that are frequent and almost never
// reported: compare the "none" and "enabled" runs of each benchmark
// (go test -bench . -count 5 ./internal/sensor/kernel/).

func benchSensor(b *testing.B, mode string) {
	b.Helper()
	if mode == "none" {
		return
	}
	testenv.RequirePrivileged(b)
	shared, err := sensor.NewShared(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shared.Close() })
	s, err := New(Config{}, shared)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := shared.SetKind(sensor.TypeKernel, sensor.KindFilter{Enabled: mode == "enabled"}); err != nil {
		b.Fatal(err)
	}
}

var modes = []string{"none", "disabled", "enabled"}

// BenchmarkPlainClone: clone(SIGCHLD) in a small process (the trigger; the
// test process's own large heap would make its forks slow), the child exits
// at once, the parent waits.
func BenchmarkPlainClone(b *testing.B) {
	bin := triggerBin(b)
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			benchSensor(b, mode)
			b.ResetTimer()
			if out, err := exec.Command(bin, "forks", strconv.Itoa(b.N)).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		})
	}
}

// BenchmarkKill: kill(ppid, 0), a signal aimed at a process that is not the agent.
func BenchmarkKill(b *testing.B) {
	ppid := os.Getppid()
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			benchSensor(b, mode)
			for b.Loop() {
				unix.Kill(ppid, 0)
			}
		})
	}
}
