package respond

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
)

// The Denier holds opens and execs of the files deny rules protect until
// the rules have decided, with fanotify permission events (FAN_OPEN_PERM,
// FAN_OPEN_EXEC_PERM): a denied call fails with EPERM before the file is
// opened or the program runs. Each permission event becomes an open (file)
// or exec event for the caller's process, the rules decide within a
// deadline, and past it the call is allowed or refused as configured.
//
// What the rules see: file.path (the kernel's path of the opened file) and
// the caller's process from the process cache; the open's flags are not
// known (file.write and file.open_flags read false and 0). For an exec,
// process.executable and process.name are those of the program to be run,
// the rest the caller's, since it has not run yet.

// Decision is what the rules said about a held call.
type Decision struct {
	RuleID string
	DryRun bool
	// Alert is the rule's alert, emitted along with the response.
	Alert *event.Event
}

// Decider runs the deny rules on a held call's event and returns the
// first that matched, if any. It is called from one goroutine at a time.
type Decider func(e *event.Event) (Decision, bool)

// DenyConfig tunes the Denier.
type DenyConfig struct {
	// Timeout bounds the rules' decision; past it, FailOpen decides.
	Timeout time.Duration
	// FailOpen allows a call the rules did not decide in time; otherwise it is refused.
	FailOpen bool
	// DryRun reports denials without refusing.
	DryRun bool
	// MaxDirs bounds the directories marked for the prefixes of all rules.
	MaxDirs int
}

// Denier answers fanotify permission events.
type Denier struct {
	cfg    DenyConfig
	f      *os.File
	decide atomic.Pointer[Decider]
	procs  func(pid uint32) (event.Process, bool)
	safe   func(p *event.Process) string
	emit   func(*event.Event)
	self   int32

	jobs chan denyJob
	done chan struct{}

	Held, Denied, TimedOut atomic.Uint64
	closeOnce              sync.Once
}

type denyJob struct {
	e   *event.Event
	out chan decision
}

type decision struct {
	d  Decision
	ok bool
}

// NewDenier opens a fanotify group for permission events. procs finds a
// process by pid (the process cache); safe is the responder's ProcessSafe,
// which exempts pid 1, Vigil and allowlisted programs.
func NewDenier(cfg DenyConfig, procs func(pid uint32) (event.Process, bool), safe func(p *event.Process) string, emit func(*event.Event)) (*Denier, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 250 * time.Millisecond
	}
	if cfg.MaxDirs <= 0 {
		cfg.MaxDirs = 10000
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify permission events unavailable: %w", err)
	}
	d := &Denier{cfg: cfg, f: os.NewFile(uintptr(fd), "fanotify"), procs: procs, safe: safe, emit: emit,
		self: int32(os.Getpid()), jobs: make(chan denyJob, 1), done: make(chan struct{})}
	none := Decider(func(*event.Event) (Decision, bool) { return Decision{}, false })
	d.decide.Store(&none)
	go d.worker()
	return d, nil
}

// SetDecider replaces the rules that decide (after a reload).
func (d *Denier) SetDecider(f Decider) { d.decide.Store(&f) }

// worker runs the rules, one event at a time.
func (d *Denier) worker() {
	for {
		select {
		case <-d.done:
			return
		case j := <-d.jobs:
			dec, ok := (*d.decide.Load())(j.e)
			j.out <- decision{dec, ok}
		}
	}
}

// SetMarks replaces what is held: opens of the files in open and execs of
// those in exec. An exact path that does not exist yet is covered through
// its directory. A prefix marks its directory and every directory below it
// now; directories made later are not covered until the next SetMarks. It
// returns what could not be marked.
func (d *Denier) SetMarks(open, exec []string, openTrees, execTrees []string) ([]string, error) {
	fd := int(d.f.Fd())
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_FLUSH, 0, unix.AT_FDCWD, ""); err != nil {
		return nil, fmt.Errorf("fanotify flush: %w", err)
	}
	masks := map[string]uint64{}
	var missing []string
	add := func(p string, m uint64) { masks[p] |= m }
	exact := func(paths []string, m uint64) {
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				add(p, m)
			} else if _, err := os.Stat(filepath.Dir(p)); err == nil {
				add(filepath.Dir(p), m|unix.FAN_EVENT_ON_CHILD)
			} else {
				missing = append(missing, p)
			}
		}
	}
	dirs := 0
	tree := func(roots []string, m uint64) {
		for _, root := range roots {
			root = filepath.Clean(root)
			if _, err := os.Stat(root); err != nil {
				missing = append(missing, root+"/")
				continue
			}
			filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
				if err != nil || !e.IsDir() {
					return nil
				}
				if dirs >= d.cfg.MaxDirs {
					missing = append(missing, p+"/ (more than deny_max_dirs directories)")
					return fs.SkipAll
				}
				dirs++
				add(p, m|unix.FAN_EVENT_ON_CHILD)
				return nil
			})
		}
	}
	exact(open, unix.FAN_OPEN_PERM)
	exact(exec, unix.FAN_OPEN_EXEC_PERM)
	tree(openTrees, unix.FAN_OPEN_PERM)
	tree(execTrees, unix.FAN_OPEN_EXEC_PERM)
	var errs []error
	for p, m := range masks {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, m, unix.AT_FDCWD, p); err != nil {
			errs = append(errs, fmt.Errorf("fanotify mark %s: %w", p, err))
		}
	}
	return missing, errors.Join(errs...)
}

// Run answers permission events until ctx is done or the Denier is closed.
func (d *Denier) Run(ctx context.Context) error {
	go func() { <-ctx.Done(); d.Close() }()
	buf := make([]byte, 64*fanMetaSize)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return fmt.Errorf("fanotify read: %w", err)
		}
		for b := buf[:n]; len(b) >= fanMetaSize; {
			var m unix.FanotifyEventMetadata
			if _, err := binary.Decode(b, binary.NativeEndian, &m); err != nil || m.Event_len < fanMetaSize || int(m.Event_len) > len(b) {
				break
			}
			b = b[m.Event_len:]
			if m.Fd < 0 {
				continue // queue overflow: no event to answer
			}
			d.answer(&m)
		}
	}
}

// answer decides one held call and replies to the kernel.
func (d *Denier) answer(m *unix.FanotifyEventMetadata) {
	defer unix.Close(int(m.Fd))
	d.Held.Add(1)
	allow := d.verdict(m)
	resp := unix.FanotifyResponse{Fd: m.Fd, Response: unix.FAN_ALLOW}
	if !allow {
		resp.Response = unix.FAN_DENY
		d.Denied.Add(1)
	}
	var out [8]byte
	binary.NativeEndian.PutUint32(out[:4], uint32(resp.Fd))
	binary.NativeEndian.PutUint32(out[4:], resp.Response)
	d.f.Write(out[:])
}

func (d *Denier) verdict(m *unix.FanotifyEventMetadata) bool {
	if m.Pid == d.self {
		return true // Vigil reading a protected file must not wait for itself
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(m.Fd)))
	if err != nil {
		return true
	}
	pid := uint32(m.Pid)
	p, ok := d.procs(pid)
	if !ok {
		p = event.Process{PID: pid}
	}
	e := &event.Event{Time: time.Now(), Process: p, Return: 0}
	action := "deny"
	if m.Mask&unix.FAN_OPEN_EXEC_PERM != 0 {
		e.Kind = event.KindExec
		e.Process.Executable, e.Process.Name = path, filepath.Base(path)
		if len(e.Process.Name) > 15 {
			e.Process.Name = e.Process.Name[:15]
		}
	} else {
		e.Kind = event.KindFile
		e.File = &event.File{Op: event.FileOpen, Path: path, PathResolved: true}
	}
	dec, matched, timedOut := d.decideWithin(e)
	res := event.Response{RuleID: dec.RuleID, Action: action, Mechanism: MechFanotify, Target: path}
	report := func(outcome, reason string) {
		res.Outcome, res.Reason = outcome, reason
		d.emit(event.NewResponse(res, e))
	}
	if timedOut {
		d.TimedOut.Add(1)
		if d.cfg.FailOpen {
			report(event.ResponseFailed, fmt.Sprintf("the rules did not decide within %s: allowed (response.fail_open)", d.cfg.Timeout))
			return true
		}
		report(event.ResponseDone, fmt.Sprintf("the rules did not decide within %s: refused (response.fail_open is false)", d.cfg.Timeout))
		return false
	}
	if !matched {
		return true
	}
	if dec.Alert != nil {
		d.emit(dec.Alert)
	}
	if why := d.safe(&p); why != "" && p.PID != 0 {
		report(event.ResponseRefused, why)
		return true
	}
	if d.cfg.DryRun || dec.DryRun {
		report(event.ResponseDryRun, "")
		return true
	}
	report(event.ResponseDone, "")
	return false
}

// decideWithin runs the rules on the worker, waiting at most the timeout.
// A worker still busy with an event that timed out counts as a timeout too.
func (d *Denier) decideWithin(e *event.Event) (Decision, bool, bool) {
	out := make(chan decision, 1)
	select {
	case d.jobs <- denyJob{e: e, out: out}:
	default:
		return Decision{}, false, true
	}
	t := time.NewTimer(d.cfg.Timeout)
	defer t.Stop()
	select {
	case r := <-out:
		return r.d, r.ok, false
	case <-t.C:
		return Decision{}, false, true
	}
}

// Close stops holding calls; the kernel allows those still pending.
func (d *Denier) Close() error {
	var err error
	d.closeOnce.Do(func() {
		err = d.f.Close()
		close(d.done)
	})
	return err
}

// fanMetaSize is sizeof(struct fanotify_event_metadata).
const fanMetaSize = 24
