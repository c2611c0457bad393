package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// vigil builds the binary once per test run.
func vigil(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// readable by the unprivileged user the not-root case runs as
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "vigil")
	out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestErrorsAreOneClearLine: what a person gets when something is wrong is one
// line that says what and what to do, a non-zero exit, and never a stack trace.
func TestErrorsAreOneClearLine(t *testing.T) {
	bin := vigil(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("output: \"-\"\nkernel:\n  pol: 5ms\n"), 0o644)

	tests := []struct {
		name string
		args []string
		uid  int // run as this uid when not 0
		want []string
	}{
		{"bad config", []string{"run", "--config", bad}, 0, []string{"bad.yaml", "line 3", "pol"}},
		{"missing config", []string{"run", "--config", filepath.Join(dir, "none.yaml")}, 0, []string{"none.yaml", "no such file"}},
		{"no agent", []string{"status", "--socket", filepath.Join(dir, "nothing.sock")}, 0, []string{"no vigil agent is running"}},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name string
			args []string
			uid  int
			want []string
		}{"not root", []string{"run"}, 65534, []string{"needs root", "sudo"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			if tt.uid != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(tt.uid), Gid: uint32(tt.uid)}}
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v, want a non-zero exit", err)
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "vigil: ") || strings.Contains(msg, "goroutine") {
				t.Errorf("stderr is not one line starting with \"vigil: \":\n%s", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(vigil(t), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "vigil ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestRulesValidateAndTest(t *testing.T) {
	bin := vigil(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(`rules:
  - id: typo
    name: a typo
    severity: warning
    on: [exec]
    condition: procss.name == "a"
    output: "{process.name}"
`), 0o644)
	var stderr strings.Builder
	cmd := exec.Command(bin, "rules", "validate", dir)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("validate accepted a bad rule")
	}
	if want := "rules.yaml:6:16: unknown field \"procss.name\""; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not contain %q", stderr.String(), want)
	}

	out, err := exec.Command(bin, "rules", "test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 0 failed") {
		t.Errorf("rules test on the built-in rules: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "rules", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "exec-from-writable-dir") {
		t.Errorf("rules list: %v\n%s", err, out)
	}
}

// testScope keeps an agent a test starts to what the test owns: on a shared
// machine it must not kill other processes (the ransomware detector judges
// every process), attach XDP to every interface, or block addresses.
const testScope = `ransomware:
  kill: false
  kernel_kill: false
response:
  interfaces: []
netdefense:
  enabled: false
`
