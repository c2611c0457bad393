/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The file interest set: which file operations are worth a record.
 *
 * Two views of the same set, both filled by user space (internal/sensor/file):
 *
 *   vigil_inodes (filter.h)  marks by device and inode. Exact, immune to
 *                            symlinks and bind mounts, but only usable when
 *                            the kernel holds a dentry: an open file, or the
 *                            directory a relative path starts from.
 *   vigil_file_lex           the same marks by absolute path, in an LPM trie,
 *                            for the operations named by a path string that
 *                            no dentry reaches at sys_exit (unlink, rename,
 *                            chmod ... of "/etc/cron.d/x" or "etc/cron.d/x").
 *                            Each watched path P has an entry "P\0" (the file
 *                            itself) and, for a directory, "P/" (below it);
 *                            the longest matching entry is the nearest mark.
 *
 * For writes the nearest mark carrying WATCH_WRITE or IGNORE decides; for
 * reads only the file and its directory are looked at (events.h).
 */
#pragma once

#include "common.h"
#include "file_kernel.h"
#include "filter.h"

#define INTEREST_WALK_MAX 16 /* directory levels looked at above a file */
#define LEX_MAX 256	     /* bytes of a path the lexical set can match */
#define LEX_LOOKUPS 4	     /* shorter entries tried when the longest does not decide */

struct lex_key {
	__u32 prefixlen; /* bits */
	__u8 data[LEX_MAX];
};

struct lex_val {
	__u8 marks; /* enum inode_mark bits */
	__u8 dir;   /* the entry is "P/": a directory prefix */
	__u16 len;  /* bytes of the entry */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__type(key, struct lex_key);
	__type(value, struct lex_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vigil_file_lex SEC(".maps");

/*
 * The loops' state lives in the scratch map, not on the stack. Before 6.7 the
 * verifier checks a bpf_loop callback once, with the state the caller passed:
 * a stack struct initialised with constants makes every branch that depends
 * on a later iteration's state look dead, and the verifier removes it (fixed
 * upstream by "verify callbacks as if they are called unknown number of
 * times"). A load from a map value is always an unknown number to the
 * verifier, so each branch is checked and kept. Pointers are kept as numbers
 * and typed again where they are followed (file_kernel.h).
 */
struct interest_walk {
	__u64 d;	/* struct dentry * */
	__u64 mnt;	/* struct mount * */
	__u8 want;	/* inode_mark bits looked for, 0: none */
	__u8 marks;	/* nearest marks & want, 0 when none */
	__u8 depth;	/* names collected, leaf first */
	__u8 complete;	/* reached the root of the mount tree */
	__u8 collect;	/* collect directory names in lex_work.names */
};

struct lex_scan {
	__u32 len;	  /* bytes before the NUL, once compacted */
	__u32 wpos;	  /* where the next byte goes: "." and "//" are dropped in place */
	__u32 last_slash; /* offset of the last '/' */
	__u32 comp;	  /* bytes of the current component */
	__u32 dots;	  /* of which dots */
	__u8 unclean;	  /* a ".." component: not lexically comparable */
};

struct lex_spell {
	__u32 off;
	__u8 failed;
};

/*
 * Work space in the scratch buffer, above the largest record (four paths of
 * VIGIL_PATH_MAX after the fixed part, under 17 KiB). Starts like struct
 * lex_key, so that it is the key of vigil_file_lex lookups.
 */
struct lex_work {
	__u32 prefixlen;
	__u8 data[2 * LEX_MAX]; /* room for a copy of up to LEX_MAX at any offset below LEX_MAX */
	const unsigned char *names[INTEREST_WALK_MAX];
	struct interest_walk walk;
	struct lex_scan scan;
	struct lex_spell spell;
};

#define LEX_WORK_OFF (SCRATCH_SIZE - sizeof(struct lex_work) - 64)

static __always_inline struct lex_work *lex_work_get(struct scratch *s)
{
	return (void *)&s->buf[LEX_WORK_OFF];
}

/* What the loops get on the stack (bpf_loop wants a stack pointer): the map
 * value that holds their state. */
struct loop_ctx {
	struct lex_work *lw;
};

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
	/* container_of with a relocated offset: struct mount moves between kernels */
	return (void *)m - bpf_core_field_offset(struct mount, mnt);
}

static __always_inline __u8 key_marks(const struct inode_key *k)
{
	if (!inode_maybe_marked(k))
		return 0;
	__u8 *m = bpf_map_lookup_elem(&vigil_inodes, k);
	return m ? *m : 0;
}

static long interest_walk_step(__u64 i, void *arg)
{
	struct lex_work *lw = ((struct loop_ctx *)arg)->lw;
	struct interest_walk *w = &lw->walk;
	struct dentry *d = (struct dentry *)w->d;
	struct mount *mnt = (struct mount *)w->mnt;

	if (w->want && !w->marks) {
		struct inode_key k = {};
		k_dentry_key(d, &k);
		__u8 m = key_marks(&k) & w->want;
		if (m) {
			w->marks = m;
			if (!w->collect)
				return 1;
		}
	}
	/* Up to the mountpoint while d is the root of its mount. The
	 * mountpoint's own (covered) inode is not looked at: user space marks
	 * what stat(2) sees, the mounted root. */
	for (int j = 0; j < 4; j++) {
		if (d != k_mnt_root(mnt))
			break;
		struct mount *parent = k_mnt_parent(mnt);
		if (parent == mnt) {
			w->complete = 1;
			return 1;
		}
		d = k_mountpoint(mnt);
		mnt = parent;
	}
	struct dentry *parent = k_parent(d);
	if (parent == d || !parent)
		return 1; /* disconnected, or mounts stacked deeper than we follow */
	if (w->collect)
		lw->names[i & (INTEREST_WALK_MAX - 1)] = k_name(d);
	w->depth = i + 1;
	w->d = (__u64)parent;
	w->mnt = (__u64)mnt;
	return 0;
}

/*
 * Walk up from dentry d on mount vfsmnt at most INTEREST_WALK_MAX levels:
 * record in lw->walk.marks the nearest inode marks that intersect want (0:
 * none wanted), and with collect, the names of the directories passed (leaf
 * first) in lw->names, so that lex_build can spell the path forwards.
 */
static __always_inline struct interest_walk *interest_walk(struct dentry *d, struct vfsmount *vfsmnt, __u8 want,
							   bool collect, struct lex_work *lw)
{
	struct interest_walk *w = &lw->walk;
	struct loop_ctx c = {.lw = lw};

	w->d = (__u64)d;
	w->mnt = (__u64)real_mount(vfsmnt);
	w->want = want;
	w->marks = 0;
	w->depth = 0;
	w->complete = 0;
	w->collect = collect;
	bpf_loop(INTEREST_WALK_MAX, interest_walk_step, &c, 0);
	return w;
}

/*
 * One byte of the key: drop "." components and repeated slashes, which do not
 * change where a path leads, and flag "..", which may (through a symlink, the
 * lexical parent is not the real one).
 */
static long lex_scan_step(__u64 i, void *arg)
{
	struct lex_work *lw = ((struct loop_ctx *)arg)->lw;
	struct lex_scan *sc = &lw->scan;
	__u8 *data = lw->data;
	__u8 c = data[i & (LEX_MAX - 1)];
	__u32 w = sc->wpos;

	if (c != '/' && c != 0) {
		data[w & (LEX_MAX - 1)] = c;
		sc->wpos = w + 1;
		sc->comp++;
		if (c == '.')
			sc->dots++;
		return 0;
	}
	if (sc->comp == 1 && sc->dots == 1)
		w--; /* "a/./b", "a/.": the slash before it stays */
	else if (sc->comp == 2 && sc->dots == 2)
		sc->unclean = 1;
	sc->comp = sc->dots = 0;
	if (c == 0) {
		data[w & (LEX_MAX - 1)] = 0;
		sc->len = w;
		sc->wpos = w;
		return 1;
	}
	if (w == 0 || data[(w - 1) & (LEX_MAX - 1)] != '/') {
		data[w & (LEX_MAX - 1)] = '/';
		sc->last_slash = w;
		w++;
	}
	sc->wpos = w;
	return 0;
}

/* Append "/name" for the names collected, root first. */
static long lex_spell_step(__u64 i, void *arg)
{
	struct lex_work *lw = ((struct loop_ctx *)arg)->lw;
	struct lex_spell *sp = &lw->spell;
	__u32 off = sp->off;
	__u32 idx = (lw->walk.depth - 1 - i) & (INTEREST_WALK_MAX - 1);

	lw->data[off & (LEX_MAX - 1)] = '/';
	if (++off >= LEX_MAX)
		goto fail;
	long n = bpf_probe_read_kernel_str(&lw->data[off & (LEX_MAX - 1)], LEX_MAX, lw->names[idx]);
	if (n <= 0)
		goto fail;
	off += n - 1;
	if (off >= LEX_MAX)
		goto fail;
	sp->off = off;
	return 0;
fail:
	sp->failed = 1;
	return 1;
}

enum lex_result {
	LEX_OK,
	LEX_TOO_LONG, /* or too deep: not comparable, but nothing suspicious */
	LEX_UNCLEAN,  /* ".." components: the path could lead anywhere */
};

/*
 * Spell the absolute path <names collected by the walk>/<raw> into lw->data
 * as an LPM key; *base_len is the length of the directory part. lw->scan
 * describes the result.
 */
static __always_inline enum lex_result lex_build(struct lex_work *lw, const char *raw, __u32 *base_len)
{
	struct loop_ctx c = {.lw = lw};
	struct lex_scan *sc = &lw->scan;
	__u32 off = 0;
	long n;

	if (!lw->walk.complete)
		return LEX_TOO_LONG;
	lw->spell.off = 0;
	lw->spell.failed = 0;
	bpf_loop(lw->walk.depth, lex_spell_step, &c, 0);
	if (lw->spell.failed)
		return LEX_TOO_LONG;
	off = lw->spell.off;
	*base_len = off;
	/* An absolute raw path starts at the root collected above (the
	 * task's root); a relative one inside the directory. */
	char first = 0;
	bpf_probe_read_user(&first, 1, raw);
	if (first != '/') {
		lw->data[off & (LEX_MAX - 1)] = '/';
		if (++off >= LEX_MAX)
			return LEX_TOO_LONG;
	}
	n = bpf_probe_read_user_str(&lw->data[off & (LEX_MAX - 1)], LEX_MAX, raw);
	if (n <= 0)
		return LEX_TOO_LONG;
	if (off + n > LEX_MAX)
		return LEX_TOO_LONG;

	sc->len = 0;
	sc->wpos = 0;
	sc->last_slash = 0;
	sc->comp = 0;
	sc->dots = 0;
	sc->unclean = 0;
	bpf_loop(LEX_MAX, lex_scan_step, &c, 0);
	lw->prefixlen = (sc->len + 1) * 8; /* the NUL is part of the key: "P\0" entries match exactly */
	return sc->unclean ? LEX_UNCLEAN : LEX_OK;
}

/* The nearest lexical marks intersecting want for a write; *len is the length
 * of the entry that decided. */
static __always_inline __u8 lex_write_marks(struct lex_work *lw, __u8 want, __u32 *len)
{
	for (int i = 0; i < LEX_LOOKUPS; i++) {
		struct lex_val *v = bpf_map_lookup_elem(&vigil_file_lex, lw);
		if (!v)
			return 0;
		if (v->marks & want) {
			*len = v->len;
			return v->marks & want;
		}
		if (v->len <= 1)
			return 0;
		lw->prefixlen = (v->len - 1) * 8;
	}
	return 0;
}

/* INODE_WATCH_READ when the lexical set watches the file or its directory. */
static __always_inline __u8 lex_read_marks(struct lex_work *lw, const struct lex_scan *sc)
{
	for (int i = 0; i < LEX_LOOKUPS; i++) {
		struct lex_val *v = bpf_map_lookup_elem(&vigil_file_lex, lw);
		if (!v)
			return 0;
		/* a directory entry further up than the file's own directory */
		if (v->dir && sc->last_slash != (__u32)v->len - 1)
			return 0;
		if (v->marks & INODE_WATCH_READ)
			return INODE_WATCH_READ;
		if (v->len <= 1)
			return 0;
		lw->prefixlen = (v->len - 1) * 8;
	}
	return 0;
}

/* What to do with an operation. */
enum verdict {
	V_DROP = 0,
	V_REPORT = 1,
	V_WATCHED = 2,
	V_UNDECIDED = 3,
};

static __always_inline enum verdict verdict_of(__u8 marks, __u8 interest)
{
	if (marks & INODE_WATCH_WRITE)
		return V_WATCHED;
	if (marks & INODE_IGNORE)
		return V_DROP;
	return interest == INTEREST_ALL ? V_REPORT : V_DROP;
}

/* A file the task has open: reads look at the file and its directory, writes
 * at the nearest marked directory above it. */
static __always_inline enum verdict decide_file(struct file *file, bool read, __u8 interest)
{
	struct k_file kf = {};
	k_file_read(file, &kf);

	/* the directory is on the same superblock (a mount root is its own parent) */
	if (read && (key_marks(&kf.key) & INODE_WATCH_READ || key_marks(&kf.parent) & INODE_WATCH_READ))
		return V_WATCHED;
	if (read && interest != INTEREST_ALL)
		return V_DROP;
	struct scratch *s = scratch_get();
	if (!s)
		return V_REPORT; /* cannot happen: a per-CPU array's only entry */
	struct interest_walk *w = interest_walk(kf.dentry, kf.mnt,
						read ? INODE_IGNORE : INODE_WATCH_WRITE | INODE_IGNORE, false,
						lex_work_get(s));
	return verdict_of(w->marks, interest);
}

/*
 * A file named by a string: walk up from the directory it starts from, and
 * look the whole path up in the lexical set. A lexical entry below that
 * directory is nearer than anything the walk found; at or above it, the
 * inodes the walk saw are the better witness (they see through symlinks).
 */
static __always_inline enum verdict decide_path(struct scratch *s, struct dentry *dir, struct vfsmount *mnt,
					       const char *raw, bool read, __u8 interest)
{
	struct lex_work *lw = lex_work_get(s);
	__u32 base_len = 0, len = 0;

	if (!dir || !raw)
		return V_REPORT; /* a bad dirfd: nothing to go by */
	struct interest_walk *w = interest_walk(dir, mnt, INODE_IGNORE | (read ? 0 : INODE_WATCH_WRITE), true, lw);
	enum lex_result lx = lex_build(lw, raw, &base_len);
	__u8 walk_marks = w->marks;

	if (read) {
		__u8 m = 0;
		if (lx == LEX_OK) {
			/* a plain name: the walk started in the file's directory */
			struct inode_key k = {};
			k_dentry_key(dir, &k);
			if (lw->scan.last_slash == base_len && key_marks(&k) & INODE_WATCH_READ)
				return V_WATCHED;
			m = lex_read_marks(lw, &lw->scan);
		}
		if (m)
			return V_WATCHED;
		if (interest != INTEREST_ALL)
			return V_DROP; /* including ".." paths: a failed read is not worth the noise */
		return walk_marks & INODE_IGNORE ? V_DROP : V_REPORT;
	}
	if (lx == LEX_UNCLEAN)
		return V_REPORT; /* "..": could be anywhere, so let user space judge */
	__u8 m = walk_marks;
	if (lx == LEX_OK) {
		__u8 ml = lex_write_marks(lw, INODE_WATCH_WRITE | INODE_IGNORE, &len);
		if (ml && (len > base_len + 1 || !m))
			m = ml;
	}
	return verdict_of(m, interest);
}
