package sensor

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock turns kernel CLOCK_BOOTTIME timestamps into wall-clock time. The
// offset is taken once, at start: a later change of the wall clock does not
// move event times, which is what an ordering of events needs.
type Clock struct {
	boot time.Time // wall time at boot
}

// NewClock measures the boot time now.
func NewClock() Clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	now := time.Now()
	return Clock{boot: now.Add(-time.Duration(ts.Nano()))}
}

// ClockAt is a Clock for a given boot time, for tests and replay.
func ClockAt(boot time.Time) Clock { return Clock{boot: boot} }

// Boot is the wall-clock time the machine booted.
func (c Clock) Boot() time.Time { return c.boot }

// Time converts nanoseconds since boot to wall-clock time.
func (c Clock) Time(bootNs uint64) time.Time { return c.boot.Add(time.Duration(bootNs)) }
