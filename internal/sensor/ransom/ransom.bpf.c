//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The ransomware sensor: what processes do to the regular files they write.
 *
 * An open for writing of a regular file (sys_exit_open*) starts tracking the
 * (process, fd) pair in vigil_rw_fds. The first write of at least
 * SAMPLE_MIN bytes to a tracked fd (sys_enter_write, pwrite64, writev,
 * pwritev) copies up to sample_max bytes from the caller's buffer and judges
 * them here: Shannon entropy of the bytes, and whether they start with the
 * magic of a known format (compressed, archive, media, executable, OpenPGP).
 * The close (sys_enter_close) sends one record per written file. Unlinks and
 * renames are sent for processes that wrote a file in the window.
 *
 * The kernel also keeps a score per process over a window: pre-existing files
 * rewritten with high-entropy data of no known format, plus the smaller of
 * (files created with such data, files unlinked). At kill_score it sends
 * SIGKILL, from the syscall that crossed it: user space would hear of it a
 * poll later, by which time a fast encryptor has done dozens more files.
 *
 * Decoys: writing to a decoy file (by inode), or unlinking or renaming one
 * (by the hash of its name), is a detection on its own.
 *
 * Cost for everyone else: every write, pwrite, writev and close pays a
 * tracepoint and one hash lookup that misses; an open for writing of a
 * regular file pays one insert. Reads pay nothing.
 */
#include "lib/common.h"
#include "lib/fd.h"
#include "lib/file_kernel.h"
#include "lib/filter.h"
#include "lib/output.h"
#include "lib/path.h"
#include "lib/task.h"
#include "clogc.h"
#include "magic.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const struct write_event *unused_write_event __attribute__((unused));
const enum write_op *unused_write_op __attribute__((unused));
const enum write_flag *unused_write_flag __attribute__((unused));

#define SAMPLE_MAX 512 /* the most bytes judged; clogc covers counts up to this */
#define SAMPLE_MIN 256 /* fewer bytes say too little about entropy */

/* Set by user space before load. */
const volatile __u32 sample_max = SAMPLE_MAX;
const volatile __u32 entropy_min = 7000;	       /* thousandths of a bit per byte */
const volatile __u64 window_ns = 600ULL * 1000000000; /* the score's window */
const volatile __u32 kill_score = 0;		       /* 0: never kill for the score */
const volatile bool decoy_kill = false;		       /* kill on a decoy */
const volatile bool decoy_names = false;	       /* hash names of unlinks and renames */
const volatile __u64 only_cgroup = 0;		       /* track only this cgroup v2 id; 0: every process */

#define AT_FDCWD -100
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define S_IFREG 0100000
#define SIGKILL 9
#define NAME_BYTES 256 /* of a path string read to hash its last component */

struct wfd_key {
	__u32 tgid;
	__s32 fd;
};

struct wfd {
	__u64 file; /* struct file *: another file at the fd means ours was closed unseen */
	__u64 bytes;
	__u32 writes;
	__u32 flags; /* enum write_flag: CREATED, TRUNCATED, SAMPLED, HIGH_ENTROPY, OFFSET */
	__u32 entropy;
	__u16 sample_len;
	__u8 magic;
	__u8 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct wfd_key);
	__type(value, struct wfd);
} vigil_rw_fds SEC(".maps");

struct wproc {
	__u64 start_ns; /* group leader's start: a reused tgid starts over */
	__u64 window_start;
	__u32 enc_rewrites; /* pre-existing files rewritten with high-entropy data */
	__u32 enc_creates;  /* files created with high-entropy data */
	__u32 unlinks;
	__u32 killed;
	__u64 last_unlink; /* name hash of the last file unlinked: made again, it was replaced (tar x) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct wproc);
} vigil_rw_procs SEC(".maps");

/* Decoy files, by inode (writes) and by the hash of their name (unlink, rename). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct inode_key);
	__type(value, __u8);
} vigil_decoy_inodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} vigil_decoy_names SEC(".maps");

/* Scratch layout: the record at 0 (paths included, under 17 KiB), then the
 * sample and its histogram. */
#define SAMPLE_OFF 20480
#define HIST_OFF (SAMPLE_OFF + SAMPLE_MAX)
#define NAME_OFF (HIST_OFF + 2 * 256)

#define REGS() ((struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()))
#define ARG1(r) ((r)->di)
#define ARG2(r) ((r)->si)
#define ARG3(r) ((r)->dx)
#define ARG4(r) ((r)->r10)

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u32 score_of(const struct wproc *p)
{
	__u32 pair = p->enc_creates < p->unlinks ? p->enc_creates : p->unlinks;
	return p->enc_rewrites + pair;
}

/* The process's state, made if create, its window restarted when over. */
static __always_inline struct wproc *proc_get(__u32 tgid, bool create)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 start = BPF_CORE_READ(task, group_leader, start_boottime);
	__u64 now = bpf_ktime_get_boot_ns();
	struct wproc *p = bpf_map_lookup_elem(&vigil_rw_procs, &tgid);
	if (p && p->start_ns == start) {
		if (now - p->window_start > window_ns) {
			p->window_start = now;
			p->enc_rewrites = p->enc_creates = p->unlinks = 0;
		}
		return p;
	}
	if (!create)
		return NULL;
	struct wproc fresh = {.start_ns = start, .window_start = now};
	bpf_map_update_elem(&vigil_rw_procs, &tgid, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&vigil_rw_procs, &tgid);
}

/* Kill the current process if its score reached kill_score. */
static __always_inline bool maybe_kill(struct wproc *p)
{
	if (!kill_score || p->killed || score_of(p) < kill_score)
		return false;
	p->killed = 1;
	bpf_send_signal(SIGKILL);
	return true;
}

/* A record in scratch: the fixed part filled, paths to follow. */
static __always_inline struct write_event *record_new(struct scratch *s, __u32 op, long ret, __u32 flags)
{
	struct write_event *e = (void *)s->buf;
	__builtin_memset(e, 0, sizeof(*e));
	task_info_fill(&e->task, bpf_get_current_task_btf());
	e->op = op;
	e->ret = ret;
	e->flags = flags;
	return e;
}

static __always_inline void record_send(struct write_event *e, __u32 off)
{
	if (off > SCRATCH_SIZE)
		off = SCRATCH_SIZE;
	header_init(&e->hdr, EVENT_WRITE, off);
	event_output(e, EVENT_WRITE, off);
}

/* Append a resolved file's path at off. */
static __always_inline __u32 file_path_write(struct write_event *e, struct file *file, __u32 off)
{
	bool trunc = false;
	struct path p = BPF_CORE_READ(file, f_path);
	__u32 n = path_write(&p, off & SCRATCH_MASK, &trunc);
	e->path_len = n;
	e->flags |= WRITE_PATH_RESOLVED | (trunc ? WRITE_PATH_TRUNCATED : 0);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	return off + n;
}

/* Append the directory raw starts from (dirfd, cwd or root) and raw itself. */
static __always_inline __u32 operand_write(struct scratch *s, int dfd, const char *raw, __u32 off, __u16 *path_len,
					   __u16 *raw_len, __u32 *flags)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct path base = {};
	char first = 0;
	bool trunc = false;

	bpf_probe_read_user(&first, 1, raw);
	if (first == '/') {
		base = BPF_CORE_READ(task, fs, root);
	} else if (dfd == AT_FDCWD) {
		base = BPF_CORE_READ(task, fs, pwd);
	} else {
		struct file *dir = fd_file(task, dfd);
		if (dir)
			base = BPF_CORE_READ(dir, f_path);
	}
	__u32 n = 0;
	if (base.dentry)
		n = path_write(&base, off & SCRATCH_MASK, &trunc);
	*path_len = n;
	off += n;
	long m = bpf_probe_read_user_str(&s->buf[off & SCRATCH_MASK], VIGIL_PATH_MAX, raw);
	if (m > 0) {
		*raw_len = m;
		off += m;
		if (m == VIGIL_PATH_MAX)
			trunc = true;
	}
	if (trunc)
		*flags |= WRITE_PATH_TRUNCATED;
	return off;
}

#include "names.h"

/* ---- opens ---- */

static __always_inline bool out_of_scope(__u32 tgid)
{
	return tgid == vigil_tgid || (only_cgroup && bpf_get_current_cgroup_id() != only_cgroup);
}

static __always_inline int open_exit(long ret, __u32 flags)
{
	if (ret < 0 || !(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)))
		return 0;
	__u32 tgid = current_tgid();
	if (out_of_scope(tgid))
		return 0;
	struct file *file = fd_file_fast(ret);
	if (!file)
		return 0;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & 0170000) != S_IFREG)
		return 0;
	/* opened read-only after all (O_CREAT of an existing file, read mode) */
	if (!(BPF_CORE_READ(file, f_mode) & 0x2 /* FMODE_WRITE */))
		return 0;

	struct inode_key k = {.ino = BPF_CORE_READ(inode, i_ino), .dev = BPF_CORE_READ(inode, i_sb, s_dev)};
	if (bpf_map_lookup_elem(&vigil_decoy_inodes, &k)) {
		struct scratch *s = scratch_get();
		if (!s)
			return 0;
		__u32 fl = WRITE_DECOY;
		if (decoy_kill) {
			struct wproc *p = proc_get(tgid, true);
			if (p)
				p->killed = 1;
			bpf_send_signal(SIGKILL); /* lands before the first write */
			fl |= WRITE_KILLED;
		}
		struct write_event *e = record_new(s, WRITE_DECOY_OPEN, ret, fl);
		record_send(e, file_path_write(e, file, sizeof(*e)));
		return 0;
	}

	struct wfd_key key = {.tgid = tgid, .fd = ret};
	struct wfd v = {.file = (__u64)file};
	if (BPF_CORE_READ(file, f_mode) & 0x100000 /* FMODE_CREATED */) {
		v.flags |= WRITE_CREATED;
		/* unlink X, create X: a replacement (tar x over a tree), not a loss */
		struct wproc *p = proc_get(tgid, false);
		if (p && p->last_unlink && p->unlinks &&
		    dentry_name_hash(BPF_CORE_READ(file, f_path.dentry)) == p->last_unlink) {
			p->unlinks--;
			p->last_unlink = 0;
		}
	}
	if (flags & O_TRUNC)
		v.flags |= WRITE_TRUNCATED;
	bpf_map_update_elem(&vigil_rw_fds, &key, &v, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int vigil_rw_openat(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, ARG3(REGS()));
}

SEC("tracepoint/syscalls/sys_exit_open")
int vigil_rw_open(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, ARG2(REGS()));
}

SEC("tracepoint/syscalls/sys_exit_creat")
int vigil_rw_creat(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(ctx->ret, O_CREAT | O_WRONLY | O_TRUNC);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int vigil_rw_openat2(struct trace_event_raw_sys_exit *ctx)
{
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ARG3(REGS()));
	return open_exit(ctx->ret, how.flags);
}

/* ---- writes ---- */

#include "judge.h"

/*
 * A write to fd of count bytes from buf; at_start: the write lands at offset 0.
 * Everything but the lookup runs only for tracked fds.
 */
static __always_inline int on_write(int fd, const void *buf, __u64 count, int at_start)
{
	__u32 tgid = current_tgid();
	struct wfd_key key = {.tgid = tgid, .fd = fd};
	struct wfd *w = bpf_map_lookup_elem(&vigil_rw_fds, &key);
	if (!w)
		return 0;
	if (fd_file_fast(fd) != (struct file *)w->file) {
		bpf_map_delete_elem(&vigil_rw_fds, &key); /* closed unseen (dup2, close_range) */
		return 0;
	}
	w->bytes += count;
	if (w->writes++ == 0)
		proc_get(tgid, true); /* a writer now: its unlinks and renames are reported */
	if (w->flags & WRITE_SAMPLED || count < SAMPLE_MIN)
		return 0;

	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	__u32 n = count < sample_max ? count : sample_max;
	if (n > SAMPLE_MAX)
		n = SAMPLE_MAX;
	if (bpf_probe_read_user(&s->buf[SAMPLE_OFF], n & (SAMPLE_MAX * 2 - 1), buf) < 0)
		return 0;
	w->flags |= WRITE_SAMPLED;
	w->sample_len = n;
	w->entropy = sample_entropy(n);
	if (at_start < 0) {
		struct file *f = (struct file *)w->file;
		at_start = BPF_CORE_READ(f, f_pos) == 0;
	}
	if (at_start)
		w->magic = sample_magic(s);
	else
		w->flags |= WRITE_OFFSET;
	if (w->entropy < entropy_min || w->magic)
		return 0;
	w->flags |= WRITE_HIGH_ENTROPY;

	struct wproc *p = proc_get(tgid, true);
	if (!p)
		return 0;
	if (w->flags & WRITE_CREATED)
		p->enc_creates++;
	else
		p->enc_rewrites++;
	if (!maybe_kill(p))
		return 0;
	/* The process dies with the file open: say so now, there will be no close. */
	struct write_event *e = record_new(s, WRITE_CLOSE, 0, w->flags | WRITE_KILLED);
	e->bytes = w->bytes;
	e->writes = w->writes;
	e->entropy = w->entropy;
	e->sample_len = w->sample_len;
	e->magic = w->magic;
	e->score = score_of(p);
	record_send(e, file_path_write(e, (struct file *)w->file, sizeof(*e)));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int vigil_rw_write(struct trace_event_raw_sys_enter *ctx)
{
	return on_write(ctx->args[0], (const void *)ctx->args[1], ctx->args[2], -1);
}

SEC("tracepoint/syscalls/sys_enter_pwrite64")
int vigil_rw_pwrite(struct trace_event_raw_sys_enter *ctx)
{
	return on_write(ctx->args[0], (const void *)ctx->args[1], ctx->args[2], ctx->args[3] == 0);
}

/* writev, pwritev: the first iovec stands for the call. */
static __always_inline int on_writev(int fd, const struct iovec *iov, long at_start)
{
	struct iovec v = {};
	if (bpf_probe_read_user(&v, sizeof(v), iov) < 0)
		return 0;
	return on_write(fd, v.iov_base, v.iov_len, at_start);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int vigil_rw_writev(struct trace_event_raw_sys_enter *ctx)
{
	return on_writev(ctx->args[0], (const struct iovec *)ctx->args[1], -1);
}

SEC("tracepoint/syscalls/sys_enter_pwritev")
int vigil_rw_pwritev(struct trace_event_raw_sys_enter *ctx)
{
	return on_writev(ctx->args[0], (const struct iovec *)ctx->args[1], ctx->args[3] == 0);
}

/* ---- dup: a shell's "> file" opens, dup2s onto 1 and closes the original ---- */

static __always_inline int dup_exit(long ret, int oldfd)
{
	if (ret < 0 || ret == oldfd)
		return 0;
	__u32 tgid = current_tgid();
	struct wfd_key key = {.tgid = tgid, .fd = oldfd};
	struct wfd *w = bpf_map_lookup_elem(&vigil_rw_fds, &key);
	if (!w)
		return 0;
	struct wfd copy = *w;
	key.fd = ret;
	bpf_map_update_elem(&vigil_rw_fds, &key, &copy, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_dup2")
int vigil_rw_dup2(struct trace_event_raw_sys_exit *ctx)
{
	return dup_exit(ctx->ret, ARG1(REGS()));
}

SEC("tracepoint/syscalls/sys_exit_dup3")
int vigil_rw_dup3(struct trace_event_raw_sys_exit *ctx)
{
	return dup_exit(ctx->ret, ARG1(REGS()));
}

SEC("tracepoint/syscalls/sys_exit_dup")
int vigil_rw_dup(struct trace_event_raw_sys_exit *ctx)
{
	return dup_exit(ctx->ret, ARG1(REGS()));
}

/* ---- close ---- */

SEC("tracepoint/syscalls/sys_enter_close")
int vigil_rw_close(struct trace_event_raw_sys_enter *ctx)
{
	int fd = ctx->args[0];
	struct wfd_key key = {.tgid = current_tgid(), .fd = fd};
	struct wfd *w = bpf_map_lookup_elem(&vigil_rw_fds, &key);
	if (!w)
		return 0;
	struct file *file = (struct file *)w->file;
	if (fd_file_fast(fd) != file || w->writes == 0) {
		bpf_map_delete_elem(&vigil_rw_fds, &key);
		return 0;
	}
	struct scratch *s = scratch_get();
	if (!s) {
		bpf_map_delete_elem(&vigil_rw_fds, &key);
		return 0;
	}
	struct write_event *e = record_new(s, WRITE_CLOSE, 0, w->flags);
	e->bytes = w->bytes;
	e->writes = w->writes;
	e->entropy = w->entropy;
	e->sample_len = w->sample_len;
	e->magic = w->magic;
	struct wproc *p = proc_get(key.tgid, false);
	if (p)
		e->score = score_of(p);
	bpf_map_delete_elem(&vigil_rw_fds, &key);
	record_send(e, file_path_write(e, file, sizeof(*e)));
	return 0;
}

/* ---- unlink, rename ---- */

static __always_inline int remove_exit(long ret, __u32 op, int dfd, const char *raw, int dfd2, const char *raw2)
{
	if (ret < 0)
		return 0;
	__u32 tgid = current_tgid();
	if (out_of_scope(tgid))
		return 0;
	__u64 h = decoy_names || op == WRITE_UNLINK ? user_name_hash(raw) : 0;
	bool decoy = decoy_names && h && bpf_map_lookup_elem(&vigil_decoy_names, &h);
	struct wproc *p = proc_get(tgid, decoy);
	if (!p)
		return 0; /* wrote nothing in the window: not sent */
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	__u32 flags = decoy ? WRITE_DECOY : 0;
	if (op == WRITE_UNLINK) {
		p->unlinks++;
		p->last_unlink = h;
	}
	if (decoy && decoy_kill && !p->killed) {
		p->killed = 1;
		bpf_send_signal(SIGKILL);
		flags |= WRITE_KILLED;
	} else if (maybe_kill(p)) {
		flags |= WRITE_KILLED;
	}
	struct write_event *e = record_new(s, op, ret, flags);
	e->score = score_of(p);
	__u32 off = sizeof(*e);
	off = operand_write(s, dfd, raw, off, &e->path_len, &e->raw_len, &e->flags);
	if (raw2)
		off = operand_write(s, dfd2, raw2, off, &e->path2_len, &e->raw2_len, &e->flags);
	record_send(e, off);
	return 0;
}

#define AT_REMOVEDIR 0x200
#define STR(x) ((const char *)(x))

SEC("tracepoint/syscalls/sys_exit_unlink")
int vigil_rw_unlink(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = REGS();
	return remove_exit(ctx->ret, WRITE_UNLINK, AT_FDCWD, STR(ARG1(r)), 0, NULL);
}

SEC("tracepoint/syscalls/sys_exit_unlinkat")
int vigil_rw_unlinkat(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = REGS();
	if (ARG3(r) & AT_REMOVEDIR)
		return 0;
	return remove_exit(ctx->ret, WRITE_UNLINK, ARG1(r), STR(ARG2(r)), 0, NULL);
}

SEC("tracepoint/syscalls/sys_exit_rename")
int vigil_rw_rename(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = REGS();
	return remove_exit(ctx->ret, WRITE_RENAME, AT_FDCWD, STR(ARG1(r)), AT_FDCWD, STR(ARG2(r)));
}

SEC("tracepoint/syscalls/sys_exit_renameat")
int vigil_rw_renameat(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = REGS();
	return remove_exit(ctx->ret, WRITE_RENAME, ARG1(r), STR(ARG2(r)), ARG3(r), STR(ARG4(r)));
}

SEC("tracepoint/syscalls/sys_exit_renameat2")
int vigil_rw_renameat2(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *r = REGS();
	return remove_exit(ctx->ret, WRITE_RENAME, ARG1(r), STR(ARG2(r)), ARG3(r), STR(ARG4(r)));
}
