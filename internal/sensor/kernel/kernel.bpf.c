//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The kernel's attack surface: namespaces (unshare, setns, clone with
 * CLONE_NEW*), mounts, pivot_root, ptrace, module loading, memfd_create,
 * execveat of a descriptor, bpf() and signals aimed at the agent (with
 * signals_all, signals aimed at anyone).
 *
 * One sys_exit tracepoint per syscall; arguments are read back from the
 * task's saved registers, which the syscall leaves as the caller set them, so
 * no enter/exit pair and no map are needed. execveat is the exception: it is
 * reported at sys_enter, since a successful exec never returns.
 *
 * clone, clone3, ptrace and the signal syscalls are frequent and mostly not
 * interesting: they peek at the kind filter without counting, check what
 * makes them interesting, and only then go through filter_kind/filter_pass,
 * so that a plain fork is neither sent nor counted as filtered.
 */
#include "lib/common.h"
#include "lib/output.h"
#include "lib/filter.h"
#include "lib/path.h"
#include "lib/task.h"
#include "lib/fd.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so that bpf2go can generate their Go mirrors. */
const struct kernel_event *unused_kernel_event __attribute__((unused));
const enum kernel_op *unused_kernel_op __attribute__((unused));

/* Report every ptrace request, not only those that take control of or write
 * to another process. */
const volatile bool ptrace_all = false;
/* Report signals sent to any process (KERNEL_SIGNAL), not only those aimed at
 * the agent (KERNEL_SIGNAL_AGENT). */
const volatile bool signals_all = false;
/* The inode number of the agent's pid namespace: a pid in a signal syscall
 * names the agent only when the caller is in that namespace. 0: unchecked. */
const volatile __u32 agent_pidns = 0;

#define X_CLONE_NEWTIME 0x00000080ULL
#define X_CLONE_NEW_MASK 0x7e020000ULL /* NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET */
#define X_CSIGNAL 0xffULL
#define X_AT_FDCWD -100
#define X_AT_EMPTY_PATH 0x1000
#define X_NSFS_MAGIC 0x6e736673
#define X_PIDFS_MAGIC 0x50494446
#define X_ANON_INODE_FS_MAGIC 0x09041934

#define KERNEL_DATA_OFF sizeof(struct kernel_event)
#define NS_NAME_MAX 64

/* Whether a kind is enabled, without counting a filtered record: for the
 * syscalls where most calls are no candidate for a record at all. */
static __always_inline bool kind_on(__u32 type)
{
	struct kind_filter *f = bpf_map_lookup_elem(&vigil_kinds, &type);
	return f && f->enabled;
}

/* The caller's registers as it entered the syscall. */
static __always_inline struct pt_regs *regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* x86-64 syscall arguments: di, si, dx, r10, r8, r9. */
#define ARG1(r) BPF_CORE_READ(r, di)
#define ARG2(r) BPF_CORE_READ(r, si)
#define ARG3(r) BPF_CORE_READ(r, dx)
#define ARG4(r) BPF_CORE_READ(r, r10)

/* The fixed part of a record, in scratch; strings follow at KERNEL_DATA_OFF. */
static __always_inline struct kernel_event *kev_init(struct scratch *s, __u32 op, long ret)
{
	struct kernel_event *e = (void *)s->buf;
	__builtin_memset(e, 0, sizeof(*e));
	task_info_fill(&e->task, bpf_get_current_task_btf());
	e->op = op;
	e->ret = ret;
	return e;
}

/* A NUL-terminated user string at off; its length with the NUL, or 0. */
static __always_inline __u16 put_user_str(struct scratch *s, __u32 off, const void *p)
{
	if (!p)
		return 0;
	long n = bpf_probe_read_user_str(&s->buf[off & SCRATCH_MASK], VIGIL_PATH_MAX, p);
	return n > 0 ? n : 0;
}

/*
 * The path of the file behind fd, as components leaf first (path.h). A
 * pseudo file that is in no directory (a memfd, an anonymous inode) walks to
 * nothing; then its dentry's own name is the one component ("memfd:x").
 */
static __always_inline __u16 put_file_path(struct scratch *s, __u32 off, struct file *f)
{
	if (!f)
		return 0;
	struct path p;
	bool trunc = false;
	BPF_CORE_READ_INTO(&p, f, f_path);
	__u32 n = path_write(&p, off & SCRATCH_MASK, &trunc);
	if (n == 0 && p.dentry != BPF_CORE_READ(p.mnt, mnt_root)) {
		const unsigned char *name = BPF_CORE_READ(p.dentry, d_name.name);
		long r = bpf_probe_read_kernel_str(&s->buf[off & SCRATCH_MASK], NAME_MAX + 1, name);
		n = r > 0 ? r : 0;
	}
	return n;
}

static __always_inline struct file *cur_fd_file(int fd)
{
	return fd_file(bpf_get_current_task_btf(), fd);
}

/* The process a pidfd refers to (its tgid), 0 when f is no pidfd. Since 6.9
 * pidfds live in pidfs, with the struct pid in the inode; before, they were
 * anonymous inodes named "[pidfd]" with the struct pid in private_data. */
static __always_inline __u32 pidfd_tgid(struct file *f)
{
	if (!f)
		return 0;
	unsigned long magic = BPF_CORE_READ(f, f_inode, i_sb, s_magic);
	struct pid *pid = NULL;
	if (magic == X_PIDFS_MAGIC) {
		pid = BPF_CORE_READ(f, f_inode, i_private);
	} else if (magic == X_ANON_INODE_FS_MAGIC) {
		char name[8] = {};
		bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		if (__builtin_memcmp(name, "[pidfd]", 8) != 0)
			return 0;
		pid = BPF_CORE_READ(f, private_data);
	}
	if (!pid)
		return 0;
	struct hlist_node *first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return 0;
	struct task_struct *t = (void *)first - bpf_core_field_offset(struct task_struct, pid_links);
	return BPF_CORE_READ(t, tgid);
}

/* Copy a finished record from scratch to the ring. */
static __always_inline void kev_send(struct kernel_event *e, __u32 size)
{
	size = size > SCRATCH_SIZE ? SCRATCH_SIZE : size;
	header_init(&e->hdr, EVENT_KERNEL, size);
	event_output(e, EVENT_KERNEL, size);
}

/* filter_kind + filter_pass, then a record in scratch to fill. */
static __always_inline struct kernel_event *kev_begin(struct scratch **sp, __u32 op, long ret)
{
	struct kind_filter *f = filter_kind(EVENT_KERNEL);
	if (!f || !filter_pass(f, EVENT_KERNEL, ret))
		return NULL;
	struct scratch *s = scratch_get();
	if (!s)
		return NULL;
	*sp = s;
	return kev_init(s, op, ret);
}

/* A record whose strings are up to three user strings. */
static __always_inline int kev_strings(__u32 op, long ret, __u64 flags, __u64 arg,
				       const void *s1, const void *s2, const void *s3)
{
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, op, ret);
	if (!e)
		return 0;
	__u32 off = KERNEL_DATA_OFF;
	e->flags = flags;
	e->arg = arg;
	e->str1_len = put_user_str(s, off, s1);
	off += e->str1_len;
	e->str2_len = put_user_str(s, off, s2);
	off += e->str2_len;
	e->str3_len = put_user_str(s, off, s3);
	off += e->str3_len;
	kev_send(e, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int vigil_unshare(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = regs();
	return kev_strings(KERNEL_UNSHARE, ctx->ret, ARG1(r), 0, NULL, NULL, NULL);
}

/* str1: for a namespace file, "<type>:[<inode>]" as readlink of
 * /proc/<pid>/ns/<type> shows it (its dentry is in no directory, so there is
 * no path to walk); for a pidfd, target_pid is its process. */
SEC("tracepoint/syscalls/sys_exit_setns")
int vigil_setns(struct trace_event_raw_sys_exit *ctx)
{
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_SETNS, ctx->ret);
	if (!e)
		return 0;
	struct pt_regs *r = regs();
	int fd = ARG1(r);
	e->arg = (__u32)ARG2(r);
	struct file *f = cur_fd_file(fd);
	if (f && BPF_CORE_READ(f, f_inode, i_sb, s_magic) == X_NSFS_MAGIC) {
		struct ns_common *ns = BPF_CORE_READ(f, f_inode, i_private);
		__u64 data[2] = {(__u64)BPF_CORE_READ(ns, ops, name), BPF_CORE_READ(ns, inum)};
		static const char fmt[] = "%s:[%u]";
		long n = bpf_snprintf((char *)&s->buf[KERNEL_DATA_OFF], NS_NAME_MAX, fmt, data, sizeof(data));
		if (n > 0)
			e->str1_len = n > NS_NAME_MAX ? NS_NAME_MAX : n;
	} else {
		e->target_pid = pidfd_tgid(f);
	}
	kev_send(e, KERNEL_DATA_OFF + e->str1_len);
	return 0;
}

static __always_inline int clone_ns(long ret, __u64 flags)
{
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_CLONE_NS, ret);
	if (!e)
		return 0;
	e->flags = flags;
	e->target_pid = ret > 0 ? ret : 0;
	kev_send(e, KERNEL_DATA_OFF);
	return 0;
}

/* Reported in the parent (the child returns 0), only with CLONE_NEW*. In
 * clone's flags the low byte is the exit signal; it is masked off. */
SEC("tracepoint/syscalls/sys_exit_clone")
int vigil_clone(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	if (ret == 0 || !kind_on(EVENT_KERNEL))
		return 0;
	__u64 flags = ARG1(regs());
	if (!(flags & X_CLONE_NEW_MASK))
		return 0;
	return clone_ns(ret, flags & ~X_CSIGNAL);
}

SEC("tracepoint/syscalls/sys_exit_clone3")
int vigil_clone3(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	if (ret == 0 || !kind_on(EVENT_KERNEL))
		return 0;
	struct clone_args *ua = (void *)ARG1(regs());
	__u64 flags = 0;
	if (bpf_probe_read_user(&flags, sizeof(flags), &ua->flags) < 0)
		return 0;
	if (!(flags & (X_CLONE_NEW_MASK | X_CLONE_NEWTIME)))
		return 0;
	return clone_ns(ret, flags);
}

SEC("tracepoint/syscalls/sys_exit_mount")
int vigil_mount(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = regs();
	return kev_strings(KERNEL_MOUNT, ctx->ret, ARG4(r), 0, (void *)ARG1(r), (void *)ARG2(r), (void *)ARG3(r));
}

SEC("tracepoint/syscalls/sys_exit_umount")
int vigil_umount(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = regs();
	return kev_strings(KERNEL_UMOUNT, ctx->ret, (__u32)ARG2(r), 0, (void *)ARG1(r), NULL, NULL);
}

SEC("tracepoint/syscalls/sys_exit_pivot_root")
int vigil_pivot(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = regs();
	return kev_strings(KERNEL_PIVOT_ROOT, ctx->ret, 0, 0, (void *)ARG1(r), (void *)ARG2(r), NULL);
}

/* Requests that take control of a process or write to it. */
static __always_inline bool ptrace_interesting(__u64 req)
{
	if (req < 64)
		return (1ULL << req) & (1ULL << 0 |	 /* TRACEME */
					1ULL << 4 | 1ULL << 5 | 1ULL << 6 | /* POKETEXT, POKEDATA, POKEUSR */
					1ULL << 13 | 1ULL << 15 | /* SETREGS, SETFPREGS */
					1ULL << 16 |		  /* ATTACH */
					1ULL << 19 |		  /* SETFPXREGS */
					1ULL << 26 | 1ULL << 30); /* SET_THREAD_AREA, ARCH_PRCTL */
	/* SETSIGINFO, SETREGSET, SEIZE, SETSIGMASK, SET_SYSCALL_USER_DISPATCH_CONFIG,
	 * SET_SYSCALL_INFO */
	return req == 0x4203 || req == 0x4205 || req == 0x4206 || req == 0x420b || req == 0x4210 ||
	       req == 0x4212;
}

SEC("tracepoint/syscalls/sys_exit_ptrace")
int vigil_ptrace(struct trace_event_raw_sys_exit *ctx)
{
	if (!kind_on(EVENT_KERNEL))
		return 0;
	struct pt_regs *r = regs();
	__u64 req = ARG1(r);
	if (!ptrace_all && !ptrace_interesting(req))
		return 0;
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_PTRACE, ctx->ret);
	if (!e)
		return 0;
	e->arg = req;
	e->target_pid = ARG2(r);
	kev_send(e, KERNEL_DATA_OFF);
	return 0;
}

/* init_module(image, len, params): arg len, str2 params. */
SEC("tracepoint/syscalls/sys_exit_init_module")
int vigil_init_mod(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = regs();
	return kev_strings(KERNEL_MODULE_LOAD, ctx->ret, 0, ARG2(r), NULL, (void *)ARG3(r), NULL);
}

/* finit_module(fd, params, flags): arg fd, str1 the file's path, str2 params. */
SEC("tracepoint/syscalls/sys_exit_finit_module")
int vigil_finit_mod(struct trace_event_raw_sys_exit *ctx)
{
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_MODULE_LOAD, ctx->ret);
	if (!e)
		return 0;
	struct pt_regs *r = regs();
	int fd = ARG1(r);
	__u32 off = KERNEL_DATA_OFF;
	e->arg = (__u32)fd;
	e->flags = (__u32)ARG3(r);
	e->str1_len = put_file_path(s, off, cur_fd_file(fd));
	off += e->str1_len;
	e->str2_len = put_user_str(s, off, (void *)ARG2(r));
	off += e->str2_len;
	kev_send(e, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_memfd_create")
int vigil_memfd(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = regs();
	return kev_strings(KERNEL_MEMFD_CREATE, ctx->ret, (__u32)ARG2(r), 0, (void *)ARG1(r), NULL, NULL);
}

/* execveat(fd, pathname, argv, envp, flags) of a descriptor: at sys_enter,
 * ret 0. arg fd, str1 the fd's path when the fd is used (pathname empty or
 * relative), str2 pathname as passed. */
SEC("tracepoint/syscalls/sys_enter_execveat")
int vigil_execveat(struct trace_event_raw_sys_enter *ctx)
{
	int fd = ctx->args[0];
	__u32 flags = ctx->args[4];
	if (fd == X_AT_FDCWD && !(flags & X_AT_EMPTY_PATH))
		return 0;
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_EXECVEAT, 0);
	if (!e)
		return 0;
	__u32 off = KERNEL_DATA_OFF;
	e->arg = (__u32)fd;
	e->flags = flags;
	/* The fd is used unless pathname is absolute. */
	const char *pathname = (const char *)ctx->args[1];
	char c = 0;
	if (pathname)
		bpf_probe_read_user(&c, 1, pathname);
	if (c != '/')
		e->str1_len = put_file_path(s, off, cur_fd_file(fd));
	off += e->str1_len;
	e->str2_len = put_user_str(s, off, pathname);
	off += e->str2_len;
	kev_send(e, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int vigil_bpf(struct trace_event_raw_sys_exit *ctx)
{
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_BPF, ctx->ret);
	if (!e)
		return 0;
	e->arg = (__u32)ARG1(regs());
	kev_send(e, KERNEL_DATA_OFF);
	return 0;
}

/* Whether pid, as the caller wrote it, names the agent: same number, and the
 * caller sees the agent's pid namespace. */
static __always_inline bool is_agent(__s32 pid)
{
	if (vigil_tgid == 0 || pid != (__s32)vigil_tgid)
		return false;
	if (agent_pidns == 0)
		return true;
	struct task_struct *t = bpf_get_current_task_btf();
	struct pid *p = BPF_CORE_READ(t, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up;
	if (bpf_core_read(&up, sizeof(up), &p->numbers[level & 31]))
		return false;
	return BPF_CORE_READ(up.ns, ns.inum) == agent_pidns;
}

/* A signal record: KERNEL_SIGNAL_AGENT when aimed at the agent, otherwise
 * KERNEL_SIGNAL (only sent with signals_all). target is the pid as the caller
 * wrote it: for kill(2), 0 and negative values name process groups. */
static __always_inline int signal_report(long ret, bool agent, __s32 target, __u32 sig)
{
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, agent ? KERNEL_SIGNAL_AGENT : KERNEL_SIGNAL, ret);
	if (!e)
		return 0;
	e->arg = sig;
	e->target_pid = target;
	kev_send(e, KERNEL_DATA_OFF);
	return 0;
}

/* kill(pid, sig), tkill(tid, sig), rt_sigqueueinfo(tgid, sig, info): the
 * first argument is the target. For tkill only the agent's main thread, whose
 * tid is its pid, is recognised as the agent. */
#define SIGNAL_FIRST(prog, sc)                                            \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                          \
	int prog(struct trace_event_raw_sys_exit *ctx)                    \
	{                                                                 \
		if (!kind_on(EVENT_KERNEL))                               \
			return 0;                                         \
		struct pt_regs *r = regs();                               \
		__s32 pid = ARG1(r);                                      \
		bool agent = is_agent(pid);                               \
		if (!agent && !signals_all)                               \
			return 0;                                         \
		return signal_report(ctx->ret, agent, pid, ARG2(r));      \
	}

SIGNAL_FIRST(vigil_kill, kill)
SIGNAL_FIRST(vigil_tkill, tkill)
SIGNAL_FIRST(vigil_sigq, rt_sigqueueinfo)

/* tgkill(tgid, tid, sig), rt_tgsigqueueinfo(tgid, tid, sig, info). */
#define SIGNAL_TG(prog, sc)                                               \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                          \
	int prog(struct trace_event_raw_sys_exit *ctx)                    \
	{                                                                 \
		if (!kind_on(EVENT_KERNEL))                               \
			return 0;                                         \
		struct pt_regs *r = regs();                               \
		__s32 pid = ARG1(r);                                      \
		bool agent = is_agent(pid);                               \
		if (!agent && !signals_all)                               \
			return 0;                                         \
		return signal_report(ctx->ret, agent, pid, ARG3(r));      \
	}

SIGNAL_TG(vigil_tgkill, tgkill)
SIGNAL_TG(vigil_tgsigq, rt_tgsigqueueinfo)

/* pidfd_send_signal(pidfd, sig, info, flags): the pidfd's process (0 when the
 * descriptor is no pidfd: the call failed with EBADF). */
SEC("tracepoint/syscalls/sys_exit_pidfd_send_signal")
int vigil_pidfd_sig(struct trace_event_raw_sys_exit *ctx)
{
	if (!kind_on(EVENT_KERNEL) || (vigil_tgid == 0 && !signals_all))
		return 0;
	struct pt_regs *r = regs();
	__u32 tgid = pidfd_tgid(cur_fd_file(ARG1(r)));
	bool agent = vigil_tgid != 0 && tgid == vigil_tgid;
	if (!agent && !signals_all)
		return 0;
	return signal_report(ctx->ret, agent, tgid, ARG2(r));
}

/* pidfd_open(pid, flags) of the agent by another process (the agent's own
 * calls are never reported): the first step to taking its descriptors with
 * pidfd_getfd (which also takes ptrace rights over it), or to signalling it
 * through the descriptor. Reported at exit, with the result. */
SEC("tracepoint/syscalls/sys_exit_pidfd_open")
int vigil_pidfd_opn(struct trace_event_raw_sys_exit *ctx)
{
	if (!kind_on(EVENT_KERNEL) || vigil_tgid == 0)
		return 0;
	struct pt_regs *r = regs();
	__s32 pid = ARG1(r);
	if (!is_agent(pid))
		return 0;
	struct scratch *s;
	struct kernel_event *e = kev_begin(&s, KERNEL_PIDFD_AGENT, ctx->ret);
	if (!e)
		return 0;
	e->flags = ARG2(r);
	e->target_pid = pid;
	kev_send(e, KERNEL_DATA_OFF);
	return 0;
}
