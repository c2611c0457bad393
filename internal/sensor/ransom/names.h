/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Names of unlinked and renamed files, hashed (FNV-1a of the last component)
 * to be matched against the decoys' names. Included by ransom.bpf.c after
 * its scratch layout (NAME_OFF).
 */
#pragma once

struct name_hash {
	__u64 h;
	bool done;
};

/* FNV-1a of the last component of the string at NAME_OFF; a '/' restarts it. */
static long name_hash_step(__u64 i, void *arg)
{
	struct name_hash *nh = arg;
	struct scratch *s = scratch_get();
	if (!s)
		return 1;
	__u8 c = s->buf[NAME_OFF + (i & (NAME_BYTES - 1))];
	if (c == 0) {
		nh->done = true;
		return 1;
	}
	if (c == '/') {
		nh->h = 0xcbf29ce484222325ULL;
		return 0;
	}
	nh->h = (nh->h ^ c) * 0x100000001b3ULL;
	return 0;
}

/* The hash of the last component of the string at NAME_OFF, 0 when none. */
static __always_inline __u64 name_hash_scratch(void)
{
	struct name_hash nh = {.h = 0xcbf29ce484222325ULL};
	bpf_loop(NAME_BYTES, name_hash_step, &nh, 0);
	return nh.done ? nh.h : 0;
}

static __always_inline __u64 user_name_hash(const char *raw)
{
	struct scratch *s = scratch_get();
	if (!s || bpf_probe_read_user_str(&s->buf[NAME_OFF], NAME_BYTES, raw) <= 0)
		return 0;
	return name_hash_scratch();
}

static __always_inline __u64 dentry_name_hash(struct dentry *d)
{
	struct scratch *s = scratch_get();
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (!s || bpf_probe_read_kernel_str(&s->buf[NAME_OFF], NAME_BYTES, name) <= 0)
		return 0;
	return name_hash_scratch();
}
