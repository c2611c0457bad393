package spool

import (
	"context"
	"path/filepath"
	"testing"
)

type discard struct{}

func (discard) Send(context.Context, [][]byte) error { return nil }

type down struct{}

func (down) Send(ctx context.Context, _ [][]byte) error { <-ctx.Done(); return ctx.Err() }

// BenchmarkPutMemory is the cost Write adds on the agent's write loop when
// the destination keeps up: a copy into the memory queue.
func BenchmarkPutMemory(b *testing.B) {
	q, err := New(Options{Name: "b", Dir: filepath.Join(b.TempDir(), "s"), MemoryRecords: 1 << 16}, discard{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	rec := make([]byte, 1024)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		q.Put(rec)
	}
}

// BenchmarkPutSpool is the cost during an outage: every record is appended
// to the disk spool (buffered, flushed as the agent's queue runs empty).
func BenchmarkPutSpool(b *testing.B) {
	q, err := New(Options{Name: "b", Dir: filepath.Join(b.TempDir(), "s"), MemoryRecords: 1,
		MaxBytes: 8 << 30, DrainTimeout: 1}, down{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	rec := make([]byte, 1024)
	b.SetBytes(int64(len(rec)))
	for i := 0; b.Loop(); i++ {
		q.Put(rec)
		if i%256 == 0 {
			q.Flush()
		}
	}
}
