/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading the kernel's file objects fast enough for the hottest syscall path.
 *
 * Where the kernel has bpf_rdonly_cast (6.2+), a kfunc the verifier inlines,
 * a pointer read as a number is typed again and followed with plain loads
 * (BPF_PROBE_MEM: a fault reads as zero), one instruction per step. Elsewhere
 * each step is a bpf_probe_read_kernel call (BPF_CORE_READ). User space
 * clears direct_loads on kernels without the kfunc: the verifier then never
 * visits the branches that call it, and the loader poisons those calls to the
 * missing (weak) kfunc.
 */
#pragma once

#include "common.h"

const volatile bool direct_loads = true;

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
#define KCAST(ptr, type) ((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))

/* The file open at fd in the current task, or NULL. Plain loads from the
 * task need no kfunc (bpf_get_current_task_btf is 5.11+). */
static __always_inline struct file *fd_file_fast(int fd)
{
	struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
	struct file *f = NULL;

	if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]);
	return f;
}

/* The device and inode number of a dentry's inode, as vigil_inodes keys them. */
static __always_inline void k_dentry_key(struct dentry *d, struct inode_key *k)
{
	if (direct_loads) {
		struct dentry *dd = KCAST(d, struct dentry);
		k->ino = dd->d_inode->i_ino;
		k->dev = dd->d_sb->s_dev;
	} else {
		k->ino = BPF_CORE_READ(d, d_inode, i_ino);
		k->dev = BPF_CORE_READ(d, d_sb, s_dev);
	}
}

static __always_inline struct dentry *k_parent(struct dentry *d)
{
	return direct_loads ? KCAST(d, struct dentry)->d_parent : BPF_CORE_READ(d, d_parent);
}

static __always_inline const unsigned char *k_name(struct dentry *d)
{
	return direct_loads ? KCAST(d, struct dentry)->d_name.name : BPF_CORE_READ(d, d_name.name);
}

static __always_inline struct dentry *k_mnt_root(struct mount *m)
{
	return direct_loads ? KCAST(m, struct mount)->mnt.mnt_root : BPF_CORE_READ(m, mnt.mnt_root);
}

static __always_inline struct mount *k_mnt_parent(struct mount *m)
{
	return direct_loads ? KCAST(m, struct mount)->mnt_parent : BPF_CORE_READ(m, mnt_parent);
}

static __always_inline struct dentry *k_mountpoint(struct mount *m)
{
	return direct_loads ? KCAST(m, struct mount)->mnt_mountpoint : BPF_CORE_READ(m, mnt_mountpoint);
}

/* What the interest set needs of an open file. */
struct k_file {
	struct dentry *dentry;
	struct vfsmount *mnt;
	struct inode_key key;	 /* the file's inode */
	struct inode_key parent; /* its directory's: same superblock */
};

static __always_inline void k_file_read(struct file *file, struct k_file *kf)
{
	if (direct_loads) {
		struct file *f = KCAST(file, struct file);
		struct inode *inode = f->f_inode;
		kf->dentry = f->f_path.dentry;
		kf->mnt = f->f_path.mnt;
		kf->key.ino = inode->i_ino;
		kf->key.dev = inode->i_sb->s_dev;
		kf->parent.ino = kf->dentry->d_parent->d_inode->i_ino;
	} else {
		struct inode *inode = BPF_CORE_READ(file, f_inode);
		struct dentry *d = BPF_CORE_READ(file, f_path.dentry); /* not via kf: not the kernel's struct */
		kf->dentry = d;
		kf->mnt = BPF_CORE_READ(file, f_path.mnt);
		kf->key.ino = BPF_CORE_READ(inode, i_ino);
		kf->key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
		kf->parent.ino = BPF_CORE_READ(d, d_parent, d_inode, i_ino);
	}
	kf->parent.dev = kf->key.dev;
}
