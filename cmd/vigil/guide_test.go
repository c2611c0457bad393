package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// The guides under docs/ are tested by running what they show. Their fenced
// blocks carry tags after the language, which Markdown renderers ignore:
//
//	```sh run                  commands the test runs, in order
//	```sh step=NAME [background]  the same, named, for assertions of their own
//	```text output             lines the preceding commands must print
//	```yaml file=NAME          an excerpt that must be in the example file NAME
//	```yaml refused            a rule file vigil rules validate must refuse...
//	```text error              ...with these lines on stderr
//
// So the guide and its test cannot drift apart: change one and the other fails.

type guideBlock struct {
	lang string
	tags map[string]string // "run" -> "", "file" -> "10-detect.yaml"
	body string
	line int // of the opening fence
}

func (b guideBlock) has(tag string) bool { _, ok := b.tags[tag]; return ok }

func readGuide(t *testing.T, name string) []guideBlock {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []guideBlock
	var cur *guideBlock
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			fields := strings.Fields(strings.TrimPrefix(line, "```"))
			cur = &guideBlock{tags: map[string]string{}, line: n}
			if len(fields) > 0 {
				cur.lang = fields[0]
				for _, f := range fields[1:] {
					k, v, _ := strings.Cut(f, "=")
					cur.tags[k] = v
				}
			}
			body.Reset()
		case cur != nil && line == "```":
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("docs/%s: the block at line %d is not closed", name, cur.line)
	}
	return blocks
}

// outputPattern turns a line a guide shows into a pattern: numbers stand for
// any number, "…" for anything, runs of blanks for any blanks.
func outputPattern(line string) *regexp.Regexp {
	var parts []string
	for _, f := range strings.Fields(line) {
		var p strings.Builder
		for i, seg := range strings.Split(f, "…") {
			if i > 0 {
				p.WriteString(".*")
			}
			p.WriteString(regexp.MustCompile(`[0-9]+`).ReplaceAllString(regexp.QuoteMeta(seg), `[0-9]+`))
		}
		parts = append(parts, p.String())
	}
	return regexp.MustCompile(strings.Join(parts, `\s+`))
}

// checkOutput: every line of the guide's output block matches a line of out.
func checkOutput(t *testing.T, b guideBlock, out string) {
	t.Helper()
	for _, want := range strings.Split(strings.TrimSpace(b.body), "\n") {
		re := outputPattern(want)
		found := false
		for _, got := range strings.Split(out, "\n") {
			if re.MatchString(got) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("output block at line %d: no line like %q in:\n%s", b.line, want, out)
		}
	}
}

// TestRuleWritingExamples runs docs/rule-writing.md: its commands on
// docs/rule-examples, its excerpts against the example files, and its
// refused rules through vigil rules validate, whose errors must be the
// guide's.
func TestRuleWritingExamples(t *testing.T) {
	bin := vigil(t)
	blocks := readGuide(t, "rule-writing.md")
	path := filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")
	var last string    // output of the last commands run
	var refused string // stderr of the last refused file
	counts := map[string]int{}
	for _, b := range blocks {
		switch {
		case b.lang == "sh" && b.has("run"):
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", b.body)
			cmd.Dir = filepath.Join("..", "..")
			cmd.Env = append(os.Environ(), "PATH="+path)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("block at line %d: %v\n%s", b.line, err, out)
			}
			last = string(out)
			counts["run"]++
		case b.lang == "text" && b.has("output"):
			checkOutput(t, b, last)
			counts["output"]++
		case b.lang == "yaml" && b.has("file"):
			file, err := os.ReadFile(filepath.Join("..", "..", "docs", "rule-examples", b.tags["file"]))
			if err != nil || !strings.Contains(string(file), b.body) {
				t.Errorf("the excerpt at line %d is not in docs/rule-examples/%s (%v):\n%s", b.line, b.tags["file"], err, b.body)
			}
			counts["file"]++
		case b.lang == "yaml" && b.has("refused"):
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(b.body), 0o644)
			cmd := exec.Command(bin, "rules", "validate", dir)
			cmd.Dir = dir
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err == nil {
				t.Errorf("the rule at line %d was accepted", b.line)
			}
			refused = stderr.String()
			counts["refused"]++
		case b.lang == "text" && b.has("error"):
			for _, want := range strings.Split(strings.TrimSpace(b.body), "\n") {
				if !strings.Contains(refused, want) {
					t.Errorf("error block at line %d: %q not in:\n%s", b.line, want, refused)
				}
			}
			counts["error"]++
		}
	}
	// The guide must still have what this test checks.
	for k, min := range map[string]int{"run": 1, "output": 1, "file": 8, "refused": 3, "error": 3} {
		if counts[k] < min {
			t.Errorf("docs/rule-writing.md has %d %q blocks, want at least %d", counts[k], k, min)
		}
	}
}

// missingOutput returns the lines of the guide's output block that match no
// line of out.
func missingOutput(b guideBlock, out string) []string {
	var missing []string
	for _, want := range strings.Split(strings.TrimSpace(b.body), "\n") {
		re := outputPattern(want)
		found := false
		for _, got := range strings.Split(out, "\n") {
			if re.MatchString(got) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, want)
		}
	}
	return missing
}

// TestFirstTenMinutes runs docs/first-ten-minutes.md as a new user would:
// every ```sh step= block in order, in one shell session (variables and the
// working directory carry over from block to block), the agent's block in
// the background, and checks each output the guide shows, the agent's log
// lines included. The guide builds vigil itself, from this clone.
func TestFirstTenMinutes(t *testing.T) {
	testenv.SkipInGuest(t, "needs the Go toolchain and the repository")
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("builds vigil and runs an agent")
	}
	blocks := readGuide(t, "first-ten-minutes.md")
	root, _ := filepath.Abs(filepath.Join("..", ".."))

	// The guide makes its work directory in $HOME, which must not be
	// world-writable (the built-in rules would alert on vigil itself):
	// a home of the test's own, beside this package, removed at the end.
	home, err := os.MkdirTemp(".", ".guide-home-")
	if err != nil {
		t.Fatal(err)
	}
	home, _ = filepath.Abs(home)
	state := filepath.Join(t.TempDir(), "state")
	cwd := filepath.Join(filepath.Dir(state), "cwd")
	os.WriteFile(state, nil, 0o600)
	os.WriteFile(cwd, []byte(root), 0o600)
	env := append(os.Environ(), "HOME="+home)
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} { // go's, from the real home
		out, _ := exec.Command("go", "env", v).Output()
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	// guideVar reads a variable the guide's shell set.
	guideVar := func(name string) string {
		b, _ := os.ReadFile(state)
		m := regexp.MustCompile(`(?m)^declare -x ` + name + `="([^"]*)"$`).FindSubmatch(b)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	const pinDir = "/sys/fs/bpf/vigil-first-steps"
	var agent *exec.Cmd
	var agentLog lockedBuffer
	agentDone := make(chan error, 1)
	stopAgent := func() error {
		if agent == nil {
			return nil
		}
		syscall.Kill(-agent.Process.Pid, syscall.SIGINT)
		select {
		case err := <-agentDone:
			agent = nil
			return err
		case <-time.After(30 * time.Second):
			syscall.Kill(-agent.Process.Pid, syscall.SIGKILL)
			<-agentDone
			agent = nil
			return errors.New("the agent did not stop within 30s of SIGINT")
		}
	}
	t.Cleanup(func() {
		stopAgent()
		for _, d := range []string{guideVar("DEMO"), guideVar("WORK")} {
			if strings.HasPrefix(d, "/tmp/vigil-demo.") || strings.HasPrefix(d, home+"/") {
				os.RemoveAll(d)
			}
		}
		os.RemoveAll(home)
		os.RemoveAll(pinDir)
	})

	script := func(body string, background bool) string {
		pre := "set -euo pipefail\nsource " + state + "\ncd \"$(cat " + cwd + ")\"\n"
		if background {
			return pre + "exec " + strings.TrimSpace(body) + "\n"
		}
		return pre + body + "export -p > " + state + "\npwd > " + cwd + "\n"
	}
	steps := map[string]string{} // step -> its last output
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		switch {
		case b.lang == "text" && b.has("log"):
			if agent == nil {
				t.Fatalf("log block at line %d before the agent started", b.line)
			}
			for _, want := range strings.Split(strings.TrimSpace(b.body), "\n") {
				waitFor(t, "the agent to log "+want, &agentLog, want)
			}
		case b.lang == "sh" && b.has("step"):
			name := b.tags["step"]
			if name == "cleanup" {
				if err := stopAgent(); err != nil {
					t.Errorf("vigil run: %v\n%s", err, agentLog.String())
				}
				if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
					t.Errorf("the stopped agent left %s (%v)", pinDir, err)
				}
			}
			if b.has("background") {
				agent = exec.Command("bash", "-c", script(b.body, true))
				agent.Env = env
				agent.Stdout = &agentLog
				agent.Stderr = &agentLog
				agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if err := agent.Start(); err != nil {
					t.Fatal(err)
				}
				go func() { agentDone <- agent.Wait() }()
				steps[name] = ""
				continue
			}
			var want *guideBlock
			if i+1 < len(blocks) && blocks[i+1].lang == "text" && blocks[i+1].has("output") {
				want = &blocks[i+1]
				i++
			}
			for try := 0; ; try++ {
				cmd := exec.Command("bash", "-c", script(b.body, false))
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				steps[name] = string(out)
				if err != nil {
					t.Fatalf("step %s (line %d): %v\n%s\nagent:\n%s", name, b.line, err, out, agentLog.String())
				}
				if want == nil {
					break
				}
				missing := missingOutput(*want, string(out))
				if len(missing) == 0 {
					break
				}
				if !b.has("retry") || try == 20 {
					t.Fatalf("step %s (line %d): no line like %q in its output:\n%s", name, b.line, missing, out)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	for _, s := range []string{"build", "doctor", "config", "agent", "status", "trigger", "alerts", "rule", "deny", "denied-alert", "block", "unblock", "cleanup"} {
		if _, ok := steps[s]; !ok {
			t.Errorf("docs/first-ten-minutes.md has no step %q (or the test stopped before it)", s)
		}
	}
	// What the output blocks cannot say: what must be absent.
	if strings.Contains(steps["unblock"], "192.0.2.1") {
		t.Errorf("192.0.2.1 is still listed after block remove:\n%s", steps["unblock"])
	}
	if !strings.Contains(steps["deny"], "exit status 126") { // numbers in output blocks match any number
		t.Errorf("the forbidden program's exec was not refused with 126:\n%s", steps["deny"])
	}
	if strings.Contains(steps["alerts"], "forbidden") {
		t.Errorf("alerts before the rule existed:\n%s", steps["alerts"])
	}
}
