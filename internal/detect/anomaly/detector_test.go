package anomaly

import (
	"math/rand/v2"
	"testing"
	"time"
)

// feed sends a trace as the kernel would: in batches of 64 of one thread.
func feed(d *Detector, now time.Time, id, tid uint32, trace []uint16, found func(Finding)) {
	for len(trace) > 0 {
		n := min(64, len(trace))
		d.Feed(now, Batch{Profile: id, PID: 100, TID: tid, Nr: trace[:n]}, found)
		trace = trace[n:]
	}
}

func TestDetectorLearnsThenDetects(t *testing.T) {
	dir := t.TempDir()
	cfg := DetectorConfig{Params: DefaultParams, FalseAlarms: 0, Learn: time.Minute, MinSyscalls: 1000, Dir: dir}
	d, err := NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := d.Profile("/srv/app")
	if d.Profile("/srv/app") != id {
		t.Fatal("a second profile for the same program")
	}
	var got []Finding
	found := func(f Finding) { got = append(got, f) }
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		feed(d, t0.Add(time.Duration(i)*time.Second), id, uint32(1000+i%4), server(r, 20), found)
		if i == 10 {
			d.Spawn(id, 100, "/usr/bin/logger", found)
		}
	}
	if st := d.Status()[0]; st.Mode != "detecting" || st.Syscalls == 0 {
		t.Fatalf("after a learning period: %+v", st)
	}
	if len(got) != 0 {
		t.Fatalf("findings while learning: %+v", got)
	}
	now := t0.Add(time.Hour)
	for i := range 100 {
		feed(d, now, id, uint32(2000+i), server(r, 20), found)
	}
	d.Spawn(id, 100, "/usr/bin/logger", found)
	if len(got) != 0 {
		t.Fatalf("findings on normal behaviour: %+v", got)
	}
	feed(d, now, id, 3000, shell(r), found)
	if len(got) != 1 || got[0].Score <= got[0].Threshold || got[0].TID != 3000 || len(got[0].Unusual) == 0 {
		t.Fatalf("shell: findings %+v, want one syscall anomaly", got)
	}
	d.Spawn(id, 100, "/bin/sh", found)
	if len(got) != 2 || got[1].Spawned != "/bin/sh" {
		t.Fatalf("spawn of a shell: findings %+v", got)
	}

	// The profile was saved: a new detector starts detecting.
	d2, err := NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := d2.Status(); len(st) != 1 || st[0].Mode != "detecting" || st[0].Program != "/srv/app" || st[0].Spawned != 1 {
		t.Fatalf("reloaded: %+v", st)
	}
	got = nil
	feed(d2, now, d2.Profile("/srv/app"), 4000, shell(r), found)
	if len(got) != 1 {
		t.Fatalf("reloaded profile: findings %+v", got)
	}
}

func TestDetectorKeepsLearningUntilEnoughSyscalls(t *testing.T) {
	d, _ := NewDetector(DetectorConfig{Params: DefaultParams, Learn: time.Second, MinSyscalls: 1 << 20})
	id := d.Profile("/x")
	r := rand.New(rand.NewPCG(1, 1))
	t0 := time.Now()
	feed(d, t0, id, 1, server(r, 10), func(Finding) {})
	feed(d, t0.Add(time.Hour), id, 1, server(r, 10), func(Finding) {})
	if st := d.Status()[0]; st.Mode != "learning" {
		t.Errorf("mode %s after an hour with few syscalls", st.Mode)
	}
	if err := d.Detect(t0, "/x"); err != nil {
		t.Fatal(err)
	}
	if st := d.Status()[0]; st.Mode != "detecting" {
		t.Errorf("mode %s after Detect", st.Mode)
	}
	if err := d.Detect(t0, "/y"); err != ErrUnknownProgram {
		t.Errorf("Detect of an unknown program: %v", err)
	}
}
