package syslog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/sink/sinktest"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// hostileEscaped is sinktest.Hostile as it must read back from a
// structured-data value or a text MSG: the backslash is itself, control
// characters and line separators are spelled out (\n, \r, \x00, \x1b,
// \u2028), invalid bytes are U+FFFD, and nothing starts a new message.
const hostileEscaped = `evil"] [x@1 a="b"]\\n<13>1 - forged\r\x00\x1b[31m` + "\uFFFD\uFFFD" + `\u2028\u2029}{`

func newSink(t *testing.T, network, addr, format string, dir string) *spool.Sink {
	t.Helper()
	s, err := New(Options{
		Network: network, Address: addr, Format: format, Host: &sinktest.Host,
		Queue: spool.Options{Name: "syslog-" + network, Dir: dir, MemoryRecords: 16,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, DrainTimeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var alertN = regexp.MustCompile(`^alert n=(\d+) `)

// checkMessage checks one message as rsyslog parsed it and returns the
// alert number it carries (-1 for a plain event).
func checkMessage(t *testing.T, m received, format string) int {
	t.Helper()
	if m.Hostname != "web-1" || m.ProcID != strconv.Itoa(os.Getpid()) || m.Version != "1" || m.Facility != "16" {
		t.Errorf("header fields: %+v", m)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Time); err != nil || m.Time[:19] != "2026-01-02T03:04:05" {
		t.Errorf("timestamp %q", m.Time)
	}
	sd, err := parseSD(m.SD)
	if err != nil || len(sd) != 1 {
		t.Fatalf("structured data %q: %v, %d elements (want 1)", m.SD, err, len(sd))
	}
	el := sd[0]
	if el[""] != SDID || el["id"] == "" || el["pid"] != "4242" {
		t.Errorf("structured data %q parsed to %q", m.SD, el)
	}
	if want := "/tmp/" + hostileEscaped; el["exe"] != want {
		t.Errorf("exe param %q, want %q", el["exe"], want)
	}
	var msg string
	switch format {
	case "json":
		var doc struct {
			Message string `json:"message"`
			Process struct{ Executable string }
		}
		if err := json.Unmarshal([]byte(m.Msg), &doc); err != nil {
			t.Fatalf("MSG is not one JSON document: %v: %q", err, m.Msg)
		}
		if doc.Process.Executable != "/tmp/"+sinktest.JSONString(sinktest.Hostile) {
			t.Errorf("process.executable %q did not round-trip", doc.Process.Executable)
		}
		msg = doc.Message
		if m.MsgID == "alert" {
			mm := alertN.FindStringSubmatch(msg)
			if mm == nil {
				t.Fatalf("message %q", msg)
			}
			n, _ := strconv.Atoi(mm[1])
			if msg != sinktest.Message(n) {
				t.Errorf("alert message %q, want %q", msg, sinktest.Message(n))
			}
		}
	case "text":
		msg = m.Msg
		if mm := alertN.FindStringSubmatch(msg); mm != nil {
			if want := "alert n=" + mm[1] + " " + hostileEscaped; msg != want {
				t.Errorf("text MSG %q, want %q", msg, want)
			}
		}
	}
	switch m.MsgID {
	case "alert":
		if m.Severity != "2" || el["rule"] != "test_rule" || el["severity"] != "critical" || el["kind"] != "alert" {
			t.Errorf("alert fields: severity %s, sd %q", m.Severity, el)
		}
		mm := alertN.FindStringSubmatch(msg)
		n, _ := strconv.Atoi(mm[1])
		return n
	case "exec":
		if m.Severity != "6" || el["kind"] != "exec" {
			t.Errorf("event fields: severity %s, sd %q", m.Severity, el)
		}
		return -1
	}
	t.Errorf("MSGID %q", m.MsgID)
	return -1
}

// Alerts and events with hostile strings go through a real rsyslogd over
// each transport, in each format: rsyslog parses every message as RFC 5424
// with one structured data element, the values come back intact, and no
// string starts a message of its own.
func TestSyslogThroughRsyslog(t *testing.T) {
	r := startRsyslog(t)
	cases := []struct{ network, format string }{
		{"tcp", "json"}, {"tcp", "text"}, {"udp", "json"}, {"unix", "json"}, {"unix", "text"},
	}
	for _, c := range cases {
		t.Run(c.network+"-"+c.format, func(t *testing.T) {
			before := len(r.messages())
			addr := fmt.Sprintf("127.0.0.1:%d", r.tcpPort)
			switch c.network {
			case "udp":
				addr = fmt.Sprintf("127.0.0.1:%d", r.udpPort)
			case "unix":
				addr = r.sock
			}
			s := newSink(t, c.network, addr, c.format, filepath.Join(t.TempDir(), "spool"))
			const n = 20
			for i := range n {
				s.Write(sinktest.Alert(i))
				if i%4 == 0 {
					s.Write(sinktest.Event(i))
				}
				if c.network == "udp" {
					time.Sleep(time.Millisecond) // be gentle with a datagram socket
				}
			}
			s.Flush()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Written != n+5 {
				t.Fatalf("sent %d, want %d: %+v", st.Written, n+5, st)
			}
			var got []received
			sinktest.WaitFor(t, "rsyslog to write the messages", func() bool {
				got = r.messages()[before:]
				return len(got) >= n+5
			})
			time.Sleep(100 * time.Millisecond)
			got = r.messages()[before:]
			if len(got) != n+5 {
				t.Fatalf("rsyslog wrote %d messages, want %d", len(got), n+5)
			}
			seen := map[int]int{}
			for _, m := range got {
				seen[checkMessage(t, m, c.format)]++
			}
			for i := range n {
				if seen[i] != 1 {
					t.Errorf("alert %d arrived %d times", i, seen[i])
				}
			}
			if seen[-1] != 5 {
				t.Errorf("%d events, want 5", seen[-1])
			}
		})
	}
}

// rsyslogd stops in the middle of a stream of alerts over TCP and starts
// again a while later: every alert arrives at least once, and any duplicate
// carries the same id.
func TestSyslogTCPOutage(t *testing.T) {
	r := startRsyslog(t)
	s := newSink(t, "tcp", fmt.Sprintf("127.0.0.1:%d", r.tcpPort), "json", filepath.Join(t.TempDir(), "spool"))
	defer s.Close()
	const n = 400
	for i := range n {
		switch i {
		case 100:
			r.stop()
		case 250:
			sinktest.WaitFor(t, "failed attempts", func() bool { return s.Stats().Retries > 0 })
			r.start()
		}
		s.Write(sinktest.Alert(i))
		s.Flush()
		time.Sleep(2 * time.Millisecond)
	}
	seen := map[int]int{}
	ids := map[int]map[string]bool{}
	sinktest.WaitFor(t, "every alert", func() bool {
		clear(seen)
		clear(ids)
		for _, m := range r.messages() {
			el, err := parseSD(m.SD)
			if err != nil || len(el) != 1 {
				t.Fatalf("bad structured data %q", m.SD)
			}
			mm := alertN.FindStringSubmatch(jsonMessage(t, m.Msg))
			k, _ := strconv.Atoi(mm[1])
			seen[k]++
			if ids[k] == nil {
				ids[k] = map[string]bool{}
			}
			ids[k][el[0]["id"]] = true
		}
		return len(seen) == n
	})
	dups := 0
	for i := range n {
		if seen[i] > 1 {
			dups += seen[i] - 1
		}
		if len(ids[i]) != 1 {
			t.Errorf("alert %d arrived with ids %v, want one id", i, ids[i])
		}
	}
	st := s.Stats()
	t.Logf("%d alerts, %d duplicates after the restart; stats %+v", n, dups, st)
	if st.Retries == 0 || st.Dropped != 0 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}

func jsonMessage(t *testing.T, msg string) string {
	var doc struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(msg), &doc); err != nil {
		t.Fatalf("MSG is not JSON: %v", err)
	}
	return doc.Message
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Network: "tls", Address: "x:1"},
		{Network: "tcp"},
		{Network: "udp", Address: "x:1", Facility: "nope"},
		{Network: "udp", Address: "x:1", Format: "xml"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
