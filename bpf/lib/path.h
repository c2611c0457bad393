/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Absolute paths without bpf_d_path, which this kernel only allows in
 * iterators: walk the dentry chain up to the root of the mount tree, crossing
 * mount points, with bpf_loop.
 *
 * Components are written leaf first, each NUL-terminated, into scratch space;
 * user space reverses them. That keeps every write a forward, bounded copy the
 * verifier can follow. The walk ends at the root of the task's mount
 * namespace, so paths inside a container are the container's paths.
 */
#pragma once

#include "common.h"

#define PATH_WALK_MAX_DEPTH 128

/*
 * The walk's state lives in the per-CPU scratch map, not on the stack. Before
 * 6.7 the verifier checks a bpf_loop callback once, with the state the caller
 * passed. With the state in a stack struct initialised with constants, len
 * == 0 looks certain wherever the compiler stores it as a lone zero, and
 * unless another call site of the same program leaves it unknown, the "full"
 * check (a path over VIGIL_PATH_MAX - NAME_MAX - 1 bytes) and the
 * disconnected dentry's "nothing written yet" check are hard-wired as dead
 * branches. A load from a map value is an unknown number to the verifier,
 * so each branch is checked and kept, whatever the compiler does.
 * Pointers are kept as numbers (file_interest.h does the same).
 */
struct path_walk {
	__u64 dentry; /* struct dentry * */
	__u64 mnt;    /* struct mount * */
	__u32 base;   /* offset in scratch where the path starts */
	__u32 len;    /* bytes written so far */
	__u8 done;
};

/*
 * The last 64 bytes of the scratch buffer: above the file sensor's struct
 * lex_work and every record, which never reach that far while a path is
 * written (the walk itself writes below SCRATCH_MASK + NAME_MAX + 1).
 */
#define PATH_WALK_OFF (SCRATCH_SIZE - 64)
_Static_assert(sizeof(struct path_walk) <= 64, "struct path_walk outgrew its place in scratch");

/* What bpf_loop gets on the stack (it wants a stack pointer): the map value. */
struct path_loop_ctx {
	struct scratch *s;
};

static long path_walk_step(__u64 i, void *arg)
{
	struct scratch *s = ((struct path_loop_ctx *)arg)->s;
	struct path_walk *w = (void *)&s->buf[PATH_WALK_OFF];
	struct dentry *d = (struct dentry *)w->dentry;
	struct mount *mnt = (struct mount *)w->mnt;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);

	if (d == mnt_root || d == parent) {
		struct mount *mparent = BPF_CORE_READ(mnt, mnt_parent);
		/* d == parent below a mount root: a disconnected dentry; stop. A
		 * pseudo file (memfd, anonymous inode) is one on its own: its
		 * name ("memfd:x") is all the path it has, so keep that. */
		if (d != mnt_root || mnt == mparent) {
			if (d != mnt_root && w->len == 0) {
				const unsigned char *name = BPF_CORE_READ(d, d_name.name);
				long n = bpf_probe_read_kernel_str(&s->buf[w->base & SCRATCH_MASK], NAME_MAX + 1, name);
				if (n > 0)
					w->len = n;
			}
			w->done = 1;
			return 1;
		}
		w->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = (__u64)mparent;
		return 0;
	}

	if (w->len > VIGIL_PATH_MAX - NAME_MAX - 1)
		return 1; /* full: not done, so the caller reports truncation */

	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	__u32 off = (w->base + w->len) & SCRATCH_MASK;
	long n = bpf_probe_read_kernel_str(&s->buf[off], NAME_MAX + 1, name);
	if (n <= 0)
		return 1;
	w->len += n;
	w->dentry = (__u64)parent;
	return 0;
}

/*
 * Write the path to scratch at offset base. Returns the bytes written and sets
 * *truncated when the path was longer than VIGIL_PATH_MAX or deeper than the
 * walk allows.
 */
static __always_inline __u32 path_write(const struct path *p, __u32 base, bool *truncated)
{
	struct path_loop_ctx ctx = {.s = scratch_get()};
	if (!ctx.s) {
		*truncated = true;
		return 0;
	}
	struct vfsmount *vfsmnt = BPF_CORE_READ(p, mnt);
	struct path_walk *w = (void *)&ctx.s->buf[PATH_WALK_OFF];
	w->dentry = (__u64)BPF_CORE_READ(p, dentry);
	/* container_of with a relocated offset: struct mount moves between kernels */
	w->mnt = (__u64)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
	w->base = base;
	w->len = 0;
	w->done = 0;

	bpf_loop(PATH_WALK_MAX_DEPTH, path_walk_step, &ctx, 0);
	*truncated = !w->done;
	__u32 len = w->len;
	return len < VIGIL_PATH_MAX ? len : VIGIL_PATH_MAX;
}
