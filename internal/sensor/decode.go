package sensor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"strings"

	"github.com/vigilsec/vigil/internal/event"
)

// TaskSize is the size of struct task_info, which follows the header in
// every record.
const TaskSize = 80

// DecodeTask fills p from the struct task_info that follows the header of rec.
func DecodeTask(rec []byte, clk Clock, p *event.Process) error {
	if len(rec) < HeaderSize+TaskSize {
		return fmt.Errorf("record of %d bytes is shorter than header and task", len(rec))
	}
	b := rec[HeaderSize : HeaderSize+TaskSize]
	le := binary.LittleEndian
	p.StartBoot = le.Uint64(b[0:])
	p.Start = clk.Time(p.StartBoot)
	p.ParentStartBoot = le.Uint64(b[8:])
	p.CgroupID = le.Uint64(b[16:])
	p.PID = le.Uint32(b[24:])
	p.TID = le.Uint32(b[28:])
	p.PPID = le.Uint32(b[32:])
	p.UID = le.Uint32(b[36:])
	p.GID = le.Uint32(b[40:])
	p.EUID = le.Uint32(b[44:])
	p.EGID = le.Uint32(b[48:])
	p.AUID = le.Uint32(b[52:])
	p.SessionID = le.Uint32(b[56:])
	p.Name = CString(b[64:80])
	return nil
}

// CString is the string up to the first NUL.
func CString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// JoinComponents turns a path the kernel wrote as NUL-terminated components,
// leaf first (bpf/lib/path.h), into an absolute path.
func JoinComponents(b []byte) string {
	if len(b) == 0 {
		return "/"
	}
	parts := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	var sb strings.Builder
	sb.Grow(len(b) + 1)
	for i := len(parts) - 1; i >= 0; i-- {
		sb.WriteByte('/')
		sb.WriteString(parts[i])
	}
	return sb.String()
}

// Resolve makes a path the caller passed absolute against the directory it
// was relative to (its dirfd or working directory), lexically: "." and ".."
// are resolved, symlinks in the caller's part are not.
func Resolve(raw, dir string) string {
	if raw == "" {
		return dir
	}
	if strings.HasPrefix(raw, "/") {
		return path.Clean(raw)
	}
	return path.Join(dir, raw)
}

// Split cuts n bytes off the front of b, or reports that b is too short.
func Split(b []byte, n int) (head, rest []byte, err error) {
	if n > len(b) {
		return nil, nil, fmt.Errorf("record is %d bytes short", n-len(b))
	}
	return b[:n], b[n:], nil
}
