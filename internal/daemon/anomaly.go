package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/detect/anomaly"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/seq"
)

// learned is the agent's learned-behaviour detection: the syscall-sequence
// sensor, the detector, and which programs it selects. Everything but the
// detector is used only from the reader goroutine.
type learned struct {
	sensor   *seq.Sensor
	detector *anomaly.Detector
	programs map[string]bool
	batch    seq.Batch
}

// startAnomaly loads the sequence sensor and the saved profiles.
func (a *Agent) startAnomaly() error {
	c := a.cfg.Anomaly
	d, err := anomaly.NewDetector(anomaly.DetectorConfig{
		Params:      anomaly.Params{N: c.NGram, Frame: c.Frame},
		FalseAlarms: c.FalseAlarms,
		Learn:       c.Learn.D(),
		MinSyscalls: c.MinSyscalls,
		Startup:     c.Startup,
		Dir:         c.ProfilesDir,
	})
	if err != nil {
		return fmt.Errorf("anomaly: %w", err)
	}
	s, err := seq.New(a.shared)
	if err != nil {
		return err
	}
	l := &learned{sensor: s, detector: d, programs: map[string]bool{}}
	for _, p := range c.Programs {
		l.programs[p] = true
	}
	a.learned = l
	a.sensors = append(a.sensors, attached{name: "seq", hooks: seq.Hooks, closer: s})
	return nil
}

// program names a process for its profile: its script when it runs one,
// else its executable.
func program(p *event.Process) string {
	if p.Script != "" {
		return p.Script
	}
	return p.Executable
}

// selectExisting selects the configured programs that run already.
func (a *Agent) selectExisting() {
	if a.learned == nil {
		return
	}
	a.cache.Programs(func(pid uint32, exe, script string) {
		p := &event.Process{PID: pid, Executable: exe, Script: script}
		if a.learned.programs[program(p)] {
			a.learnProcess(p)
		}
	})
}

func (a *Agent) learnProcess(p *event.Process) {
	l := a.learned
	id := l.detector.Profile(program(p))
	if err := l.sensor.Select(p.PID, id); err != nil {
		a.log.Debug("anomaly: select", "pid", p.PID, "err", err)
	}
}

// anomalyEvent selects the programs to learn as they exec or listen, and
// tells the detector what a learned program spawns.
func (a *Agent) anomalyEvent(e *event.Event) {
	l := a.learned
	switch e.Kind {
	case event.KindExec:
		if l.programs[program(&e.Process)] {
			a.learnProcess(&e.Process)
			l.detector.Started(e.Process.PID)
		}
		// A child of a learned program: its parent is the program's
		// forked copy, which the exec turned into something else.
		if e.Parent != nil {
			if id, ok := l.detector.Lookup(program(e.Parent)); ok {
				l.detector.Spawn(id, e.Process.PID, e.Process.Executable, a.anomalyFound)
			}
		}
	case event.KindNet:
		if a.cfg.Anomaly.Listeners && e.Net.Op == event.NetListen && e.Return >= 0 {
			a.learnProcess(&e.Process)
		}
	}
}

// handleSyscalls feeds a batch of syscall numbers to the detector.
func (a *Agent) handleSyscalls(rec []byte) {
	l := a.learned
	if l == nil || seq.Decode(rec, &l.batch) != nil {
		a.decodeErrors.Add(1)
		return
	}
	a.received[sensor.TypeSyscalls].Add(1)
	b := &l.batch
	l.detector.Feed(time.Now(), anomaly.Batch{Profile: b.Profile, PID: b.PID, TID: b.TID, Nr: b.Nr, Gap: b.Gap, End: b.Exec || b.Exit},
		a.anomalyFound)
}

// anomalyFound makes an alert of a finding.
func (a *Agent) anomalyFound(f anomaly.Finding) {
	e := &event.Event{Time: time.Now(), Kind: event.KindAlert}
	if k, ok := a.cache.Current(f.PID); ok {
		if p, _, ok := a.cache.Get(k); ok {
			e.Process = p
		}
	}
	if e.Process.PID == 0 {
		e.Process.PID = f.PID
	}
	e.Process.TID = f.TID
	a.cache.Enrich(e, a.cfg.Process.AncestryDepth)
	a.ctrs.enrich(e, a.emitAlert) // the container the program runs in
	al := &event.Alert{Severity: event.SeverityWarning, Tags: []string{"anomaly"}}
	if f.Spawned != "" {
		al.RuleID, al.RuleName = "anomaly-spawn", "Program ran an executable it never ran while learned"
		al.MITRE = []string{"T1059"}
		al.Message = fmt.Sprintf("%s (pid %d) ran %s, which it never ran while it was learned", f.Program, f.PID, f.Spawned)
	} else {
		al.RuleID, al.RuleName = "anomaly-syscalls", "Program made syscall sequences it never made while learned"
		al.Message = fmt.Sprintf("%s (pid %d, thread %d): syscall sequences scored %.2f, above its threshold %.2f; unusual: %s",
			f.Program, f.PID, f.TID, f.Score, f.Threshold, unusual(f.Unusual, 8))
	}
	al.Description = "Learned-behaviour detection (docs/anomaly.md)."
	e.Alert = al
	a.emitAlert(e)
}

// unusual spells up to max n-grams with syscall names.
func unusual(grams [][]uint16, max int) string {
	var parts []string
	for i, g := range grams {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(grams)-max))
			break
		}
		names := make([]string, len(g))
		for j, x := range g {
			names[j] = seq.Name(x)
		}
		parts = append(parts, strings.Join(names, ","))
	}
	return strings.Join(parts, " | ")
}

// EndLearning starts detection for a program now, whatever its learning
// time; for tests and for operators who know the program was exercised.
func (a *Agent) EndLearning(program string) error {
	if a.learned == nil {
		return fmt.Errorf("anomaly detection is off")
	}
	return a.learned.detector.Detect(time.Now(), program)
}

// AnomalyStatus describes the learned programs; nil when detection is off.
func (a *Agent) AnomalyStatus() []anomaly.ProfileStatus {
	if a.learned == nil {
		return nil
	}
	return a.learned.detector.Status()
}
