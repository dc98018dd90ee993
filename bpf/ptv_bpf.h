/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Plain types shared by the BPF programs (bpf/ptv_*.bpf.c) and their loader (src/bpf_loader.c).
 * Only fixed-width fields: the same bytes are read by the kernel and by user space, and the
 * _Static_asserts below (checked on both sides) keep the layouts from drifting apart.
 */
#ifndef PTV_BPF_H
#define PTV_BPF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* ---- Discovery socket filter (ptv_filter.bpf.c) ---- */

/* Which responder a datagram was sent to: the index of the first dimension of the stats. */
#define PTV_BPF_PROTO_SSDP 0
#define PTV_BPF_PROTO_HDHR 1
#define PTV_BPF_NPROTO	   2

/* Verdicts, the second dimension of the stats. */
#define PTV_BPF_PASS		0 /* handed to user space */
#define PTV_BPF_DROP_OFF_SUBNET 1 /* source outside every allowed prefix */
#define PTV_BPF_DROP_MALFORMED	2 /* not IPv4/UDP, source port 0, or larger than any request */
#define PTV_BPF_NVERDICT	3

#define PTV_BPF_STATS_SLOTS (PTV_BPF_NPROTO * PTV_BPF_NVERDICT)

/* Largest UDP payload either protocol sends as a request (HDHomeRun's own limit is 1460). */
#define PTV_BPF_MAX_PAYLOAD 1460

/*
 * Allow-list key. The trie matches bits in memory order, so the first 32 bits of the prefix
 * are the receiving interface (an exact match, never a partial one) and the address bits
 * follow: prefixlen = 32 + address prefix length. ifindex 0 holds the configured extra
 * prefixes, which apply on every interface; an entry {ifindex, prefixlen 32} allows every
 * source on that interface (loopback: traffic from this host).
 */
struct ptv_bpf_lpm_key {
	__u32 prefixlen;
	__u32 ifindex;
	__u32 addr; /* network byte order */
};

/* Allow-list value: which protocols the entry admits (bit PTV_BPF_PROTO_*). */
struct ptv_bpf_lpm_val {
	__u32 protos;
};

/* ---- Per-channel accounting (ptv_account.bpf.c) ---- */

#define PTV_BPF_ACCT_UPSTREAM 1u /* count received bytes (an upstream); else sent (a viewer) */

/* Socket-local storage: what a relay socket carries. */
struct ptv_bpf_acct_sock {
	__u32 channel;
	__u32 flags;
};

/* Per-CPU counters of one channel: L4 payload bytes and segments with payload. */
struct ptv_bpf_acct_counts {
	__u64 egress_bytes;
	__u64 ingress_bytes;
	__u64 egress_packets;
	__u64 ingress_packets;
};

_Static_assert(sizeof(struct ptv_bpf_lpm_key) == 12, "LPM key layout");
_Static_assert(__builtin_offsetof(struct ptv_bpf_lpm_key, ifindex) == 4, "LPM key: ifindex");
_Static_assert(__builtin_offsetof(struct ptv_bpf_lpm_key, addr) == 8, "LPM key: addr");
_Static_assert(sizeof(struct ptv_bpf_lpm_val) == 4, "LPM value layout");
_Static_assert(sizeof(struct ptv_bpf_acct_sock) == 8, "socket storage layout");
_Static_assert(sizeof(struct ptv_bpf_acct_counts) == 32, "channel counters layout");
_Static_assert(__builtin_offsetof(struct ptv_bpf_acct_counts, ingress_packets) == 24,
	       "channel counters: ingress_packets");

#endif
