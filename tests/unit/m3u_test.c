/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * M3U parser tests: every real file in $PTV_SHARED_DATA/m3u (exact entry counts, spot checks),
 * crafted cases for each feature and each error reason, chunking invariance, bounded memory on
 * 200,000 entries, and no control characters (CR/LF injection) in anything emitted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/common.h"
#include "plextv/m3u.h"

/* ---- collector ---- */

struct rec {
	char *name, *url, *tvg_id, *tvg_name, *tvg_logo, *tvg_chno, *group, *catchup;
	double shift, duration;
	bool radio, drm, ace;
	unsigned n_headers;
	char *hname[PTV_M3U_MAX_HEADERS], *hval[PTV_M3U_MAX_HEADERS];
	uint64_t line;
};

struct collect {
	struct rec *v;
	size_t n, cap;
	bool no_keep; /* count only (the 200,000-entry test) */
	char *dump;   /* every entry serialised: what chunking invariance compares */
	size_t dlen, dcap;
	uint64_t count;
	uint64_t abort_after; /* 0: never */
};

/* Independent UTF-8 check (not the parser's): well-formed, shortest form, no surrogates. */
static bool utf8_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		unsigned cp, n;

		if (*u < 0x80) {
			u++;
			continue;
		}
		if ((*u & 0xe0) == 0xc0)
			n = 1, cp = *u & 0x1f;
		else if ((*u & 0xf0) == 0xe0)
			n = 2, cp = *u & 0x0f;
		else if ((*u & 0xf8) == 0xf0)
			n = 3, cp = *u & 0x07;
		else
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((u[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (u[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		u += n + 1;
	}
	return true;
}

/* What RELIABILITY.md §2.6 asks: nothing emitted can break a line or hide a control char. */
static void check_clean(const char *what, const char *s)
{
	assert_non_null(s);
	for (const unsigned char *u = (const unsigned char *)s; *u; u++)
		if (*u < 0x20 || *u == 0x7f)
			fail_msg("%s has control byte 0x%02x: \"%s\"", what, *u, s);
	if (!utf8_ok(s))
		fail_msg("%s is not UTF-8: \"%s\"", what, s);
}

static void dump_add(struct collect *c, const char *s)
{
	size_t n = strlen(s) + 1;

	if (c->dlen + n > c->dcap) {
		c->dcap = (c->dlen + n) * 2;
		c->dump = realloc(c->dump, c->dcap);
		assert_non_null(c->dump);
	}
	memcpy(c->dump + c->dlen, s, n);
	c->dlen += n; /* NUL-separated */
}

static void dump_entry(struct collect *c, const struct ptv_m3u_entry *e)
{
	char nums[128];

	dump_add(c, e->name);
	dump_add(c, e->url);
	dump_add(c, e->tvg_id);
	dump_add(c, e->tvg_name);
	dump_add(c, e->tvg_logo);
	dump_add(c, e->tvg_chno);
	dump_add(c, e->group);
	dump_add(c, e->catchup);
	snprintf(nums, sizeof(nums), "%g|%g|%d%d%d|%u|%llu", e->tvg_shift, e->duration, e->radio,
		 e->drm, e->acestream, e->n_headers, (unsigned long long)e->line);
	dump_add(c, nums);
	for (unsigned i = 0; i < e->n_headers; i++) {
		dump_add(c, e->headers[i].name);
		dump_add(c, e->headers[i].value);
	}
}

static char *dup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

static void keep_entry(struct collect *c, const struct ptv_m3u_entry *e)
{
	struct rec *r;

	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		assert_non_null(c->v);
	}
	r = &c->v[c->n++];
	*r = (struct rec){
		.name = dup(e->name),
		.url = dup(e->url),
		.tvg_id = dup(e->tvg_id),
		.tvg_name = dup(e->tvg_name),
		.tvg_logo = dup(e->tvg_logo),
		.tvg_chno = dup(e->tvg_chno),
		.group = dup(e->group),
		.catchup = dup(e->catchup),
		.shift = e->tvg_shift,
		.duration = e->duration,
		.radio = e->radio,
		.drm = e->drm,
		.ace = e->acestream,
		.n_headers = e->n_headers,
		.line = e->line,
	};
	for (unsigned i = 0; i < e->n_headers; i++) {
		r->hname[i] = dup(e->headers[i].name);
		r->hval[i] = dup(e->headers[i].value);
	}
}

static int on_entry(const struct ptv_m3u_entry *e, void *ctx)
{
	struct collect *c = ctx;

	check_clean("name", e->name);
	check_clean("url", e->url);
	check_clean("tvg_id", e->tvg_id);
	check_clean("tvg_name", e->tvg_name);
	check_clean("tvg_logo", e->tvg_logo);
	check_clean("tvg_chno", e->tvg_chno);
	check_clean("group", e->group);
	check_clean("catchup", e->catchup);
	assert_true(e->n_headers <= PTV_M3U_MAX_HEADERS);
	for (unsigned i = 0; i < e->n_headers; i++) {
		check_clean("header name", e->headers[i].name);
		check_clean("header value", e->headers[i].value);
		assert_true(e->headers[i].name[0] && e->headers[i].value[0]);
	}
	assert_true(e->url[0]);
	c->count++;
	if (!c->no_keep) {
		keep_entry(c, e);
		dump_entry(c, e);
	}
	if (c->abort_after && c->count == c->abort_after)
		return -ECANCELED;
	return 0;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct rec *r = &c->v[i];

		free(r->name), free(r->url), free(r->tvg_id), free(r->tvg_name);
		free(r->tvg_logo), free(r->tvg_chno), free(r->group), free(r->catchup);
		for (unsigned k = 0; k < r->n_headers; k++)
			free(r->hname[k]), free(r->hval[k]);
	}
	free(c->v);
	free(c->dump);
	memset(c, 0, sizeof(*c));
}

/* ---- drivers ---- */

struct run {
	struct collect c;
	struct ptv_m3u_stats st;
	int rc;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

enum chunking {
	CHUNK_WHOLE = 0,
	CHUNK_BYTE,
	CHUNK_RANDOM,
};

static size_t next_chunk(enum chunking how, size_t left)
{
	size_t n;

	switch (how) {
	case CHUNK_BYTE:
		return 1;
	case CHUNK_RANDOM:
		/* mostly small, sometimes large: splits CRLF, BOMs and UTF-8 sequences */
		n = rng() % 8 == 0 ? 1 + rng() % 70000 : 1 + rng() % 17;
		return PTV_MIN(n, left);
	default:
		return left;
	}
}

static void run_buf(struct run *r, const char *data, size_t len, enum chunking how)
{
	struct ptv_m3u_parser *p;

	memset(r, 0, sizeof(*r));
	assert_int_equal(ptv_m3u_parser_new(on_entry, &r->c, &p), 0);
	for (size_t off = 0; off < len && !r->rc;) {
		size_t n = next_chunk(how, len - off);

		r->rc = ptv_m3u_parser_feed(p, data + off, n);
		off += n;
	}
	if (!r->rc)
		r->rc = ptv_m3u_parser_finish(p);
	r->st = *ptv_m3u_parser_stats(p);
	ptv_m3u_parser_free(p);
}

static void run_str(struct run *r, const char *s)
{
	run_buf(r, s, strlen(s), CHUNK_WHOLE);
	assert_int_equal(r->rc, 0);
}

static void run_free(struct run *r)
{
	collect_free(&r->c);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const char *data_dir(void)
{
	const char *d = getenv("PTV_SHARED_DATA");

	if (!d || !d[0])
		skip();
	return d;
}

static char *data_path(const char *sub, const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s/%s", data_dir(), sub, name);
	return path;
}

static const struct rec *at_line(const struct run *r, uint64_t line)
{
	for (size_t i = 0; i < r->c.n; i++)
		if (r->c.v[i].line == line)
			return &r->c.v[i];
	fail_msg("no entry at line %llu", (unsigned long long)line);
	return NULL;
}

static const char *hdr(const struct rec *e, const char *name)
{
	for (unsigned i = 0; i < e->n_headers; i++)
		if (!strcasecmp(e->hname[i], name))
			return e->hval[i];
	return NULL;
}

static void assert_double(double got, double want)
{
	if (got != want)
		fail_msg("got %g, want %g", got, want);
}

/* ---- every real file ---- */

/*
 * Expected counts, derived by hand from the files, not from the parser:
 *  entries: `grep -c '^[[:space:]]*#EXTINF'` gives the #EXTINF lines; every one of them is
 *           followed (after option lines) by one URL line except where noted. URL lines were
 *           counted with `grep -v '^[[:space:]]*#' | grep -c .` and checked to pair up with an
 *           awk script that reports #EXTINF-without-URL and URL-without-#EXTINF.
 *  lines:   `awk 'END{print NR}'` (every file ends in a newline).
 *  Notes:
 *  - iptv-playlist-parser_base.m3u: 6 #EXTINF; 7 non-# lines = 4 absolute URLs + 2 relative
 *    ones right after their #EXTINF ("stream/chunklist.m3u8", "movie.m3u8") + one junk line
 *    "=====...sudan=====" (junk 1). The blank line between "#EXTINF:1,=>(★…" and its URL and
 *    the second #EXTM3U do not break anything.
 *  - iptv-playlist-parser_comment.m3u: 1 entry, "====morocco====" is junk.
 *  - ipytv_iptv-org-index.m3u: 4602 #EXTINF but 4601 URLs: line 7042 (#EXTINF "Новый мир") is
 *    followed by a blank line and then the same #EXTINF again at 7044, so one NO_URL.
 *  - ipytv_m3u_plus_xtream.m3u: 4 entries, blank lines between them.
 */
static const struct file_case {
	const char *file;
	uint64_t entries, lines, no_url, junk;
	bool header;
	const char *url_tvg;
} file_cases[] = {
	{"cereslabx-us-tv-epg_playlist.m3u", 678, 1357, 0, 0, true, ""},
	{"iptv-m3u-playlist-parser_sample.m3u", 2, 9, 0, 0, true, "https://example.com/epg.xml"},
	{"iptv-org-test_index.region_x-tvg-url.m3u", 20, 47, 0, 0, true,
	 "https://iptv-org.github.io/epg/guides/ru/tv.yandex.ru.epg.xml,"
	 "https://iptv-org.github.io/epg/guides/uk/ontvtonight.com.epg.xml"},
	{"iptv-org-test_unsorted_crlf.m3u", 1, 3, 0, 0, true, ""},
	{"iptv-org_cn.m3u", 803, 1607, 0, 0, true, ""},
	{"iptv-org_de_2019-05.m3u", 115, 231, 0, 0, true, ""},
	{"iptv-org_fr_2021-08.m3u", 241, 487, 0, 0, true, ""},
	{"iptv-org_in.m3u", 160, 325, 0, 0, true, ""},
	{"iptv-org_us.m3u", 521, 1049, 0, 0, true, ""},
	{"iptv-org_us_pluto.m3u", 649, 1299, 0, 0, true, ""},
	{"iptv-playlist-parser_base.m3u", 6, 20, 0, 1, true,
	 "http://195.154.221.171/epg/guidealbania.xml.gz"},
	{"iptv-playlist-parser_comment.m3u", 1, 4, 0, 1, true, ""},
	{"iptv-playlist-parser_pipe.m3u", 2, 6, 0, 0, true, ""},
	{"iptv-playlist-parser_url_tvg.m3u", 1, 3, 0, 0, true,
	 "http://195.154.221.171/epg/guidealbania.xml.gz"},
	{"ipytv_iptv-org-index.m3u", 4601, 9217, 1, 0, true, ""},
	{"ipytv_m3u_plus_xtream.m3u", 4, 14, 0, 0, true, "http://myown.link:80/luke/220311/22311"},
};

static void parse_data_file(const char *name, struct run *r)
{
	struct collect c = {0};
	struct ptv_m3u_stats st;
	int rc;

	rc = ptv_m3u_parse_file(data_path("m3u", name), on_entry, &c, &st);
	memset(r, 0, sizeof(*r));
	r->c = c;
	r->st = st;
	r->rc = rc;
	assert_int_equal(rc, 0);
}

static void test_files_counts(void **state)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(file_cases); i++) {
		const struct file_case *f = &file_cases[i];
		struct run r;

		parse_data_file(f->file, &r);
		if (r.st.entries != f->entries || r.c.count != f->entries)
			fail_msg("%s: %llu entries, want %llu", f->file,
				 (unsigned long long)r.st.entries, (unsigned long long)f->entries);
		assert_int_equal(r.st.lines, f->lines);
		assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_URL], f->no_url);
		assert_int_equal(r.st.junk_lines, f->junk);
		assert_int_equal(r.st.saw_header, f->header);
		assert_string_equal(r.st.url_tvg, f->url_tvg);
		for (int e = 0; e < PTV_M3U_ERR_COUNT; e++)
			if (e != PTV_M3U_ERR_NO_URL && r.st.errors[e])
				fail_msg("%s: unexpected %s", f->file, ptv_m3u_error_name(e));
		run_free(&r);
	}
}

static void test_file_base(void **state)
{
	const struct rec *e;
	struct run r;

	parse_data_file("iptv-playlist-parser_base.m3u", &r);
	e = &r.c.v[0]; /* indented lines, tvg-ID, logo with a comma, EXTGRP, two EXTVLCOPT */
	assert_int_equal(e->line, 2);
	assert_string_equal(e->name, "Channel 1 (Tested)");
	assert_string_equal(e->tvg_id, "CH1");
	assert_string_equal(e->tvg_name, "Ch 1");
	assert_string_equal(e->tvg_logo,
			    "http://www.rtvchannel.com.au/wp-content/uploads/2017/04/"
			    "xshow_08.png,Mic_.2KNN9OHw1p.png.pagespeed.ce.2KNN9OHw1p.png");
	assert_string_equal(e->group, "Music"); /* group-title wins over #EXTGRP */
	assert_string_equal(e->url,
			    "http://livestream.htp.tv/hls-live/livepkgr/_definst_/H1/H1_HQ.m3u8");
	assert_string_equal(hdr(e, "Referer"), "http://player.livesports.pw/la2/");
	assert_string_equal(hdr(e, "User-Agent"),
			    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_5) AppleWebKit/537.36 "
			    "(KHTML, like Gecko) Chrome/76.0.3809.25 Safari/537.36");
	e = &r.c.v[1]; /* #EXTINF:16, relative URL */
	assert_string_equal(e->name, "Channel 2");
	assert_double(e->duration, 16);
	assert_string_equal(e->url, "stream/chunklist.m3u8");
	e = &r.c.v[2]; /* after junk and a second #EXTM3U; blank line before the URL */
	assert_int_equal(e->line, 12);
	assert_string_equal(e->name, "=>(\u2605 TURK\u0130YE \u2605)<=");
	assert_string_equal(e->url, "http://wodpro24.tr4545.in:8080/expred/peru8k.mp4");
	e = &r.c.v[3]; /* tvg-shift, catchup */
	assert_string_equal(e->name, "TRT 1 HD");
	assert_double(e->shift, -4.5);
	assert_string_equal(e->catchup, "shift");
	assert_non_null(strstr(e->url, "/live/ocp(t(FfZfeFx3QG4)"));
	e = &r.c.v[4]; /* "#EXTINF: -1, name,with comma" */
	assert_string_equal(e->name, "name,with comma");
	assert_double(e->duration, -1);
	assert_non_null(strstr(e->url, "CongresodelaRep\u00fablicadelPer\u00faTVenvivo"));
	e = &r.c.v[5]; /* commas in a quoted value and in the title */
	assert_string_equal(e->name, "The Good, the Bad and the Ugly");
	assert_string_equal(e->tvg_name, "The Good, the Bad and the Ugly");
	assert_string_equal(e->url, "movie.m3u8");
	run_free(&r);
}

static void test_file_pipe(void **state)
{
	const struct rec *e;
	struct run r;

	parse_data_file("iptv-playlist-parser_pipe.m3u", &r);
	e = &r.c.v[0];
	assert_string_equal(e->url, "http://192.54.104.122:8080/d/abcdef/video.mp4");
	assert_double(e->duration, 17);
	assert_int_equal(e->n_headers, 2);
	assert_string_equal(hdr(e, "User-Agent"),
			    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; "
			    "AS; rv:11.0) like Gecko");
	assert_string_equal(hdr(e, "Referer"), "http://180upload.abc/embed-uaqmgcckhpcl.html");
	e = &r.c.v[1]; /* UA from #EXTVLCOPT, Referer from the |suffix */
	assert_string_equal(e->name, "News channel");
	assert_string_equal(e->url, "http://my-news-stream:8999/d/letsplay/video.mp4");
	assert_non_null(strstr(hdr(e, "User-Agent"), "Chrome/76.0.3809.25"));
	assert_string_equal(hdr(e, "Referer"), "http://test.abc/blank.html");
	run_free(&r);
}

static void test_file_small_ones(void **state)
{
	const struct rec *e;
	struct run r;

	parse_data_file("iptv-playlist-parser_url_tvg.m3u", &r);
	e = &r.c.v[0]; /* user-agent given as an EXTINF attribute (iptv-org style) */
	assert_string_equal(e->group, "Entertainment");
	assert_string_equal(hdr(e, "User-Agent"),
			    "Mozilla/5.0 (iPhone; CPU iPhone OS 12_2 like Mac OS X) "
			    "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148");
	run_free(&r);

	parse_data_file("iptv-playlist-parser_comment.m3u", &r);
	assert_string_equal(r.c.v[0].name, "tamazight tv8");
	assert_int_equal(r.c.v[0].line, 3);
	run_free(&r);

	parse_data_file("iptv-org-test_unsorted_crlf.m3u", &r);
	assert_string_equal(r.c.v[0].name, "1A Network (720p)");
	assert_string_equal(r.c.v[0].url,
			    "https://simultv.s.llnwi.net/n4s4/2ANetwork/interlink.m3u8");
	run_free(&r);
}

static void test_file_sample_kodi(void **state)
{
	const struct rec *e;
	struct run r;

	parse_data_file("iptv-m3u-playlist-parser_sample.m3u", &r);
	assert_double(r.st.header_shift, 2);
	e = &r.c.v[0];
	assert_string_equal(e->name, "BBC One HD");
	assert_string_equal(e->tvg_id, "BBC1.uk");
	assert_string_equal(e->group, "UK;News");
	assert_double(e->shift, 2);		    /* the header's tvg-shift */
	assert_string_equal(e->catchup, "default"); /* the header's catchup */
	assert_string_equal(hdr(e, "User-Agent"), "MyPlayer/1.0");
	assert_string_equal(hdr(e, "X-Test"), "123"); /* #EXTVLCOPT:http-header=X-Test: 123 */
	/* Its only #KODIPROP is inputstream.adaptive.manifest_type=hls: no licence, so no DRM. */
	assert_false(e->drm);
	e = &r.c.v[1];
	assert_string_equal(e->name, "ESPN");
	assert_string_equal(e->group, "Sports");
	assert_int_equal(e->n_headers, 0);
	run_free(&r);
}

static void test_file_xtream(void **state)
{
	const struct rec *e;
	struct run r;

	parse_data_file("ipytv_m3u_plus_xtream.m3u", &r);
	e = &r.c.v[1];
	assert_string_equal(e->name, "Cielo");
	assert_string_equal(e->tvg_id, "");
	assert_non_null(strstr(hdr(e, "User-Agent"), "Firefox/76.0"));
	e = &r.c.v[2];
	assert_string_equal(e->name, "TEMATICO MASSIMO TROISI");
	assert_double(e->shift, -0.5);
	e = &r.c.v[3]; /* a separator pseudo-channel: still an entry, the importer decides */
	assert_string_equal(e->name, "----I N T R A T T E N I M E N T O----");
	assert_string_equal(e->tvg_id, "-10.5");
	assert_double(e->shift, 0);
	assert_string_equal(e->url, "http://myown.link:80/luke/109163/78282");
	run_free(&r);
}

static void test_file_iptv_org(void **state)
{
	const struct rec *e;
	struct run r;

	parse_data_file("iptv-org_cn.m3u", &r);
	e = at_line(&r, 2);
	assert_string_equal(e->name, "\u5b89\u5fbd\u536b\u89c6 (1080p)"); /* 安徽卫视 */
	assert_string_equal(e->tvg_id, "AnhuiSatelliteTV.cn");
	run_free(&r);

	parse_data_file("iptv-org_us.m3u", &r);
	e = at_line(&r, 256); /* user-agent attribute and the same in #EXTVLCOPT: one header */
	assert_string_equal(e->name, "CNBC Europe (480p)");
	assert_int_equal(e->n_headers, 1);
	assert_string_equal(e->url, "http://ott-cdn.ucom.am/s65/index.m3u8");
	e = at_line(&r, 717);
	assert_string_equal(e->url, "https://cdn-shop-lc-01.akamaized.net/Content/DASH_DASH/Live/"
				    "channel(ott)/master.mpd");
	run_free(&r);

	parse_data_file("iptv-org_in.m3u", &r);
	assert_string_equal(hdr(at_line(&r, 56), "Referer"), "https://webcast.gov.in/");
	assert_string_equal(hdr(at_line(&r, 241), "User-Agent"), "stream");
	run_free(&r);

	parse_data_file("iptv-org_de_2019-05.m3u", &r);
	e = at_line(&r, 4);
	assert_string_equal(e->name, "AIRE SANTA FE | SD (DE)");
	assert_string_equal(e->group, "(DE) Germany");
	run_free(&r);

	parse_data_file("iptv-org-test_index.region_x-tvg-url.m3u", &r);
	e = at_line(&r, 20);
	assert_string_equal(e->group, "Europe, the Middle East and Africa");
	assert_string_equal(hdr(e, "Referer"), "http://imn.iq");
	run_free(&r);

	parse_data_file("cereslabx-us-tv-epg_playlist.m3u", &r);
	e = at_line(&r, 2);
	assert_string_equal(e->tvg_id, "KATU321.us@HD");
	assert_string_equal(e->name, "ABC 2 Portland OR (KATU)");
	assert_string_equal(e->group, "Local News");
	run_free(&r);

	parse_data_file("ipytv_iptv-org-index.m3u", &r);
	e = at_line(&r, 7044); /* the #EXTINF at 7042 had no URL */
	assert_string_equal(e->name, "\u041d\u043e\u0432\u044b\u0439 \u043c\u0438\u0440");
	assert_string_equal(e->url, "https://persik.by/stream/8682/252987/10231.m3u8");
	assert_string_equal(at_line(&r, 4903)->url, "mms://202.160.15.88/stream-01-128");
	run_free(&r);
}

/* HLS playlists given as channel lists: counted once, no entries. */
static void test_hls_files(void **state)
{
	static const char *const files[] = {
		"videojs_alternateAudio.m3u8",	   "videojs_encrypted.m3u8",
		"videojs_discontinuity.m3u8",	   "videojs_byteRange.m3u8",
		"videojs_brightcove.m3u8",	   "videojs_master-fmp4.m3u8",
		"videojs_whiteSpace.m3u8",	   "videojs_domainUris.m3u8",
		"grafov_wowza-vod-chunklist.m3u8", "iptv-m3u-playlist-parser_media-live.m3u8",
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(files); i++) {
		struct collect c = {0};
		struct ptv_m3u_stats st;

		assert_int_equal(ptv_m3u_parse_file(data_path("hls", files[i]), on_entry, &c, &st),
				 0);
		if (st.entries || st.errors[PTV_M3U_ERR_HLS_MEDIA] != 1)
			fail_msg("%s: %llu entries", files[i], (unsigned long long)st.entries);
		collect_free(&c);
	}
}

/* ---- chunking invariance ---- */

static void assert_same(const struct run *a, const struct run *b, const char *what)
{
	if (a->c.dlen != b->c.dlen || memcmp(a->c.dump, b->c.dump, a->c.dlen))
		fail_msg("%s: entries differ with chunking", what);
	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->st.entries, b->st.entries);
	assert_int_equal(a->st.lines, b->st.lines);
	assert_int_equal(a->st.junk_lines, b->st.junk_lines);
	assert_int_equal(a->st.saw_header, b->st.saw_header);
	assert_string_equal(a->st.url_tvg, b->st.url_tvg);
	assert_memory_equal(a->st.errors, b->st.errors, sizeof(a->st.errors));
}

static void check_chunking(const char *data, size_t len, const char *what)
{
	struct run whole, bytes, rnd;

	run_buf(&whole, data, len, CHUNK_WHOLE);
	run_buf(&bytes, data, len, CHUNK_BYTE);
	assert_same(&whole, &bytes, what);
	for (int i = 0; i < 3; i++) {
		run_buf(&rnd, data, len, CHUNK_RANDOM);
		assert_same(&whole, &rnd, what);
		run_free(&rnd);
	}
	run_free(&whole);
	run_free(&bytes);
}

static void test_chunking_files(void **state)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(file_cases); i++) {
		size_t len;
		char *buf = slurp(data_path("m3u", file_cases[i].file), &len);

		check_chunking(buf, len, file_cases[i].file);
		free(buf);
	}
}

/* Everything awkward in one buffer: CR, CRLF, LF mixed, BOM, long line, bad UTF-8. */
static void test_chunking_torture(void **state)
{
	size_t big = PTV_M3U_MAX_LINE + 5000, len;
	char *buf = malloc(big + 4096);
	const char *head = "\xef\xbb\xbf#EXTM3U url-tvg=\"http://g/1\"\r\n"
			   "#EXTINF:-1 tvg-id=\"a\",A\rhttp://a/1\r\n"
			   "#EXTINF:-1,B \xff\xfe bad\nhttp://b/\xe9t\xe9\r"
			   "#EXTINF:-1,";
	const char *tail = "\nhttp://lost/1\n#EXTINF:-1,C\r\n\r\nhttp://c/1|User-Agent=x%20y\r"
			   "\xef\xbb\xbf#EXTM3U\r\nhttp://d/noextinf\n#EXTINF:-1,E";

	assert_non_null(buf);
	len = strlen(head);
	memcpy(buf, head, len);
	memset(buf + len, 'x', big);
	len += big;
	memcpy(buf + len, tail, strlen(tail));
	len += strlen(tail);
	check_chunking(buf, len, "torture");
	{
		struct run r;

		run_buf(&r, buf, len, CHUNK_WHOLE);
		assert_int_equal(r.st.entries, 4); /* A, B, C, d/noextinf */
		assert_int_equal(r.st.errors[PTV_M3U_ERR_LINE_TOO_LONG], 1);
		assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_URL], 1); /* E */
		assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_EXTINF], 1);
		assert_int_equal(r.st.errors[PTV_M3U_ERR_ENCODING], 2);
		assert_string_equal(r.c.v[1].name, "B \ufffd\ufffd bad");
		assert_string_equal(r.c.v[1].url, "http://b/%E9t%E9");
		assert_string_equal(r.c.v[2].name, "C");
		assert_string_equal(hdr(&r.c.v[2], "User-Agent"), "x y");
		assert_string_equal(r.c.v[3].url, "http://d/noextinf");
		assert_int_equal(r.st.lines, 13);
		run_free(&r);
	}
	free(buf);
}

/* ---- crafted cases ---- */

static void test_bom_crlf_cr(void **state)
{
	struct run r;

	run_str(&r, "\xef\xbb\xbf#EXTM3U\r#EXTINF:-1,One\rhttp://h/1\r#EXTINF:-1,Two\r\n"
		    "http://h/2\n#EXTINF:-1,Three\nhttp://h/3");
	assert_true(r.st.saw_header);
	assert_int_equal(r.st.entries, 3);
	assert_int_equal(r.st.lines, 7);
	assert_string_equal(r.c.v[0].name, "One");
	assert_string_equal(r.c.v[1].url, "http://h/2");
	assert_string_equal(r.c.v[2].url, "http://h/3"); /* no trailing newline */
	assert_int_equal(r.c.v[2].line, 6);
	run_free(&r);
}

static void test_no_header(void **state)
{
	struct run r;

	run_str(&r, "#EXTINF:-1,A\nhttp://h/a\n");
	assert_false(r.st.saw_header);
	assert_int_equal(r.st.entries, 1);
	run_free(&r);
}

static void test_header_attrs(void **state)
{
	struct run r;

	/* Threadfin writes both keys with the same list: kept once. */
	run_str(&r,
		"#EXTM3U url-tvg=\"http://g/a.xml,http://g/b.xml\" "
		"x-tvg-url=\"http://g/a.xml,http://g/b.xml\" tvg-shift=\"+1.5\" catchup=\"xc\"\n"
		"#EXTINF:-1,A\nhttp://h/a\n#EXTINF:-1 tvg-shift=-2 "
		"catchup=\"shift\",B\nhttp://h/b\n"
		"#EXTM3U x-tvg-url=\"http://g/c.xml\"\n");
	assert_string_equal(r.st.url_tvg, "http://g/a.xml,http://g/b.xml,http://g/c.xml");
	assert_double(r.st.header_shift, 1.5);
	assert_double(r.c.v[0].shift, 1.5);
	assert_string_equal(r.c.v[0].catchup, "xc");
	assert_double(r.c.v[1].shift, -2);
	assert_string_equal(r.c.v[1].catchup, "shift");
	run_free(&r);
}

static void test_extinf_forms(void **state)
{
	struct run r;

	run_str(&r, "#EXTINF:-1,A\nhttp://h/a\n"
		    "#EXTINF: -1 ,B\nhttp://h/b\n"
		    "#EXTINF:16,C\nhttp://h/c\n"
		    "#extinf:0.5 tvg-id=x,D\nhttp://h/d\n"
		    "#EXTINF:,E\nhttp://h/e\n"
		    "#EXTINF:-1 tvg-name=\"Only Tvg Name\"\nhttp://h/f\n");
	assert_int_equal(r.st.entries, 6);
	assert_double(r.c.v[0].duration, -1);
	assert_double(r.c.v[1].duration, -1);
	assert_string_equal(r.c.v[1].name, "B");
	assert_double(r.c.v[2].duration, 16);
	assert_double(r.c.v[3].duration, 0.5);
	assert_string_equal(r.c.v[3].tvg_id, "x");
	assert_double(r.c.v[4].duration, -1);
	assert_string_equal(r.c.v[4].name, "E");
	assert_string_equal(r.c.v[5].name, "Only Tvg Name"); /* no title: tvg-name */
	run_free(&r);
}

static void test_attr_quoting(void **state)
{
	const struct rec *e;
	struct run r;

	run_str(&r, "#EXTINF:-1 tvg-id=\"a\"tvg-name=\"b\"group-title='G, \"q\"' tvg_ID=dup "
		    "TVG-LOGO=http://l/x.png tvg-chno=\"\" channel-number=5.1 radio=\"true\" "
		    "junkword \"stray, quoted\" ,Title, with \"quotes\", and commas\nhttp://h/1\n");
	e = &r.c.v[0];
	assert_string_equal(e->tvg_id, "a"); /* first wins over tvg_ID=dup */
	assert_string_equal(e->tvg_name, "b");
	assert_string_equal(e->group, "G, \"q\"");
	assert_string_equal(e->tvg_logo, "http://l/x.png");
	assert_string_equal(e->tvg_chno, "5.1"); /* empty tvg-chno: channel-number */
	assert_true(e->radio);
	assert_string_equal(e->name, "Title, with \"quotes\", and commas");
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_ATTR], 0);
	run_free(&r);

	run_str(&r, "#EXTINF:-1 channel-id=\"7\" tvg-shift=\"abc\",X\nhttp://h/1\n");
	assert_string_equal(r.c.v[0].tvg_chno, "7");
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_ATTR], 1); /* tvg-shift not a number */
	run_free(&r);
}

static void test_unterminated_quote(void **state)
{
	struct run r;

	run_str(&r, "#EXTINF:-1 tvg-id=\"abc,My Channel\nhttp://h/1\n"
		    "#EXTINF:-1 tvg-name=\"No comma at all\nhttp://h/2\n");
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_ATTR], 2);
	assert_string_equal(r.c.v[0].name, "My Channel");
	assert_string_equal(r.c.v[0].tvg_id, "");
	assert_string_equal(r.c.v[1].name, "No comma at all");
	run_free(&r);
}

static void test_extgrp_vlcopt_kodiprop(void **state)
{
	const struct rec *e;
	struct run r;

	run_str(&r,
		"#EXTM3U\n"
		"#EXTINF:-1,A\n#EXTGRP:News\n#EXTGRP:Ignored\n"
		"#EXTVLCOPT:http-user-agent=UA/1\n#EXTVLCOPT:http-referrer=http://r/\n"
		"#EXTVLCOPT:http-origin=http://o\n#EXTVLCOPT:network-caching=1000\n"
		"#EXTVLCOPT:program=3\n#KODIPROP:inputstream=inputstream.adaptive\n"
		"http://h/a\n"
		/* Kodi lists put #KODIPROP before the #EXTINF too */
		"#KODIPROP:inputstream.adaptive.license_type=com.widevine.alpha\n"
		"#KODIPROP:inputstream.adaptive.license_key=https://lic/\n"
		"#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=K%2F2&Referer=http://k/\n"
		"#EXTINF:-1 group-title=\"G\",B\n#EXTGRP:NotUsed\nhttp://h/b.mpd\n"
		"#EXTINF:-1,C\nhttp://h/c\n");
	e = &r.c.v[0];
	assert_string_equal(e->group, "News");
	assert_string_equal(hdr(e, "User-Agent"), "UA/1");
	assert_string_equal(hdr(e, "Referer"), "http://r/");
	assert_string_equal(hdr(e, "Origin"), "http://o");
	assert_int_equal(e->n_headers, 3);
	assert_false(e->drm);
	e = &r.c.v[1];
	assert_true(e->drm);
	assert_string_equal(e->group, "G");
	assert_string_equal(hdr(e, "User-Agent"), "K/2");
	assert_string_equal(hdr(e, "Referer"), "http://k/");
	e = &r.c.v[2]; /* nothing leaks into the next entry */
	assert_false(e->drm);
	assert_int_equal(e->n_headers, 0);
	assert_string_equal(e->group, "");
	run_free(&r);
}

static void test_pipe_headers(void **state)
{
	const struct rec *e;
	struct run r;

	run_str(&r, "#EXTINF:-1 user-agent=\"attr\",A\n#EXTVLCOPT:http-user-agent=vlc\n"
		    "http://h/"
		    "a.ts|User-Agent=Pipe%20UA&Referer=http%3A%2F%2Fr%2F&!X-Custom=z&Cookie=a=b\n"
		    "#EXTINF:-1,B\nhttp://h/b|Referer=x%0D%0AEvil:%201&Bad Name=1&novalue&Origin=o"
		    "&Content-Length=5&transfer-encoding=chunked\n");
	e = &r.c.v[0];
	assert_string_equal(e->url, "http://h/a.ts");
	assert_string_equal(hdr(e, "User-Agent"), "Pipe UA"); /* the |suffix wins */
	assert_string_equal(hdr(e, "Referer"), "http://r/");
	assert_string_equal(hdr(e, "X-Custom"), "z");
	assert_string_equal(hdr(e, "Cookie"), "a=b");
	assert_int_equal(e->n_headers, 4);
	/* %0D%0A would inject a header: refused, like a bad name and framing headers */
	e = &r.c.v[1];
	assert_string_equal(e->url, "http://h/b");
	assert_null(hdr(e, "Referer"));
	assert_string_equal(hdr(e, "Origin"), "o");
	assert_int_equal(e->n_headers, 1);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_ATTR], 5);
	run_free(&r);
}

static void test_header_limit(void **state)
{
	char buf[1024] = "#EXTINF:-1,A\nhttp://h/a|";
	struct run r;

	for (int i = 0; i < PTV_M3U_MAX_HEADERS + 2; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "X-%d=%d&", i, i);
	run_str(&r, buf);
	assert_int_equal(r.c.v[0].n_headers, PTV_M3U_MAX_HEADERS);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_ATTR], 2);
	run_free(&r);
}

static void test_acestream(void **state)
{
	static const char id[] = "0123456789abcdef0123456789ABCDEF01234567";
	char buf[1024];
	struct run r;

	snprintf(buf, sizeof(buf),
		 "#EXTINF:-1,A\nacestream://%s\n#EXTINF:-1,B\nace://%s/\n#EXTINF:-1,C\n%s\n"
		 "#EXTINF:-1,D\nhttp://127.0.0.1:6878/ace/getstream?id=%s\n"
		 "#EXTINF:-1,E\nacestream://tooshort\n",
		 id, id, id, id);
	run_str(&r, buf);
	assert_int_equal(r.st.entries, 4);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(r.c.v[i].url,
				    "acestream://0123456789abcdef0123456789abcdef01234567");
		assert_true(r.c.v[i].ace);
	}
	/* An engine URL is kept as it is: it may name the provider's own engine. */
	assert_false(r.c.v[3].ace);
	assert_non_null(strstr(r.c.v[3].url, "/ace/getstream?id="));
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_URL], 1);
	assert_true(ptv_m3u_is_ace_id(id, 40));
	assert_false(ptv_m3u_is_ace_id(id, 39));
	assert_false(ptv_m3u_is_ace_id("g123456789abcdef0123456789abcdef01234567", 40));
	/* The infohash form keeps saying it is an infohash (the engine wants infohash=). */
	run_free(&r);
	snprintf(buf, sizeof(buf), "#EXTINF:-1,IH\nacestream://infohash=%s\n", id);
	run_str(&r, buf);
	assert_int_equal(r.st.entries, 1);
	assert_string_equal(r.c.v[0].url,
			    "acestream://infohash=0123456789abcdef0123456789abcdef01234567");
	assert_true(r.c.v[0].ace);
	/* A bare id without #EXTINF is still an entry. */
	run_free(&r);
	snprintf(buf, sizeof(buf), "%s\n", id);
	run_str(&r, buf);
	assert_int_equal(r.st.entries, 1);
	assert_true(r.c.v[0].ace);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_EXTINF], 1);
	run_free(&r);
}

static void test_junk_and_urls(void **state)
{
	struct run r;

	run_str(&r, "#EXTM3U\n====sports====\nSPORTS CHANNELS\n"
		    "#EXTINF:-1,A\n---- separator ----\n\n  http://h/a  \n"
		    "#EXTINF:-1,B\n/srv/media/b.ts\n"
		    "#EXTINF:-1,C\njavascript:alert(1)\n"
		    "#EXTINF:-1,D\nrtmp://h/live/d\n"
		    "movie.mp4\n" /* relative without #EXTINF: junk */
		    "#EXTINF:-1,E\n==junk==\n#EXTINF:-1,F\nudp://@239.0.0.1:1234\n");
	assert_int_equal(r.st.entries, 4); /* A B D F */
	assert_string_equal(r.c.v[0].url, "http://h/a");
	assert_string_equal(r.c.v[1].url, "/srv/media/b.ts");
	assert_string_equal(r.c.v[2].url, "rtmp://h/live/d");
	assert_string_equal(r.c.v[3].url, "udp://@239.0.0.1:1234");
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_URL], 1);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_URL], 1); /* E */
	assert_int_equal(r.st.junk_lines, 5);
	run_free(&r);
}

static void test_no_url_no_extinf(void **state)
{
	struct run r;

	run_str(&r, "#EXTINF:-1,A\n#EXTINF:-1,B\n#EXTINF:-1,C\nhttp://h/c\nhttp://h/d\n"
		    "#EXTINF:-1,E\n");
	assert_int_equal(r.st.entries, 2);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_URL], 3); /* A, B, E */
	assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_EXTINF], 1);
	assert_string_equal(r.c.v[0].name, "C");
	assert_string_equal(r.c.v[1].name, "http://h/d");
	assert_int_equal(r.c.v[1].line, 5);
	assert_double(r.c.v[1].duration, -1);
	run_free(&r);
}

static void test_hls_media(void **state)
{
	struct run r;

	run_str(&r, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:1\n"
		    "#EXTINF:10.0,\nseg1.ts\n#EXTINF:10.0,\nhttp://h/seg2.ts\n");
	assert_int_equal(r.st.entries, 0);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_HLS_MEDIA], 1);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_NO_URL], 0);
	run_free(&r);
}

static void test_encoding(void **state)
{
	struct run r;

	/* Latin-1 name, overlong '/', surrogate, truncated sequence, C1 NEL, U+2028, NUL, tab */
	static const char in[] =
		"#EXTINF:-1 group-title=\"Caf\xe9\",Se\xf1or \xc0\xaf \xed\xa0\x80 "
		"end\xe2\x82\n"
		"http://h/1\n"
		"#EXTINF:-1,a\xc2\x85"
		"b\xe2\x80\xa8"
		"c\x00"
		"d\te\n"
		"http://h/2\n";

	run_buf(&r, in, sizeof(in) - 1, CHUNK_WHOLE);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.c.v[0].group, "Caf\ufffd");
	assert_string_equal(r.c.v[0].name,
			    "Se\ufffdor \ufffd\ufffd \ufffd\ufffd\ufffd end\ufffd\ufffd");
	assert_string_equal(r.c.v[1].name, "a b c d e");
	assert_int_equal(r.st.errors[PTV_M3U_ERR_ENCODING], 1);
	run_free(&r);
}

static void test_bad_url_controls(void **state)
{
	static const char in[] = "#EXTINF:-1,A\nhttp://h/a\x01"
				 "b\n#EXTINF:-1,B\nhttp://h/\tb\n#EXTINF:-1,C\n|User-Agent=x\n";
	struct run r;

	run_buf(&r, in, sizeof(in) - 1, CHUNK_WHOLE);
	assert_int_equal(r.st.entries, 0);
	assert_int_equal(r.st.errors[PTV_M3U_ERR_BAD_URL], 3);
	run_free(&r);
}

/* RELIABILITY.md P2: a 1 MiB line is skipped without being buffered, the rest parses. */
static void test_long_lines(void **state)
{
	size_t big = 1u << 20;
	char *line = malloc(big);
	struct ptv_m3u_parser *p;
	struct collect c = {0};
	const struct ptv_m3u_stats *st;

	assert_non_null(line);
	assert_int_equal(ptv_m3u_parser_new(on_entry, &c, &p), 0);
	/* a long #EXTINF: its URL goes with it, silently */
	assert_int_equal(ptv_m3u_parser_feed(p, "#EXTINF:-1 tvg-name=\"", 21), 0);
	memset(line, 'n', big);
	assert_int_equal(ptv_m3u_parser_feed(p, line, big), 0);
	assert_int_equal(ptv_m3u_parser_feed(p, "\",X\nhttp://h/lost\n", 18), 0);
	/* a long URL: its #EXTINF goes with it */
	assert_int_equal(ptv_m3u_parser_feed(p, "#EXTINF:-1,Y\nhttp://h/", 22), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ptv_m3u_parser_feed(p, line, big / 4), 0);
	assert_int_equal(ptv_m3u_parser_feed(p, "\r\n", 2), 0);
	/* a long junk line between an #EXTINF and its URL changes nothing */
	assert_int_equal(ptv_m3u_parser_feed(p, "#EXTINF:-1,Z\n", 13), 0);
	memset(line, '=', big);
	assert_int_equal(ptv_m3u_parser_feed(p, line, big), 0);
	assert_int_equal(ptv_m3u_parser_feed(p, "\nhttp://h/z\n", 12), 0);
	/* exactly PTV_M3U_MAX_LINE is still fine */
	assert_int_equal(ptv_m3u_parser_feed(p, "#EXTINF:-1,W\nhttp://h/", 22), 0);
	memset(line, 'w', big);
	assert_int_equal(ptv_m3u_parser_feed(p, line, PTV_M3U_MAX_LINE - 9), 0);
	assert_int_equal(ptv_m3u_parser_finish(p), 0);
	st = ptv_m3u_parser_stats(p);
	assert_int_equal(st->errors[PTV_M3U_ERR_LINE_TOO_LONG], 3);
	assert_int_equal(st->errors[PTV_M3U_ERR_NO_URL], 0);
	assert_int_equal(st->errors[PTV_M3U_ERR_NO_EXTINF], 0);
	assert_int_equal(st->entries, 2);
	assert_string_equal(c.v[0].name, "Z");
	assert_string_equal(c.v[1].name, "W");
	assert_int_equal(strlen(c.v[1].url), PTV_M3U_MAX_LINE);
	assert_int_equal(st->lines, 9);
	/* never more than one line buffer plus a bounded arena, whatever the input held */
	assert_true(st->mem_peak < 4 * PTV_M3U_MAX_LINE);
	ptv_m3u_parser_free(p);
	collect_free(&c);
	free(line);
}

static void test_callback_abort(void **state)
{
	struct ptv_m3u_parser *p;
	struct collect c = {.abort_after = 2};
	const char *in = "#EXTINF:-1,A\nhttp://h/a\n#EXTINF:-1,B\nhttp://h/b\n#EXTINF:-1,C\n"
			 "http://h/c\n";

	assert_int_equal(ptv_m3u_parser_new(on_entry, &c, &p), 0);
	assert_int_equal(ptv_m3u_parser_feed(p, in, strlen(in)), -ECANCELED);
	assert_int_equal(ptv_m3u_parser_feed(p, in, strlen(in)), -ECANCELED);
	assert_int_equal(ptv_m3u_parser_finish(p), -ECANCELED);
	assert_int_equal(c.count, 2);
	ptv_m3u_parser_free(p);
	collect_free(&c);
	ptv_m3u_parser_free(NULL);
}

static void test_api_misc(void **state)
{
	struct ptv_m3u_parser *p = (void *)1;
	struct ptv_m3u_stats st;

	assert_int_equal(ptv_m3u_parser_new(NULL, NULL, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(ptv_m3u_parse_file("/nonexistent/x.m3u", on_entry, NULL, &st), -ENOENT);
	assert_string_equal(ptv_m3u_error_name(PTV_M3U_ERR_NO_URL), "no_url");
	assert_string_equal(ptv_m3u_error_name(PTV_M3U_ERR_HLS_MEDIA), "hls_media");
	assert_string_equal(ptv_m3u_error_name(PTV_M3U_ERR_COUNT), "unknown");
	for (int e = 0; e < PTV_M3U_ERR_COUNT; e++)
		assert_non_null(ptv_m3u_error_name(e));
}

/* 200,000 generated entries: the parser's own high-water mark does not grow with the input. */
static uint64_t feed_generated(struct ptv_m3u_parser *p, unsigned n)
{
	char buf[65536];
	size_t len = 0;
	uint64_t total = 0;

	for (unsigned i = 0; i < n; i++) {
		int w = snprintf(buf + len, sizeof(buf) - len,
				 "#EXTINF:-1 tvg-id=\"ch%u.example\" tvg-name=\"Channel %u\" "
				 "tvg-logo=\"http://logo.example/%u.png\" group-title=\"Group %u\","
				 "Channel %u HD\n#EXTVLCOPT:http-user-agent=Agent/%u\n"
				 "http://stream.example:8080/live/user/pass/%u.ts\n",
				 i, i, i, i % 50, i, i % 7, i);

		assert_true(w > 0 && (size_t)w < sizeof(buf) - len);
		len += (size_t)w;
		if (len > sizeof(buf) - 1024) {
			assert_int_equal(ptv_m3u_parser_feed(p, buf, len), 0);
			total += len;
			len = 0;
		}
	}
	assert_int_equal(ptv_m3u_parser_feed(p, buf, len), 0);
	assert_int_equal(ptv_m3u_parser_finish(p), 0);
	return total + len;
}

static void test_many_entries_bounded(void **state)
{
	struct collect small = {.no_keep = true}, large = {.no_keep = true};
	struct ptv_m3u_parser *p;
	size_t peak_small, peak_large;
	uint64_t bytes;

	assert_int_equal(ptv_m3u_parser_new(on_entry, &small, &p), 0);
	feed_generated(p, 100);
	peak_small = ptv_m3u_parser_stats(p)->mem_peak;
	ptv_m3u_parser_free(p);

	assert_int_equal(ptv_m3u_parser_new(on_entry, &large, &p), 0);
	bytes = feed_generated(p, 200000);
	assert_int_equal(ptv_m3u_parser_stats(p)->entries, 200000);
	assert_int_equal(large.count, 200000);
	peak_large = ptv_m3u_parser_stats(p)->mem_peak;
	ptv_m3u_parser_free(p);
	print_message("200000 entries, %llu bytes: parser peak %zu bytes (100 entries: %zu)\n",
		      (unsigned long long)bytes, peak_large, peak_small);
	assert_int_equal(peak_large, peak_small);
	assert_true(peak_large < 2 * PTV_M3U_MAX_LINE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_counts),
		cmocka_unit_test(test_file_base),
		cmocka_unit_test(test_file_pipe),
		cmocka_unit_test(test_file_small_ones),
		cmocka_unit_test(test_file_sample_kodi),
		cmocka_unit_test(test_file_xtream),
		cmocka_unit_test(test_file_iptv_org),
		cmocka_unit_test(test_hls_files),
		cmocka_unit_test(test_chunking_files),
		cmocka_unit_test(test_chunking_torture),
		cmocka_unit_test(test_bom_crlf_cr),
		cmocka_unit_test(test_no_header),
		cmocka_unit_test(test_header_attrs),
		cmocka_unit_test(test_extinf_forms),
		cmocka_unit_test(test_attr_quoting),
		cmocka_unit_test(test_unterminated_quote),
		cmocka_unit_test(test_extgrp_vlcopt_kodiprop),
		cmocka_unit_test(test_pipe_headers),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_acestream),
		cmocka_unit_test(test_junk_and_urls),
		cmocka_unit_test(test_no_url_no_extinf),
		cmocka_unit_test(test_hls_media),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_bad_url_controls),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_callback_abort),
		cmocka_unit_test(test_api_misc),
		cmocka_unit_test(test_many_entries_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
