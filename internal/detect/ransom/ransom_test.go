package ransom

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// script builds a stream of observations for one process.
type script struct {
	p   event.Process
	ctr *event.Container
	at  time.Time
	gap time.Duration
	ops []Obs
}

func newScript(pid uint32, exe string) *script {
	return &script{p: event.Process{PID: pid, StartBoot: uint64(pid) * 1000, Executable: exe}, at: t0, gap: time.Millisecond}
}

func (s *script) add(o Obs) *script {
	s.at = s.at.Add(s.gap)
	o.Time, o.Process, o.Container = s.at, s.p, s.ctr
	s.ops = append(s.ops, o)
	return s
}

func (s *script) write(p string, created, enc bool, magic string) *script {
	return s.add(Obs{Op: OpWrite, Path: p, Created: created, HighEntropy: enc && magic == "", Magic: magic, Bytes: 4096})
}
func (s *script) unlink(p string) *script { return s.add(Obs{Op: OpUnlink, Path: p}) }
func (s *script) rename(a, b string) *script {
	return s.add(Obs{Op: OpRename, Path: a, NewPath: b})
}

// feed runs the ops and returns the index of the op that alerted, or -1.
func feed(d *Detector, ops []Obs) (int, []Finding) {
	var all []Finding
	first := -1
	for i, o := range ops {
		f := d.Observe(o)
		if len(f) > 0 && first < 0 {
			first = i
		}
		all = append(all, f...)
	}
	return first, all
}

func doc(i int) string { return fmt.Sprintf("/home/u/docs/file%03d.docx", i) }

func TestVariantsDetectedAtMinFiles(t *testing.T) {
	variants := map[string]func(s *script, i int){
		"inplace": func(s *script, i int) { s.write(doc(i), false, true, "").rename(doc(i), doc(i)+".locked") },
		"newdel":  func(s *script, i int) { s.write(doc(i)+".locked", true, true, "").unlink(doc(i)) },
		"rename":  func(s *script, i int) { s.rename(doc(i), doc(i)+".locked").write(doc(i)+".locked", false, true, "") },
	}
	for name, step := range variants {
		for _, gap := range []time.Duration{time.Millisecond, 30 * time.Second} { // fast, and slow mode
			t.Run(fmt.Sprintf("%s/%s", name, gap), func(t *testing.T) {
				s := newScript(100, "/tmp/evil")
				s.gap = gap
				for i := range 20 {
					step(s, i)
				}
				d := New(Config{MinFiles: 5})
				idx, fs := feed(d, s.ops)
				if idx < 0 {
					t.Fatal("not detected")
				}
				// Each file takes two operations; the fifth file's rewrite
				// alerts (in place: its first operation, else its second).
				want := 9
				if name == "inplace" {
					want = 8
				}
				if idx != want {
					t.Errorf("alerted at operation %d, want %d (the fifth file)", idx, want)
				}
				if len(fs) != 1 {
					t.Fatalf("%d findings, want 1 per episode", len(fs))
				}
				a := fs[0].Alert.Alert
				if a.RuleID != RuleRansomware || !strings.Contains(a.Message, doc(0)) || !strings.Contains(a.Message, "encrypted 5 files") {
					t.Errorf("alert: %+v", a)
				}
			})
		}
	}
}

func TestBenignStaysQuiet(t *testing.T) {
	cases := map[string]func(s *script){
		// gzip FILE: a compressed copy (gzip magic), the original removed.
		"gzip": func(s *script) {
			for i := range 50 {
				s.write(doc(i)+".gz", true, true, "gzip").unlink(doc(i))
			}
		},
		// tar x over an existing tree: unlink X, create X.
		"tar-x-over": func(s *script) {
			for i := range 50 {
				p := fmt.Sprintf("/srv/out/r%d.bin", i)
				s.unlink(p).write(p, true, true, "")
			}
		},
		// tar x of an archive of random data into a new directory.
		"tar-x-random": func(s *script) {
			for i := range 50 {
				s.write(fmt.Sprintf("/srv/out/r%d.bin", i), true, true, "")
			}
		},
		// rsync: a temporary file per file, renamed into place.
		"rsync": func(s *script) {
			for i := range 50 {
				tmp := fmt.Sprintf("/backup/.file%03d.docx.Xy12Ab", i)
				s.write(tmp, true, true, "").rename(tmp, fmt.Sprintf("/backup/file%03d.docx", i))
			}
		},
		// dpkg: NAME.dpkg-new written and renamed over NAME; old files removed.
		"dpkg": func(s *script) {
			for i := range 50 {
				p := fmt.Sprintf("/usr/lib/x/lib%d.so", i)
				s.write(p+".dpkg-new", true, false, "elf").rename(p+".dpkg-new", p)
				s.unlink(fmt.Sprintf("/usr/share/doc/x/old%d", i))
			}
		},
		// git checkout: files deleted and written, as text.
		"git-checkout": func(s *script) {
			for i := range 50 {
				s.unlink(fmt.Sprintf("/src/a%d.go", i)).write(fmt.Sprintf("/src/b%d.go", i), true, false, "")
			}
		},
		// gpg -c of one file, then the original deleted by hand.
		"gpg-one": func(s *script) { s.write(doc(0)+".gpg", true, true, "").unlink(doc(0)) },
		// a compiler: temporary assembly, objects, temporaries removed.
		"cc": func(s *script) {
			for i := range 50 {
				s.write(fmt.Sprintf("/tmp/cc%d.s", i), true, false, "").write(fmt.Sprintf("/src/o%d.o", i), true, false, "elf").unlink(fmt.Sprintf("/tmp/cc%d.s", i))
			}
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			s := newScript(200, "/usr/bin/"+name)
			build(s)
			if idx, fs := feed(New(Config{MinFiles: 5}), s.ops); idx >= 0 {
				t.Errorf("alerted at operation %d: %s", idx, fs[0].Alert.Alert.Message)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	// Slower than the window: never five in one.
	s := newScript(300, "/tmp/slow")
	s.gap = 3 * time.Minute
	for i := range 20 {
		s.write(doc(i), false, true, "")
	}
	if idx, _ := feed(New(Config{MinFiles: 5, Window: 10 * time.Minute}), s.ops); idx >= 0 {
		t.Errorf("alerted at %d with files 3 minutes apart and a 10 minute window", idx)
	}
}

func TestDecoyAndKernelKill(t *testing.T) {
	s := newScript(400, "/tmp/x")
	s.add(Obs{Op: OpRename, Path: "/home/u/!decoy.docx", NewPath: "/home/u/!decoy.docx.enc", Decoy: true, Killed: true})
	_, fs := feed(New(Config{}), s.ops)
	if len(fs) != 1 || fs[0].Alert.Alert.RuleID != RuleDecoy || !fs[0].Killed {
		t.Fatalf("findings: %+v", fs)
	}
	s = newScript(401, "/tmp/y")
	s.write(doc(1), false, true, "")
	s.ops[0].Killed = true
	_, fs = feed(New(Config{}), s.ops)
	if len(fs) != 1 || fs[0].Alert.Alert.RuleID != RuleRansomware || !strings.Contains(fs[0].Alert.Alert.Message, "kernel killed") {
		t.Fatalf("findings: %+v", fs)
	}
}

func TestContainerAggregates(t *testing.T) {
	// A worker process per file, all in one container: no process reaches
	// the threshold, the container does.
	ctr := &event.Container{ID: "abcdef0123456789", Name: "web"}
	d := New(Config{MinFiles: 5})
	var got []Finding
	for i := range 10 {
		s := newScript(uint32(500+i), "/tmp/worker")
		s.ctr = ctr
		s.at = t0.Add(time.Duration(i) * time.Second)
		s.write(doc(i), false, true, "")
		_, fs := feed(d, s.ops)
		got = append(got, fs...)
	}
	if len(got) != 1 || got[0].Container != ctr || len(got[0].Processes) != 5 {
		t.Fatalf("findings: %d %+v", len(got), got)
	}
	if !strings.Contains(got[0].Alert.Alert.Message, "container web (5 processes)") {
		t.Errorf("message: %s", got[0].Alert.Alert.Message)
	}
}

func TestAllowAndForget(t *testing.T) {
	d := New(Config{MinFiles: 1, AllowPrograms: []string{"/usr/bin/shred"}})
	s := newScript(600, "/usr/bin/shred").write(doc(1), false, true, "")
	if _, fs := feed(d, s.ops); len(fs) != 0 {
		t.Errorf("allowed program alerted")
	}
	s = newScript(601, "/tmp/z").write(doc(2), true, false, "")
	feed(d, s.ops)
	if d.Len() != 1 {
		t.Fatalf("%d actors", d.Len())
	}
	d.Forget(t0.Add(time.Hour))
	if d.Len() != 0 {
		t.Errorf("%d actors after Forget", d.Len())
	}
}
