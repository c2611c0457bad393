package daemon

import (
	"context"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netdef"
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
	})
	if err != nil {
		return err
	}
	a.netdef = d
	a.log.Info("network defence on", "xdp", a.resp.guard.XDPModes(), "signatures", len(c.Payload.Signatures), "intel_lists", len(c.Intel.Lists))
	return nil
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
