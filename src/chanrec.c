/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <string.h>

#include "plextv/chanrec.h"
#include "plextv/common.h"

#define CHANREC_FIXED 24 /* version, kind, flags, reserved, id, source, shift */

static void put_u32(struct ptv_buf *b, uint32_t v)
{
	unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
			       (unsigned char)(v >> 24)};

	ptv_buf_append(b, le, 4);
}

static void put_str(struct ptv_buf *b, struct ptv_str s)
{
	put_u32(b, s.len);
	ptv_buf_append(b, s.p, s.len);
	/* The NUL lets readers use decoded strings as C strings without copying them. */
	ptv_buf_putc(b, '\0');
}

int ptv_chanrec_encode(const struct ptv_chanrec *r, struct ptv_buf *out)
{
	unsigned char head[8] = {PTV_CHANREC_VERSION, r->kind, r->flags, 0};
	uint64_t shift;

	if (r->n_urls > PTV_CHANREC_MAX_URLS || r->n_headers > PTV_CHANREC_MAX_HEADERS)
		return -E2BIG;
	ptv_buf_append(out, head, 4);
	put_u32(out, r->id);
	put_u32(out, r->source);
	memcpy(&shift, &r->shift, sizeof(shift));
	put_u32(out, (uint32_t)shift);
	put_u32(out, (uint32_t)(shift >> 32));
	head[0] = (unsigned char)r->n_urls;
	head[1] = (unsigned char)(r->n_urls >> 8);
	head[2] = (unsigned char)r->n_headers;
	head[3] = (unsigned char)(r->n_headers >> 8);
	ptv_buf_append(out, head, 4);
	put_str(out, r->number);
	put_str(out, r->name);
	put_str(out, r->tvg_id);
	put_str(out, r->tvg_name);
	put_str(out, r->logo);
	put_str(out, r->group);
	put_str(out, r->off_reason);
	for (unsigned i = 0; i < r->n_urls; i++)
		put_str(out, r->urls[i]);
	for (unsigned i = 0; i < r->n_headers; i++) {
		put_str(out, r->hdr_names[i]);
		put_str(out, r->hdr_values[i]);
	}
	return out->oom ? -ENOMEM : 0;
}

struct reader {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static uint32_t get_u32(struct reader *rd)
{
	uint32_t v;

	if (rd->left < 4) {
		rd->bad = true;
		return 0;
	}
	v = (uint32_t)rd->p[0] | (uint32_t)rd->p[1] << 8 | (uint32_t)rd->p[2] << 16 |
	    (uint32_t)rd->p[3] << 24;
	rd->p += 4;
	rd->left -= 4;
	return v;
}

static struct ptv_str get_str(struct reader *rd)
{
	struct ptv_str s = {"", 0};
	uint32_t len = get_u32(rd);

	if (rd->bad || len >= rd->left || rd->p[len] != '\0') {
		rd->bad = true;
		return s;
	}
	s.p = (const char *)rd->p;
	s.len = len;
	rd->p += len + 1;
	rd->left -= len + 1;
	return s;
}

int ptv_chanrec_decode(const void *data, size_t len, struct ptv_chanrec *r)
{
	struct reader rd = {data, len, false};
	uint64_t shift;
	uint32_t counts;

	memset(r, 0, sizeof(*r));
	if (len < CHANREC_FIXED + 4 || rd.p[0] != PTV_CHANREC_VERSION)
		return -PTV_ERR_PARSE;
	r->kind = rd.p[1];
	r->flags = rd.p[2];
	rd.p += 4;
	rd.left -= 4;
	r->id = get_u32(&rd);
	r->source = get_u32(&rd);
	shift = get_u32(&rd);
	shift |= (uint64_t)get_u32(&rd) << 32;
	memcpy(&r->shift, &shift, sizeof(shift));
	counts = get_u32(&rd);
	r->n_urls = counts & 0xffff;
	r->n_headers = counts >> 16;
	if (r->n_urls > PTV_CHANREC_MAX_URLS || r->n_headers > PTV_CHANREC_MAX_HEADERS)
		return -PTV_ERR_PARSE;
	r->number = get_str(&rd);
	r->name = get_str(&rd);
	r->tvg_id = get_str(&rd);
	r->tvg_name = get_str(&rd);
	r->logo = get_str(&rd);
	r->group = get_str(&rd);
	r->off_reason = get_str(&rd);
	for (unsigned i = 0; i < r->n_urls; i++)
		r->urls[i] = get_str(&rd);
	for (unsigned i = 0; i < r->n_headers; i++) {
		r->hdr_names[i] = get_str(&rd);
		r->hdr_values[i] = get_str(&rd);
	}
	return rd.bad ? -PTV_ERR_PARSE : 0;
}

uint32_t ptv_chanrec_peek_source(const void *data, size_t len)
{
	struct reader rd = {(const unsigned char *)data + 8, len >= 12 ? len - 8 : 0, false};

	return len >= CHANREC_FIXED + 4 ? get_u32(&rd) : 0;
}
