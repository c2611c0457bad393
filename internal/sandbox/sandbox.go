// Package sandbox is the policy of sandbox profiles (the `sandboxes:`
// section): which profile a container takes, and whether a program, a
// write or a destination is allowed by it. It is pure: the daemon applies
// the profiles with the response mechanisms (respond.MountDenier for execs
// and writes, netguard.SandboxNet for connects) and reports violations
// with the alerts made here.
package sandbox

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
)

// Rule ids of the alerts; rule.ruleset is "sandbox:<profile>".
const (
	RuleExec    = "sandbox-exec"
	RuleWrite   = "sandbox-write"
	RuleConnect = "sandbox-connect"
)

// ImplicitWrite are written by nearly every program (a shell's 2>/dev/null)
// and are always writable.
var ImplicitWrite = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts/"}

// Profile is one compiled profile.
type Profile struct {
	// ID is the profile's number, from 1 in configuration order: the
	// kernel's name for it.
	ID      uint32
	Name    string
	Enforce bool
	// Line is where the profile is in the configuration file.
	Line int
	// HasExec, HasWrite, HasConnect: the part is checked.
	HasExec, HasWrite, HasConnect bool
	Dests                         []config.SandboxDest

	match config.SandboxMatch
	exec  pathSet
	write pathSet
}

// Policy is every profile, in configuration order.
type Policy struct {
	Profiles []*Profile
}

// New compiles the configuration's profiles (config.Load has checked them).
func New(cfg config.Sandboxes) *Policy {
	p := &Policy{}
	for i, s := range cfg {
		pr := &Profile{ID: uint32(i + 1), Name: s.Name, Enforce: s.Mode != "audit", Line: s.Line,
			HasExec: s.HasExec, HasWrite: s.HasWrite, HasConnect: s.HasConnect, Dests: s.Destinations,
			match: s.Match, exec: newPathSet(s.Exec), write: newPathSet(append(s.Write, ImplicitWrite...))}
		p.Profiles = append(p.Profiles, pr)
	}
	return p
}

// Match returns the first profile whose every given list has a glob
// matching the container, or nil.
func (p *Policy) Match(c *event.Container) *Profile {
	if p == nil || c == nil {
		return nil
	}
	for _, pr := range p.Profiles {
		if pr.Matches(c) {
			return pr
		}
	}
	return nil
}

// Matches reports whether the profile applies to c.
func (pr *Profile) Matches(c *event.Container) bool {
	m := pr.match
	return anyGlob(m.Names, c.Name) && anyGlob(m.Images, c.Image) && anyGlob(m.Cgroups, c.CgroupPath)
}

// anyGlob: no patterns, or one matches s (an empty s matches none).
func anyGlob(globs []string, s string) bool {
	if len(globs) == 0 {
		return true
	}
	if s == "" {
		return false
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// pathSet is files and directory trees (entries ending in /).
type pathSet struct {
	exact map[string]bool
	trees []string // with the trailing /
}

func newPathSet(list []string) pathSet {
	s := pathSet{exact: map[string]bool{}}
	for _, p := range list {
		if strings.HasSuffix(p, "/") {
			s.trees = append(s.trees, p)
		} else {
			s.exact[p] = true
		}
	}
	return s
}

func (s pathSet) holds(p string) bool {
	if s.exact[p] {
		return true
	}
	for _, t := range s.trees {
		if strings.HasPrefix(p, t) {
			return true
		}
	}
	return false
}

// ExecAllowed reports whether the container may run the program at path
// (the kernel's path of the file, in the container).
func (pr *Profile) ExecAllowed(p string) bool { return !pr.HasExec || pr.exec.holds(p) }

// WriteAllowed reports whether the container may open path for writing.
func (pr *Profile) WriteAllowed(p string) bool {
	// A file deleted while open reads "/x (deleted)".
	return !pr.HasWrite || pr.write.holds(strings.TrimSuffix(p, " (deleted)"))
}

// ConnectAllowed reports whether the container may connect or send to dst.
func (pr *Profile) ConnectAllowed(dst netip.AddrPort) bool {
	if !pr.HasConnect {
		return true
	}
	a, port := dst.Addr().Unmap(), dst.Port()
	for _, d := range pr.Dests {
		if port < d.PortLo || port > d.PortHi {
			continue
		}
		if d.Any() || d.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// Mode is "enforce" or "audit".
func (pr *Profile) Mode() string {
	if pr.Enforce {
		return "enforce"
	}
	return "audit"
}

// Ruleset is the alerts' rule.ruleset.
func (pr *Profile) Ruleset() string { return "sandbox:" + pr.Name }

// Alert makes the alert for a violation of rule (RuleExec, RuleWrite,
// RuleConnect) on trigger, with what was refused or seen in detail.
// response is what is done about it: deny, kill, or alert (audit).
func (pr *Profile) Alert(rule string, trigger *event.Event, response, detail string) *event.Event {
	names := map[string]string{
		RuleExec:    "Sandbox: program not in the container's allowlist",
		RuleWrite:   "Sandbox: write outside the container's writable paths",
		RuleConnect: "Sandbox: connection to a destination not in the container's allowlist",
	}
	who := "container"
	if c := trigger.Container; c != nil {
		who = c.Name
		if who == "" {
			who = shortID(c.ID)
		}
	}
	return event.NewAlert(event.Alert{
		RuleID:      rule,
		RuleName:    names[rule],
		Ruleset:     pr.Ruleset(),
		Description: fmt.Sprintf("The container's sandbox profile %q (%s) does not allow it.", pr.Name, pr.Mode()),
		Severity:    event.SeverityError,
		Tags:        []string{"container", "sandbox"},
		Message:     fmt.Sprintf("sandbox %s (%s): %s in %s", pr.Name, pr.Mode(), detail, who),
		Response:    response,
		Trigger:     trigger,
	}, trigger)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
