//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Process lifecycle: exec, fork (new processes, not threads) and exit (the
 * last thread of a process). Built on tp_btf, which hands us typed pointers to
 * the task and the binprm (shared/KERNEL.md: no kprobes or fentry here).
 */
#include "lib/common.h"
#include "lib/fd.h"
#include "lib/output.h"
#include "lib/path.h"
#include "lib/task.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so that bpf2go can generate their Go mirrors. */
const struct exec_event *unused_exec_event __attribute__((unused));
const struct fork_event *unused_fork_event __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const struct kstats *unused_kstats __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));
const enum exec_flag *unused_exec_flag __attribute__((unused));
const struct exec_kill_key *unused_exec_kill_key __attribute__((unused));
const enum exec_kill_mark *unused_exec_kill_mark __attribute__((unused));

/* Offsets in scratch of each variable-length part of an exec record. Each part
 * is bounded, and every offset is masked before use so the verifier can see
 * that each copy stays inside the scratch buffer. */
#define EXEC_DATA_OFF sizeof(struct exec_event)

/*
 * Kill at exec. A rule with response kill on exec events whose condition is
 * a set of executables and directories (rules.Plan.ExecKill) is compiled by
 * user space into vigil_exec_kill: the file's (device, inode) marked
 * KILL_FILE, directories marked KILL_TREE for everything below them, and
 * allowlisted programs marked KILL_ALLOW. A SIGKILL sent here lands before
 * the new program's first instruction (shared/KERNEL.md). exec_kill_on is 0
 * while the map is empty, so that exec pays one load for the feature.
 */
enum exec_kill_mark {
	KILL_FILE = 1,
	KILL_TREE = 2,
	KILL_ALLOW = 4,
};

struct exec_kill_key {
	__u64 ino;
	__u32 dev; /* kernel encoding, as the superblock's s_dev */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exec_kill_key);
	__type(value, __u32);
} vigil_exec_kill SEC(".maps");

volatile __u32 exec_kill_on;
/* Vigil's own process, never killed. */
const volatile __u32 agent_tgid;

#define KILL_WALK_MAX 64

struct kill_walk {
	struct dentry *dentry;
	struct mount *mnt;
	bool hit;
};

static __always_inline __u32 kill_mark(struct dentry *d)
{
	struct exec_kill_key k = {
		.ino = BPF_CORE_READ(d, d_inode, i_ino),
		.dev = BPF_CORE_READ(d, d_sb, s_dev),
	};
	__u32 *m = bpf_map_lookup_elem(&vigil_exec_kill, &k);
	return m ? *m : 0;
}

/* One step up from the file's directory towards the root, crossing mounts. */
static long kill_walk_step(__u64 i, void *arg)
{
	struct kill_walk *w = arg;
	struct dentry *d = w->dentry;
	struct mount *mnt = w->mnt;
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);

	if (d == mnt_root) {
		struct mount *mparent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mparent)
			return 1; /* the root */
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mparent;
		return 0;
	}
	if (kill_mark(d) & KILL_TREE) {
		w->hit = true;
		return 1;
	}
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (parent == d)
		return 1;
	w->dentry = parent;
	return 0;
}

static __always_inline bool exec_kill_match(struct task_struct *task, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (tgid == 1 || tgid == agent_tgid)
		return false;
	struct dentry *d = BPF_CORE_READ(bprm, file, f_path.dentry);
	__u32 m = kill_mark(d);
	if (m & KILL_ALLOW)
		return false;
	if (m & KILL_FILE)
		return true;
	struct vfsmount *vfsmnt = BPF_CORE_READ(bprm, file, f_path.mnt);
	struct kill_walk w = {
		.dentry = BPF_CORE_READ(d, d_parent),
		.mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt),
	};
	bpf_loop(KILL_WALK_MAX, kill_walk_step, &w, 0);
	return w.hit;
}

static __always_inline __u32 clamp_u32(__u64 v, __u32 max)
{
	return v > max ? max : v;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	/* First, so that the kill does not depend on room in the ring. */
	bool killed = false;
	if (exec_kill_on && exec_kill_match(task, bprm)) {
		bpf_send_signal(9 /* SIGKILL */);
		killed = true;
	}

	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	struct exec_event *e = (void *)s->buf;
	bool trunc = false;
	__u32 off = EXEC_DATA_OFF;

	__builtin_memset(e, 0, sizeof(*e));
	task_info_fill(&e->task, task);
	if (killed)
		e->flags |= EXEC_KILLED;

	/* The file the kernel executed: for a script, its interpreter. */
	struct path exe_path = BPF_CORE_READ(bprm, file, f_path);
	e->path_len = path_write(&exe_path, off, &trunc);
	if (trunc)
		e->flags |= EXEC_PATH_TRUNCATED;
	off += e->path_len;

	struct path pwd = BPF_CORE_READ(task, fs, pwd);
	e->cwd_len = path_write(&pwd, off & SCRATCH_MASK, &trunc);
	if (trunc)
		e->flags |= EXEC_CWD_TRUNCATED;
	off += e->cwd_len;

	/* What makes an exec suspicious on its face: credentials it changed, a
	 * file with no name left (deleted, or a memfd), and a socket for stdio. */
	if (BPF_CORE_READ_BITFIELD_PROBED(bprm, secureexec))
		e->flags |= EXEC_SECUREEXEC;
	if (BPF_CORE_READ(bprm, file, f_inode, __i_nlink) == 0)
		e->flags |= EXEC_FILE_UNLINKED;
	if (file_is_socket(fd_file(task, 0)))
		e->flags |= EXEC_STDIN_SOCKET;
	if (file_is_socket(fd_file(task, 1)))
		e->flags |= EXEC_STDOUT_SOCKET;
	if (file_is_socket(fd_file(task, 2)))
		e->flags |= EXEC_STDERR_SOCKET;

	/* The caller's string. binfmt_script points interp at the interpreter
	 * named by the #! line; otherwise interp and filename are one string. */
	const char *filename = BPF_CORE_READ(bprm, filename);
	if (BPF_CORE_READ(bprm, interp) != filename)
		e->flags |= EXEC_INTERPRETED;
	off &= SCRATCH_MASK;
	long n = bpf_probe_read_kernel_str(&s->buf[off], VIGIL_PATH_MAX, filename);
	if (n > 0) {
		e->filename_len = n;
		if (n == VIGIL_PATH_MAX)
			e->flags |= EXEC_FILENAME_TRUNCATED;
		off += n;
	}

	/* argv, as the new program sees it on its stack. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(mm, arg_end);
	e->argc = BPF_CORE_READ(bprm, argc);
	e->args_size = arg_end > arg_start ? arg_end - arg_start : 0;
	__u32 args_len = clamp_u32(e->args_size, VIGIL_ARGS_MAX);
	if (args_len < e->args_size)
		e->flags |= EXEC_ARGS_TRUNCATED;
	off &= SCRATCH_MASK; /* the data before args is at most three paths */
	if (args_len > 0 && bpf_probe_read_user(&s->buf[off], args_len, (void *)arg_start) == 0) {
		e->args_len = args_len;
		off += args_len;
	}

	header_init(&e->hdr, EVENT_EXEC, off);
	event_output(e, EVENT_EXEC, clamp_u32(off, SCRATCH_SIZE));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Threads share their process's identity; only new processes matter. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;

	struct fork_event *e = event_reserve(EVENT_FORK, sizeof(*e));
	if (!e)
		return 0;
	task_info_fill(&e->task, child);
	event_submit(e, EVENT_FORK);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_exit, struct task_struct *task)
{
	/* Report the process once its last thread is gone. Two threads exiting
	 * together may both see live == 0; user space keeps the first. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;

	struct exit_event *e = event_reserve(EVENT_EXIT, sizeof(*e));
	if (!e)
		return 0;
	task_info_fill(&e->task, task);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	event_submit(e, EVENT_EXIT);
	return 0;
}
