//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Sandbox network allowlists: connect and sendmsg hooks attached to the
 * cgroup of each sandboxed container, refusing (EPERM) every destination its
 * profile does not list. One copy of the programs is loaded per profile, with
 * the profile's number in sbx_profile; all copies share the allow trie, keyed
 * by profile then address, whose values are bitmaps of the allowed ports. A
 * program attached to a cgroup runs for it and every cgroup below it only, so
 * the host and other containers never pay for a profile.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct sbx_key {
	__u32 prefixlen; /* 32 (the profile) + address bits; IPv4 as ::ffff:a.b.c.d */
	__u32 profile;
	__u8 addr[16];
};

struct sbx_ports {
	__u8 bits[8192]; /* bit p of byte p/8: port p allowed */
};

const struct sbx_key *unused_sbx_key __attribute__((unused));
const struct sbx_ports *unused_sbx_ports __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct sbx_key);
	__type(value, struct sbx_ports);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vg_sbx_allow SEC(".maps");

/* Refusals per profile. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} vg_sbx_denied SEC(".maps");

const volatile __u32 sbx_profile;

static __always_inline int sbx_check(const __u8 *addr, __u16 port)
{
	struct sbx_key k = {.prefixlen = 160, .profile = sbx_profile};
	__builtin_memcpy(k.addr, addr, 16);
	struct sbx_ports *p = bpf_map_lookup_elem(&vg_sbx_allow, &k);
	if (p && (p->bits[(port >> 3) & 8191] & (1 << (port & 7))))
		return 1;
	__u32 idx = sbx_profile;
	__u64 *n = bpf_map_lookup_elem(&vg_sbx_denied, &idx);
	if (n)
		(*n)++;
	return 0; /* EPERM */
}

static __always_inline int sbx4(struct bpf_sock_addr *ctx)
{
	__u8 a[16] = {};
	__u32 ip = ctx->user_ip4;
	a[10] = 0xff;
	a[11] = 0xff;
	__builtin_memcpy(&a[12], &ip, 4);
	return sbx_check(a, bpf_ntohs((__u16)ctx->user_port));
}

static __always_inline int sbx6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
	return sbx_check((const __u8 *)a, bpf_ntohs((__u16)ctx->user_port));
}

SEC("cgroup/connect4")
int vg_sbx_conn4(struct bpf_sock_addr *ctx) { return sbx4(ctx); }

SEC("cgroup/connect6")
int vg_sbx_conn6(struct bpf_sock_addr *ctx) { return sbx6(ctx); }

SEC("cgroup/sendmsg4")
int vg_sbx_send4(struct bpf_sock_addr *ctx) { return sbx4(ctx); }

SEC("cgroup/sendmsg6")
int vg_sbx_send6(struct bpf_sock_addr *ctx) { return sbx6(ctx); }
