/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Extended M3U parser (m3u.h, PROTOCOLS.md §6).
 *
 * Two layers. The line assembler cuts the byte stream at CR, LF or CRLF into a fixed buffer of
 * PTV_M3U_MAX_LINE bytes; a CR that ends one chunk and an LF that starts the next still make one
 * break, so any chunking gives the same lines. A longer line is dropped as it streams by: only
 * its first PTV_M3U_MAX_LINE bytes are ever held, to tell what kind of line it was.
 *
 * The line handler then takes one trimmed line at a time and builds the pending entry from
 * #EXTINF, #EXTGRP, #EXTVLCOPT and #KODIPROP lines; the URL line emits it. Option lines that
 * come before the #EXTINF (common with #KODIPROP) belong to the next entry.
 *
 * Entry strings are copied into a per-entry arena that is rewound after every entry. While the
 * entry is built they are kept as offsets, because the arena may move when it grows. Every byte
 * copied out goes through one sanitiser: invalid UTF-8 becomes U+FFFD (%XX in URLs, so the
 * server still receives the same bytes) and control characters become spaces. Lines are split
 * at CR and LF, so no emitted string can carry a line break into a generated playlist or a
 * request header (RELIABILITY.md §2.6).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "plextv/common.h"
#include "plextv/m3u.h"

/* The arena grows on demand up to this bound; what does not fit is dropped as BAD_ATTR. */
#define ARENA_MIN  4096u
#define ARENA_MAX  (16u * PTV_M3U_MAX_LINE)
#define KEY_MAX	   64 /* longest attribute or option key we look up */
#define READ_CHUNK 16384

enum m3u_field {
	FLD_NAME = 0,
	FLD_URL,
	FLD_TVG_ID,
	FLD_TVG_NAME,
	FLD_TVG_LOGO,
	FLD_TVG_CHNO,
	FLD_CHANNEL_NUMBER,
	FLD_CHANNEL_ID,
	FLD_GROUP,
	FLD_EXTGRP,
	FLD_CATCHUP,
	FLD_COUNT,
};

/* The entry being built. Strings are arena offsets; offset 0 is always "". */
struct m3u_pending {
	bool extinf;	 /* an #EXTINF waits for its URL */
	bool orphan_url; /* its #EXTINF was too long: the next URL belongs to no entry */
	bool has_shift;
	bool radio;
	bool drm;
	bool acestream;
	uint64_t line;
	double duration;
	double shift;
	uint32_t fld[FLD_COUNT];
	unsigned n_headers;
	uint32_t hdr_name[PTV_M3U_MAX_HEADERS];
	uint32_t hdr_value[PTV_M3U_MAX_HEADERS];
};

struct ptv_m3u_parser {
	int (*cb)(const struct ptv_m3u_entry *e, void *ctx);
	void *ctx;
	int err;	    /* sticky: the callback's error or -ENOMEM */
	bool hls;	    /* an HLS playlist: everything after the tag is ignored */
	bool skip_lf;	    /* the last byte was CR: an LF right after it is the same break */
	bool overlong;	    /* dropping the rest of a line longer than PTV_M3U_MAX_LINE */
	bool line_bad_utf8; /* the current line had invalid UTF-8 in something we kept */
	size_t line_len;
	char *line;
	char *arena;
	size_t arena_len;
	size_t arena_cap;
	struct m3u_pending cur;
	char hdr_catchup[32]; /* header catchup= mode, a default for entries */
	struct ptv_m3u_stats stats;
};

static const char *const m3u_error_names[PTV_M3U_ERR_COUNT] = {
	[PTV_M3U_ERR_NO_URL] = "no_url",
	[PTV_M3U_ERR_NO_EXTINF] = "no_extinf",
	[PTV_M3U_ERR_LINE_TOO_LONG] = "line_too_long",
	[PTV_M3U_ERR_BAD_ATTR] = "bad_attr",
	[PTV_M3U_ERR_BAD_URL] = "bad_url",
	[PTV_M3U_ERR_ENCODING] = "encoding",
	[PTV_M3U_ERR_HLS_MEDIA] = "hls_media",
};

const char *ptv_m3u_error_name(enum ptv_m3u_error e)
{
	if ((unsigned)e >= PTV_M3U_ERR_COUNT)
		return "unknown";
	return m3u_error_names[e];
}

/* ---- character classes (ASCII only: the C locale functions depend on setlocale) ---- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* RFC 9110 tchar: what a header name may contain. */
static bool is_tchar(char c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexval(char c)
{
	if (is_digit(c))
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool ptv_m3u_is_ace_id(const char *s, size_t len)
{
	if (len != 40)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_hex(s[i]))
			return false;
	return true;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && is_ws(s[i]))
		i++;
	return i;
}

/* Trims blanks (and UTF-8 BOMs, which concatenated files carry mid-stream) on both ends. */
static const char *trim(const char *s, size_t *len)
{
	size_t n = *len;

	for (;;) {
		if (n && is_ws(*s)) {
			s++, n--;
		} else if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
			s += 3, n -= 3;
		} else {
			break;
		}
	}
	while (n && is_ws(s[n - 1]))
		n--;
	*len = n;
	return s;
}

static bool eq_nocase(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && !strncasecmp(a, b, blen);
}

/* Parses [+-]digits[.digits]; returns the characters used, 0 (and no *out) if none. */
static size_t parse_decimal(const char *s, size_t len, double *out)
{
	size_t i = 0;
	bool neg = false, digits = false;
	double v = 0, scale = 1;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	for (; i < len && is_digit(s[i]); i++, digits = true)
		v = v * 10 + (s[i] - '0');
	if (i < len && s[i] == '.') {
		for (i++; i < len && is_digit(s[i]); i++, digits = true) {
			scale /= 10;
			v += (s[i] - '0') * scale;
		}
	}
	if (!digits)
		return 0;
	*out = neg ? -v : v;
	return i;
}

/* ---- UTF-8 sanitiser ---- */

/* Length of the valid UTF-8 sequence at @s (1-4), or 0 if it is invalid (RFC 3629 table). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (len < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f; /* no UTF-16 surrogates */
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f; /* nothing above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* C1 controls and U+2028/U+2029: some consumers treat them as line breaks too. */
static bool is_unicode_break(const unsigned char *s, size_t n)
{
	return (n == 2 && s[0] == 0xc2 && s[1] < 0xa0) ||
	       (n == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9));
}

enum san_mode {
	SAN_TEXT = 0, /* invalid → U+FFFD, controls → ' ' */
	SAN_URL,      /* invalid and controls → %XX: the bytes on the wire stay the same */
};

struct san_out {
	char *dst;
	size_t cap; /* bytes of @dst usable for text */
	size_t len; /* full length, may exceed cap */
};

static void san_put(struct san_out *o, const void *s, size_t n)
{
	if (o->len + n <= o->cap)
		memcpy(o->dst + o->len, s, n);
	o->len += n;
}

static void san_escape(struct san_out *o, unsigned char c, enum san_mode mode)
{
	static const char hex[] = "0123456789ABCDEF";
	char pct[3] = {'%', hex[c >> 4], hex[c & 15]};

	if (mode == SAN_URL)
		san_put(o, pct, 3);
	else if (is_ctl(c))
		san_put(o, " ", 1);
	else
		san_put(o, "\xef\xbf\xbd", 3);
}

/*
 * Writes @s sanitised to @o. Returns true if it held invalid UTF-8. The output is at most
 * 3 * @len bytes.
 */
static bool sanitize(struct san_out *o, const char *s, size_t len, enum san_mode mode)
{
	const unsigned char *u = (const unsigned char *)s;
	bool bad = false;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(u + i, len - i);

		if (n == 1 && !is_ctl(u[i])) {
			san_put(o, u + i, 1);
		} else if (n == 0 || n == 1) {
			bad |= n == 0;
			san_escape(o, u[i], mode);
			n = 1;
		} else if (is_unicode_break(u + i, n)) {
			for (size_t k = 0; mode == SAN_URL && k < n; k++)
				san_escape(o, u[i + k], mode);
			if (mode == SAN_TEXT)
				san_put(o, " ", 1);
		} else {
			san_put(o, u + i, n);
		}
		i += n;
	}
	return bad;
}

/* ---- per-entry arena ---- */

static void mem_note(struct ptv_m3u_parser *p)
{
	size_t now = sizeof(*p) + PTV_M3U_MAX_LINE + 1 + p->arena_cap;

	if (now > p->stats.mem_peak)
		p->stats.mem_peak = now;
}

static int arena_reserve(struct ptv_m3u_parser *p, size_t n)
{
	size_t need = p->arena_len + n, cap = p->arena_cap;
	char *a;

	if (need <= cap)
		return 0;
	if (need > ARENA_MAX)
		return -E2BIG;
	while (cap < need)
		cap *= 2;
	cap = PTV_MIN(cap, (size_t)ARENA_MAX);
	a = realloc(p->arena, cap);
	if (!a)
		return -ENOMEM;
	p->arena = a;
	p->arena_cap = cap;
	mem_note(p);
	return 0;
}

/*
 * Copies @s, sanitised and NUL-terminated, into the arena and stores its offset in *@off.
 * Returns false if it did not fit: counted as BAD_ATTR (or -ENOMEM made sticky). Room for the
 * plain copy is reserved first; only a string that needed replacements (which grow it up to
 * 3x) is sanitised a second time into a bigger reservation.
 */
static bool arena_put(struct ptv_m3u_parser *p, const char *s, size_t len, enum san_mode mode,
		      uint32_t *off)
{
	struct san_out o = {0};
	bool bad;
	int rc;

	if (!len) {
		*off = 0;
		return true;
	}
	for (size_t want = len;; want = o.len) {
		rc = arena_reserve(p, want + 1);
		if (rc)
			break;
		o = (struct san_out){.dst = p->arena + p->arena_len, .cap = want};
		bad = sanitize(&o, s, len, mode);
		if (o.len <= o.cap)
			break;
	}
	if (rc) {
		if (rc == -ENOMEM)
			p->err = rc;
		p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		return false;
	}
	p->line_bad_utf8 |= bad;
	o.dst[o.len] = '\0';
	*off = (uint32_t)p->arena_len;
	p->arena_len += o.len + 1;
	return true;
}

static void pending_reset(struct ptv_m3u_parser *p)
{
	memset(&p->cur, 0, sizeof(p->cur));
	p->arena_len = 1; /* arena[0] is the shared "" */
}

/* Sets a string field once: the first occurrence wins, so repeats leave no garbage. */
static void field_set(struct ptv_m3u_parser *p, enum m3u_field f, const char *v, size_t vlen)
{
	v = trim(v, &vlen);
	if (p->cur.fld[f] || !vlen)
		return;
	arena_put(p, v, vlen, SAN_TEXT, &p->cur.fld[f]);
}

/* ---- request headers (EXTINF attributes, #EXTVLCOPT, Kodi |suffix, stream_headers) ---- */

/* Message framing belongs to whoever makes the request: a playlist must not set it. */
static const char *const framing_headers[] = {
	"content-length", "transfer-encoding", "connection", "keep-alive", "te",
	"trailer",	  "upgrade",	       "expect",
};

static bool header_name_ok(const char *n, size_t len)
{
	if (!len || len > KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar(n[i]))
			return false;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(framing_headers); i++)
		if (eq_nocase(n, len, framing_headers[i]))
			return false;
	return true;
}

static bool header_value_ok(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (is_ctl((unsigned char)v[i]) && v[i] != '\t')
			return false;
	return true;
}

static int header_find(const struct ptv_m3u_parser *p, const char *name, size_t len)
{
	for (unsigned i = 0; i < p->cur.n_headers; i++)
		if (eq_nocase(name, len, p->arena + p->cur.hdr_name[i]))
			return (int)i;
	return -1;
}

/*
 * Sets a request header; a later source replaces an earlier one (EXTINF attribute, then
 * #EXTVLCOPT, then the URL's |suffix, which is the most specific). Names that are not tokens
 * and values with control characters (from %0D%0A, say) are refused: header injection.
 */
static void header_set(struct ptv_m3u_parser *p, const char *name, size_t nlen, const char *val,
		       size_t vlen)
{
	int i;

	name = trim(name, &nlen);
	val = trim(val, &vlen);
	if (!header_name_ok(name, nlen) || !header_value_ok(val, vlen)) {
		p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		return;
	}
	if (!vlen)
		return;
	i = header_find(p, name, nlen);
	if (i < 0) {
		if (p->cur.n_headers == PTV_M3U_MAX_HEADERS) {
			p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
			return;
		}
		if (!arena_put(p, name, nlen, SAN_TEXT, &p->cur.hdr_name[p->cur.n_headers]))
			return;
		i = (int)p->cur.n_headers;
	}
	if (!arena_put(p, val, vlen, SAN_TEXT, &p->cur.hdr_value[i]))
		return;
	if ((unsigned)i == p->cur.n_headers)
		p->cur.n_headers++;
}

static void header_set_str(struct ptv_m3u_parser *p, const char *name, const char *val, size_t vlen)
{
	header_set(p, name, strlen(name), val, vlen);
}

/* Decodes %XX in place; returns the new length. A bad escape is kept as it is. */
static size_t pct_decode(char *s, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		int hi, lo;

		if (s[r] == '%' && r + 2 < len && (hi = hexval(s[r + 1])) >= 0 &&
		    (lo = hexval(s[r + 2])) >= 0) {
			s[w++] = (char)(hi << 4 | lo);
			r += 3;
		} else {
			s[w++] = s[r++];
		}
	}
	return w;
}

/* Kodi's "Name=value&!Other=value" (after the URL's '|'): percent-encoded, '!' = non-standard. */
static void pipe_headers(struct ptv_m3u_parser *p, char *s, size_t len)
{
	while (len) {
		char *amp = memchr(s, '&', len);
		size_t n = amp ? (size_t)(amp - s) : len;
		char *eq = memchr(s, '=', n);

		if (eq) {
			char *name = s;
			size_t nlen = (size_t)(eq - s), vlen = n - nlen - 1;

			if (nlen && name[0] == '!')
				name++, nlen--;
			nlen = pct_decode(name, nlen);
			vlen = pct_decode(eq + 1, vlen);
			header_set(p, name, nlen, eq + 1, vlen);
		} else if (trim(s, &n), n) {
			p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		}
		if (!amp)
			break;
		len -= (size_t)(amp - s) + 1;
		s = amp + 1;
	}
}

/* ---- attribute keys ---- */

enum m3u_key {
	KEY_NONE = 0,
	KEY_TVG_ID,
	KEY_TVG_NAME,
	KEY_TVG_LOGO,
	KEY_TVG_CHNO,
	KEY_CHANNEL_NUMBER,
	KEY_CHANNEL_ID,
	KEY_GROUP_TITLE,
	KEY_TVG_SHIFT,
	KEY_RADIO,
	KEY_CATCHUP,
	KEY_URL_TVG,
	KEY_USER_AGENT,
	KEY_REFERER,
	KEY_ORIGIN,
	KEY_COOKIE,
	KEY_HTTP_HEADER,
};

/* Keys after normalisation: lower case, '_' read as '-' (tvg_ID = tvg-id). */
static const struct {
	const char *name;
	enum m3u_key key;
} m3u_keys[] = {
	{"tvg-id", KEY_TVG_ID},
	{"tvg-name", KEY_TVG_NAME},
	{"tvg-logo", KEY_TVG_LOGO},
	{"tvg-chno", KEY_TVG_CHNO},
	{"channel-number", KEY_CHANNEL_NUMBER},
	{"channel-id", KEY_CHANNEL_ID},
	{"group-title", KEY_GROUP_TITLE},
	{"tvg-shift", KEY_TVG_SHIFT},
	{"radio", KEY_RADIO},
	{"catchup", KEY_CATCHUP},
	{"url-tvg", KEY_URL_TVG},
	{"x-tvg-url", KEY_URL_TVG},
	{"user-agent", KEY_USER_AGENT},
	{"http-user-agent", KEY_USER_AGENT},
	{"http-referrer", KEY_REFERER},
	{"http-referer", KEY_REFERER},
	{"referrer", KEY_REFERER},
	{"referer", KEY_REFERER},
	{"http-origin", KEY_ORIGIN},
	{"http-cookie", KEY_COOKIE},
	{"http-header", KEY_HTTP_HEADER},
};

/* Normalises @k into @buf (KEY_MAX + 1 bytes); returns its length, 0 if too long or empty. */
static size_t key_norm(const char *k, size_t len, char *buf)
{
	if (!len || len > KEY_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		buf[i] = k[i] == '_' ? '-' : lower(k[i]);
	buf[len] = '\0';
	return len;
}

static enum m3u_key key_lookup(const char *k, size_t len)
{
	char buf[KEY_MAX + 1];

	if (!key_norm(k, len, buf))
		return KEY_NONE;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(m3u_keys); i++)
		if (!strcmp(buf, m3u_keys[i].name))
			return m3u_keys[i].key;
	return KEY_NONE;
}

/* ---- attribute tokenizer ---- */

struct m3u_attr {
	const char *key;
	const char *val;
	size_t klen;
	size_t vlen;
};

static bool is_quote(char c)
{
	return c == '"' || c == '\'';
}

static bool is_key_end(char c)
{
	return c == '=' || c == ',' || is_ws(c) || is_quote(c);
}

/*
 * An opening quote at @q never closes: count it, and the title is what follows the next comma
 * (or, with none, everything after the quote).
 */
static size_t unterminated(struct ptv_m3u_parser *p, const char *s, size_t len, size_t q)
{
	const char *comma = memchr(s + q + 1, ',', len - q - 1);

	p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
	return comma ? (size_t)(comma - s) + 1 : q + 1;
}

/*
 * Reads one value at @i (quoted with " or ', or bare up to a blank or comma) into @a.
 * Returns the offset after it, or SIZE_MAX for an unterminated quote.
 */
static size_t attr_value(const char *s, size_t len, size_t i, struct m3u_attr *a)
{
	if (i < len && is_quote(s[i])) {
		const char *q = memchr(s + i + 1, s[i], len - i - 1);

		if (!q)
			return SIZE_MAX;
		a->val = s + i + 1;
		a->vlen = (size_t)(q - a->val);
		return (size_t)(q - s) + 1;
	}
	a->val = s + i;
	while (i < len && !is_ws(s[i]) && s[i] != ',')
		i++;
	a->vlen = (size_t)(s + i - a->val);
	return i;
}

/*
 * Calls @fn for each key=value from @s up to the first comma outside quotes, and returns the
 * offset after that comma (where the title starts), or @len if there is none. Attributes need
 * no blank between them (Threadfin #590: tvg-id="a"tvg-name="b"); bare words are skipped.
 */
static size_t scan_attrs(struct ptv_m3u_parser *p, const char *s, size_t len,
			 void (*fn)(struct ptv_m3u_parser *p, const struct m3u_attr *a))
{
	size_t i = 0;

	for (;;) {
		struct m3u_attr a = {0};
		size_t k, next;

		i = skip_ws(s, len, i);
		if (i >= len)
			return len;
		if (s[i] == ',')
			return i + 1;
		if (is_quote(s[i])) { /* a stray quoted word: its commas are not the title's */
			const char *q = memchr(s + i + 1, s[i], len - i - 1);

			if (!q)
				return unterminated(p, s, len, i);
			i = (size_t)(q - s) + 1;
			continue;
		}
		for (k = i; i < len && !is_key_end(s[i]); i++)
			;
		if (i >= len || s[i] != '=')
			continue; /* a bare word */
		a.key = s + k;
		a.klen = i - k;
		next = attr_value(s, len, i + 1, &a);
		if (next == SIZE_MAX)
			return unterminated(p, s, len, i + 1);
		i = next;
		if (a.klen)
			fn(p, &a);
	}
}

/* ---- #EXTM3U header ---- */

static void url_tvg_add(struct ptv_m3u_parser *p, const char *v, size_t vlen)
{
	char *list = p->stats.url_tvg;
	size_t cur = strlen(list), cap = sizeof(p->stats.url_tvg);
	char tmp[sizeof(p->stats.url_tvg)];
	struct san_out o = {.dst = tmp, .cap = sizeof(tmp) - 1};

	v = trim(v, &vlen);
	if (!vlen)
		return;
	p->line_bad_utf8 |= sanitize(&o, v, vlen, SAN_URL);
	if (o.len > o.cap) {
		p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		return;
	}
	tmp[o.len] = '\0';
	if (!strcmp(list, tmp)) /* Threadfin writes the same list under both keys */
		return;
	if (cur + !!cur + o.len >= cap) {
		p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		return;
	}
	if (cur)
		list[cur++] = ',';
	memcpy(list + cur, tmp, o.len + 1);
}

static void header_attr(struct ptv_m3u_parser *p, const struct m3u_attr *a)
{
	size_t vlen = a->vlen;
	const char *v = trim(a->val, &vlen);
	double d;

	switch (key_lookup(a->key, a->klen)) {
	case KEY_URL_TVG:
		url_tvg_add(p, v, vlen);
		break;
	case KEY_TVG_SHIFT:
		if (vlen && parse_decimal(v, vlen, &d) == vlen)
			p->stats.header_shift = d;
		else
			p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		break;
	case KEY_CATCHUP:
		/* A mode keyword (default, append, shift, flussonic, xc…); anything else is noise.
		 */
		if (vlen < sizeof(p->hdr_catchup) && header_value_ok(v, vlen)) {
			struct san_out o = {.dst = p->hdr_catchup,
					    .cap = sizeof(p->hdr_catchup) - 1};

			if (!sanitize(&o, v, vlen, SAN_TEXT) && o.len <= o.cap)
				p->hdr_catchup[o.len] = '\0';
		}
		break;
	default:
		break;
	}
}

static int on_header(struct ptv_m3u_parser *p, const char *s, size_t len)
{
	p->stats.saw_header = true;
	scan_attrs(p, s, len, header_attr);
	return 0;
}

/* ---- #EXTINF ---- */

static void extinf_shift(struct ptv_m3u_parser *p, const char *v, size_t vlen)
{
	double d;

	v = trim(v, &vlen);
	if (!vlen)
		return;
	if (parse_decimal(v, vlen, &d) != vlen) {
		p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		return;
	}
	p->cur.shift = d;
	p->cur.has_shift = true;
}

static void extinf_attr(struct ptv_m3u_parser *p, const struct m3u_attr *a)
{
	static const enum m3u_field key_field[] = {
		[KEY_TVG_ID] = FLD_TVG_ID,
		[KEY_TVG_NAME] = FLD_TVG_NAME,
		[KEY_TVG_LOGO] = FLD_TVG_LOGO,
		[KEY_TVG_CHNO] = FLD_TVG_CHNO,
		[KEY_CHANNEL_NUMBER] = FLD_CHANNEL_NUMBER,
		[KEY_CHANNEL_ID] = FLD_CHANNEL_ID,
		[KEY_GROUP_TITLE] = FLD_GROUP,
		[KEY_CATCHUP] = FLD_CATCHUP,
	};
	enum m3u_key key = key_lookup(a->key, a->klen);

	switch (key) {
	case KEY_TVG_ID:
	case KEY_TVG_NAME:
	case KEY_TVG_LOGO:
	case KEY_TVG_CHNO:
	case KEY_CHANNEL_NUMBER:
	case KEY_CHANNEL_ID:
	case KEY_GROUP_TITLE:
	case KEY_CATCHUP:
		field_set(p, key_field[key], a->val, a->vlen);
		break;
	case KEY_TVG_SHIFT:
		extinf_shift(p, a->val, a->vlen);
		break;
	case KEY_RADIO:
		p->cur.radio =
			eq_nocase(a->val, a->vlen, "true") || eq_nocase(a->val, a->vlen, "1");
		break;
	case KEY_USER_AGENT: /* iptv-org writes these as attributes too */
		header_set_str(p, "User-Agent", a->val, a->vlen);
		break;
	case KEY_REFERER:
		header_set_str(p, "Referer", a->val, a->vlen);
		break;
	case KEY_ORIGIN:
		header_set_str(p, "Origin", a->val, a->vlen);
		break;
	default:
		break;
	}
}

static int on_extinf(struct ptv_m3u_parser *p, const char *s, size_t len)
{
	size_t i = skip_ws(s, len, 0), t;

	if (p->cur.extinf)
		p->stats.errors[PTV_M3U_ERR_NO_URL]++;
	if (p->cur.extinf || p->cur.orphan_url)
		pending_reset(p);
	p->cur.extinf = true;
	p->cur.line = p->stats.lines;
	p->cur.duration = -1;
	if (i < len && s[i] == ':')
		i = skip_ws(s, len, i + 1);
	i += parse_decimal(s + i, len - i, &p->cur.duration);
	t = i + scan_attrs(p, s + i, len - i, extinf_attr);
	field_set(p, FLD_NAME, s + t, len - t);
	return 0;
}

/* ---- option lines: #EXTGRP, #EXTVLCOPT, #KODIPROP ---- */

/* Splits "key=value"; returns false without '='. */
static bool split_kv(const char *s, size_t len, struct m3u_attr *a)
{
	const char *eq = memchr(s, '=', len);

	if (!eq)
		return false;
	a->key = s;
	a->klen = (size_t)(eq - s);
	a->key = trim(a->key, &a->klen);
	a->val = eq + 1;
	a->vlen = (size_t)(s + len - a->val);
	a->val = trim(a->val, &a->vlen);
	return true;
}

/* "#EXTVLCOPT:http-header=X-Test: 123" (also "Name=value"). */
static void vlc_http_header(struct ptv_m3u_parser *p, const char *v, size_t vlen)
{
	const char *sep = memchr(v, ':', vlen);

	if (!sep)
		sep = memchr(v, '=', vlen);
	if (!sep) {
		p->stats.errors[PTV_M3U_ERR_BAD_ATTR]++;
		return;
	}
	header_set(p, v, (size_t)(sep - v), sep + 1, (size_t)(v + vlen - sep - 1));
}

static int on_vlcopt(struct ptv_m3u_parser *p, const char *s, size_t len)
{
	struct m3u_attr a;

	if (!split_kv(s, len, &a))
		return 0; /* VLC flags without a value ("no-video"): nothing for us */
	switch (key_lookup(a.key, a.klen)) {
	case KEY_USER_AGENT:
		header_set_str(p, "User-Agent", a.val, a.vlen);
		break;
	case KEY_REFERER:
		header_set_str(p, "Referer", a.val, a.vlen);
		break;
	case KEY_ORIGIN:
		header_set_str(p, "Origin", a.val, a.vlen);
		break;
	case KEY_COOKIE:
		header_set_str(p, "Cookie", a.val, a.vlen);
		break;
	case KEY_HTTP_HEADER:
		vlc_http_header(p, a.val, a.vlen);
		break;
	default: /* program=, network-caching=…: player tuning */
		break;
	}
	return 0;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && !memcmp(s + len - n, suffix, n) && (len == n || s[len - n - 1] == '.');
}

/*
 * inputstream.adaptive.license_type / license_key (and Kodi 21's drm / drm_legacy) mean the
 * stream is encrypted: flagged, since we cannot decrypt it. stream_headers carries request
 * headers in the |suffix form. inputstream=, manifest_type=, mimetype= are player hints.
 */
static int on_kodiprop(struct ptv_m3u_parser *p, char *s, size_t len)
{
	char key[KEY_MAX + 1];
	struct m3u_attr a;
	size_t n;

	if (!split_kv(s, len, &a) || !(n = key_norm(a.key, a.klen, key)))
		return 0;
	if (ends_with(key, n, "license-type") || ends_with(key, n, "license-key") ||
	    ends_with(key, n, "drm-legacy") || ends_with(key, n, "drm"))
		p->cur.drm = true;
	else if (ends_with(key, n, "stream-headers"))
		pipe_headers(p, (char *)a.val, a.vlen);
	return 0;
}

static int on_hls(struct ptv_m3u_parser *p)
{
	/* A segment or variant list given as a channel list (xTeVe rejects these too). */
	p->hls = true;
	p->stats.errors[PTV_M3U_ERR_HLS_MEDIA]++;
	pending_reset(p);
	return 0;
}

/* ---- URL lines ---- */

enum uri_kind {
	URI_JUNK = 0, /* not a URL: "====morocco====" */
	URI_OK,
	URI_BAD, /* meant as a URL but unusable: javascript:…, C:\… */
};

/* Length of a URI scheme ([a-z][a-z0-9+.-]*) followed by ':' at @s, or 0. */
static size_t scheme_len(const char *s, size_t len)
{
	size_t i = 0;

	if (!len || !is_alpha(s[0]))
		return 0;
	while (i < len &&
	       (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
		i++;
	return i < len && s[i] == ':' ? i : 0;
}

static bool has_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (is_ws(s[i]))
			return true;
	return false;
}

/*
 * A path relative to the playlist ("stream/chunklist.m3u8"), accepted only right after an
 * #EXTINF: one word that starts like a file name and looks like a path or a file.
 */
static bool is_relative_ref(const char *s, size_t len)
{
	if (!len || !(is_alpha(s[0]) || is_digit(s[0]) || strchr("._~%", s[0])))
		return false;
	if (has_blank(s, len))
		return false;
	return memchr(s, '.', len) || memchr(s, '/', len);
}

static enum uri_kind uri_classify(const char *s, size_t len, bool pending)
{
	size_t n;

	if (ptv_m3u_is_ace_id(s, len))
		return URI_OK;
	n = scheme_len(s, len);
	if (n) {
		if (len >= n + 3 && s[n + 1] == '/' && s[n + 2] == '/')
			return URI_OK;
		return pending && !has_blank(s, len) ? URI_BAD : URI_JUNK;
	}
	if (len && s[0] == '/')
		return URI_OK;
	return pending && is_relative_ref(s, len) ? URI_OK : URI_JUNK;
}

/*
 * acestream://ID, ace://ID (ID up to '/', '?' or '#'), acestream://infohash=ID (or
 * infohash:ID) or a bare ID: returns the ID or NULL; *@infohash tells which kind of id it is.
 */
static const char *ace_id(const char *s, size_t len, bool *infohash)
{
	size_t n = scheme_len(s, len), end;

	*infohash = false;
	if (ptv_m3u_is_ace_id(s, len))
		return s;
	if (!n || !(eq_nocase(s, n, "acestream") || eq_nocase(s, n, "ace")))
		return NULL;
	s += n + 3;
	len -= n + 3;
	if (len > 9 && eq_nocase(s, 8, "infohash") && (s[8] == '=' || s[8] == ':')) {
		*infohash = true;
		s += 9;
		len -= 9;
	}
	for (end = 0; end < len && !strchr("/?#&", s[end]); end++)
		;
	return ptv_m3u_is_ace_id(s, end) ? s : NULL;
}

static bool is_ace_scheme(const char *s, size_t len)
{
	size_t n = scheme_len(s, len);

	return n && (eq_nocase(s, n, "acestream") || eq_nocase(s, n, "ace"));
}

/* Stores the URL (Acestream forms normalised); false if unusable. */
static bool url_store(struct ptv_m3u_parser *p, const char *s, size_t len)
{
	char buf[sizeof("acestream://infohash=") + 40];
	bool infohash;
	const char *id = ace_id(s, len, &infohash);
	size_t pre;

	for (size_t i = 0; i < len; i++)
		if (is_ctl((unsigned char)s[i]))
			return false;
	if (!id && is_ace_scheme(s, len))
		return false;
	if (!id)
		return arena_put(p, s, len, SAN_URL, &p->cur.fld[FLD_URL]);
	/* One spelling for every form, so duplicates of a content id compare equal. */
	pre = infohash ? 21 : 12;
	memcpy(buf, infohash ? "acestream://infohash=" : "acestream://", pre);
	for (size_t i = 0; i < 40; i++)
		buf[pre + i] = lower(id[i]);
	p->cur.acestream = true;
	return arena_put(p, buf, pre + 40, SAN_URL, &p->cur.fld[FLD_URL]);
}

static int entry_drop(struct ptv_m3u_parser *p, enum ptv_m3u_error why)
{
	p->stats.errors[why]++;
	pending_reset(p);
	return 0;
}

static int entry_emit(struct ptv_m3u_parser *p)
{
	const struct m3u_pending *c = &p->cur;
	const char *a = p->arena;
	uint32_t chno = c->fld[FLD_TVG_CHNO] ?: c->fld[FLD_CHANNEL_NUMBER] ?: c->fld[FLD_CHANNEL_ID];
	struct ptv_m3u_entry e = {
		.name = a + (c->fld[FLD_NAME] ?: c->fld[FLD_TVG_NAME]),
		.url = a + c->fld[FLD_URL],
		.tvg_id = a + c->fld[FLD_TVG_ID],
		.tvg_name = a + c->fld[FLD_TVG_NAME],
		.tvg_logo = a + c->fld[FLD_TVG_LOGO],
		.tvg_chno = a + chno,
		.group = a + (c->fld[FLD_GROUP] ?: c->fld[FLD_EXTGRP]),
		.tvg_shift = c->has_shift ? c->shift : p->stats.header_shift,
		.duration = c->extinf ? c->duration : -1,
		.radio = c->radio,
		.drm = c->drm,
		.acestream = c->acestream,
		.catchup = c->fld[FLD_CATCHUP] ? a + c->fld[FLD_CATCHUP] : p->hdr_catchup,
		.n_headers = c->n_headers,
		.line = c->line,
	};
	int rc;

	for (unsigned i = 0; i < c->n_headers; i++) {
		e.headers[i].name = a + c->hdr_name[i];
		e.headers[i].value = a + c->hdr_value[i];
	}
	p->stats.entries++;
	rc = p->cb(&e, p->ctx);
	pending_reset(p);
	if (rc < 0)
		p->err = rc;
	return p->err;
}

static int on_uri(struct ptv_m3u_parser *p, char *s, size_t len)
{
	char *pipe = memchr(s, '|', len);
	size_t ulen = pipe ? (size_t)(pipe - s) : len;
	const char *u = trim(s, &ulen);
	enum uri_kind kind = uri_classify(u, ulen, p->cur.extinf);

	if (!ulen && pipe && p->cur.extinf) /* "|User-Agent=x" alone: headers, no URL */
		kind = URI_BAD;

	if (kind == URI_JUNK) {
		p->stats.junk_lines++;
		return 0;
	}
	if (p->cur.orphan_url) { /* the URL of an #EXTINF that was too long */
		pending_reset(p);
		return 0;
	}
	if (kind == URI_BAD || !ulen || !url_store(p, u, ulen))
		return entry_drop(p, PTV_M3U_ERR_BAD_URL);
	if (pipe)
		pipe_headers(p, pipe + 1, (size_t)(s + len - pipe - 1));
	if (!p->cur.extinf) {
		p->stats.errors[PTV_M3U_ERR_NO_EXTINF]++;
		p->cur.line = p->stats.lines;
		p->cur.fld[FLD_NAME] = p->cur.fld[FLD_URL];
	}
	return entry_emit(p);
}

/* ---- line dispatch ---- */

/* Matches a tag case-insensitively as a whole word; returns the offset after it, or 0. */
static size_t tag_match(const char *s, size_t len, const char *tag)
{
	size_t n = strlen(tag);

	if (len < n || strncasecmp(s, tag, n))
		return 0;
	if (len > n && s[n] != ':' && !is_ws(s[n]))
		return 0;
	return n;
}

/* The value after "TAG:" (blanks around the colon allowed). */
static const char *tag_value(const char *s, size_t len, size_t n, size_t *vlen)
{
	n = skip_ws(s, len, n);
	if (n < len && s[n] == ':')
		n++;
	*vlen = len - n;
	return trim(s + n, vlen);
}

static const char *const hls_tags[] = {
	"#EXT-X-TARGETDURATION",
	"#EXT-X-MEDIA-SEQUENCE",
	"#EXT-X-PLAYLIST-TYPE",
	"#EXT-X-STREAM-INF",
};

static int on_directive(struct ptv_m3u_parser *p, char *s, size_t len)
{
	size_t n, vlen;
	const char *v;

	if ((n = tag_match(s, len, "#EXTINF")))
		return on_extinf(p, s + n, len - n);
	if ((n = tag_match(s, len, "#EXTM3U")))
		return on_header(p, s + n, len - n);
	if ((n = tag_match(s, len, "#EXTGRP"))) {
		v = tag_value(s, len, n, &vlen);
		field_set(p, FLD_EXTGRP, v, vlen);
		return 0;
	}
	if ((n = tag_match(s, len, "#EXTVLCOPT"))) {
		v = tag_value(s, len, n, &vlen);
		return on_vlcopt(p, v, vlen);
	}
	if ((n = tag_match(s, len, "#KODIPROP"))) {
		v = tag_value(s, len, n, &vlen);
		return on_kodiprop(p, (char *)v, vlen);
	}
	for (size_t i = 0; i < PTV_ARRAY_SIZE(hls_tags); i++)
		if (tag_match(s, len, hls_tags[i]))
			return on_hls(p);
	return 0; /* a comment or a tag we do not use */
}

static int line_process(struct ptv_m3u_parser *p, char *s, size_t len)
{
	int rc;

	s = (char *)trim(s, &len);
	if (p->hls || !len)
		return 0;
	if (s[0] == '#')
		rc = on_directive(p, s, len);
	else
		rc = on_uri(p, s, len);
	if (p->line_bad_utf8) {
		p->stats.errors[PTV_M3U_ERR_ENCODING]++;
		p->line_bad_utf8 = false;
	}
	return rc ?: p->err;
}

/*
 * A line went over PTV_M3U_MAX_LINE; the buffer holds its first bytes. Decide from them what
 * was lost, so the lines around it are not misread: a lost #EXTINF takes its URL with it, a
 * lost URL takes its #EXTINF.
 */
static void line_overflow(struct ptv_m3u_parser *p)
{
	size_t len = p->line_len;
	const char *s = trim(p->line, &len);
	const char *pipe;

	p->stats.errors[PTV_M3U_ERR_LINE_TOO_LONG]++;
	if (p->hls || !len)
		return;
	if (tag_match(s, len, "#EXTINF")) {
		if (p->cur.extinf)
			p->stats.errors[PTV_M3U_ERR_NO_URL]++;
		pending_reset(p);
		p->cur.orphan_url = true;
		return;
	}
	if (s[0] == '#')
		return;
	pipe = memchr(s, '|', len);
	if (pipe)
		len = (size_t)(pipe - s);
	if (uri_classify(s, len, p->cur.extinf) == URI_JUNK)
		p->stats.junk_lines++;
	else
		pending_reset(p);
}

static void line_append(struct ptv_m3u_parser *p, const char *data, size_t n)
{
	size_t room = PTV_M3U_MAX_LINE - p->line_len;

	if (p->overlong)
		return;
	if (n > room) {
		memcpy(p->line + p->line_len, data, room);
		p->line_len += room;
		line_overflow(p);
		p->overlong = true;
		return;
	}
	memcpy(p->line + p->line_len, data, n);
	p->line_len += n;
}

static int line_end(struct ptv_m3u_parser *p)
{
	int rc = 0;

	p->stats.lines++;
	if (p->overlong)
		p->overlong = false;
	else
		rc = line_process(p, p->line, p->line_len);
	p->line_len = 0;
	return rc;
}

static size_t find_eol(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && s[i] != '\n' && s[i] != '\r')
		i++;
	return i;
}

int ptv_m3u_parser_feed(struct ptv_m3u_parser *p, const char *data, size_t len)
{
	while (len && !p->err) {
		size_t n;

		if (p->skip_lf) { /* CR LF split across two calls is still one break */
			p->skip_lf = false;
			if (*data == '\n') {
				data++, len--;
				continue;
			}
		}
		n = find_eol(data, len);
		line_append(p, data, n);
		if (n == len)
			break;
		p->skip_lf = data[n] == '\r';
		data += n + 1;
		len -= n + 1;
		line_end(p);
	}
	return p->err;
}

int ptv_m3u_parser_finish(struct ptv_m3u_parser *p)
{
	if (p->err)
		return p->err;
	if (p->line_len || p->overlong)
		line_end(p);
	if (p->err)
		return p->err;
	if (p->cur.extinf)
		p->stats.errors[PTV_M3U_ERR_NO_URL]++;
	pending_reset(p);
	p->skip_lf = false;
	return 0;
}

const struct ptv_m3u_stats *ptv_m3u_parser_stats(const struct ptv_m3u_parser *p)
{
	return &p->stats;
}

int ptv_m3u_parser_new(int (*cb)(const struct ptv_m3u_entry *e, void *ctx), void *ctx,
		       struct ptv_m3u_parser **out)
{
	struct ptv_m3u_parser *p;

	*out = NULL;
	if (!cb)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->line = malloc(PTV_M3U_MAX_LINE + 1);
	p->arena = malloc(ARENA_MIN);
	if (!p->line || !p->arena)
		goto err;
	p->cb = cb;
	p->ctx = ctx;
	p->arena_cap = ARENA_MIN;
	p->arena[0] = '\0';
	pending_reset(p);
	mem_note(p);
	*out = p;
	return 0;
err:
	ptv_m3u_parser_free(p);
	return -ENOMEM;
}

void ptv_m3u_parser_free(struct ptv_m3u_parser *p)
{
	if (!p)
		return;
	free(p->line);
	free(p->arena);
	free(p);
}

static int parse_fd(struct ptv_m3u_parser *p, int fd)
{
	char buf[READ_CHUNK];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return ptv_m3u_parser_finish(p);
		rc = ptv_m3u_parser_feed(p, buf, (size_t)n);
		if (rc)
			return rc;
	}
}

int ptv_m3u_parse_file(const char *path, int (*cb)(const struct ptv_m3u_entry *e, void *ctx),
		       void *ctx, struct ptv_m3u_stats *stats)
{
	struct ptv_m3u_parser *p = NULL;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = ptv_m3u_parser_new(cb, ctx, &p);
	if (rc)
		goto out;
	rc = parse_fd(p, fd);
	if (stats)
		*stats = p->stats;
out:
	ptv_m3u_parser_free(p);
	close(fd);
	return rc;
}
