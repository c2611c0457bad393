package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// TestRunStoresAlertsAndAlertsShowsThem: `vigil run` with the default
// configuration but for its paths keeps the alert a real program raises,
// and `vigil alerts` shows it as JSON, as a table that neutralizes the
// terminal escapes and newline in the program's name, and with --follow.
func TestRunStoresAlertsAndAlertsShowsThem(t *testing.T) {
	testenv.SkipInGuest(t, "the agent starts slower under emulation than the test waits")
	testenv.RequirePrivileged(t)
	bin := vigil(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "lib", "vigil.db")
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output: %s
status_socket: %s
store:
  path: %s
web:
  listen: 127.0.0.1:0
  token_file: %s
metrics:
  listen: 127.0.0.1:0
`+testScope, filepath.Join(dir, "events.json"), filepath.Join(dir, "status.sock"), db, filepath.Join(dir, "lib", "web.token"))), 0o644)

	_, stderr := startAgent(t, bin, cfg)
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v %v, want mode 0600", err, st)
	}

	cg := testenv.NewCgroup(t)
	prog := tmpProgram(t, "evil\x1b]0;pwned\x07\nFAKE ROW")
	pid, _ := cg.Run(t, prog, "arg")

	var out []byte
	deadline := time.Now().Add(10 * time.Second)
	for len(out) == 0 {
		var err error
		out, err = exec.Command(bin, "alerts", "--db", db, "--pid", fmt.Sprint(pid), "-o", "json").Output()
		if err != nil {
			t.Fatalf("vigil alerts: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert for pid %d after 10s; agent log:\n%s", pid, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var doc struct {
		Rule    struct{ ID string }
		Process struct {
			PID        int
			Executable string
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil || doc.Rule.ID != "exec-from-writable-dir" || doc.Process.Executable != prog {
		t.Errorf("alert JSON (%v): %s", err, out)
	}

	table, err := exec.Command(bin, "alerts", "--db", db, "--pid", fmt.Sprint(pid), "--severity", "warning", "--since", "1h").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(table), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") {
		t.Errorf("want a header and one row, got:\n%q", table)
	}
	if strings.ContainsAny(string(table), "\x1b\x07\r") {
		t.Errorf("table output carries terminal controls: %q", table)
	}
	if want := `evil\e]0;pwned\x07\nFAKE ROW`; !strings.Contains(string(table), want) {
		t.Errorf("table does not show the name escaped as %q:\n%s", want, table)
	}
	if out, _ := exec.Command(bin, "alerts", "--db", db, "--pid", fmt.Sprint(pid), "--severity", "error").Output(); strings.Count(string(out), "\n") != 1 {
		t.Errorf("--severity error shows a warning:\n%s", out)
	}

	// --follow prints an alert stored after it started, and stops on SIGINT.
	var follow lockedBuffer
	second := tmpProgram(t, "followed")
	f := exec.Command(bin, "alerts", "--db", db, "--follow", "--process", "followed")
	f.Stdout = &follow
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the header", &follow, "TIME")
	pid2, _ := cg.Run(t, second)
	waitFor(t, "the followed alert", &follow, fmt.Sprintf("exec-from-writable-dir  %d ", pid2))
	f.Process.Signal(syscall.SIGINT)
	if err := f.Wait(); err != nil {
		t.Errorf("vigil alerts --follow: %v", err)
	}
}

func tmpProgram(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vigil-cli-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, _ := os.ReadFile("/usr/bin/true")
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAlertsErrors(t *testing.T) {
	bin := vigil(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"alerts", "--db", filepath.Join(dir, "none.db")}, "no store at"},
		{[]string{"alerts", "--db", filepath.Join(dir, "none.db"), "--severity", "loud"}, `--severity "loud"`},
		{[]string{"events", "--db", filepath.Join(dir, "none.db"), "--kind", "exce"}, `--kind "exce"`},
		{[]string{"alerts", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"alerts", "-o", "yaml"}, `--output "yaml"`},
	} {
		var stderr strings.Builder
		cmd := exec.Command(bin, tt.args...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			t.Errorf("%v succeeded", tt.args)
		}
		if !strings.Contains(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line with %q", tt.args, stderr.String(), tt.want)
		}
	}
}
