package container

import (
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// BenchmarkEnrichCached is the per-event cost of attribution once a cgroup
// is cached: what every event pays.
func BenchmarkEnrichCached(b *testing.B) {
	testenv.RequirePrivileged(b)
	cg := testenv.NewCgroup(b)
	r, err := New(Config{CgroupRoot: testenv.CgroupV2Root()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	e := &event.Event{Process: event.Process{PID: 1, CgroupID: cg.ID}}
	r.Enrich(e)
	if e.Origin != event.OriginHost {
		b.Fatalf("origin %v", e.Origin)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Enrich(e)
	}
}

// BenchmarkResolveNew is the cost of a cgroup seen for the first time
// (open_by_handle_at, readlink, path parsing).
func BenchmarkResolveNew(b *testing.B) {
	testenv.RequirePrivileged(b)
	cg := testenv.NewCgroup(b)
	r, err := New(Config{CgroupRoot: testenv.CgroupV2Root()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for b.Loop() {
		clear(r.byID)
		r.Lookup(cg.ID, 0, 0)
	}
}
