/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Guide basics: XMLTV times, dates and episode numbers, programme records, keys, folding. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "epg_int.h"

const char *const epg_field_names[EPG_F_COUNT] = {
	[EPG_F_TITLE] = "title",
	[EPG_F_SUB_TITLE] = "sub-title",
	[EPG_F_DESC] = "desc",
	[EPG_F_CREDIT] = "credits",
	[EPG_F_DATE] = "date",
	[EPG_F_CATEGORY] = "category",
	[EPG_F_KEYWORD] = "keyword",
	[EPG_F_LANGUAGE] = "language",
	[EPG_F_ORIG_LANGUAGE] = "orig-language",
	[EPG_F_LENGTH] = "length",
	[EPG_F_ICON] = "icon",
	[EPG_F_URL] = "url",
	[EPG_F_COUNTRY] = "country",
	[EPG_F_EPISODE_NUM] = "episode-num",
	[EPG_F_VIDEO] = "video",
	[EPG_F_AUDIO] = "audio",
	[EPG_F_PREVIOUSLY_SHOWN] = "previously-shown",
	[EPG_F_PREMIERE] = "premiere",
	[EPG_F_LAST_CHANCE] = "last-chance",
	[EPG_F_NEW] = "new",
	[EPG_F_SUBTITLES] = "subtitles",
	[EPG_F_RATING] = "rating",
	[EPG_F_STAR_RATING] = "star-rating",
	[EPG_F_REVIEW] = "review",
	[EPG_F_IMAGE] = "image",
};

const char *const epg_credit_names[EPG_C_COUNT] = {
	"director", "actor",  "writer",	   "adapter",	  "producer",
	"composer", "editor", "presenter", "commentator", "guest",
};

static const char *const error_names[PTV_EPG_ERR_COUNT] = {
	[PTV_EPG_ERR_BAD_START] = "bad_start",
	[PTV_EPG_ERR_BAD_STOP] = "bad_stop",
	[PTV_EPG_ERR_UNKNOWN_TZ] = "unknown_timezone",
	[PTV_EPG_ERR_NO_CHANNEL] = "no_channel",
	[PTV_EPG_ERR_NO_TITLE] = "no_title",
	[PTV_EPG_ERR_EMPTY] = "empty_element",
	[PTV_EPG_ERR_TOO_LONG] = "too_long",
	[PTV_EPG_ERR_TOO_MANY] = "too_many",
	[PTV_EPG_ERR_BAD_VALUE] = "bad_value",
	[PTV_EPG_ERR_BAD_EPISODE] = "bad_episode_num",
	[PTV_EPG_ERR_DUPLICATE] = "duplicate",
	[PTV_EPG_ERR_OVERLAP] = "overlap",
	[PTV_EPG_ERR_DUP_CHANNEL] = "duplicate_channel",
	[PTV_EPG_ERR_LEADING_GARBAGE] = "leading_garbage",
	[PTV_EPG_ERR_BARE_AMPERSAND] = "bare_ampersand",
};

const char *ptv_epg_error_name(enum ptv_epg_err e)
{
	return (unsigned)e < PTV_EPG_ERR_COUNT ? error_names[e] : "unknown";
}

/* ---- times ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

/* Zone abbreviations seen in XMLTV feeds, in minutes east of UTC. */
static const struct {
	const char *name;
	int minutes;
} zones[] = {
	{"UTC", 0},    {"GMT", 0},     {"UT", 0},      {"Z", 0},      {"WET", 0},    {"BST", 60},
	{"IST", 60},   {"WEST", 60},   {"CET", 60},    {"MET", 60},   {"CEST", 120}, {"MEST", 120},
	{"EET", 120},  {"EEST", 180},  {"MSK", 180},   {"AST", -240}, {"ADT", -180}, {"EST", -300},
	{"EDT", -240}, {"CST", -360},  {"CDT", -300},  {"MST", -420}, {"MDT", -360}, {"PST", -480},
	{"PDT", -420}, {"AKST", -540}, {"AKDT", -480}, {"HST", -600}, {"AWST", 480}, {"ACST", 570},
	{"ACDT", 630}, {"AEST", 600},  {"AEDT", 660},  {"NZST", 720}, {"NZDT", 780}, {"JST", 540},
	{"KST", 540},  {"HKT", 480},   {"SGT", 480},
};

/* "+0100", "-05", "+05:30": minutes east of UTC, or -EINVAL. */
static int parse_offset(const char *p, int *minutes)
{
	int sign = *p == '-' ? -1 : 1, h, m = 0;

	p++;
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -EINVAL;
	h = (p[0] - '0') * 10 + (p[1] - '0');
	p += 2;
	if (*p == ':')
		p++;
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
		m = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p || h > 23 || m > 59)
		return -EINVAL;
	*minutes = sign * (h * 60 + m);
	return 0;
}

/* The zone after the digits: 0 known, 1 unknown abbreviation (UTC), -EINVAL. */
static int parse_zone(const char *p, int *minutes)
{
	char name[8];
	size_t n = 0;

	*minutes = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	if (*p == '+' || *p == '-')
		return parse_offset(p, minutes);
	while (isalpha((unsigned char)p[n]) && n < sizeof(name) - 1) {
		name[n] = (char)toupper((unsigned char)p[n]);
		n++;
	}
	name[n] = '\0';
	p += n;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!n || *p)
		return -EINVAL;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(zones); i++) {
		if (!strcmp(name, zones[i].name)) {
			*minutes = zones[i].minutes;
			return 0;
		}
	}
	return 1;
}

int epg_parse_time(const char *s, int64_t *out)
{
	static const unsigned widths[6] = {4, 2, 2, 2, 2, 2};
	unsigned v[6] = {0, 1, 1, 0, 0, 0}, n = 0;
	int minutes, zr;
	const char *p = s;

	while (*p == ' ' || *p == '\t')
		p++;
	while (isdigit((unsigned char)p[n]))
		n++;
	/* The digits are YYYYMMDDhhmmss or a prefix of it that ends on a field. */
	if (n < 4 || n > 14 || n % 2)
		return -EINVAL;
	for (unsigned f = 0, used = 0; used < n; used += widths[f], f++) {
		v[f] = 0;
		for (unsigned i = 0; i < widths[f]; i++)
			v[f] = v[f] * 10 + (unsigned)(p[used + i] - '0');
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]) || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60 || v[0] < 1970 || v[0] > 9999)
		return -EINVAL;
	zr = parse_zone(p + n, &minutes);
	if (zr < 0)
		return zr;
	*out = days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5] -
	       (int64_t)minutes * 60;
	return zr;
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

void epg_format_time(int64_t t, char buf[21])
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400, y;
	int64_t secs = t - days * 86400;
	unsigned m, d;

	civil_from_days(days, &y, &m, &d);
	put2(buf, (unsigned)(y / 100));
	put2(buf + 2, (unsigned)(y % 100));
	put2(buf + 4, m);
	put2(buf + 6, d);
	put2(buf + 8, (unsigned)(secs / 3600));
	put2(buf + 10, (unsigned)(secs / 60 % 60));
	put2(buf + 12, (unsigned)(secs % 60));
	memcpy(buf + 14, " +0000", 7);
}

bool epg_norm_date(const char *in, char *out, size_t len)
{
	char digits[9];
	size_t n = 0;

	/* "2022", "20220401", "2022-04-01", "2022/04/01 13:00" -> what Plex reads. */
	while (*in == ' ')
		in++;
	for (; *in && n < 8; in++) {
		if (isdigit((unsigned char)*in))
			digits[n++] = *in;
		else if (*in != '-' && *in != '/' && *in != '.')
			break;
	}
	if (n >= 8)
		n = 8;
	else if (n >= 4)
		n = 4;
	else
		return false;
	digits[n] = '\0';
	snprintf(out, len, "%s", digits);
	return true;
}

static const char *ns_part(const char *p, bool last)
{
	while (*p == ' ' || *p == '\t')
		p++;
	while (isdigit((unsigned char)*p))
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '/') {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (last)
		return *p ? NULL : p;
	return *p == '.' ? p + 1 : NULL;
}

bool epg_xmltv_ns_ok(const char *s)
{
	/* tv_validate_file's rule: three parts, each "N" or "N/M" or empty. */
	bool any = false;

	for (const char *q = s; *q; q++)
		any |= isdigit((unsigned char)*q);
	s = ns_part(s, false);
	if (s)
		s = ns_part(s, false);
	if (s)
		s = ns_part(s, true);
	return s && any;
}

/* ---- records ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static bool field_before(const struct epg_pfield *a, const struct epg_pfield *b)
{
	return a->type < b->type || (a->type == b->type && a->sub < b->sub);
}

/* Stable insertion sort into DTD order: inputs are small and usually ordered already. */
static void fields_sort(struct epg_prog *p)
{
	for (unsigned i = 1; i < p->n_fields; i++) {
		struct epg_pfield f = p->fields[i];
		unsigned j = i;

		while (j > 0 && field_before(&f, &p->fields[j - 1])) {
			p->fields[j] = p->fields[j - 1];
			j--;
		}
		p->fields[j] = f;
	}
}

int epg_rec_encode(struct epg_prog *p, uint32_t duration, struct ptv_buf *out)
{
	uint8_t hdr[8];

	fields_sort(p);
	hdr[0] = EPG_REC_VERSION;
	hdr[1] = p->flags;
	put16(hdr + 2, (uint16_t)p->n_fields);
	put32(hdr + 4, duration);
	ptv_buf_append(out, hdr, sizeof(hdr));
	for (unsigned i = 0; i < p->n_fields; i++) {
		const struct epg_pfield *f = &p->fields[i];
		uint8_t fh[4] = {f->type, f->sub};

		if (f->len > UINT16_MAX)
			return -E2BIG; /* the parser caps fields well below this */
		put16(fh + 2, (uint16_t)f->len);
		ptv_buf_append(out, fh, sizeof(fh));
		ptv_buf_append(out, p->data.data + f->off, f->len);
	}
	return out->oom ? -ENOMEM : 0;
}

int epg_rec_open(const void *data, size_t len, struct epg_rec *r)
{
	const uint8_t *b = data;

	if (len < 8 || b[0] != EPG_REC_VERSION)
		return -PTV_ERR_PARSE;
	r->flags = b[1];
	r->n_fields = get16(b + 2);
	r->duration = get32(b + 4);
	r->fields = b + 8;
	r->end = b + len;
	return 0;
}

bool epg_rec_next(struct epg_rec *r, struct epg_rec_field *f)
{
	uint16_t len;

	if (r->end - r->fields < 4)
		return false;
	len = get16(r->fields + 2);
	if (r->end - r->fields - 4 < len || !len || r->fields[4 + len - 1] != '\0')
		return false;
	f->type = r->fields[0];
	f->sub = r->fields[1];
	f->p = (const char *)r->fields + 4;
	f->len = len;
	r->fields += 4 + len;
	return true;
}

const char *epg_field_str(const struct epg_rec_field *f, unsigned i)
{
	const char *p = f->p, *end = f->p + f->len;

	while (i-- && p < end)
		p += strlen(p) + 1;
	return p < end ? p : "";
}

void epg_rec_set_duration(void *data, uint32_t duration, uint8_t flags)
{
	uint8_t *b = data;

	b[1] = flags;
	put32(b + 4, duration);
}

void epg_pkey(uint8_t key[EPG_PKEY_LEN], uint32_t gkey, uint64_t start)
{
	epg_put_be32(key, gkey);
	epg_put_be32(key + 4, (uint32_t)(start >> 32));
	epg_put_be32(key + 8, (uint32_t)start);
}

uint32_t epg_pkey_gkey(const void *key)
{
	return epg_be32(key);
}

uint64_t epg_pkey_start(const void *key)
{
	const uint8_t *b = key;

	return (uint64_t)epg_be32(b + 4) << 32 | epg_be32(b + 8);
}

size_t epg_fold(const char *s, char *out, size_t len)
{
	size_t n = 0, cap = PTV_MIN(len - 1, (size_t)EPG_KEY_MAX);
	bool space = false;

	for (; *s && n < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = n > 0;
			continue;
		}
		if (space && n + 1 < cap)
			out[n++] = ' ';
		space = false;
		out[n++] = (char)tolower(c);
	}
	out[n] = '\0';
	return n;
}
