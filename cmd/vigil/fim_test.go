package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runFIM runs `vigil fim ARGS` and returns its output and exit status.
func runFIM(t *testing.T, cfg, db string, args ...string) (string, int) {
	t.Helper()
	cmd := fimCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--config", cfg, "--db", db}, args...))
	err := cmd.Execute()
	var ee exitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), int(ee)
	}
	t.Fatalf("vigil fim %v: %v", args, err)
	return "", 0
}

func TestFIMInitCheckAccept(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "etc")
	os.MkdirAll(filepath.Join(root, "sub"), 0o755)
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.conf", "a=1\n")
	write("sub/b.conf", "b=1\n")
	write("gone.conf", "x\n")
	os.Symlink("a.conf", filepath.Join(root, "link"))
	write("skip.tmp", "excluded\n")
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte("fim:\n  paths: ["+root+"]\n  exclude: [\"*.tmp\"]\n"), 0o644)
	db := filepath.Join(dir, "vigil.db")

	out, code := runFIM(t, cfg, db, "init")
	if code != 0 || !strings.Contains(out, "6 entries") { // the dirs etc, sub; 3 files and a link
		t.Fatalf("init: %d %s", code, out)
	}
	if out, code = runFIM(t, cfg, db, "check"); code != 0 || !strings.Contains(out, "No differences") {
		t.Fatalf("check of an unchanged tree: %d\n%s", code, out)
	}

	write("a.conf", "a=2\n") // content, size stays
	os.Chmod(filepath.Join(root, "sub", "b.conf"), 0o600)
	os.Remove(filepath.Join(root, "gone.conf"))
	write("new.conf", "n\n")
	os.Remove(filepath.Join(root, "link"))
	os.Symlink("sub/b.conf", filepath.Join(root, "link"))

	out, code = runFIM(t, cfg, db, "check")
	if code != 1|2|4 {
		t.Errorf("exit %d, want 7 (added, removed, changed)", code)
	}
	for _, want := range []string{
		"Added entries:\t\t1", "Removed entries:\t\t1", "Changed entries:\t\t4", // a.conf, b.conf, link, and etc's mtime
		"f++++++++++: " + filepath.Join(root, "new.conf"),
		"f----------: " + filepath.Join(root, "gone.conf"),
		"File: " + filepath.Join(root, "a.conf"), "sha256",
		"File: " + filepath.Join(root, "sub", "b.conf"), "mode     : 100644 | 100600",
		"target   : a.conf | sub/b.conf",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "skip.tmp") {
		t.Errorf("excluded file reported:\n%s", out)
	}

	// Accept one file: it no longer differs, the rest still do.
	if _, code = runFIM(t, cfg, db, "accept", filepath.Join(root, "a.conf")); code != 0 {
		t.Fatalf("accept: %d", code)
	}
	out, _ = runFIM(t, cfg, db, "check")
	if strings.Contains(out, "File: "+filepath.Join(root, "a.conf")+"\n") {
		t.Errorf("accepted file still reported:\n%s", out)
	}
	// Accept the whole tree: nothing differs, the removed file is forgotten.
	runFIM(t, cfg, db, "accept", root)
	if out, code = runFIM(t, cfg, db, "check"); code != 0 {
		t.Errorf("after accepting everything: %d\n%s", code, out)
	}
}
