package daemon

import (
	"bufio"
	"fmt"
	"os"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
)

// recording is the sink behind `vigil run --record`: every event, in the
// format `vigil replay` reads back exactly.
type recording struct {
	f *os.File
	w *bufio.Writer
}

func openRecording(path string) (*recording, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return &recording{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (r *recording) Write(e *event.Event) error {
	if e.Kind == event.KindAlert {
		return nil // replay raises alerts anew
	}
	return rules.WriteRecord(r.w, e)
}

func (r *recording) Flush() error { return r.w.Flush() }

func (r *recording) Close() error {
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
