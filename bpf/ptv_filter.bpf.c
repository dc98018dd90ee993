// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket filter for the discovery sockets (SSDP on 1900, HDHomeRun on 65001): drops datagrams
 * whose source is outside the allowed prefixes before they wake user space, and counts every
 * verdict per CPU. Attached with SO_ATTACH_BPF; returning 0 drops, skb->len keeps the datagram.
 *
 * On a UDP socket skb->data points at the UDP header, under BPF_PROG_TEST_RUN at the IP header:
 * every read is relative to the network header so both see the same bytes.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ptv_bpf.h"

#define ETH_P_IP    0x0800
#define IPPROTO_UDP 17

/* Allowed source prefixes, keyed by receiving interface (0: any); kept in sync by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct ptv_bpf_lpm_key);
	__type(value, struct ptv_bpf_lpm_val);
} ptv_allow SEC(".maps");

/* Datagrams per [protocol][verdict]; per CPU, summed by user space on scrape. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PTV_BPF_STATS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ptv_stats SEC(".maps");

static __always_inline int verdict(struct __sk_buff *skb, __u32 proto, __u32 v)
{
	__u32 slot = proto * PTV_BPF_NVERDICT + v;
	__u64 *n = bpf_map_lookup_elem(&ptv_stats, &slot);

	if (n)
		*n += 1;
	return v == PTV_BPF_PASS ? (int)skb->len : 0;
}

static __always_inline bool allowed(__u32 ifindex, __u32 saddr, __u32 proto)
{
	struct ptv_bpf_lpm_key key = {.prefixlen = 64, .ifindex = ifindex, .addr = saddr};
	struct ptv_bpf_lpm_val *val;

	/* Prefixes of the receiving interface first, then the ones configured for all. */
	val = bpf_map_lookup_elem(&ptv_allow, &key);
	if (val && (val->protos & (1u << proto)))
		return true;
	key.ifindex = 0;
	val = bpf_map_lookup_elem(&ptv_allow, &key);
	return val && (val->protos & (1u << proto));
}

static __always_inline int filter(struct __sk_buff *skb, __u32 proto)
{
	__u8 ip[20];
	__be16 udp[4]; /* source, dest, len, check */
	__u32 ihl, saddr, ulen;

	if (bpf_skb_load_bytes_relative(skb, 0, ip, sizeof(ip), BPF_HDR_START_NET))
		return verdict(skb, proto, PTV_BPF_DROP_MALFORMED);
	if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP)
		return verdict(skb, proto, PTV_BPF_DROP_MALFORMED);
	__builtin_memcpy(&saddr, &ip[12], sizeof(saddr));
	if (!allowed(skb->ifindex, saddr, proto))
		return verdict(skb, proto, PTV_BPF_DROP_OFF_SUBNET);
	ihl = (ip[0] & 0x0f) * 4u;
	if (ihl < 20 || bpf_skb_load_bytes_relative(skb, ihl, udp, sizeof(udp), BPF_HDR_START_NET))
		return verdict(skb, proto, PTV_BPF_DROP_MALFORMED);
	/* Source port 0 cannot be answered: only spoofers send it. */
	if (!udp[0])
		return verdict(skb, proto, PTV_BPF_DROP_MALFORMED);
	ulen = bpf_ntohs(udp[2]);
	if (ulen < 8 || ulen - 8 > PTV_BPF_MAX_PAYLOAD)
		return verdict(skb, proto, PTV_BPF_DROP_MALFORMED);
	return verdict(skb, proto, PTV_BPF_PASS);
}

SEC("socket")
int ptv_filter_ssdp(struct __sk_buff *skb)
{
	return filter(skb, PTV_BPF_PROTO_SSDP);
}

SEC("socket")
int ptv_filter_hdhr(struct __sk_buff *skb)
{
	return filter(skb, PTV_BPF_PROTO_HDHR);
}

/* Dual-licensed: GPL-compatible for the kernel, BSD for linking into PlexTV (GPL-3.0+). */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
