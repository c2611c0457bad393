// Package sinktest makes events for sink tests: alerts whose strings are
// what an attacker on the monitored host would choose, to check that every
// output escapes them.
package sinktest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
)

// Hostile is a string no output may let out of its field: quotes,
// backslashes, brackets that close syslog structured data, newlines that
// would start a new syslog message or JSON line, NUL and other control
// bytes, invalid UTF-8, and line and paragraph separators.
const Hostile = "evil\"] [x@1 a=\"b\"]\\\n<13>1 - forged\r\x00\x1b[31m\xff\xfe\u2028\u2029}{"

// Host is the host every test event claims to come from.
var Host = event.Host{Name: "web-1", ID: "0123456789abcdef", BootID: "boot-1", Kernel: "6.18.0", Arch: "x86_64"}

// Alert returns the n-th test alert: its trigger is an exec of a program
// with hostile arguments, and its message names n so a test can tell which
// alert arrived ("alert n=<n>").
func Alert(n int) *event.Event {
	trigger := &event.Event{
		Time: time.Date(2026, 1, 2, 3, 4, 5, n, time.UTC),
		Kind: event.KindExec,
		Process: event.Process{
			PID: 4242, TID: 4242, PPID: 1, Name: "sh\n]\"", Executable: "/tmp/" + Hostile,
			Args: []string{"sh", "-c", Hostile}, WorkingDir: "/tmp", AUID: event.NoUID, SessionID: event.NoUID,
			EntityID: fmt.Sprintf("entity-%d", n),
		},
		Exec: &event.Exec{},
	}
	return event.NewAlert(event.Alert{
		RuleID: "test_rule", RuleName: "Test rule " + Hostile, Severity: event.SeverityCritical,
		Tags: []string{"test"}, MITRE: []string{"T1059"},
		Message: fmt.Sprintf("alert n=%d %s", n, Hostile), Response: "alert",
	}, trigger)
}

// Event returns the n-th plain test event, an exec.
func Event(n int) *event.Event {
	e := Alert(n).Alert.Trigger
	return e
}

// JSONString is s as it reads back from JSON that encoding/json wrote:
// every byte of invalid UTF-8 became U+FFFD.
func JSONString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += n
	}
	return b.String()
}

// Message is the message of Alert(n) as it reads back from JSON.
func Message(n int) string { return JSONString(fmt.Sprintf("alert n=%d %s", n, Hostile)) }

// WaitFor polls cond every few milliseconds until it holds or 30 seconds
// pass, then fails the test naming what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
