package proc

import "strconv"

// NsPerTick is the length of one USER_HZ clock tick (USER_HZ is 100 on every
// architecture Linux supports), the unit of /proc/<pid>/stat's starttime.
const NsPerTick = 10_000_000

// Key identifies a process for as long as the machine runs: its PID together
// with its start time in clock ticks since boot. PIDs are reused; a PID and a
// start time are not.
//
// The start time is kept in ticks, not nanoseconds, because /proc only gives
// ticks: a process seen by a sensor (nanoseconds since boot, CLOCK_BOOTTIME)
// and the same process read from /proc get the same Key. The kernel derives
// the ticks by truncating the very nanoseconds the sensors read, so the match
// is exact.
type Key struct {
	PID        uint32
	StartTicks uint64
}

// KeyOf returns the key of the process with the given PID that started
// startBootNs nanoseconds after boot (event.Process.StartBoot).
func KeyOf(pid uint32, startBootNs uint64) Key {
	return Key{PID: pid, StartTicks: startBootNs / NsPerTick}
}

// String formats k as "pid@ticks".
func (k Key) String() string {
	b := make([]byte, 0, 32)
	b = strconv.AppendUint(b, uint64(k.PID), 10)
	b = append(b, '@')
	b = strconv.AppendUint(b, k.StartTicks, 10)
	return string(b)
}

// FNV-1a, 64 bits (hash/fnv), inlined so that an id costs one allocation.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// bootHash is the FNV-1a state after hashing bootID and a NUL separator.
func bootHash(bootID string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(bootID); i++ {
		h ^= uint64(bootID[i])
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the NUL separator: XOR with 0 changes nothing
	return h
}

// entityID continues the boot hash with the key, little-endian, and formats
// the sum as 16 hex digits.
func entityID(h uint64, k Key) string {
	for i := 0; i < 4; i++ {
		h ^= uint64(byte(k.PID >> (8 * i)))
		h *= fnvPrime64
	}
	for i := 0; i < 8; i++ {
		h ^= uint64(byte(k.StartTicks >> (8 * i)))
		h *= fnvPrime64
	}
	const hexDigits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

// EntityID returns the stable id of the process k on the boot bootID: 16 hex
// digits of the FNV-1a (64-bit) hash of bootID, a NUL byte, the PID (4 bytes,
// little-endian) and the start ticks (8 bytes, little-endian). It is unique
// across reboots and PID reuse, and the same whether the process was learned
// from a sensor or from /proc. It fills event.Process.EntityID.
func EntityID(bootID string, k Key) string {
	return entityID(bootHash(bootID), k)
}

// State is where a cached process is in its life.
type State uint8

const (
	// Alive: no exit has been seen for the process.
	Alive State = iota + 1
	// Exited: the process is gone; its entry stays for late lookups
	// (Config.ExitGrace) and for as long as processes it started are cached,
	// so that their ancestry still resolves.
	Exited
	// Reaped: the entry was removed. Lookups of a reaped key miss; the state
	// appears in statistics (Stats.Reaped, SweepStats.Reaped).
	Reaped
)

var stateNames = [...]string{
	Alive:  "alive",
	Exited: "exited",
	Reaped: "reaped",
}

// String returns "alive", "exited", "reaped", or "unknown" for the zero or
// any other value.
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "unknown"
}
