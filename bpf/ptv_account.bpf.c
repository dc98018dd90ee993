// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-channel bandwidth accounting: cgroup skb programs on the relay's cgroup see every packet
 * of its sockets; a socket that user space tagged (socket-local storage: channel id, viewer or
 * upstream) adds its L4 payload bytes to the channel's per-CPU counters. Viewers count what
 * leaves (egress), upstreams what arrives (ingress). Untagged sockets cost one storage lookup.
 *
 * Both programs always return 1 (allow): accounting must never change what is delivered.
 * Bytes are counted per skb, so GSO/GRO aggregates count once with one header, and TCP
 * retransmissions count again (they were sent again).
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ptv_bpf.h"

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* What a relay socket carries, written by user space through the socket's fd. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for socket storage */
	__type(key, int);
	__type(value, struct ptv_bpf_acct_sock);
} ptv_acct_sk SEC(".maps");

/* Payload counters per channel id, per CPU (no atomics on the hot path; summed on scrape). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* channels appear as they are watched */
	__type(key, __u32);
	__type(value, struct ptv_bpf_acct_counts);
} ptv_acct_chan SEC(".maps");

/* L4 payload length of the packet at the network header; 0 if it has none or is not TCP/UDP. */
static __always_inline __u32 l4_payload(struct __sk_buff *skb)
{
	__u8 ip[20], doff;
	__u32 hl, proto;

	if (bpf_skb_load_bytes_relative(skb, 0, ip, sizeof(ip), BPF_HDR_START_NET))
		return 0;
	if ((ip[0] >> 4) == 4) {
		hl = (ip[0] & 0x0f) * 4u;
		proto = ip[9];
	} else if ((ip[0] >> 4) == 6) {
		hl = 40; /* extension headers are not used by TCP/UDP relay traffic */
		proto = ip[6];
	} else {
		return 0;
	}
	if (proto == IPPROTO_UDP) {
		hl += 8;
	} else if (proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes_relative(skb, hl + 12, &doff, 1, BPF_HDR_START_NET))
			return 0;
		hl += (doff >> 4) * 4u;
	} else {
		return 0;
	}
	return skb->len > hl ? skb->len - hl : 0;
}

static __always_inline int account(struct __sk_buff *skb, bool egress)
{
	struct ptv_bpf_acct_counts zero = {}, *c;
	struct ptv_bpf_acct_sock *s;
	struct bpf_sock *sk = skb->sk;
	__u32 n, channel;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	s = bpf_sk_storage_get(&ptv_acct_sk, sk, 0, 0);
	if (!s)
		return 1;
	/* Viewers are counted on the way out, upstreams on the way in; the other direction is
	 * requests and ACKs, which the relay's own counters do not see either. */
	if (!(s->flags & PTV_BPF_ACCT_UPSTREAM) != egress)
		return 1;
	n = l4_payload(skb);
	if (!n)
		return 1;
	channel = s->channel;
	c = bpf_map_lookup_elem(&ptv_acct_chan, &channel);
	if (!c) {
		bpf_map_update_elem(&ptv_acct_chan, &channel, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&ptv_acct_chan, &channel);
		if (!c)
			return 1; /* map full: the channel goes uncounted rather than dropped */
	}
	if (egress) {
		c->egress_bytes += n;
		c->egress_packets++;
	} else {
		c->ingress_bytes += n;
		c->ingress_packets++;
	}
	return 1;
}

SEC("cgroup_skb/egress")
int ptv_acct_egress(struct __sk_buff *skb)
{
	return account(skb, true);
}

SEC("cgroup_skb/ingress")
int ptv_acct_ingress(struct __sk_buff *skb)
{
	return account(skb, false);
}

/* Dual-licensed: GPL-compatible for the kernel, BSD for linking into PlexTV (GPL-3.0+). */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
