// Package event is Vigil's domain model: what sensors observe, enriched with
// process context, and what every output renders. It depends on the standard
// library only.
package event

import "time"

// Kind says what happened. Its values are stable: they are recorded in files.
type Kind uint8

const (
	KindUnknown Kind = iota
	KindExec
	KindFork
	KindExit
	KindFile
	KindCred
	KindNet
	KindKernel
	// KindAlert is a detection: a rule matched another event.
	KindAlert
	// KindResponse is an action taken (or not) because a rule asked for it.
	KindResponse
)

var kindNames = [...]string{
	KindUnknown:  "unknown",
	KindExec:     "exec",
	KindFork:     "fork",
	KindExit:     "exit",
	KindFile:     "file",
	KindCred:     "cred",
	KindNet:      "net",
	KindKernel:   "kernel",
	KindAlert:    "alert",
	KindResponse: "response",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds lists every known kind, in order.
func Kinds() []Kind {
	return []Kind{KindExec, KindFork, KindExit, KindFile, KindCred, KindNet, KindKernel}
}

// Event is one observation. Parent and Ancestors are filled by enrichment from
// the process cache, not by sensors.
type Event struct {
	Time    time.Time
	Kind    Kind
	Process Process
	// Parent is the process's parent at the time of the event, when known.
	Parent *Process
	// Ancestors runs from the grandparent up to the root of the tree.
	Ancestors []Ancestor
	Exit      *ExitStatus

	// Return is the syscall's return value for file, cred, net and kernel
	// events: >= 0 on success, -errno on failure.
	Return int64

	// Exactly one of these is set, matching Kind (none for fork and exit).
	Exec   *Exec
	File   *File
	Cred   *Cred
	Net    *Net
	Kernel *Kernel
	Alert  *Alert

	// Origin and Container are filled by container attribution from the
	// process's cgroup: Container is set when Origin is OriginContainer.
	Origin    Origin
	Container *Container
	// Response is set on KindResponse events.
	Response *Response
}

// Exec holds what is particular to an exec beyond the new Process.
type Exec struct {
	// SecureExec: the exec changed credentials (setuid/setgid bit, file
	// capabilities), as the kernel's AT_SECURE says.
	SecureExec bool
	// FileUnlinked: the executed file has no name left (deleted, or a memfd).
	FileUnlinked bool
	// StdioSockets: fds 0, 1 and 2 are sockets (as in a reverse shell).
	StdinSocket, StdoutSocket, StderrSocket bool
	// Killed: a kill rule matched in the kernel, which sent SIGKILL before
	// the new program ran its first instruction.
	Killed bool
}

// Process describes a process: its identity (PID and start time), the program
// it runs and its credentials.
type Process struct {
	PID   uint32
	TID   uint32
	PPID  uint32
	Start time.Time
	// StartBoot is the start time in nanoseconds since boot (CLOCK_BOOTTIME),
	// the same clock the kernel and /proc use. With PID it identifies the process.
	StartBoot       uint64
	ParentStartBoot uint64
	EntityID        string

	Name       string // comm: the kernel's 15-byte task name
	Executable string // absolute path of the file the kernel executed
	// Script is the file an interpreter was started for (#! scripts); then
	// Executable is the interpreter.
	Script string
	// Filename is the path the caller passed to execve, as written.
	Filename      string
	Args          []string
	ArgsCount     int  // argc, which may exceed len(Args) when truncated
	ArgsTruncated bool // argv was longer than Vigil carries
	WorkingDir    string
	// PathTruncated reports that Executable, WorkingDir or Filename was cut short.
	PathTruncated bool

	UID, GID, EUID, EGID uint32
	// AUID is the login uid (audit), NoUID when unset.
	AUID      uint32
	SessionID uint32
	CgroupID  uint64

	// FromProcfs reports that this process was learned from /proc at startup
	// rather than observed by a sensor.
	FromProcfs bool
}

// NoUID is the kernel's "unset" uid, as in an unset login uid.
const NoUID = ^uint32(0)

// Ancestor is a brief description of a process further up the tree.
type Ancestor struct {
	PID        uint32
	EntityID   string
	Name       string
	Executable string
	Args       []string
}

// ExitStatus is how a process ended, decoded from its wait status.
type ExitStatus struct {
	Code       int // exit code when the process exited, 128+signal when killed
	Signal     int // 0 unless a signal ended it
	CoreDumped bool
}

// DecodeWaitStatus turns a kernel wait status (code<<8 | signal) into an ExitStatus.
func DecodeWaitStatus(ws uint32) ExitStatus {
	sig := int(ws & 0x7f)
	if sig == 0 {
		return ExitStatus{Code: int(ws>>8) & 0xff}
	}
	return ExitStatus{Code: 128 + sig, Signal: sig, CoreDumped: ws&0x80 != 0}
}
