package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/proc"
	"github.com/vigilsec/vigil/internal/respond"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/process"
	"github.com/vigilsec/vigil/internal/web"
)

// responders carries out the rules' responses: the policy (respond), the
// network enforcement (netguard), the fanotify Denier and the process
// sensor's kill at exec. Mechanisms that fail to load are kept as errors:
// rules that need them are refused at load, with the reason.
type responders struct {
	r         *respond.Responder
	guard     *netguard.Guard
	guardErr  error
	denier    *respond.Denier
	denierErr error
	lsm       *lsmDeny // nil unless BPF LSM runs here

	mu      sync.Mutex
	set     *rules.Set      // the rules last applied
	killSet process.KillSet // last given to the kernel
	missing []string        // exec kill paths not found, retried
	emitted atomic.Uint64   // response events
	dropped atomic.Uint64   // response events lost to a full queue
	stop    func()
}

// setupResponse loads the enforcement mechanisms and applies the rules'
// responses to them.
func (a *Agent) setupResponse(set *rules.Set) error {
	rc := a.cfg.Response
	rs := &responders{}
	a.resp = rs
	if rc.Network {
		cg := rc.SocketCgroup
		if cg == "" {
			cg = a.cfg.Paths.Cgroupfs
		}
		ifs, err := interfaces(rc.Interfaces)
		if err == nil {
			// Interfaces found by "*" that refuse the programs (another XDP
			// program holds one, say) are left alone and logged.
			mode := rc.XDPMode
			if mode == "auto" {
				mode = ""
			}
			rs.guard, err = netguard.Open(netguard.Config{PinDir: rc.PinDir, Cgroup: cg, Interfaces: ifs, Persist: true, XDPMode: mode,
				SkipRefused: slices.Contains(rc.Interfaces, "*")})
			if err == nil {
				for name, why := range rs.guard.Skipped() {
					a.log.Warn("interface left without network enforcement", "interface", name, "err", why)
				}
			}
		}
		if err != nil {
			rs.guardErr = err
			a.log.Warn("network enforcement not loaded: rules with deny on net events, block-ip or isolate-host are refused", "err", err)
		} else {
			a.log.Info("network enforcement attached", "hooks", rs.guard.Hooks(), "pin_dir", rc.PinDir)
		}
	} else {
		rs.guardErr = errors.New("response.network is false")
	}
	var blocker respond.Blocker
	if rs.guard != nil {
		blocker = guardBlocker{rs.guard}
		a.SetBlockList(webBlocks{rs.guard})
	}
	rs.r = respond.New(respond.Config{
		DryRun:        rc.DryRun,
		AllowPrograms: rc.AllowPrograms,
		RateLimit:     rc.RateLimit,
		BlockFor:      rc.BlockFor.D(),
		NeverBlock:    config.Prefixes(rc.NeverBlock),
		IsolateAllow:  config.Prefixes(rc.IsolateAllow),
		CgroupRoot:    a.cfg.Paths.Cgroupfs,
		ProcRoot:      a.cfg.Paths.Procfs,
	}, blocker, a.emitResponse)
	rs.lsm = a.openLSM()
	if rc.Fanotify {
		d, err := respond.NewDenier(respond.DenyConfig{Timeout: rc.DecisionTimeout.D(), FailOpen: rc.FailOpen, DryRun: rc.DryRun},
			a.processByPID, rs.r.ProcessSafe, a.emitResponse)
		if err != nil {
			rs.denierErr = err
			a.log.Warn("fanotify deny not available: rules with deny on file or exec events are refused", "err", err)
		} else {
			rs.denier = d
		}
	} else {
		rs.denierErr = errors.New("response.fanotify is false")
	}
	return a.applyResponse(set)
}

// guardBlocker adapts netguard to respond.Blocker.
type guardBlocker struct{ g *netguard.Guard }

func (b guardBlocker) Block(p netip.Prefix, until time.Time, _ string) error {
	return b.g.Block(p, until, netguard.SourceRule)
}
func (b guardBlocker) Isolate(allow []netip.Prefix) error { return b.g.Isolate(allow) }

// interfaces expands "*" to every interface but loopback.
func interfaces(names []string) ([]string, error) {
	if !slices.Contains(names, "*") {
		return names, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ifc := range all {
		if ifc.Flags&net.FlagLoopback == 0 && ifc.Flags&net.FlagUp != 0 {
			out = append(out, ifc.Name)
		}
	}
	return out, nil
}

// processByPID describes a process for the Denier: from the cache, or from
// procfs when the sensors have not reported it yet.
func (a *Agent) processByPID(pid uint32) (event.Process, bool) {
	if k, ok := a.cache.Current(pid); ok {
		if p, st, ok := a.cache.Get(k); ok && st == proc.Alive {
			return p, true
		}
	}
	p, err := a.cache.ReadProcfs(pid)
	return p, err == nil
}

// applyResponse checks that every enabled rule's response can be carried
// out here and gives the kernel and fanotify what the rules ask. It fails,
// changing nothing, when one cannot: the error names the rule and why.
func (a *Agent) applyResponse(set *rules.Set) error {
	rs := a.resp
	if rs == nil {
		return nil
	}
	var errs []error
	var denies []netguard.Deny
	var open, exec, openTrees, execTrees []string
	dry := a.cfg.Response.DryRun
	// Deny rules on files alone go to BPF LSM where it runs; fanotify
	// decides the others.
	inKernel := rs.lsm.plan(set, dry)
	for _, ri := range set.Rules() {
		p := ri.Plan
		if !ri.Enabled || p == nil || inKernel[ri.ID] {
			continue
		}
		refuse := func(need string, err error) {
			errs = append(errs, fmt.Errorf("%s: rule %q: response %s needs %s, which is not available here: %v", ri.Source, ri.ID, ri.Response, need, err))
		}
		if (p.DenyOpen != nil || p.DenyExec != nil) && rs.denier == nil {
			refuse("fanotify permission events", rs.denierErr)
		}
		if (len(p.DenyNet) > 0 || ri.Response == "block-ip" || ri.Response == "isolate-host") && rs.guard == nil {
			refuse("network enforcement (cgroup socket hooks, XDP, tcx)", rs.guardErr)
		}
		if dry || ri.DryRun {
			continue // reported by Handle and the Denier, never enforced
		}
		for _, m := range p.DenyNet {
			denies = append(denies, netguard.Deny{Bind: m.Op == "bind", Addr: m.Addr, Port: m.Port})
		}
		if p.DenyOpen != nil {
			open, openTrees = append(open, p.DenyOpen.Exact...), append(openTrees, p.DenyOpen.Prefixes...)
		}
		if p.DenyExec != nil {
			exec, execTrees = append(exec, p.DenyExec.Exact...), append(execTrees, p.DenyExec.Prefixes...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if rs.guard != nil {
		if err := rs.guard.SetDenies(denies); err != nil {
			return err
		}
	}
	if rs.lsm != nil {
		if err := rs.lsm.apply(set, inKernel); err != nil {
			return err
		}
	}
	if rs.denier != nil {
		// Deny rules decide in dry run too: the Denier reports them.
		sub, err := set.Subset(func(ri rules.RuleInfo) bool {
			return ri.Response == "deny" && ri.Plan != nil && (ri.Plan.DenyOpen != nil || ri.Plan.DenyExec != nil) && !inKernel[ri.ID]
		})
		if err != nil {
			return err
		}
		sub.SetHost(a.host.Name)
		rs.denier.SetDecider(func(e *event.Event) (respond.Decision, bool) {
			var d respond.Decision
			found := false
			sub.Eval(e, func(al *event.Event) {
				if !found {
					d, found = respond.Decision{RuleID: al.Alert.RuleID, DryRun: al.Alert.DryRun, Alert: al}, true
				}
			})
			return d, found
		})
		missing, err := rs.denier.SetMarks(open, exec, openTrees, execTrees)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			a.log.Warn("deny rules name files that do not exist; not watched until the rules reload", "paths", missing)
		}
	}
	rs.mu.Lock()
	rs.set = set
	rs.mu.Unlock()
	return a.refreshExecKill()
}

// refreshExecKill gives the process sensor the files and directories that
// kill rules name, as they are now: a file replaced since is a new inode,
// and a path that did not exist may exist now.
func (a *Agent) refreshExecKill() error {
	rs := a.resp
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.set == nil || a.procSensor == nil {
		return nil
	}
	var ks process.KillSet
	var missing []string
	if !a.cfg.Response.DryRun {
		for _, ri := range rs.set.Rules() {
			if !ri.Enabled || ri.DryRun || ri.Plan == nil || ri.Plan.ExecKill == nil {
				continue
			}
			for _, lst := range []struct {
				paths []string
				to    *[]sensor.InodeKey
			}{{ri.Plan.ExecKill.Exact, &ks.Files}, {ri.Plan.ExecKill.Prefixes, &ks.Trees}} {
				for _, p := range lst.paths {
					k, err := sensor.InodeOf(p)
					if err != nil {
						missing = append(missing, p)
						continue
					}
					*lst.to = append(*lst.to, k)
				}
			}
		}
		for _, p := range a.cfg.Response.AllowPrograms {
			if k, err := sensor.InodeOf(p); err == nil {
				ks.Allow = append(ks.Allow, k)
			}
		}
	}
	for _, l := range []*[]sensor.InodeKey{&ks.Files, &ks.Trees, &ks.Allow} {
		slices.SortFunc(*l, func(x, y sensor.InodeKey) int {
			if x.Dev != y.Dev {
				return int(x.Dev) - int(y.Dev)
			}
			return cmpU64(x.Ino, y.Ino)
		})
	}
	if !slices.Equal(missing, rs.missing) && len(missing) > 0 {
		a.log.Warn("kill rules name paths that do not exist; the kernel cannot kill them at exec until they do (rechecked every 5s; a match is killed after exec meanwhile)", "paths", missing)
	}
	rs.missing = missing
	if slices.Equal(ks.Files, rs.killSet.Files) && slices.Equal(ks.Trees, rs.killSet.Trees) && slices.Equal(ks.Allow, rs.killSet.Allow) {
		return nil
	}
	if err := a.procSensor.SetExecKill(ks); err != nil {
		return err
	}
	rs.killSet = ks
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// respondTo carries out an alert's response, on the reader's goroutine.
func (a *Agent) respondTo(al *event.Event) {
	if a.resp != nil && al.Alert != nil && al.Alert.Response != "alert" {
		a.resp.r.Handle(al)
	}
}

// emitResponse queues a response event ahead of ordinary events.
func (a *Agent) emitResponse(e *event.Event) {
	if a.resp == nil {
		return
	}
	a.resp.emitted.Add(1)
	if r := e.Response; r != nil && a.out.metrics != nil {
		a.out.metrics.Responses.WithLabelValues(r.Action, r.Outcome).Inc()
	}
	select {
	case a.alerts <- e:
	default:
		a.resp.dropped.Add(1)
	}
}

// startResponse runs the Denier and the housekeeping of blocks and kill
// sets; the returned function stops them (before the queues close).
func (a *Agent) startResponse(ctx context.Context) (stop func()) {
	rs := a.resp
	if rs == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if rs.lsm != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.runLSMDenials(rs.lsm) }()
		go func() { <-ctx.Done(); rs.lsm.g.Close() }() // ends runLSMDenials
	}
	if rs.denier != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rs.denier.Run(ctx); err != nil {
				a.log.Error("fanotify deny stopped: held opens and execs are allowed", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.responseHousekeeping()
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (a *Agent) responseHousekeeping() {
	rs := a.resp
	if err := a.refreshExecKill(); err != nil {
		a.log.Warn("exec kill set not refreshed", "err", err)
	}
	if rs.guard == nil {
		return
	}
	gone, err := rs.guard.Expire()
	if err != nil {
		a.log.Warn("block expiry", "err", err)
	}
	for _, b := range gone {
		a.emitResponse(event.NewResponse(event.Response{Action: "unblock", Mechanism: respond.MechBlock,
			Target: b.Prefix.String(), Outcome: event.ResponseDone, Reason: "the block expired (" + b.Source.String() + ")"}, nil))
	}
}

func (a *Agent) closeResponse() error {
	rs := a.resp
	if rs == nil {
		return nil
	}
	var errs []error
	if rs.denier != nil {
		errs = append(errs, rs.denier.Close())
	}
	if rs.guard != nil {
		errs = append(errs, rs.guard.Close())
	}
	if rs.lsm != nil {
		errs = append(errs, rs.lsm.g.Close())
	}
	return errors.Join(errs...)
}

// webBlocks shows netguard's block list on the web page.
type webBlocks struct{ g *netguard.Guard }

func (w webBlocks) Blocked() []web.Blocked {
	list, err := w.g.List()
	if err != nil {
		return nil
	}
	out := make([]web.Blocked, 0, len(list))
	for _, b := range list {
		out = append(out, web.Blocked{Prefix: b.Prefix.String(), Reason: b.Source.String(), Until: b.Until})
	}
	return out
}
