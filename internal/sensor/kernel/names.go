package kernel

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// flag is one bit of a flag word and its name.
type flag struct {
	bit  uint64
	name string
}

// flagNames spells v out with table; bits the table lacks come last, in hex.
func flagNames(v uint64, table []flag) []string {
	var out []string
	for _, f := range table {
		if v&f.bit != 0 {
			out = append(out, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		out = append(out, fmt.Sprintf("%#x", v))
	}
	return out
}

// cloneFlags are the flags of clone, clone3 and unshare, and setns's nstype.
// CLONE_NEWTIME shares its bit with clone's exit signal; the kernel side
// masks the signal off clone's flags, so here the bit is always NEWTIME.
var cloneFlags = []flag{
	{unix.CLONE_NEWNS, "CLONE_NEWNS"},
	{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
	{unix.CLONE_NEWUTS, "CLONE_NEWUTS"},
	{unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
	{unix.CLONE_NEWUSER, "CLONE_NEWUSER"},
	{unix.CLONE_NEWPID, "CLONE_NEWPID"},
	{unix.CLONE_NEWNET, "CLONE_NEWNET"},
	{unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
	{unix.CLONE_VM, "CLONE_VM"},
	{unix.CLONE_FS, "CLONE_FS"},
	{unix.CLONE_FILES, "CLONE_FILES"},
	{unix.CLONE_SIGHAND, "CLONE_SIGHAND"},
	{unix.CLONE_PIDFD, "CLONE_PIDFD"},
	{unix.CLONE_PTRACE, "CLONE_PTRACE"},
	{unix.CLONE_VFORK, "CLONE_VFORK"},
	{unix.CLONE_PARENT, "CLONE_PARENT"},
	{unix.CLONE_THREAD, "CLONE_THREAD"},
	{unix.CLONE_SYSVSEM, "CLONE_SYSVSEM"},
	{unix.CLONE_SETTLS, "CLONE_SETTLS"},
	{unix.CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"},
	{unix.CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"},
	{unix.CLONE_DETACHED, "CLONE_DETACHED"},
	{unix.CLONE_UNTRACED, "CLONE_UNTRACED"},
	{unix.CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"},
	{unix.CLONE_IO, "CLONE_IO"},
	{unix.CLONE_CLEAR_SIGHAND, "CLONE_CLEAR_SIGHAND"},
	{unix.CLONE_INTO_CGROUP, "CLONE_INTO_CGROUP"},
}

var mountFlags = []flag{
	{unix.MS_RDONLY, "MS_RDONLY"},
	{unix.MS_NOSUID, "MS_NOSUID"},
	{unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"},
	{unix.MS_SYNCHRONOUS, "MS_SYNCHRONOUS"},
	{unix.MS_REMOUNT, "MS_REMOUNT"},
	{unix.MS_MANDLOCK, "MS_MANDLOCK"},
	{unix.MS_DIRSYNC, "MS_DIRSYNC"},
	{unix.MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"},
	{unix.MS_NOATIME, "MS_NOATIME"},
	{unix.MS_NODIRATIME, "MS_NODIRATIME"},
	{unix.MS_BIND, "MS_BIND"},
	{unix.MS_MOVE, "MS_MOVE"},
	{unix.MS_REC, "MS_REC"},
	{unix.MS_SILENT, "MS_SILENT"},
	{unix.MS_POSIXACL, "MS_POSIXACL"},
	{unix.MS_UNBINDABLE, "MS_UNBINDABLE"},
	{unix.MS_PRIVATE, "MS_PRIVATE"},
	{unix.MS_SLAVE, "MS_SLAVE"},
	{unix.MS_SHARED, "MS_SHARED"},
	{unix.MS_RELATIME, "MS_RELATIME"},
	{unix.MS_KERNMOUNT, "MS_KERNMOUNT"},
	{unix.MS_I_VERSION, "MS_I_VERSION"},
	{unix.MS_STRICTATIME, "MS_STRICTATIME"},
	{unix.MS_LAZYTIME, "MS_LAZYTIME"},
}

// mountFlagNames drops the historical magic number some callers still put
// in the top 16 bits (MS_MGC_VAL), which the kernel ignores too.
func mountFlagNames(v uint64) []string {
	if v&unix.MS_MGC_MSK == unix.MS_MGC_VAL {
		v &^= unix.MS_MGC_MSK
	}
	return flagNames(v, mountFlags)
}

var umountFlags = []flag{
	{unix.MNT_FORCE, "MNT_FORCE"},
	{unix.MNT_DETACH, "MNT_DETACH"},
	{unix.MNT_EXPIRE, "MNT_EXPIRE"},
	{unix.UMOUNT_NOFOLLOW, "UMOUNT_NOFOLLOW"},
}

var memfdFlags = []flag{
	{unix.MFD_CLOEXEC, "MFD_CLOEXEC"},
	{unix.MFD_ALLOW_SEALING, "MFD_ALLOW_SEALING"},
	{unix.MFD_HUGETLB, "MFD_HUGETLB"},
	{unix.MFD_NOEXEC_SEAL, "MFD_NOEXEC_SEAL"},
	{unix.MFD_EXEC, "MFD_EXEC"},
}

// pidfd_open flags: PIDFD_NONBLOCK is O_NONBLOCK, PIDFD_THREAD O_EXCL.
var pidfdFlags = []flag{
	{unix.O_NONBLOCK, "PIDFD_NONBLOCK"},
	{unix.O_EXCL, "PIDFD_THREAD"},
}

var execveatFlags = []flag{
	{unix.AT_EMPTY_PATH, "AT_EMPTY_PATH"},
	{unix.AT_SYMLINK_NOFOLLOW, "AT_SYMLINK_NOFOLLOW"},
}

// finit_module flags (MODULE_INIT_*).
var moduleFlags = []flag{
	{1, "MODULE_INIT_IGNORE_MODVERSIONS"},
	{2, "MODULE_INIT_IGNORE_VERMAGIC"},
	{4, "MODULE_INIT_COMPRESSED_FILE"},
}

// nsTypeName names setns's nstype: 0 (any type), one CLONE_NEW* flag, or
// for a pidfd several joined by "|".
func nsTypeName(v uint64) string {
	if v == 0 {
		return ""
	}
	return strings.Join(flagNames(v, cloneFlags), "|")
}

var ptraceRequests = map[uint64]string{
	unix.PTRACE_TRACEME:                          "PTRACE_TRACEME",
	unix.PTRACE_PEEKTEXT:                         "PTRACE_PEEKTEXT",
	unix.PTRACE_PEEKDATA:                         "PTRACE_PEEKDATA",
	unix.PTRACE_PEEKUSR:                          "PTRACE_PEEKUSR",
	unix.PTRACE_POKETEXT:                         "PTRACE_POKETEXT",
	unix.PTRACE_POKEDATA:                         "PTRACE_POKEDATA",
	unix.PTRACE_POKEUSR:                          "PTRACE_POKEUSR",
	unix.PTRACE_CONT:                             "PTRACE_CONT",
	unix.PTRACE_KILL:                             "PTRACE_KILL",
	unix.PTRACE_SINGLESTEP:                       "PTRACE_SINGLESTEP",
	unix.PTRACE_GETREGS:                          "PTRACE_GETREGS",
	unix.PTRACE_SETREGS:                          "PTRACE_SETREGS",
	unix.PTRACE_GETFPREGS:                        "PTRACE_GETFPREGS",
	unix.PTRACE_SETFPREGS:                        "PTRACE_SETFPREGS",
	unix.PTRACE_ATTACH:                           "PTRACE_ATTACH",
	unix.PTRACE_DETACH:                           "PTRACE_DETACH",
	unix.PTRACE_GETFPXREGS:                       "PTRACE_GETFPXREGS",
	unix.PTRACE_SETFPXREGS:                       "PTRACE_SETFPXREGS",
	unix.PTRACE_OLDSETOPTIONS:                    "PTRACE_OLDSETOPTIONS",
	unix.PTRACE_SYSCALL:                          "PTRACE_SYSCALL",
	unix.PTRACE_GET_THREAD_AREA:                  "PTRACE_GET_THREAD_AREA",
	unix.PTRACE_SET_THREAD_AREA:                  "PTRACE_SET_THREAD_AREA",
	unix.PTRACE_ARCH_PRCTL:                       "PTRACE_ARCH_PRCTL",
	unix.PTRACE_SYSEMU:                           "PTRACE_SYSEMU",
	unix.PTRACE_SYSEMU_SINGLESTEP:                "PTRACE_SYSEMU_SINGLESTEP",
	unix.PTRACE_SINGLEBLOCK:                      "PTRACE_SINGLEBLOCK",
	unix.PTRACE_SETOPTIONS:                       "PTRACE_SETOPTIONS",
	unix.PTRACE_GETEVENTMSG:                      "PTRACE_GETEVENTMSG",
	unix.PTRACE_GETSIGINFO:                       "PTRACE_GETSIGINFO",
	unix.PTRACE_SETSIGINFO:                       "PTRACE_SETSIGINFO",
	unix.PTRACE_GETREGSET:                        "PTRACE_GETREGSET",
	unix.PTRACE_SETREGSET:                        "PTRACE_SETREGSET",
	unix.PTRACE_SEIZE:                            "PTRACE_SEIZE",
	unix.PTRACE_INTERRUPT:                        "PTRACE_INTERRUPT",
	unix.PTRACE_LISTEN:                           "PTRACE_LISTEN",
	unix.PTRACE_PEEKSIGINFO:                      "PTRACE_PEEKSIGINFO",
	unix.PTRACE_GETSIGMASK:                       "PTRACE_GETSIGMASK",
	unix.PTRACE_SETSIGMASK:                       "PTRACE_SETSIGMASK",
	unix.PTRACE_SECCOMP_GET_FILTER:               "PTRACE_SECCOMP_GET_FILTER",
	unix.PTRACE_SECCOMP_GET_METADATA:             "PTRACE_SECCOMP_GET_METADATA",
	unix.PTRACE_GET_SYSCALL_INFO:                 "PTRACE_GET_SYSCALL_INFO",
	unix.PTRACE_GET_RSEQ_CONFIGURATION:           "PTRACE_GET_RSEQ_CONFIGURATION",
	unix.PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG: "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG",
	unix.PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG: "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG",
	unix.PTRACE_SET_SYSCALL_INFO:                 "PTRACE_SET_SYSCALL_INFO",
}

// bpfCommands is enum bpf_cmd.
var bpfCommands = []string{
	"BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM",
	"BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_OBJ_PIN", "BPF_OBJ_GET", "BPF_PROG_ATTACH",
	"BPF_PROG_DETACH", "BPF_PROG_TEST_RUN", "BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID",
	"BPF_PROG_GET_FD_BY_ID", "BPF_MAP_GET_FD_BY_ID", "BPF_OBJ_GET_INFO_BY_FD", "BPF_PROG_QUERY",
	"BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD", "BPF_BTF_GET_FD_BY_ID", "BPF_TASK_FD_QUERY",
	"BPF_MAP_LOOKUP_AND_DELETE_ELEM", "BPF_MAP_FREEZE", "BPF_BTF_GET_NEXT_ID", "BPF_MAP_LOOKUP_BATCH",
	"BPF_MAP_LOOKUP_AND_DELETE_BATCH", "BPF_MAP_UPDATE_BATCH", "BPF_MAP_DELETE_BATCH",
	"BPF_LINK_CREATE", "BPF_LINK_UPDATE", "BPF_LINK_GET_FD_BY_ID", "BPF_LINK_GET_NEXT_ID",
	"BPF_ENABLE_STATS", "BPF_ITER_CREATE", "BPF_LINK_DETACH", "BPF_PROG_BIND_MAP",
	"BPF_TOKEN_CREATE", "BPF_PROG_STREAM_READ_BY_FD",
}

func bpfCommandName(cmd uint64) string {
	if cmd < uint64(len(bpfCommands)) {
		return bpfCommands[cmd]
	}
	return fmt.Sprintf("BPF_CMD_%d", cmd)
}

func ptraceRequestName(req uint64) string {
	if n, ok := ptraceRequests[req]; ok {
		return n
	}
	return fmt.Sprintf("PTRACE_%#x", req)
}
