package rules

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilsec/vigil/internal/event"
)

// fill sets every field reachable from v to a value that is not its zero
// value, allocating pointers and giving slices two elements, so that a
// recording that forgot a field, or a new field of event.Event, shows in a
// round trip. Strings are not UTF-8 every other time.
func fill(v reflect.Value, n *int, depth int) {
	*n++
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 11, 27, 6, 0, *n, 123456789, time.UTC)))
		return
	case reflect.TypeFor[netip.AddrPort]():
		addrs := []string{"10.0.0.1:53", "[2001:db8::1]:8443", "[fe80::1%eth0]:22", "[::ffff:10.1.2.3]:80"}
		v.Set(reflect.ValueOf(netip.MustParseAddrPort(addrs[*n%len(addrs)])))
		return
	case reflect.TypeFor[event.Kind]():
		v.SetUint(uint64(event.KindExec + event.Kind(*n%7)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		s := "s" + string(rune('a'+*n%26)) + "\n\t\"{x}\""
		if *n%2 == 0 {
			s += "\xff\xfe/bad utf-8"
		}
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(*n) * 1000)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// Large values, to catch a trip through float64.
		v.SetUint(reflect.Zero(v.Type()).Uint() - uint64(*n) - 1 - (1<<v.Type().Bits()-1)/3)
	case reflect.Pointer:
		if depth > 3 { // Alert.Trigger is an Event: stop somewhere
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n, depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n, depth)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n, depth)
			}
		}
	default:
		panic("fill: unhandled " + v.Type().String())
	}
}

func TestRecordRoundTrip(t *testing.T) {
	var full event.Event
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n, 0)
	if full.Alert == nil || full.Alert.Trigger == nil || full.Parent == nil || full.Net.DNS == nil || len(full.Ancestors[1].Args) != 2 {
		t.Fatalf("fill left pointers unset: %+v", full)
	}
	events := []*event.Event{
		&full,
		{}, // all zero
		{Kind: event.KindFile, Process: event.Process{Args: []string{}}, Ancestors: []event.Ancestor{}, File: &event.File{}},
		{Kind: event.KindNet, Net: &event.Net{Source: netip.AddrPortFrom(netip.IPv6Unspecified(), 0)}},
	}
	var buf bytes.Buffer
	for _, e := range events {
		if err := WriteRecord(&buf, e); err != nil {
			t.Fatal(err)
		}
	}
	if lines := strings.Count(buf.String(), "\n"); lines != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", lines, len(events), buf.String())
	}
	var got []*event.Event
	if err := ReadRecords(&buf, func(e *event.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	// Exact: nil and empty slices differ, times compare by their Equal.
	if diff := cmp.Diff(events, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestReadRecordsErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRecord(&buf, &event.Event{Kind: event.KindExec}); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	stop := errors.New("stop")
	tests := []struct {
		name, in string
		fn       func(*event.Event) error
		want     string
	}{
		{"not json", good + "\n" + "{nope\n", nil, "record line 3: invalid character 'n' looking for beginning of object key string"},
		{"bad kind", `{"kind":"exce"}`, nil, `record line 1: unknown event kind "exce"`},
		{"fn error", good + good, func(*event.Event) error { return stop }, "stop"},
		{"no newline at the end", strings.TrimSuffix(good, "\n"), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := tt.fn
			if fn == nil {
				fn = func(*event.Event) error { return nil }
			}
			err := ReadRecords(strings.NewReader(tt.in), fn)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ReadRecords error = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReplay checks that a recorded event gives the same alerts.
func TestReplay(t *testing.T) {
	s := mustLoad(t, Dir("testdata/bench"))
	e := execEvent("/tmp/\xffx")
	var buf bytes.Buffer
	if err := WriteRecord(&buf, e); err != nil {
		t.Fatal(err)
	}
	want := alerts(t, s, e)
	var got []string
	if err := ReadRecords(&buf, func(e *event.Event) error { got = append(got, alerts(t, s, e)...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatal("the event raised no alert")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replayed alerts (-want +got):\n%s", diff)
	}
}

// TestRecordHostileBytes: strings a process controls (its name, path,
// arguments, a file's path, a DNS name) come back byte for byte, NUL and
// bytes that are not UTF-8 included, a 4 KiB path and 10,000 arguments
// too, each record on one line.
func TestRecordHostileBytes(t *testing.T) {
	hostile := []string{
		"evil\x1b]0;pwned\x07\r\nFAKE ROW",
		"nul\x00inside\x00",
		"\xff\xfe not UTF-8 \xc3",
		"<script>alert(1)</script>",
		"\u202egnp.exe\u200b",
		"\\x41 backslash",
		"\x7f\u0085\u009b",
		"",
	}
	long := "/" + strings.Repeat("d/", 2047) + "\x00\xff"
	args := make([]string, 0, 10_000+len(hostile))
	args = append(args, hostile...)
	for i := range 10_000 {
		args = append(args, hostile[i%len(hostile)])
	}
	var events []*event.Event
	for _, h := range hostile {
		events = append(events,
			&event.Event{Kind: event.KindExec, Exec: &event.Exec{},
				Process: event.Process{PID: 7, Name: h, Executable: long + h, Args: args}},
			&event.Event{Kind: event.KindFile, Process: event.Process{Name: h},
				File: &event.File{Op: event.FileOpen, Path: long + h, RawPath: h, TargetPath: h}},
			&event.Event{Kind: event.KindNet, Net: &event.Net{DNS: &event.DNSQuestion{Name: h, Type: "A"}}},
		)
	}
	var buf bytes.Buffer
	for _, e := range events {
		if err := WriteRecord(&buf, e); err != nil {
			t.Fatal(err)
		}
	}
	if lines := strings.Count(buf.String(), "\n"); lines != len(events) {
		t.Fatalf("%d lines for %d events", lines, len(events))
	}
	var got []*event.Event
	if err := ReadRecords(&buf, func(e *event.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(events, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%.4000s", diff)
	}
}
