package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireCommand returns the path of a program a test needs (a server it
// talks to, such as rsyslogd or nats-server). It skips t when the program is
// missing, or fails it when VIGIL_REQUIRE_PRIVILEGED=1 (as in CI, whose
// .ci/run installs it): there a skip would hide a test that never ran.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	SkipInGuest(t, name+" is not in the guest image")
	if os.Getenv("VIGIL_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("%s is not installed (.ci/run installs it) and VIGIL_REQUIRE_PRIVILEGED=1 forbids skipping", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}
