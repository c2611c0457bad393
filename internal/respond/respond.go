// Package respond carries out what rules ask for beyond an alert: kill,
// deny, block-ip, isolate-host and freeze, safely.
//
// Every action, every dry run, every refusal by a safety check and every
// failure is itself an event (event.KindResponse) naming the rule that asked.
// The checks come before anything is done: never pid 1, kernel threads,
// Vigil itself or an allowlisted program; never loopback or an address the
// agent must reach; never the root cgroup or Vigil's own. Dry-run, global or
// per rule, reports what would have been done. A rate limit bounds how many
// actions run per second, so that a bad rule cannot take a host down at
// machine speed.
//
// Some responses are carried out in the kernel before user space hears of
// them: kill at exec (the process sensor), connect and bind deny (netguard),
// and open and exec deny (the fanotify Denier in this package, which asks
// the rules synchronously). For those, Handle reports what the kernel did.
package respond

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Config is the response policy.
type Config struct {
	// DryRun reports every response without carrying it out.
	DryRun bool
	// AllowPrograms are executables (absolute paths) never killed or frozen.
	AllowPrograms []string
	// RateLimit is the most actions per second, with a burst of as many; 0: no limit.
	RateLimit int
	// BlockFor is how long a rule's block-ip lasts.
	BlockFor time.Duration
	// NeverBlock are prefixes never blocked (management networks, the sinks'
	// destinations); loopback and unspecified addresses never are either.
	NeverBlock []netip.Prefix
	// IsolateAllow is what isolate-host leaves reachable (loopback always is).
	IsolateAllow []netip.Prefix
	// CgroupRoot is the cgroup v2 hierarchy, for freeze.
	CgroupRoot string
	// ProcRoot is procfs, for the kill's identity check.
	ProcRoot string
}

// Blocker is the network enforcement the responder drives (netguard.Guard).
type Blocker interface {
	Block(p netip.Prefix, until time.Time, why string) error
	Isolate(allow []netip.Prefix) error
}

// Responder carries out rules' responses.
type Responder struct {
	cfg     Config
	emit    func(*event.Event)
	blocker Blocker // nil: block-ip and isolate-host fail with a reason
	self    uint32
	now     func() time.Time
	allow   map[string]bool

	mu     sync.Mutex
	tokens float64
	last   time.Time

	kill   func(pid uint32, startBoot uint64) error
	freeze func(cgroupID uint64) (string, error)
}

// New makes a responder that reports through emit. blocker may be nil when
// network enforcement is not available.
func New(cfg Config, blocker Blocker, emit func(*event.Event)) *Responder {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	r := &Responder{cfg: cfg, emit: emit, blocker: blocker, self: uint32(os.Getpid()), now: time.Now,
		allow: map[string]bool{}, tokens: float64(cfg.RateLimit)}
	for _, p := range cfg.AllowPrograms {
		r.allow[p] = true
	}
	r.kill = func(pid uint32, startBoot uint64) error { return KillProcess(cfg.ProcRoot, pid, startBoot) }
	r.freeze = func(id uint64) (string, error) { return FreezeCgroup(cfg.CgroupRoot, id) }
	return r
}

// Mechanisms, as response events name them.
const (
	MechExecKill = "bpf_send_signal at exec"
	MechPidfd    = "pidfd_send_signal"
	MechFanotify = "fanotify"
	MechCgroup   = "cgroup socket hook"
	MechBlock    = "xdp+tcx"
	MechTCX      = "tcx"
	MechFreeze   = "cgroup.freeze"
)

// Handle carries out the response an alert's rule asked for, and reports
// it. Alerts whose response is alert are ignored.
func (r *Responder) Handle(alert *event.Event) {
	a := alert.Alert
	if a == nil || a.Response == "" || a.Response == "alert" || a.Trigger == nil {
		return
	}
	t := a.Trigger
	dry := r.cfg.DryRun || a.DryRun
	res := event.Response{RuleID: a.RuleID, Action: a.Response}
	report := func(mech, target, outcome, reason string) {
		res.Mechanism, res.Target, res.Outcome, res.Reason = mech, target, outcome, reason
		r.emit(event.NewResponse(res, t))
	}
	switch a.Response {
	case "kill":
		r.handleKill(t, dry, report)
	case "deny":
		r.handleDeny(t, dry, report)
	case "block-ip":
		r.handleBlock(t, dry, report)
	case "isolate-host":
		r.handleIsolate(dry, report)
	case "freeze":
		r.handleFreeze(t, dry, report)
	default:
		report("", "", event.ResponseFailed, fmt.Sprintf("unknown response %q", a.Response))
	}
}

type reportFunc func(mech, target, outcome, reason string)

// ProcessSafe says why a process must not be acted on, or "".
func (r *Responder) ProcessSafe(p *event.Process) string {
	switch {
	case p.PID == 0:
		return "no process"
	case p.PID == 1:
		return "pid 1 is never acted on"
	case p.PID == r.self:
		return "Vigil never acts on itself"
	case p.PID == 2 || p.PPID == 2:
		return "kernel threads are never acted on"
	case r.allow[p.Executable]:
		return fmt.Sprintf("%s is an allowed program (response.allow_programs)", p.Executable)
	}
	return ""
}

func pidTarget(p *event.Process) string { return fmt.Sprintf("pid %d (%s)", p.PID, p.Executable) }

func (r *Responder) handleKill(t *event.Event, dry bool, report reportFunc) {
	p := &t.Process
	target := pidTarget(p)
	if t.Kind == event.KindExec && t.Exec != nil && t.Exec.Killed {
		report(MechExecKill, target, event.ResponseDone, "killed in the kernel at exec, before its first instruction")
		return
	}
	if why := r.ProcessSafe(p); why != "" {
		report(MechPidfd, target, event.ResponseRefused, why)
		return
	}
	if dry {
		report(MechPidfd, target, event.ResponseDryRun, "")
		return
	}
	if !r.allowAction() {
		report(MechPidfd, target, event.ResponseRateLimited, r.rateReason())
		return
	}
	reason := ""
	if t.Kind == event.KindExec {
		// The kernel kills at exec what it was told; a program it was not
		// told about in time (a file replaced since the rules loaded) is
		// killed now, after it started.
		reason = "killed after exec: the kernel's kill set did not hold the file, so the program may have run"
	}
	if err := r.kill(p.PID, p.StartBoot); err != nil {
		report(MechPidfd, target, event.ResponseFailed, err.Error())
		return
	}
	report(MechPidfd, target, event.ResponseDone, reason)
}

func (r *Responder) handleDeny(t *event.Event, dry bool, report reportFunc) {
	// Opens and execs are denied by the fanotify Denier, which reports
	// itself; what reaches here is the sensor's record of the refused call.
	if t.Kind != event.KindNet || t.Net == nil {
		return
	}
	if t.Net.Op == event.NetPayload {
		// netguard's tcx program drops the packets of a deny payload rule.
		arrow := "->"
		if t.Net.Dir == "ingress" {
			arrow = "<-"
		}
		target := fmt.Sprintf("packet %s %s %s", t.Net.Source, arrow, t.Net.Destination)
		switch {
		case t.Return == -1:
			report(MechTCX, target, event.ResponseDone, "the packet was dropped")
		case dry:
			report(MechTCX, target, event.ResponseDryRun, "")
		default:
			report(MechTCX, target, event.ResponseFailed, "the packet was not dropped: the rule loaded after the packet, or is in dry run in the kernel")
		}
		return
	}
	target := t.Net.Destination.String()
	if t.Net.Op == event.NetBind {
		target = t.Net.Source.String()
	}
	target = string(t.Net.Op) + " " + target
	switch {
	case t.Return == -1: // EPERM: the hook refused it
		report(MechCgroup, target, event.ResponseDone, "")
	case dry:
		report(MechCgroup, target, event.ResponseDryRun, "")
	default:
		report(MechCgroup, target, event.ResponseFailed,
			fmt.Sprintf("the %s was not refused (returned %d): it ran in a cgroup outside the hook's, or before the rule loaded", t.Net.Op, t.Return))
	}
}

// AddrSafe says why an address must not be blocked, or "".
func (r *Responder) AddrSafe(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "no address"
	case a.IsLoopback(), a.IsUnspecified():
		return fmt.Sprintf("%s is never blocked", a)
	}
	for _, p := range slices.Concat(r.cfg.NeverBlock, r.cfg.IsolateAllow) {
		if p.Contains(a) {
			return fmt.Sprintf("%s is in %s, which is never blocked (response.never_block, response.isolate_allow)", a, p)
		}
	}
	return ""
}

func (r *Responder) handleBlock(t *event.Event, dry bool, report reportFunc) {
	if t.Net == nil {
		report(MechBlock, "", event.ResponseFailed, "the event has no remote address")
		return
	}
	a := t.Net.Destination.Addr().Unmap()
	p := netip.PrefixFrom(a, a.BitLen())
	target := fmt.Sprintf("%s for %s", p, r.cfg.BlockFor)
	if why := r.AddrSafe(a); why != "" {
		report(MechBlock, target, event.ResponseRefused, why)
		return
	}
	if dry {
		report(MechBlock, target, event.ResponseDryRun, "")
		return
	}
	if r.blocker == nil {
		report(MechBlock, target, event.ResponseFailed, "network enforcement is not running (see the agent's log)")
		return
	}
	if !r.allowAction() {
		report(MechBlock, target, event.ResponseRateLimited, r.rateReason())
		return
	}
	var until time.Time
	if r.cfg.BlockFor > 0 {
		until = r.now().Add(r.cfg.BlockFor)
	}
	if err := r.blocker.Block(p, until, "rule"); err != nil {
		report(MechBlock, target, event.ResponseFailed, err.Error())
		return
	}
	report(MechBlock, target, event.ResponseDone, "")
}

func (r *Responder) handleIsolate(dry bool, report reportFunc) {
	target := fmt.Sprintf("host (allowed: loopback %v)", r.cfg.IsolateAllow)
	if dry {
		report(MechBlock, target, event.ResponseDryRun, "")
		return
	}
	if r.blocker == nil {
		report(MechBlock, target, event.ResponseFailed, "network enforcement is not running (see the agent's log)")
		return
	}
	if !r.allowAction() {
		report(MechBlock, target, event.ResponseRateLimited, r.rateReason())
		return
	}
	if err := r.blocker.Isolate(r.cfg.IsolateAllow); err != nil {
		report(MechBlock, target, event.ResponseFailed, err.Error())
		return
	}
	report(MechBlock, target, event.ResponseDone, "lift with: vigil isolate off")
}

func (r *Responder) handleFreeze(t *event.Event, dry bool, report reportFunc) {
	p := &t.Process
	target := fmt.Sprintf("cgroup %d", p.CgroupID)
	if why := r.ProcessSafe(p); why != "" {
		report(MechFreeze, target, event.ResponseRefused, why)
		return
	}
	if why := r.cgroupSafe(p.CgroupID); why != "" {
		report(MechFreeze, target, event.ResponseRefused, why)
		return
	}
	if dry {
		report(MechFreeze, target, event.ResponseDryRun, "")
		return
	}
	if !r.allowAction() {
		report(MechFreeze, target, event.ResponseRateLimited, r.rateReason())
		return
	}
	path, err := r.freeze(p.CgroupID)
	if path != "" {
		target = path
	}
	if err != nil {
		report(MechFreeze, target, event.ResponseFailed, err.Error())
		return
	}
	report(MechFreeze, target, event.ResponseDone, "thaw with: echo 0 > "+path+"/cgroup.freeze")
}

// allowAction takes a token from the rate limit's bucket.
func (r *Responder) allowAction() bool {
	if r.cfg.RateLimit <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !r.last.IsZero() {
		r.tokens += now.Sub(r.last).Seconds() * float64(r.cfg.RateLimit)
	}
	r.tokens = min(r.tokens, float64(r.cfg.RateLimit))
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

func (r *Responder) rateReason() string {
	return fmt.Sprintf("more than %d actions per second (response.rate_limit)", r.cfg.RateLimit)
}
