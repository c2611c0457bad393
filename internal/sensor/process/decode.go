package process

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
	if err := sensor.DecodeTask(b, clk, p); err != nil {
		return err
	}
	p.Executable = sensor.JoinComponents(path)
	p.WorkingDir = sensor.JoinComponents(cwd)
	p.Filename = sensor.CString(filename)
	p.Args = splitArgs(args)
	p.ArgsCount = int(raw.Argc)
	p.ArgsTruncated = raw.Flags&uint32(bpfExecFlagEXEC_ARGS_TRUNCATED) != 0
	p.PathTruncated = raw.Flags&uint32(bpfExecFlagEXEC_PATH_TRUNCATED|bpfExecFlagEXEC_CWD_TRUNCATED|bpfExecFlagEXEC_FILENAME_TRUNCATED) != 0
	if raw.Flags&uint32(bpfExecFlagEXEC_INTERPRETED) != 0 {
		// The kernel has replaced the script's file with its interpreter's by
		// the time the exec is reported: this path is joined, not walked.
		p.Script = sensor.Resolve(p.Filename, p.WorkingDir)
	}
	if raw.Flags&uint32(bpfExecFlagEXEC_SECUREEXEC|bpfExecFlagEXEC_FILE_UNLINKED|
		bpfExecFlagEXEC_STDIN_SOCKET|bpfExecFlagEXEC_STDOUT_SOCKET|bpfExecFlagEXEC_STDERR_SOCKET|bpfExecFlagEXEC_KILLED) != 0 {
		e.Exec = &event.Exec{
			SecureExec:   raw.Flags&uint32(bpfExecFlagEXEC_SECUREEXEC) != 0,
			FileUnlinked: raw.Flags&uint32(bpfExecFlagEXEC_FILE_UNLINKED) != 0,
			StdinSocket:  raw.Flags&uint32(bpfExecFlagEXEC_STDIN_SOCKET) != 0,
			StdoutSocket: raw.Flags&uint32(bpfExecFlagEXEC_STDOUT_SOCKET) != 0,
			StderrSocket: raw.Flags&uint32(bpfExecFlagEXEC_STDERR_SOCKET) != 0,
			Killed:       raw.Flags&uint32(bpfExecFlagEXEC_KILLED) != 0,
		}
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
	return sensor.DecodeTask(b, clk, &e.Process)
}

// DecodeExit decodes an exit record.
func DecodeExit(b []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfExitEvent
	if _, err := binary.Decode(b, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("exit record: %w", err)
	}
	st := event.DecodeWaitStatus(raw.ExitCode)
	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindExit, Exit: &st}
	return sensor.DecodeTask(b, clk, &e.Process)
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
