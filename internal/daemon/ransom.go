package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/internal/detect/ransom"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/proc"
	"github.com/vigilsec/vigil/internal/sensor"
	rsensor "github.com/vigilsec/vigil/internal/sensor/ransom"
)

// ransomState is the agent's ransomware detection: the sensor, the
// detector, and the decoys the agent planted. Used from the reader goroutine.
type ransomState struct {
	sensor     *rsensor.Sensor
	detector   *ransom.Detector
	planted    []string // decoys the agent made, removed at close
	rec        rsensor.Record
	lastForget time.Time
}

// startRansom loads the ransomware sensor and plants the decoys.
func (a *Agent) startRansom() error {
	c := a.cfg.Ransomware
	enforce := c.Kill && !a.cfg.Response.DryRun
	scfg := rsensor.Config{SampleBytes: c.SampleBytes, EntropyMin: c.EntropyMin, Window: c.Window.D()}
	if enforce && c.KernelKill {
		scfg.KillScore = c.MinFiles
		scfg.DecoyKill = true
	}
	if c.OnlyCgroup != "" {
		var st syscall.Stat_t
		p := filepath.Join(a.cfg.Paths.Cgroupfs, c.OnlyCgroup)
		if err := syscall.Stat(p, &st); err != nil {
			return fmt.Errorf("ransomware.only_cgroup: %s: %w", p, err)
		}
		scfg.OnlyCgroup = st.Ino
	}
	s, err := rsensor.New(scfg, a.shared)
	if err != nil {
		return err
	}
	r := &ransomState{sensor: s, detector: ransom.New(ransom.Config{
		Window: c.Window.D(), MinFiles: c.MinFiles, ContainerMinFiles: c.ContainerMinFiles, AllowPrograms: c.AllowPrograms,
	})}
	decoys, planted, err := plantDecoys(c.Decoys.Dirs, c.Decoys.Names)
	r.planted = planted
	if err == nil {
		err = s.SetDecoys(decoys)
	}
	if err != nil {
		r.close()
		s.Close()
		return fmt.Errorf("ransomware decoys: %w", err)
	}
	a.ransom = r
	a.sensors = append(a.sensors, attached{name: "ransom", hooks: rsensor.Hooks, missing: s.Skipped, closer: closerFunc(func() error {
		r.close()
		return s.Close()
	})})
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// decoyText is what a decoy holds: a document worth encrypting.
const decoyText = "Quarterly budget review\n\nRevenue, costs and forecasts by region. Confidential.\n"

// plantDecoys makes the decoy files that do not exist yet and returns all
// of them, and those it made.
func plantDecoys(dirs, names []string) (all, planted []string, err error) {
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			switch {
			case err == nil:
				_, err = f.WriteString(decoyText)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return all, planted, err
				}
				planted = append(planted, p)
			case errors.Is(err, os.ErrExist):
			default:
				return all, planted, err
			}
			all = append(all, p)
		}
	}
	return all, planted, nil
}

func (r *ransomState) close() {
	for _, p := range r.planted {
		os.Remove(p)
	}
	r.planted = nil
}

var ransomOps = [...]ransom.Op{rsensor.OpClose: ransom.OpWrite, rsensor.OpUnlink: ransom.OpUnlink,
	rsensor.OpRename: ransom.OpRename, rsensor.OpDecoyOpen: ransom.OpDecoyOpen}

// handleWrite feeds a ransomware sensor record to the detector and acts on
// what it finds.
func (a *Agent) handleWrite(rec []byte) {
	r := a.ransom
	e := &event.Event{Kind: event.KindFile}
	if r == nil || rsensor.Decode(rec, a.clock, &e.Process, &r.rec) != nil || int(r.rec.Op) >= len(ransomOps) {
		a.decodeErrors.Add(1)
		return
	}
	a.received[sensor.TypeWrite].Add(1)
	w := &r.rec
	e.Time = w.Time
	a.cache.Complete(&e.Process)
	a.cache.Enrich(e, a.cfg.Process.AncestryDepth)
	a.ctrs.enrich(e, a.emitAlert)
	o := ransom.Obs{Time: w.Time, Process: e.Process, Container: e.Container, Op: ransomOps[w.Op], Path: w.Path, NewPath: w.NewPath,
		Created: w.Created, HighEntropy: w.HighEntropy, Entropy: w.Entropy, Magic: w.Magic, Bytes: w.Bytes, Decoy: w.Decoy, Killed: w.Killed}
	for _, f := range r.detector.Observe(o) {
		al := f.Alert
		al.Parent, al.Ancestors, al.Origin = e.Parent, e.Ancestors, e.Origin
		al.Alert.Trigger.Parent, al.Alert.Trigger.Ancestors = e.Parent, e.Ancestors
		a.emitAlert(al)
		if a.cfg.Ransomware.Kill {
			a.ransomRespond(f)
		}
	}
	if now := time.Now(); now.Sub(r.lastForget) > time.Minute {
		r.detector.Forget(w.Time.Add(-2 * a.cfg.Ransomware.Window.D()))
		r.lastForget = now
	}
}

// ransomRespond kills the processes of a finding and their descendants,
// and freezes their container, through the responder (dry run, safety
// checks, rate limit, one response event each).
func (a *Agent) ransomRespond(f ransom.Finding) {
	if a.resp == nil || a.resp.r == nil {
		return
	}
	rule := f.Alert.Alert.RuleID
	act := func(p event.Process, action string) {
		t := &event.Event{Time: f.Alert.Time, Kind: event.KindFile, Process: p, Container: f.Container}
		a.resp.r.Handle(event.NewAlert(event.Alert{RuleID: rule, Response: action}, t))
	}
	for i, p := range f.Processes {
		if i == 0 && f.Killed {
			a.emitResponse(event.NewResponse(event.Response{RuleID: rule, Action: "kill", Mechanism: "bpf_send_signal",
				Target: fmt.Sprintf("pid %d (%s)", p.PID, p.Executable), Outcome: event.ResponseDone,
				Reason: "killed in the kernel by the ransomware sensor, in the syscall that crossed its threshold"}, f.Alert.Alert.Trigger))
		} else {
			act(p, "kill")
		}
		for _, c := range a.cache.Descendants(proc.KeyOf(p.PID, p.StartBoot)) {
			act(c, "kill")
		}
	}
	if f.Container != nil && len(f.Processes) > 0 {
		act(f.Processes[0], "freeze")
	}
}
