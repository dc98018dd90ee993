/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Channel records in the store (PTV_DB_CHANNELS): a compact binary encoding, because lineups of
 * 10^5 channels are rewritten on every refresh and read on every snapshot, where JSON encoding
 * and parsing dominated the import time. `plextv channels list --json` shows them to people.
 *
 * Layout (little-endian): u8 version, u8 kind, u8 flags, u8 reserved, u32 id, u32 source,
 * f64 shift, then u16 n_urls, u16 n_headers, then strings (u32 len, bytes, NUL): number,
 * name, tvg_id, tvg_name, logo, group, off_reason, urls…, header name/value pairs….
 * Decoding points into the encoded bytes (no copies, and each string is NUL-terminated there):
 * valid as long as the bytes are.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/buf.h"

#define PTV_CHANREC_VERSION	1
#define PTV_CHANREC_MAX_URLS	16
#define PTV_CHANREC_MAX_HEADERS 16

enum ptv_chanrec_flag {
	PTV_CHANREC_ENABLED = 1u << 0,
	PTV_CHANREC_PRESENT = 1u << 1,
	PTV_CHANREC_DRM = 1u << 2,
	PTV_CHANREC_RADIO = 1u << 3,
	PTV_CHANREC_HD = 1u << 4,
};

/* A string with its length; decoded ones are also NUL-terminated. */
struct ptv_str {
	const char *p;
	uint32_t len;
};

struct ptv_chanrec {
	uint8_t kind;  /* enum ptv_channel_kind */
	uint8_t flags; /* PTV_CHANREC_* */
	uint32_t id, source;
	double shift;
	struct ptv_str number, name, tvg_id, tvg_name, logo, group, off_reason;
	struct ptv_str urls[PTV_CHANREC_MAX_URLS];
	unsigned n_urls;
	struct ptv_str hdr_names[PTV_CHANREC_MAX_HEADERS], hdr_values[PTV_CHANREC_MAX_HEADERS];
	unsigned n_headers;
};

/** Appends the encoding of @r to @out. Returns 0 or -ENOMEM / -E2BIG. */
int ptv_chanrec_encode(const struct ptv_chanrec *r, struct ptv_buf *out);
/** Decodes @len bytes; the strings point into @data. Returns 0 or -PTV_ERR_PARSE. */
int ptv_chanrec_decode(const void *data, size_t len, struct ptv_chanrec *r);

/** The source id of an encoded record without decoding it (0 if malformed). */
uint32_t ptv_chanrec_peek_source(const void *data, size_t len);

static inline struct ptv_str ptv_str_c(const char *s)
{
	struct ptv_str v = {s ? s : "", 0};

	while (v.p[v.len])
		v.len++;
	return v;
}

static inline bool ptv_str_eq(struct ptv_str a, const char *b)
{
	size_t i = 0;

	for (; i < a.len; i++) {
		if (a.p[i] != b[i])
			return false;
	}
	return b[i] == '\0';
}
