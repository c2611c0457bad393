package web

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// Hostile strings from the monitored host (a program named with terminal
// escapes, HTML, a newline, a NUL and bytes that are not UTF-8; a 4 KiB
// path; 10,000 arguments) go through the real store to the API as valid
// JSON that carries no raw control character and no raw '<', and decode
// to the strings, with invalid UTF-8 as U+FFFD and nothing else changed.
func TestHostileStringsThroughStoreAndAPI(t *testing.T) {
	srv, st := serve(t)
	name := "evil\x1b]0;pwned\x07\n<img src=x onerror=alert(1)>\x00\xff\xfe"
	path := "/tmp/" + strings.Repeat("d/", 2046) + name
	args := make([]string, 10_000)
	for i := range args {
		args[i] = "\x1b[2J</script>\r\n\xc3"
	}
	trig := &event.Event{Time: time.Now(), Kind: event.KindExec, Exec: &event.Exec{}, Process: event.Process{PID: 4242, Name: name,
		Executable: path, Args: args, ArgsCount: len(args), EntityID: "e1", AUID: event.NoUID, SessionID: event.NoUID}}
	st.Write(event.NewAlert(event.Alert{RuleID: "exec-from-writable-dir", Severity: event.SeverityWarning, Message: "ran " + path}, trig))

	// encoding/json writes each byte that is not UTF-8 as U+FFFD.
	valid := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			b.WriteRune(r)
		}
		return b.String()
	}
	fetch := func(u string) []byte {
		t.Helper()
		resp := get(t, http.DefaultClient, srv.URL+u, token)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !json.Valid(b) {
			t.Fatalf("GET %s: not valid JSON", u)
		}
		if i := strings.IndexFunc(string(b), func(r rune) bool { return r < 0x20 && r != '\n' || r == '<' || r == '>' }); i >= 0 {
			t.Fatalf("GET %s: raw %q at %d: %q", u, b[i], i, b[max(0, i-40):min(len(b), i+40)])
		}
		return b
	}

	var list []store.Alert
	deadline := time.Now().Add(5 * time.Second)
	for len(list) == 0 && time.Now().Before(deadline) {
		if err := json.Unmarshal(fetch("/api/alerts"), &list); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list) != 1 {
		t.Fatalf("%d alerts listed, want 1", len(list))
	}
	a := list[0]
	if a.ProcessName != valid(name) || a.Executable != valid(path) || a.Message != valid("ran "+path) {
		t.Errorf("listed alert changed the strings:\n name %q\n exe  %q...", a.ProcessName, a.Executable[:min(60, len(a.Executable))])
	}

	var d Detail
	if err := json.Unmarshal(fetch("/api/alerts/1"), &d); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Process struct {
			Name       string
			Executable string
			Args       []string
		}
	}
	if err := json.Unmarshal(d.Trigger, &doc); err != nil {
		t.Fatalf("trigger: %v", err)
	}
	if doc.Process.Name != valid(name) || doc.Process.Executable != valid(path) || len(doc.Process.Args) != len(args) || doc.Process.Args[9999] != valid(args[9999]) {
		t.Errorf("trigger: name %q, %d args, last %q", doc.Process.Name, len(doc.Process.Args), doc.Process.Args[len(doc.Process.Args)-1])
	}
}

// The page builds the DOM from data with textContent only: app.js has no
// HTML sink, and no code from strings.
func TestPageUsesNoHTMLSinks(t *testing.T) {
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	sinks := regexp.MustCompile(`\.(innerHTML|outerHTML|insertAdjacentHTML|srcdoc)\b|document\.write|\beval\s*\(|new\s+Function\b|setTimeout\s*\(\s*["'` + "`" + `]|\.setAttribute\s*\(\s*["'](on|href|src)|\.href\s*=|\.src\s*=`)
	for i, l := range strings.Split(string(js), "\n") {
		if m := sinks.FindString(l); m != "" && !strings.Contains(l, `location.href = "/login"`) {
			t.Errorf("assets/app.js:%d: %s: %s", i+1, m, strings.TrimSpace(l))
		}
	}
	if !strings.Contains(string(js), ".textContent = ") {
		t.Error("app.js sets no textContent: the check above looks at the wrong file")
	}
}
