package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/rules/defaults"
	"github.com/vigilsec/vigil/internal/sensor"
)

// RuleSources lists where rules come from under this configuration: the
// built-in set, then each directory that exists.
func RuleSources(builtin bool, dirs []string) []rules.Source {
	var src []rules.Source
	if builtin {
		src = append(src, defaults.Source())
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			src = append(src, rules.Dir(d))
		}
	}
	return src
}

func (a *Agent) loadRules() (*rules.Set, error) {
	set, err := rules.Load(RuleSources(a.cfg.Rules.Builtin, a.cfg.Rules.Dirs)...)
	if err != nil {
		return nil, err
	}
	set.SetHost(a.host.Name)
	return set, nil
}

// Reload reads the rules again. A rule set with any error is refused whole:
// the running rules stay, and the error says which file, line and column.
func (a *Agent) Reload() error {
	// One at a time: SIGHUP, the directory watcher and callers may ask at
	// once, and a refused reload restores the rule set the agent runs.
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	set, err := a.loadRules()
	if err != nil {
		a.reloadFailures.Add(1)
		a.log.Error("rules not reloaded; the previous rules keep running", "err", err)
		return err
	}
	if err := a.applyResponse(set); err != nil {
		a.reloadFailures.Add(1)
		a.log.Error("rules not reloaded; the previous rules keep running", "err", err)
		return err
	}
	if err := a.applyPayloadRules(set); err != nil {
		a.reloadFailures.Add(1)
		a.log.Error("rules not reloaded; the previous rules keep running", "err", err)
		// The responders have the new rules: give them back the old.
		if err := a.applyResponse(a.rules.Load()); err != nil {
			a.log.Error("previous rules' responses not restored", "err", err)
		}
		return err
	}
	if err := a.watchRuleNeeds(set); err != nil {
		a.log.Warn("file watches for the new rules incomplete", "err", err)
	}
	a.ruleFailures.keep(a.rules.Swap(set))
	// Sensors set to auto follow the kinds the new rules are on.
	if err := a.applyFilters(set); err != nil {
		a.log.Warn("kernel filters for the new rules not set", "err", err)
	}
	a.reloads.Add(1)
	a.log.Info("rules reloaded", "rules", len(set.Rules()))
	return nil
}

// watchRuleNeeds adds what the rules need watched to the file interest set.
func (a *Agent) watchRuleNeeds(set *rules.Set) error {
	if a.fileSensor == nil {
		return nil
	}
	n := set.Needs()
	var errs []error
	if _, err := a.fileSensor.Watch(n.Writes, sensor.WatchWrite); err != nil {
		errs = append(errs, err)
	}
	if _, err := a.fileSensor.Watch(n.Reads, sensor.WatchRead); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// evalRules runs the rules on e; matches become alert events in the queue.
func (a *Agent) evalRules(e *event.Event) {
	set := a.rules.Load()
	if set == nil {
		return
	}
	set.Eval(e, a.emitAlert)
}

func (a *Agent) emitAlert(al *event.Event) {
	a.alertsRaised.Add(1)
	a.ruleHit(al.Alert)
	select {
	case a.alerts <- al:
	default:
		a.alertsDropped.Add(1)
	}
	a.respondTo(al)
}

// watchRuleDirs reloads the rules when a file in the rule directories
// changes, after changes have settled for a moment (editors write in steps).
func (a *Agent) watchRuleDirs(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("rule directories not watched", "err", err)
		return
	}
	defer w.Close()
	n := 0
	for _, d := range a.cfg.Rules.Dirs {
		if err := w.Add(d); err == nil {
			n++
		}
	}
	if n == 0 {
		return
	}
	const settle = 300 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ext := filepath.Ext(ev.Name); ext == ".yaml" || ext == ".yml" {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.log.Warn("watching rule directories", "err", err)
		case <-timer.C:
			a.Reload()
		}
	}
}

// ruleFailures adds up rules.Set's per-rule failure counts over reloads: a
// Set counts from its load, and Reload replaces it.
type ruleFailures struct {
	mu                       sync.Mutex
	evalErrors, costExceeded map[string]uint64 // of the replaced sets
}

// keep adds the counts of a set that was replaced. Evaluations still running
// on it when it was swapped out may be missed.
func (f *ruleFailures) keep(old *rules.Set) {
	if old == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evalErrors = addCounts(f.evalErrors, old.EvalErrors())
	f.costExceeded = addCounts(f.costExceeded, old.CostExceeded())
}

// get is the counts of the replaced sets plus those of cur; nil when none.
func (f *ruleFailures) get(cur *rules.Set) (evalErrors, costExceeded map[string]uint64) {
	f.mu.Lock()
	evalErrors, costExceeded = addCounts(nil, f.evalErrors), addCounts(nil, f.costExceeded)
	f.mu.Unlock()
	if cur != nil {
		evalErrors, costExceeded = addCounts(evalErrors, cur.EvalErrors()), addCounts(costExceeded, cur.CostExceeded())
	}
	return evalErrors, costExceeded
}

func addCounts(to, from map[string]uint64) map[string]uint64 {
	for k, n := range from {
		if to == nil {
			to = map[string]uint64{}
		}
		to[k] += n
	}
	return to
}
