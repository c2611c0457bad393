package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/testenv"
)

// terminalUnsafe says what in out a terminal would interpret: a C0 or C1
// control other than the newline ending each line, DEL, a format character
// (bidi overrides, zero-width), or bytes that are not UTF-8.
func terminalUnsafe(out string) string {
	if !utf8.ValidString(out) {
		return "bytes that are not UTF-8"
	}
	for _, r := range out {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029) {
			return fmt.Sprintf("raw %U", r)
		}
	}
	return ""
}

// TestHostileStringsThroughEventsAndRecordings: a real program whose name
// carries terminal escapes, a newline, a carriage return, a bidi override
// and bytes that are not UTF-8, run with hostile arguments and 10,000 more
// (argv is cut at 16 KiB), and another run from a path of about 3.5 KiB,
// through a real agent storing exec events and recording (--record):
// `vigil events` prints one escaped row each, truncating long cells with a
// visible "…"; the recording holds the exact bytes the kernel reported;
// `vigil replay` of it writes valid JSON lines; `vigil trace exec` prints
// one quoted line per exec.
func TestHostileStringsThroughEventsAndRecordings(t *testing.T) {
	testenv.SkipInGuest(t, "the agent starts slower under emulation than the test waits")
	testenv.RequirePrivileged(t)
	bin := vigil(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "lib", "vigil.db")
	rec := filepath.Join(dir, "events.rec")
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output: %s
status_socket: %s
store:
  path: %s
  events: [exec]
web:
  listen: ""
metrics:
  listen: ""
`+testScope, filepath.Join(dir, "events.json"), filepath.Join(dir, "status.sock"), db)), 0o600)

	cg := testenv.NewCgroup(t)
	var stderr, traced, traceErr lockedBuffer
	trace := exec.Command(bin, "trace", "exec", "--cgroup", cg.Path)
	trace.Stdout, trace.Stderr = &traced, &traceErr
	if err := trace.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trace.Process.Kill(); trace.Wait() })
	agent := exec.Command(bin, "run", "--config", cfg, "--record", rec)
	agent.Stderr = &stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		agent.Process.Signal(syscall.SIGINT)
		if err := agent.Wait(); err != nil {
			t.Errorf("vigil run: %v\n%s", err, stderr.String())
		}
	}
	defer stop()
	waitFor(t, "agent start", &stderr, "process cache filled")
	waitFor(t, "trace start", &traceErr, "tracing exec")

	// The hostile program, in a short directory so that its name shows in
	// the 40-character PROCESS cell.
	short, err := os.MkdirTemp("/tmp", "vh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	name := "e\x1b]0;pw\x07\r\nFAKE\xff\xfe\u202e"
	prog := filepath.Join(short, name)
	copyTrue(t, prog)
	args := []string{"\x1b[2J\x07\rB\nC\xff", "\u202egnp.exe", "\u200bzero\x7fdel\x9bcsi"}
	for range 10_000 {
		args = append(args, "x\xffy")
	}
	pid, _ := cg.Run(t, prog, args...)

	// And one from a path of ~3.5 KiB.
	long := short
	for i := range 17 {
		long = filepath.Join(long, strings.Repeat(string(rune('a'+i)), 200))
	}
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	longProg := filepath.Join(long, "p\x1b[31m")
	copyTrue(t, longProg)
	longPID, _ := cg.Run(t, longProg)

	// vigil events: one row each, escaped, long cells cut with "…".
	events := func(pid int, format ...string) []byte {
		t.Helper()
		var out []byte
		for deadline := time.Now().Add(15 * time.Second); len(out) == 0 || bytes.Count(out, []byte("\n")) < 2 && len(format) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no stored exec of pid %d after 15s:\n%q\nagent log:\n%s", pid, out, stderr.String())
			}
			out, err = exec.Command(bin, append([]string{"events", "--db", db, "--pid", strconv.Itoa(pid)}, format...)...).Output()
			if err != nil {
				t.Fatalf("vigil events: %v", err)
			}
		}
		return out
	}
	for _, tc := range []struct {
		pid  int
		want []string // in the row
	}{
		{pid, []string{`/e\e]0;pw\x07\r\nFAKE\xff\xfe\u{202e}`, `exec ` + prog[:0], `\e[2J\x07\rB\nC\xff \u{202e}gnp.exe \u{200b}zero\x7fdel\x9bcsi x\xffy x\xffy`, "…"}},
		{longPID, []string{short + "/aaaa", "…"}},
	} {
		table := string(events(tc.pid))
		if bad := terminalUnsafe(table); bad != "" {
			t.Errorf("vigil events of pid %d prints %s:\n%q", tc.pid, bad, table)
		}
		lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") {
			t.Errorf("vigil events of pid %d: want a header and one row, got:\n%q", tc.pid, table)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(lines[1], w) {
				t.Errorf("vigil events of pid %d: row lacks %q:\n%s", tc.pid, w, lines[1])
			}
		}
		// The PROCESS cell is cut at 40 characters and the summary at 160,
		// before escaping: the row stays short whatever the command line.
		if n := utf8.RuneCountInString(lines[1]); n > 4*(40+160)+80 {
			t.Errorf("vigil events of pid %d: a row of %d characters", tc.pid, n)
		}
	}

	// vigil trace exec: one line per exec, the strings quoted.
	waitFor(t, "trace of the long path", &traced, strconv.Quote(longProg)+"\n")
	tr := traced.String()
	if bad := terminalUnsafe(tr); bad != "" {
		t.Errorf("vigil trace prints %s:\n%q", bad, tr)
	}
	var ofPID []string
	for _, l := range strings.Split(tr, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == strconv.Itoa(pid) {
			ofPID = append(ofPID, l)
		}
	}
	// argv is cut at 16 KiB, possibly inside an argument: the line ends
	// with the truncation mark.
	if len(ofPID) != 1 || !strings.Contains(ofPID[0], " "+strconv.Quote(prog)+" "+strconv.Quote(prog)+" "+strconv.Quote(args[0])+" "+strconv.Quote(args[1])) ||
		!strings.HasSuffix(ofPID[0], " ...") {
		t.Errorf("vigil trace: want one line for pid %d with the quoted program and arguments, ending in the truncation mark; got %d:\n%.600s",
			pid, len(ofPID), strings.Join(ofPID, "\n"))
	}

	// The recording: the exact bytes.
	stop()
	f, err := os.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := map[int]*event.Event{}
	if err := rules.ReadRecords(f, func(e *event.Event) error {
		if e.Kind == event.KindExec && (e.Process.PID == uint32(pid) || e.Process.PID == uint32(longPID)) {
			found[int(e.Process.PID)] = e
		}
		return nil
	}); err != nil {
		t.Fatalf("read the recording: %v", err)
	}
	if e := found[pid]; e == nil {
		t.Errorf("no exec of pid %d in the recording", pid)
	} else {
		p := e.Process
		if p.Executable != prog || p.Name != name[:15] {
			t.Errorf("recorded executable %q name %q, want %q and %q", p.Executable, p.Name, prog, name[:15])
		}
		// Cut at 16 KiB, the last argument possibly inside: a prefix of
		// the real argv, byte for byte.
		want := append([]string{prog}, args...)
		n := len(p.Args)
		if !p.ArgsTruncated || n < 100 || n >= len(want) || !slices.Equal(p.Args[:n-1], want[:n-1]) || !strings.HasPrefix(want[n-1], p.Args[n-1]) {
			t.Errorf("recorded argv: %d arguments, truncated %v; want a truncated prefix of the %d real ones; first ones %q",
				len(p.Args), p.ArgsTruncated, len(want), p.Args[:min(5, len(p.Args))])
		}
	}
	if e := found[longPID]; e == nil {
		t.Errorf("no exec of pid %d in the recording", longPID)
	} else if e.Process.Executable != longProg {
		t.Errorf("recorded executable of %d bytes, want the %d of %q", len(e.Process.Executable), len(longProg), longProg)
	}

	// vigil replay: valid JSON lines, one alert per line, the strings as
	// JSON carries them (each byte that is not UTF-8 as U+FFFD).
	out, err := exec.Command(bin, "replay", rec, "--config", cfg).Output()
	if err != nil {
		t.Fatalf("vigil replay: %v", err)
	}
	// JSON is for programs: it carries printable characters, bidi
	// overrides included, as they are, but no C0 control or byte that is
	// not UTF-8
	// (encoding/json leaves DEL and the C1 controls as they are: JSON
	// allows them, and no terminal acts on DEL.)
	if i := bytes.IndexFunc(out, func(r rune) bool { return r != '\n' && r < 0x20 }); i >= 0 || !utf8.Valid(out) {
		t.Errorf("vigil replay writes a raw control character or bytes that are not UTF-8 (at %d)", i)
	}
	var exes []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var doc struct {
			Process struct {
				PID        int
				Executable string
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("replay line is not JSON (%v): %.200q", err, sc.Bytes())
		}
		if doc.Process.PID == pid || doc.Process.PID == longPID {
			exes = append(exes, doc.Process.Executable)
		}
	}
	want := []string{jsonString(prog), jsonString(longProg)}
	slices.Sort(exes)
	slices.Sort(want)
	if !slices.Equal(exes, want) {
		t.Errorf("replayed alerts of the two programs: %q, want %q", exes, want)
	}
}

// jsonString is s as encoding/json gives it back: each byte that is not
// UTF-8 becomes U+FFFD.
func jsonString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

func copyTrue(t *testing.T, to string) {
	t.Helper()
	b, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
