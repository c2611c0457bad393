package testenv

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireKernel skips t on kernels older than major.minor, naming what the
// test needs from the newer one (e.g. tcx links, 6.6).
func RequireKernel(t testing.TB, major, minor int, what string) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	if ma < major || ma == major && mi < minor {
		t.Skipf("kernel %d.%d lacks %s (%d.%d+)", ma, mi, what, major, minor)
	}
}
