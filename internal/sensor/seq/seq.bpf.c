//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Syscall sequences for learned-behaviour models: the syscall numbers each
 * thread of a selected program makes, in order, shipped SEQ_BATCH at a time.
 *
 * User space selects a program by putting its thread-group id in
 * vigil_seq_pids; a fork inherits the selection, so a server's children are
 * part of its sequence until they exec. An exec ends the selection (user
 * space selects the new program again if it wants it). For a thread of a
 * program that is not selected, sys_enter costs one hash lookup.
 */
#include "lib/common.h"
#include "lib/output.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const struct syscalls_event *unused_syscalls_event __attribute__((unused));

/* tgid -> profile id: the programs whose sequences are collected. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} vigil_seq_pids SEC(".maps");

/* The batch a selected thread is filling. */
struct seq_batch {
	__u32 n;
	__u16 flags;
	__u16 _pad;
	__u16 nr[SEQ_BATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct seq_batch);
} vigil_seq_tasks SEC(".maps");

/* Ship what the thread's batch holds, with flags, and empty it. */
static __always_inline void flush(struct task_struct *task, struct seq_batch *b, __u32 profile, __u16 flags)
{
	__u32 n = b->n;
	if (n == 0 && !(flags & (SEQ_EXEC | SEQ_EXIT)))
		return;
	if (n > SEQ_BATCH)
		n = SEQ_BATCH;
	struct syscalls_event *e = event_reserve(EVENT_SYSCALLS, sizeof(*e));
	if (!e) {
		b->flags |= SEQ_GAP; /* the next batch says one was lost */
		b->n = 0;
		return;
	}
	e->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->profile = profile;
	e->count = n;
	e->flags = flags | b->flags;
	__builtin_memcpy(e->nr, b->nr, sizeof(e->nr));
	event_submit(e, EVENT_SYSCALLS);
	b->n = 0;
	b->flags = 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(vigil_seq_enter, struct pt_regs *regs, long id)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *profile = bpf_map_lookup_elem(&vigil_seq_pids, &tgid);
	if (!profile)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct seq_batch *b = bpf_task_storage_get(&vigil_seq_tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!b)
		return 0;
	__u32 n = b->n;
	if (n >= SEQ_BATCH)
		n = 0;
	b->nr[n & (SEQ_BATCH - 1)] = id;
	b->n = n + 1;
	if (n + 1 == SEQ_BATCH)
		flush(task, b, *profile, 0);
	return 0;
}

/* A child of a selected program is part of its sequence. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_seq_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ptgid == ctgid)
		return 0; /* a thread: the group's selection covers it */
	__u32 *profile = bpf_map_lookup_elem(&vigil_seq_pids, &ptgid);
	if (profile) {
		__u32 p = *profile;
		bpf_map_update_elem(&vigil_seq_pids, &ctgid, &p, BPF_ANY);
	}
	return 0;
}

/* An exec ends the program's sequence: the rest belongs to another program. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_seq_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	__u32 *profile = bpf_map_lookup_elem(&vigil_seq_pids, &tgid);
	if (!profile)
		return 0;
	struct seq_batch *b = bpf_task_storage_get(&vigil_seq_tasks, p, 0, 0);
	if (b)
		flush(p, b, *profile, SEQ_EXEC);
	bpf_map_delete_elem(&vigil_seq_pids, &tgid);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_seq_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	__u32 *profile = bpf_map_lookup_elem(&vigil_seq_pids, &tgid);
	if (!profile)
		return 0;
	struct seq_batch *b = bpf_task_storage_get(&vigil_seq_tasks, p, 0, 0);
	if (b)
		flush(p, b, *profile, SEQ_EXIT);
	/* The last thread takes the selection with it. */
	if (BPF_CORE_READ(p, signal, live.counter) == 0)
		bpf_map_delete_elem(&vigil_seq_pids, &tgid);
	return 0;
}
