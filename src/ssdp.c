/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * SSDP: M-SEARCH parser, response/NOTIFY writers and the responder (see ssdp.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <zlib.h>

#include "plextv/build-config.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/netfilter.h"
#include "plextv/reactor.h"
#include "plextv/ssdp.h"

#define SSDP_PENDING	 512 /* delayed answers in flight (>= global rate x MX max) */
#define SSDP_MAX_JOINED	 64
#define SSDP_ALIVE_BURST 3   /* UDP is lossy: every alive round goes out this many times */
#define SSDP_UNICAST_MS	 500 /* a unicast search is answered within this */
#define SSDP_RETRY_MS	 500 /* no lineup yet: try the alive round again soon */

/* ---- parser ---- */

static bool token_char(char c)
{
	return isalnum((unsigned char)c) || strchr("-_.!#$%&'*+^`|~", c);
}

/* The next line of [*p, end) without its CRLF (or LF); false at the end. */
static bool next_line(const char **p, const char *end, const char **line, size_t *len)
{
	const char *nl;

	if (*p >= end)
		return false;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	*line = *p;
	*len = (size_t)((nl ? nl : end) - *p);
	*p = nl ? nl + 1 : end;
	if (*len && (*line)[*len - 1] == '\r')
		(*len)--;
	return true;
}

static int parse_mx(const char *v, size_t n, int *out)
{
	long x = 0;
	size_t i = 0;
	bool neg = n && v[0] == '-';

	i = neg;
	if (i == n || n - i > 9)
		return -EINVAL;
	for (; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -EINVAL;
		x = x * 10 + (v[i] - '0');
	}
	/* UDA allows 1..5 and says to treat more as 5; nonsense low values get the minimum. */
	if (neg || x < 1)
		x = 1;
	*out = (int)PTV_MIN(x, (long)PTV_SSDP_MX_MAX);
	return 0;
}

static bool value_ok(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static bool is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && !strncasecmp(s, word, n);
}

struct msearch_seen {
	bool man, st, mx;
};

static int parse_header(const char *line, size_t len, struct ptv_ssdp_msearch *out,
			struct msearch_seen *seen)
{
	const char *colon = memchr(line, ':', len), *v;
	size_t nlen, vlen;

	if (!colon || colon == line)
		return -EINVAL;
	nlen = (size_t)(colon - line);
	for (size_t i = 0; i < nlen; i++) {
		if (!token_char(line[i]))
			return -EINVAL;
	}
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (!value_ok(v, vlen))
		return -EINVAL;
	if (is(line, nlen, "ST")) {
		if (seen->st || !vlen || vlen > PTV_SSDP_MAX_ST)
			return -EINVAL;
		seen->st = true;
		memcpy(out->st, v, vlen);
		out->st[vlen] = '\0';
	} else if (is(line, nlen, "MAN")) {
		/* UDA wants the quotes; some scripts forget them, and accepting that costs
		 * nothing since the meaning is the same. */
		if (seen->man ||
		    !(is(v, vlen, "\"ssdp:discover\"") || is(v, vlen, "ssdp:discover")))
			return -EINVAL;
		seen->man = true;
	} else if (is(line, nlen, "MX")) {
		if (seen->mx || parse_mx(v, vlen, &out->mx))
			return -EINVAL;
		seen->mx = true;
	}
	return 0;
}

int ptv_ssdp_parse(const void *buf, size_t n, struct ptv_ssdp_msearch *out)
{
	const char *p = buf, *end = p + n, *line;
	struct msearch_seen seen = {0};
	size_t len;
	int ret;

	out->st[0] = '\0';
	out->mx = -1;
	if (n > PTV_SSDP_MAX_PACKET)
		return -EMSGSIZE;
	if (!n || memchr(p, '\0', n))
		return -EINVAL;
	next_line(&p, end, &line, &len);
	if (!is(line, len, "M-SEARCH * HTTP/1.1")) {
		if ((len >= 9 && !strncmp(line, "HTTP/1.1 ", 9)) ||
		    is(line, len, "NOTIFY * HTTP/1.1"))
			return -ENOMSG;
		return -EINVAL;
	}
	/* Method and target are case-sensitive in HTTP; "m-search" is not ours to guess. */
	if (strncmp(line, "M-SEARCH", 8))
		return -EINVAL;
	while (next_line(&p, end, &line, &len) && len) {
		ret = parse_header(line, len, out, &seen);
		if (ret)
			return ret;
	}
	return seen.man && seen.st ? 0 : -EINVAL;
}

enum ptv_ssdp_want ptv_ssdp_classify(const char *st, const char **uuid)
{
	*uuid = NULL;
	if (!strcmp(st, "ssdp:all"))
		return PTV_SSDP_WANT_ALL;
	if (!strcmp(st, "upnp:rootdevice"))
		return PTV_SSDP_WANT_ROOT;
	if (!strcmp(st, PTV_SSDP_MEDIASERVER))
		return PTV_SSDP_WANT_MEDIASERVER;
	if (!strncmp(st, "uuid:", 5) && strlen(st + 5) == 36) {
		*uuid = st + 5;
		return PTV_SSDP_WANT_UUID;
	}
	return PTV_SSDP_WANT_NONE;
}

/* ---- writers ---- */

static void target_strings(const struct ptv_ssdp_adv *a, enum ptv_ssdp_target t, char *nt,
			   size_t ntlen, char *usn, size_t usnlen)
{
	switch (t) {
	case PTV_SSDP_T_ROOT:
		snprintf(nt, ntlen, "upnp:rootdevice");
		snprintf(usn, usnlen, "uuid:%s::upnp:rootdevice", a->uuid);
		break;
	case PTV_SSDP_T_MEDIASERVER:
		snprintf(nt, ntlen, "%s", PTV_SSDP_MEDIASERVER);
		snprintf(usn, usnlen, "uuid:%s::%s", a->uuid, PTV_SSDP_MEDIASERVER);
		break;
	default:
		snprintf(nt, ntlen, "uuid:%s", a->uuid);
		snprintf(usn, usnlen, "uuid:%s", a->uuid);
		break;
	}
}

static int finish(int n, size_t cap)
{
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int ptv_ssdp_response(const struct ptv_ssdp_adv *a, enum ptv_ssdp_target t, char *out, size_t cap)
{
	char st[128], usn[192];

	target_strings(a, t, st, sizeof(st), usn, sizeof(usn));
	/* No DATE: it is only recommended, and every byte here counts against the
	 * amplification budget. */
	return finish(snprintf(out, cap,
			       "HTTP/1.1 200 OK\r\n"
			       "CACHE-CONTROL: max-age=%u\r\n"
			       "EXT:\r\n"
			       "LOCATION: %s\r\n"
			       "SERVER: %s\r\n"
			       "ST: %s\r\n"
			       "USN: %s\r\n"
			       "BOOTID.UPNP.ORG: %u\r\n"
			       "CONFIGID.UPNP.ORG: %u\r\n"
			       "\r\n",
			       a->max_age, a->location, a->server, st, usn, a->bootid, a->configid),
		      cap);
}

int ptv_ssdp_notify(const struct ptv_ssdp_adv *a, enum ptv_ssdp_target t, bool alive, char *out,
		    size_t cap)
{
	char nt[128], usn[192];

	target_strings(a, t, nt, sizeof(nt), usn, sizeof(usn));
	if (!alive)
		return finish(snprintf(out, cap,
				       "NOTIFY * HTTP/1.1\r\n"
				       "HOST: " PTV_SSDP_GROUP ":1900\r\n"
				       "NT: %s\r\n"
				       "NTS: ssdp:byebye\r\n"
				       "USN: %s\r\n"
				       "BOOTID.UPNP.ORG: %u\r\n"
				       "CONFIGID.UPNP.ORG: %u\r\n"
				       "\r\n",
				       nt, usn, a->bootid, a->configid),
			      cap);
	return finish(snprintf(out, cap,
			       "NOTIFY * HTTP/1.1\r\n"
			       "HOST: " PTV_SSDP_GROUP ":1900\r\n"
			       "CACHE-CONTROL: max-age=%u\r\n"
			       "LOCATION: %s\r\n"
			       "NT: %s\r\n"
			       "NTS: ssdp:alive\r\n"
			       "SERVER: %s\r\n"
			       "USN: %s\r\n"
			       "BOOTID.UPNP.ORG: %u\r\n"
			       "CONFIGID.UPNP.ORG: %u\r\n"
			       "\r\n",
			       a->max_age, a->location, nt, a->server, usn, a->bootid, a->configid),
		      cap);
}

/* ---- responder ---- */

struct ssdp_pending {
	struct ptv_timer t;
	struct ptv_ssdp *s;
	bool used;
	struct sockaddr_in to;
	int ifindex;
	uint32_t local;
	size_t req_bytes;
	enum ptv_ssdp_want want;
	char uuid[37];
};

struct ptv_ssdp {
	struct ptv_disc_sock sock;
	struct ptv_reactor *r;
	struct ptv_netfilter *nf;
	struct ptv_disc_reach reach;
	unsigned interval;
	char server[96];
	uint32_t bootid;
	uint64_t rng;
	unsigned rotation;
	int joined[SSDP_MAX_JOINED];
	size_t n_joined;
	struct ptv_timer notify;
	unsigned burst_left;
	bool stopped;
	struct ssdp_pending pending[SSDP_PENDING];
};

static uint32_t ssdp_rand(struct ptv_ssdp *s)
{
	/* xorshift64*: spreading answers over MX needs no cryptographic quality. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * 2685821657736338717ull) >> 32);
}

static uint32_t device_configid(const struct ptv_lineup_device *d)
{
	/* CONFIGID follows device.xml: a changed description gets a new one. 24 bits max. */
	if (!d->device_xml)
		return 1;
	return (uint32_t)crc32(0L, (const Bytef *)d->device_xml->data, (uInt)d->device_xml->len) &
	       0xFFFFFF;
}

static void adv_fill(struct ptv_ssdp *s, const struct ptv_lineup_device *d, unsigned index,
		     uint32_t local, char *loc, size_t loclen, struct ptv_ssdp_adv *a)
{
	char base[600];

	ptv_disc_base_url(&s->reach, d->base_url, index, local, base, sizeof(base));
	snprintf(loc, loclen, "%s/device.xml", base);
	a->uuid = d->id.uuid;
	a->location = loc;
	a->server = s->server;
	a->max_age = PTV_SSDP_MAX_AGE;
	a->bootid = s->bootid;
	a->configid = device_configid(d);
}

static int ssdp_send(struct ptv_ssdp *s, const struct sockaddr_in *to, int ifindex, uint32_t local,
		     const char *buf, int n)
{
	int ret;

	if (n < 0)
		return n;
	ret = ptv_disc_sock_send(&s->sock, to, ifindex, local, buf, (size_t)n);
	if (ret)
		ptv_debug("discovery", "ssdp send: %s", ptv_strerror(ret));
	return ret;
}

/* The device a search is answered for: rotating, so repeated searches see every one. */
static int pick_device(struct ptv_ssdp *s, const struct ssdp_pending *p, const struct ptv_lineup *l)
{
	if (!l->n_devices)
		return -1;
	if (p->want != PTV_SSDP_WANT_UUID)
		return (int)(s->rotation++ % l->n_devices);
	for (unsigned i = 0; i < l->n_devices; i++) {
		if (!strcasecmp(l->devices[i].id.uuid, p->uuid))
			return (int)i;
	}
	return -1;
}

static bool want_target(enum ptv_ssdp_want w, enum ptv_ssdp_target t)
{
	switch (w) {
	case PTV_SSDP_WANT_ALL:
		return true;
	case PTV_SSDP_WANT_ROOT:
		return t == PTV_SSDP_T_ROOT;
	case PTV_SSDP_WANT_MEDIASERVER:
		return t == PTV_SSDP_T_MEDIASERVER;
	case PTV_SSDP_WANT_UUID:
		return t == PTV_SSDP_T_UUID;
	default:
		return false;
	}
}

static void ssdp_answer(struct ptv_ssdp *s, struct ssdp_pending *p)
{
	const struct ptv_lineup *l = ptv_lineup_current(s->r);
	size_t budget = PTV_SSDP_AMPLIFICATION * p->req_bytes, sent = 0;
	char loc[640], out[1024];
	struct ptv_ssdp_adv a;
	unsigned replies = 0;
	int dev;

	if (!l || (dev = pick_device(s, p, l)) < 0)
		return;
	adv_fill(s, &l->devices[dev], (unsigned)dev, p->local, loc, sizeof(loc), &a);
	for (int t = 0; t < PTV_SSDP_NTARGETS; t++) {
		int n;

		if (!want_target(p->want, t))
			continue;
		n = ptv_ssdp_response(&a, t, out, sizeof(out));
		if (n < 0)
			continue;
		/* The first response always goes (a search must find us); the others only
		 * while the total stays within the budget. */
		if (replies && sent + (size_t)n > budget)
			break;
		if (ssdp_send(s, &p->to, p->ifindex, p->local, out, n))
			break;
		sent += (size_t)n;
		replies++;
		ptv_netfilter_count_reply(s->nf, PTV_DISC_SSDP, (size_t)n);
	}
}

static void pending_fire(struct ptv_timer *t)
{
	struct ssdp_pending *p = ptv_container_of(t, struct ssdp_pending, t);

	p->used = false;
	if (!p->s->stopped)
		ssdp_answer(p->s, p);
}

static struct ssdp_pending *pending_get(struct ptv_ssdp *s)
{
	for (size_t i = 0; i < SSDP_PENDING; i++) {
		if (!s->pending[i].used)
			return &s->pending[i];
	}
	return NULL;
}

static bool is_multicast(uint32_t addr)
{
	return (ntohl(addr) >> 28) == 0xe;
}

/* Checks and queues one search; returns the drop reason (PTV_DISC_OK if queued/ignored). */
static enum ptv_disc_drop ssdp_accept(struct ptv_ssdp *s, const struct ptv_disc_dgram *d)
{
	bool mcast = is_multicast(d->dst_addr);
	struct ptv_ssdp_msearch m;
	struct ssdp_pending *p;
	enum ptv_ssdp_want want;
	const char *uuid;
	uint32_t delay;
	int ret;

	if (d->truncated)
		return PTV_DISC_MALFORMED;
	ret = ptv_ssdp_parse(d->data, d->len, &m);
	if (ret == -ENOMSG)
		return PTV_DISC_OK; /* NOTIFY or a response of another device */
	/* UDA: a multicast search without MX is to be ignored; it is not a valid one. */
	if (ret || (mcast && m.mx < 0))
		return PTV_DISC_MALFORMED;
	want = ptv_ssdp_classify(m.st, &uuid);
	if (want == PTV_SSDP_WANT_NONE)
		return PTV_DISC_OK; /* not ours: no answer, nothing amplified */
	if (!ptv_netfilter_rate_ok(s->nf, PTV_DISC_SSDP, d->src.sin_addr.s_addr,
				   ptv_reactor_now_ms(s->r)))
		return PTV_DISC_RATE;
	p = pending_get(s);
	if (!p)
		return PTV_DISC_RATE;
	p->used = true;
	p->s = s;
	p->to = d->src;
	p->ifindex = d->ifindex;
	p->local = d->local_addr;
	p->req_bytes = d->len;
	p->want = want;
	snprintf(p->uuid, sizeof(p->uuid), "%s", uuid ? uuid : "");
	/* A random point within MX spreads the answers of every device on the LAN. */
	delay = mcast ? ssdp_rand(s) % ((uint32_t)m.mx * 1000u) : ssdp_rand(s) % SSDP_UNICAST_MS;
	ptv_timer_init(&p->t, pending_fire);
	ptv_timer_arm(s->r, &p->t, delay);
	return PTV_DISC_OK;
}

static void ssdp_on_dgram(struct ptv_disc_sock *sock, const struct ptv_disc_dgram *d)
{
	struct ptv_ssdp *s = ptv_container_of(sock, struct ptv_ssdp, sock);
	enum ptv_disc_drop why;

	ptv_netfilter_count_request(s->nf, PTV_DISC_SSDP, d->len);
	why = ptv_netfilter_check(s->nf, &d->src, d->ifindex);
	if (why == PTV_DISC_OK)
		why = ssdp_accept(s, d);
	if (why != PTV_DISC_OK)
		ptv_netfilter_count_drop(s->nf, PTV_DISC_SSDP, why);
}

/* ---- NOTIFY ---- */

static void notify_iface(struct ptv_ssdp *s, const struct ptv_iface *f, const struct ptv_lineup *l,
			 bool alive)
{
	struct sockaddr_in group = {.sin_family = AF_INET, .sin_port = htons(PTV_SSDP_PORT)};
	char loc[640], out[1024];
	struct ptv_ssdp_adv a;

	inet_pton(AF_INET, PTV_SSDP_GROUP, &group.sin_addr);
	for (unsigned i = 0; i < l->n_devices; i++) {
		adv_fill(s, &l->devices[i], i, f->addrs[0], loc, sizeof(loc), &a);
		for (int t = 0; t < PTV_SSDP_NTARGETS; t++) {
			int n = ptv_ssdp_notify(&a, t, alive, out, sizeof(out));

			ssdp_send(s, &group, f->ifindex, f->addrs[0], out, n);
		}
	}
}

static void notify_all(struct ptv_ssdp *s, const struct ptv_lineup *l, bool alive)
{
	const struct ptv_iface *ifs;
	size_t n = ptv_netfilter_ifaces(s->nf, &ifs);

	for (size_t i = 0; i < n; i++) {
		if (ifs[i].ssdp_adv && ifs[i].n_addrs)
			notify_iface(s, &ifs[i], l, alive);
	}
}

static void notify_fire(struct ptv_timer *t)
{
	struct ptv_ssdp *s = ptv_container_of(t, struct ptv_ssdp, notify);
	const struct ptv_lineup *l = ptv_lineup_current(s->r);
	uint64_t next;

	if (s->stopped)
		return;
	if (!l) {
		ptv_timer_arm(s->r, &s->notify, SSDP_RETRY_MS);
		return;
	}
	notify_all(s, l, true);
	if (s->burst_left && --s->burst_left) {
		next = 1000;
	} else {
		/* Below max-age/2 with jitter, so neighbours' rounds do not line up. */
		next = (uint64_t)s->interval * 1000u;
		next -= ssdp_rand(s) % (next / 5 + 1);
	}
	ptv_timer_arm(s->r, &s->notify, next);
}

static void alive_burst(struct ptv_ssdp *s)
{
	s->burst_left = SSDP_ALIVE_BURST;
	/* UDA 1.1: a random 0-100 ms before the first announcement. */
	ptv_timer_arm(s->r, &s->notify, ssdp_rand(s) % 100u);
}

/* ---- group membership ---- */

static int membership(struct ptv_ssdp *s, int ifindex, bool join)
{
	struct ip_mreqn mr = {.imr_ifindex = ifindex};

	inet_pton(AF_INET, PTV_SSDP_GROUP, &mr.imr_multiaddr);
	if (setsockopt(s->sock.fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &mr,
		       sizeof(mr)))
		return -errno;
	return 0;
}

static bool joined(const struct ptv_ssdp *s, int ifindex)
{
	for (size_t i = 0; i < s->n_joined; i++) {
		if (s->joined[i] == ifindex)
			return true;
	}
	return false;
}

static void leave_gone(struct ptv_ssdp *s)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n_joined; i++) {
		const struct ptv_iface *f = ptv_netfilter_iface(s->nf, s->joined[i]);

		if (f && f->ssdp_adv) {
			s->joined[k++] = s->joined[i];
			continue;
		}
		/* Fails with ENODEV when the link is already gone, which leaves it too. */
		membership(s, s->joined[i], false);
		ptv_info("discovery", "ssdp: left " PTV_SSDP_GROUP " on ifindex %d", s->joined[i]);
	}
	s->n_joined = k;
}

void ptv_ssdp_ifaces_changed(struct ptv_ssdp *s)
{
	const struct ptv_iface *ifs;
	size_t n;
	bool added = false;
	int ret;

	if (s->stopped)
		return;
	leave_gone(s);
	n = ptv_netfilter_ifaces(s->nf, &ifs);
	for (size_t i = 0; i < n; i++) {
		if (!ifs[i].ssdp_adv || joined(s, ifs[i].ifindex) || s->n_joined == SSDP_MAX_JOINED)
			continue;
		ret = membership(s, ifs[i].ifindex, true);
		if (ret && ret != -EADDRINUSE) {
			ptv_warn("discovery", "ssdp: cannot join " PTV_SSDP_GROUP " on %s: %s",
				 ifs[i].name, ptv_strerror(ret));
			continue;
		}
		s->joined[s->n_joined++] = ifs[i].ifindex;
		ptv_info("discovery", "ssdp: joined " PTV_SSDP_GROUP " on %s", ifs[i].name);
		added = true;
	}
	if (added)
		alive_burst(s);
}

/* ---- lifecycle ---- */

static void server_string(char *out, size_t len)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (!uname(&u))
		sscanf(u.release, "%u.%u", &major, &minor);
	snprintf(out, len, "Linux/%u.%u UPnP/1.1 PlexTV/%s", major, minor, PTV_VERSION);
}

static int ssdp_socket_setup(struct ptv_ssdp *s)
{
	int ttl = 2, loop = 1;

	/* UDA 1.1: TTL 2. Loop on, so a Plex server on this very host hears the NOTIFYs. */
	if (setsockopt(s->sock.fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
	    setsockopt(s->sock.fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)))
		return -errno;
	return 0;
}

int ptv_ssdp_start(struct ptv_reactor *r, struct ptv_netfilter *nf, const struct ptv_ssdp_opts *o,
		   struct ptv_ssdp **out)
{
	struct ptv_ssdp *s = ptv_xcalloc(1, sizeof(*s));
	int ret;

	s->r = r;
	s->nf = nf;
	s->reach = *o->reach;
	s->interval = o->notify_interval;
	s->bootid = (uint32_t)(ptv_wall_seconds()) & 0x7FFFFFFF;
	if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) != sizeof(s->rng) || !s->rng)
		s->rng = ptv_now_ns() | 1;
	server_string(s->server, sizeof(s->server));
	ptv_timer_init(&s->notify, notify_fire);
	ret = ptv_disc_sock_open(&s->sock, r, o->port, ssdp_on_dgram);
	if (!ret) {
		ret = ssdp_socket_setup(s);
		if (ret)
			ptv_disc_sock_close(&s->sock);
	}
	if (ret) {
		free(s);
		return ret;
	}
	ptv_ssdp_ifaces_changed(s);
	*out = s;
	return 0;
}

int ptv_ssdp_fd(const struct ptv_ssdp *s)
{
	return s->sock.fd;
}

void ptv_ssdp_stop(struct ptv_ssdp *s)
{
	const struct ptv_lineup *l;

	if (!s || s->stopped)
		return;
	l = ptv_lineup_current(s->r);
	if (l)
		notify_all(s, l, false);
	s->stopped = true;
	ptv_timer_cancel(&s->notify);
	for (size_t i = 0; i < SSDP_PENDING; i++) {
		if (s->pending[i].used)
			ptv_timer_cancel(&s->pending[i].t);
		s->pending[i].used = false;
	}
	ptv_disc_sock_close(&s->sock);
}

void ptv_ssdp_free(struct ptv_ssdp *s)
{
	free(s);
}
