package event

import "net/netip"

// FileOp names a file operation.
type FileOp string

const (
	FileOpen     FileOp = "open"
	FileCreate   FileOp = "create"
	FileUnlink   FileOp = "unlink"
	FileRmdir    FileOp = "rmdir"
	FileRename   FileOp = "rename"
	FileChmod    FileOp = "chmod"
	FileChown    FileOp = "chown"
	FileLink     FileOp = "link"
	FileSymlink  FileOp = "symlink"
	FileTruncate FileOp = "truncate"
	FileMkdir    FileOp = "mkdir"
)

// File is a file operation.
type File struct {
	Op FileOp
	// Path is the absolute path the kernel acted on. When PathResolved is
	// false it was made by joining RawPath onto the directory the caller's
	// relative path started from (its dirfd or working directory) and
	// cleaning it lexically.
	Path         string
	PathResolved bool
	RawPath      string // as the caller passed it
	// TargetPath is the second path of rename (the new name), link (the new
	// link) and symlink (the new link); TargetRawPath as the caller wrote it.
	// For symlink, RawPath is the link's content.
	TargetPath         string
	TargetPathResolved bool
	TargetRawPath      string
	PathTruncated      bool

	OpenFlags uint32 // open(2) flags, for open and create
	Mode      uint32 // for chmod, mkdir, create: permission and type bits
	UID, GID  uint32 // for chown; NoUID when unchanged
	Inode     uint64
	Device    uint32 // kernel encoding: major << 20 | minor
	Write     bool   // opened for writing
	Watched   bool   // matched the interest set (e.g. a sensitive file)
}

// CredOp names a credential change.
type CredOp string

const (
	CredSetuid    CredOp = "setuid"
	CredSetgid    CredOp = "setgid"
	CredSetreuid  CredOp = "setreuid"
	CredSetregid  CredOp = "setregid"
	CredSetresuid CredOp = "setresuid"
	CredSetresgid CredOp = "setresgid"
	CredSetfsuid  CredOp = "setfsuid"
	CredSetfsgid  CredOp = "setfsgid"
	CredSetgroups CredOp = "setgroups"
	CredCapset    CredOp = "capset"
)

// Cred is a change of credentials.
type Cred struct {
	Op       CredOp
	Args     []uint32 // as the caller passed them (NoUID for -1)
	Old, New Creds
}

// Creds are a task's credentials.
type Creds struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	CapEffective           uint64
	CapPermitted           uint64
}

// NetOp names a socket operation.
type NetOp string

const (
	NetConnect NetOp = "connect"
	NetBind    NetOp = "bind"
	NetListen  NetOp = "listen"
	NetAccept  NetOp = "accept"
	NetDNS     NetOp = "dns"
	// NetPayload: a packet whose first bytes matched a payload rule's
	// pattern (netguard's tcx program; no process).
	NetPayload NetOp = "payload"
)

// Net is a socket operation.
type Net struct {
	Op       NetOp
	Family   string // "ipv4", "ipv6", "unix"
	Protocol string // "tcp", "udp", ... (network.transport)
	Type     string // "stream", "dgram", "raw", ...
	// Source is the local end, Destination the remote end, where known.
	Source, Destination netip.AddrPort
	FD                  int32
	DNS                 *DNSQuestion
	// Dir is "ingress" or "egress" where the operation does not say
	// (payload matches); see Direction.
	Dir string
}

// Direction is "egress" for connects and DNS queries, "ingress" for
// accepts, Dir otherwise ("" when unknown).
func (n *Net) Direction() string {
	switch n.Op {
	case NetConnect, NetDNS:
		return "egress"
	case NetAccept:
		return "ingress"
	}
	return n.Dir
}

// DNSQuestion is the question of a DNS query a process sent.
type DNSQuestion struct {
	ID   uint16
	Name string
	Type string // "A", "AAAA", "TXT", ... or "TYPE65"
}

// KernelOp names an operation on the kernel's attack surface.
type KernelOp string

const (
	KernelUnshare     KernelOp = "unshare"
	KernelSetns       KernelOp = "setns"
	KernelCloneNS     KernelOp = "clone_ns"
	KernelMount       KernelOp = "mount"
	KernelUmount      KernelOp = "umount"
	KernelPivotRoot   KernelOp = "pivot_root"
	KernelPtrace      KernelOp = "ptrace"
	KernelModuleLoad  KernelOp = "module_load"
	KernelMemfdCreate KernelOp = "memfd_create"
	KernelExecveat    KernelOp = "execveat"
	KernelBPF         KernelOp = "bpf"
	KernelSignalAgent KernelOp = "signal_agent"
	KernelSignal      KernelOp = "signal"      // a signal to another process (kernel sensor with SignalsAll)
	KernelPidfdAgent  KernelOp = "pidfd_agent" // pidfd_open of the agent's pid by another process
)

// Kernel is an operation on namespaces, mounts, modules, tracing or the
// agent itself.
type Kernel struct {
	Op KernelOp
	// Flags: CLONE_NEW* for unshare/clone, mount flags, memfd flags, execveat flags.
	Flags uint64
	// FlagNames spells Flags out where they are symbolic ("CLONE_NEWNS", ...).
	FlagNames []string
	// Arg: setns nstype, ptrace request, bpf command, signal number, execveat fd.
	Arg uint64
	// ArgName spells Arg out ("PTRACE_ATTACH", "BPF_PROG_LOAD", "SIGKILL").
	ArgName   string
	TargetPID uint32 // ptrace/signal target, clone child
	// Paths and names, by operation: mount source/target/fstype; umount
	// target; pivot_root new root/put_old; module path and params;
	// memfd name; setns and execveat: the fd's path.
	Source, Target, FSType, Name, Path, Params string
}
