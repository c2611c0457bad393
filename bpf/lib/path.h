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

struct path_walk {
	struct dentry *dentry;
	struct mount *mnt;
	__u32 base; /* offset in scratch where the path starts */
	__u32 len;  /* bytes written so far */
	bool done;
};

static long path_walk_step(__u64 i, void *arg)
{
	struct path_walk *w = arg;
	/* Plain loads first: BPF_CORE_READ(w->mnt, ...) would ask CO-RE to
	 * relocate struct path_walk, which the kernel does not have. */
	struct dentry *d = w->dentry;
	struct mount *mnt = w->mnt;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);

	if (d == mnt_root || d == parent) {
		struct mount *mparent = BPF_CORE_READ(mnt, mnt_parent);
		/* d == parent below a mount root: a disconnected dentry; stop. A
		 * pseudo file (memfd, anonymous inode) is one on its own: its
		 * name ("memfd:x") is all the path it has, so keep that. */
		if (d != mnt_root || mnt == mparent) {
			if (d != mnt_root && w->len == 0) {
				struct scratch *s = scratch_get();
				const unsigned char *name = BPF_CORE_READ(d, d_name.name);
				long n = s ? bpf_probe_read_kernel_str(&s->buf[w->base & SCRATCH_MASK], NAME_MAX + 1, name) : 0;
				if (n > 0)
					w->len = n;
			}
			w->done = true;
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mparent;
		return 0;
	}

	if (w->len > VIGIL_PATH_MAX - NAME_MAX - 1)
		return 1; /* full: not done, so the caller reports truncation */

	struct scratch *s = scratch_get();
	if (!s)
		return 1;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	__u32 off = (w->base + w->len) & SCRATCH_MASK;
	long n = bpf_probe_read_kernel_str(&s->buf[off], NAME_MAX + 1, name);
	if (n <= 0)
		return 1;
	w->len += n;
	w->dentry = parent;
	return 0;
}

/*
 * Write the path to scratch at offset base. Returns the bytes written and sets
 * *truncated when the path was longer than VIGIL_PATH_MAX or deeper than the
 * walk allows.
 */
static __always_inline __u32 path_write(const struct path *p, __u32 base, bool *truncated)
{
	struct vfsmount *vfsmnt = BPF_CORE_READ(p, mnt);
	struct path_walk w = {
		.dentry = BPF_CORE_READ(p, dentry),
		/* container_of with a relocated offset: struct mount moves between kernels */
		.mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt),
		.base = base,
	};

	bpf_loop(PATH_WALK_MAX_DEPTH, path_walk_step, &w, 0);
	*truncated = !w.done;
	return w.len < VIGIL_PATH_MAX ? w.len : VIGIL_PATH_MAX;
}
