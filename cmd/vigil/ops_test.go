package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/testenv"
)

// TestDoctor runs `vigil doctor` on this machine (it can run Vigil: exit 0)
// and with an empty /sys: no BTF, no tracefs (it cannot: exit 1, one line on stderr).
func TestDoctor(t *testing.T) {
	testenv.SkipInGuest(t, "needs it asserts what the development host has (docs/kernels.md has the guest's)")
	testenv.RequirePrivileged(t)
	bin := vigil(t)
	out, err := exec.Command(bin, "doctor").Output()
	if err != nil || !strings.Contains(string(out), "Vigil can run here") || !strings.Contains(string(out), "deny open/exec  fanotify permission events") {
		t.Errorf("doctor: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "doctor", "-o", "json").Output()
	var r struct {
		Checks []struct{ ID, Status string }
	}
	if err != nil || json.Unmarshal(out, &r) != nil || len(r.Checks) < 10 {
		t.Errorf("doctor -o json: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "doctor", "--sysfs", t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("doctor without BTF: %v, want exit 1", err)
	}
	if !strings.Contains(string(out), "FAIL  btf") || stderr.String() != "vigil: this host cannot run Vigil: 2 check(s) failed (see above)\n" {
		t.Errorf("doctor without BTF:\nstdout %s\nstderr %q", out, stderr.String())
	}
}

func TestConfigCommands(t *testing.T) {
	testenv.SkipInGuest(t, "needs the repository's docs/config-reference.md")
	bin := vigil(t)
	dir := t.TempDir()
	def, err := exec.Command(bin, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(good, def, 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("kernel:\n  ring_buffer_mib: 3\nqueue:\n  sise: 1\n"), 0o644)

	out, err := exec.Command(bin, "config", "validate", good).CombinedOutput()
	if err != nil || string(out) != good+": ok\n" {
		t.Errorf("validate the default file: %v %q", err, out)
	}
	cmd := exec.Command(bin, "config", "validate", good, bad)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err == nil || string(out) != good+": ok\n" || !strings.Contains(stderr.String(), "bad.yaml: line 4: field sise not found") {
		t.Errorf("validate good+bad: %v\nstdout %q\nstderr %q", err, out, stderr.String())
	}
	ref, err := exec.Command(bin, "config", "reference").Output()
	committed, _ := os.ReadFile("../../docs/config-reference.md")
	if err != nil || string(ref) != string(committed) {
		t.Errorf("config reference differs from docs/config-reference.md (%v)", err)
	}
}

// TestVersionCommit: a release build (the flags of scripts/release.sh)
// says the version, commit and date it was given.
func TestVersionCommit(t *testing.T) {
	testenv.SkipInGuest(t, "needs the Go toolchain and git")
	bin := filepath.Join(t.TempDir(), "vigil")
	pkg := "github.com/vigilsec/vigil/internal/version"
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-X "+pkg+".Version=v9.9.9 -X "+pkg+".Commit=89abcdef0123456789abcdef0123456789abcdef -X "+pkg+".Date=2026-03-04T05:06:07Z", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if want := regexp.MustCompile(`^vigil v9\.9\.9 \(commit 89abcdef0123, 2026-03-04T05:06:07Z\) linux/\w+ go1\.\d+`); err != nil || !want.Match(out) {
		t.Errorf("version: %q %v", out, err)
	}
}

// TestReleaseIsReproducible runs scripts/release.sh: two builds of HEAD
// from different paths must be the same bytes. (SHARED_CACHE=1 keeps it
// quick; make release uses separate caches.)
func TestReleaseIsReproducible(t *testing.T) {
	testenv.SkipInGuest(t, "needs the Go toolchain and scripts/release.sh")
	if testing.Short() {
		t.Skip("builds vigil twice")
	}
	dist := t.TempDir()
	cmd := exec.Command("../../scripts/release.sh")
	cmd.Env = append(os.Environ(), "SHARED_CACHE=1", "DIST="+dist, "VERSION=v0.0.0-test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "(two builds identical)") {
		t.Errorf("release.sh output:\n%s", out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}  vigil-v0\.0\.0-test-linux-\w+\n$`).Match(sums) {
		t.Errorf("SHA256SUMS: %q %v", sums, err)
	}
	head, _ := exec.Command("git", "rev-parse", "HEAD").Output()
	bins, _ := filepath.Glob(filepath.Join(dist, "vigil-v0.0.0-test-linux-*"))
	if len(bins) != 1 {
		t.Fatalf("dist: %v", bins)
	}
	v, err := exec.Command(bins[0], "version").Output()
	if err != nil || !strings.Contains(string(v), "commit "+strings.TrimSpace(string(head))[:12]) {
		t.Errorf("released binary's version %q does not name HEAD %s", v, head)
	}
}
