package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// TestNoAlertsFromOrdinaryAdministration runs what an administrator does on
// an ordinary day, in the test's cgroup under the shared agent with every
// built-in rule, and fails on any alert of severity warning or above: a
// package operation with its maintainer scripts, a build, git, cron's
// scripts, a login-like session, reading configuration, systemctl, an
// archive and a new SSH key. Steps whose tool is missing are skipped,
// except the build, git, tar and su steps, which every run must do (but the
// build, in the kernel-test guest, which has no compiler).
func TestNoAlertsFromOrdinaryAdministration(t *testing.T) {
	h := join(t)
	n := &noise{t: t, h: h, dir: t.TempDir()}

	n.step("package", false, n.packageOperation)
	// The kernel-test guest has no Go toolchain or gcc: the build is
	// optional there, and the other steps still run.
	n.step("build", !testenv.InGuest(), n.build)
	n.step("git", true, n.git)
	n.step("cron", false, func() error {
		if _, err := os.Stat("/etc/cron.daily"); err != nil {
			return errSkip
		}
		return n.cmd("run-parts", "--test", "/etc/cron.daily")
	})
	n.step("su", true, func() error { return n.cmd("su", "-s", "/bin/sh", "nobody", "-c", "true") })
	n.step("config", false, func() error { return n.cmd("cat", "/etc/hostname", "/etc/os-release") })
	n.step("systemctl", false, func() error {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			return errSkip // systemd is not running here
		}
		n.h.cg.Run(t, "systemctl", "status", "--no-pager") // non-zero when a unit failed: not the point
		return nil
	})
	n.step("tar", true, func() error {
		src := filepath.Join(n.dir, "tree")
		os.MkdirAll(filepath.Join(src, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "sub", "file"), []byte("data\n"), 0o644)
		if err := n.cmd("tar", "-czf", filepath.Join(n.dir, "tree.tgz"), "-C", n.dir, "tree"); err != nil {
			return err
		}
		if err := n.cmd("tar", "-xzf", filepath.Join(n.dir, "tree.tgz"), "-C", t.TempDir()); err != nil {
			return err
		}
		return n.cmd("gzip", "-k", filepath.Join(src, "sub", "file"))
	})
	n.step("ssh-keygen", false, func() error {
		return n.cmd("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vigil-noise-test", "-f", filepath.Join(n.dir, "id_ed25519"))
	})

	// Every event of the workload has been evaluated once this exec is seen:
	// events are evaluated in order, and their alerts queued before them.
	pid, _ := h.cg.Run(t, "/bin/true", "vigil-noise-test-done")
	h.events.waitFor(t, "the last exec", isExec(pid, "/usr/bin/true"))
	time.Sleep(200 * time.Millisecond)

	t.Logf("steps run: %s; skipped: %s", strings.Join(n.ran, ", "), strings.Join(n.skipped, ", "))
	var loud []string
	h.events.mu.Lock()
	for _, e := range h.events.events {
		if e.Kind != event.KindAlert {
			continue
		}
		line := fmt.Sprintf("%s (%v): %s", e.Alert.RuleID, e.Alert.Severity, e.Alert.Message)
		if e.Alert.Severity >= event.SeverityWarning {
			loud = append(loud, line)
		} else {
			t.Logf("below warning, allowed: %s", line)
		}
	}
	h.events.mu.Unlock()
	if len(loud) > 0 {
		t.Errorf("%d alerts of warning or above from ordinary administration:\n  %s", len(loud), strings.Join(loud, "\n  "))
	}
}

var errSkip = fmt.Errorf("skipped")

type noise struct {
	t            *testing.T
	h            *harness
	dir          string
	ran, skipped []string
}

// step runs one part of the workload. A step that must run fails the test
// when its tool is missing or it fails; the others are skipped.
func (n *noise) step(name string, must bool, do func() error) {
	n.t.Helper()
	err := do()
	switch {
	case err == nil:
		n.ran = append(n.ran, name)
	case must:
		n.t.Errorf("step %s: %v", name, err)
	default:
		n.skipped = append(n.skipped, name)
		if err != errSkip {
			n.t.Logf("step %s skipped: %v", name, err)
		}
	}
}

// cmd runs a program in the cgroup; a missing program is errSkip's cause.
func (n *noise) cmd(name string, args ...string) error {
	return n.cmdIn(n.dir, nil, name, args...)
}

func (n *noise) cmdIn(dir string, env []string, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := withContext(ctx, n.h.cg.Command(path, args...)) // killed at the deadline: our own child
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out))
	}
	return nil
}

// withContext gives a prepared command a deadline: exec.CommandContext
// cannot, and the cgroup's command must keep its SysProcAttr.
func withContext(ctx context.Context, cmd *exec.Cmd) *exec.Cmd {
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.SysProcAttr = cmd.SysProcAttr
	return c
}

func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// packageOperation reinstalls a small package with apt (a real dpkg run
// with maintainer scripts and triggers). When apt cannot reach its mirror
// it builds a package of its own that installs one file, and installs and
// purges it with dpkg.
func (n *noise) packageOperation() error {
	if _, err := exec.LookPath("dpkg"); err != nil {
		return errSkip
	}
	aptErr := n.cmdIn(n.dir, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get",
		"-o", "Acquire::http::Timeout=20", "-o", "Acquire::Retries=0", "-o", "DPkg::Lock::Timeout=120",
		"install", "--reinstall", "-y", "hostname")
	if aptErr == nil {
		return nil
	}
	n.t.Logf("apt-get failed, building a package instead: %v", aptErr)
	root := filepath.Join(n.dir, "pkg")
	const name = "vigil-noise-test"
	files := map[string]string{
		"DEBIAN/control": "Package: " + name + "\nVersion: 1.0\nArchitecture: all\nMaintainer: Vigil tests <tests@vigil.invalid>\n" +
			"Description: one file, for Vigil's noise test\n",
		"DEBIAN/postinst":                                   "#!/bin/sh\nset -e\nchmod 0644 /usr/local/share/" + name + "/hello\n",
		"usr/local/share/" + name + "/hello":                "hello\n",
		"usr/local/share/doc/" + name + "/changelog.Debian": "vigil-noise-test (1.0) unstable; urgency=low\n",
	}
	for f, content := range files {
		p := filepath.Join(root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(filepath.Base(f), "post") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return err
		}
	}
	deb := filepath.Join(n.dir, name+".deb")
	if err := n.cmd("dpkg-deb", "--root-owner-group", "--build", root, deb); err != nil {
		return err
	}
	defer exec.Command("dpkg", "--purge", name).Run() // if the test stopped half-way
	if err := n.cmd("dpkg", "-i", deb); err != nil {
		return err
	}
	return n.cmd("dpkg", "--purge", name)
}

// build compiles a tiny Go module, and a C program when gcc is there.
func (n *noise) build() error {
	src := filepath.Join(n.dir, "gomod")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/noise\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n"), 0o644)
	if err := n.cmdIn(src, []string{"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod"}, "go", "build", "-o", filepath.Join(n.dir, "noise"), "."); err != nil {
		return err
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		return nil
	}
	c := filepath.Join(n.dir, "hello.c")
	os.WriteFile(c, []byte("#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n"), 0o644)
	return n.cmd("gcc", "-O2", "-o", filepath.Join(n.dir, "hello"), c)
}

// git makes a repository, adds a file and commits it.
func (n *noise) git() error {
	repo := filepath.Join(n.dir, "repo")
	os.MkdirAll(repo, 0o755)
	os.WriteFile(filepath.Join(repo, "README"), []byte("noise\n"), 0o644)
	env := []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=Vigil", "GIT_AUTHOR_EMAIL=tests@vigil.invalid",
		"GIT_COMMITTER_NAME=Vigil", "GIT_COMMITTER_EMAIL=tests@vigil.invalid"}
	for _, args := range [][]string{{"init", "-q"}, {"add", "README"}, {"commit", "-q", "-m", "first"}, {"log", "--oneline"}} {
		if err := n.cmdIn(repo, env, "git", args...); err != nil {
			return err
		}
	}
	return nil
}
