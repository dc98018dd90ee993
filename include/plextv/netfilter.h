/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Who the discovery responders (SSDP, HDHomeRun UDP 65001) answer: the allow-list and the
 * per-source rate limit they share, plus their metrics.
 *
 * Policy (reflection/amplification, PROTOCOLS.md §3.4, RELIABILITY.md §2.1):
 *   - A datagram that arrived on the loopback interface came from this host: allowed (a reply
 *     cannot leave the machine, and `hdhomerun_config discover 127.0.0.1` must work).
 *   - Otherwise the source must lie in a prefix attached to the interface it arrived on, and
 *     that interface must be one the HTTP server is reachable on (all of them when listening
 *     on 0.0.0.0, else the one holding the listen address); or in a configured extra prefix
 *     (allow_prefixes, any interface). Everything else is "off_subnet": routed senders,
 *     spoofed 127/8 sources arriving from the wire, and the multicast/broadcast/zero sources
 *     the kernel already refuses.
 *   - Source port 0 is "malformed": no legitimate client sends from it.
 *   - Replies are never sent to a broadcast address (no SO_BROADCAST on our sockets).
 *
 * The same allow-list is pushed into the kernel socket filter when BPF is available
 * (bpf_loader.h); the user-space check runs either way, as the second line of defence.
 * The interface table follows rtnetlink (links and IPv4 addresses coming and going).
 *
 * Reactor-only (the discovery reactor), except ptv_netfilter_parse_prefixes().
 */
#pragma once

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/reactor.h"
#include "ptv_bpf.h"

struct ptv_reactor;
struct ptv_bpf_filter;
struct ptv_netfilter;

enum ptv_disc_proto {
	PTV_DISC_SSDP = PTV_BPF_PROTO_SSDP,
	PTV_DISC_HDHR = PTV_BPF_PROTO_HDHR,
	PTV_DISC_NPROTO = PTV_BPF_NPROTO,
};

/** Why a datagram was not answered (the reason label of plextv_discovery_dropped_total). */
enum ptv_disc_drop {
	PTV_DISC_OK = 0,
	PTV_DISC_OFF_SUBNET = PTV_BPF_DROP_OFF_SUBNET,
	PTV_DISC_MALFORMED = PTV_BPF_DROP_MALFORMED,
	PTV_DISC_RATE = 3,
	PTV_DISC_NREASON = 4,
};

/* Per-source token bucket (requests answered), and one for all sources together. */
#define PTV_DISC_SRC_RATE   5 /* requests per second per source and protocol */
#define PTV_DISC_SRC_BURST  10
#define PTV_DISC_ALL_RATE   100 /* requests per second per protocol, all sources */
#define PTV_DISC_ALL_BURST  200
#define PTV_DISC_MAX_PREFIX 32 /* configured extra prefixes */

/** An IPv4 prefix; @addr in network byte order with the host bits cleared. */
struct ptv_prefix {
	uint32_t addr;
	uint8_t len;
};

#define PTV_IFACE_MAX_ADDRS 8

/** One interface as the responders see it. */
struct ptv_iface {
	int ifindex;
	char name[IF_NAMESIZE];
	unsigned flags; /* IFF_UP, IFF_LOOPBACK, IFF_MULTICAST, … */
	unsigned n_addrs;
	uint32_t addrs[PTV_IFACE_MAX_ADDRS]; /* local addresses, network byte order */
	uint8_t plen[PTV_IFACE_MAX_ADDRS];   /* their prefix lengths */
	bool served;   /* the HTTP server is reachable here: answer on-link sources */
	bool ssdp_adv; /* join 239.255.255.250 and send NOTIFY here */
};

struct ptv_netfilter_opts {
	const char *allow_prefixes; /* "10.1.0.0/16, 192.168.5.7" (a bare address is a /32) */
	uint32_t listen_addr;	    /* HTTP listen address, network order; INADDR_ANY: all */
};

/** Parses a comma/space separated list of IPv4 CIDRs. Returns 0 or -EINVAL (or -E2BIG). */
int ptv_netfilter_parse_prefixes(const char *s, struct ptv_prefix *out, size_t max, size_t *n);

/** Creates the filter (no interfaces yet). -EINVAL: bad allow_prefixes. */
int ptv_netfilter_new(const struct ptv_netfilter_opts *o, struct ptv_netfilter **out);
/** Frees it; the reactor's ring must be gone (or ptv_netfilter_unwatch() done and drained). */
void ptv_netfilter_free(struct ptv_netfilter *nf);

/** From now on every interface change is also written into @f's allow-list map. */
int ptv_netfilter_set_bpf(struct ptv_netfilter *nf, struct ptv_bpf_filter *f);
bool ptv_netfilter_has_bpf(const struct ptv_netfilter *nf);

/** Replaces the interface table (tests; rescans). Computes served/ssdp_adv; syncs BPF. */
int ptv_netfilter_set_ifaces(struct ptv_netfilter *nf, const struct ptv_iface *ifs, size_t n);
/** Reads the host's interfaces (getifaddrs) into the table. */
int ptv_netfilter_rescan(struct ptv_netfilter *nf);

/**
 * Watches rtnetlink on @r: after links or IPv4 addresses change (debounced), rescans and calls
 * @changed(@ctx). Returns 0 or a negative errno.
 */
int ptv_netfilter_watch(struct ptv_netfilter *nf, struct ptv_reactor *r, void (*changed)(void *ctx),
			void *ctx);
/** Stops watching (cancels the receive; its completion may still arrive). */
void ptv_netfilter_unwatch(struct ptv_netfilter *nf);

/** The current interface table. */
size_t ptv_netfilter_ifaces(const struct ptv_netfilter *nf, const struct ptv_iface **out);
const struct ptv_iface *ptv_netfilter_iface(const struct ptv_netfilter *nf, int ifindex);

/**
 * The user-space allow-list check for a datagram from @src that arrived on @ifindex.
 * Returns PTV_DISC_OK, PTV_DISC_OFF_SUBNET or PTV_DISC_MALFORMED (source port 0).
 */
enum ptv_disc_drop ptv_netfilter_check(const struct ptv_netfilter *nf,
				       const struct sockaddr_in *src, int ifindex);

/** Takes a token for a request of @proto from @saddr (per source, then global). */
bool ptv_netfilter_rate_ok(struct ptv_netfilter *nf, enum ptv_disc_proto proto, uint32_t saddr,
			   uint64_t now_ms);

/* ---- Metrics (plextv_discovery_*), shared by both responders ---- */

/** A datagram reached user space: @bytes of request payload. */
void ptv_netfilter_count_request(struct ptv_netfilter *nf, enum ptv_disc_proto proto, size_t bytes);
void ptv_netfilter_count_drop(struct ptv_netfilter *nf, enum ptv_disc_proto proto,
			      enum ptv_disc_drop reason);
void ptv_netfilter_count_reply(struct ptv_netfilter *nf, enum ptv_disc_proto proto, size_t bytes);

/** Folds the kernel filter's counters into the metrics (called by the metrics collector). */
void ptv_netfilter_collect_bpf(struct ptv_netfilter *nf);

const char *ptv_disc_proto_name(enum ptv_disc_proto p);
const char *ptv_disc_drop_name(enum ptv_disc_drop d);

/* ---- The UDP socket both responders use ---- */

/** A received datagram, with where it came from and where it went (IP_PKTINFO). */
struct ptv_disc_dgram {
	const uint8_t *data;
	size_t len;
	bool truncated; /* larger than the receive buffer (e.g. a 64 KiB datagram) */
	struct sockaddr_in src;
	int ifindex;	     /* interface it arrived on */
	uint32_t local_addr; /* our address on that interface (ipi_spec_dst), network order */
	uint32_t dst_addr;   /* the header's destination: ours, multicast or broadcast */
};

#define PTV_DISC_RECV_BUF 2048 /* anything larger is not a discovery request */

struct ptv_disc_sock {
	int fd;
	struct ptv_reactor *r;
	struct ptv_op op;
	bool armed, open;
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_in name;
	uint64_t ctrl[16]; /* cmsg space, aligned */
	uint8_t buf[PTV_DISC_RECV_BUF];
	void (*on_dgram)(struct ptv_disc_sock *s, const struct ptv_disc_dgram *d);
};

/**
 * Binds 0.0.0.0:@port (SO_REUSEADDR: port 1900 is often shared with minissdpd or Plex's DLNA
 * server), enables IP_PKTINFO and keeps one io_uring recvmsg armed; @on_dgram runs on the
 * reactor for each datagram. The struct must stay put until the reactor's ring is gone.
 */
int ptv_disc_sock_open(struct ptv_disc_sock *s, struct ptv_reactor *r, uint16_t port,
		       void (*on_dgram)(struct ptv_disc_sock *s, const struct ptv_disc_dgram *d));
/** Cancels the receive and closes the socket (the kernel keeps it until the cancel lands). */
void ptv_disc_sock_close(struct ptv_disc_sock *s);
/**
 * Sends @n bytes to @to out of interface @ifindex from address @src_addr (0: the kernel's
 * choice). Non-blocking: a full socket buffer drops the datagram (-EAGAIN).
 */
int ptv_disc_sock_send(struct ptv_disc_sock *s, const struct sockaddr_in *to, int ifindex,
		       uint32_t src_addr, const void *p, size_t n);

/* ---- Where clients reach the HTTP server ---- */

struct ptv_disc_reach {
	bool base_url_configured; /* --base-url: advertise the lineup's URLs as they are */
	uint32_t listen_addr;	  /* network order; INADDR_ANY: use the receiving address */
	uint16_t http_port;
};

/**
 * The base URL of virtual device @index as seen from an interface whose address is
 * @local_addr: the configured one (@device_base_url) if any, else http://ADDR:PORT plus
 * "/devices/N" for N > 0.
 */
void ptv_disc_base_url(const struct ptv_disc_reach *reach, const char *device_base_url,
		       unsigned index, uint32_t local_addr, char *out, size_t len);
