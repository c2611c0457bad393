/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Judging a write's sample: its entropy from a byte histogram kept in the
 * scratch buffer (HIST_OFF), and its file format by magic (magic.h).
 * Included by ransom.bpf.c after its scratch layout.
 */
#pragma once

#include "magic.h"

struct hist_ctx {
	__u32 n;
	__u64 sum;
};

static long hist_zero(__u64 i, void *arg)
{
	struct scratch *s = scratch_get();
	if (!s)
		return 1;
	__u16 *h = (void *)&s->buf[HIST_OFF];
	h[i & 255] = 0;
	return 0;
}

static long hist_count(__u64 i, void *arg)
{
	struct scratch *s = scratch_get();
	if (!s)
		return 1;
	__u8 b = s->buf[SAMPLE_OFF + (i & (SAMPLE_MAX - 1))];
	__u16 *h = (void *)&s->buf[HIST_OFF];
	h[b]++;
	return 0;
}

static long hist_sum(__u64 i, void *arg)
{
	struct hist_ctx *c = arg;
	struct scratch *s = scratch_get();
	if (!s)
		return 1;
	__u16 *h = (void *)&s->buf[HIST_OFF];
	__u32 n = h[i & 255];
	if (n > SAMPLE_MAX)
		n = SAMPLE_MAX;
	c->sum += clogc[n];
	return 0;
}

/* Entropy of the n sampled bytes, in thousandths of a bit per byte:
 * log2(n) - sum(c log2 c) / n. */
static __always_inline __u32 sample_entropy(__u32 n)
{
	struct hist_ctx c = {.n = n};
	bpf_loop(256, hist_zero, &c, 0);
	bpf_loop(n, hist_count, &c, 0);
	bpf_loop(256, hist_sum, &c, 0);
	if (n == 0 || n > SAMPLE_MAX)
		return 0;
	__u64 total = clogc[n]; /* n log2 n */
	if (c.sum > total)
		return 0;
	return (total - c.sum) * 1000 / 1024 / n;
}

static __always_inline __u8 sample_magic(struct scratch *s)
{
	__u64 head = *(__u64 *)&s->buf[SAMPLE_OFF];
	for (int i = 0; i < MAGIC_COUNT; i++) {
		if ((head & magics[i].mask) == magics[i].val)
			return i + 1;
	}
	return 0;
}
