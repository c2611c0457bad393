// Package sensortest checks what the sensors' decoders make of hostile
// records: the fuzz targets of every sensor share it.
package sensortest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

// CheckDecoded fails t unless e, decoded from rec without an error, is an
// event of a kind that reaches the outputs as one well-formed JSON line no
// larger than the record can explain: the kernel's bytes may be anything,
// and each is escaped as at most six characters ("\u0000"), plus names of
// flags and a fixed set of fields.
func CheckDecoded(t testing.TB, rec []byte, e *event.Event) {
	t.Helper()
	if e.Kind == event.KindUnknown {
		t.Fatalf("decoded event has no kind: %+v", e)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("decoded event does not marshal: %v", err)
	}
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %.300q", b)
	}
	if bytes.ContainsAny(b, "\n\r") {
		t.Fatalf("raw line break in a JSON line: %.300q", b)
	}
	if limit := 6*len(rec) + 16<<10; len(b) > limit {
		t.Fatalf("%d-byte record became %d bytes of JSON (limit %d)", len(rec), len(b), limit)
	}
}
