//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Network enforcement: what a rule or an operator asks to refuse or drop.
 *
 *  - cgroup/connect4/6 and bind4/6 refuse (EPERM) the connects and binds in
 *    the deny map, before any packet leaves.
 *  - XDP on ingress drops packets from a blocked address; tcx on egress drops
 *    packets to one. The block list is an LPM trie of IPv6 prefixes (IPv4 as
 *    ::ffff:a.b.c.d/96+n), each with an expiry in CLOCK_BOOTTIME.
 *  - Isolation: when on, XDP and tcx drop every IP packet whose remote end is
 *    not in the allow trie (ARP still passes, so allowed peers stay reachable).
 *
 *  - Network defence (netdef.h): per-source accounting in XDP, flood limits
 *    decided in the kernel, threat-intelligence prefixes on both directions
 *    and payload signatures at tcx.
 *
 * Every map is pinned by user space, so blocks and isolation outlive the agent
 * that set them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

struct lpm_key {
	__u32 prefixlen; /* bits of addr, 96 + n for IPv4 /n */
	__u8 addr[16];
};

struct block_val {
	__u64 expires; /* CLOCK_BOOTTIME ns; 0: never */
	__u32 source;  /* who asked: user space's enum */
	__u32 pad;
};

enum deny_op {
	DENY_CONNECT = 1,
	DENY_BIND = 2,
};

struct deny_key {
	__u8 op;
	__u8 pad;
	__u16 port;    /* host order; 0: any */
	__u8 addr[16]; /* IPv6, IPv4 mapped; all zero: any */
};

struct guard_config {
	__u32 isolate;   /* drop what the allow trie does not hold */
	__u32 deny_rules; /* entries in vg_deny; 0 skips the lookups */
};

enum guard_stat {
	STAT_DENY_CONNECT,
	STAT_DENY_BIND,
	STAT_BLOCK_IN,
	STAT_BLOCK_OUT,
	STAT_ISOLATE_IN,
	STAT_ISOLATE_OUT,
	STAT_MAX,
};

const struct lpm_key *unused_lpm_key __attribute__((unused));
const struct block_val *unused_block_val __attribute__((unused));
const struct deny_key *unused_deny_key __attribute__((unused));
const struct guard_config *unused_guard_config __attribute__((unused));
const enum guard_stat *unused_guard_stat __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct lpm_key);
	__type(value, struct block_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vg_block SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vg_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct deny_key);
	__type(value, __u32);
} vg_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_config);
} vg_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} vg_stats SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&vg_stats, &stat);
	if (n)
		(*n)++;
}

static __always_inline struct guard_config *guard_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&vg_config, &zero);
}

static __always_inline void key_v4(struct lpm_key *k, __be32 addr)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->prefixlen = 128;
	k->addr[10] = 0xff;
	k->addr[11] = 0xff;
	__builtin_memcpy(&k->addr[12], &addr, 4);
}

static __always_inline void key_v6(struct lpm_key *k, const void *addr)
{
	k->prefixlen = 128;
	__builtin_memcpy(k->addr, addr, 16);
}

static __always_inline bool blocked(const struct lpm_key *k)
{
	struct block_val *v = bpf_map_lookup_elem(&vg_block, k);
	if (!v)
		return false;
	/* An expired entry no longer blocks; user space deletes it. */
	return v->expires == 0 || bpf_ktime_get_boot_ns() < v->expires;
}

static __always_inline bool allowed(const struct lpm_key *k)
{
	return bpf_map_lookup_elem(&vg_allow, k) != NULL;
}

#include "netdef.h"

/* ---- connect and bind ---- */

static __always_inline int deny_check(__u8 op, const __u8 *addr, __u16 port)
{
	struct guard_config *c = guard_cfg();
	if (!c || c->deny_rules == 0)
		return 1;
	struct deny_key k = {.op = op, .port = port};
	__builtin_memcpy(k.addr, addr, 16);
	if (bpf_map_lookup_elem(&vg_deny, &k))
		goto deny;
	k.port = 0;
	if (bpf_map_lookup_elem(&vg_deny, &k))
		goto deny;
	k.port = port;
	__builtin_memset(k.addr, 0, 16);
	if (bpf_map_lookup_elem(&vg_deny, &k))
		goto deny;
	return 1;
deny:
	count(op == DENY_CONNECT ? STAT_DENY_CONNECT : STAT_DENY_BIND);
	return 0; /* EPERM */
}

static __always_inline int sock4(struct bpf_sock_addr *ctx, __u8 op)
{
	struct lpm_key k;
	key_v4(&k, ctx->user_ip4);
	if (op == DENY_CONNECT && intel_connect_denied(&k))
		return 0;
	return deny_check(op, k.addr, bpf_ntohs((__u16)ctx->user_port));
}

static __always_inline int sock6(struct bpf_sock_addr *ctx, __u8 op)
{
	__u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
	if (op == DENY_CONNECT) {
		struct lpm_key k;
		key_v6(&k, a);
		if (intel_connect_denied(&k))
			return 0;
	}
	return deny_check(op, (const __u8 *)a, bpf_ntohs((__u16)ctx->user_port));
}

SEC("cgroup/connect4")
int vg_connect4(struct bpf_sock_addr *ctx) { return sock4(ctx, DENY_CONNECT); }

SEC("cgroup/connect6")
int vg_connect6(struct bpf_sock_addr *ctx) { return sock6(ctx, DENY_CONNECT); }

SEC("cgroup/bind4")
int vg_bind4(struct bpf_sock_addr *ctx) { return sock4(ctx, DENY_BIND); }

SEC("cgroup/bind6")
int vg_bind6(struct bpf_sock_addr *ctx) { return sock6(ctx, DENY_BIND); }

/* ---- packets ---- */

enum verdict { PASS, DROP_BLOCK, DROP_ISOLATE, DROP_INTEL };

/* The remote address of a packet at data: its source on ingress, its
 * destination on egress. Returns false for what is not IP. */
static __always_inline enum verdict packet_verdict(void *data, void *data_end, bool ingress)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return PASS;
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > data_end)
			return PASS;
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	struct guard_config *c = guard_cfg();
	bool isolate = c && c->isolate;
	struct lpm_key k;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			return PASS;
		key_v4(&k, ingress ? ip->saddr : ip->daddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return PASS;
		key_v6(&k, ingress ? (void *)&ip6->saddr : (void *)&ip6->daddr);
		/* Neighbour discovery keeps allowed IPv6 peers reachable. */
		if (isolate && ip6->nexthdr == 58 /* ICMPv6 */) {
			struct icmp6hdr *ic = (void *)(ip6 + 1);
			if ((void *)(ic + 1) <= data_end && ic->icmp6_type >= 133 && ic->icmp6_type <= 137)
				isolate = false;
		}
	} else {
		/* ARP passes, so that allowed peers stay reachable; under isolation
		 * every other non-IP frame is dropped. */
		if (isolate && proto != bpf_htons(ETH_P_ARP))
			return DROP_ISOLATE;
		return PASS;
	}
	if (blocked(&k))
		return DROP_BLOCK;
	if (isolate && !allowed(&k))
		return DROP_ISOLATE;
	if (intel_packet_dropped(&k, ingress))
		return DROP_INTEL;
	return PASS;
}

/* ingress_drop decides an incoming frame: true to drop it. */
static __always_inline bool ingress_drop(void *data, void *data_end)
{
	switch (packet_verdict(data, data_end, true)) {
	case DROP_BLOCK:
		count(STAT_BLOCK_IN);
		return true;
	case DROP_ISOLATE:
		count(STAT_ISOLATE_IN);
		return true;
	case DROP_INTEL:
		nd_count(ND_INTEL_DROP_IN);
		return true;
	default:
		break;
	}
	struct netdef_config *nc = netdef_cfg();
	return nc && nc->account && account_source(nc, data, data_end);
}

SEC("xdp")
int vg_xdp_in(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	return ingress_drop(data, data_end) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int vg_tc_out(struct __sk_buff *skb)
{
	switch (packet_verdict((void *)(long)skb->data, (void *)(long)skb->data_end, false)) {
	case DROP_BLOCK:
		count(STAT_BLOCK_OUT);
		return TCX_DROP;
	case DROP_ISOLATE:
		count(STAT_ISOLATE_OUT);
		return TCX_DROP;
	case DROP_INTEL:
		nd_count(ND_INTEL_DROP_OUT);
		return TCX_DROP;
	default:
		break;
	}
	return payload_verdict(skb, false) ? TCX_DROP : TCX_NEXT;
}

/* Ingress at tcx, where vg_xdp_in runs: payload rules only. */
SEC("tc")
int vg_tc_in(struct __sk_buff *skb)
{
	return payload_verdict(skb, true) ? TCX_DROP : TCX_NEXT;
}

/* Ingress at tcx, where XDP does not run: vg_xdp_in's work too. On veth and
 * other virtual interfaces the skb exists before XDP would run, and XDP
 * first turns it into an XDP buffer, at a cost higher than the drop saves
 * (bench/flood.sh). */
SEC("tc")
int vg_tc_in_full(struct __sk_buff *skb)
{
	/* The headers must be in the skb's linear part: they almost always are;
	 * pull them (at some cost) only when not even the IP header is. */
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	if (data + 34 > data_end && skb->len >= 34) {
		bpf_skb_pull_data(skb, skb->len < 78 ? skb->len : 78);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (ingress_drop(data, data_end))
		return TCX_DROP;
	return payload_verdict(skb, true) ? TCX_DROP : TCX_NEXT;
}
