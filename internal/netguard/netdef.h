/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network defence, included by netguard.bpf.c so that one XDP program per
 * interface does both enforcement and accounting, on the shared block list.
 *
 *  - Accounting (XDP ingress, after the block list): per source, in a per-CPU
 *    LRU hash, packets, bytes, SYNs and the probes port scans send (SYN, FIN,
 *    NULL, Xmas, UDP), with new (source, port) and (source, host) pairs
 *    counted through a shared LRU hash. Totals in a per-CPU array.
 *  - Flood limits decided in the kernel: each CPU keeps a one-second window
 *    per source; a source over a limit on one CPU is put in the block list
 *    with an expiry (unless allowlisted) and a notice goes to user space.
 *    A flood spread over CPUs is caught by user space from the summed
 *    counters.
 *  - Threat intelligence: an LPM trie of listed prefixes, looked up on
 *    ingress (source), egress (destination) and connect; listed with block,
 *    dropped or refused; either way a notice, at most one per address,
 *    direction and notice interval.
 *  - Payload signatures at tcx: byte patterns searched in the first
 *    SIG_SCAN_MAX bytes of the first SIG_FLOW_PACKETS payload packets of
 *    each TCP/UDP flow and direction.
 */
#ifndef VIGIL_NETDEF_H
#define VIGIL_NETDEF_H

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20

#define NSEC_PER_SEC 1000000000ULL

#define SIG_MAX 32
#define SIG_LEN_MAX 32
#define SIG_SCAN_MAX 128  /* payload bytes searched */
#define SIG_SCRATCH 256   /* power of two >= SIG_SCAN_MAX + SIG_LEN_MAX */
#define SIG_FLOW_PACKETS 3

struct netdef_config {
	__u32 account;      /* per-source accounting in XDP */
	__u32 auto_block;   /* block sources over a limit in the kernel */
	__u64 pps;          /* per-source limits in a CPU's one-second window; 0: none */
	__u64 bits;
	__u64 syns;
	__u64 block_ns;     /* how long a kernel block lasts */
	__u64 pair_ns;      /* a (source, port) or (source, host) pair counts again after this */
	__u64 notice_ns;    /* at most one intel notice per address and direction in this */
	__u32 udp_port_max; /* UDP probes count only to ports below (the ephemeral range) */
	__u32 intel;        /* entries in vg_intel; 0 skips the lookups */
	__u32 signatures;   /* entries in vg_sigs */
	__u32 pad;
};

struct src_stats {
	__u64 packets, bytes;
	__u64 syns;     /* SYN without ACK */
	__u64 syns_raw; /* of which with at most 4 bytes of TCP options (crafted, as nmap -sS) */
	__u64 fins, nulls, xmas, udp;
	__u64 ports, hosts; /* new (source, port) and (source, host) pairs */
	__u64 last;         /* CLOCK_BOOTTIME ns */
	__u64 win_start, win_packets, win_bytes, win_syns;
};

struct nd_total {
	__u64 packets, bytes, syns;
};

enum pair_kind { PAIR_PORT = 1, PAIR_HOST = 2 };

struct pair_key {
	__u8 src[16];
	__u8 dst[16]; /* host pairs; zero for port pairs */
	__u16 port;   /* port pairs */
	__u8 proto;
	__u8 kind;
};

struct intel_val {
	__u32 list;  /* user space's list number */
	__u32 block; /* drop and refuse, not only report */
};

struct sig {
	__u8 pat[SIG_LEN_MAX];
	__u32 len;
	__u16 port;  /* either end; 0: any */
	__u8 proto;  /* 0: TCP and UDP */
	__u8 dir;    /* 0: both, 1: ingress, 2: egress */
	__u8 block;  /* drop the packet */
	__u8 pad[3];
};

struct flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport, dport;
	__u8 proto;
	__u8 dir;
	__u16 pad;
};

enum notice_kind { NOTICE_FLOOD = 1, NOTICE_INTEL = 2, NOTICE_PAYLOAD = 3 };
enum flood_reason { FLOOD_PPS = 1, FLOOD_BITS = 2, FLOOD_SYNS = 3 };

struct notice {
	__u32 kind;   /* enum notice_kind */
	__u32 reason; /* flood: enum flood_reason; intel: list; payload: signature */
	__u8 src[16]; /* intel: the remote address */
	__u8 dst[16];
	__u16 sport, dport;
	__u8 proto;
	__u8 ingress;
	__u8 block;   /* what the kernel did: blocked, dropped or refused */
	__u8 pad;
	__u64 rate;    /* flood: the count in the window (packets, bits or SYNs) */
	__u64 expires; /* flood: the block's expiry */
};

enum nd_stat {
	ND_INTEL_DROP_IN,
	ND_INTEL_DROP_OUT,
	ND_INTEL_DENY_CONNECT,
	ND_FLOOD_BLOCKS,
	ND_PAYLOAD_MATCH,
	ND_PAYLOAD_DROP,
	ND_NOTICE_LOST,
	ND_MAX,
};

const struct netdef_config *unused_netdef_config __attribute__((unused));
const struct src_stats *unused_src_stats __attribute__((unused));
const struct nd_total *unused_nd_total __attribute__((unused));
const struct pair_key *unused_pair_key __attribute__((unused));
const struct intel_val *unused_intel_val __attribute__((unused));
const struct sig *unused_sig __attribute__((unused));
const struct notice *unused_notice __attribute__((unused));
const enum nd_stat *unused_nd_stat __attribute__((unused));
const enum notice_kind *unused_notice_kind __attribute__((unused));
const enum flood_reason *unused_flood_reason __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netdef_config);
} vg_nd_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u8[16]);
	__type(value, struct src_stats);
} vg_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nd_total);
} vg_nd_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pair_key);
	__type(value, __u64);
} vg_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1048576);
	__type(key, struct lpm_key);
	__type(value, struct intel_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vg_intel SEC(".maps");

/* Never blocked by the kernel's flood limits. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vg_nd_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct lpm_key); /* prefixlen: 0 egress, 1 ingress */
	__type(value, __u64);
} vg_intel_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SIG_MAX);
	__type(key, __u32);
	__type(value, struct sig);
} vg_sigs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct flow_key);
	__type(value, __u32);
} vg_flows SEC(".maps");

struct scratch {
	__u8 data[SIG_SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} vg_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} vg_notice SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} vg_nd_stats SEC(".maps");

static __always_inline void nd_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&vg_nd_stats, &stat);
	if (n)
		(*n)++;
}

static __always_inline struct netdef_config *netdef_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&vg_nd_config, &zero);
}

static __always_inline void notify(struct notice *n)
{
	if (bpf_ringbuf_output(&vg_notice, n, sizeof(*n), 0) < 0)
		nd_count(ND_NOTICE_LOST);
}

/* A parsed packet: addresses as 16 bytes (IPv4 mapped), ports in host order. */
struct pkt {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport, dport;
	__u8 proto;
	__u8 flags; /* TCP */
	__u8 doff;  /* TCP header length in 32-bit words */
	__u8 l4;    /* the transport header was read */
	__u32 payload; /* offset of the payload from the frame's start */
};

static __always_inline bool parse(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return false;
	__u16 proto = eth->h_proto;
	__u32 off = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = (void *)(eth + 1);
		if ((void *)(vh + 1) > data_end)
			return false;
		proto = vh->h_vlan_encapsulated_proto;
		off += sizeof(*vh);
	}
	__builtin_memset(p, 0, sizeof(*p));
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > data_end)
			return false;
		p->src[10] = p->src[11] = p->dst[10] = p->dst[11] = 0xff;
		__builtin_memcpy(&p->src[12], &ip->saddr, 4);
		__builtin_memcpy(&p->dst[12], &ip->daddr, 4);
		p->proto = ip->protocol;
		if (ip->frag_off & bpf_htons(0x1fff))
			return true; /* a later fragment: no transport header */
		off += ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return false;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		p->proto = ip6->nexthdr; /* extension headers: no transport header read */
		off += sizeof(*ip6);
	} else {
		return false;
	}
	off &= 0xff;
	if (p->proto == IPPROTO_TCP_) {
		struct tcphdr *th = data + off;
		if ((void *)(th + 1) > data_end)
			return true;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		p->flags = ((__u8 *)th)[13];
		p->doff = th->doff;
		p->payload = off + th->doff * 4;
		p->l4 = 1;
	} else if (p->proto == IPPROTO_UDP_) {
		struct udphdr *uh = data + off;
		if ((void *)(uh + 1) > data_end)
			return true;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
		p->payload = off + sizeof(*uh);
		p->l4 = 1;
	}
	return true;
}

/* ---- threat intelligence ---- */

static __always_inline struct intel_val *intel_hit(const struct lpm_key *k)
{
	struct netdef_config *nc = netdef_cfg();
	if (!nc || !nc->intel)
		return NULL;
	return bpf_map_lookup_elem(&vg_intel, k);
}

static __always_inline void intel_notice(const struct lpm_key *k, struct intel_val *v, bool ingress)
{
	struct netdef_config *nc = netdef_cfg();
	if (!nc)
		return;
	struct lpm_key seen = *k;
	seen.prefixlen = ingress;
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 *last = bpf_map_lookup_elem(&vg_intel_seen, &seen);
	if (last && now - *last < nc->notice_ns)
		return;
	bpf_map_update_elem(&vg_intel_seen, &seen, &now, BPF_ANY);
	struct notice n = {.kind = NOTICE_INTEL, .reason = v->list, .ingress = ingress, .block = v->block != 0};
	__builtin_memcpy(n.src, k->addr, 16);
	notify(&n);
}

/* A connect to a listed address with block: refused (EPERM). */
static __always_inline bool intel_connect_denied(const struct lpm_key *k)
{
	struct intel_val *v = intel_hit(k);
	if (!v || !v->block)
		return false;
	nd_count(ND_INTEL_DENY_CONNECT);
	intel_notice(k, v, false);
	return true;
}

/* A packet from (ingress) or to (egress) a listed address: reported, and
 * dropped when the list says block. */
static __always_inline bool intel_packet_dropped(const struct lpm_key *k, bool ingress)
{
	struct intel_val *v = intel_hit(k);
	if (!v)
		return false;
	intel_notice(k, v, ingress);
	return v->block != 0;
}

/* ---- accounting and flood limits (XDP) ---- */

static __always_inline bool pair_new(struct pair_key *pk, __u64 now, __u64 window)
{
	__u64 *seen = bpf_map_lookup_elem(&vg_pairs, pk);
	if (seen && now - *seen < window)
		return false;
	bpf_map_update_elem(&vg_pairs, pk, &now, BPF_ANY);
	return true;
}

static __always_inline bool nd_allowed(const __u8 *addr)
{
	struct lpm_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&vg_nd_allow, &k) != NULL;
}

/* Counts a packet that passed the block list; returns true when its source
 * just went over a limit and is now blocked (the packet is dropped too). */
static __always_inline bool account_source(struct netdef_config *nc, void *data, void *data_end)
{
	struct pkt p;
	if (!parse(data, data_end, &p))
		return false;
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 len = data_end - data;
	bool syn = p.proto == IPPROTO_TCP_ && p.l4 && (p.flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;

	__u32 zero = 0;
	struct nd_total *t = bpf_map_lookup_elem(&vg_nd_total, &zero);
	if (t) {
		t->packets++;
		t->bytes += len;
		t->syns += syn;
	}

	struct src_stats *s = bpf_map_lookup_elem(&vg_src, p.src);
	if (!s) {
		struct src_stats z = {.win_start = now};
		bpf_map_update_elem(&vg_src, p.src, &z, BPF_ANY);
		s = bpf_map_lookup_elem(&vg_src, p.src);
		if (!s)
			return false;
	}
	s->packets++;
	s->bytes += len;
	s->last = now;
	if (now - s->win_start >= NSEC_PER_SEC) {
		s->win_start = now;
		s->win_packets = s->win_bytes = s->win_syns = 0;
	}
	s->win_packets++;
	s->win_bytes += len;

	bool probe = false;
	if (syn) {
		s->syns++;
		s->win_syns++;
		if (p.doff <= 6)
			s->syns_raw++;
		probe = true;
	} else if (p.proto == IPPROTO_TCP_ && p.l4) {
		__u8 f = p.flags & 0x3f;
		if (f == TCPF_FIN) {
			s->fins++;
			probe = true;
		} else if (f == 0) {
			s->nulls++;
			probe = true;
		} else if (f == (TCPF_FIN | TCPF_PSH | TCPF_URG)) {
			s->xmas++;
			probe = true;
		}
	} else if (p.proto == IPPROTO_UDP_ && p.l4 && p.dport < nc->udp_port_max) {
		s->udp++;
		probe = true;
	}
	if (probe) {
		struct pair_key pk = {.port = p.dport, .proto = p.proto, .kind = PAIR_PORT};
		__builtin_memcpy(pk.src, p.src, 16);
		if (pair_new(&pk, now, nc->pair_ns))
			s->ports++;
		pk.port = 0;
		pk.proto = 0;
		pk.kind = PAIR_HOST;
		__builtin_memcpy(pk.dst, p.dst, 16);
		if (pair_new(&pk, now, nc->pair_ns))
			s->hosts++;
	}

	if (!nc->auto_block)
		return false;
	struct notice n = {.kind = NOTICE_FLOOD, .block = 1, .ingress = 1, .proto = p.proto};
	if (nc->pps && s->win_packets > nc->pps) {
		n.reason = FLOOD_PPS;
		n.rate = s->win_packets;
	} else if (nc->bits && s->win_bytes * 8 > nc->bits) {
		n.reason = FLOOD_BITS;
		n.rate = s->win_bytes * 8;
	} else if (nc->syns && s->win_syns > nc->syns) {
		n.reason = FLOOD_SYNS;
		n.rate = s->win_syns;
	} else {
		return false;
	}
	if (nd_allowed(p.src))
		return false;
	struct lpm_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, p.src, 16);
	struct block_val v = {.expires = now + nc->block_ns, .source = 3 /* netguard.SourceDetector */};
	if (bpf_map_update_elem(&vg_block, &k, &v, BPF_ANY) < 0)
		return false;
	nd_count(ND_FLOOD_BLOCKS);
	__builtin_memcpy(n.src, p.src, 16);
	__builtin_memcpy(n.dst, p.dst, 16);
	n.expires = v.expires;
	notify(&n);
	return true;
}

/* ---- payload signatures (tcx) ---- */

struct mctx {
	__u32 n;     /* payload bytes in the scratch buffer */
	__u32 cur;   /* the signature being tried */
	__s32 found; /* the signature that matched; -1: none */
	__u16 sport, dport;
	__u8 proto;
	__u8 dir;
	__u8 hit;
	__u8 block;
};

static long match_at(__u64 off, struct mctx *m)
{
	__u32 zero = 0, cur = m->cur;
	struct scratch *buf = bpf_map_lookup_elem(&vg_scratch, &zero);
	struct sig *s = bpf_map_lookup_elem(&vg_sigs, &cur);
	if (!buf || !s)
		return 1;
	for (__u32 i = 0; i < SIG_LEN_MAX; i++) {
		if (i >= s->len)
			break;
		if (buf->data[(off + i) & (SIG_SCRATCH - 1)] != s->pat[i])
			return 0;
	}
	m->hit = 1;
	return 1;
}

static long match_sig(__u64 idx, struct mctx *m)
{
	__u32 i = idx;
	struct sig *s = bpf_map_lookup_elem(&vg_sigs, &i);
	if (!s)
		return 1;
	if (s->len == 0 || s->len > SIG_LEN_MAX || s->len > m->n)
		return 0;
	if (s->proto && s->proto != m->proto)
		return 0;
	if (s->dir && s->dir != m->dir)
		return 0;
	if (s->port && s->port != m->sport && s->port != m->dport)
		return 0;
	m->cur = i;
	m->hit = 0;
	bpf_loop(m->n - s->len + 1, match_at, m, 0);
	if (!m->hit)
		return 0;
	m->found = i;
	m->block = s->block;
	return 1;
}

/* Searches the first payload bytes of the first packets of each flow for
 * the signatures; returns true when one that blocks matched. */
static __always_inline bool payload_verdict(struct __sk_buff *skb, bool ingress)
{
	struct netdef_config *nc = netdef_cfg();
	if (!nc || !nc->signatures)
		return false;
	struct pkt p;
	if (!parse((void *)(long)skb->data, (void *)(long)skb->data_end, &p) || !p.l4)
		return false;
	if (p.proto != IPPROTO_TCP_ && p.proto != IPPROTO_UDP_)
		return false;
	if (p.payload >= skb->len)
		return false;
	__u64 n = skb->len - p.payload;
	if (n > SIG_SCAN_MAX)
		n = SIG_SCAN_MAX;

	struct flow_key fk = {.sport = p.sport, .dport = p.dport, .proto = p.proto, .dir = ingress};
	__builtin_memcpy(fk.src, p.src, 16);
	__builtin_memcpy(fk.dst, p.dst, 16);
	__u32 *seen = bpf_map_lookup_elem(&vg_flows, &fk);
	if (seen) {
		if (*seen >= SIG_FLOW_PACKETS)
			return false;
		(*seen)++;
	} else {
		__u32 one = 1;
		bpf_map_update_elem(&vg_flows, &fk, &one, BPF_ANY);
	}

	__u32 zero = 0;
	struct scratch *buf = bpf_map_lookup_elem(&vg_scratch, &zero);
	if (!buf)
		return false;
	if (n < 1 || n > SIG_SCAN_MAX)
		return false;
	/* The same n, spelt so that every verifier sees 1..SIG_SCAN_MAX (a
	 * power of two): clang folds the checks above into one compare of n - 1,
	 * which leaves n's own minimum unknown to 6.1's verifier. */
	asm volatile("" : "+r"(n));
	n = ((n - 1) & (SIG_SCAN_MAX - 1)) + 1;
	if (bpf_skb_load_bytes(skb, p.payload, buf->data, n) < 0)
		return false;
	struct mctx m = {.n = n, .found = -1, .sport = p.sport, .dport = p.dport, .proto = p.proto,
			 .dir = ingress ? 1 : 2};
	__u32 nsig = nc->signatures;
	if (nsig > SIG_MAX)
		nsig = SIG_MAX;
	bpf_loop(nsig, match_sig, &m, 0);
	if (m.found < 0)
		return false;
	nd_count(ND_PAYLOAD_MATCH);
	if (m.block)
		nd_count(ND_PAYLOAD_DROP);
	struct notice no = {.kind = NOTICE_PAYLOAD, .reason = m.found, .sport = p.sport, .dport = p.dport,
			    .proto = p.proto, .ingress = ingress, .block = m.block};
	__builtin_memcpy(no.src, p.src, 16);
	__builtin_memcpy(no.dst, p.dst, 16);
	notify(&no);
	return m.block;
}

#endif
