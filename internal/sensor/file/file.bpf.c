//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * File operations: opens with write intent (or of watched files), creation,
 * unlink, rmdir, rename, chmod, chown, link, symlink, truncate and mkdir.
 *
 * One tracepoint per syscall, at sys_exit only: the arguments are read back
 * from the registers the task saved on entry (bpf_task_pt_regs), so there is
 * no sys_enter program and no per-thread map to stash them in. Opens are the
 * hottest syscall on a server; an open that no rule needs costs a filter
 * lookup, a register read and, for a read-open with files watched, two hash
 * lookups on the inodes of the file and its directory.
 *
 * Each syscall's program is small: it applies the cheap filters, decides what
 * it can from an open file, and leaves the request in scratch space for
 * vigil_file_rpt, which it tail-calls to decide on path strings and build the
 * record. That program is verified once instead of once per syscall.
 *
 * What an operation acted on: for opens and fd operations the kernel's own
 * path, from the installed file; for operations named by a path string the
 * file may be gone by sys_exit (unlink), so the record carries the directory
 * the string starts from and the string, and user space joins them.
 */
#include "lib/common.h"
#include "lib/fd.h"
#include "lib/file_kernel.h"
#include "lib/file_interest.h"
#include "lib/filter.h"
#include "lib/output.h"
#include "lib/path.h"
#include "lib/task.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so that bpf2go can generate their Go mirrors. */
const struct file_event *unused_file_event __attribute__((unused));
const struct lex_key *unused_lex_key __attribute__((unused));
const struct lex_val *unused_lex_val __attribute__((unused));
const enum file_op *unused_file_op __attribute__((unused));
const enum file_flag *unused_file_flag __attribute__((unused));

/*
 * file->f_mode bit of a file the open created. A #define in the kernel, not in
 * BTF: 0x100000 from 4.19 through 6.18 (measured on 6.18: set on an
 * O_CREAT open that created the file, clear on one that found it); user space
 * may override it for a kernel that moves it.
 */
const volatile __u32 fmode_created = 0x100000;

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define AT_EMPTY_PATH 0x1000
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_TMPFILE 020000000
#define OPEN_WRITE (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)
#define MODE_BITS 07777	   /* permission bits with setuid, setgid and sticky */
#define MODE_SETID 06000   /* S_ISUID | S_ISGID */
#define NONE_ID ((__u32)-1) /* chown's "leave unchanged", and "unknown" elsewhere */

/* The syscall's arguments, as the task saved them on entry (x86_64 ABI). */
#define REGS() ((struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()))
#define ARG1(r) ((r)->di)
#define ARG2(r) ((r)->si)
#define ARG3(r) ((r)->dx)
#define ARG4(r) ((r)->r10)
#define ARG5(r) ((r)->r8)

/*
 * What one path argument names. Pointers are kept as integers: global
 * functions, which the verifier checks once rather than once per call, may
 * only take structs of scalars. They are read through probe reads or KCAST.
 */
struct fop {
	__u64 file;   /* struct file *: the file itself, when the kernel has it open for us */
	__u64 mnt;    /* otherwise the directory raw starts from: a struct path, */
	__u64 dentry; /* mnt then dentry */
	__u64 raw;    /* const char __user *: the caller's string, 0 when there is none */
};

#define FOP_BASE(o) ((struct path *)&(o)->mnt)

struct file_req {
	struct fop o[2];
	__s64 ret;
	__u32 op;
	__u32 flags; /* enum file_flag */
	__u32 open_flags;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u8 interest; /* enum file_interest of the operation's class */
	__u8 read;     /* a read-open: the read class, not the write class */
	__u8 text0;    /* o[0] is text only (a symlink's content): o[1] decides */
	__u8 verdict;  /* enum verdict, when the syscall's program decided */
	__u8 _pad[4];
};

/* The request sits in scratch space, between the record and the lexical work. */
#define REQ_OFF (LEX_WORK_OFF - sizeof(struct file_req) - 64)

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} vigil_file_tail SEC(".maps"); /* [0]: vigil_file_rpt, put there by user space */

static __always_inline bool raw_empty(const char *raw, char *first)
{
	*first = 0;
	bpf_probe_read_user(first, 1, raw);
	return *first == 0;
}

/*
 * Point o at what raw names relative to dfd. With empty_ok (AT_EMPTY_PATH) an
 * empty string names the file open at dfd itself.
 */
static __always_inline void operand_path(struct fop *o, struct task_struct *task, int dfd,
					 const char *raw, bool empty_ok)
{
	struct path base = {};
	char first;

	o->raw = (__u64)raw;
	if (raw_empty(raw, &first) && empty_ok && dfd >= 0) {
		o->file = (__u64)fd_file(task, dfd);
		return;
	}
	if (first == '/') {
		base = BPF_CORE_READ(task, fs, root);
	} else if (dfd == AT_FDCWD) {
		base = BPF_CORE_READ(task, fs, pwd);
	} else {
		struct file *dir = fd_file(task, dfd);
		if (dir)
			base = BPF_CORE_READ(dir, f_path);
	}
	o->mnt = (__u64)base.mnt;
	o->dentry = (__u64)base.dentry;
}

/*
 * The verdict on one operand. A global function: the verifier checks it once,
 * where an inlined copy per operand would multiply their branches.
 */
__noinline int file_decide(struct fop *o, __u32 read, __u32 interest)
{
	struct scratch *s = scratch_get();
	if (!o || !s)
		return V_DROP;
	if (o->file)
		return decide_file((struct file *)o->file, read, interest);
	return decide_path(s, (struct dentry *)o->dentry, (struct vfsmount *)o->mnt, (const char *)o->raw, read,
			   interest);
}

/* Append an operand's path and raw string to the record at off. */
static __always_inline __u32 operand_write(struct scratch *s, const struct fop *o, __u32 off, __u16 *path_len,
					   __u16 *raw_len, __u32 *flags, __u32 resolved)
{
	bool trunc = false;
	__u32 n = 0;

	struct file *file = (struct file *)o->file; /* a plain load: struct fop is not the kernel's */
	if (file) {
		struct path p = BPF_CORE_READ(file, f_path);
		n = path_write(&p, off & SCRATCH_MASK, &trunc);
		*flags |= resolved;
	} else if (o->dentry) {
		n = path_write(FOP_BASE(o), off & SCRATCH_MASK, &trunc);
	}
	*path_len = n;
	off += n;
	if (o->raw) {
		long m = bpf_probe_read_user_str(&s->buf[off & SCRATCH_MASK], VIGIL_PATH_MAX, (const char *)o->raw);
		if (m > 0) {
			*raw_len = m;
			off += m;
			if (m == VIGIL_PATH_MAX)
				trunc = true;
		}
	}
	if (trunc)
		*flags |= FILE_PATH_TRUNCATED;
	return off;
}

/* Decide what the syscall's program left undecided, and send the record if
 * the interest set wants it. */
SEC("tracepoint")
int vigil_file_rpt(void *ctx)
{
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	struct file_req *r = (void *)&s->buf[REQ_OFF];

	int v = r->verdict;
	if (v == V_UNDECIDED) {
		v = V_DROP;
		if (!r->text0)
			v = file_decide(&r->o[0], r->read, r->interest);
		/* rename, link: either name may be the one that matters */
		if (v != V_WATCHED && r->o[1].raw) {
			int v2 = file_decide(&r->o[1], r->read, r->interest);
			if (v2 > v)
				v = v2;
		}
	}
	if (v == V_DROP) {
		stats_filtered(EVENT_FILE);
		return 0;
	}

	struct file_event *e = (void *)s->buf;
	__builtin_memset(e, 0, sizeof(*e));
	task_info_fill(&e->task, bpf_get_current_task_btf());
	e->op = r->op;
	e->ret = r->ret;
	e->flags = r->flags | (v == V_WATCHED ? FILE_WATCHED : 0);
	e->open_flags = r->open_flags;
	e->mode = r->mode;
	e->uid = r->uid;
	e->gid = r->gid;

	struct file *file = (struct file *)r->o[0].file;
	if (file) {
		struct inode *inode = BPF_CORE_READ(file, f_inode);
		e->ino = BPF_CORE_READ(inode, i_ino);
		e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
		if (r->op == FILE_OPEN) {
			if (BPF_CORE_READ(file, f_mode) & fmode_created)
				e->op = FILE_CREATE;
			e->mode = BPF_CORE_READ(inode, i_mode);
		}
		if (r->op != FILE_CHOWN) {
			e->uid = BPF_CORE_READ(inode, i_uid.val);
			e->gid = BPF_CORE_READ(inode, i_gid.val);
		}
	}

	__u32 off = sizeof(*e);
	off = operand_write(s, &r->o[0], off, &e->path_len, &e->raw_len, &e->flags, FILE_PATH_RESOLVED);
	off = operand_write(s, &r->o[1], off, &e->path2_len, &e->raw2_len, &e->flags, FILE_PATH2_RESOLVED);
	if (off > SCRATCH_SIZE)
		off = SCRATCH_SIZE;
	header_init(&e->hdr, EVENT_FILE, off);
	event_output(e, EVENT_FILE, off);
	return 0;
}

/* A fresh request in scratch space, or NULL. */
static __always_inline struct file_req *req_new(long ret, __u32 op, __u8 interest)
{
	struct scratch *s = scratch_get();
	if (!s)
		return NULL;
	struct file_req *r = (void *)&s->buf[REQ_OFF];
	__builtin_memset(r, 0, sizeof(*r));
	r->ret = ret;
	r->op = op;
	r->uid = NONE_ID;
	r->gid = NONE_ID;
	r->interest = interest;
	r->verdict = V_UNDECIDED;
	return r;
}

/* Hand the request to vigil_file_rpt. */
static __always_inline int req_send(void *ctx)
{
	bpf_tail_call(ctx, &vigil_file_tail, 0);
	stats_count(EVENT_FILE, false); /* not reached unless user space left the slot empty */
	return 0;
}

/*
 * The checks every operation passes first, cheapest first: the kind (before
 * anything else, in SYSCALL_EXIT), the class's interest, then outcome and
 * scope. Returns the interest, or INTEREST_NONE when the operation is dropped
 * (and counted).
 */
static __always_inline __u8 file_gate(const struct kind_filter *f, long ret, bool read)
{
	__u8 interest = read ? f->file_reads : f->file_writes;
	if (interest == INTEREST_NONE) {
		stats_filtered(EVENT_FILE);
		return INTEREST_NONE;
	}
	if (!filter_pass(f, EVENT_FILE, ret))
		return INTEREST_NONE;
	return interest;
}

static __always_inline int open_exit(struct trace_event_raw_sys_exit *ctx, const struct kind_filter *f, int dfd,
				     const char *name, __u32 flags, __u32 mode)
{
	bool read = !(flags & OPEN_WRITE);
	long ret = ctx->ret;
	__u8 interest = file_gate(f, ret, read);
	if (interest == INTEREST_NONE)
		return 0;

	struct task_struct *task = bpf_get_current_task_btf();
	struct file *file = NULL;
	enum verdict v = V_UNDECIDED;
	if (ret >= 0) {
		/* The common case, decided here: most opens end in V_DROP. */
		file = fd_file_fast(ret);
		if (!file) {
			stats_filtered(EVENT_FILE); /* closed by another thread already */
			return 0;
		}
		v = decide_file(file, read, interest);
		if (v == V_DROP) {
			stats_filtered(EVENT_FILE);
			return 0;
		}
	}

	struct file_req *r = req_new(ret, FILE_OPEN, interest);
	if (!r)
		return 0;
	r->verdict = v;
	r->read = read;
	r->flags = read ? 0 : FILE_WRITE;
	r->open_flags = flags;
	r->mode = flags & (O_CREAT | O_TMPFILE) ? mode & MODE_BITS : 0;
	if (file) {
		r->o[0].file = (__u64)file;
		r->o[0].raw = (__u64)name;
	} else {
		operand_path(&r->o[0], task, dfd, name, false);
	}
	return req_send(ctx);
}

/* One program per syscall: vigil_<name> on sys_exit_<name>. body is an
 * expression of ctx, the kind's filter f and the saved registers regs. A
 * disabled kind costs one array lookup. */
#define SYSCALL_EXIT(name, body)                                 \
	SEC("tracepoint/syscalls/sys_exit_" #name)               \
	int vigil_##name(struct trace_event_raw_sys_exit *ctx)   \
	{                                                        \
		struct kind_filter *f = filter_kind(EVENT_FILE); \
		if (!f)                                          \
			return 0;                                \
		struct pt_regs *regs = REGS();                   \
		return body;                                     \
	}

#define STR(x) ((const char *)(x))

SYSCALL_EXIT(openat, open_exit(ctx, f, ARG1(regs), STR(ARG2(regs)), ARG3(regs), ARG4(regs)))
SYSCALL_EXIT(open, open_exit(ctx, f, AT_FDCWD, STR(ARG1(regs)), ARG2(regs), ARG3(regs)))
SYSCALL_EXIT(creat, open_exit(ctx, f, AT_FDCWD, STR(ARG1(regs)), O_CREAT | O_WRONLY | O_TRUNC, ARG2(regs)))

static __always_inline int openat2_exit(struct trace_event_raw_sys_exit *ctx, const struct kind_filter *f,
					struct pt_regs *regs)
{
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ARG3(regs));
	return open_exit(ctx, f, ARG1(regs), STR(ARG2(regs)), how.flags, how.mode);
}

SYSCALL_EXIT(openat2, openat2_exit(ctx, f, regs))

/*
 * A chmod that sets the setuid or setgid bit is reported wherever the file is,
 * as if watched: the watch lists cannot say where an attacker will make a
 * setuid shell (/tmp, /dev/shm), and such a chmod is rare enough to cost
 * nothing. Ignore marks do not apply to it either; the file kind's interest
 * (none) and outcome filters still do.
 */
static __always_inline bool setid_chmod(__u32 op, __u32 mode)
{
	return op == FILE_CHMOD && (mode & MODE_SETID);
}

/*
 * Every other operation is a write. One path (dfd, name), an optional second
 * one, or an fd.
 */
static __always_inline int path_exit(struct trace_event_raw_sys_exit *ctx, const struct kind_filter *f, __u32 op,
				     int dfd, const char *name, bool empty_ok, int dfd2, const char *name2, __u32 mode,
				     __u32 uid, __u32 gid)
{
	long ret = ctx->ret;
	__u8 interest = file_gate(f, ret, false);
	if (interest == INTEREST_NONE)
		return 0;

	struct file_req *r = req_new(ret, op, interest);
	if (!r)
		return 0;
	if (setid_chmod(op, mode))
		r->verdict = V_WATCHED;
	struct task_struct *task = bpf_get_current_task_btf();
	r->mode = mode;
	r->uid = uid;
	r->gid = gid;
	operand_path(&r->o[0], task, dfd, name, empty_ok);
	if (name2)
		operand_path(&r->o[1], task, dfd2, name2, false);
	return req_send(ctx);
}

static __always_inline int fd_exit(struct trace_event_raw_sys_exit *ctx, const struct kind_filter *f, __u32 op, int fd,
				   __u32 mode, __u32 uid, __u32 gid)
{
	long ret = ctx->ret;
	__u8 interest = file_gate(f, ret, false);
	if (interest == INTEREST_NONE)
		return 0;

	struct file *file = fd_file_fast(fd);
	if (!file) {
		stats_filtered(EVENT_FILE); /* a bad fd: nothing happened to any file */
		return 0;
	}
	enum verdict v = setid_chmod(op, mode) ? V_WATCHED : decide_file(file, false, interest);
	if (v == V_DROP) {
		stats_filtered(EVENT_FILE);
		return 0;
	}
	struct file_req *r = req_new(ret, op, interest);
	if (!r)
		return 0;
	r->verdict = v;
	r->mode = mode;
	r->uid = uid;
	r->gid = gid;
	r->o[0].file = (__u64)file;
	return req_send(ctx);
}

#define P(x) STR(ARG##x(regs))
#define NOID NONE_ID, NONE_ID

SYSCALL_EXIT(unlink, path_exit(ctx, f, FILE_UNLINK, AT_FDCWD, P(1), false, 0, NULL, 0, NOID))
SYSCALL_EXIT(unlinkat, path_exit(ctx, f, ARG3(regs) & AT_REMOVEDIR ? FILE_RMDIR : FILE_UNLINK, ARG1(regs), P(2), false,
				 0, NULL, 0, NOID))
SYSCALL_EXIT(rmdir, path_exit(ctx, f, FILE_RMDIR, AT_FDCWD, P(1), false, 0, NULL, 0, NOID))
SYSCALL_EXIT(mkdir, path_exit(ctx, f, FILE_MKDIR, AT_FDCWD, P(1), false, 0, NULL, ARG2(regs) & MODE_BITS, NOID))
SYSCALL_EXIT(mkdirat, path_exit(ctx, f, FILE_MKDIR, ARG1(regs), P(2), false, 0, NULL, ARG3(regs) & MODE_BITS, NOID))
SYSCALL_EXIT(rename, path_exit(ctx, f, FILE_RENAME, AT_FDCWD, P(1), false, AT_FDCWD, P(2), 0, NOID))
SYSCALL_EXIT(renameat, path_exit(ctx, f, FILE_RENAME, ARG1(regs), P(2), false, ARG3(regs), P(4), 0, NOID))
SYSCALL_EXIT(renameat2, path_exit(ctx, f, FILE_RENAME, ARG1(regs), P(2), false, ARG3(regs), P(4), 0, NOID))
SYSCALL_EXIT(link, path_exit(ctx, f, FILE_LINK, AT_FDCWD, P(1), false, AT_FDCWD, P(2), 0, NOID))
SYSCALL_EXIT(linkat, path_exit(ctx, f, FILE_LINK, ARG1(regs), P(2), ARG5(regs) & AT_EMPTY_PATH, ARG3(regs), P(4), 0,
			       NOID))
SYSCALL_EXIT(chmod, path_exit(ctx, f, FILE_CHMOD, AT_FDCWD, P(1), false, 0, NULL, ARG2(regs) & MODE_BITS, NOID))
SYSCALL_EXIT(fchmodat, path_exit(ctx, f, FILE_CHMOD, ARG1(regs), P(2), false, 0, NULL, ARG3(regs) & MODE_BITS, NOID))
SYSCALL_EXIT(fchmodat2, path_exit(ctx, f, FILE_CHMOD, ARG1(regs), P(2), ARG4(regs) & AT_EMPTY_PATH, 0, NULL,
				  ARG3(regs) & MODE_BITS, NOID))
SYSCALL_EXIT(fchmod, fd_exit(ctx, f, FILE_CHMOD, ARG1(regs), ARG2(regs) & MODE_BITS, NOID))
SYSCALL_EXIT(chown, path_exit(ctx, f, FILE_CHOWN, AT_FDCWD, P(1), false, 0, NULL, 0, ARG2(regs), ARG3(regs)))
SYSCALL_EXIT(lchown, path_exit(ctx, f, FILE_CHOWN, AT_FDCWD, P(1), false, 0, NULL, 0, ARG2(regs), ARG3(regs)))
SYSCALL_EXIT(fchownat, path_exit(ctx, f, FILE_CHOWN, ARG1(regs), P(2), ARG5(regs) & AT_EMPTY_PATH, 0, NULL, 0,
				 ARG3(regs), ARG4(regs)))
SYSCALL_EXIT(fchown, fd_exit(ctx, f, FILE_CHOWN, ARG1(regs), 0, ARG2(regs), ARG3(regs)))
SYSCALL_EXIT(truncate, path_exit(ctx, f, FILE_TRUNCATE, AT_FDCWD, P(1), false, 0, NULL, 0, NOID))
SYSCALL_EXIT(ftruncate, fd_exit(ctx, f, FILE_TRUNCATE, ARG1(regs), 0, NOID))

/* symlink: raw is the link's content, not a path anything starts from; the
 * link itself is the second operand. */
static __always_inline int symlink_exit(struct trace_event_raw_sys_exit *ctx, const struct kind_filter *f,
					const char *target, int dfd, const char *name)
{
	long ret = ctx->ret;
	__u8 interest = file_gate(f, ret, false);
	if (interest == INTEREST_NONE)
		return 0;

	struct file_req *r = req_new(ret, FILE_SYMLINK, interest);
	if (!r)
		return 0;
	r->o[0].raw = (__u64)target;
	r->text0 = true;
	operand_path(&r->o[1], bpf_get_current_task_btf(), dfd, name, false);
	return req_send(ctx);
}

SYSCALL_EXIT(symlink, symlink_exit(ctx, f, P(1), AT_FDCWD, P(2)))
SYSCALL_EXIT(symlinkat, symlink_exit(ctx, f, P(1), ARG2(regs), P(3)))
