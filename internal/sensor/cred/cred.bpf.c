//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Credential changes: the set*id family, setgroups and capset. These calls are
 * rare, so each gets a sys_enter/sys_exit tracepoint pair: enter stashes the
 * caller's credentials and arguments per thread, exit reads the credentials
 * the call left and reports both.
 */
#include "lib/common.h"
#include "lib/output.h"
#include "lib/filter.h"
#include "lib/task.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so that bpf2go can generate their Go mirrors. */
const struct cred_event *unused_cred_event __attribute__((unused));
const enum cred_op *unused_cred_op __attribute__((unused));

#define VIGIL_EPERM 1

/* What sys_enter saw, for sys_exit. */
struct cred_pending {
	struct cred_ids old;
	__u32 args[3];
	__u32 op;
};

/* Keyed by pid_tgid. LRU: a thread that never returns (killed in between)
 * must not leak its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct cred_pending);
} vigil_cred_pend SEC(".maps");

/* Whether a kind is enabled, without counting anything: for deciding whether
 * to stash at sys_enter, where no record is at stake yet. */
static __always_inline bool kind_on(__u32 type)
{
	struct kind_filter *f = bpf_map_lookup_elem(&vigil_kinds, &type);
	return f && f->enabled;
}

/* The current task's subjective credentials (task->cred). */
/* kernel_cap_t before 6.3: two 32-bit words (a local flavor of the old type). */
struct kernel_cap_struct___old {
	__u32 cap[2];
} __attribute__((preserve_access_index));

/* A capability set as one 64-bit mask, on either layout of kernel_cap_t. */
static __always_inline __u64 cap_read(const kernel_cap_t *k)
{
	if (bpf_core_field_exists(k->val))
		return BPF_CORE_READ(k, val);
	const struct kernel_cap_struct___old *o = (const void *)k;
	return (__u64)BPF_CORE_READ(o, cap[0]) | (__u64)BPF_CORE_READ(o, cap[1]) << 32;
}

static __always_inline void cred_ids_read(struct cred_ids *ids)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *c = BPF_CORE_READ(task, cred);

	ids->uid = BPF_CORE_READ(c, uid.val);
	ids->euid = BPF_CORE_READ(c, euid.val);
	ids->suid = BPF_CORE_READ(c, suid.val);
	ids->fsuid = BPF_CORE_READ(c, fsuid.val);
	ids->gid = BPF_CORE_READ(c, gid.val);
	ids->egid = BPF_CORE_READ(c, egid.val);
	ids->sgid = BPF_CORE_READ(c, sgid.val);
	ids->fsgid = BPF_CORE_READ(c, fsgid.val);
	ids->cap_effective = cap_read(&c->cap_effective);
	ids->cap_permitted = cap_read(&c->cap_permitted);
}

static __always_inline int cred_enter(__u32 op, __u32 a0, __u32 a1, __u32 a2)
{
	if (!kind_on(EVENT_CRED))
		return 0;
	struct cred_pending p = {.op = op, .args = {a0, a1, a2}};
	cred_ids_read(&p.old);
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&vigil_cred_pend, &id, &p, BPF_ANY);
	return 0;
}

static __always_inline int cred_exit(long ret)
{
	struct kind_filter *f = filter_kind(EVENT_CRED);
	__u64 id = bpf_get_current_pid_tgid();
	struct cred_pending *p = bpf_map_lookup_elem(&vigil_cred_pend, &id);
	if (!p)
		return 0;
	if (!f)
		goto out;

	struct cred_ids now;
	cred_ids_read(&now);
	/* setfsuid/setfsgid return the previous id whatever happens, and that is
	 * in old.fs*id. Report instead whether the call did what was asked:
	 * 0 when the id is now in effect (or -1 was passed, a query), -EPERM
	 * when it is not. */
	if (p->op == CRED_SETFSUID || p->op == CRED_SETFSGID) {
		__u32 want = p->args[0];
		__u32 got = p->op == CRED_SETFSUID ? now.fsuid : now.fsgid;
		ret = want == (__u32)-1 || want == got ? 0 : -VIGIL_EPERM;
	}
	if (!filter_pass(f, EVENT_CRED, ret))
		goto out;

	struct cred_event *e = event_reserve(EVENT_CRED, sizeof(*e));
	if (!e)
		goto out;
	task_info_fill(&e->task, bpf_get_current_task_btf());
	e->op = p->op;
	e->ret = ret;
	e->args[0] = p->args[0];
	e->args[1] = p->args[1];
	e->args[2] = p->args[2];
	e->_pad = 0;
	e->old = p->old;
	e->new = now;
	event_submit(e, EVENT_CRED);
out:
	bpf_map_delete_elem(&vigil_cred_pend, &id);
	return 0;
}

/* setgroups(size, list): args are size and the first two groups, if any. */
static __always_inline int groups_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!kind_on(EVENT_CRED))
		return 0;
	int size = ctx->args[0];
	const __u32 *list = (const __u32 *)ctx->args[1];
	__u32 g[2] = {};
	if (size > 0 && list)
		bpf_probe_read_user(g, size > 1 ? sizeof(g) : sizeof(g[0]), list);
	return cred_enter(CRED_SETGROUPS, size, g[0], g[1]);
}

/* capset(header, data): args are the effective, permitted and inheritable
 * sets asked for in data[0], capabilities 0-31 (data[1] holds 32-63). */
static __always_inline int capset_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!kind_on(EVENT_CRED))
		return 0;
	const struct __user_cap_data_struct *data = (const void *)ctx->args[1];
	struct __user_cap_data_struct d = {};
	if (data)
		bpf_probe_read_user(&d, sizeof(d), data);
	return cred_enter(CRED_CAPSET, d.effective, d.permitted, d.inheritable);
}

#define CRED_EXIT(prog, sc)                                                  \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                             \
	int vigil_##prog##_ex(struct trace_event_raw_sys_exit *ctx)          \
	{                                                                    \
		return cred_exit(ctx->ret);                                  \
	}

/* Ids as passed: -1 stays 0xffffffff. */
#define CRED_PAIR(prog, sc, op, n)                                           \
	SEC("tracepoint/syscalls/sys_enter_" #sc)                            \
	int vigil_##prog##_in(struct trace_event_raw_sys_enter *ctx)         \
	{                                                                    \
		return cred_enter(op, ctx->args[0], n > 1 ? ctx->args[1] : 0, \
				  n > 2 ? ctx->args[2] : 0);                 \
	}                                                                    \
	CRED_EXIT(prog, sc)

CRED_PAIR(uid, setuid, CRED_SETUID, 1)
CRED_PAIR(gid, setgid, CRED_SETGID, 1)
CRED_PAIR(reuid, setreuid, CRED_SETREUID, 2)
CRED_PAIR(regid, setregid, CRED_SETREGID, 2)
CRED_PAIR(resuid, setresuid, CRED_SETRESUID, 3)
CRED_PAIR(resgid, setresgid, CRED_SETRESGID, 3)
CRED_PAIR(fsuid, setfsuid, CRED_SETFSUID, 1)
CRED_PAIR(fsgid, setfsgid, CRED_SETFSGID, 1)

SEC("tracepoint/syscalls/sys_enter_setgroups")
int vigil_groups_in(struct trace_event_raw_sys_enter *ctx)
{
	return groups_enter(ctx);
}
CRED_EXIT(groups, setgroups)

SEC("tracepoint/syscalls/sys_enter_capset")
int vigil_capset_in(struct trace_event_raw_sys_enter *ctx)
{
	return capset_enter(ctx);
}
CRED_EXIT(capset, capset)
