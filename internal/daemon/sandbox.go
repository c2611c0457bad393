package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/respond"
	"github.com/vigilsec/vigil/internal/sandbox"
)

// sandboxes applies the `sandboxes:` profiles to the containers they
// match: execs and opens for writing on the container's mounts are held by
// a respond.MountDenier and refused (enforce) or reported (audit) when the
// profile does not allow them; connects and sends are refused by
// netguard.SandboxNet hooks on the container's cgroup (enforce) and
// reported from the net sensor's events. A nil *sandboxes does nothing.
//
// A container is put in its sandbox when Vigil first sees it: at start-up
// for those running, then on the first event of a new one (its first exec).
// What it does before the marks and hooks are in place is checked after the
// fact: a program it ran that the profile does not allow is killed, and a
// connect is reported as not refused.
type sandboxes struct {
	policy   *sandbox.Policy
	log      *slog.Logger
	cgroups  string // the cgroup v2 hierarchy
	procRoot string
	dryRun   bool
	fan      *respond.MountDenier // nil: no profile checks exec or write
	net      *netguard.SandboxNet // nil: no enforced profile checks connect
	alert    func(*event.Event)
	emitResp func(*event.Event)
	procs    func(pid uint32) (event.Process, bool)
	safe     func(p *event.Process) string

	setup chan setupReq

	mu    sync.Mutex
	boxes map[string]*boxed // by the container's cgroup path
}

// boxed is a container Vigil has matched against the profiles.
type boxed struct {
	ctr  *event.Container // as last matched
	prof *sandbox.Profile // nil: no profile
	// inForce is when the marks began to be put in place; zero before.
	inForce time.Time
	pending bool // a set-up is queued
	failed  string
}

type setupReq struct {
	path  string
	pid   int
	tries int // set-ups put off because the runtime was not done
}

// A container is put in its sandbox once its runtime has switched to its
// root filesystem (the mounts are then the container's); until then the
// set-up is retried every setupRetry, at most setupTries times.
const (
	setupRetry = 10 * time.Millisecond
	setupTries = 500
)

func (a *Agent) newSandboxes() (*sandboxes, error) {
	if len(a.cfg.Sandboxes) == 0 {
		return nil, nil
	}
	if a.ctrs == nil {
		return nil, errors.New("sandboxes need container attribution (containers.enabled)")
	}
	s := &sandboxes{policy: sandbox.New(a.cfg.Sandboxes), log: a.log, cgroups: a.cfg.Paths.Cgroupfs, procRoot: a.cfg.Paths.Procfs,
		dryRun: a.cfg.Response.DryRun, alert: a.emitSandboxAlert, emitResp: a.emitResponse, procs: a.processByPID,
		safe: a.resp.r.ProcessSafe, setup: make(chan setupReq, 256), boxes: map[string]*boxed{}}
	where := func(pr *sandbox.Profile) string {
		return fmt.Sprintf("sandboxes: profile %q (line %d)", pr.Name, pr.Line)
	}
	for _, pr := range s.policy.Profiles {
		if (pr.HasExec || pr.HasWrite) && s.fan == nil {
			f, err := respond.NewMountDenier(s.procRoot, s.decide)
			if err != nil {
				s.close()
				return nil, fmt.Errorf("%s needs fanotify permission events: %w", where(pr), err)
			}
			s.fan = f
		}
		if pr.HasConnect && pr.Enforce && !s.dryRun {
			if s.net == nil {
				n, err := netguard.OpenSandboxNet()
				if err != nil {
					s.close()
					return nil, fmt.Errorf("%s needs cgroup socket hooks: %w", where(pr), err)
				}
				s.net = n
			}
			var allow []netguard.NetAllow
			for _, d := range pr.Dests {
				allow = append(allow, netguard.NetAllow{Prefix: d.Prefix, PortLo: d.PortLo, PortHi: d.PortHi})
			}
			if err := s.net.SetProfile(pr.ID, allow); err != nil {
				s.close()
				return nil, fmt.Errorf("%s: %w", where(pr), err)
			}
		}
	}
	return s, nil
}

// emitSandboxAlert queues an alert as emitAlert does, without handing it
// to the rules' responder: the sandbox reports its own responses.
func (a *Agent) emitSandboxAlert(al *event.Event) {
	a.alertsRaised.Add(1)
	a.ruleHit(al.Alert)
	select {
	case a.alerts <- al:
	default:
		a.alertsDropped.Add(1)
	}
}

// start runs the MountDenier and the set-up worker, and puts the containers
// already running in their sandboxes; stop ends them.
func (s *sandboxes) start(ctx context.Context, list func() []*event.Container) (stop func()) {
	if s == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if s.fan != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.fan.Run(ctx); err != nil {
				s.log.Error("sandbox fanotify stopped: execs and writes in sandboxes are no longer checked", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.worker(ctx, list)
	}()
	return func() { cancel(); wg.Wait() }
}

// observe matches the container of an event with the profiles, queues its
// set-up the first time, and checks what may have run before the sandbox
// was in force. It runs on the reader goroutine.
func (s *sandboxes) observe(e *event.Event) {
	if s == nil || e.Container == nil {
		return
	}
	b := s.match(e.Container, int(e.Process.PID))
	if b == nil || b.prof == nil {
		return
	}
	switch {
	case e.Kind == event.KindExec:
		s.lateExec(e, b)
	case e.Kind == event.KindNet && e.Net != nil && e.Net.Op == event.NetConnect && e.Net.Destination.IsValid():
		s.connect(e, b)
	}
}

// match finds or makes the container's entry; a new match queues its
// set-up with pid, a process of the container.
func (s *sandboxes) match(c *event.Container, pid int) *boxed {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[c.CgroupPath]
	// The runtime's state may name the container only after its first
	// event: match again while no profile did.
	if b != nil && (b.prof != nil || b.ctr == c) {
		return b
	}
	if b == nil {
		b = &boxed{}
		s.boxes[c.CgroupPath] = b
	}
	b.ctr, b.prof = c, s.policy.Match(c)
	if b.prof != nil && !b.pending {
		b.pending = true
		select {
		case s.setup <- setupReq{path: c.CgroupPath, pid: pid}:
		default:
			b.pending = false // retried by the worker's rescan
		}
	}
	return b
}

// worker puts matched containers in their sandboxes, rescans the running
// containers every few seconds and forgets those that are gone.
func (s *sandboxes) worker(ctx context.Context, list func() []*event.Container) {
	rescan := func() {
		for _, c := range list() {
			s.match(c, 0)
		}
		s.forgetGone()
	}
	rescan()
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.setup:
			s.put(r)
		case <-t.C:
			rescan()
		}
	}
}

// put applies a container's profile: marks its mounts and attaches its
// connect hooks.
func (s *sandboxes) put(r setupReq) {
	s.mu.Lock()
	b := s.boxes[r.path]
	s.mu.Unlock()
	if b == nil || b.prof == nil {
		return
	}
	pr := b.prof
	dir := filepath.Join(s.cgroups, r.path)
	var errs []error
	pids := append([]int{r.pid}, cgroupPIDs(dir)...)
	switched := s.rootSwitched(r.path, pids)
	if r.tries < setupTries && switched == 0 {
		r.tries++
		time.AfterFunc(setupRetry, func() {
			select {
			case s.setup <- r:
			default:
				s.mu.Lock()
				b.pending = false // the rescan queues it again
				s.mu.Unlock()
			}
		})
		return
	}
	// Execs from now on may be held: audit mode reports those before.
	markStart := time.Now()
	if s.fan != nil && (pr.HasExec || pr.HasWrite) {
		var err error = errors.New("no process left in the container")
		for _, pid := range append([]int{switched}, pids...) {
			if pid <= 0 {
				continue
			}
			// A process that is not in the container's cgroup any more
			// (or a pid reused) must not lend its mounts.
			if !inCgroup(s.procRoot, pid, r.path) {
				continue
			}
			_, err = s.fan.MarkNamespace(pid, pr.HasWrite, pr.HasExec)
			if err == nil || !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
		if err != nil {
			// Some mounts (shadowed ones) cannot be reached; the rest are marked.
			s.log.Warn("sandbox: not every mount of the container is held", "container", r.path, "profile", pr.Name, "err", err)
		}
	}
	if s.net != nil && pr.HasConnect && pr.Enforce {
		if err := s.net.Attach(pr.ID, dir); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	b.pending = false
	b.inForce = markStart
	if err := errors.Join(errs...); err != nil {
		b.failed = err.Error()
	}
	s.mu.Unlock()
	if len(errs) > 0 {
		s.log.Error("sandbox not fully in force", "container", r.path, "profile", pr.Name, "err", errors.Join(errs...))
		return
	}
	s.log.Info("sandbox in force", "container", b.ctr.ID, "name", b.ctr.Name, "cgroup", r.path, "profile", pr.Name, "mode", pr.Mode())
}

// rootSwitched finds a process of the container at path that runs in a
// root other than the host's: the runtime has set up the container's
// mounts and switched (pivot_root) to them. Before that, its mount
// namespace holds copies of the host's mounts, and marking them would miss
// the container's. It returns 0 when there is none.
func (s *sandboxes) rootSwitched(path string, pids []int) int {
	var host unix.Stat_t
	if unix.Stat(s.hostProc("root")+"/", &host) != nil {
		return 0
	}
	for _, pid := range pids {
		if pid <= 0 || !inCgroup(s.procRoot, pid, path) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join(s.procRoot, strconv.Itoa(pid), "root")+"/", &st) == nil && (st.Dev != host.Dev || st.Ino != host.Ino) {
			return pid
		}
	}
	return 0
}

// forgetGone drops containers whose cgroup is gone, and their hooks.
func (s *sandboxes) forgetGone() {
	s.mu.Lock()
	var gone []string
	for p := range s.boxes {
		if _, err := os.Stat(filepath.Join(s.cgroups, p)); errors.Is(err, os.ErrNotExist) {
			gone = append(gone, p)
			delete(s.boxes, p)
		}
	}
	s.mu.Unlock()
	if s.net != nil {
		for _, p := range gone {
			s.net.Detach(filepath.Join(s.cgroups, p))
		}
	}
}

// inForce reports whether the container at cgroup path is in its sandbox.
func (s *sandboxes) inForce(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[path]
	return b != nil && !b.inForce.IsZero()
}

// boxOf finds the sandboxed container a cgroup path is in (or below).
func (s *sandboxes) boxOf(path string) (*boxed, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := path; p != "/" && p != "." && p != ""; p = filepath.Dir(p) {
		if b := s.boxes[p]; b != nil && b.prof != nil {
			return b, p
		}
	}
	return nil, ""
}

// decide answers a held exec or open on a sandboxed container's mounts.
func (s *sandboxes) decide(r *respond.MountRequest) bool {
	cg, ok := v2Cgroup(s.procRoot, r.TID)
	if !ok {
		return true
	}
	b, _ := s.boxOf(cg)
	if b == nil {
		return true // the host, or a container without a profile
	}
	pr := b.prof
	rule, detail, reason := "", "", ""
	if r.Exec {
		if pr.ExecAllowed(r.Path) {
			return true
		}
		rule, detail = sandbox.RuleExec, "exec of "+r.Path+" refused"
	} else {
		if pr.WriteAllowed(r.Path) {
			return true
		}
		in := r.OpenIntent()
		if in.Known && !in.Write {
			return true
		}
		rule, detail = sandbox.RuleWrite, "open of "+r.Path+" for writing refused"
		switch {
		case !in.Known:
			reason = "the open's flags could not be read (" + in.Syscall + "): taken for a write"
		case in.Create:
			reason = "O_CREAT was asked: a file that did not exist is created, empty, before fanotify holds the open"
		}
	}
	trig := s.heldEvent(r, b)
	if !pr.Enforce {
		s.alert(pr.Alert(rule, trig, "alert", strings.Replace(detail, " refused", " seen", 1)))
		return true
	}
	s.alert(pr.Alert(rule, trig, "deny", detail))
	res := event.Response{RuleID: rule, Action: "deny", Mechanism: respond.MechFanotify, Target: r.Path,
		Outcome: event.ResponseDone, Reason: joinReason("sandbox "+pr.Name, reason)}
	allow := false
	if s.dryRun {
		res.Outcome, allow = event.ResponseDryRun, true
	}
	s.respond(res, trig)
	return allow
}

// respond emits a response event; it carries the trigger's container.
func (s *sandboxes) respond(res event.Response, trig *event.Event) {
	e := event.NewResponse(res, trig)
	e.Origin, e.Container = trig.Origin, trig.Container
	s.emitResp(e)
}

func joinReason(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// heldEvent describes a held exec or open as the event it would have been.
func (s *sandboxes) heldEvent(r *respond.MountRequest, b *boxed) *event.Event {
	pid := tgidOf(s.procRoot, r.TID)
	p, ok := s.procs(pid)
	if !ok {
		p = event.Process{PID: pid, TID: r.TID}
	}
	e := &event.Event{Time: time.Now(), Process: p, Origin: event.OriginContainer, Container: b.ctr}
	if r.Exec {
		e.Kind = event.KindExec
		e.Exec = &event.Exec{}
		e.Process.Executable, e.Process.Name = r.Path, filepath.Base(r.Path)
	} else {
		e.Kind = event.KindFile
		e.File = &event.File{Op: event.FileOpen, Path: r.Path, PathResolved: true, Write: true}
	}
	return e
}

// lateExec checks an exec that fanotify did not hold (the container's
// first programs, before its sandbox was in force; a memfd): one the
// profile does not allow is reported and, when enforced, killed now.
func (s *sandboxes) lateExec(e *event.Event, b *boxed) {
	pr := b.prof
	s.mu.Lock()
	inForce := b.inForce
	s.mu.Unlock()
	// Enforced, an exec fanotify refused never happened: every exec event
	// is one it allowed (the same allowlist) or did not hold (before the
	// marks, or from a file on no marked mount, a memfd), so all are
	// checked. Audited, those after the marks were alerted on already.
	if !pr.HasExec || pr.ExecAllowed(e.Process.Executable) || (!pr.Enforce && !inForce.IsZero() && e.Time.After(inForce)) {
		return
	}
	// The runtime's own process (runc init, executed in the container's
	// cgroup by newer runtimes) stays in the host's mount namespace while
	// it starts the container; the container's programs never are in it.
	// A process gone already cannot be told apart, nor killed.
	if s.inHostMountNS(e.Process.PID) {
		return
	}
	detail := "exec of " + e.Process.Executable + " not held"
	if !pr.Enforce {
		s.alert(pr.Alert(sandbox.RuleExec, e, "alert", detail))
		return
	}
	s.alert(pr.Alert(sandbox.RuleExec, e, "kill", detail))
	res := event.Response{RuleID: sandbox.RuleExec, Action: "kill", Mechanism: respond.MechPidfd,
		Target: fmt.Sprintf("pid %d (%s)", e.Process.PID, e.Process.Executable), Outcome: event.ResponseDone,
		Reason: "sandbox " + pr.Name + ": the exec was not held (before the sandbox was in force, or a file on no marked mount): killed after exec"}
	switch why := s.safe(&e.Process); {
	case why != "":
		res.Outcome, res.Reason = event.ResponseRefused, why
	case s.dryRun:
		res.Outcome = event.ResponseDryRun
	default:
		if err := respond.KillProcess(s.procRoot, e.Process.PID, e.Process.StartBoot); err != nil {
			res.Outcome, res.Reason = event.ResponseFailed, err.Error()
		}
	}
	s.respond(res, e)
}

// connect reports a connect the profile does not allow; the hook refused
// it if it was in force.
func (s *sandboxes) connect(e *event.Event, b *boxed) {
	pr := b.prof
	dst := e.Net.Destination
	if pr.ConnectAllowed(dst) {
		return
	}
	if !pr.Enforce {
		s.alert(pr.Alert(sandbox.RuleConnect, e, "alert", "connect to "+dst.String()))
		return
	}
	refused := e.Return == -1 // EPERM
	detail := "connect to " + dst.String() + " refused"
	if !refused {
		detail = "connect to " + dst.String() + " not refused"
	}
	s.alert(pr.Alert(sandbox.RuleConnect, e, "deny", detail))
	res := event.Response{RuleID: sandbox.RuleConnect, Action: "deny", Mechanism: respond.MechCgroup,
		Target: "connect " + dst.String(), Outcome: event.ResponseDone, Reason: "sandbox " + pr.Name}
	switch {
	case s.dryRun:
		res.Outcome = event.ResponseDryRun
	case !refused:
		res.Outcome = event.ResponseFailed
		res.Reason = fmt.Sprintf("sandbox %s: the connect returned %d: it ran before the sandbox's hooks were attached", pr.Name, e.Return)
	}
	s.respond(res, e)
}

func (s *sandboxes) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	if s.fan != nil {
		errs = append(errs, s.fan.Close())
	}
	if s.net != nil {
		errs = append(errs, s.net.Close())
	}
	return errors.Join(errs...)
}

// hostProc is a file of pid 1's procfs directory, the host's root and
// namespaces; where pid 1's are not readable (a restricted init), the
// agent's own.
func (s *sandboxes) hostProc(name string) string {
	p := filepath.Join(s.procRoot, "1", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return filepath.Join(s.procRoot, "self", name)
}

// inHostMountNS reports whether pid is in the host's mount namespace, or
// cannot be read.
func (s *sandboxes) inHostMountNS(pid uint32) bool {
	host, err1 := os.Readlink(s.hostProc("ns/mnt"))
	ns, err2 := os.Readlink(filepath.Join(s.procRoot, strconv.Itoa(int(pid)), "ns", "mnt"))
	return err1 != nil || err2 != nil || ns == host
}

// v2Cgroup reads a thread's cgroup v2 path from /proc/<tid>/cgroup.
func v2Cgroup(procRoot string, tid uint32) (string, bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(int(tid)), "cgroup"))
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, true
		}
	}
	return "", false
}

func inCgroup(procRoot string, pid int, path string) bool {
	cg, ok := v2Cgroup(procRoot, uint32(pid))
	return ok && (cg == path || strings.HasPrefix(cg, path+"/"))
}

// tgidOf is the process a thread belongs to.
func tgidOf(procRoot string, tid uint32) uint32 {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(int(tid)), "status"))
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					return uint32(n)
				}
			}
		}
	}
	return tid
}

// cgroupPIDs lists the processes of a cgroup v2 directory.
func cgroupPIDs(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
