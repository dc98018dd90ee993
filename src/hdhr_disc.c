/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HDHomeRun UDP discovery: codec and responder (see hdhr_disc.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "plextv/hdhr_disc.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/netfilter.h"
#include "plextv/reactor.h"

uint32_t ptv_hdhr_crc32(const void *p, size_t n)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	while (n) {
		uInt chunk = (uInt)PTV_MIN(n, (size_t)1 << 30);

		crc = crc32(crc, p, chunk);
		p = (const uint8_t *)p + chunk;
		n -= chunk;
	}
	return (uint32_t)crc;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Reads one TLV header at @p (within @end). Returns the header size or 0 if malformed. */
static size_t tlv_header(const uint8_t *p, const uint8_t *end, uint8_t *tag, size_t *len)
{
	if (end - p < 2)
		return 0;
	*tag = p[0];
	if (!(p[1] & 0x80)) {
		*len = p[1];
		return 2;
	}
	if (end - p < 3)
		return 0;
	*len = (size_t)(p[1] & 0x7F) | (size_t)p[2] << 7;
	return 3;
}

static int req_add_type(struct ptv_hdhr_disc_req *r, uint32_t type)
{
	if (r->n_types == PTV_HDHR_MAX_TYPES)
		return -EINVAL;
	r->types[r->n_types++] = type;
	return 0;
}

static int req_tlv(struct ptv_hdhr_disc_req *r, uint8_t tag, const uint8_t *v, size_t len)
{
	switch (tag) {
	case PTV_HDHR_TAG_DEVICE_TYPE:
		return len == 4 ? req_add_type(r, get_be32(v)) : -EINVAL;
	case PTV_HDHR_TAG_DEVICE_ID:
		if (len != 4)
			return -EINVAL;
		r->has_id = true;
		r->device_id = get_be32(v);
		return 0;
	case PTV_HDHR_TAG_MULTI_TYPE:
		if (len % 4)
			return -EINVAL;
		for (size_t i = 0; i < len; i += 4) {
			if (req_add_type(r, get_be32(v + i)))
				return -EINVAL;
		}
		return 0;
	default:
		return 0; /* unknown tags are skipped, as libhdhomerun does */
	}
}

int ptv_hdhr_disc_parse(const void *buf, size_t n, struct ptv_hdhr_disc_req *out)
{
	const uint8_t *p = buf, *end;
	size_t plen;
	uint16_t type;

	memset(out, 0, sizeof(*out));
	if (n < 8 || n > PTV_HDHR_MAX_PACKET)
		return -EMSGSIZE;
	type = (uint16_t)(p[0] << 8 | p[1]);
	plen = (size_t)(p[2] << 8 | p[3]);
	if (plen + 8 != n)
		return -EMSGSIZE;
	if (ptv_hdhr_crc32(p, 4 + plen) != get_le32(p + 4 + plen))
		return -EBADMSG;
	if (type != PTV_HDHR_TYPE_DISCOVER_REQ)
		return -ENOMSG;
	end = p + 4 + plen;
	for (p += 4; p < end;) {
		uint8_t tag;
		size_t len, hl = tlv_header(p, end, &tag, &len);

		if (!hl || len > (size_t)(end - p) - hl)
			return -EINVAL;
		if (req_tlv(out, tag, p + hl, len))
			return -EINVAL;
		p += hl + len;
	}
	return 0;
}

bool ptv_hdhr_disc_matches(const struct ptv_hdhr_disc_req *req, uint32_t device_id)
{
	bool type_ok = false;

	/* No type at all: libhdhomerun always sends one, but a bare probe is not a "no". */
	if (!req->n_types)
		type_ok = true;
	for (unsigned i = 0; i < req->n_types; i++) {
		if (req->types[i] == PTV_HDHR_WILDCARD ||
		    req->types[i] == PTV_HDHR_DEVICE_TYPE_TUNER)
			type_ok = true;
	}
	if (!type_ok)
		return false;
	return !req->has_id || req->device_id == PTV_HDHR_WILDCARD || req->device_id == device_id;
}

/* ---- writer ---- */

struct pkt {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};

static void put(struct pkt *k, const void *v, size_t n)
{
	if (k->overflow || n > k->cap - k->len) {
		k->overflow = true;
		return;
	}
	memcpy(k->p + k->len, v, n);
	k->len += n;
}

static void put_tlv(struct pkt *k, uint8_t tag, const void *v, size_t n)
{
	uint8_t h[3] = {tag};

	if (n > 0x3FFF) {
		k->overflow = true;
		return;
	}
	if (n <= 127) {
		h[1] = (uint8_t)n;
		put(k, h, 2);
	} else {
		h[1] = (uint8_t)((n & 0x7F) | 0x80);
		h[2] = (uint8_t)(n >> 7);
		put(k, h, 3);
	}
	put(k, v, n);
}

static void put_tlv_u32(struct pkt *k, uint8_t tag, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put_tlv(k, tag, b, 4);
}

static void put_tlv_str(struct pkt *k, uint8_t tag, const char *s)
{
	/* Discover strings carry no NUL: the reader copies the length and terminates. */
	if (s && *s)
		put_tlv(k, tag, s, strlen(s));
}

/* Fills in type, payload length and CRC around the TLVs written after the 4-byte header. */
static int pkt_finish(struct pkt *k, uint16_t type)
{
	size_t plen = k->len - 4;
	uint32_t crc;
	uint8_t c[4];

	if (k->overflow || k->len + 4 > PTV_HDHR_MAX_PACKET)
		return -ENOSPC;
	k->p[0] = (uint8_t)(type >> 8);
	k->p[1] = (uint8_t)type;
	k->p[2] = (uint8_t)(plen >> 8);
	k->p[3] = (uint8_t)plen;
	crc = ptv_hdhr_crc32(k->p, k->len);
	c[0] = (uint8_t)crc;
	c[1] = (uint8_t)(crc >> 8);
	c[2] = (uint8_t)(crc >> 16);
	c[3] = (uint8_t)(crc >> 24);
	put(k, c, 4);
	return k->overflow ? -ENOSPC : (int)k->len;
}

int ptv_hdhr_disc_reply(const struct ptv_hdhr_disc_info *d, uint8_t *out, size_t cap)
{
	struct pkt k = {.p = out, .len = 4, .cap = cap};
	uint8_t tuners = (uint8_t)PTV_MIN(d->tuner_count, 255u);

	if (cap < 8)
		return -ENOSPC;
	put_tlv_u32(&k, PTV_HDHR_TAG_DEVICE_TYPE, PTV_HDHR_DEVICE_TYPE_TUNER);
	put_tlv_u32(&k, PTV_HDHR_TAG_DEVICE_ID, d->device_id);
	put_tlv(&k, PTV_HDHR_TAG_TUNER_COUNT, &tuners, 1);
	put_tlv_str(&k, PTV_HDHR_TAG_BASE_URL, d->base_url);
	put_tlv_str(&k, PTV_HDHR_TAG_LINEUP_URL, d->lineup_url);
	put_tlv_str(&k, PTV_HDHR_TAG_DEVICE_AUTH_STR, d->device_auth);
	return pkt_finish(&k, PTV_HDHR_TYPE_DISCOVER_RPY);
}

int ptv_hdhr_disc_request(const uint32_t *types, unsigned n_types, bool has_id, uint32_t device_id,
			  uint8_t *out, size_t cap)
{
	struct pkt k = {.p = out, .len = 4, .cap = cap};

	if (cap < 8)
		return -ENOSPC;
	if (n_types == 1) {
		put_tlv_u32(&k, PTV_HDHR_TAG_DEVICE_TYPE, types[0]);
	} else if (n_types > 1) {
		uint8_t b[4 * PTV_HDHR_MAX_TYPES];

		if (n_types > PTV_HDHR_MAX_TYPES)
			return -EINVAL;
		for (unsigned i = 0; i < n_types; i++) {
			b[4 * i] = (uint8_t)(types[i] >> 24);
			b[4 * i + 1] = (uint8_t)(types[i] >> 16);
			b[4 * i + 2] = (uint8_t)(types[i] >> 8);
			b[4 * i + 3] = (uint8_t)types[i];
		}
		put_tlv(&k, PTV_HDHR_TAG_MULTI_TYPE, b, 4 * n_types);
	}
	if (has_id)
		put_tlv_u32(&k, PTV_HDHR_TAG_DEVICE_ID, device_id);
	return pkt_finish(&k, PTV_HDHR_TYPE_DISCOVER_REQ);
}

/* ---- responder ---- */

struct ptv_hdhr_disc {
	struct ptv_disc_sock sock;
	struct ptv_reactor *r;
	struct ptv_netfilter *nf;
	struct ptv_disc_reach reach;
};

static void hdhr_answer(struct ptv_hdhr_disc *h, const struct ptv_disc_dgram *d,
			const struct ptv_hdhr_disc_req *req, const struct ptv_lineup *l)
{
	char base[600], lineup[640];
	uint8_t out[PTV_HDHR_MAX_PACKET];

	/* One datagram per virtual device: that is how several physical tuners on one LAN
	 * answer a broadcast, and libhdhomerun lists each reply as a device. */
	for (unsigned i = 0; i < l->n_devices; i++) {
		const struct ptv_lineup_device *dev = &l->devices[i];
		struct ptv_hdhr_disc_info info = {
			.device_id = dev->id.device_id,
			.tuner_count = dev->tuners,
			.base_url = base,
			.lineup_url = lineup,
			.device_auth = dev->id.auth,
		};
		int n, ret;

		if (!ptv_hdhr_disc_matches(req, dev->id.device_id))
			continue;
		ptv_disc_base_url(&h->reach, dev->base_url, i, d->local_addr, base, sizeof(base));
		snprintf(lineup, sizeof(lineup), "%s/lineup.json", base);
		n = ptv_hdhr_disc_reply(&info, out, sizeof(out));
		if (n < 0)
			continue;
		ret = ptv_disc_sock_send(&h->sock, &d->src, d->ifindex, d->local_addr, out,
					 (size_t)n);
		if (ret)
			ptv_debug("discovery", "hdhr reply: %s", ptv_strerror(ret));
		else
			ptv_netfilter_count_reply(h->nf, PTV_DISC_HDHR, (size_t)n);
	}
}

static void hdhr_on_dgram(struct ptv_disc_sock *s, const struct ptv_disc_dgram *d)
{
	struct ptv_hdhr_disc *h = ptv_container_of(s, struct ptv_hdhr_disc, sock);
	struct ptv_hdhr_disc_req req;
	const struct ptv_lineup *l;
	enum ptv_disc_drop why;
	int ret;

	ptv_netfilter_count_request(h->nf, PTV_DISC_HDHR, d->len);
	why = ptv_netfilter_check(h->nf, &d->src, d->ifindex);
	if (why == PTV_DISC_OK && d->truncated)
		why = PTV_DISC_MALFORMED;
	if (why == PTV_DISC_OK) {
		ret = ptv_hdhr_disc_parse(d->data, d->len, &req);
		if (ret == -ENOMSG)
			return; /* another device's reply or a control frame: not for us */
		if (ret)
			why = PTV_DISC_MALFORMED;
	}
	if (why == PTV_DISC_OK &&
	    !ptv_netfilter_rate_ok(h->nf, PTV_DISC_HDHR, d->src.sin_addr.s_addr,
				   ptv_reactor_now_ms(h->r)))
		why = PTV_DISC_RATE;
	if (why != PTV_DISC_OK) {
		ptv_netfilter_count_drop(h->nf, PTV_DISC_HDHR, why);
		return;
	}
	l = ptv_lineup_current(h->r);
	if (l)
		hdhr_answer(h, d, &req, l);
}

int ptv_hdhr_disc_start(struct ptv_reactor *r, struct ptv_netfilter *nf,
			const struct ptv_disc_reach *reach, uint16_t port,
			struct ptv_hdhr_disc **out)
{
	struct ptv_hdhr_disc *h = ptv_xcalloc(1, sizeof(*h));
	int ret;

	h->r = r;
	h->nf = nf;
	h->reach = *reach;
	ret = ptv_disc_sock_open(&h->sock, r, port, hdhr_on_dgram);
	if (ret) {
		free(h);
		return ret;
	}
	*out = h;
	return 0;
}

int ptv_hdhr_disc_fd(const struct ptv_hdhr_disc *h)
{
	return h->sock.fd;
}

void ptv_hdhr_disc_stop(struct ptv_hdhr_disc *h)
{
	if (h)
		ptv_disc_sock_close(&h->sock);
}

void ptv_hdhr_disc_free(struct ptv_hdhr_disc *h)
{
	free(h);
}
