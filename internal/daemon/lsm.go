package daemon

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/lsmguard"
	"github.com/vigilsec/vigil/internal/rules"
)

// MechLSM names BPF LSM in response events.
const MechLSM = "bpf_lsm"

// lsmDeny carries out the deny rules the kernel can decide alone (files
// named by path and nothing else) with BPF LSM, where the kernel runs it:
// EPERM from the LSM hook, no round trip to user space. Other deny rules
// stay with fanotify.
type lsmDeny struct {
	g *lsmguard.Guard

	mu     sync.Mutex
	denied map[fileKey]deniedFile    // what the guard refuses now
	rules  atomic.Pointer[rules.Set] // the rules taken, to render their alerts
}

type fileKey struct {
	dev uint32 // the kernel's encoding: major << 20 | minor
	ino uint64
}

type deniedFile struct {
	rule, path string
	op         lsmguard.Op
}

// openLSM loads the LSM guard when the probe picked BPF LSM for denying
// opens and the configuration allows it: with programs allowlisted, or in
// dry run, fanotify decides (the kernel cannot tell an allowlisted program).
func (a *Agent) openLSM() *lsmDeny {
	rc := a.cfg.Response
	if a.kernel.Mechanism(kernelcap.JobDenyOpen) != kernelcap.MechLSM || rc.DryRun || len(rc.AllowPrograms) > 0 {
		return nil
	}
	g, err := lsmguard.New(lsmguard.Config{ExemptPID: os.Getpid()})
	if err != nil {
		a.log.Warn("BPF LSM deny not loaded; fanotify decides every deny rule", "err", err)
		return nil
	}
	a.log.Info("deny rules on files alone are enforced with BPF LSM", "hooks", lsmguard.Hooks)
	return &lsmDeny{g: g, denied: map[fileKey]deniedFile{}}
}

// lsmPlan picks the rules the guard can take: deny by path alone, every path
// there now. It returns them by id.
func (l *lsmDeny) plan(set *rules.Set, dry bool) map[string]bool {
	taken := map[string]bool{}
	if l == nil || dry {
		return taken
	}
	for _, ri := range set.Rules() {
		p := ri.Plan
		if !ri.Enabled || ri.DryRun || p == nil || ri.Response != "deny" || len(p.DenyNet) > 0 {
			continue
		}
		if (p.DenyOpen != nil && p.DenyOpenExact == nil) || (p.DenyExec != nil && p.DenyExecExact == nil) {
			continue
		}
		if p.DenyOpenExact == nil && p.DenyExecExact == nil {
			continue
		}
		ok := true
		for _, ps := range []*rules.PathSet{p.DenyOpenExact, p.DenyExecExact} {
			for _, path := range pathsOf(ps) {
				if _, err := os.Stat(path); err != nil {
					ok = false // fanotify watches its directory until it exists
				}
			}
		}
		if ok {
			taken[ri.ID] = true
		}
	}
	return taken
}

func pathsOf(ps *rules.PathSet) []string {
	if ps == nil {
		return nil
	}
	return ps.Exact
}

// apply makes the guard refuse exactly the files of the rules taken.
func (l *lsmDeny) apply(set *rules.Set, taken map[string]bool) error {
	next := map[fileKey]deniedFile{}
	var errs []error
	for _, ri := range set.Rules() {
		if !taken[ri.ID] {
			continue
		}
		for _, x := range []struct {
			ps *rules.PathSet
			op lsmguard.Op
		}{{ri.Plan.DenyOpenExact, lsmguard.Open}, {ri.Plan.DenyExecExact, lsmguard.Exec}} {
			for _, path := range pathsOf(x.ps) {
				var st unix.Stat_t
				if err := unix.Stat(path, &st); err != nil {
					errs = append(errs, err)
					continue
				}
				k := fileKey{dev: unix.Major(st.Dev)<<20 | unix.Minor(st.Dev), ino: st.Ino}
				d := next[k]
				d.rule, d.path, d.op = ri.ID, path, d.op|x.op
				next[k] = d
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, d := range l.denied {
		if _, ok := next[k]; !ok {
			if err := l.g.Allow(d.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for _, d := range next {
		var err error
		if d.op&lsmguard.Open != 0 {
			err = l.g.DenyOpen(d.path, 0)
		}
		if err == nil && d.op&lsmguard.Exec != 0 {
			err = l.g.DenyExec(d.path, 0)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	l.denied = next
	sub, err := set.Subset(func(ri rules.RuleInfo) bool { return taken[ri.ID] })
	if err != nil {
		errs = append(errs, err)
	} else {
		l.rules.Store(sub)
	}
	return errors.Join(errs...)
}

// run reports each denial as the rule's alert and a response event, until
// the guard is closed.
func (a *Agent) runLSMDenials(l *lsmDeny) {
	for {
		d, err := l.g.ReadDenial()
		if errors.Is(err, lsmguard.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		l.mu.Lock()
		f, ok := l.denied[fileKey{d.Dev, d.Ino}]
		l.mu.Unlock()
		if !ok {
			continue // denied before a reload took it back
		}
		p, ok := a.processByPID(d.TGID)
		if !ok {
			p = event.Process{PID: d.TGID, Name: d.Comm}
		}
		e := &event.Event{Time: time.Now(), Process: p}
		if d.Op == lsmguard.Exec {
			e.Kind = event.KindExec
		} else {
			e.Kind = event.KindFile
			e.File = &event.File{Op: event.FileOpen, Path: f.path, PathResolved: true}
		}
		a.cache.Enrich(e, a.cfg.Process.AncestryDepth)
		// The rule's own alert, as the rule renders it.
		if sub := l.rules.Load(); sub != nil {
			sub.Eval(e, func(al *event.Event) {
				if al.Alert.RuleID == f.rule {
					a.emitAlert(al)
				}
			})
		}
		a.emitResponse(event.NewResponse(event.Response{RuleID: f.rule, Action: "deny", Mechanism: MechLSM,
			Target: f.path, Outcome: event.ResponseDone}, e))
	}
}
