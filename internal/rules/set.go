package rules

import (
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/vigilsec/vigil/internal/event"
)

// Set is a compiled set of rules.
//
// Eval reuses one activation and is not safe for concurrent use: the engine
// calls it from one goroutine. The other methods are, but SetHost.
type Set struct {
	rules   []*rule
	byKind  [event.KindAlert]*kindIndex // enabled rules by the kinds they are on
	byID    map[string]*rule            // enabled rules
	needs   Needs
	notices []Notice

	ctx *evalCtx // Eval's

	noIndex bool // for tests: evaluate every rule of the kind
}

type rule struct {
	info RuleInfo
	// prog is the condition and the exceptions in one program; cond and the
	// exceptions' programs are also kept alone, for tests and for when prog
	// fails.
	prog   cel.Program
	cond   cel.Program
	guard  []guard // one of these tests holds when the rule matches; none: no guard
	excs   []exception
	msg    *template
	tests  []testCase
	writes []string
	reads  []string

	cost    uint64 // worst case, estimated at load (cost.go)
	tracked bool   // its programs track their cost against runtimeCostLimit

	evalErrors   atomic.Uint64
	costExceeded atomic.Uint64
}

type exception struct {
	name string
	prog cel.Program
}

// RuleInfo describes a rule, for `vigil rules list`.
type RuleInfo struct {
	ID          string
	Name        string
	Description string
	Severity    event.Severity
	On          []event.Kind
	Enabled     bool
	Tags        []string
	MITRE       []string
	Response    string
	// DryRun: the response is reported, not carried out.
	DryRun bool
	// Plan is how the response is carried out; nil for alert.
	Plan *Plan
	// Source is where the rule is defined: its file, and the line and column of its id.
	Source Pos
	// Payload is what a payload rule searches packets for; nil for other
	// rules. Payload rules are evaluated by EvalRule on the packets that
	// matched, not by Eval.
	Payload *Payload
}

// Needs is what the enabled rules need the kernel to report: the event
// kinds they are on, and the files they watch for writes and reads. The
// daemon turns it into kernel filters.
type Needs struct {
	Kinds  []event.Kind
	Writes []string
	Reads  []string
}

func (s *Set) index() error {
	kinds := map[event.Kind]bool{}
	var writes, reads []string
	var byKind [event.KindAlert][]*rule
	s.byID = map[string]*rule{}
	for _, r := range s.rules {
		if !r.info.Enabled {
			continue
		}
		s.byID[r.info.ID] = r
		if r.info.Payload != nil {
			continue // only on the packets that matched it (EvalRule)
		}
		for _, k := range r.info.On {
			byKind[k] = append(byKind[k], r)
			kinds[k] = true
		}
		writes = append(writes, r.writes...)
		reads = append(reads, r.reads...)
	}
	for k, rules := range byKind {
		if len(rules) == 0 {
			continue
		}
		s.byKind[k] = newKindIndex(rules)
	}
	for _, k := range event.Kinds() {
		if kinds[k] {
			s.needs.Kinds = append(s.needs.Kinds, k)
		}
	}
	slices.Sort(writes)
	slices.Sort(reads)
	s.needs.Writes = slices.Compact(writes)
	s.needs.Reads = slices.Compact(reads)
	ctx, err := newEvalCtx()
	if err != nil {
		return fmt.Errorf("rule evaluation: %w", err)
	}
	s.ctx = ctx
	return nil
}

// SetHost sets the host name that host.name reads. Call it before Eval.
func (s *Set) SetHost(name string) { s.ctx.host = name }

// Eval evaluates the enabled rules on e for its kind, and calls emit with an
// alert event (made by event.NewAlert, its Trigger e) for each rule that
// matched and that no exception suppressed, in rule order. An exception that
// fails to evaluate does not suppress.
//
// Eval is not safe for concurrent use, and emit must not call Eval.
func (s *Set) Eval(e *event.Event, emit func(*event.Event)) {
	if int(e.Kind) >= len(s.byKind) || s.byKind[e.Kind] == nil {
		return
	}
	ix := s.byKind[e.Kind]
	c := s.ctx
	c.reset(e)
	cand := ix.all
	if !s.noIndex {
		cand = ix.candidates(c)
	}
	for i, w := range cand {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &= w - 1
			r := ix.rules[i*64+b]
			out, _, err := r.prog.Eval(r.input(c))
			if err != nil {
				if costLimited(err) {
					r.costExceeded.Add(1)
					continue
				}
				r.evalErrors.Add(1)
				if !r.matchSeparately(c) {
					continue
				}
			} else if out != types.True {
				continue
			}
			emit(event.NewAlert(r.alert(c), e))
		}
	}
	c.e = nil
}

// EvalRule evaluates the enabled rule id alone on e, as Eval does, for the
// events only one rule is asked about: a packet that matched a payload
// rule's pattern. Like Eval, it is not safe for concurrent use.
func (s *Set) EvalRule(id string, e *event.Event, emit func(*event.Event)) {
	r := s.byID[id]
	if r == nil {
		return
	}
	c := s.ctx
	c.reset(e)
	out, _, err := r.prog.Eval(r.input(c))
	switch {
	case err != nil && costLimited(err):
		r.costExceeded.Add(1)
	case err != nil:
		r.evalErrors.Add(1)
		if r.matchSeparately(c) {
			emit(event.NewAlert(r.alert(c), e))
		}
	case out == types.True:
		emit(event.NewAlert(r.alert(c), e))
	}
	c.e = nil
}

// input is what the rule's programs evaluate on: the reused frame, or for
// a rule that tracks its cost the activation, for which CEL takes a frame
// from its pool and returns it after, since the cost is kept in the frame
// and must start from zero at each evaluation.
func (r *rule) input(c *evalCtx) any {
	if r.tracked {
		return c
	}
	return c.frame
}

// matchSeparately evaluates the condition, then each exception, after the
// combined program failed: the rule matches when its condition holds and no
// exception holds.
func (r *rule) matchSeparately(c *evalCtx) bool {
	out, _, err := r.cond.Eval(r.input(c))
	if err != nil || out != types.True {
		return false
	}
	for _, x := range r.excs {
		if out, _, err := x.prog.Eval(r.input(c)); err == nil && out == types.True {
			return false
		}
	}
	return true
}

func (r *rule) alert(c *evalCtx) event.Alert {
	return event.Alert{
		RuleID:      r.info.ID,
		RuleName:    r.info.Name,
		Description: r.info.Description,
		Severity:    r.info.Severity,
		Tags:        r.info.Tags,
		MITRE:       r.info.MITRE,
		Message:     r.msg.render(c),
		Response:    r.info.Response,
		DryRun:      r.info.DryRun,
	}
}

// Needs reports what the enabled rules need the kernel to report.
func (s *Set) Needs() Needs {
	return Needs{Kinds: slices.Clone(s.needs.Kinds), Writes: slices.Clone(s.needs.Writes), Reads: slices.Clone(s.needs.Reads)}
}

// Rules describes every rule, enabled or not, in load order.
func (s *Set) Rules() []RuleInfo {
	out := make([]RuleInfo, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.info
		out[i].On = slices.Clone(r.info.On)
		out[i].Tags = slices.Clone(r.info.Tags)
		out[i].MITRE = slices.Clone(r.info.MITRE)
	}
	return out
}

// Notices lists what the load replaced or overrode, for debug logs.
func (s *Set) Notices() []Notice { return slices.Clone(s.notices) }

// CostExceeded counts, per rule id, the evaluations stopped by the runtime
// cost limit (RuntimeCostLimit) since the load; they did not match. Rules
// without any are left out.
func (s *Set) CostExceeded() map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range s.rules {
		if n := r.costExceeded.Load(); n > 0 {
			out[r.info.ID] = n
		}
	}
	return out
}

// Costs is the worst-case evaluation cost of each rule, by id, as
// estimated at load.
func (s *Set) Costs() map[string]uint64 {
	out := make(map[string]uint64, len(s.rules))
	for _, r := range s.rules {
		out[r.info.ID] = r.cost
	}
	return out
}

// EvalErrors counts, per rule id, the evaluations that failed (an index out
// of range, say) since the load. Rules without failures are left out.
func (s *Set) EvalErrors() map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range s.rules {
		if n := r.evalErrors.Load(); n > 0 {
			out[r.info.ID] = n
		}
	}
	return out
}
