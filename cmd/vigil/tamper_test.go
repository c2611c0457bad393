package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testenv"
)

// TestMain lets the test binary double as a trigger program: with
// VIGIL_TRIGGER set it does that one thing instead of running tests, so a
// test needs no other program for it (the kernel-test guest's python3 has
// no ctypes, for one).
func TestMain(m *testing.M) {
	if name := os.Getenv("VIGIL_TRIGGER"); name != "" {
		if err := trigger(name); err != nil {
			fmt.Fprintln(os.Stderr, "trigger:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func trigger(name string) error {
	switch name {
	case "ptrace-seize":
		// Seize VIGIL_TRIGGER_PID (it keeps running) and exit, which
		// detaches. The tracer is a thread: stay on the one that seized.
		pid, err := strconv.Atoi(os.Getenv("VIGIL_TRIGGER_PID"))
		if err != nil {
			return fmt.Errorf("VIGIL_TRIGGER_PID: %w", err)
		}
		runtime.LockOSThread()
		if err := unix.PtraceSeize(pid); err != nil {
			return fmt.Errorf("PTRACE_SEIZE %d: %w", pid, err)
		}
		return nil
	case "pidfd-open":
		// A pidfd for itself, then for VIGIL_TRIGGER_PID.
		pid, err := strconv.Atoi(os.Getenv("VIGIL_TRIGGER_PID"))
		if err != nil {
			return fmt.Errorf("VIGIL_TRIGGER_PID: %w", err)
		}
		for _, p := range []int{os.Getpid(), pid} {
			fd, err := unix.PidfdOpen(p, 0)
			if err != nil {
				return fmt.Errorf("pidfd_open %d: %w", p, err)
			}
			unix.Close(fd)
		}
		return nil
	}
	return fmt.Errorf("unknown trigger %q", name)
}

// TestTamperingRaisesAlerts starts an agent of its own and tampers with it
// the ways an intruder blinds a security agent: signals, ptrace, a write into
// one of its BPF maps with bpf(), edits of its rules and configuration, and
// finally SIGTERM. Each must end in an alert in the agent's output (the last
// one written on the way out), and the agent's files must be root-only.
func TestTamperingRaisesAlerts(t *testing.T) {
	testenv.RequirePrivileged(t)
	if _, err := exec.LookPath("bpftool"); err != nil {
		t.Fatalf("bpftool is needed (.ci/run installs it): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := vigil(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules.d")
	os.Mkdir(rulesDir, 0o700)
	output := filepath.Join(dir, "events.json")
	db := filepath.Join(dir, "lib", "vigil.db")
	sock := filepath.Join(dir, "run", "status.sock")
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("output: %s\nstatus_socket: %s\nstore:\n  path: %s\nweb:\n  listen: \"\"\nmetrics:\n  listen: \"\"\nrules:\n  dirs: [%s]\n"+testScope,
		output, sock, db, rulesDir)), 0o600)

	var stderr lockedBuffer
	agent := exec.Command(bin, "run", "--config", cfg)
	agent.Stderr = &stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			agent.Process.Signal(syscall.SIGINT)
			agent.Wait()
		}
	}()
	waitFor(t, "agent start", &stderr, "process cache filled")
	pid := agent.Process.Pid
	for deadline := time.Now().Add(limit(10 * time.Second)); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
	}

	// Root-only: the store, the status socket and the event output.
	for _, p := range []string{db, sock, output} {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode().Perm()&0o077 != 0 || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %v, owner %d: want root's alone", p, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid)
		}
	}
	for _, d := range []string{filepath.Dir(db), filepath.Dir(sock)} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm()&0o022 != 0 {
			t.Errorf("directory %s: %v %v: want no one but root able to write", d, err, st.Mode())
		}
	}

	cg := testenv.NewCgroup(t)
	run := func(env []string, name string, args ...string) {
		t.Helper()
		cmd := cg.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	// Signals that do the agent no harm, but are aimed at it.
	run(nil, "kill", "-CONT", fmt.Sprint(pid))
	run(nil, "kill", "-0", fmt.Sprint(pid))
	// ptrace: seize the agent's main thread (it keeps running) and exit,
	// which detaches; this test binary does it (TestMain).
	run([]string{"VIGIL_TRIGGER=ptrace-seize", fmt.Sprintf("VIGIL_TRIGGER_PID=%d", pid)}, self)
	// pidfd_open: of itself (no alert), then of the agent, as a thief of
	// its descriptors with pidfd_getfd would start.
	run([]string{"VIGIL_TRIGGER=pidfd-open", fmt.Sprintf("VIGIL_TRIGGER_PID=%d", pid)}, self)
	// A write into one of the agent's maps: mark a task name in its comm
	// filter, which changes nothing while the filter is off.
	mapID := agentMap(t, pid, "vigil_comms")
	run(nil, "bpftool", append(append([]string{"map", "update", "id", fmt.Sprint(mapID), "key", "hex"},
		strings.Fields("76 69 67 69 6c 2d 74 61 6d 70 65 72 00 00 00 00")...), "value", "hex", "01")...)
	// Its rules and its configuration.
	run(nil, "sh", "-c", "echo '# tampered' > "+filepath.Join(rulesDir, "zz-tamper.yaml"))
	run(nil, "sh", "-c", "echo '# tampered' >> "+cfg)

	want := map[string]string{ // rule -> what its message must say
		"agent-signalled":      "SIGCONT",
		"agent-ptraced":        "PTRACE_SEIZE",
		"agent-bpf-modified":   "BPF_MAP_UPDATE_ELEM",
		"agent-files-modified": "zz-tamper.yaml",
		"agent-pidfd-opened":   "opened a pidfd for the agent",
	}
	waitAlerts(t, output, want, &stderr)
	waitAlerts(t, output, map[string]string{"agent-files-modified": "vigil.yaml", "agent-signalled": "SIG0"}, &stderr)

	// SIGTERM stops the agent; the alert about it is written before it exits.
	if err := exec.Command("kill", "-TERM", fmt.Sprint(pid)).Run(); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err != nil {
		t.Errorf("vigil run after SIGTERM: %v\n%s", err, stderr.String())
	}
	exited = true
	if got := alertMessages(t, output)["agent-signalled"]; !strings.Contains(strings.Join(got, "\n"), "SIGTERM") {
		t.Errorf("no agent-signalled alert for SIGTERM in the output; agent-signalled alerts: %q", got)
	}
	// One pidfd_open was of the agent, the other of the trigger itself.
	if got := alertMessages(t, output)["agent-pidfd-opened"]; len(got) != 1 {
		t.Errorf("agent-pidfd-opened alerts: %q, want the one for the agent's pid", got)
	}
}

// agentMap is the id of the agent's BPF map of that name, found through
// the agent's descriptors (/proc/PID/fdinfo: map_id) and bpftool.
func agentMap(t *testing.T, pid int, name string) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l != "anon_inode:bpf-map" {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		var id int
		for _, line := range strings.Split(string(info), "\n") {
			fmt.Sscanf(line, "map_id:\t%d", &id)
		}
		out, err := exec.Command("bpftool", "map", "show", "id", fmt.Sprint(id), "-j").Output()
		if err != nil {
			continue
		}
		var m struct{ Name string }
		if json.Unmarshal(out, &m) == nil && m.Name == name {
			return id
		}
	}
	t.Fatalf("the agent (pid %d) holds no map %s", pid, name)
	return 0
}

// alertMessages reads the agent's JSON lines: rule id -> alert messages.
func alertMessages(t *testing.T, output string) map[string][]string {
	t.Helper()
	f, err := os.Open(output)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var d struct {
			Rule    struct{ ID string }
			Message string
		}
		if json.Unmarshal(sc.Bytes(), &d) == nil && d.Rule.ID != "" {
			got[d.Rule.ID] = append(got[d.Rule.ID], d.Message)
		}
	}
	return got
}

func waitAlerts(t *testing.T, output string, want map[string]string, stderr *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(limit(15 * time.Second))
	for {
		got := alertMessages(t, output)
		missing := []string{}
		for rule, text := range want {
			if !strings.Contains(strings.Join(got[rule], "\n"), text) {
				missing = append(missing, rule+" ("+text+")")
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert %v after %v; alerts: %q\nagent log:\n%s", missing, limit(15*time.Second), got, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
