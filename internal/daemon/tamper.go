package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// Tampering: what is done to the agent itself. The agent knows its own pid
// and files, which rules do not, so these detections are made here and
// raised as alerts like any rule's (docs/hardening.md):
//
//	agent-signalled         a signal aimed at the agent (kill, tgkill, pidfd_send_signal)
//	agent-ptraced           ptrace attach/seize or memory/register writes on the agent
//	agent-files-modified    a change to its configuration, rules or store by another process
//	agent-bpf-modified      bpf() commands that change or detach BPF objects, by
//	                        another process that is not a known BPF program (see below)
//	agent-pidfd-opened      pidfd_open of the agent by a process other than its parent:
//	                        the first step of taking its descriptors with pidfd_getfd
//
// The kernel never reports the agent's own actions (vigil_tgid), so whatever
// arrives here was done by someone else.

// tamperWrites are bpf() commands that change a map, detach or replace a
// program: what it takes to blind the agent through bpf() without killing it.
var tamperBPF = []string{"BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM", "BPF_MAP_UPDATE_BATCH",
	"BPF_MAP_DELETE_BATCH", "BPF_MAP_FREEZE", "BPF_PROG_DETACH", "BPF_LINK_DETACH", "BPF_LINK_UPDATE"}

// tamperPtrace are ptrace requests that take control of or write to a process.
var tamperPtrace = []string{"PTRACE_ATTACH", "PTRACE_SEIZE", "PTRACE_POKETEXT", "PTRACE_POKEDATA",
	"PTRACE_POKEUSER", "PTRACE_SETREGS", "PTRACE_SETFPREGS", "PTRACE_SETREGSET"}

// bpfOwners run BPF programs of their own and update their maps all the
// time; their bpf() calls are not taken for tampering.
var bpfOwners = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/usr/bin/runc", "/usr/sbin/runc",
	"/usr/bin/crun", "/usr/bin/systemd-nspawn"}

// ProtectFiles adds files (the configuration file) to those whose changes
// raise agent-files-modified. The rule directories and the store are
// protected already. Call it before Run.
func (a *Agent) ProtectFiles(paths ...string) {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			a.protected = append(a.protected, abs)
		}
	}
	a.watchProtected()
}

// protectDefaults protects the rule directories and the store.
func (a *Agent) protectDefaults() {
	for _, d := range a.cfg.Rules.Dirs {
		if abs, err := filepath.Abs(d); err == nil {
			a.protected = append(a.protected, abs)
		}
	}
	if a.cfg.Store.Path != "" {
		if abs, err := filepath.Abs(a.cfg.Store.Path); err == nil {
			a.protected = append(a.protected, abs)
		}
	}
	a.watchProtected()
}

// watchProtected asks the file sensor for writes below the protected paths.
func (a *Agent) watchProtected() {
	if a.fileSensor == nil {
		return
	}
	var existing []string
	for _, p := range a.protected {
		if _, err := os.Stat(p); err == nil {
			existing = append(existing, p)
		}
	}
	if _, err := a.fileSensor.Watch(existing, sensor.WatchWrite); err != nil {
		a.log.Warn("protected files not watched", "err", err)
	}
}

func (a *Agent) isProtected(path string) bool {
	for _, p := range a.protected {
		if path == p || strings.HasPrefix(path, p+"/") || strings.HasPrefix(path, p+"-") { // vigil.db-wal
			return true
		}
	}
	return false
}

// firstBPFChange says whether e is the first bpf() command of its kind by
// its process: a program that manages BPF objects of its own changes its
// maps thousands of times, and one alert per process and command says what
// there is to say. (The sensor does not tell whose map was changed.)
func (a *Agent) firstBPFChange(e *event.Event) bool {
	key := e.Process.EntityID + "/" + e.Kernel.ArgName
	if a.bpfSeen == nil || len(a.bpfSeen) >= 4096 {
		a.bpfSeen = map[string]bool{}
	}
	if a.bpfSeen[key] {
		a.bpfRepeats.Add(1)
		return false
	}
	a.bpfSeen[key] = true
	return true
}

// checkTamper raises an alert when e is aimed at the agent.
func (a *Agent) checkTamper(e *event.Event) {
	var al event.Alert
	switch {
	case e.Kind == event.KindKernel && e.Kernel.Op == event.KernelSignalAgent:
		al = event.Alert{RuleID: "agent-signalled", RuleName: "Signal sent to the Vigil agent", Severity: event.SeverityCritical,
			MITRE: []string{"T1562.001"}, Message: e.Process.Executable + " sent " + e.Kernel.ArgName + " to the agent"}
		switch e.Kernel.ArgName {
		case "SIGHUP", "SIG0":
			al.Severity = event.SeverityNotice // reload; or a probe whether it runs
		case "SIGCONT", "SIGWINCH", "SIGURG", "SIGCHLD":
			al.Severity = event.SeverityWarning // no effect, but aimed at the agent
		}
		if e.Return < 0 {
			al.Severity = event.SeverityWarning
		}
	case e.Kind == event.KindKernel && e.Kernel.Op == event.KernelPtrace && e.Kernel.TargetPID == uint32(os.Getpid()) &&
		slices.Contains(tamperPtrace, e.Kernel.ArgName):
		al = event.Alert{RuleID: "agent-ptraced", RuleName: "Process took control of the Vigil agent with ptrace",
			Severity: event.SeverityCritical, MITRE: []string{"T1562.001", "T1055.008"},
			Message: e.Process.Executable + " " + e.Kernel.ArgName + " on the agent"}
	case e.Kind == event.KindKernel && e.Kernel.Op == event.KernelBPF && e.Return >= 0 &&
		slices.Contains(tamperBPF, e.Kernel.ArgName) && !slices.Contains(bpfOwners, e.Process.Executable) &&
		a.firstBPFChange(e):
		al = event.Alert{RuleID: "agent-bpf-modified", RuleName: "BPF maps or links changed by another program",
			Severity: event.SeverityWarning, MITRE: []string{"T1562.001"},
			Message: e.Process.Executable + " did " + e.Kernel.ArgName + ": it may be changing the agent's maps or detaching its programs"}
	case e.Kind == event.KindFile && (e.File.Op != event.FileOpen || e.File.Write) &&
		(a.isProtected(e.File.Path) || (e.File.TargetPath != "" && a.isProtected(e.File.TargetPath))):
		al = event.Alert{RuleID: "agent-files-modified", RuleName: "Vigil's configuration, rules or store changed",
			Severity: event.SeverityWarning, MITRE: []string{"T1562.001"},
			Message: e.Process.Executable + " " + string(e.File.Op) + " " + e.File.Path}
	case e.Kind == event.KindKernel && e.Kernel.Op == event.KernelPidfdAgent && e.Process.PID != uint32(os.Getppid()):
		// The parent (systemd, which tracks its services by pidfd, or a
		// shell) may hold one; anyone else has little reason to.
		al = event.Alert{RuleID: "agent-pidfd-opened", RuleName: "Process opened a pidfd for the Vigil agent",
			Severity: event.SeverityWarning, MITRE: []string{"T1562.001"},
			Message: e.Process.Executable + " opened a pidfd for the agent: with ptrace rights, pidfd_getfd takes its descriptors"}
		if e.Return < 0 {
			al.Severity = event.SeverityNotice
		}
	default:
		return
	}
	al.Tags = []string{"tampering", "defense-evasion"}
	al.Response = "alert"
	a.emitAlert(event.NewAlert(al, e))
}
