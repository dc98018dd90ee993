/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The eBPF side of PlexTV (programs in bpf/, loaded here from their generated skeletons).
 *
 * Everything is optional at run time: without CAP_BPF + CAP_NET_ADMIN, on a kernel without
 * BPF, or in a build without the BPF toolchain, the open/start functions fail with a negative
 * errno (-ENOTSUP when not built in) and the caller falls back to user space:
 *   - the discovery socket filter: the same allow-list check runs in user space (netfilter.h);
 *   - per-channel accounting: only the relay's own counters exist.
 * ptv_bpf_explain() turns the error into the reason for the one log line the caller writes.
 *
 * libbpf's own messages go to the debug log, never to stderr, so a fallback stays one line.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ptv_bpf.h"

/** The [discovery] bpf setting: never, when available, or required (start-up fails). */
enum ptv_bpf_mode {
	PTV_BPF_MODE_OFF = 0,
	PTV_BPF_MODE_AUTO = 1,
	PTV_BPF_MODE_ON = 2,
};

/** Parses "off", "auto" or "on" (case-insensitive). Returns 0 or -EINVAL. */
int ptv_bpf_mode_parse(const char *s, enum ptv_bpf_mode *out);

/** True when this build carries the BPF programs (the toolchain was there at build time). */
bool ptv_bpf_built(void);

/** Why BPF is unavailable, for a log line: "needs CAP_BPF and CAP_NET_ADMIN", … */
const char *ptv_bpf_explain(int err);

/* ---- Discovery socket filter (bpf/ptv_filter.bpf.c) ---- */

struct ptv_bpf_filter;

/** One allow-list entry: sources in @addr/@prefixlen arriving on @ifindex (0: any). */
struct ptv_bpf_rule {
	uint32_t ifindex;
	uint32_t addr; /* network byte order */
	uint8_t prefixlen;
	uint32_t protos; /* bit (1 << PTV_BPF_PROTO_*) per protocol admitted */
};

/** Loads the filter programs and maps. Returns 0 or a negative errno (see the header comment). */
int ptv_bpf_filter_open(struct ptv_bpf_filter **out);
void ptv_bpf_filter_free(struct ptv_bpf_filter *f);

/** SO_ATTACH_BPF the program of @proto (PTV_BPF_PROTO_*) to UDP socket @fd. */
int ptv_bpf_filter_attach(struct ptv_bpf_filter *f, int fd, unsigned proto);

/**
 * Replaces the allow-list with @rules. New entries go in before stale ones leave, so a source
 * allowed before and after is never dropped in between. Overlapping entries of one interface
 * are merged (a longer prefix also admits what a shorter one around it admits), because the
 * trie answers with the longest match only.
 */
int ptv_bpf_filter_set_rules(struct ptv_bpf_filter *f, const struct ptv_bpf_rule *rules, size_t n);

/** Verdict counters summed over CPUs, indexed proto * PTV_BPF_NVERDICT + verdict. */
int ptv_bpf_filter_stats(struct ptv_bpf_filter *f, uint64_t out[PTV_BPF_STATS_SLOTS]);

/** The program fd of @proto, for BPF_PROG_TEST_RUN in tests. */
int ptv_bpf_filter_prog_fd(const struct ptv_bpf_filter *f, unsigned proto);

/* ---- Per-channel accounting (bpf/ptv_account.bpf.c) ---- */

/**
 * Loads the accounting programs and attaches them (cgroup skb egress + ingress, multi-attach,
 * detached when the process exits) to the cgroup v2 directory @cgroup_dir, or to the cgroup
 * this process is in when NULL. Sockets created by processes of that cgroup are seen.
 * Process-wide; call once from the main thread before the reactors start. -EALREADY if
 * started.
 */
int ptv_bpf_account_start(const char *cgroup_dir);
/** Detaches and frees (the main thread, after the reactors stopped). Safe when not started. */
void ptv_bpf_account_stop(void);
bool ptv_bpf_account_active(void);

/**
 * Tags socket @fd: its payload counts toward channel @channel_id, sent bytes for a viewer,
 * received bytes for an upstream (@upstream). Calling it again re-tags the socket (a
 * keep-alive connection that switched channel). One bpf() syscall, never blocks; any
 * thread. Returns 0, or -ENODEV when accounting is not active (callers simply go on).
 */
int ptv_bpf_account_socket(int fd, uint32_t channel_id, bool upstream);
/** Untags @fd (it stops counting). Closing the socket does this by itself. */
int ptv_bpf_account_forget(int fd);

/**
 * Tags every TCP/UDP socket process @pid has open now as an upstream of @channel_id, through
 * @pidfd (pidfd_getfd: same user, a child of ours). For the ingest child, whose sockets live
 * inside libavformat: call it when the child reports it is connected, and again after each
 * reconnect. Reads /proc/PID/fd (a few µs per descriptor): call it from the pool or right
 * after an ingest event, not in a loop. Returns the number of sockets tagged or a negative
 * errno (-ENODEV when accounting is not active).
 */
int ptv_bpf_account_process(int pidfd, int pid, uint32_t channel_id);

/** The egress (@egress) or ingress program fd, for BPF_PROG_TEST_RUN in tests; -ENODEV. */
int ptv_bpf_account_prog_fd(bool egress);

/** Per-channel totals (summed over CPUs). Bytes are TCP/UDP payload, headers excluded. */
struct ptv_bpf_account_counts {
	uint64_t egress_bytes;	 /* sent to viewers */
	uint64_t ingress_bytes;	 /* received from upstreams */
	uint64_t egress_packets; /* skbs with payload (a GSO aggregate counts once) */
	uint64_t ingress_packets;
};

/** Totals of @channel_id; all zero (and 0 returned) for a channel never counted. */
int ptv_bpf_account_read(uint32_t channel_id, struct ptv_bpf_account_counts *out);

/** Calls @fn for every counted channel (the metrics collector). Stops at a non-zero return. */
int ptv_bpf_account_foreach(int (*fn)(uint32_t channel_id, const struct ptv_bpf_account_counts *c,
				      void *ctx),
			    void *ctx);
