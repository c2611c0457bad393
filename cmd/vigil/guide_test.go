package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
