/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for the binary channel record (chanrec.h). ptv_chanrec_decode() runs on
 * arbitrary bytes (records come from the store, which a damaged file or another version may
 * have written). Checked besides crashes:
 *  - every decoded string lies inside the input and is NUL-terminated there;
 *  - ptv_chanrec_peek_source() agrees with the decoded source;
 *  - encode(decode(x)) reproduces the bytes of x that decode read (the reserved byte becomes 0),
 *    and decoding that encoding gives the same record again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/chanrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(struct ptv_str s, const uint8_t *data, size_t size)
{
	const uint8_t *p = (const uint8_t *)s.p;

	/* A record that decoded has every string inside the input, NUL included. */
	if (!s.p || p < data || p + s.len >= data + size || s.p[s.len] != '\0')
		abort();
}

static void all_strs(const struct ptv_chanrec *r, struct ptv_str *out, unsigned *n)
{
	const struct ptv_str fixed[] = {r->number, r->tvg_id, r->name,	    r->tvg_name,
					r->logo,   r->group,  r->off_reason};

	*n = 0;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		out[(*n)++] = fixed[i];
	for (unsigned i = 0; i < r->n_urls; i++)
		out[(*n)++] = r->urls[i];
	for (unsigned i = 0; i < r->n_headers; i++) {
		out[(*n)++] = r->hdr_names[i];
		out[(*n)++] = r->hdr_values[i];
	}
}

#define MAX_STRS (7 + PTV_CHANREC_MAX_URLS + 2 * PTV_CHANREC_MAX_HEADERS)

static void same_record(const struct ptv_chanrec *a, const struct ptv_chanrec *b)
{
	struct ptv_str sa[MAX_STRS], sb[MAX_STRS];
	unsigned na, nb;

	if (a->kind != b->kind || a->flags != b->flags || a->id != b->id ||
	    a->source != b->source || memcmp(&a->shift, &b->shift, sizeof(a->shift)) ||
	    a->n_urls != b->n_urls || a->n_headers != b->n_headers)
		abort();
	all_strs(a, sa, &na);
	all_strs(b, sb, &nb);
	if (na != nb)
		abort();
	for (unsigned i = 0; i < na; i++) {
		if (sa[i].len != sb[i].len || memcmp(sa[i].p, sb[i].p, sa[i].len))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ptv_str strs[MAX_STRS];
	struct ptv_chanrec r, again;
	struct ptv_buf enc;
	unsigned n;

	if (ptv_chanrec_decode(data, size, &r))
		return 0;
	all_strs(&r, strs, &n);
	for (unsigned i = 0; i < n; i++)
		check_str(strs[i], data, size);
	if (ptv_chanrec_peek_source(data, size) != r.source)
		abort();

	ptv_buf_init(&enc);
	if (ptv_chanrec_encode(&r, &enc))
		abort();
	/* Same bytes as the input's prefix, except the reserved byte (written as 0). */
	if (enc.len > size || enc.len < 4 || memcmp(enc.data, data, 3) || enc.data[3] != 0 ||
	    memcmp(enc.data + 4, data + 4, enc.len - 4))
		abort();
	if (ptv_chanrec_decode(enc.data, enc.len, &again))
		abort();
	same_record(&r, &again);
	ptv_buf_free(&enc);
	return 0;
}
