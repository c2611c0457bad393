// Package ransom detects ransomware from what processes do to the files they
// write: pre-existing files rewritten with data that looks encrypted (high
// entropy, no known format), encrypted copies written next to originals that
// are then deleted, renames that change extensions, and any touch of a decoy.
//
// It keeps a sliding window per process and per container, so that a family
// that forks a worker per file is still caught by its container. It is pure:
// the caller feeds it observations (the ransomware sensor's records, with
// the process and container filled in) and the clock is theirs.
package ransom

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Rule ids of the alerts.
const (
	RuleRansomware = "ransomware"
	RuleDecoy      = "ransomware-decoy"
)

// Op is what an observation reports.
type Op uint8

const (
	OpWrite     Op = iota + 1 // a file written and closed
	OpUnlink                  // a file unlinked
	OpRename                  // a file renamed: Path -> NewPath
	OpDecoyOpen               // a decoy opened for writing
)

var opNames = [...]string{"", "write", "unlink", "rename", "decoy-open"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op%d", o)
}

// Obs is one observation.
type Obs struct {
	Time      time.Time
	Process   event.Process
	Container *event.Container // nil for host processes
	Op        Op
	Path      string
	NewPath   string // rename
	// For writes: the open created the file; the sample judged encrypted
	// (entropy at or above the threshold, no known format); the format
	// found; bytes the process wrote.
	Created     bool
	HighEntropy bool
	Entropy     float64
	Magic       string
	Bytes       uint64
	// Decoy: a decoy file was touched. Killed: the kernel already killed
	// the process for this operation.
	Decoy  bool
	Killed bool
}

// Config tunes the detector.
type Config struct {
	// Window is how far back observations count.
	Window time.Duration
	// MinFiles is how many files a process must have encrypted (rewritten,
	// or replaced by an encrypted copy) within Window to be detected;
	// ContainerMinFiles the same for all processes of a container together.
	MinFiles          int
	ContainerMinFiles int
	// AllowPrograms are executables never judged.
	AllowPrograms []string
	// MaxFilesListed bounds the files an alert lists.
	MaxFilesListed int
}

// Defaults.
const (
	DefaultWindow   = 10 * time.Minute
	DefaultMinFiles = 5
)

// Detector keeps the windows. It is safe for concurrent use.
type Detector struct {
	cfg   Config
	allow map[string]bool

	mu    sync.Mutex
	procs map[procKey]*actor
	ctrs  map[string]*actor
}

type procKey struct {
	pid   uint32
	start uint64
}

// actor is a process or a container, and what it did in the window.
type actor struct {
	ops     []Obs // in time order
	alerted bool
	last    time.Time
}

// New makes a Detector.
func New(cfg Config) *Detector {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MinFiles <= 0 {
		cfg.MinFiles = DefaultMinFiles
	}
	if cfg.ContainerMinFiles <= 0 {
		cfg.ContainerMinFiles = cfg.MinFiles
	}
	if cfg.MaxFilesListed <= 0 {
		cfg.MaxFilesListed = 50
	}
	d := &Detector{cfg: cfg, allow: map[string]bool{}, procs: map[procKey]*actor{}, ctrs: map[string]*actor{}}
	for _, p := range cfg.AllowPrograms {
		d.allow[p] = true
	}
	return d
}

// Finding is a detection: the alert event, and who to act on.
type Finding struct {
	Alert *event.Event
	// Processes are the processes whose operations counted (one for a
	// process's detection; every contributor for a container's).
	Processes []event.Process
	// Container is set when the container's window detected it, or the
	// process runs in one.
	Container *event.Container
	// Killed: the kernel already killed the process.
	Killed bool
}

// Observe takes an observation and returns the detections it completes.
func (d *Detector) Observe(o Obs) []Finding {
	if d.allow[o.Process.Executable] {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Finding
	pk := procKey{o.Process.PID, o.Process.StartBoot}
	p := d.procs[pk]
	if p == nil {
		p = &actor{}
		d.procs[pk] = p
	}
	p.add(o, d.cfg.Window)
	if f, ok := d.judge(p, o, d.cfg.MinFiles, false); ok {
		out = append(out, f)
	}
	if o.Container != nil && o.Container.ID != "" {
		c := d.ctrs[o.Container.ID]
		if c == nil {
			c = &actor{}
			d.ctrs[o.Container.ID] = c
		}
		c.add(o, d.cfg.Window)
		// A process's own detection covers its container unless others
		// in it took part.
		if f, ok := d.judge(c, o, d.cfg.ContainerMinFiles, true); ok && (len(out) == 0 || len(f.Processes) > 1) {
			out = append(out, f)
		}
	}
	return out
}

// Forget drops actors idle since before cutoff (exited processes, quiet
// containers). Call it now and then.
func (d *Detector) Forget(cutoff time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, a := range d.procs {
		if a.last.Before(cutoff) {
			delete(d.procs, k)
		}
	}
	for k, a := range d.ctrs {
		if a.last.Before(cutoff) {
			delete(d.ctrs, k)
		}
	}
}

// Len is the number of actors held, for tests and status.
func (d *Detector) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.procs) + len(d.ctrs)
}

// maxOps bounds an actor's window: past it the oldest operations go first.
const maxOps = 4096

func (a *actor) add(o Obs, window time.Duration) {
	a.last = o.Time
	a.ops = append(a.ops, o)
	cut := o.Time.Add(-window)
	i := max(0, len(a.ops)-maxOps)
	for i < len(a.ops) && a.ops[i].Time.Before(cut) {
		i++
	}
	if i > 0 {
		a.ops = slices.Delete(a.ops, 0, i)
		if len(a.ops) == 1 {
			a.alerted = false // a new episode
		}
	}
}

// Tally is what an actor did in its window.
type Tally struct {
	Written, Encrypted, Rewritten int // distinct files
	Unlinked, Renamed, ExtChanged int
	Replaced                      int // encrypted copies whose original was removed
	Bytes                         uint64
	Score                         int
}

// tally scores the window: files rewritten in place with encrypted data,
// plus the smaller of encrypted files created and pre-existing files removed
// (unlinked, or renamed to another extension). Files the actor created in
// the window are not pre-existing: renaming or deleting them is a temporary
// file's life (rsync, dpkg, compilers), not destruction.
func tally(ops []Obs) (t Tally, touched []string) {
	created := map[string]bool{}
	written, enc, rewritten, removed := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	encCreated := map[string]bool{}
	seen := map[string]bool{}
	touch := func(p string) {
		if !seen[p] {
			seen[p] = true
			touched = append(touched, p)
		}
	}
	for _, o := range ops {
		switch o.Op {
		case OpWrite:
			written[o.Path] = true
			t.Bytes += o.Bytes
			if o.Created {
				created[o.Path] = true
				// unlink X, create X: replaced (tar x over a tree), not lost
				delete(removed, o.Path)
			}
			if o.HighEntropy {
				enc[o.Path] = true
				touch(o.Path)
				if o.Created || created[o.Path] {
					encCreated[o.Path] = true
				} else {
					rewritten[o.Path] = true
				}
			}
		case OpUnlink:
			t.Unlinked++
			if !created[o.Path] {
				removed[o.Path] = true
				touch(o.Path)
			}
		case OpRename:
			t.Renamed++
			if ext(o.Path) != ext(o.NewPath) {
				t.ExtChanged++
			}
			wasCreated := created[o.Path]
			if !wasCreated && ext(o.Path) != ext(o.NewPath) && !rewritten[o.Path] {
				removed[o.Path] = true
				touch(o.Path)
			}
			if wasCreated || rewritten[o.Path] {
				// follow the file to its new name
				created[o.NewPath] = wasCreated
				if rewritten[o.Path] {
					rewritten[o.NewPath] = true
				}
			}
			if enc[o.Path] {
				enc[o.NewPath] = true
			}
			touch(o.NewPath)
		}
	}
	t.Written, t.Encrypted, t.Rewritten = len(written), len(enc), len(rewritten)
	t.Replaced = min(len(encCreated), len(removed))
	// A rename after an in-place rewrite is the same file: count it once.
	t.Rewritten = countOriginals(rewritten, ops)
	t.Score = t.Rewritten + t.Replaced
	return t, touched
}

// countOriginals counts rewritten files once each, whatever they were
// renamed to after.
func countOriginals(rewritten map[string]bool, ops []Obs) int {
	n := len(rewritten)
	for _, o := range ops {
		if o.Op == OpRename && rewritten[o.Path] && rewritten[o.NewPath] {
			n--
		}
	}
	return n
}

func ext(p string) string { return strings.ToLower(path.Ext(p)) }

// judge alerts once per episode when the actor crosses min, or at once on a
// decoy or a kernel kill.
func (d *Detector) judge(a *actor, o Obs, min int, isCtr bool) (Finding, bool) {
	if a.alerted {
		return Finding{}, false
	}
	t, touched := tally(a.ops)
	decoy := o.Decoy && !isCtr
	killed := o.Killed && !isCtr
	if !decoy && !killed && t.Score < min {
		return Finding{}, false
	}
	a.alerted = true
	procs := contributors(a.ops)
	rule, name, sev := RuleRansomware, "Ransomware: files encrypted", event.SeverityCritical
	var msg string
	who := fmt.Sprintf("process %s (pid %d)", o.Process.Executable, o.Process.PID)
	if isCtr {
		who = fmt.Sprintf("container %s (%d processes)", ctrName(o.Container), len(procs))
	}
	switch {
	case decoy:
		rule, name = RuleDecoy, "Ransomware: decoy file touched"
		msg = fmt.Sprintf("%s %s decoy file %s", who, verb(o.Op), o.Path)
	default:
		msg = fmt.Sprintf("%s encrypted %d files in %s: %d rewritten in place, %d replaced by encrypted copies; %d files written (%d bytes), %d renamed (%d to another extension), %d deleted",
			who, t.Score, d.cfg.Window, t.Rewritten, t.Replaced, t.Written, t.Bytes, t.Renamed, t.ExtChanged, t.Unlinked)
		if killed {
			msg += "; the kernel killed it at its threshold"
		}
	}
	list := touched
	if len(list) > d.cfg.MaxFilesListed {
		list = list[:d.cfg.MaxFilesListed]
	}
	if len(list) > 0 {
		msg += ". Files: " + strings.Join(list, ", ")
		if len(touched) > len(list) {
			msg += fmt.Sprintf(" and %d more", len(touched)-len(list))
		}
	}
	trigger := &event.Event{Time: o.Time, Kind: event.KindFile, Process: o.Process, Container: o.Container,
		File: &event.File{Op: fileOp(o.Op), Path: o.Path, TargetPath: o.NewPath, PathResolved: o.Op == OpWrite || o.Op == OpDecoyOpen, Write: true}}
	if o.Container != nil {
		trigger.Origin = event.OriginContainer
	}
	al := event.NewAlert(event.Alert{RuleID: rule, RuleName: name, Severity: sev, Message: msg,
		Description: "A process or container destroyed files the way ransomware does (docs/files.md).",
		Tags:        []string{"ransomware", "file"}, MITRE: []string{"T1486"}, Response: "alert"}, trigger)
	f := Finding{Alert: al, Processes: procs, Container: o.Container, Killed: killed}
	return f, true
}

func verb(op Op) string {
	switch op {
	case OpUnlink:
		return "deleted"
	case OpRename:
		return "renamed"
	}
	return "opened for writing"
}

func fileOp(op Op) event.FileOp {
	switch op {
	case OpUnlink:
		return event.FileUnlink
	case OpRename:
		return event.FileRename
	}
	return event.FileOpen
}

func ctrName(c *event.Container) string {
	if c == nil {
		return ""
	}
	if c.Name != "" {
		return c.Name
	}
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

// contributors are the distinct processes of the window, in order of first sight.
func contributors(ops []Obs) []event.Process {
	seen := map[procKey]bool{}
	var out []event.Process
	for _, o := range ops {
		k := procKey{o.Process.PID, o.Process.StartBoot}
		if !seen[k] {
			seen[k] = true
			out = append(out, o.Process)
		}
	}
	return out
}
