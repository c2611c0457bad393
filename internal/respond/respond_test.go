package respond

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// recorder is a Blocker that records what it was asked.
type recorder struct {
	blocks  []netip.Prefix
	untils  []time.Time
	isolate [][]netip.Prefix
	err     error
}

func (r *recorder) Block(p netip.Prefix, until time.Time, why string) error {
	r.blocks, r.untils = append(r.blocks, p), append(r.untils, until)
	return r.err
}

func (r *recorder) Isolate(allow []netip.Prefix) error {
	r.isolate = append(r.isolate, allow)
	return r.err
}

type harness struct {
	r      *Responder
	bl     *recorder
	out    []*event.Response
	kills  []uint32
	freeze []uint64
	now    time.Time
}

func newHarness(cfg Config) *harness {
	h := &harness{bl: &recorder{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.r = New(cfg, h.bl, func(e *event.Event) {
		if e.Kind != event.KindResponse {
			panic("not a response event")
		}
		h.out = append(h.out, e.Response)
	})
	h.r.now = func() time.Time { return h.now }
	h.r.kill = func(pid uint32, _ uint64) error { h.kills = append(h.kills, pid); return nil }
	h.r.freeze = func(id uint64) (string, error) { h.freeze = append(h.freeze, id); return "/cg/x", nil }
	return h
}

func alert(response string, dry bool, trig *event.Event) *event.Event {
	return event.NewAlert(event.Alert{RuleID: "r", Response: response, DryRun: dry}, trig)
}

func execOf(pid uint32, exe string) *event.Event {
	return &event.Event{Kind: event.KindExec, Process: event.Process{PID: pid, PPID: 100, Executable: exe, CgroupID: 4242}}
}

func connectTo(addr string, ret int64) *event.Event {
	return &event.Event{Kind: event.KindNet, Process: event.Process{PID: 500, PPID: 100}, Return: ret,
		Net: &event.Net{Op: event.NetConnect, Destination: netip.MustParseAddrPort(addr)}}
}

func TestHandle(t *testing.T) {
	self := uint32(os.Getpid())
	killedAtExec := execOf(700, "/tmp/x")
	killedAtExec.Exec = &event.Exec{Killed: true}
	tests := []struct {
		name    string
		cfg     Config
		alert   *event.Event
		outcome string
		mech    string
		reason  string
		kills   int
		blocks  int
		freezes int
		isolate int
	}{
		{name: "kill", alert: alert("kill", false, execOf(700, "/tmp/x")), outcome: "done", mech: MechPidfd,
			reason: "killed after exec", kills: 1},
		{name: "killed in the kernel", alert: alert("kill", false, killedAtExec), outcome: "done", mech: MechExecKill},
		{name: "kill pid 1", alert: alert("kill", false, execOf(1, "/sbin/init")), outcome: "refused", reason: "pid 1"},
		{name: "kill self", alert: alert("kill", false, execOf(self, "/usr/bin/vigil")), outcome: "refused", reason: "itself"},
		{name: "kill kernel thread", alert: alert("kill", false, &event.Event{Kind: event.KindFile, Process: event.Process{PID: 90, PPID: 2}}),
			outcome: "refused", reason: "kernel threads"},
		{name: "kill allowed program", cfg: Config{AllowPrograms: []string{"/usr/sbin/sshd"}},
			alert: alert("kill", false, execOf(800, "/usr/sbin/sshd")), outcome: "refused", reason: "allowed program"},
		{name: "kill dry-run by rule", alert: alert("kill", true, execOf(700, "/tmp/x")), outcome: "dry-run"},
		{name: "kill dry-run global", cfg: Config{DryRun: true}, alert: alert("kill", false, execOf(700, "/tmp/x")), outcome: "dry-run"},
		{name: "block-ip", cfg: Config{BlockFor: time.Hour}, alert: alert("block-ip", false, connectTo("203.0.113.9:443", 0)),
			outcome: "done", mech: MechBlock, blocks: 1},
		{name: "block loopback", alert: alert("block-ip", false, connectTo("127.0.0.1:443", 0)), outcome: "refused", reason: "never blocked"},
		{name: "block management", cfg: Config{NeverBlock: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
			alert: alert("block-ip", false, connectTo("203.0.113.9:443", 0)), outcome: "refused", reason: "203.0.113.0/24"},
		{name: "block dry-run", alert: alert("block-ip", true, connectTo("203.0.113.9:443", 0)), outcome: "dry-run"},
		{name: "isolate", cfg: Config{IsolateAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			alert: alert("isolate-host", false, execOf(700, "/tmp/x")), outcome: "done", isolate: 1},
		{name: "freeze", cfg: Config{CgroupRoot: "/nonexistent"}, alert: alert("freeze", false, execOf(700, "/tmp/x")), outcome: "done", mech: MechFreeze, freezes: 1},
		{name: "freeze pid 1", alert: alert("freeze", false, execOf(1, "/sbin/init")), outcome: "refused"},
		{name: "deny refused by the hook", alert: alert("deny", false, connectTo("127.0.0.1:25", -1)), outcome: "done", mech: MechCgroup},
		{name: "deny dry-run", alert: alert("deny", true, connectTo("127.0.0.1:25", 0)), outcome: "dry-run"},
		{name: "deny not refused", alert: alert("deny", false, connectTo("127.0.0.1:25", 0)), outcome: "failed", reason: "was not refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.cfg)
			h.r.Handle(tt.alert)
			if len(h.out) != 1 {
				t.Fatalf("%d response events, want 1", len(h.out))
			}
			got := h.out[0]
			if got.Outcome != tt.outcome || got.RuleID != "r" || got.Action != tt.alert.Alert.Response ||
				(tt.mech != "" && got.Mechanism != tt.mech) || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("response %+v, want outcome %s, mechanism %q, reason with %q", got, tt.outcome, tt.mech, tt.reason)
			}
			if len(h.kills) != tt.kills || len(h.bl.blocks) != tt.blocks || len(h.freeze) != tt.freezes || len(h.bl.isolate) != tt.isolate {
				t.Errorf("acted: kills %v, blocks %v, freezes %v, isolations %v", h.kills, h.bl.blocks, h.freeze, h.bl.isolate)
			}
		})
	}
}

func TestBlockPrefixAndExpiry(t *testing.T) {
	h := newHarness(Config{BlockFor: 10 * time.Minute})
	h.r.Handle(alert("block-ip", false, connectTo("[2001:db8::7]:22", 0)))
	if len(h.bl.blocks) != 1 || h.bl.blocks[0] != netip.MustParsePrefix("2001:db8::7/128") || !h.bl.untils[0].Equal(h.now.Add(10*time.Minute)) {
		t.Errorf("blocked %v until %v", h.bl.blocks, h.bl.untils)
	}
}

func TestFailureIsReported(t *testing.T) {
	h := newHarness(Config{})
	h.r.kill = func(uint32, uint64) error { return errors.New("pid 700 has exited") }
	h.r.Handle(alert("kill", false, &event.Event{Kind: event.KindFile, Process: event.Process{PID: 700, PPID: 1}}))
	if len(h.out) != 1 || h.out[0].Outcome != "failed" || h.out[0].Reason != "pid 700 has exited" {
		t.Errorf("got %+v", h.out)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(Config{RateLimit: 3})
	trig := &event.Event{Kind: event.KindFile, Process: event.Process{PID: 700, PPID: 1}}
	for range 5 {
		h.r.Handle(alert("kill", false, trig))
	}
	var outcomes []string
	for _, r := range h.out {
		outcomes = append(outcomes, r.Outcome)
	}
	if want := "done done done rate-limited rate-limited"; strings.Join(outcomes, " ") != want {
		t.Errorf("outcomes %v, want %s", outcomes, want)
	}
	h.now = h.now.Add(time.Second) // the bucket refills
	h.r.Handle(alert("kill", false, trig))
	if h.out[len(h.out)-1].Outcome != "done" {
		t.Errorf("after a second: %s", h.out[len(h.out)-1].Outcome)
	}
	// Dry runs and refusals take no token.
	h = newHarness(Config{RateLimit: 1})
	h.r.Handle(alert("kill", true, trig))
	h.r.Handle(alert("kill", false, execOf(1, "/sbin/init")))
	h.r.Handle(alert("kill", false, trig))
	if h.out[2].Outcome != "done" {
		t.Errorf("after a dry run and a refusal: %s", h.out[2].Outcome)
	}
}
