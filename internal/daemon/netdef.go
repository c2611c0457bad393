package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netdef"
	"github.com/vigilsec/vigil/internal/rules"
)

// setupNetDefense starts network defence on the guard the responders
// loaded (floods, scans, threat intelligence, payloads: docs/network.md).
// Without network enforcement it is off, and says so.
func (a *Agent) setupNetDefense() error {
	c := a.cfg.NetDefense
	if !c.Enabled {
		return nil
	}
	if a.resp == nil || a.resp.guard == nil {
		var why error
		if a.resp != nil {
			why = a.resp.guardErr
		}
		a.log.Warn("network defence off: it needs the network enforcement (response.network)", "err", why)
		return nil
	}
	rc := a.cfg.Response
	d, err := netdef.New(c, a.resp.guard, netdef.Deps{
		Log:        a.log,
		Alert:      a.emitAlert,
		Response:   a.emitResponse,
		AddrSafe:   a.resp.r.AddrSafe,
		NeverBlock: append(config.Prefixes(rc.NeverBlock), config.Prefixes(rc.IsolateAllow)...),
		Payload:    a.payloadMatched,
	})
	if err != nil {
		return err
	}
	a.netdef = d
	if err := a.applyPayloadRules(a.rules.Load()); err != nil {
		return err
	}
	a.log.Info("network defence on", "xdp", a.resp.guard.XDPModes(), "payload_rules", a.payload.count, "intel_lists", len(c.Intel.Lists))
	return nil
}

// payloadRules are the enabled payload rules, evaluated on the packets
// that matched their patterns (on network defence's notice goroutine).
type payloadRules struct {
	mu      sync.Mutex
	set     *rules.Set // its own evaluation context
	count   int
	dropped atomic.Uint64 // payload events the full queue refused
}

// applyPayloadRules gives the kernel the patterns of the enabled payload
// rules. Without network defence they are not searched for: alert rules
// are reported once, deny rules refused.
func (a *Agent) applyPayloadRules(set *rules.Set) error {
	var prs []netdef.PayloadRule
	var denies []string
	for _, ri := range set.Rules() {
		if !ri.Enabled || ri.Payload == nil {
			continue
		}
		drop := ri.Plan != nil && ri.Plan.PayloadDrop
		if drop {
			denies = append(denies, fmt.Sprintf("%s: rule %q", ri.Source, ri.ID))
		}
		prs = append(prs, netdef.PayloadRule{ID: ri.ID, Payload: *ri.Payload, Drop: drop && !ri.DryRun && !a.cfg.Response.DryRun})
	}
	if len(prs) > rules.MaxPayloadRules {
		return fmt.Errorf("%d payload rules are enabled; the kernel searches for at most %d patterns: disable some", len(prs), rules.MaxPayloadRules)
	}
	if a.netdef == nil {
		if len(denies) > 0 {
			return fmt.Errorf("%s: response deny drops packets in network defence's tcx programs, which are not running (netdefense.enabled, response.network)",
				strings.Join(denies, ", "))
		}
		return nil
	}
	sub, err := set.Subset(func(ri rules.RuleInfo) bool { return ri.Payload != nil })
	if err != nil {
		return err
	}
	sub.SetHost(a.host.Name)
	if err := a.netdef.SetPayloadRules(prs); err != nil {
		return err
	}
	a.payload.mu.Lock()
	a.payload.set, a.payload.count = sub, len(prs)
	a.payload.mu.Unlock()
	return nil
}

// payloadMatched takes a packet that matched payload rule id: the rule
// decides the alert (and its response), and the packet is an event.
func (a *Agent) payloadMatched(e *event.Event, id string) {
	a.payload.mu.Lock()
	if s := a.payload.set; s != nil {
		s.EvalRule(id, e, a.emitAlert)
	}
	a.payload.mu.Unlock()
	select {
	case a.queue <- e:
	default:
		a.payload.dropped.Add(1)
	}
}

func (a *Agent) startNetDefense(ctx context.Context) (stop func()) {
	if a.netdef == nil {
		return func() {}
	}
	return a.netdef.Start(ctx)
}

// netDefenseEvent gives net events to network defence (reader goroutine).
func (a *Agent) netDefenseEvent(e *event.Event) {
	if a.netdef != nil && e.Kind == event.KindNet {
		a.netdef.Observe(e)
	}
}

func (a *Agent) closeNetDefense() error {
	if a.netdef == nil {
		return nil
	}
	return a.netdef.Close()
}
