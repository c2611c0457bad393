/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * In-kernel filtering. User space fills these maps from what the loaded rules
 * need; a record no rule needs is counted as filtered and never built.
 *
 * Order of checks on a hot path: cheapest first. vigil_kinds is an array
 * lookup; pid, cgroup and comm scopes cost a hash lookup only when enabled.
 */
#pragma once

#include "common.h"
#include "output.h"

/* The agent's own process: its actions are never reported (no feedback loops). */
const volatile __u32 vigil_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EVENT_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct kind_filter);
} vigil_kinds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, __u8); /* enum scope_mark */
} vigil_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* cgroup id */
	__type(value, __u8); /* enum scope_mark */
} vigil_cgroups SEC(".maps");

/* Task names as bpf_get_current_comm gives them: at most 15 bytes, NUL-padded
 * to VIGIL_COMM_LEN. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[VIGIL_COMM_LEN]);
	__type(value, __u8); /* enum scope_mark */
} vigil_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct inode_key);
	__type(value, __u8); /* enum inode_mark bits */
} vigil_inodes SEC(".maps");

/*
 * A Bloom-style summary of vigil_inodes: one bit per hash of (dev, ino), set
 * by user space whenever it marks an inode, never cleared. A clear bit proves
 * the inode has no marks, for the price of an array load the verifier
 * inlines, where the hash lookup it saves costs several times more. This is
 * what keeps the hottest path (read-opens of files nobody watches) near a
 * bare tracepoint.
 */
#define INODE_BLOOM_WORDS 1024 /* 65536 bits */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INODE_BLOOM_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} vigil_inode_bloom SEC(".maps");

/* Must match sensor.inodeBloomBit in Go. */
static __always_inline bool inode_maybe_marked(const struct inode_key *k)
{
	__u64 h = (k->ino ^ ((__u64)k->dev << 32)) * 0x9E3779B97F4A7C15ULL;
	__u32 bit = h >> 48;
	__u32 word = bit >> 6;
	__u64 *w = bpf_map_lookup_elem(&vigil_inode_bloom, &word);
	return w && (*w >> (bit & 63)) & 1;
}

static __always_inline void stats_filtered(__u32 type)
{
	struct kstats *s = bpf_map_lookup_elem(&vigil_stats, &type);
	if (s)
		s->filtered++;
}

/* The kind's filter, or NULL when the kind is disabled (counted as filtered). */
static __always_inline struct kind_filter *filter_kind(__u32 type)
{
	struct kind_filter *f = bpf_map_lookup_elem(&vigil_kinds, &type);
	if (!f || !f->enabled) {
		stats_filtered(type);
		return NULL;
	}
	return f;
}

static __always_inline bool outcome_pass(const struct kind_filter *f, long ret)
{
	if (f->outcome == OUTCOME_SUCCESS)
		return ret >= 0;
	if (f->outcome == OUTCOME_FAILURE)
		return ret < 0;
	return true;
}

static __always_inline bool scope_pass(__u8 mode, void *map, void *key)
{
	if (mode == SCOPE_ALL)
		return true;
	__u8 *mark = bpf_map_lookup_elem(map, key);
	if (mode == SCOPE_INCLUDED)
		return mark && *mark == SCOPE_INCLUDE;
	return !mark || *mark != SCOPE_EXCLUDE;
}

/*
 * Whether the current task's event of this kind passes outcome and scope.
 * Counts the record as filtered when it does not.
 */
static __always_inline bool filter_pass(const struct kind_filter *f, __u32 type, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;

	if (tgid == vigil_tgid || !outcome_pass(f, ret))
		goto drop;
	if (!scope_pass(f->pid_scope, &vigil_pids, &tgid))
		goto drop;
	if (f->cgroup_scope != SCOPE_ALL) {
		__u64 cgid = bpf_get_current_cgroup_id();
		if (!scope_pass(f->cgroup_scope, &vigil_cgroups, &cgid))
			goto drop;
	}
	if (f->comm_scope != SCOPE_ALL) {
		char comm[VIGIL_COMM_LEN] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (!scope_pass(f->comm_scope, &vigil_comms, comm))
			goto drop;
	}
	return true;
drop:
	stats_filtered(type);
	return false;
}

/* The marks on an inode, 0 when it has none. */
static __always_inline __u8 inode_marks(struct inode *inode)
{
	struct inode_key k = {
		.ino = BPF_CORE_READ(inode, i_ino),
		.dev = BPF_CORE_READ(inode, i_sb, s_dev),
	};
	if (!inode_maybe_marked(&k))
		return 0;
	__u8 *m = bpf_map_lookup_elem(&vigil_inodes, &k);
	return m ? *m : 0;
}
