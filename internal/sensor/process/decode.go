package process

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"strings"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// Sizes of the fixed parts of each record, as the kernel lays them out.
var (
	execSize = binary.Size(bpfExecEvent{})
	forkSize = binary.Size(bpfForkEvent{})
	exitSize = binary.Size(bpfExitEvent{})
)

// DecodeExec decodes an exec record into e. It does not retain b.
func DecodeExec(b []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfExecEvent
	if _, err := binary.Decode(b, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("exec record: %w", err)
	}
	data := b[execSize:]
	want := int(raw.PathLen) + int(raw.CwdLen) + int(raw.FilenameLen) + int(raw.ArgsLen)
	if len(data) < want {
		return fmt.Errorf("exec record: %d bytes of data, header says %d", len(data), want)
	}
	path, data := data[:raw.PathLen], data[raw.PathLen:]
	cwd, data := data[:raw.CwdLen], data[raw.CwdLen:]
	filename, data := data[:raw.FilenameLen], data[raw.FilenameLen:]
	args := data[:raw.ArgsLen]

	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindExec}
	p := &e.Process
	taskInto(p, &raw.Task, clk)
	p.Executable = joinComponents(path)
	p.WorkingDir = joinComponents(cwd)
	p.Filename = cString(filename)
	p.Args = splitArgs(args)
	p.ArgsCount = int(raw.Argc)
	p.ArgsTruncated = raw.Flags&uint32(bpfExecFlagEXEC_ARGS_TRUNCATED) != 0
	p.PathTruncated = raw.Flags&uint32(bpfExecFlagEXEC_PATH_TRUNCATED|bpfExecFlagEXEC_CWD_TRUNCATED|bpfExecFlagEXEC_FILENAME_TRUNCATED) != 0
	if raw.Flags&uint32(bpfExecFlagEXEC_INTERPRETED) != 0 {
		p.Script = absolute(p.Filename, p.WorkingDir)
	}
	return nil
}

// DecodeFork decodes a fork record: the new process, before it execs.
func DecodeFork(b []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfForkEvent
	if _, err := binary.Decode(b, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("fork record: %w", err)
	}
	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindFork}
	taskInto(&e.Process, &raw.Task, clk)
	return nil
}

// DecodeExit decodes an exit record.
func DecodeExit(b []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfExitEvent
	if _, err := binary.Decode(b, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("exit record: %w", err)
	}
	st := event.DecodeWaitStatus(raw.ExitCode)
	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindExit, Exit: &st}
	taskInto(&e.Process, &raw.Task, clk)
	return nil
}

func taskInto(p *event.Process, t *bpfTaskInfo, clk sensor.Clock) {
	p.PID = t.Pid
	p.TID = t.Tid
	p.PPID = t.Ppid
	p.StartBoot = t.StartNs
	p.Start = clk.Time(t.StartNs)
	p.ParentStartBoot = t.ParentStartNs
	p.CgroupID = t.CgroupId
	p.UID, p.GID, p.EUID, p.EGID = t.Uid, t.Gid, t.Euid, t.Egid
	p.AUID = t.Auid
	p.SessionID = t.Sessionid
	var comm [len(t.Comm)]byte
	for i, c := range t.Comm {
		comm[i] = byte(c)
	}
	p.Name = cString(comm[:])
}

// joinComponents turns the kernel's leaf-first, NUL-terminated path
// components into an absolute path.
func joinComponents(b []byte) string {
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

// splitArgs splits NUL-separated argv. A truncated last argument has no
// terminating NUL and is kept as it is.
func splitArgs(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// absolute resolves a path the caller passed against its working directory,
// lexically: the kernel has replaced the script's file with its interpreter's
// by the time the exec is reported, so this is the one path we cannot walk.
func absolute(p, cwd string) string {
	if p == "" {
		return ""
	}
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Join(cwd, p)
}
