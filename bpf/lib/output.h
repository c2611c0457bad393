/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ring buffer output with batched wakeups and in-kernel accounting.
 *
 * Waking user space costs more than the event itself (shared/KERNEL.md), so
 * records are submitted with BPF_RB_NO_WAKEUP and user space polls with a short
 * deadline; once wakeup_bytes are waiting, the next record forces a wakeup.
 * Every record is counted as sent or lost, per event type, so user space can
 * account for each one.
 */
#pragma once

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized by user space before load */
} vigil_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct kstats);
} vigil_stats SEC(".maps");

const volatile __u64 wakeup_bytes = 1 << 20;

/*
 * Load shedding: past shed_bytes waiting in the ring, records other than
 * process lifecycle (exec, fork, exit) are refused and counted as lost, so
 * that a storm of file or network records cannot crowd out the events the
 * process cache depends on. 0: never shed. User space sets it to 3/4 of the
 * ring (sensor.Shared.Prepare).
 */
const volatile __u64 shed_bytes = 0;

static __always_inline bool shed(__u32 type)
{
	if (shed_bytes == 0 || type == EVENT_EXEC || type == EVENT_FORK || type == EVENT_EXIT)
		return false;
	return bpf_ringbuf_query(&vigil_events, BPF_RB_AVAIL_DATA) >= shed_bytes;
}

static __always_inline void stats_count(__u32 type, bool ok)
{
	struct kstats *s = bpf_map_lookup_elem(&vigil_stats, &type);
	if (!s)
		return;
	if (ok)
		s->sent++;
	else
		s->lost++;
}

static __always_inline __u64 wakeup_flags(void)
{
	if (bpf_ringbuf_query(&vigil_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void header_init(struct event_header *h, __u32 type, __u32 size)
{
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->size = size;
	h->type = type;
	h->cpu = bpf_get_smp_processor_id();
}

/* Reserve a fixed-size record; on failure (or when shedding) the loss is counted. */
static __always_inline void *event_reserve(__u32 type, __u32 size)
{
	if (shed(type)) {
		stats_count(type, false);
		return NULL;
	}
	void *e = bpf_ringbuf_reserve(&vigil_events, size, 0);
	if (!e) {
		stats_count(type, false);
		return NULL;
	}
	header_init(e, type, size);
	return e;
}

static __always_inline void event_submit(void *e, __u32 type)
{
	bpf_ringbuf_submit(e, wakeup_flags());
	stats_count(type, true);
}

/* Copy a record built in scratch space into the ring. */
static __always_inline void event_output(void *e, __u32 type, __u64 size)
{
	if (shed(type)) {
		stats_count(type, false);
		return;
	}
	long err = bpf_ringbuf_output(&vigil_events, e, size, wakeup_flags());
	stats_count(type, err == 0);
}
