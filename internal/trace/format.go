package trace

import (
	"net/netip"
	"strconv"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
)

// The table: one line per event, columns aligned approximately (a long value
// pushes the rest of its line to the right rather than being cut). Every
// string that comes from the traced processes (names, paths, arguments,
// DNS names) is written as is when it is plain, and quoted with Go escapes
// (strconv.Quote) when it holds anything else: spaces, quotes, backslashes,
// control characters, invalid UTF-8, unprintable runes. So a line is one
// event and a field never spans a space, whatever the names are made of.

const timeLayout = "15:04:05.000"

// Column widths.
const (
	wTime   = len(timeLayout)
	wPID    = 7
	wComm   = 16
	wCgroup = 8
	wRet    = 7
	wAddr   = 22
)

// header is the table's first line for a kind.
func header(k Kind) string {
	b := pad(nil, "TIME", wTime)
	b = append(b, ' ')
	b = padLeft(b, "PID", wPID)
	b = append(b, ' ')
	b = pad(b, "COMM", wComm)
	b = append(b, ' ')
	b = pad(b, "CGROUP", wCgroup)
	b = append(b, ' ')
	switch k {
	case Exec:
		b = padLeft(b, "PPID", wPID)
		b = append(b, " UID    EXECUTABLE ARGS"...)
	case Open:
		b = append(b, "OP     RET     FLAGS                PATH"...)
	case File:
		b = append(b, "OP       RET     PATH"...)
	case Connect, Accept, Bind:
		b = append(b, "OP      RET          PROTO "...)
		b = pad(b, "LOCAL", wAddr)
		b = append(b, " REMOTE"...)
	case DNS:
		b = append(b, "RET     "...)
		b = pad(b, "SERVER", wAddr)
		b = append(b, " TYPE   NAME"...)
	case Cred:
		b = append(b, "CALL                     RET     CHANGE"...)
	case Signal:
		b = append(b, "RET     "...)
		b = padLeft(b, "TARGET", wPID)
		b = append(b, " SIGNAL"...)
	}
	return string(append(b, '\n'))
}

// formatLine appends the event's line, newline included, to b.
func formatLine(b []byte, k Kind, e *event.Event) []byte {
	p := &e.Process
	b = pad(b, e.Time.Local().Format(timeLayout), wTime)
	b = append(b, ' ')
	b = padLeft(b, strconv.FormatUint(uint64(p.PID), 10), wPID)
	b = append(b, ' ')
	b = pad(b, esc(p.Name), wComm)
	b = append(b, ' ')
	b = pad(b, strconv.FormatUint(p.CgroupID, 10), wCgroup)
	b = append(b, ' ')
	switch {
	case k == Exec:
		b = padLeft(b, strconv.FormatUint(uint64(p.PPID), 10), wPID)
		b = append(b, ' ')
		b = pad(b, strconv.FormatUint(uint64(p.UID), 10), 6)
		b = append(b, ' ')
		b = append(b, esc(p.Executable)...)
		for _, a := range p.Args {
			b = append(b, ' ')
			b = append(b, esc(a)...)
		}
		if p.ArgsTruncated {
			b = append(b, " ..."...)
		}
	case e.File != nil:
		f := e.File
		if k == Open {
			b = pad(b, string(f.Op), 6)
			b = append(b, ' ')
			b = pad(b, ret(e.Return), wRet)
			b = append(b, ' ')
			b = pad(b, openFlags(f.OpenFlags), 20)
		} else {
			b = pad(b, string(f.Op), 8)
			b = append(b, ' ')
			b = pad(b, ret(e.Return), wRet)
		}
		b = append(b, ' ')
		b = append(b, esc(f.Path)...)
		if f.TargetPath != "" {
			b = append(b, " -> "...)
			b = append(b, esc(f.TargetPath)...)
		} else if f.Op == event.FileSymlink {
			b = append(b, " -> "...)
			b = append(b, esc(f.RawPath)...) // the link's content
		}
	case e.Net != nil:
		n := e.Net
		if k == DNS {
			b = pad(b, ret(e.Return), wRet)
			b = append(b, ' ')
			b = pad(b, addr(n.Destination), wAddr)
			b = append(b, ' ')
			if q := n.DNS; q != nil {
				b = pad(b, q.Type, 6)
				b = append(b, ' ')
				b = append(b, esc(q.Name)...)
			} else {
				b = append(b, "-      (not a DNS query)"...)
			}
			break
		}
		b = pad(b, string(n.Op), 7)
		b = append(b, ' ')
		b = pad(b, ret(e.Return), 12)
		b = append(b, ' ')
		proto := n.Protocol
		if proto == "" {
			proto = n.Family
		}
		b = pad(b, proto, 5)
		b = append(b, ' ')
		b = pad(b, addr(n.Source), wAddr)
		b = append(b, ' ')
		b = append(b, addr(n.Destination)...)
	case e.Cred != nil:
		b = pad(b, credCall(e.Cred), 24)
		b = append(b, ' ')
		b = pad(b, ret(e.Return), wRet)
		b = append(b, ' ')
		b = credChange(b, e.Cred)
	case e.Kernel != nil:
		kn := e.Kernel
		b = pad(b, ret(e.Return), wRet)
		b = append(b, ' ')
		b = padLeft(b, strconv.FormatInt(int64(int32(kn.TargetPID)), 10), wPID)
		b = append(b, ' ')
		b = append(b, kn.ArgName...)
		if kn.Op == event.KernelSignalAgent {
			b = append(b, " (to this tracer)"...)
		}
	}
	return append(b, '\n')
}

// esc is s as is when it is plain, else quoted with Go escapes.
func esc(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

func pad(b []byte, s string, w int) []byte {
	b = append(b, s...)
	for n := utf8.RuneCountInString(s); n < w; n++ {
		b = append(b, ' ')
	}
	return b
}

func padLeft(b []byte, s string, w int) []byte {
	for n := len(s); n < w; n++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// ret is a syscall's return: the value, or the errno's name.
func ret(r int64) string {
	if r < 0 {
		return event.ErrnoName(-r)
	}
	return strconv.FormatInt(r, 10)
}

func addr(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "-"
	}
	return ap.String()
}

var openFlagNames = []struct {
	bit  uint32
	name string
}{
	{unix.O_CREAT, "CREAT"}, {unix.O_EXCL, "EXCL"}, {unix.O_TRUNC, "TRUNC"}, {unix.O_APPEND, "APPEND"},
	{unix.O_TMPFILE, "TMPFILE"}, {unix.O_DIRECTORY, "DIRECTORY"}, {unix.O_NOFOLLOW, "NOFOLLOW"},
	{unix.O_PATH, "PATH"}, {unix.O_NONBLOCK, "NONBLOCK"}, {unix.O_SYNC, "SYNC"}, {unix.O_DSYNC, "DSYNC"},
	{unix.O_DIRECT, "DIRECT"}, {unix.O_NOATIME, "NOATIME"}, {unix.O_NOCTTY, "NOCTTY"}, {unix.O_CLOEXEC, "CLOEXEC"},
	{0o100000, "LARGEFILE"},
}

// openFlags spells open(2) flags: the access mode, then the others.
func openFlags(fl uint32) string {
	var b []byte
	switch fl & unix.O_ACCMODE {
	case unix.O_RDONLY:
		b = append(b, "RDONLY"...)
	case unix.O_WRONLY:
		b = append(b, "WRONLY"...)
	case unix.O_RDWR:
		b = append(b, "RDWR"...)
	default:
		b = append(b, "ACC3"...)
	}
	fl &^= unix.O_ACCMODE
	for _, f := range openFlagNames {
		if f.bit != 0 && fl&f.bit == f.bit {
			b = append(b, '|')
			b = append(b, f.name...)
			fl &^= f.bit
		}
	}
	if fl != 0 {
		b = append(b, "|0x"...)
		b = strconv.AppendUint(b, uint64(fl), 16)
	}
	return string(b)
}

// credCall is the call as made: setreuid(65534,-1).
func credCall(c *event.Cred) string {
	b := append([]byte(nil), c.Op...)
	b = append(b, '(')
	for i, a := range c.Args {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case a == event.NoUID:
			b = append(b, "-1"...)
		case c.Op == event.CredCapset:
			b = append(b, "0x"...)
			b = strconv.AppendUint(b, uint64(a), 16)
		default:
			b = strconv.AppendUint(b, uint64(a), 10)
		}
	}
	return string(append(b, ')'))
}

// credChange lists the uid as old->new, then every other id or capability
// set that changed.
func credChange(b []byte, c *event.Cred) []byte {
	o, n := c.Old, c.New
	ids := []struct {
		name     string
		old, new uint32
	}{
		{"uid", o.UID, n.UID}, {"euid", o.EUID, n.EUID}, {"suid", o.SUID, n.SUID}, {"fsuid", o.FSUID, n.FSUID},
		{"gid", o.GID, n.GID}, {"egid", o.EGID, n.EGID}, {"sgid", o.SGID, n.SGID}, {"fsgid", o.FSGID, n.FSGID},
	}
	for i, id := range ids {
		if i > 0 && id.old == id.new {
			continue
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, id.name...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(id.old), 10)
		b = append(b, "->"...)
		b = strconv.AppendUint(b, uint64(id.new), 10)
	}
	for _, cp := range []struct {
		name     string
		old, new uint64
	}{{"cap_eff", o.CapEffective, n.CapEffective}, {"cap_prm", o.CapPermitted, n.CapPermitted}} {
		if cp.old != cp.new {
			b = append(b, ' ')
			b = append(b, cp.name...)
			b = append(b, " 0x"...)
			b = strconv.AppendUint(b, cp.old, 16)
			b = append(b, "->0x"...)
			b = strconv.AppendUint(b, cp.new, 16)
		}
	}
	return b
}
