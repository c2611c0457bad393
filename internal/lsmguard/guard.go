// Package lsmguard denies file opens, execs, connects and binds in the
// kernel with the BPF LSM (lsmguard.bpf.c): the syscall fails with EPERM
// before anything happens, with no round trip to user space.
//
// It works only where the BPF LSM is active (kernelcap.BPFLSM): "bpf" among
// the active LSMs (lsm= on the kernel command line, or CONFIG_LSM) and lsm
// programs allowed. Elsewhere New fails with an error that wraps
// ErrUnavailable, and the response engine uses its fallbacks: fanotify
// permission events for open and exec, cgroup socket hooks for connect and
// bind.
//
// Files are denied by device and inode, looked up when Deny* is called: the
// entry follows the file through renames, links and bind mounts, and stops
// applying when the path is replaced by a new file (call Deny* again).
package lsmguard

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/kernelcap"
)

// ErrUnavailable: the kernel does not run BPF LSM programs.
var ErrUnavailable = errors.New("BPF LSM unavailable")

// Op is a denied operation.
type Op uint32

const (
	Open    Op = Op(bpfDenyOpDENY_OPEN)
	Exec    Op = Op(bpfDenyOpDENY_EXEC)
	Connect Op = Op(bpfDenyOpDENY_CONNECT)
	Bind    Op = Op(bpfDenyOpDENY_BIND)
)

func (o Op) String() string {
	switch o {
	case Open:
		return "open"
	case Exec:
		return "exec"
	case Connect:
		return "connect"
	case Bind:
		return "bind"
	}
	return fmt.Sprintf("op(%d)", uint32(o))
}

// Config tunes the guard.
type Config struct {
	// LSMFile lists the active LSMs (default /sys/kernel/security/lsm).
	LSMFile string
	// ExemptPID is a process never denied (the agent itself); 0: none.
	ExemptPID int
}

// Hooks are the LSM hooks the guard attaches to.
var Hooks = []string{"lsm/file_open", "lsm/bprm_check_security", "lsm/socket_connect", "lsm/socket_bind"}

// Guard holds the loaded and attached LSM programs and their deny maps.
type Guard struct {
	objs  bpfObjects
	links []link.Link
	ring  *ringbuf.Reader

	mu     sync.Mutex
	closed bool
}

// New loads and attaches the LSM programs. Where the kernel does not run
// BPF LSM programs the error wraps ErrUnavailable and says why.
func New(cfg Config) (*Guard, error) {
	if cfg.LSMFile == "" {
		cfg.LSMFile = kernelcap.DefaultPaths.LSM
	}
	if err := kernelcap.ProbeLSM(cfg.LSMFile); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("lsmguard: %w", err)
	}
	if err := spec.Variables["exempt_tgid"].Set(uint32(cfg.ExemptPID)); err != nil {
		return nil, fmt.Errorf("lsmguard: %w", err)
	}
	g := &Guard{}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("%w: load: %v", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("lsmguard: load: %w", err)
	}
	for i, p := range []*ebpf.Program{g.objs.VigilLsmOpen, g.objs.VigilLsmExec, g.objs.VigilLsmConn, g.objs.VigilLsmBind} {
		l, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("lsmguard: attach %s: %w", Hooks[i], err)
		}
		g.links = append(g.links, l)
	}
	g.ring, err = ringbuf.NewReader(g.objs.VigilDenials)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("lsmguard: denial ring: %w", err)
	}
	return g, nil
}

// inodeKey is the kernel's identity of the file at path (symlinks followed).
func inodeKey(path string) (bpfDenyKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return bpfDenyKey{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return bpfDenyKey{Ino: st.Ino, Dev: unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)}, nil
}

// DenyOpen makes open(2) of the file at path fail with EPERM: for every
// process when cgroup is 0, else only for processes in that cgroup (v2 id).
// Execs of the file fail too: exec opens it.
func (g *Guard) DenyOpen(path string, cgroup uint64) error { return g.denyFile(path, Open, cgroup) }

// DenyExec makes execve(2) of the file at path fail with EPERM (as a
// program or as a script's interpreter), for every process or, with cgroup
// set, those in that cgroup. Reading it still works.
func (g *Guard) DenyExec(path string, cgroup uint64) error { return g.denyFile(path, Exec, cgroup) }

func (g *Guard) denyFile(path string, op Op, cgroup uint64) error {
	k, err := inodeKey(path)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var v bpfDenyVal
	if err := g.objs.VigilDenyIno.Lookup(&k, &v); err == nil && v.Cgroup == cgroup {
		v.Ops |= uint32(op)
	} else {
		v = bpfDenyVal{Ops: uint32(op), Cgroup: cgroup} // one scope per file: the latest
	}
	if err := g.objs.VigilDenyIno.Put(&k, &v); err != nil {
		return fmt.Errorf("deny %s %s: %w", op, path, err)
	}
	return nil
}

// Allow removes every deny of the file at path.
func (g *Guard) Allow(path string) error {
	k, err := inodeKey(path)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.objs.VigilDenyIno.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("allow %s: %w", path, err)
	}
	return nil
}

// DenyCgroup makes connect(2) (op Connect) or bind(2) (op Bind) on IPv4 and
// IPv6 sockets fail with EPERM for processes in cgroup (v2 id).
func (g *Guard) DenyCgroup(cgroup uint64, op Op) error {
	if op != Connect && op != Bind {
		return fmt.Errorf("deny %s by cgroup: only connect and bind", op)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var ops uint32
	_ = g.objs.VigilDenyCg.Lookup(&cgroup, &ops)
	ops |= uint32(op)
	if err := g.objs.VigilDenyCg.Put(&cgroup, &ops); err != nil {
		return fmt.Errorf("deny %s in cgroup %d: %w", op, cgroup, err)
	}
	return nil
}

// AllowCgroup removes the connect and bind denies of cgroup.
func (g *Guard) AllowCgroup(cgroup uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.objs.VigilDenyCg.Delete(&cgroup); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("allow cgroup %d: %w", cgroup, err)
	}
	return nil
}

// Counts is how many operations were denied, by kind.
func (g *Guard) Counts() (map[Op]uint64, error) {
	out := map[Op]uint64{}
	for i, op := range []Op{Open, Exec, Connect, Bind} {
		var per []uint64
		if err := g.objs.VigilDenyCnt.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("deny counters: %w", err)
		}
		for _, n := range per {
			out[op] += n
		}
	}
	return out, nil
}

// Denial is one operation the kernel refused.
type Denial struct {
	Op     Op
	Time   time.Duration // CLOCK_MONOTONIC
	PID    uint32        // thread
	TGID   uint32        // process
	UID    uint32
	Comm   string
	Cgroup uint64
	Dev    uint32 // kernel encoding; files only
	Ino    uint64 // files only
	Family uint16 // AF_INET or AF_INET6; connect and bind only
}

// ErrClosed is ReadDenial's error once the guard is closed.
var ErrClosed = errors.New("lsmguard closed")

// ReadDenial waits for the next denial. Denials the ring had no room for
// are counted (Counts) but not reported.
func (g *Guard) ReadDenial() (Denial, error) {
	rec, err := g.ring.Read()
	if err != nil {
		if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return Denial{}, ErrClosed
		}
		return Denial{}, err
	}
	return decodeDenial(rec.RawSample)
}

// SetDeadline bounds the wait of ReadDenial (os.ErrDeadlineExceeded).
func (g *Guard) SetDeadline(t time.Time) { g.ring.SetDeadline(t) }

// Close detaches the programs and frees the maps. It is idempotent.
func (g *Guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	var errs []error
	if g.ring != nil {
		errs = append(errs, g.ring.Close())
	}
	for _, l := range g.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, g.objs.Close())
	return errors.Join(errs...)
}

// ProgramIDs are the kernel's ids of the loaded programs, for tests that
// check Close unloads them.
func (g *Guard) ProgramIDs() []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, p := range []*ebpf.Program{g.objs.VigilLsmOpen, g.objs.VigilLsmExec, g.objs.VigilLsmConn, g.objs.VigilLsmBind} {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}
