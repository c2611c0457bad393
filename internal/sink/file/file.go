// Package file writes events as JSON lines (their ECS documents) to a file
// that rotates by size and age, keeps the newest rotated files, and can
// gzip them. Writes go through a spool.Queue like every sink, so a slow or
// full disk holds records in the queue (and, when the spool lives on another
// file system, in the spool) instead of slowing the agent.
//
// Rotation renames the file to <path>.<UTC time>, e.g.
// events.json.20260102T030405.000000000Z, gzipped to <that>.gz when Compress
// is on, and deletes the oldest rotated files beyond Keep.
package file

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// Options configure a file sink.
type Options struct {
	Path string
	// MaxBytes rotates the file before it would grow past this size
	// (0: no size limit).
	MaxBytes int64
	// MaxAge rotates a file this old (0: no age limit).
	MaxAge time.Duration
	// Keep is how many rotated files to keep (0: all).
	Keep int
	// Compress gzips rotated files.
	Compress bool
	Kinds    []event.Kind
	Host     *event.Host
	Queue    spool.Options
	// now is the clock, for tests.
	now func() time.Time
}

const stamp = "20060102T150405.000000000Z"

// New opens (appends to) the file and starts the sink.
func New(o Options) (*spool.Sink, error) {
	if o.Path == "" {
		return nil, errors.New("file: path is empty")
	}
	if o.MaxBytes < 0 || o.MaxAge < 0 || o.Keep < 0 {
		return nil, errors.New("file: max_size, max_age and keep must not be negative")
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.Queue.Type == "" {
		o.Queue.Type = "file"
	}
	w := &writer{opts: o}
	if err := w.open(); err != nil {
		return nil, err
	}
	seq := sink.NewSequencer()
	enc := func(e *event.Event) ([]byte, error) {
		n, _ := seq.Next()
		b, err := sink.MarshalDoc(e, o.Host, n)
		return append(b, '\n'), err
	}
	s, err := spool.NewSink(o.Queue, o.Kinds, enc, w)
	if err != nil {
		w.Close()
		return nil, err
	}
	return s, nil
}

type writer struct {
	opts   Options
	f      *os.File
	size   int64
	opened time.Time
}

func (w *writer) open() error {
	if err := os.MkdirAll(filepath.Dir(w.opts.Path), 0o750); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	f, err := os.OpenFile(w.opts.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file: %w", err)
	}
	w.f, w.size, w.opened = f, st.Size(), w.opts.now()
	return nil
}

// Send appends the batch as one write, rotating first when it is due.
func (w *writer) Send(_ context.Context, batch [][]byte) error {
	var buf []byte
	for _, r := range batch {
		buf = append(buf, r...)
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	full := w.opts.MaxBytes > 0 && w.size > 0 && w.size+int64(len(buf)) > w.opts.MaxBytes
	old := w.opts.MaxAge > 0 && w.size > 0 && w.opts.now().Sub(w.opened) >= w.opts.MaxAge
	if full || old {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(buf)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	return nil
}

func (w *writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	w.f = nil
	rotated := w.opts.Path + "." + w.opts.now().UTC().Format(stamp)
	if err := os.Rename(w.opts.Path, rotated); err != nil {
		return fmt.Errorf("file: rotate: %w", err)
	}
	if err := w.open(); err != nil {
		return err
	}
	if w.opts.Compress {
		if err := gzipFile(rotated); err != nil {
			return err
		}
	}
	return w.prune()
}

func gzipFile(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("file: compress: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(path+".gz", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("file: compress: %w", err)
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	err = errors.Join(err, zw.Close(), out.Sync(), out.Close())
	if err != nil {
		os.Remove(path + ".gz")
		return fmt.Errorf("file: compress: %w", err)
	}
	return os.Remove(path)
}

// Rotated lists the rotated files of path, oldest first.
func Rotated(path string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	prefix := filepath.Base(path) + "."
	var out []string
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		ts := strings.TrimSuffix(rest, ".gz")
		if _, err := time.Parse(stamp, ts); err != nil {
			continue
		}
		out = append(out, filepath.Join(filepath.Dir(path), name))
	}
	slices.Sort(out) // the stamp sorts by time
	return out, nil
}

func (w *writer) prune() error {
	if w.opts.Keep <= 0 {
		return nil
	}
	files, err := Rotated(w.opts.Path)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	for len(files) > w.opts.Keep {
		if err := os.Remove(files[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file: %w", err)
		}
		files = files[1:]
	}
	return nil
}

func (w *writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
