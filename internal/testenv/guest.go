package testenv

import (
	"os"
	"testing"
)

// InGuest reports whether the tests run inside the kernel-test guest that
// test/kernels/run.sh boots under qemu (its /init sets VIGIL_GUEST=1). The
// guest has no Go toolchain, no gcc, no network and no systemd
// (test/kernels/README.md).
func InGuest() bool { return os.Getenv("VIGIL_GUEST") == "1" }

// SkipInGuest skips t inside the kernel-test guest, giving why: what the
// guest lacks that the test needs.
func SkipInGuest(t testing.TB, why string) {
	t.Helper()
	if InGuest() {
		t.Skipf("kernel-test guest (VIGIL_GUEST=1): %s", why)
	}
}
