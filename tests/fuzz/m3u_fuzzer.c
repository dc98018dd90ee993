/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for the M3U parser. Besides crashes and leaks (ASan/UBSan) it checks two
 * properties and aborts when they fail:
 *  - nothing emitted contains a control character (CR/LF injection, RELIABILITY.md §2.6);
 *  - chunking does not matter: the input parsed whole and parsed in pieces (sizes drawn from
 *    the first input byte) give the same entries and the same counters.
 * Seed it with ../shared/data/m3u; run with -max_len above PTV_M3U_MAX_LINE now and then so
 * the long-line paths are reached.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/m3u.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u; u++)
		if (*u < 0x20 || *u == 0x7f)
			abort();
	return fnv(h, s, strlen(s) + 1);
}

static int on_entry(const struct ptv_m3u_entry *e, void *ctx)
{
	uint64_t *h = ctx;
	const char *const s[] = {e->name,     e->url,	   e->tvg_id, e->tvg_name,
				 e->tvg_logo, e->tvg_chno, e->group,  e->catchup};
	uint8_t flags = (uint8_t)(e->radio | e->drm << 1 | e->acestream << 2);

	if (!e->url[0] || e->n_headers > PTV_M3U_MAX_HEADERS)
		abort();
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		*h = fnv_str(*h, s[i]);
	for (unsigned i = 0; i < e->n_headers; i++) {
		*h = fnv_str(*h, e->headers[i].name);
		*h = fnv_str(*h, e->headers[i].value);
	}
	*h = fnv(*h, &e->tvg_shift, sizeof(e->tvg_shift));
	*h = fnv(*h, &e->duration, sizeof(e->duration));
	*h = fnv(*h, &flags, 1);
	*h = fnv(*h, &e->line, sizeof(e->line));
	return 0;
}

/* Parses @data in chunks of 1..@step bytes (0: whole); returns a digest of everything seen. */
static uint64_t run(const uint8_t *data, size_t size, unsigned step)
{
	struct ptv_m3u_parser *p;
	const struct ptv_m3u_stats *st;
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned k = 0;

	if (ptv_m3u_parser_new(on_entry, &h, &p))
		abort();
	for (size_t off = 0; off < size;) {
		size_t n = step ? 1 + (k++ * 7919u) % step : size;

		n = n < size - off ? n : size - off;
		if (ptv_m3u_parser_feed(p, (const char *)data + off, n))
			abort();
		off += n;
	}
	if (ptv_m3u_parser_finish(p))
		abort();
	st = ptv_m3u_parser_stats(p);
	h = fnv(h, &st->entries, sizeof(st->entries));
	h = fnv(h, &st->lines, sizeof(st->lines));
	h = fnv(h, st->errors, sizeof(st->errors));
	h = fnv(h, &st->junk_lines, sizeof(st->junk_lines));
	h = fnv_str(h, st->url_tvg);
	ptv_m3u_parser_free(p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned step;

	if (!size)
		return 0;
	step = 1 + data[0] % 64;
	if (run(data + 1, size - 1, 0) != run(data + 1, size - 1, step))
		abort();
	return 0;
}
