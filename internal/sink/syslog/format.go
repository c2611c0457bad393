package syslog

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
)

// SDID names Vigil's structured data element. 32473 is the private
// enterprise number RFC 5612 reserves for documentation and examples;
// receivers match on the whole SD-ID.
const SDID = "vigil@32473"

// Facilities by name (RFC 5424 section 6.2.1).
var Facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
	"local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// severity maps an alert's severity to syslog's: critical 2, error 3,
// warning 4, notice 5, info 6. Events are informational (6).
func severity(e *event.Event) int {
	if e.Alert == nil {
		return 6
	}
	switch e.Alert.Severity {
	case event.SeverityCritical:
		return 2
	case event.SeverityError:
		return 3
	case event.SeverityWarning:
		return 4
	case event.SeverityNotice:
		return 5
	}
	return 6
}

type formatter struct {
	facility int
	hostname string // PRINTUSASCII already
	procid   string
	json     bool
	host     *event.Host
	maxBytes int
}

// format renders one RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME vigil PROCID MSGID [vigil@32473 id=".." ...] MSG
//
// MSGID is the event kind; MSG is the ECS JSON document, or with format
// "text" a one-line summary. Structured data values escape '"', '\' and
// ']' with a backslash as RFC 5424 requires; control characters in values
// and in a text MSG are written as \n, \r, \t or \xNN, so no message spans
// two lines for receivers that read lines; invalid UTF-8 becomes U+FFFD.
// A message over maxBytes is cut at a character boundary.
func (f *formatter) format(e *event.Event, seq uint64, id string) ([]byte, error) {
	var b []byte
	b = fmt.Appendf(b, "<%d>1 %s %s vigil %s %s ", f.facility*8+severity(e),
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), f.hostname, f.procid, printASCII(e.Kind.String(), 32))
	b = append(b, '[')
	b = append(b, SDID...)
	param := func(name, value string) {
		if value == "" {
			return
		}
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, '=', '"')
		b = appendParamValue(b, value)
		b = append(b, '"')
	}
	param("id", id)
	param("kind", e.Kind.String())
	if a := e.Alert; a != nil {
		param("rule", a.RuleID)
		param("severity", a.Severity.String())
		param("response", a.Response)
	}
	param("pid", strconv.FormatUint(uint64(e.Process.PID), 10))
	param("exe", e.Process.Executable)
	param("user", strconv.FormatUint(uint64(e.Process.EUID), 10))
	if e.Process.CgroupID != 0 {
		param("cgroup", strconv.FormatUint(e.Process.CgroupID, 10))
	}
	b = append(b, ']', ' ')
	if f.json {
		doc, err := sink.MarshalDoc(e, f.host, seq)
		if err != nil {
			return nil, err
		}
		b = append(b, doc...)
	} else {
		b = appendEscaped(b, summary(e), false)
	}
	if f.maxBytes > 0 && len(b) > f.maxBytes {
		cut := f.maxBytes
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = b[:cut]
	}
	return b, nil
}

// summary is the text MSG: the alert's message, or what the event is about.
func summary(e *event.Event) string {
	if e.Alert != nil {
		return e.Alert.Message
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s pid=%d exe=%s", e.Kind, e.Process.PID, e.Process.Executable)
	if len(e.Process.Args) > 0 {
		s.WriteString(" args=")
		s.WriteString(strings.Join(e.Process.Args, " "))
	}
	if e.File != nil {
		s.WriteString(" path=")
		s.WriteString(e.File.Path)
	}
	return s.String()
}

// appendParamValue escapes an SD-PARAM value (RFC 5424 section 6.3.3).
func appendParamValue(b []byte, s string) []byte { return appendEscaped(b, s, true) }

// appendEscaped writes s as valid UTF-8 with control characters escaped;
// sd also escapes '"', '\' and ']'.
func appendEscaped(b []byte, s string, sd bool) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b = utf8.AppendRune(b, utf8.RuneError)
		case sd && (r == '"' || r == '\\' || r == ']'):
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029':
			if r > 0xff {
				b = fmt.Appendf(b, "\\u%04x", r)
			} else {
				b = fmt.Appendf(b, "\\x%02x", r)
			}
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// printASCII makes a header field: PRINTUSASCII (33-126) only, at most max
// bytes, "-" (NILVALUE) when empty.
func printASCII(s string, max int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// frame wraps a message for the transport: octet counting (RFC 6587
// section 3.4.1) on TCP, nothing on datagram transports.
func frame(network string, msg []byte) []byte {
	if network != "tcp" {
		return msg
	}
	out := make([]byte, 0, len(msg)+8)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, ' ')
	return append(out, msg...)
}
