//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * In-kernel deny with the BPF LSM: the hooks refuse with EPERM, before the
 * operation happens, what the deny maps hold:
 *
 *   lsm/file_open             open(2) of a denied inode (DENY_OPEN)
 *   lsm/bprm_check_security   execve(2) of a denied inode (DENY_EXEC)
 *   lsm/socket_connect        connect(2) on an IPv4/IPv6 socket by a task in
 *                             a denied cgroup (DENY_CONNECT)
 *   lsm/socket_bind           bind(2), likewise (DENY_BIND)
 *
 * Files are keyed by device and inode number, as the file sensor keys them
 * (events.h), so symlinks, hard links and bind mounts all lead to the same
 * entry. An entry may be scoped to one cgroup. Each denial is counted and
 * sent to user space on a ring of its own.
 *
 * Only kernels with the BPF LSM active load these (lsm=...,bpf); elsewhere
 * the response engine's fallbacks (fanotify, cgroup socket hooks) deny.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EPERM 1
#define AF_INET 2
#define AF_INET6 10

enum deny_op {
	DENY_OPEN = 1,
	DENY_EXEC = 2,
	DENY_CONNECT = 4,
	DENY_BIND = 8,
};

struct deny_key {
	__u64 ino;
	__u32 dev; /* kernel encoding: major << 20 | minor */
	__u32 _pad;
};

struct deny_val {
	__u32 ops;    /* enum deny_op bits */
	__u32 _pad;
	__u64 cgroup; /* only tasks in this cgroup (v2 id); 0: every task */
};

/* A denial, as user space reads it from vigil_denials. */
struct denial {
	__u64 ktime_ns; /* CLOCK_MONOTONIC */
	__u64 cgroup;
	__u64 ino;
	__u32 dev;
	__u32 op; /* one enum deny_op bit */
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u16 family; /* connect and bind */
	__u16 _pad;
	char comm[16];
};

const struct denial *unused_denial __attribute__((unused));
const enum deny_op *unused_deny_op __attribute__((unused));

/* The agent's own process: never denied. */
const volatile __u32 exempt_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct deny_key);
	__type(value, struct deny_val);
} vigil_deny_ino SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* cgroup v2 id */
	__type(value, __u32); /* enum deny_op bits */
} vigil_deny_cg SEC(".maps");

/* Denials per operation: index log2(op). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vigil_deny_cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} vigil_denials SEC(".maps");

static __always_inline int deny(__u32 op, __u64 cgroup, __u64 ino, __u32 dev, __u16 family)
{
	__u32 idx = op == DENY_OPEN ? 0 : op == DENY_EXEC ? 1 : op == DENY_CONNECT ? 2 : 3;
	__u64 *n = bpf_map_lookup_elem(&vigil_deny_cnt, &idx);
	if (n)
		*n += 1;
	struct denial *d = bpf_ringbuf_reserve(&vigil_denials, sizeof(*d), 0);
	if (d) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		d->ktime_ns = bpf_ktime_get_ns();
		d->cgroup = cgroup;
		d->ino = ino;
		d->dev = dev;
		d->op = op;
		d->pid = (__u32)pid_tgid;
		d->tgid = pid_tgid >> 32;
		d->uid = (__u32)bpf_get_current_uid_gid();
		d->family = family;
		d->_pad = 0;
		bpf_get_current_comm(d->comm, sizeof(d->comm));
		bpf_ringbuf_submit(d, 0);
	}
	return -EPERM;
}

#define X_PF_KTHREAD 0x00200000

/* Never acted on: the agent, init and kernel threads (docs/response.md). */
static __always_inline bool exempt(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == 1 || (exempt_tgid && tgid == exempt_tgid))
		return true;
	struct task_struct *t = bpf_get_current_task_btf();
	return t->flags & X_PF_KTHREAD;
}

static __always_inline int check_inode(struct inode *inode, __u32 op)
{
	struct deny_key k = {
		.ino = BPF_CORE_READ(inode, i_ino),
		.dev = BPF_CORE_READ(inode, i_sb, s_dev),
	};
	struct deny_val *v = bpf_map_lookup_elem(&vigil_deny_ino, &k);
	if (!v || !(v->ops & op) || exempt())
		return 0;
	__u64 cg = bpf_get_current_cgroup_id();
	if (v->cgroup && v->cgroup != cg)
		return 0;
	return deny(op, cg, k.ino, k.dev, 0);
}

static __always_inline int check_socket(struct sockaddr *address, __u32 op)
{
	__u64 cg = bpf_get_current_cgroup_id();
	__u32 *ops = bpf_map_lookup_elem(&vigil_deny_cg, &cg);
	if (!ops || !(*ops & op) || exempt())
		return 0;
	__u16 family = BPF_CORE_READ(address, sa_family);
	if (family != AF_INET && family != AF_INET6)
		return 0; /* unix sockets and the rest: local plumbing, left alone */
	return deny(op, cg, 0, 0, family);
}

SEC("lsm/file_open")
int BPF_PROG(vigil_lsm_open, struct file *file, int ret)
{
	if (ret)
		return ret; /* an earlier program denied already */
	return check_inode(BPF_CORE_READ(file, f_inode), DENY_OPEN);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(vigil_lsm_exec, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	return check_inode(BPF_CORE_READ(bprm, file, f_inode), DENY_EXEC);
}

SEC("lsm/socket_connect")
int BPF_PROG(vigil_lsm_conn, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return check_socket(address, DENY_CONNECT);
}

SEC("lsm/socket_bind")
int BPF_PROG(vigil_lsm_bind, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return check_socket(address, DENY_BIND);
}
