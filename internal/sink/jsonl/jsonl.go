// Package jsonl writes events as JSON lines with ECS field names, to stdout
// or to a file.
package jsonl

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/vigilsec/vigil/internal/event"
)

// Writer renders events one JSON document per line. encoding/json escapes
// control characters and newlines inside strings, so a hostile argv or path
// can never break a line in two.
type Writer struct {
	w      *bufio.Writer
	enc    *json.Encoder
	closer io.Closer
	host   *event.Host
	seq    uint64
}

// New writes to w; host fields are added to every document when host is set.
func New(w io.Writer, host *event.Host) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	out := &Writer{w: bw, enc: enc, host: host}
	if c, ok := w.(io.Closer); ok && w != os.Stdout {
		out.closer = c
	}
	return out
}

// Open writes to stdout for "-", or appends to the file at path.
func Open(path string, host *event.Host) (*Writer, error) {
	if path == "-" {
		return New(os.Stdout, host), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open output: %w", err)
	}
	return New(f, host), nil
}

func (w *Writer) Write(e *event.Event) error {
	w.seq++
	return w.enc.Encode(e.Doc(w.host, w.seq))
}

func (w *Writer) Flush() error { return w.w.Flush() }

func (w *Writer) Close() error {
	err := w.w.Flush()
	if w.closer != nil {
		if cerr := w.closer.Close(); err == nil {
			err = cerr
		}
		w.closer = nil
	}
	return err
}
