//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Sockets: connect, bind, listen, accept and DNS queries (UDP datagrams to
 * port 53), on syscall tracepoints (shared/KERNEL.md: no kprobes or fentry).
 *
 * connect and bind read the caller's sockaddr at sys_enter, before a blocking
 * connect gives another thread time to rewrite it, and keep it per thread
 * until sys_exit. The other hooks run at sys_exit only and read the syscall's
 * arguments from the task's saved user registers.
 *
 * sendto, sendmsg and sendmmsg run on every datagram and every send() a busy
 * server makes: they check the net kind and port 53 first, with no map
 * update and no record built for anything else.
 */
#include "lib/common.h"
#include "lib/output.h"
#include "lib/filter.h"
#include "lib/task.h"

#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so that bpf2go can generate their Go mirrors. */
const struct net_event *unused_net_event __attribute__((unused));
const enum net_op *unused_net_op __attribute__((unused));

/* UAPI values vmlinux.h does not carry (they are macros). */
#define AF_UNSPEC 0
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define EAGAIN 11
#define ERESTARTSYS 512 /* 512-516: kernel-internal, the call is restarted */
#define ERESTART_RESTARTBLOCK 516
#define S_IFMT 00170000
#define S_IFSOCK 0140000

#define DNS_PORT 53
#define DNS_PAYLOAD_MAX 512 /* bytes of a query copied into the record */
#define DNS_PAYLOAD_MASK 1023
#define SOCKADDR_MAX 28	    /* sizeof(struct sockaddr_in6) */
#define SOCKADDR_IN_SIZE 16 /* sizeof(struct sockaddr_in) */
#define MMSG_MAX 4	    /* messages of one sendmmsg looked at */

/* User-space ABI layouts (not relocated: they are the same on every kernel). */
#define MSGHDR_NAME_OFF 0
#define MSGHDR_IOV_OFF 16
#define MSGHDR_IOVLEN_OFF 24
#define MMSGHDR_SIZE 64

struct user_iov {
	__u64 base;
	__u64 len;
};

/* A connect or bind between sys_enter and sys_exit. */
struct net_args {
	__s32 fd;
	__u32 addr_len; /* bytes of addr read from the caller, 0 when unreadable */
	__u8 addr[SOCKADDR_MAX];
	__u32 _pad;
};

/* LRU: an entry whose exit was never seen cannot fill the map for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct net_args);
} vigil_net_args SEC(".maps");

/* The socket behind a file descriptor. */
struct sock_info {
	struct sock *sk;
	__u16 family;
	__u16 type;
	__u16 protocol;
};

static __always_inline bool family_reported(__u16 family)
{
	return family == AF_INET || family == AF_INET6 || family == AF_UNIX;
}

/* The net kind's filter without counting: for hooks where most calls are not
 * records at all (every send), so a disabled kind must not count them. */
static __always_inline struct kind_filter *kind_peek(void)
{
	__u32 type = EVENT_NET;
	struct kind_filter *f = bpf_map_lookup_elem(&vigil_kinds, &type);
	return f && f->enabled ? f : NULL;
}

static __always_inline struct pt_regs *user_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* bpf_rdonly_cast (6.2) lets the fd walk load fields directly; user space
 * sets fd_walk_direct when the kernel has it. Weak, so that an older kernel
 * loads the program: the branch that calls it is then dead. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
const volatile bool fd_walk_direct = false;

/*
 * fd -> struct file -> struct socket -> struct sock, or NULL when fd is not
 * an open socket of the current task. send() on a connected socket runs this
 * on every call, so it loads through BTF pointers (plain loads the verifier
 * guards against faults) rather than a helper call per field: one probe read
 * for the fd array slot, then bpf_rdonly_cast where the kernel keeps an
 * untyped pointer. Without it, probe reads: about 60 ns more per call.
 */
static __always_inline struct sock *fd_sock(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file *file = NULL;

	if (fd < 0 || fd >= fdt->max_fds)
		return NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]);
	if (!file)
		return NULL;
	if (fd_walk_direct) {
		file = bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
		if ((file->f_inode->i_mode & S_IFMT) != S_IFSOCK)
			return NULL;
		struct socket *sock = bpf_rdonly_cast(file->private_data,
						      bpf_core_type_id_kernel(struct socket));
		return sock->sk;
	}
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	return BPF_CORE_READ(sock, sk);
}

static __always_inline void sock_info_from(struct sock_info *si, struct sock *sk)
{
	si->sk = sk;
	si->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	si->type = BPF_CORE_READ(sk, sk_type);
	si->protocol = BPF_CORE_READ(sk, sk_protocol);
}

static __always_inline bool sock_info_get(struct sock_info *si, int fd)
{
	struct sock *sk = fd_sock(fd);
	if (!sk)
		return false;
	sock_info_from(si, sk);
	return true;
}

/*
 * The local end as the kernel holds it: the bound address, and the port
 * packets leave from (inet_sport, which a refused connect keeps when it
 * releases the bound port, skc_num).
 *
 * sk is loaded into a local first here and below: BPF_CORE_READ(si->sk, ...)
 * would ask CO-RE to relocate struct sock_info, which the kernel does not have.
 */
static __always_inline void sock_local(struct net_event *e, const struct sock_info *si)
{
	struct sock *sk = si->sk;

	if (si->family == AF_INET6)
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
	else if (si->family == AF_INET)
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
	else
		return;
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* The remote end of a connected socket. */
static __always_inline void sock_remote(struct net_event *e, const struct sock_info *si)
{
	struct sock *sk = si->sk;

	if (si->family == AF_INET6)
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr);
	else if (si->family == AF_INET)
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	else
		return;
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/*
 * An address the caller passed, into addr/port. An IPv4 sockaddr given to an
 * IPv6 socket (dual-stack use) is written IPv4-mapped, so that the record's
 * family always says how to read its addresses; an IPv6 one given to an IPv4
 * socket (which the kernel refuses) is left out.
 */
static __always_inline void sockaddr_put(__u8 *addr, __u16 *port, const __u8 *sa, __u32 len,
					 __u16 sk_family)
{
	__u16 fam = *(const __u16 *)sa;

	if (fam == AF_INET && len >= 8) {
		*port = bpf_ntohs(*(const __u16 *)(sa + 2));
		if (sk_family == AF_INET6) {
			addr[10] = 0xff;
			addr[11] = 0xff;
			__builtin_memcpy(addr + 12, sa + 4, 4);
		} else {
			__builtin_memcpy(addr, sa + 4, 4);
		}
	} else if (fam == AF_INET6 && len >= 24 && sk_family != AF_INET) {
		*port = bpf_ntohs(*(const __u16 *)(sa + 2));
		__builtin_memcpy(addr, sa + 8, 16);
	}
}

static __always_inline void event_fill(struct net_event *e, __u32 op, long ret, int fd,
				       const struct sock_info *si)
{
	task_info_fill(&e->task, bpf_get_current_task_btf());
	e->op = op;
	e->ret = ret;
	e->fd = fd;
	e->family = si->family;
	e->type = si->type;
	e->protocol = si->protocol;
}

/* ---- connect and bind: the sockaddr at enter, the outcome at exit ---- */

static __always_inline int args_stash(struct trace_event_raw_sys_enter *ctx)
{
	if (!filter_kind(EVENT_NET))
		return 0;

	struct net_args a = { .fd = ctx->args[0] };
	const void *uaddr = (const void *)ctx->args[1];
	__u32 len = ctx->args[2];

	/* Fixed-size reads (a sockaddr_in may end a page: then its 16 bytes),
	 * which every verifier follows; len says how much of it is the caller's. */
	if (uaddr && len >= sizeof(__u16) &&
	    (bpf_probe_read_user(a.addr, SOCKADDR_MAX, uaddr) == 0 ||
	     bpf_probe_read_user(a.addr, SOCKADDR_IN_SIZE, uaddr) == 0)) {
		__u16 fam = *(__u16 *)a.addr;
		/* netlink, packet and the rest are not reported */
		if (fam != AF_UNSPEC && !family_reported(fam))
			return 0;
		a.addr_len = len < SOCKADDR_MAX ? len : SOCKADDR_MAX;
	}
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&vigil_net_args, &id, &a, BPF_ANY);
	return 0;
}

static __always_inline int args_report(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct net_args *p = bpf_map_lookup_elem(&vigil_net_args, &id);
	if (!p)
		return 0;
	struct net_args a = *p;
	bpf_map_delete_elem(&vigil_net_args, &id);

	long ret = ctx->ret;
	struct sock_info si = {};
	if (!sock_info_get(&si, a.fd) && a.addr_len)
		si.family = *(__u16 *)a.addr; /* not a socket: say what was asked */
	if (!family_reported(si.family))
		return 0;

	struct kind_filter *f = filter_kind(EVENT_NET);
	if (!f || !filter_pass(f, EVENT_NET, ret))
		return 0;

	struct net_event *e = event_reserve(EVENT_NET, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(&e->task, 0, sizeof(*e) - sizeof(e->hdr));
	event_fill(e, op, ret, a.fd, &si);

	if (op == NET_CONNECT) {
		if (a.addr_len)
			sockaddr_put(e->daddr, &e->dport, a.addr, a.addr_len, si.family);
		if (si.sk)
			sock_local(e, &si); /* the port the kernel picked, if any */
	} else { /* NET_BIND */
		if (a.addr_len)
			sockaddr_put(e->saddr, &e->sport, a.addr, a.addr_len, si.family);
		/* bind to port 0: the kernel picked one */
		struct sock *sk = si.sk;
		if (e->sport == 0 && ret == 0 && sk)
			e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	}
	event_submit(e, EVENT_NET);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int vigil_connect_e(struct trace_event_raw_sys_enter *ctx)
{
	return args_stash(ctx);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int vigil_connect(struct trace_event_raw_sys_exit *ctx)
{
	return args_report(ctx, NET_CONNECT);
}

SEC("tracepoint/syscalls/sys_enter_bind")
int vigil_bind_e(struct trace_event_raw_sys_enter *ctx)
{
	return args_stash(ctx);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int vigil_bind(struct trace_event_raw_sys_exit *ctx)
{
	return args_report(ctx, NET_BIND);
}

/* ---- listen and accept: everything from the socket, at exit ---- */

/* A record about the socket behind fd, with the ends the socket knows. */
static __always_inline int sock_report(int fd, long ret, __u32 op, bool remote)
{
	struct kind_filter *f = filter_kind(EVENT_NET);
	if (!f)
		return 0;
	struct sock_info si = {};
	if (!sock_info_get(&si, fd) || !family_reported(si.family))
		return 0;
	if (!filter_pass(f, EVENT_NET, ret))
		return 0;

	struct net_event *e = event_reserve(EVENT_NET, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(&e->task, 0, sizeof(*e) - sizeof(e->hdr));
	event_fill(e, op, ret, fd, &si);
	sock_local(e, &si);
	if (remote)
		sock_remote(e, &si);
	event_submit(e, EVENT_NET);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int vigil_listen(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs = user_regs();
	return sock_report((int)regs->di, ctx->ret, NET_LISTEN, false);
}

/* A new connection: the new socket has both ends. A failed accept is
 * reported on the listening socket; EAGAIN (nothing to accept on a
 * non-blocking socket) and a signal's interruption (the call is restarted)
 * are not events. */
static __always_inline int accept_report(struct trace_event_raw_sys_exit *ctx)
{
	long ret = ctx->ret;
	if (ret == -EAGAIN || (ret <= -ERESTARTSYS && ret >= -ERESTART_RESTARTBLOCK))
		return 0;
	if (ret >= 0)
		return sock_report(ret, ret, NET_ACCEPT, true);
	struct pt_regs *regs = user_regs();
	return sock_report((int)regs->di, ret, NET_ACCEPT, false);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int vigil_accept(struct trace_event_raw_sys_exit *ctx)
{
	return accept_report(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int vigil_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return accept_report(ctx);
}

/* ---- DNS: datagrams to port 53 ---- */

/* Whether the sockaddr at uaddr is an inet address with port 53: one 4-byte
 * read (family, port) and two compares. */
static __always_inline bool dns_sockaddr(const void *uaddr)
{
	__u32 w = 0;
	if (bpf_probe_read_user(&w, sizeof(w), uaddr))
		return false;
	__u16 fam = w & 0xffff;
	return (fam == AF_INET || fam == AF_INET6) && (w >> 16) == bpf_htons(DNS_PORT);
}

/* Whether a connected socket's peer is port 53: the send had no address. */
static __always_inline bool dns_connected(struct sock *sk)
{
	if (!sk)
		return false;
	__be16 dport = fd_walk_direct ? sk->__sk_common.skc_dport
				      : BPF_CORE_READ(sk, __sk_common.skc_dport);
	return dport == bpf_htons(DNS_PORT);
}

/*
 * A DNS record: the datagram's first buf_len bytes (at most DNS_PAYLOAD_MAX)
 * follow the struct. uaddr is the destination the caller passed, or NULL for
 * a connected socket.
 */
static __always_inline void dns_report(struct kind_filter *f, const struct sock_info *si, int fd,
				       long ret, const void *uaddr, const void *buf, __u64 buf_len)
{
	if (si->protocol != IPPROTO_UDP || !filter_pass(f, EVENT_NET, ret))
		return;
	struct scratch *s = scratch_get();
	if (!s)
		return;
	struct net_event *e = (void *)s->buf;
	__builtin_memset(e, 0, sizeof(*e));
	event_fill(e, NET_DNS, ret, fd, si);
	sock_local(e, si);
	if (uaddr) {
		__u8 sa[SOCKADDR_MAX] = {};
		if (bpf_probe_read_user(sa, sizeof(sa), uaddr) &&
		    bpf_probe_read_user(sa, SOCKADDR_IN_SIZE, uaddr)) /* at a page's end */
			return;
		sockaddr_put(e->daddr, &e->dport, sa, sizeof(sa), si->family);
	} else {
		sock_remote(e, si);
	}

	__u64 n = buf_len > DNS_PAYLOAD_MAX ? DNS_PAYLOAD_MAX : buf_len;
	/* Bound n by a mask the compiler must keep: older verifiers (6.1) lose
	 * the clamp's bound when the value goes through the stack. */
	barrier_var(n);
	n &= DNS_PAYLOAD_MASK;
	if (!n || bpf_probe_read_user(&s->buf[sizeof(*e)], n, buf))
		n = 0;
	e->payload_len = n;
	__u32 size = sizeof(*e) + n;
	header_init(&e->hdr, EVENT_NET, size);
	event_output(e, EVENT_NET, size);
}

/* The destination of a send without an address: the connected peer. Fills si
 * only when that peer is port 53, so most sends stop after the fd walk. */
static __always_inline bool peer_is_dns(struct sock_info *si, int fd)
{
	struct sock *sk = fd_sock(fd);
	if (!dns_connected(sk))
		return false;
	sock_info_from(si, sk);
	return true;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int vigil_sendto(struct trace_event_raw_sys_exit *ctx)
{
	struct kind_filter *f = kind_peek();
	if (!f)
		return 0;
	struct pt_regs *regs = user_regs();
	const void *uaddr = (const void *)regs->r8;
	int fd = regs->di; /* an int: the kernel ignores the upper half */
	struct sock_info si = {};

	if (uaddr ? !dns_sockaddr(uaddr) || !sock_info_get(&si, fd) : !peer_is_dns(&si, fd))
		return 0;
	dns_report(f, &si, fd, ctx->ret, uaddr, (const void *)regs->si, regs->dx);
	return 0;
}

/* One struct user_msghdr whose destination is port 53 (uaddr, or the
 * connected peer when NULL): its first iovec is the query. */
static __always_inline void msghdr_report(struct kind_filter *f, const struct sock_info *si, int fd,
					  long ret, const void *msg, const void *uaddr)
{
	const void *iovp = NULL;
	__u64 iovlen = 0;
	struct user_iov iov = {};

	bpf_probe_read_user(&iovp, sizeof(iovp), msg + MSGHDR_IOV_OFF);
	bpf_probe_read_user(&iovlen, sizeof(iovlen), msg + MSGHDR_IOVLEN_OFF);
	if (iovp && iovlen)
		bpf_probe_read_user(&iov, sizeof(iov), iovp);
	dns_report(f, si, fd, ret, uaddr, (const void *)iov.base, iov.len);
}

/* Whether a message goes to port 53; fills si on the first yes. */
static __always_inline bool msghdr_dns(struct sock_info *si, int fd, const void *msg,
				       const void **uaddr)
{
	*uaddr = NULL;
	if (bpf_probe_read_user(uaddr, sizeof(*uaddr), msg + MSGHDR_NAME_OFF))
		return false;
	if (!*uaddr)
		return si->sk ? dns_connected(si->sk) : peer_is_dns(si, fd);
	return dns_sockaddr(*uaddr) && (si->sk || sock_info_get(si, fd));
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int vigil_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	struct kind_filter *f = kind_peek();
	if (!f)
		return 0;
	struct pt_regs *regs = user_regs();
	const void *msg = (const void *)regs->si;
	const void *uaddr;
	int fd = regs->di; /* an int: the kernel ignores the upper half */
	struct sock_info si = {};

	if (msghdr_dns(&si, fd, msg, &uaddr))
		msghdr_report(f, &si, fd, ctx->ret, msg, uaddr);
	return 0;
}

/*
 * Each message of a batch (glibc sends the A and AAAA queries in one), up to
 * MMSG_MAX. The first message decides for the batch, so a batch of other
 * traffic costs what one sendmsg does.
 */
SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int vigil_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	struct kind_filter *f = kind_peek();
	if (!f)
		return 0;
	struct pt_regs *regs = user_regs();
	const void *msgs = (const void *)regs->si;
	const void *uaddr;
	int fd = regs->di;
	long ret = ctx->ret;
	__u32 vlen = regs->dx;
	struct sock_info si = {};

	if (vlen == 0 || !msghdr_dns(&si, fd, msgs, &uaddr))
		return 0;
	msghdr_report(f, &si, fd, ret, msgs, uaddr);

	/* The messages the kernel sent; all asked for when it failed on the first. */
	__u32 n = ret > 0 && ret < vlen ? ret : vlen;
	for (__u32 i = 1; i < MMSG_MAX && i < n; i++) {
		const void *msg = msgs + i * MMSGHDR_SIZE;
		if (msghdr_dns(&si, fd, msg, &uaddr))
			msghdr_report(f, &si, fd, ret, msg, uaddr);
	}
	return 0;
}
