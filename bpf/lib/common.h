/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "events.h"

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/*
 * Records with variable-length parts are built in per-CPU scratch space (32 KiB,
 * the most a per-CPU map value may hold) and copied into the ring. Offsets
 * into it are masked with SCRATCH_MASK before each copy, and each copy is at
 * most SCRATCH_SIZE / 2 bytes, so the verifier can see every copy stays inside.
 */
#define SCRATCH_SIZE 32768
#define SCRATCH_MASK (SCRATCH_SIZE / 2 - 1)

struct scratch {
	__u8 buf[SCRATCH_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} vigil_scratch SEC(".maps");

static __always_inline struct scratch *scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&vigil_scratch, &zero);
}
