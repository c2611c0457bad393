/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#pragma once

#include "common.h"

/* Fill the identity of a task: ids, credentials, cgroup and comm. */
static __always_inline void task_info_fill(struct task_info *ti, struct task_struct *task)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	const struct cred *cred = BPF_CORE_READ(task, real_cred);

	ti->pid = BPF_CORE_READ(task, tgid);
	ti->tid = BPF_CORE_READ(task, pid);
	ti->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	ti->ppid = BPF_CORE_READ(parent, tgid);
	ti->parent_start_ns = BPF_CORE_READ(parent, group_leader, start_boottime);
	ti->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);

	ti->uid = BPF_CORE_READ(cred, uid.val);
	ti->gid = BPF_CORE_READ(cred, gid.val);
	ti->euid = BPF_CORE_READ(cred, euid.val);
	ti->egid = BPF_CORE_READ(cred, egid.val);
	if (bpf_core_field_exists(task->loginuid)) {
		ti->auid = BPF_CORE_READ(task, loginuid.val);
		ti->sessionid = BPF_CORE_READ(task, sessionid);
	} else {
		ti->auid = (__u32)-1;
		ti->sessionid = (__u32)-1;
	}
	BPF_CORE_READ_STR_INTO(&ti->comm, task, comm);
}
