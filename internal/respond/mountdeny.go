package respond

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The MountDenier holds every open and exec on whole mounts — those of a
// container's mount namespace — until a decider has said yes or no, with
// fanotify permission events on mount marks (FAN_MARK_MOUNT). A mount of a
// container is its own mount object even when it shows a host directory,
// so the host's opens of the same files, through the host's mounts, are
// never held. Sandboxes use it: execs outside the allowlist and opens for
// writing outside the writable paths fail with EPERM before the program
// runs or the file is opened.
//
// Events report the thread (FAN_REPORT_TID), so that the decider can read
// what the held open asked for from /proc/<tid>/syscall: fanotify does not
// say whether an open is for writing, but the thread is blocked in the
// syscall while fanotify holds it, and its arguments are readable.

// MountRequest is one held open or exec.
type MountRequest struct {
	// TID is the thread that opens.
	TID uint32
	// Path is the file as the opener's mount namespace names it.
	Path string
	// Exec: the file is opened to be executed (FAN_OPEN_EXEC_PERM).
	Exec bool
	// ProcRoot is procfs, for OpenIntent.
	ProcRoot string
}

// MountDecider answers a held request: true allows it. It runs on the
// MountDenier's goroutine, one request at a time, and must not open files
// on marked mounts.
type MountDecider func(r *MountRequest) bool

// MountDenier answers permission events for marked mounts.
type MountDenier struct {
	f        *os.File
	decide   MountDecider
	procRoot string
	self     string // /proc/self/task, to recognise Vigil's own threads

	Held, Denied atomic.Uint64
	closed       atomic.Bool
}

// NewMountDenier opens a fanotify group for permission events reported by
// thread.
func NewMountDenier(procRoot string, decide MountDecider) (*MountDenier, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_TID, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify permission events unavailable: %w", err)
	}
	return &MountDenier{f: os.NewFile(uintptr(fd), "fanotify-mounts"), decide: decide, procRoot: procRoot,
		self: filepath.Join(procRoot, strconv.Itoa(os.Getpid()), "task")}, nil
}

// pseudoFS are filesystems whose mounts are never marked: the kernel's
// interfaces, which runtimes mount read-only or mask, and which their own
// set-up writes to.
var pseudoFS = map[string]bool{"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true,
	"mqueue": true, "bpf": true, "securityfs": true, "debugfs": true, "tracefs": true, "pstore": true,
	"fusectl": true, "configfs": true, "binfmt_misc": true, "autofs": true, "hugetlbfs": true, "nsfs": true,
	"efivarfs": true, "selinuxfs": true}

// Mount is one line of /proc/<pid>/mountinfo.
type Mount struct {
	Point  string // mount point, in the process's root
	FSType string
}

// Mountinfo reads the mounts of pid's mount namespace, as pid sees them.
func Mountinfo(procRoot string, pid int) ([]Mount, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		return nil, err
	}
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		out = append(out, Mount{Point: unescapeMount(f[4]), FSType: f[sep+1]})
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MarkNamespace marks every mount of pid's mount namespace but the pseudo
// filesystems: opens are held when open is true, execs when exec is. It
// returns the mount points marked. Mounts made later are not marked.
func (d *MountDenier) MarkNamespace(pid int, open, exec bool) ([]string, error) {
	var mask uint64
	if open {
		mask |= unix.FAN_OPEN_PERM
	}
	if exec {
		mask |= unix.FAN_OPEN_EXEC_PERM
	}
	if mask == 0 {
		return nil, nil
	}
	mounts, err := Mountinfo(d.procRoot, pid)
	if err != nil {
		return nil, fmt.Errorf("mounts of pid %d: %w", pid, err)
	}
	root, err := unix.Open(filepath.Join(d.procRoot, strconv.Itoa(pid), "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("root of pid %d: %w", pid, err)
	}
	defer unix.Close(root)
	var marked []string
	var errs []error
	for _, m := range mounts {
		if pseudoFS[m.FSType] {
			continue
		}
		// Resolved inside the container's root, so that its symlinks
		// cannot point the mark elsewhere.
		fd, err := unix.Openat2(root, m.Point, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			errs = append(errs, fmt.Errorf("open mount %s: %w", m.Point, err))
			continue
		}
		// fanotify_mark takes no O_PATH descriptor itself; its magic link
		// names the same mount and file.
		err = unix.FanotifyMark(int(d.f.Fd()), unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, mask, unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd))
		unix.Close(fd)
		if err != nil {
			errs = append(errs, fmt.Errorf("fanotify mark mount %s: %w", m.Point, err))
			continue
		}
		marked = append(marked, m.Point)
	}
	if len(marked) == 0 {
		errs = append(errs, fmt.Errorf("no mount of pid %d marked", pid))
	}
	return marked, errors.Join(errs...)
}

// Run answers permission events until ctx is done or the MountDenier is
// closed.
func (d *MountDenier) Run(ctx context.Context) error {
	go func() { <-ctx.Done(); d.Close() }()
	buf := make([]byte, 64*fanMetaSize)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil || d.closed.Load() {
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
				continue
			}
			d.answer(&m)
		}
	}
}

func (d *MountDenier) answer(m *unix.FanotifyEventMetadata) {
	defer unix.Close(int(m.Fd))
	d.Held.Add(1)
	allow := d.verdict(m)
	resp := uint32(unix.FAN_ALLOW)
	if !allow {
		resp = unix.FAN_DENY
		d.Denied.Add(1)
	}
	var out [8]byte
	binary.NativeEndian.PutUint32(out[:4], uint32(m.Fd))
	binary.NativeEndian.PutUint32(out[4:], resp)
	d.f.Write(out[:])
}

func (d *MountDenier) verdict(m *unix.FanotifyEventMetadata) bool {
	tid := strconv.Itoa(int(m.Pid))
	if _, err := os.Stat(filepath.Join(d.self, tid)); err == nil {
		return true // Vigil's own thread must not wait for itself
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(m.Fd)))
	if err != nil {
		return true
	}
	return d.decide(&MountRequest{TID: uint32(m.Pid), Path: path, Exec: m.Mask&unix.FAN_OPEN_EXEC_PERM != 0, ProcRoot: d.procRoot})
}

// Close stops holding; the kernel allows what is still pending, and the
// marks go with the group.
func (d *MountDenier) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	return d.f.Close()
}

// x86_64 system call numbers of the calls that open files.
const (
	sysOpen           = 2
	sysCreat          = 85
	sysUselib         = 134
	sysExecve         = 59
	sysOpenByHandleAt = 304
	sysExecveat       = 322
	sysOpenat         = 257
	sysOpenat2        = 437
	openWriteFlags    = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND
)

// Intent is what a held open asked for.
type Intent struct {
	// Known: the open's flags could be read (a thread in open, openat,
	// openat2, creat or open_by_handle_at, or an exec).
	Known bool
	// Write: the open may change the file (write access, O_CREAT,
	// O_TRUNC or O_APPEND).
	Write bool
	// Create: O_CREAT was asked; a new file is created before fanotify
	// holds its open.
	Create bool
	// Syscall names the call.
	Syscall string
	Flags   uint64
}

// OpenIntent reads the held thread's system call and its open flags from
// /proc/<tid>/syscall (the thread is blocked in it while fanotify holds
// the open).
func (r *MountRequest) OpenIntent() Intent {
	tid := strconv.Itoa(int(r.TID))
	b, err := os.ReadFile(filepath.Join(r.ProcRoot, tid, "syscall"))
	if err != nil {
		return Intent{Syscall: "unreadable"}
	}
	return ParseSyscall(string(b), func(addr uint64) (uint64, error) {
		f, err := os.Open(filepath.Join(r.ProcRoot, tid, "mem"))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		var v [8]byte
		if _, err := f.ReadAt(v[:], int64(addr)); err != nil {
			return 0, err
		}
		return binary.NativeEndian.Uint64(v[:]), nil
	})
}

// ParseSyscall reads a /proc/<tid>/syscall line ("nr arg1 ... arg6 sp pc",
// hex arguments); read64 reads the caller's memory (openat2's open_how).
func ParseSyscall(line string, read64 func(addr uint64) (uint64, error)) Intent {
	f := strings.Fields(line)
	if len(f) < 7 {
		return Intent{Syscall: "none"}
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return Intent{Syscall: "none"}
	}
	arg := func(i int) uint64 {
		v, _ := strconv.ParseUint(strings.TrimPrefix(f[i+1], "0x"), 16, 64)
		return v
	}
	in := Intent{Known: true}
	switch nr {
	case sysOpen:
		in.Syscall, in.Flags = "open", arg(1)
	case sysOpenat:
		in.Syscall, in.Flags = "openat", arg(2)
	case sysOpenByHandleAt:
		in.Syscall, in.Flags = "open_by_handle_at", arg(2)
	case sysCreat:
		in.Syscall, in.Flags = "creat", unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC
	case sysOpenat2:
		in.Syscall = "openat2"
		v, err := read64(arg(2))
		if err != nil {
			return Intent{Syscall: "openat2"}
		}
		in.Flags = v
	case sysExecve, sysExecveat, sysUselib:
		in.Syscall = "execve"
		return in
	default:
		return Intent{Syscall: "syscall " + f[0]}
	}
	in.Write = in.Flags&openWriteFlags != 0
	in.Create = in.Flags&unix.O_CREAT != 0
	return in
}
