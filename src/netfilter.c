/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The discovery allow-list, rate limiter and interface table (see netfilter.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plextv/bpf_loader.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/netfilter.h"
#include "plextv/reactor.h"

#define NF_MAX_IFACES  64
#define NF_BUCKETS     1024 /* per-source token buckets (power of two) */
#define NF_PROBE       8    /* slots looked at before evicting the stalest */
#define NF_DEBOUNCE_MS 100  /* a link change sends a burst of netlink messages */
#define NF_NL_BUF      16384
#define TOKEN	       1000 /* a request costs this many milli-tokens */

struct nf_bucket {
	uint32_t saddr; /* 0: free (0.0.0.0 is never allowed, so never a key) */
	uint8_t proto;
	uint32_t milli; /* milli-tokens */
	uint64_t last_ms;
};

struct ptv_netfilter {
	uint32_t listen_addr;
	struct ptv_prefix extra[PTV_DISC_MAX_PREFIX];
	size_t n_extra;
	struct ptv_iface ifs[NF_MAX_IFACES];
	size_t n_ifs;
	struct ptv_bpf_filter *bpf;

	struct nf_bucket buckets[NF_BUCKETS];
	struct nf_bucket global[PTV_DISC_NPROTO];

	/* rtnetlink watch */
	struct ptv_reactor *r;
	int nl_fd;
	struct ptv_op nl_op;
	bool nl_armed, watching;
	char nl_buf[NF_NL_BUF];
	struct ptv_timer debounce;
	void (*changed)(void *ctx);
	void *changed_ctx;

	struct ptv_metric *m_requests[PTV_DISC_NPROTO];
	struct ptv_metric *m_req_bytes[PTV_DISC_NPROTO];
	struct ptv_metric *m_replies[PTV_DISC_NPROTO];
	struct ptv_metric *m_reply_bytes[PTV_DISC_NPROTO];
	struct ptv_metric *m_dropped[PTV_DISC_NPROTO][PTV_DISC_NREASON];
	struct ptv_metric *m_bpf_dropped[PTV_DISC_NPROTO][PTV_DISC_NREASON];
};

const char *ptv_disc_proto_name(enum ptv_disc_proto p)
{
	return p == PTV_DISC_SSDP ? "ssdp" : "hdhr";
}

const char *ptv_disc_drop_name(enum ptv_disc_drop d)
{
	switch (d) {
	case PTV_DISC_OFF_SUBNET:
		return "off_subnet";
	case PTV_DISC_MALFORMED:
		return "malformed";
	case PTV_DISC_RATE:
		return "rate";
	default:
		return "ok";
	}
}

/* ---- prefixes ---- */

static uint32_t mask_of(unsigned len)
{
	return len ? htonl(~0u << (32 - len)) : 0;
}

static bool in_prefix(uint32_t addr, uint32_t net, unsigned len)
{
	return (addr & mask_of(len)) == (net & mask_of(len));
}

static int parse_one_prefix(const char *s, size_t n, struct ptv_prefix *out)
{
	char buf[32];
	const char *slash;
	unsigned long len = 32;
	struct in_addr a;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		if (!isdigit((unsigned char)slash[1]))
			return -EINVAL;
		len = strtoul(slash + 1, &end, 10);
		if (*end || len > 32)
			return -EINVAL;
		buf[slash - buf] = '\0';
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -EINVAL;
	out->len = (uint8_t)len;
	out->addr = a.s_addr & mask_of((unsigned)len);
	return 0;
}

int ptv_netfilter_parse_prefixes(const char *s, struct ptv_prefix *out, size_t max, size_t *n)
{
	*n = 0;
	while (s && *s) {
		size_t len;
		int ret;

		s += strspn(s, ", \t");
		len = strcspn(s, ", \t");
		if (!len)
			break;
		if (*n == max)
			return -E2BIG;
		ret = parse_one_prefix(s, len, &out[*n]);
		if (ret)
			return ret;
		(*n)++;
		s += len;
	}
	return 0;
}

/* ---- metrics ---- */

static void nf_metrics_init(struct ptv_netfilter *nf)
{
	static const char *const lp[] = {"proto", NULL};
	static const char *const lpr[] = {"proto", "reason", NULL};
	struct ptv_metric_family *req, *req_b, *rep, *rep_b, *drop, *bdrop;

	req = ptv_metrics_family("plextv_discovery_requests_total",
				 "Discovery datagrams that reached user space", PTV_METRIC_COUNTER,
				 lp, NULL, 0, 4);
	req_b = ptv_metrics_family("plextv_discovery_received_bytes_total",
				   "Payload bytes of discovery datagrams that reached user space",
				   PTV_METRIC_COUNTER, lp, NULL, 0, 4);
	rep = ptv_metrics_family("plextv_discovery_replies_total",
				 "Discovery replies sent (SSDP search responses, 65001 replies)",
				 PTV_METRIC_COUNTER, lp, NULL, 0, 4);
	rep_b = ptv_metrics_family("plextv_discovery_sent_bytes_total",
				   "Payload bytes of discovery replies sent", PTV_METRIC_COUNTER,
				   lp, NULL, 0, 4);
	drop = ptv_metrics_family("plextv_discovery_dropped_total",
				  "Discovery datagrams not answered, kernel filter and user space",
				  PTV_METRIC_COUNTER, lpr, NULL, 0, 16);
	bdrop = ptv_metrics_family("plextv_bpf_filter_dropped_total",
				   "Discovery datagrams dropped by the kernel socket filter",
				   PTV_METRIC_COUNTER, lpr, NULL, 0, 16);
	for (unsigned p = 0; p < PTV_DISC_NPROTO; p++) {
		const char *pv[] = {ptv_disc_proto_name(p), NULL};

		nf->m_requests[p] = ptv_metric_get(req, pv);
		nf->m_req_bytes[p] = ptv_metric_get(req_b, pv);
		nf->m_replies[p] = ptv_metric_get(rep, pv);
		nf->m_reply_bytes[p] = ptv_metric_get(rep_b, pv);
		for (unsigned d = PTV_DISC_OFF_SUBNET; d < PTV_DISC_NREASON; d++) {
			const char *v[] = {ptv_disc_proto_name(p), ptv_disc_drop_name(d), NULL};

			nf->m_dropped[p][d] = ptv_metric_get(drop, v);
			if (d != PTV_DISC_RATE)
				nf->m_bpf_dropped[p][d] = ptv_metric_get(bdrop, v);
		}
	}
}

void ptv_netfilter_count_request(struct ptv_netfilter *nf, enum ptv_disc_proto proto, size_t bytes)
{
	ptv_metric_inc(nf->m_requests[proto]);
	ptv_metric_add(nf->m_req_bytes[proto], bytes);
}

void ptv_netfilter_count_drop(struct ptv_netfilter *nf, enum ptv_disc_proto proto,
			      enum ptv_disc_drop reason)
{
	if (reason > PTV_DISC_OK && reason < PTV_DISC_NREASON)
		ptv_metric_inc(nf->m_dropped[proto][reason]);
}

void ptv_netfilter_count_reply(struct ptv_netfilter *nf, enum ptv_disc_proto proto, size_t bytes)
{
	ptv_metric_inc(nf->m_replies[proto]);
	ptv_metric_add(nf->m_reply_bytes[proto], bytes);
}

void ptv_netfilter_collect_bpf(struct ptv_netfilter *nf)
{
	uint64_t st[PTV_BPF_STATS_SLOTS];

	if (!nf->bpf || ptv_bpf_filter_stats(nf->bpf, st))
		return;
	/* set() holds the kernel's absolute count next to what user space added itself, so
	 * plextv_discovery_dropped_total is the sum of both layers. */
	for (unsigned p = 0; p < PTV_DISC_NPROTO; p++) {
		for (unsigned d = PTV_BPF_DROP_OFF_SUBNET; d < PTV_BPF_NVERDICT; d++) {
			double v = (double)st[p * PTV_BPF_NVERDICT + d];

			ptv_metric_set(nf->m_dropped[p][d], v);
			ptv_metric_set(nf->m_bpf_dropped[p][d], v);
		}
	}
}

/* ---- construction ---- */

int ptv_netfilter_new(const struct ptv_netfilter_opts *o, struct ptv_netfilter **out)
{
	struct ptv_netfilter *nf = ptv_xcalloc(1, sizeof(*nf));
	int ret;

	ret = ptv_netfilter_parse_prefixes(o->allow_prefixes, nf->extra, PTV_DISC_MAX_PREFIX,
					   &nf->n_extra);
	if (ret) {
		free(nf);
		return ret;
	}
	nf->listen_addr = o->listen_addr;
	nf->nl_fd = -1;
	ptv_timer_init(&nf->debounce, NULL);
	nf_metrics_init(nf);
	*out = nf;
	return 0;
}

void ptv_netfilter_free(struct ptv_netfilter *nf)
{
	if (!nf)
		return;
	if (nf->nl_fd >= 0)
		close(nf->nl_fd);
	free(nf);
}

/* ---- interface table and allow-list ---- */

static bool iface_has_addr(const struct ptv_iface *i, uint32_t addr)
{
	for (unsigned k = 0; k < i->n_addrs; k++) {
		if (i->addrs[k] == addr)
			return true;
	}
	return false;
}

static void iface_classify(const struct ptv_netfilter *nf, struct ptv_iface *i)
{
	bool up = i->flags & IFF_UP, lo = i->flags & IFF_LOOPBACK;
	bool wildcard = nf->listen_addr == htonl(INADDR_ANY);

	i->served = up && i->n_addrs && (wildcard || iface_has_addr(i, nf->listen_addr));
	/* Multicast on loopback reaches only this host: only worth it when the HTTP server
	 * itself is only reachable there (tests, a relay behind a local reverse proxy). */
	i->ssdp_adv = i->served && (lo ? !wildcard : (i->flags & IFF_MULTICAST) != 0);
}

static size_t nf_rules(const struct ptv_netfilter *nf, struct ptv_bpf_rule *rules, size_t max)
{
	const uint32_t all = (1u << PTV_BPF_PROTO_SSDP) | (1u << PTV_BPF_PROTO_HDHR);
	size_t n = 0;

	for (size_t i = 0; i < nf->n_ifs && n < max; i++) {
		const struct ptv_iface *f = &nf->ifs[i];

		if (f->flags & IFF_LOOPBACK) {
			rules[n++] = (struct ptv_bpf_rule){f->ifindex, 0, 0, all};
			continue;
		}
		if (!f->served)
			continue;
		for (unsigned k = 0; k < f->n_addrs && n < max; k++)
			rules[n++] = (struct ptv_bpf_rule){
				f->ifindex, f->addrs[k] & mask_of(f->plen[k]), f->plen[k], all};
	}
	for (size_t i = 0; i < nf->n_extra && n < max; i++)
		rules[n++] = (struct ptv_bpf_rule){0, nf->extra[i].addr, nf->extra[i].len, all};
	return n;
}

static int nf_sync_bpf(struct ptv_netfilter *nf)
{
	struct ptv_bpf_rule rules[NF_MAX_IFACES * PTV_IFACE_MAX_ADDRS + PTV_DISC_MAX_PREFIX];
	size_t n;
	int ret;

	if (!nf->bpf)
		return 0;
	n = nf_rules(nf, rules, PTV_ARRAY_SIZE(rules));
	ret = ptv_bpf_filter_set_rules(nf->bpf, rules, n);
	if (ret)
		ptv_error("discovery", "cannot update the kernel allow-list: %s",
			  ptv_strerror(ret));
	return ret;
}

int ptv_netfilter_set_bpf(struct ptv_netfilter *nf, struct ptv_bpf_filter *f)
{
	nf->bpf = f;
	return nf_sync_bpf(nf);
}

bool ptv_netfilter_has_bpf(const struct ptv_netfilter *nf)
{
	return nf->bpf != NULL;
}

int ptv_netfilter_set_ifaces(struct ptv_netfilter *nf, const struct ptv_iface *ifs, size_t n)
{
	n = PTV_MIN(n, (size_t)NF_MAX_IFACES);
	memcpy(nf->ifs, ifs, n * sizeof(*ifs));
	nf->n_ifs = n;
	for (size_t i = 0; i < n; i++)
		iface_classify(nf, &nf->ifs[i]);
	return nf_sync_bpf(nf);
}

static struct ptv_iface *scan_iface(struct ptv_iface *ifs, size_t *n, const char *label,
				    unsigned flags)
{
	char name[IF_NAMESIZE];
	unsigned idx;

	/* IPv4 aliases come as "eth0:1"; they belong to eth0. */
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(label, ":"), label);
	idx = if_nametoindex(name);
	if (!idx)
		return NULL;
	for (size_t i = 0; i < *n; i++) {
		if (ifs[i].ifindex == (int)idx)
			return &ifs[i];
	}
	if (*n == NF_MAX_IFACES)
		return NULL;
	memset(&ifs[*n], 0, sizeof(ifs[*n]));
	ifs[*n].ifindex = (int)idx;
	snprintf(ifs[*n].name, sizeof(ifs[*n].name), "%s", name);
	ifs[*n].flags = flags;
	return &ifs[(*n)++];
}

static unsigned mask_len(uint32_t mask_be)
{
	return (unsigned)__builtin_popcount(mask_be);
}

int ptv_netfilter_rescan(struct ptv_netfilter *nf)
{
	struct ptv_iface *ifs = ptv_xcalloc(NF_MAX_IFACES, sizeof(*ifs));
	struct ifaddrs *ifa, *i;
	size_t n = 0;
	int ret;

	if (getifaddrs(&ifa)) {
		ret = -errno;
		free(ifs);
		return ret;
	}
	for (i = ifa; i; i = i->ifa_next) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
		const struct sockaddr_in *m = (const struct sockaddr_in *)i->ifa_netmask;
		struct ptv_iface *f;

		if (!a || a->sin_family != AF_INET || !m)
			continue;
		f = scan_iface(ifs, &n, i->ifa_name, i->ifa_flags);
		if (!f || f->n_addrs == PTV_IFACE_MAX_ADDRS)
			continue;
		f->addrs[f->n_addrs] = a->sin_addr.s_addr;
		f->plen[f->n_addrs] = (uint8_t)mask_len(m->sin_addr.s_addr);
		f->n_addrs++;
	}
	freeifaddrs(ifa);
	ret = ptv_netfilter_set_ifaces(nf, ifs, n);
	free(ifs);
	return ret;
}

size_t ptv_netfilter_ifaces(const struct ptv_netfilter *nf, const struct ptv_iface **out)
{
	*out = nf->ifs;
	return nf->n_ifs;
}

const struct ptv_iface *ptv_netfilter_iface(const struct ptv_netfilter *nf, int ifindex)
{
	for (size_t i = 0; i < nf->n_ifs; i++) {
		if (nf->ifs[i].ifindex == ifindex)
			return &nf->ifs[i];
	}
	return NULL;
}

static bool source_is_bogus(uint32_t addr)
{
	uint32_t h = ntohl(addr);

	/* 0/8, multicast, limited broadcast: the kernel drops these as martians; be sure. */
	return (h >> 24) == 0 || (h >> 28) == 0xe || h == 0xffffffffu;
}

enum ptv_disc_drop ptv_netfilter_check(const struct ptv_netfilter *nf,
				       const struct sockaddr_in *src, int ifindex)
{
	const struct ptv_iface *f = ptv_netfilter_iface(nf, ifindex);
	uint32_t a = src->sin_addr.s_addr;
	bool ok = false;

	if (f && (f->flags & IFF_LOOPBACK)) {
		ok = true; /* from this host */
	} else if (!source_is_bogus(a)) {
		for (unsigned k = 0; f && f->served && k < f->n_addrs && !ok; k++)
			ok = in_prefix(a, f->addrs[k], f->plen[k]);
		for (size_t i = 0; i < nf->n_extra && !ok; i++)
			ok = in_prefix(a, nf->extra[i].addr, nf->extra[i].len);
	}
	if (!ok)
		return PTV_DISC_OFF_SUBNET;
	if (src->sin_port == 0)
		return PTV_DISC_MALFORMED;
	return PTV_DISC_OK;
}

/* ---- rate limit ---- */

static bool bucket_take(struct nf_bucket *b, unsigned rate, unsigned burst, uint64_t now_ms)
{
	uint64_t refill = (now_ms - b->last_ms) * rate; /* milli-tokens: rate/s x ms */

	b->milli = (uint32_t)PTV_MIN((uint64_t)b->milli + refill, (uint64_t)burst * TOKEN);
	b->last_ms = now_ms;
	if (b->milli < TOKEN)
		return false;
	b->milli -= TOKEN;
	return true;
}

static struct nf_bucket *bucket_find(struct ptv_netfilter *nf, uint32_t saddr, uint8_t proto,
				     uint64_t now_ms)
{
	uint32_t h = (saddr * 2654435761u) ^ proto;
	struct nf_bucket *stalest = NULL;

	for (unsigned i = 0; i < NF_PROBE; i++) {
		struct nf_bucket *b = &nf->buckets[(h + i) & (NF_BUCKETS - 1)];

		if (b->saddr == saddr && b->proto == proto)
			return b;
		if (!b->saddr) {
			stalest = b;
			break;
		}
		if (!stalest || b->last_ms < stalest->last_ms)
			stalest = b;
	}
	/* A new source starts with a full bucket; evicting the stalest of the probed slots
	 * lets a flood of fresh sources cost only themselves (the global bucket caps them). */
	stalest->saddr = saddr;
	stalest->proto = proto;
	stalest->milli = PTV_DISC_SRC_BURST * TOKEN;
	stalest->last_ms = now_ms;
	return stalest;
}

bool ptv_netfilter_rate_ok(struct ptv_netfilter *nf, enum ptv_disc_proto proto, uint32_t saddr,
			   uint64_t now_ms)
{
	struct nf_bucket *b = bucket_find(nf, saddr, (uint8_t)proto, now_ms);
	struct nf_bucket *g = &nf->global[proto];

	if (!g->last_ms) {
		g->milli = PTV_DISC_ALL_BURST * TOKEN;
		g->last_ms = now_ms;
	}
	if (!bucket_take(b, PTV_DISC_SRC_RATE, PTV_DISC_SRC_BURST, now_ms))
		return false;
	return bucket_take(g, PTV_DISC_ALL_RATE, PTV_DISC_ALL_BURST, now_ms);
}

/* ---- rtnetlink watch ---- */

static void nl_arm(struct ptv_netfilter *nf);

static void nl_debounced(struct ptv_timer *t)
{
	struct ptv_netfilter *nf = ptv_container_of(t, struct ptv_netfilter, debounce);
	int ret = ptv_netfilter_rescan(nf);

	if (ret)
		ptv_warn("discovery", "interface rescan failed: %s", ptv_strerror(ret));
	if (nf->changed)
		nf->changed(nf->changed_ctx);
}

static void nl_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct ptv_netfilter *nf = ptv_container_of(op, struct ptv_netfilter, nl_op);

	nf->nl_armed = false;
	if (!nf->watching)
		return;
	/* Any message (or a lost one: ENOBUFS) means "look again": the table is rebuilt from
	 * scratch, so the message contents do not matter. */
	if (res > 0 || res == -ENOBUFS) {
		if (!ptv_timer_armed(&nf->debounce))
			ptv_timer_arm(nf->r, &nf->debounce, NF_DEBOUNCE_MS);
	} else if (res < 0 && res != -EINTR && res != -EAGAIN) {
		ptv_warn("discovery", "rtnetlink receive failed: %s; interfaces no longer followed",
			 ptv_strerror(res));
		return;
	}
	nl_arm(nf);
}

static void nl_arm(struct ptv_netfilter *nf)
{
	struct io_uring_sqe *sqe;

	if (nf->nl_armed || !nf->watching)
		return;
	sqe = ptv_reactor_sqe(nf->r, &nf->nl_op);
	io_uring_prep_recv(sqe, nf->nl_fd, nf->nl_buf, sizeof(nf->nl_buf), 0);
	nf->nl_armed = true;
}

int ptv_netfilter_watch(struct ptv_netfilter *nf, struct ptv_reactor *r, void (*changed)(void *ctx),
			void *ctx)
{
	struct sockaddr_nl sa = {
		.nl_family = AF_NETLINK,
		.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR,
	};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	nf->nl_fd = fd;
	nf->r = r;
	nf->nl_op.cb = nl_cb;
	nf->changed = changed;
	nf->changed_ctx = ctx;
	nf->debounce.cb = nl_debounced;
	nf->watching = true;
	nl_arm(nf);
	return 0;
}

void ptv_netfilter_unwatch(struct ptv_netfilter *nf)
{
	struct io_uring_sqe *sqe;

	if (!nf->watching)
		return;
	nf->watching = false;
	ptv_timer_cancel(&nf->debounce);
	if (nf->nl_armed) {
		sqe = ptv_reactor_sqe(nf->r, NULL);
		io_uring_prep_cancel(sqe, &nf->nl_op, 0);
	}
}

/* ---- discovery sockets ---- */

static void disc_sock_arm(struct ptv_disc_sock *s);

static void disc_sock_parse_cmsg(struct ptv_disc_sock *s, struct ptv_disc_dgram *d)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(&s->msg); c; c = CMSG_NXTHDR(&s->msg, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			d->ifindex = pi.ipi_ifindex;
			d->local_addr = pi.ipi_spec_dst.s_addr;
			d->dst_addr = pi.ipi_addr.s_addr;
		}
	}
}

static void disc_sock_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct ptv_disc_sock *s = ptv_container_of(op, struct ptv_disc_sock, op);
	struct ptv_disc_dgram d = {0};

	s->armed = false;
	if (!s->open)
		return;
	if (res >= 0) {
		d.data = s->buf;
		d.len = (size_t)res;
		d.truncated = s->msg.msg_flags & MSG_TRUNC;
		d.src = s->name;
		disc_sock_parse_cmsg(s, &d);
		s->on_dgram(s, &d);
	} else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED && res != -ENOBUFS) {
		/* ICMP errors from earlier sends (ECONNREFUSED…) land here too: keep going. */
		ptv_debug("discovery", "receive on port %u: %s", ntohs(s->name.sin_port),
			  ptv_strerror(res));
	}
	if (s->open)
		disc_sock_arm(s);
}

static void disc_sock_arm(struct ptv_disc_sock *s)
{
	struct io_uring_sqe *sqe;

	if (s->armed || !s->open)
		return;
	s->iov.iov_base = s->buf;
	s->iov.iov_len = sizeof(s->buf);
	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.msg_name = &s->name;
	s->msg.msg_namelen = sizeof(s->name);
	s->msg.msg_iov = &s->iov;
	s->msg.msg_iovlen = 1;
	s->msg.msg_control = s->ctrl;
	s->msg.msg_controllen = sizeof(s->ctrl);
	sqe = ptv_reactor_sqe(s->r, &s->op);
	io_uring_prep_recvmsg(sqe, s->fd, &s->msg, 0);
	s->armed = true;
}

static int disc_sock_bind(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1, fd, ret;

	/* Blocking on purpose: io_uring waits by polling either way, and a blocking socket never
	 * turns a receive into an -EAGAIN completion; sends pass MSG_DONTWAIT. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int ptv_disc_sock_open(struct ptv_disc_sock *s, struct ptv_reactor *r, uint16_t port,
		       void (*on_dgram)(struct ptv_disc_sock *s, const struct ptv_disc_dgram *d))
{
	int fd = disc_sock_bind(port);

	if (fd < 0)
		return fd;
	s->fd = fd;
	s->r = r;
	s->op.cb = disc_sock_cb;
	s->on_dgram = on_dgram;
	s->open = true;
	disc_sock_arm(s);
	return 0;
}

void ptv_disc_sock_close(struct ptv_disc_sock *s)
{
	struct io_uring_sqe *sqe;

	if (!s->open)
		return;
	s->open = false;
	if (s->armed) {
		sqe = ptv_reactor_sqe(s->r, NULL);
		io_uring_prep_cancel(sqe, &s->op, 0);
	}
	close(s->fd);
	s->fd = -1;
}

int ptv_disc_sock_send(struct ptv_disc_sock *s, const struct sockaddr_in *to, int ifindex,
		       uint32_t src_addr, const void *p, size_t n)
{
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
	} ctrl;
	struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
	struct msghdr msg = {
		.msg_name = (void *)to,
		.msg_namelen = sizeof(*to),
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctrl.buf,
		.msg_controllen = sizeof(ctrl.buf),
	};
	struct in_pktinfo pi = {.ipi_ifindex = ifindex};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	if (!s->open)
		return -EBADF;
	pi.ipi_spec_dst.s_addr = src_addr;
	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	/* A UDP send never waits for the network; MSG_DONTWAIT makes sure a full socket buffer
	 * cannot stall the reactor either (the datagram is dropped instead). */
	if (sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

void ptv_disc_base_url(const struct ptv_disc_reach *reach, const char *device_base_url,
		       unsigned index, uint32_t local_addr, char *out, size_t len)
{
	char host[INET_ADDRSTRLEN], suffix[32] = "";
	struct in_addr a;

	if (reach->base_url_configured) {
		snprintf(out, len, "%s", device_base_url);
		return;
	}
	a.s_addr = reach->listen_addr != htonl(INADDR_ANY) ? reach->listen_addr : local_addr;
	inet_ntop(AF_INET, &a, host, sizeof(host));
	if (index)
		snprintf(suffix, sizeof(suffix), "/devices/%u", index);
	snprintf(out, len, "http://%s:%u%s", host, reach->http_port, suffix);
}
