package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/detect/ransom"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// startRansomAgent runs an agent whose ransomware sensor (and so its kills)
// is restricted to the test's cgroup.
func startRansomAgent(t *testing.T, kernelKill bool, decoyDirs ...string) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	cfg := testConfig(t.TempDir())
	h := &harness{cg: testenv.NewCgroup(t), output: cfg.Output, done: make(chan error, 1)}
	cfg.Ransomware.Kill = true
	cfg.Ransomware.KernelKill = kernelKill
	cfg.Ransomware.OnlyCgroup = strings.TrimPrefix(h.cg.Path, cfg.Paths.Cgroupfs)
	cfg.Ransomware.Decoys.Dirs = decoyDirs
	h.events = newCollector(h.cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), h.events)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	<-a.Ready()
	return h
}

func isRansomAlert(rule string) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Kind == event.KindAlert && e.Alert.RuleID == rule }
}

// runSim runs the simulator over 200 generated files in the test's cgroup,
// under a shell that starts a child first (the simulator inherits it as its
// own), and returns how many files it finished and how it ended.
func runSim(t *testing.T, h *harness, bin, dir string, args ...string) (int, syscall.WaitStatus, int) {
	t.Helper()
	testenv.GenerateDocs(t, dir, 200, 11)
	pidFile := filepath.Join(t.TempDir(), "child")
	script := `sleep 60 & echo $! > ` + pidFile + `; exec "$@"`
	cmd := h.cg.Command("sh", append([]string{"-c", script, "sh", bin}, append(args, dir)...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidFile)
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return strings.Count(out.String(), "\n"), cmd.ProcessState.Sys().(syscall.WaitStatus), child
}

// childGone waits for the process to be gone (or a zombie).
func childGone(pid int) bool {
	for range 100 {
		b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// The simulator, in each variant and in slow mode, is killed within a
// handful of its 200 files, with its child; the alert lists the files.
func TestRansomwareSimulatorStopped(t *testing.T) {
	testenv.SkipInGuest(t, "needs the Go toolchain to build test/ransomsim")
	bin := testenv.BuildTool(t, "test/ransomsim")
	cases := []struct {
		name       string
		kernelKill bool
		args       []string
	}{
		{"inplace", true, []string{"-mode", "inplace"}},
		{"newdel", true, []string{"-mode", "newdel"}},
		{"rename", true, []string{"-mode", "rename"}},
		{"slow", true, []string{"-mode", "inplace", "-delay", "200ms"}},
		// User space alone (kernel kill off): a pidfd kill when the detector
		// crosses its threshold; slow enough that a poll lands in time.
		{"user-space-slow", false, []string{"-mode", "newdel", "-delay", "100ms"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := startRansomAgent(t, c.kernelKill)
			dir := filepath.Join(t.TempDir(), "victims")
			done, ws, child := runSim(t, h, bin, dir, c.args...)
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("simulator not killed: %v after %d of 200 files", ws, done)
			}
			t.Logf("killed after %d of 200 files", done)
			if done > 10 {
				t.Errorf("simulator finished %d files, want at most 10", done)
			}
			al := h.events.waitFor(t, "ransomware alert", isRansomAlert(ransom.RuleRansomware))
			if !strings.Contains(al.Alert.Message, dir) {
				t.Errorf("alert does not list the files: %s", al.Alert.Message)
			}
			h.events.waitFor(t, "kill response", func(e *event.Event) bool {
				return e.Kind == event.KindResponse && e.Response.RuleID == ransom.RuleRansomware && e.Response.Action == "kill" &&
					e.Response.Outcome == event.ResponseDone && int(e.Process.PID) == child
			})
			if !childGone(child) {
				t.Errorf("the simulator's child %d is still running", child)
			}
		})
	}
}

func TestRansomwareDecoy(t *testing.T) {
	decoys := t.TempDir()
	h := startRansomAgent(t, true, decoys)
	decoy := filepath.Join(decoys, "!0000-vigil-decoy.docx")
	if _, err := os.Stat(decoy); err != nil {
		t.Fatalf("decoy not planted: %v", err)
	}
	cmd := h.cg.Command("mv", decoy, decoy+".enc")
	cmd.Run()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("renamer of a decoy not killed: %v", ws)
	}
	al := h.events.waitFor(t, "decoy alert", isRansomAlert(ransom.RuleDecoy))
	if !strings.Contains(al.Alert.Message, decoy) {
		t.Errorf("message: %s", al.Alert.Message)
	}
	h.stop(t)
	if _, err := os.Stat(decoy + ".enc"); err != nil {
		t.Errorf("renamed decoy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(decoys, "~zzzz-vigil-decoy.xlsx")); !os.IsNotExist(err) {
		t.Errorf("the agent left its decoy behind: %v", err)
	}
}

// Everyday programs that write, compress, encrypt, rename and delete many
// files run under the agent without a ransomware alert and unharmed.
func TestRansomwareBenignWorkloadsQuiet(t *testing.T) {
	testenv.SkipInGuest(t, "needs gzip, zstd, gpg, rsync, git and gcc, which the guest image lacks")
	h := startRansomAgent(t, true)
	dir := t.TempDir()
	docs := filepath.Join(dir, "docs")
	testenv.GenerateDocs(t, docs, 200, 3)
	// Random data too: compressed and encrypted payloads are everyday data.
	rnd := filepath.Join(dir, "random")
	os.Mkdir(rnd, 0o755)
	for i := range 30 {
		b := make([]byte, 8192)
		rand.Read(b)
		os.WriteFile(filepath.Join(rnd, "blob"+itoa(i+1)+".bin"), b, 0o644)
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	for i := range 20 {
		os.WriteFile(filepath.Join(src, "f"+itoa(i+1)+".c"), []byte("int f"+itoa(i+1)+"(int x) { return x * "+itoa(i+2)+"; }\n"), 0o644)
	}
	os.WriteFile(filepath.Join(src, "main.c"), []byte("int main(void) { return 0; }\n"), 0o644)

	workloads := []struct{ name, script string }{
		{"tar", "cd " + dir + " && tar cf all.tar docs random && mkdir x && tar xf all.tar -C x && tar xf all.tar -C x"},
		{"gzip", "cd " + dir + " && cp -r docs gz && gzip -r gz && gunzip -r gz"},
		{"zstd", "cd " + dir + " && zstd -q --rm -r docs/folder1 && zstd -q -d --rm -r docs/folder1"},
		{"gpg", "cd " + dir + " && gpg --batch --yes --passphrase p --pinentry-mode loopback -c docs/folder2/doc002.csv && rm docs/folder2/doc002.csv"},
		{"rsync", "cd " + dir + " && rsync -a docs random backup/ && rsync -a --delete docs/ backup/"},
		{"git", "cd " + dir + " && git init -q repo && cp -r docs random repo/ && cd repo && git add -A && " +
			"git -c user.name=t -c user.email=t@t commit -qm one && git checkout -qb two && git rm -rq docs && " +
			"git -c user.name=t -c user.email=t@t commit -qm two && git checkout -q - && git checkout -q two && git checkout -q -"},
		{"cc", "cd " + src + " && for f in *.c; do gcc -O2 -c $f; done && gcc -o prog *.o && ./prog"},
		// dpkg's unpack: each file to NAME.dpkg-new, then renamed over NAME.
		{"dpkg-unpack", "cd " + dir + " && mkdir -p root && cp -r random root/ && cd root && for f in random/*; do " +
			"dd status=none if=/usr/bin/true of=$f.dpkg-new && mv $f.dpkg-new $f; done"},
	}
	for _, w := range workloads {
		cmd := h.cg.Command("sh", "-c", w.script)
		cmd.Env = append(os.Environ(), "HOME="+dir, "GNUPGHOME="+filepath.Join(dir, "gnupg"))
		os.MkdirAll(filepath.Join(dir, "gnupg"), 0o700)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", w.name, err, out)
		}
	}
	// The last workload's records are in once a marker's are.
	marker := h.cg.Command("python3", "-c", "import os; open('"+filepath.Join(dir, "marker")+"', 'w').write('x' * 300); os.unlink('"+filepath.Join(dir, "marker")+"')")
	if err := marker.Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, rule := range []string{ransom.RuleRansomware, ransom.RuleDecoy} {
		if n := h.events.count(isRansomAlert(rule)); n > 0 {
			h.events.mu.Lock()
			for _, e := range h.events.events {
				if e.Kind == event.KindAlert {
					t.Errorf("alert: %s", e.Alert.Message)
				}
			}
			h.events.mu.Unlock()
		}
	}
	if n := h.events.count(func(e *event.Event) bool { return e.Kind == event.KindResponse }); n > 0 {
		t.Errorf("%d responses to benign workloads", n)
	}
}
