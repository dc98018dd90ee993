/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Guide tests: XMLTV times and helpers, programme records, the reader on every real file in
 * $PTV_SHARED_DATA/xmltv and on hostile documents (entity bombs, XXE, deep nesting, junk), the
 * importer against a real store and lineup (mapping, shifts, stop times, overlaps, duplicates,
 * retention, failures that must keep the previous guide: malformed, hostile, map full, gzip
 * bomb), manual overrides, and the output (resumable slices, gzip, round trip).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "epg_int.h"
#include "lineup_int.h"
#include "plextv/chanrec.h"
#include "plextv/log.h"
#include "plextv/sources.h"
#include "plextv/store.h"

#define HOUR 3600

/* ---- fixture: a temporary data dir, a store, a lineup ---- */

struct fixture {
	char dir[64];
	char data[128];
	struct ptv_store *s;
	struct ptv_epg_opts o;
	int64_t now;
};

static void quiet_sink(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

static struct ptv_store *store_open(struct fixture *f, size_t map, size_t max)
{
	struct ptv_store_opts so = {.map_size = map, .map_max = max};
	struct ptv_store *s = NULL;

	assert_int_equal(ptv_store_open(f->data, &so, &s), 0);
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	ptv_log_set_sink(quiet_sink, NULL);
	strcpy(f->dir, "/tmp/ptv-epg-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	f->s = store_open(f, 0, 0);
	f->now = (int64_t)ptv_wall_seconds();
	f->o = (struct ptv_epg_opts){.data_dir = f->data,
				     .max_bytes = 64u << 20,
				     .timeout_s = 120,
				     .retention_s = 86400,
				     .dummy = true,
				     .dummy_block_s = 3600,
				     .dummy_span_s = 24 * 3600};
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ptv_store_close(f->s);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static char *write_file(struct fixture *f, const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
	return path;
}

/* Lineup from an M3U through the real importer. */
static void seed_lineup(struct fixture *f, const char *m3u)
{
	struct ptv_import_m3u_opts mo = {.allow_file = true, .name = "iptv"};
	struct ptv_import_report rep;

	mo.location = write_file(f, "lineup.m3u", m3u, strlen(m3u));
	assert_int_equal(ptv_sources_import_m3u(f->s, &mo, &rep), 0);
}

static const char *LINEUP =
	"#EXTM3U\n"
	"#EXTINF:-1 tvg-id=\"a.tv\" tvg-chno=\"1\",Alpha\nhttp://x/1\n"
	"#EXTINF:-1 tvg-name=\"Bee\" tvg-chno=\"2\",Channel Two\nhttp://x/2\n"
	"#EXTINF:-1 tvg-chno=\"3\",Sea  Channel\nhttp://x/3\n"
	"#EXTINF:-1 tvg-chno=\"4\",No Guide\nhttp://x/4\n"
	"#EXTINF:-1 tvg-id=\"shift.tv\" tvg-shift=\"2\" tvg-chno=\"5\",Shifted\n"
	"http://x/5\n";

/* An XMLTV time @rel seconds from now, on an hour boundary (so dummy blocks line up). */
static const char *ts(struct fixture *f, int64_t rel)
{
	static char bufs[16][24];
	static unsigned n;
	char *b = bufs[n++ % 16];

	epg_format_time(f->now / HOUR * HOUR + rel, b);
	return b;
}

static int64_t at(struct fixture *f, int64_t rel)
{
	return f->now / HOUR * HOUR + rel;
}

static int import_xml(struct fixture *f, const char *xml, struct ptv_epg_report *rep)
{
	struct ptv_epg_import_opts io = {.name = "guide", .allow_file = true};

	io.location = write_file(f, "guide.xml", xml, strlen(xml));
	return ptv_epg_import(f->s, &f->o, &io, rep);
}

/* ---- reading programmes back from the store ---- */

struct prog {
	int64_t start, stop;
	char title[128];
	uint8_t flags;
};

struct list_ctx {
	struct ptv_store *s;
	const char *number;
	struct prog v[64];
	size_t n;
	enum epg_how how;
};

static int list_txn(MDB_txn *txn, void *arg)
{
	struct list_ctx *l = arg;
	MDB_val k = {strlen(l->number), (void *)l->number}, v;
	uint8_t key[EPG_PKEY_LEN];
	struct ptv_chanrec r;
	MDB_cursor *cur;
	uint32_t id, gkey;
	int rc;

	assert_int_equal(mdb_get(txn, ptv_store_dbi(l->s, PTV_DB_NUMBERS), &k, &v), 0);
	id = epg_be32(v.mv_data);
	k = (MDB_val){4, &(uint32_t){htonl(id)}};
	assert_int_equal(mdb_get(txn, ptv_store_dbi(l->s, PTV_DB_CHANNELS), &k, &v), 0);
	assert_int_equal(ptv_chanrec_decode(v.mv_data, v.mv_size, &r), 0);
	if (epg_resolve(txn, l->s, id, r.tvg_id.p, r.tvg_name.p, r.name.p, &gkey, &l->how))
		return 0;
	assert_int_equal(mdb_cursor_open(txn, ptv_store_dbi(l->s, PTV_DB_PROGRAMMES), &cur), 0);
	epg_pkey(key, gkey, 0);
	k = (MDB_val){sizeof(key), key};
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && epg_pkey_gkey(k.mv_data) == gkey && l->n < 64;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct prog *p = &l->v[l->n++];
		struct epg_rec rec;
		struct epg_rec_field fl;

		assert_int_equal(epg_rec_open(v.mv_data, v.mv_size, &rec), 0);
		p->start = (int64_t)epg_pkey_start(k.mv_data);
		p->stop = p->start + rec.duration;
		p->flags = rec.flags;
		while (epg_rec_next(&rec, &fl)) {
			if (fl.type == EPG_F_TITLE && !p->title[0])
				snprintf(p->title, sizeof(p->title), "%s", epg_field_str(&fl, 1));
		}
	}
	mdb_cursor_close(cur);
	return 0;
}

static struct list_ctx *programmes(struct fixture *f, const char *number)
{
	static struct list_ctx l;

	memset(&l, 0, sizeof(l));
	l.s = f->s;
	l.number = number;
	assert_int_equal(ptv_store_read(f->s, list_txn, &l), 0);
	return &l;
}

/* ---- rendering ---- */

static struct ptv_lineup *lineup_of(struct fixture *f)
{
	struct lineup_build_opts lo = {.store = f->s,
				       .base_url = "http://127.0.0.1:1",
				       .friendly_name = "T",
				       .tuners = 2,
				       .device_max = 1000};
	struct ptv_lineup *l = NULL;

	assert_int_equal(ptv_lineup_build(&lo, &l), 0);
	return l;
}

static char *render(struct fixture *f, bool gzip, size_t budget, size_t *len)
{
	struct ptv_lineup *l = lineup_of(f);
	struct ptv_epg_render *r = NULL;
	struct ptv_buf out = {0};
	int ret;

	assert_int_equal(ptv_epg_render_new(f->s, l, &f->o, f->now, gzip, &r), 0);
	for (unsigned i = 0; (ret = ptv_epg_render_step(r, &out, budget)) == 0; i++)
		assert_true(i < 10000000);
	assert_int_equal(ret, 1);
	ptv_epg_render_free(r);
	ptv_lineup_unref(l);
	ptv_buf_putc(&out, '\0');
	*len = out.len - 1;
	return out.data;
}

/* ---- times and helpers ---- */

static void test_time(void **state)
{
	int64_t t;

	assert_int_equal(epg_parse_time("20250301183000 +0100", &t), 0);
	assert_int_equal(t, 1740850200); /* 17:30 UTC */
	assert_int_equal(epg_parse_time("20250301183000", &t), 0);
	assert_int_equal(t, 1740853800); /* no zone: UTC */
	assert_int_equal(epg_parse_time("202503011830 -0500", &t), 0);
	assert_int_equal(t, 1740853800 + 5 * HOUR);
	assert_int_equal(epg_parse_time("200006031633", &t), 0);
	assert_int_equal(t, 960049980);
	assert_int_equal(epg_parse_time("20010829000500 BST", &t), 0);
	assert_int_equal(t, 999039900); /* 2001-08-28 23:05 UTC */
	assert_int_equal(epg_parse_time("20010829000500 bst", &t), 0);
	assert_int_equal(epg_parse_time("20250301183000+05:30", &t), 0);
	assert_int_equal(t, 1740853800 - 5 * HOUR - 30 * 60);
	assert_int_equal(epg_parse_time("20250301183000 +01", &t), 0);
	assert_int_equal(t, 1740850200);
	assert_int_equal(epg_parse_time("20250301183000 Z", &t), 0);
	assert_int_equal(epg_parse_time("20250301183000 XYZ", &t), 1); /* unknown: UTC */
	assert_int_equal(t, 1740853800);
	assert_int_equal(epg_parse_time("2025", &t), 0);
	assert_int_equal(t, 1735689600);
	assert_int_equal(epg_parse_time("20240229000000", &t), 0); /* leap day */
	assert_int_equal(epg_parse_time("20250229000000", &t), -EINVAL);
	assert_int_equal(epg_parse_time("20251301000000", &t), -EINVAL);
	assert_int_equal(epg_parse_time("20250101240000", &t), -EINVAL);
	assert_int_equal(epg_parse_time("2025010112300", &t), -EINVAL); /* odd digit count */
	assert_int_equal(epg_parse_time("", &t), -EINVAL);
	assert_int_equal(epg_parse_time("20250101123000 +0100 x", &t), -EINVAL);
	assert_int_equal(epg_parse_time("20250101123000 +2500", &t), -EINVAL);
	assert_int_equal(epg_parse_time("garbage", &t), -EINVAL);
}

static void test_format_time(void **state)
{
	char b[21];

	epg_format_time(1740850200, b);
	assert_string_equal(b, "20250301173000 +0000");
	epg_format_time(0, b);
	assert_string_equal(b, "19700101000000 +0000");
	epg_format_time(951782400 + 86399, b); /* 2000-02-29 23:59:59 */
	assert_string_equal(b, "20000229235959 +0000");
	for (int64_t t = 0; t < 4102444800; t += 86400 * 37 + 3599) {
		int64_t back;

		epg_format_time(t, b);
		assert_int_equal(epg_parse_time(b, &back), 0);
		assert_int_equal(back, t);
	}
}

static void test_helpers(void **state)
{
	char out[64];

	assert_true(epg_xmltv_ns_ok("1.0.0/1"));
	assert_true(epg_xmltv_ns_ok(" 2 . 9 . 0/1"));
	assert_true(epg_xmltv_ns_ok("0.0."));
	assert_true(epg_xmltv_ns_ok(".3."));
	assert_false(epg_xmltv_ns_ok(".."));
	assert_false(epg_xmltv_ns_ok("S01E02"));
	assert_false(epg_xmltv_ns_ok("1.2"));
	assert_false(epg_xmltv_ns_ok("1.2.3.4"));
	assert_true(epg_norm_date("2022-04-01 13:00:00", out, sizeof(out)));
	assert_string_equal(out, "20220401");
	assert_true(epg_norm_date("1999", out, sizeof(out)));
	assert_string_equal(out, "1999");
	assert_true(epg_norm_date("20220401120000 +0000", out, sizeof(out)));
	assert_string_equal(out, "20220401");
	assert_false(epg_norm_date("soon", out, sizeof(out)));
	assert_int_equal(epg_fold("  BBC\tOne   HD ", out, sizeof(out)), 10);
	assert_string_equal(out, "bbc one hd");
	assert_int_equal(epg_fold(" \t ", out, sizeof(out)), 0);
}

static void test_record_roundtrip(void **state)
{
	struct epg_prog p = {0};
	struct ptv_buf out = {0};
	struct epg_rec r;
	struct epg_rec_field fl;
	uint8_t order[8];
	unsigned n = 0;

	/* Fields out of DTD order come back sorted; same-type order is kept. */
	ptv_buf_append(&p.data, "c\0", 2);
	p.fields[p.n_fields++] = (struct epg_pfield){EPG_F_CATEGORY, 0, (uint32_t)p.data.len, 5};
	ptv_buf_append(&p.data, "en\0A\0", 5);
	p.fields[p.n_fields++] = (struct epg_pfield){EPG_F_TITLE, 0, (uint32_t)p.data.len, 5};
	ptv_buf_append(&p.data, "en\0T\0", 5);
	p.fields[p.n_fields++] = (struct epg_pfield){EPG_F_CATEGORY, 0, (uint32_t)p.data.len, 5};
	ptv_buf_append(&p.data, "en\0B\0", 5);
	p.fields[p.n_fields++] =
		(struct epg_pfield){EPG_F_CREDIT, EPG_C_ACTOR, (uint32_t)p.data.len, 6};
	ptv_buf_append(&p.data, "Ann\0r\0", 6);
	p.fields[p.n_fields++] =
		(struct epg_pfield){EPG_F_CREDIT, EPG_C_DIRECTOR, (uint32_t)p.data.len, 6};
	ptv_buf_append(&p.data, "Bob\0\0\0", 6);
	assert_int_equal(epg_rec_encode(&p, 1800, &out), 0);
	assert_int_equal(epg_rec_open(out.data, out.len, &r), 0);
	assert_int_equal(r.duration, 1800);
	assert_int_equal(r.n_fields, 5);
	while (epg_rec_next(&r, &fl))
		order[n++] = (uint8_t)(fl.type * 16 + fl.sub);
	assert_int_equal(n, 5);
	assert_int_equal(order[0], EPG_F_TITLE * 16);
	assert_int_equal(order[1], EPG_F_CREDIT * 16 + EPG_C_DIRECTOR);
	assert_int_equal(order[2], EPG_F_CREDIT * 16 + EPG_C_ACTOR);
	assert_int_equal(order[3], EPG_F_CATEGORY * 16);
	assert_int_equal(order[4], EPG_F_CATEGORY * 16);
	/* A truncated record ends the walk instead of reading past it. */
	assert_int_equal(epg_rec_open(out.data, out.len - 3, &r), 0);
	n = 0;
	while (epg_rec_next(&r, &fl))
		n++;
	assert_int_equal(n, 4);
	assert_int_equal(epg_rec_open(out.data, 4, &r), -PTV_ERR_PARSE);
	ptv_buf_free(&out);
	ptv_buf_free(&p.data);
}

/* ---- the reader ---- */

struct counts {
	uint64_t channels, programmes, fields, titles;
	char last_title[256];
	char last_desc[512];
	int64_t last_start, last_stop;
	char last_channel[64];
};

static int count_chan(struct epg_chan *c, void *arg)
{
	((struct counts *)arg)->channels++;
	return 0;
}

static int count_prog(struct epg_prog *p, void *arg)
{
	struct counts *c = arg;

	c->programmes++;
	c->fields += p->n_fields;
	c->titles += p->has_title;
	c->last_start = p->start;
	c->last_stop = p->stop;
	snprintf(c->last_channel, sizeof(c->last_channel), "%s", p->channel);
	for (unsigned i = 0; i < p->n_fields; i++) {
		const char *s = p->data.data + p->fields[i].off;

		if (p->fields[i].type == EPG_F_TITLE)
			snprintf(c->last_title, sizeof(c->last_title), "%s", s + strlen(s) + 1);
		if (p->fields[i].type == EPG_F_DESC)
			snprintf(c->last_desc, sizeof(c->last_desc), "%s", s + strlen(s) + 1);
	}
	return 0;
}

static const struct epg_parse_ops count_ops = {count_chan, count_prog};

static int parse_str(const char *xml, struct counts *c, struct epg_parse_stats *st)
{
	memset(c, 0, sizeof(*c));
	memset(st, 0, sizeof(*st));
	return epg_parse_mem(xml, strlen(xml), &count_ops, c, st);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *data;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
	data[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return data;
}

static const char *shared_dir(void)
{
	static char dir[1024];
	const char *d = getenv("PTV_SHARED_DATA");

	snprintf(dir, sizeof(dir), "%s/xmltv", d ? d : "../shared/data");
	return dir;
}

/* Expected programme counts (grep -c '<programme' on each file). */
static const struct {
	const char *file;
	uint64_t programmes;
} shared_files[] = {
	{"cereslabx-us-tv-epg_epg.xml", 10848},
	{"rakuten-fi-epg_epg.xml", 9141},
	{"xmltv-t_test.xml", 1},
	{"fluxiontv-epg_xtream-codes_epg.xml", 2345},
	{"epg-tc_epg_oneline_es.xml", 1101},
	{"epgmn_weekly_epg_updated_mongolian.xml", 2215},
	{"xmltv-t_empty.xml", 0},
	{"xmltv-t_attrs.xml", 1},
	{"xmltv-t_x-whatever.xml", 2},
	{"xmltv-t_dups.xml", 7},
	{"xmltv-t_clump.xml", 2},
	{"jellyfin_notitle.xml", 1},
	{"jellyfin_emptycategory.xml", 1},
};

static void test_parse_shared_files(void **state)
{
	DIR *d = opendir(shared_dir());
	struct dirent *de;
	unsigned files = 0;

	if (!d) {
		print_message("no shared data at %s: skipped\n", shared_dir());
		skip();
	}
	while ((de = readdir(d))) {
		size_t nlen = strlen(de->d_name), len;
		struct epg_parse_stats st = {0};
		struct counts c = {0};
		char path[2048], *data;
		int ret;

		if (nlen < 4 || strcmp(de->d_name + nlen - 4, ".xml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", shared_dir(), de->d_name);
		data = slurp(path, &len);
		ret = epg_parse_mem(data, len, &count_ops, &c, &st);
		if (ret)
			print_message("%s: %d %s\n", de->d_name, ret, st.error);
		assert_int_equal(ret, 0);
		for (size_t i = 0; i < PTV_ARRAY_SIZE(shared_files); i++) {
			if (!strcmp(de->d_name, shared_files[i].file))
				assert_int_equal(c.programmes, shared_files[i].programmes);
		}
		assert_int_equal(st.bytes, len);
		files++;
		free(data);
	}
	closedir(d);
	assert_true(files >= 19);
}

static void test_parse_fields(void **state)
{
	char path[2048], *data;
	struct epg_parse_stats st;
	struct counts c;
	size_t len;

	snprintf(path, sizeof(path), "%s/xmltv-t_amp.xml", shared_dir());
	if (access(path, R_OK))
		skip();
	data = slurp(path, &len);
	memset(&c, 0, sizeof(c));
	memset(&st, 0, sizeof(st));
	assert_int_equal(epg_parse_mem(data, len, &count_ops, &c, &st), 0);
	free(data);
	assert_int_equal(c.programmes, 2);
	/* Entities decoded exactly once. */
	assert_int_equal(parse_str("<tv><programme start=\"20250101000000\" channel=\"a\">"
				   "<title>&amp;amp; &lt;&#233;&#x4E2D;</title>"
				   "<desc><![CDATA[<b>bold</b> & more]]></desc></programme></tv>",
				   &c, &st),
			 0);
	assert_string_equal(c.last_title, "&amp; <\xc3\xa9\xe4\xb8\xad");
	assert_string_equal(c.last_desc, "<b>bold</b> & more");
	/* Attributes in any order, blanks around values, a BOM. */
	assert_int_equal(parse_str("\xef\xbb\xbf<?xml version=\"1.0\"?><tv><programme "
				   "channel=\" a.b \" stop=\" 20250101010000 +0000\" "
				   "start=\"20250101000000 +0000\"><title> x </title></programme>"
				   "</tv>",
				   &c, &st),
			 0);
	assert_string_equal(c.last_channel, "a.b");
	assert_string_equal(c.last_title, "x");
	assert_int_equal(c.last_stop - c.last_start, 3600);
	/* Leading junk (Xtream panels) is skipped and counted. */
	assert_int_equal(parse_str("This XML file does not appear to have any style information "
				   "associated with it.\n<tv><channel id=\"a\"><display-name>A"
				   "</display-name></channel></tv>",
				   &c, &st),
			 0);
	assert_int_equal(c.channels, 1);
	assert_int_equal(st.errors[PTV_EPG_ERR_LEADING_GARBAGE], 1);
	/* Bad entries are counted and dropped or repaired, not fatal. */
	assert_int_equal(
		parse_str("<tv><programme start=\"soon\" channel=\"a\"><title>x</title>"
			  "</programme><programme start=\"20250101000000\"><title>y</title>"
			  "</programme><programme start=\"20250101000000\" stop=\"2024\" "
			  "channel=\"a\"><desc/><category></category><episode-num "
			  "system=\"xmltv_ns\">S01E02</episode-num><length units=\"days\">"
			  "1</length></programme></tv>",
			  &c, &st),
		0);
	assert_int_equal(c.programmes, 1);
	assert_int_equal(c.titles, 0);
	assert_int_equal(c.last_stop, -1);
	assert_int_equal(st.errors[PTV_EPG_ERR_BAD_START], 1);
	assert_int_equal(st.errors[PTV_EPG_ERR_NO_CHANNEL], 1);
	assert_int_equal(st.errors[PTV_EPG_ERR_BAD_STOP], 1);
	assert_int_equal(st.errors[PTV_EPG_ERR_NO_TITLE], 1);
	assert_int_equal(st.errors[PTV_EPG_ERR_EMPTY], 2);
	assert_int_equal(st.errors[PTV_EPG_ERR_BAD_EPISODE], 1);
	assert_int_equal(st.errors[PTV_EPG_ERR_BAD_VALUE], 1);
	assert_int_equal(c.fields, 1); /* the episode, kept as onscreen */
}

static void test_parse_caps(void **state)
{
	struct epg_parse_stats st;
	struct ptv_buf b = {0};
	struct counts c;

	/* A 100 KB title is cut at PTV_EPG_MAX_FIELD on a UTF-8 boundary. */
	ptv_buf_puts(&b, "<tv><programme start=\"20250101000000\" channel=\"a\"><title>x");
	for (int i = 0; i < 50000; i++)
		ptv_buf_puts(&b, "\xc3\xa9");
	ptv_buf_puts(&b, "</title>");
	for (int i = 0; i < 300; i++)
		ptv_buf_puts(&b, "<category>c</category>");
	ptv_buf_puts(&b, "</programme></tv>");
	ptv_buf_putc(&b, '\0');
	assert_int_equal(parse_str(b.data, &c, &st), 0);
	assert_true(strlen(c.last_title) > 0);
	assert_int_equal(st.errors[PTV_EPG_ERR_TOO_LONG], 1);
	assert_int_equal(c.fields, PTV_EPG_MAX_FIELDS);
	assert_int_equal(st.errors[PTV_EPG_ERR_TOO_MANY], 300 + 1 - PTV_EPG_MAX_FIELDS);
	ptv_buf_free(&b);
}

static char *billion_laughs(void)
{
	struct ptv_buf b = {0};

	ptv_buf_puts(&b, "<?xml version=\"1.0\"?>\n<!DOCTYPE tv [\n<!ENTITY lol0 \"lol\">\n");
	for (int i = 1; i < 10; i++) {
		ptv_buf_printf(&b, "<!ENTITY lol%d \"", i);
		for (int j = 0; j < 10; j++)
			ptv_buf_printf(&b, "&lol%d;", i - 1);
		ptv_buf_puts(&b, "\">\n");
	}
	ptv_buf_puts(&b, "]>\n<tv><programme start=\"20250101000000\" channel=\"a\"><title>&lol9;"
			 "</title></programme></tv>\n");
	ptv_buf_putc(&b, '\0');
	return b.data;
}

static char *deep_nesting(unsigned depth)
{
	struct ptv_buf b = {0};

	ptv_buf_puts(&b, "<tv>");
	for (unsigned i = 0; i < depth; i++)
		ptv_buf_puts(&b, "<a>");
	for (unsigned i = 0; i < depth; i++)
		ptv_buf_puts(&b, "</a>");
	ptv_buf_puts(&b, "</tv>");
	ptv_buf_putc(&b, '\0');
	return b.data;
}

static void test_parse_hostile(void **state)
{
	struct fixture *f = *state;
	struct epg_parse_stats st;
	struct counts c;
	char xml[1024], *big;
	const char *canary = write_file(f, "canary.txt", "CANARY-SECRET\n", 14);

	big = billion_laughs();
	assert_int_equal(parse_str(big, &c, &st), -PTV_ERR_PARSE);
	free(big);
	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE tv [<!ENTITY xxe SYSTEM \"file://%s\">]><tv><programme "
		 "start=\"20250101000000\" channel=\"a\"><title>&xxe;</title></programme></tv>",
		 canary);
	assert_int_equal(parse_str(xml, &c, &st), -PTV_ERR_PARSE);
	assert_null(strstr(c.last_title, "CANARY"));
	assert_non_null(strstr(st.error, "entit"));
	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE tv [<!ENTITY %% p SYSTEM \"file://%s\"> %%p;]><tv></tv>", canary);
	assert_int_equal(parse_str(xml, &c, &st), -PTV_ERR_PARSE);
	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE tv [<!ENTITY net SYSTEM \"http://169.254.169.254/latest\">]><tv>"
		 "<channel id=\"a\"><display-name>&net;</display-name></channel></tv>");
	assert_int_equal(parse_str(xml, &c, &st), -PTV_ERR_PARSE);
	/* An external DTD is never loaded (no DTDLOAD): the document itself is fine. */
	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE tv SYSTEM \"file://%s\"><tv><channel id=\"a\"><display-name>A"
		 "</display-name></channel></tv>",
		 canary);
	assert_int_equal(parse_str(xml, &c, &st), 0);
	/* ...but an entity it would have declared is refused. */
	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE tv SYSTEM \"http://169.254.169.254/x.dtd\"><tv><channel id=\"a\">"
		 "<display-name>&ext;</display-name></channel></tv>");
	assert_true(parse_str(xml, &c, &st) < 0);
	/* Quadratic blow-up: one big entity referenced many times. */
	big = malloc(200000);
	assert_non_null(big);
	strcpy(big, "<!DOCTYPE tv [<!ENTITY a \"");
	memset(big + strlen(big), 'x', 50000);
	strcpy(big + 26 + 50000, "\">]><tv><channel id=\"a\"><display-name>");
	for (int i = 0; i < 5000; i++)
		strcat(big + 26 + 50000, "&a;");
	strcat(big, "</display-name></channel></tv>");
	assert_int_equal(parse_str(big, &c, &st), -PTV_ERR_PARSE);
	free(big);
	/* 10^5 nesting: stopped at our depth cap (libxml2's own is 256). */
	big = deep_nesting(100000);
	assert_true(parse_str(big, &c, &st) < 0);
	free(big);
	big = deep_nesting(PTV_EPG_MAX_DEPTH + 5);
	assert_int_equal(parse_str(big, &c, &st), -PTV_ERR_LIMIT);
	free(big);
	/* Not XMLTV, malformed, truncated, empty. */
	assert_int_equal(parse_str("<html><body>502 Bad Gateway</body></html>", &c, &st),
			 -PTV_ERR_PARSE);
	assert_int_equal(parse_str("<tv><programme start=\"20250101000000\" channel=\"a\">"
				   "<title>x</title></programme><programme",
				   &c, &st),
			 -PTV_ERR_PARSE);
	assert_int_equal(c.programmes, 1); /* seen before the error: the importer aborts */
	assert_int_equal(parse_str("<tv><a></b></tv>", &c, &st), -PTV_ERR_PARSE);
	assert_int_equal(parse_str("", &c, &st), -PTV_ERR_PARSE);
	assert_int_equal(parse_str("not xml at all", &c, &st), -PTV_ERR_PARSE);
}

/* ---- the importer ---- */

static void test_import_mapping(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	struct list_ctx *l;
	char xml[8192];

	seed_lineup(f, LINEUP);
	snprintf(xml, sizeof(xml),
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n"
		 "<tv>\n"
		 "<channel id=\"A.TV\"><display-name>Whatever</display-name></channel>\n"
		 "<channel id=\"b\"><display-name>  bee </display-name></channel>\n"
		 "<channel id=\"c\"><display-name>x</display-name>"
		 "<display-name>SEA CHANNEL</display-name></channel>\n"
		 "<channel id=\"z\"><display-name>Zed</display-name></channel>\n"
		 "<channel id=\"shift.tv\"><display-name>S</display-name></channel>\n"
		 "<programme start=\"%s\" stop=\"%s\" "
		 "channel=\"A.TV\"><title>a1</title></programme>\n"
		 "<programme start=\"%s\" stop=\"%s\" "
		 "channel=\"A.TV\"><title>a2</title></programme>\n"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"b\"><title>b1</title></programme>\n"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"c\"><title>c1</title></programme>\n"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"z\"><title>z1</title></programme>\n"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"shift.tv\"><title>s1</title>"
		 "</programme>\n"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"nochan\"><title>n1</title>"
		 "</programme>\n</tv>\n",
		 ts(f, 0), ts(f, HOUR), ts(f, HOUR), ts(f, 2 * HOUR), ts(f, 0), ts(f, HOUR),
		 ts(f, 0), ts(f, HOUR), ts(f, 0), ts(f, HOUR), ts(f, 0), ts(f, HOUR), ts(f, 0),
		 ts(f, HOUR));
	assert_int_equal(import_xml(f, xml, &rep), 0);
	assert_int_equal(rep.programmes_in, 7);
	assert_int_equal(rep.programmes, 5);
	assert_int_equal(rep.unmapped, 2); /* z: its <channel> matched nothing; nochan: never */
	assert_int_equal(rep.channels, 6);
	assert_int_equal(rep.channels_kept, 4);
	l = programmes(f, "1");
	assert_int_equal(l->how, EPG_HOW_TVG_ID);
	assert_int_equal(l->n, 2);
	assert_string_equal(l->v[0].title, "a1");
	assert_int_equal(l->v[0].start, at(f, 0));
	assert_int_equal(l->v[1].stop, at(f, 2 * HOUR));
	l = programmes(f, "2");
	assert_int_equal(l->how, EPG_HOW_TVG_NAME);
	assert_string_equal(l->v[0].title, "b1");
	l = programmes(f, "3");
	assert_int_equal(l->how, EPG_HOW_NAME);
	assert_string_equal(l->v[0].title, "c1");
	l = programmes(f, "4");
	assert_int_equal(l->how, EPG_HOW_NONE);
	assert_int_equal(l->n, 0);
	/* Manual override: channel 4 takes z (after the next import keeps z), 1 is turned off. */
	assert_int_equal(ptv_epg_map_set(f->s, "4", "z"), 0);
	assert_int_equal(ptv_epg_map_set(f->s, "1", ""), 0);
	assert_int_equal(ptv_epg_map_set(f->s, "99", "z"), -ENOENT);
	assert_int_equal(import_xml(f, xml, &rep), 0);
	assert_int_equal(rep.programmes, 4); /* z now; A.TV (off) no more */
	l = programmes(f, "4");
	assert_int_equal(l->how, EPG_HOW_MANUAL);
	assert_string_equal(l->v[0].title, "z1");
	l = programmes(f, "1");
	assert_int_equal(l->how, EPG_HOW_OFF);
	assert_int_equal(l->n, 0);
	assert_int_equal(ptv_epg_map_set(f->s, "1", NULL), 0);
	assert_int_equal(ptv_epg_map_set(f->s, "4", NULL), 0);
}

static void test_import_times(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_import_opts io = {
		.name = "guide", .allow_file = true, .has_shift = true, .shift_h = -1.5};
	struct ptv_epg_report rep;
	struct list_ctx *l;
	char xml[4096], local[32], nosec[32];
	int64_t base = at(f, 0);

	seed_lineup(f, LINEUP);
	/* +0200 local time, a start without seconds, an unknown zone (taken as UTC). */
	epg_format_time(base + 2 * HOUR, local);
	memcpy(local + 14, " +0200", 7);
	epg_format_time(base + 3 * HOUR, nosec);
	memmove(nosec + 12, nosec + 14, 7);
	snprintf(xml, sizeof(xml),
		 "<tv><programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title>p1</title>"
		 "</programme><programme start=\"%s\" channel=\"a.tv\"><title>p2</title>"
		 "</programme><programme start=\"%.14s XYZ\" channel=\"a.tv\"><title>p3</title>"
		 "<length units=\"minutes\">45</length></programme></tv>",
		 local, nosec, nosec, ts(f, 5 * HOUR));
	io.location = write_file(f, "guide.xml", xml, strlen(xml));
	assert_int_equal(ptv_epg_import(f->s, &f->o, &io, &rep), 0);
	assert_int_equal(rep.errors[PTV_EPG_ERR_UNKNOWN_TZ], 1);
	l = programmes(f, "1");
	assert_int_equal(l->n, 3);
	/* Source shift -1.5 h applies to all of them. */
	assert_int_equal(l->v[0].start, base - 90 * 60);
	assert_int_equal(l->v[0].stop, base + 3 * HOUR - 90 * 60);
	/* No stop: the next programme's start (guessed). */
	assert_int_equal(l->v[1].start, base + 3 * HOUR - 90 * 60);
	assert_int_equal(l->v[1].stop, base + 5 * HOUR - 90 * 60);
	assert_true(l->v[1].flags & EPG_P_STOP_GUESSED);
	/* The last one: its <length>. */
	assert_int_equal(l->v[2].stop - l->v[2].start, 45 * 60);
	assert_false(l->v[2].flags & EPG_P_STOP_GUESSED);
	assert_int_equal(rep.stop_guessed, 1);
}

static void test_import_stops_overlaps_dups(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	struct list_ctx *l;
	char xml[4096];

	seed_lineup(f, LINEUP);
	/* Out of order, overlapping, duplicated, and a last programme without a stop. */
	snprintf(xml, sizeof(xml),
		 "<tv><programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title>third</title>"
		 "</programme>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title>first</title>"
		 "</programme>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title>second</title>"
		 "</programme>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title>first again</title>"
		 "</programme>"
		 "<programme start=\"%s\" channel=\"a.tv\"><title>last</title></programme></tv>",
		 ts(f, 2 * HOUR), ts(f, 3 * HOUR), ts(f, 0), ts(f, 90 * 60), ts(f, HOUR),
		 ts(f, 2 * HOUR), ts(f, 0), ts(f, HOUR), ts(f, 30 * HOUR));
	assert_int_equal(import_xml(f, xml, &rep), 0);
	assert_int_equal(rep.errors[PTV_EPG_ERR_DUPLICATE], 1);
	assert_int_equal(rep.errors[PTV_EPG_ERR_OVERLAP], 1);
	assert_int_equal(rep.stop_guessed, 1);
	l = programmes(f, "1");
	assert_int_equal(l->n, 4);
	assert_string_equal(l->v[0].title, "first"); /* the first of two wins */
	assert_int_equal(l->v[0].stop, at(f, HOUR)); /* cut at the next start */
	assert_string_equal(l->v[1].title, "second");
	assert_string_equal(l->v[2].title, "third");
	assert_int_equal(l->v[2].stop, at(f, 3 * HOUR));
	/* More than 24 h after the previous one ended: the default length. */
	assert_int_equal(l->v[3].stop - l->v[3].start, PTV_EPG_DEFAULT_LENGTH_S);
}

static void test_import_interleaved_and_past(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	char xml[4096];

	seed_lineup(f, LINEUP);
	/* Programmes before their <channel>: kept if it then matches by name, dropped if not. */
	snprintf(xml, sizeof(xml),
		 "<tv><programme start=\"%s\" stop=\"%s\" channel=\"x1\"><title>kept</title>"
		 "</programme>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"x2\"><title>dropped</title>"
		 "</programme>"
		 "<channel id=\"x1\"><display-name>Bee</display-name></channel>"
		 "<channel id=\"x2\"><display-name>Nobody</display-name></channel>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"x1\"><title>old</title>"
		 "</programme></tv>",
		 ts(f, 0), ts(f, HOUR), ts(f, 0), ts(f, HOUR), ts(f, -3 * 86400),
		 ts(f, -3 * 86400 + HOUR));
	assert_int_equal(import_xml(f, xml, &rep), 0);
	assert_int_equal(rep.programmes, 1);
	assert_int_equal(rep.unmapped, 1);
	assert_int_equal(rep.past, 1);
	assert_string_equal(programmes(f, "2")->v[0].title, "kept");
}

static uint64_t guide_version(struct fixture *f)
{
	return ptv_store_version(f->s, "guide_version");
}

static void good_guide(struct fixture *f, char *xml, size_t len, unsigned n)
{
	size_t off = (size_t)snprintf(xml, len, "<tv>");

	for (unsigned i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(xml + off, len - off,
					"<programme start=\"%s\" stop=\"%s\" channel=\"a.tv\">"
					"<title>Show %u</title><desc>Desc %u</desc></programme>",
					ts(f, (int64_t)i * HOUR), ts(f, (int64_t)(i + 1) * HOUR), i,
					i);
	snprintf(xml + off, len - off, "</tv>");
}

static void assert_old_guide(struct fixture *f, uint64_t version)
{
	struct list_ctx *l = programmes(f, "1");

	assert_int_equal(guide_version(f), version);
	assert_int_equal(l->n, 3);
	assert_string_equal(l->v[2].title, "Show 2");
}

static void test_import_failures_keep_guide(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	char xml[8192], *big;
	uint64_t v;

	seed_lineup(f, LINEUP);
	good_guide(f, xml, sizeof(xml), 3);
	assert_int_equal(import_xml(f, xml, &rep), 0);
	v = guide_version(f);
	/* Malformed halfway: programmes were written in the transaction, then aborted. */
	good_guide(f, xml, sizeof(xml), 10);
	xml[strlen(xml) - 200] = '\0';
	assert_int_equal(import_xml(f, xml, &rep), -PTV_ERR_PARSE);
	assert_non_null(strstr(rep.error, "line"));
	assert_old_guide(f, v);
	big = billion_laughs();
	assert_int_equal(import_xml(f, big, &rep), -PTV_ERR_PARSE);
	free(big);
	assert_old_guide(f, v);
	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE tv [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><tv><programme "
		 "start=\"%s\" channel=\"a.tv\"><title>&xxe;</title></programme></tv>",
		 ts(f, 0));
	assert_int_equal(import_xml(f, xml, &rep), -PTV_ERR_PARSE);
	assert_old_guide(f, v);
	big = deep_nesting(100000);
	assert_true(import_xml(f, big, &rep) < 0);
	free(big);
	assert_old_guide(f, v);
	/* An empty <tv/> from a source that had programmes is a provider hiccup. */
	assert_int_equal(import_xml(f, "<tv></tv>", &rep), -PTV_ERR_PARSE);
	assert_old_guide(f, v);
	/* The failure is recorded on the source, for the scheduler. */
	assert_int_equal(import_xml(f, "<html/>", &rep), -PTV_ERR_PARSE);
	assert_int_not_equal(rep.source_id, 0);
	assert_old_guide(f, v);
}

static void test_import_size_cap_gzip_bomb(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_import_opts io = {.name = "guide", .allow_file = true};
	struct ptv_epg_report rep;
	char xml[8192], path[256];
	gzFile gz;
	uint64_t v;

	seed_lineup(f, LINEUP);
	good_guide(f, xml, sizeof(xml), 3);
	assert_int_equal(import_xml(f, xml, &rep), 0);
	v = guide_version(f);
	/* 64 MiB of blanks in a ~64 KiB .gz file, cap 1 MiB. */
	snprintf(path, sizeof(path), "%s/bomb.xml.gz", f->dir);
	gz = gzopen(path, "wb9");
	assert_non_null(gz);
	gzputs(gz, "<tv>");
	for (int i = 0; i < 1024; i++) {
		static char blanks[65536];

		memset(blanks, ' ', sizeof(blanks));
		assert_int_equal(gzwrite(gz, blanks, sizeof(blanks)), (int)sizeof(blanks));
	}
	gzputs(gz, "</tv>");
	gzclose(gz);
	f->o.max_bytes = 1u << 20;
	io.location = path;
	assert_int_equal(ptv_epg_import(f->s, &f->o, &io, &rep), -EFBIG);
	assert_non_null(strstr(rep.error, "guide_max_mb"));
	assert_old_guide(f, v);
	/* A good .gz guide imports. */
	snprintf(path, sizeof(path), "%s/good.xml.gz", f->dir);
	gz = gzopen(path, "wb");
	good_guide(f, xml, sizeof(xml), 4);
	gzputs(gz, xml);
	gzclose(gz);
	assert_int_equal(ptv_epg_import(f->s, &f->o, &io, &rep), 0);
	assert_int_equal(programmes(f, "1")->n, 4);
}

static void test_import_map_full(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	struct ptv_buf b = {0};
	char xml[8192];
	uint64_t v;

	/* A store that cannot grow past 2 MiB. */
	ptv_store_close(f->s);
	nftw(f->data, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	f->s = store_open(f, 1u << 20, 2u << 20);
	seed_lineup(f, LINEUP);
	good_guide(f, xml, sizeof(xml), 3);
	assert_int_equal(import_xml(f, xml, &rep), 0);
	v = guide_version(f);
	ptv_buf_puts(&b, "<tv>");
	for (int i = 0; i < 5000; i++)
		ptv_buf_printf(&b,
			       "<programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title>T%d"
			       "</title><desc>%0900d</desc></programme>",
			       ts(f, (int64_t)i * 60), ts(f, (int64_t)i * 60 + 60), i, i);
	ptv_buf_puts(&b, "</tv>");
	ptv_buf_putc(&b, '\0');
	assert_int_equal(import_xml(f, b.data, &rep), -PTV_ERR_LIMIT);
	assert_old_guide(f, v);
	ptv_buf_free(&b);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	char xml[4096];

	seed_lineup(f, LINEUP);
	good_guide(f, xml, sizeof(xml), 5);
	assert_int_equal(import_xml(f, xml, &rep), 0);
	assert_int_equal(ptv_epg_prune(f->s, &f->o, f->now), 0);
	/* Two hours later with no retention: the first two have ended. */
	f->o.retention_s = 0;
	assert_int_equal(ptv_epg_prune(f->s, &f->o, at(f, 2 * HOUR)), 2);
	assert_int_equal(programmes(f, "1")->n, 3);
}

static void test_shared_files_import(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(shared_dir());
	struct dirent *de;
	unsigned files = 0;

	if (!d)
		skip();
	seed_lineup(f, LINEUP);
	f->o.retention_s = 36500u * 86400u; /* the test files are from 2000 to 2026 */
	while ((de = readdir(d))) {
		struct ptv_epg_import_opts io = {.allow_file = true};
		struct ptv_epg_report rep;
		size_t nlen = strlen(de->d_name);
		char path[2048];
		int ret;

		if (nlen < 4 || strcmp(de->d_name + nlen - 4, ".xml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", shared_dir(), de->d_name);
		io.location = path;
		ret = ptv_epg_import(f->s, &f->o, &io, &rep);
		if (ret)
			print_message("%s: %s\n", de->d_name, rep.error);
		assert_int_equal(ret, 0);
		files++;
	}
	closedir(d);
	assert_true(files >= 19);
}

/* ---- output ---- */

static void test_output(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_report rep;
	struct epg_parse_stats st = {0};
	struct counts c = {0};
	char xml[8192], *doc, *doc2, *gz;
	size_t len, len2, gzlen;
	uLongf plain_len;
	int64_t dummies;

	seed_lineup(f, LINEUP);
	snprintf(xml, sizeof(xml),
		 "<tv><channel id=\"a.tv\"><display-name>A</display-name>"
		 "<icon src=\"http://logo/a.png\"/></channel>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"a.tv\"><title lang=\"en\">News "
		 "&amp; "
		 "more</title><sub-title>Sub</sub-title><desc lang=\"en\">D</desc><credits><actor "
		 "role=\"Him\">Ann</actor><director>Bob</director></credits><date>2024-05-06"
		 "</date><category lang=\"en\">News</category><category>Series</category>"
		 "<episode-num system=\"xmltv_ns\">1.2.0/1</episode-num><episode-num "
		 "system=\"onscreen\">S02E03</episode-num><video><quality>HDTV</quality></video>"
		 "<previously-shown start=\"20240101000000\"/><new/><rating system=\"VCHIP\">"
		 "<value>TV-PG</value></rating><star-rating><value>3/5</value></star-rating>"
		 "</programme>"
		 "<programme start=\"%s\" stop=\"%s\" channel=\"shift.tv\"><title>S</title>"
		 "</programme></tv>",
		 ts(f, 0), ts(f, HOUR), ts(f, 0), ts(f, HOUR));
	assert_int_equal(import_xml(f, xml, &rep), 0);
	doc = render(f, false, 1u << 20, &len);
	/* Channel ids are GuideNumbers, name then number; the guide's icon fills in. */
	assert_non_null(strstr(doc, "<channel id=\"1\">\n    <display-name>Alpha</display-name>\n"
				    "    <display-name>1</display-name>\n    <icon "
				    "src=\"http://logo/a.png\" />"));
	assert_non_null(strstr(doc, "<title lang=\"en\">News &amp; more</title>"));
	assert_non_null(strstr(doc, "<credits>\n      <director>Bob</director>\n      <actor "
				    "role=\"Him\">Ann</actor>\n    </credits>"));
	assert_non_null(strstr(doc, "<date>20240506</date>"));
	/* tvg-shift=2 on channel 5 moves its programmes by two hours. */
	assert_non_null(strstr(doc, ts(f, 2 * HOUR)));
	/* Channels 2, 3 and 4 have no programmes: dummy blocks titled with their names. */
	assert_non_null(strstr(doc, "channel=\"4\">\n    <title>No Guide</title>"));
	memset(&c, 0, sizeof(c));
	assert_int_equal(epg_parse_mem(doc, len, &count_ops, &c, &st), 0);
	assert_int_equal(c.channels, 5);
	dummies = (f->now + 24 * HOUR - at(f, 0) + HOUR - 1) / HOUR;
	assert_int_equal(c.programmes, 2 + 3 * dummies);
	/* Tiny slices give the same document. */
	doc2 = render(f, false, 1, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(doc, doc2, len);
	free(doc2);
	/* gzip decompresses to the same document. */
	gz = render(f, true, 100, &gzlen);
	assert_true(gzlen < len);
	doc2 = malloc(len + 1);
	plain_len = len + 1;
	{
		z_stream z = {0};

		assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
		z.next_in = (Bytef *)gz;
		z.avail_in = (uInt)gzlen;
		z.next_out = (Bytef *)doc2;
		z.avail_out = (uInt)plain_len;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		assert_int_equal(z.total_out, len);
		inflateEnd(&z);
	}
	assert_memory_equal(doc, doc2, len);
	free(doc2);
	free(gz);
	free(doc);
	/* Dummy off: channels without programmes have none. */
	f->o.dummy = false;
	doc = render(f, false, 1u << 20, &len);
	memset(&c, 0, sizeof(c));
	assert_int_equal(epg_parse_mem(doc, len, &count_ops, &c, &st), 0);
	assert_int_equal(c.programmes, 2);
	free(doc);
}

static void test_output_empty_store(void **state)
{
	struct fixture *f = *state;
	struct ptv_epg_render *r;
	struct ptv_buf out = {0};

	/* No lineup snapshot yet: a valid empty document. */
	assert_int_equal(ptv_epg_render_new(f->s, NULL, &f->o, f->now, false, &r), 0);
	assert_int_equal(ptv_epg_render_step(r, &out, 1 << 20), 1);
	ptv_buf_putc(&out, '\0');
	assert_non_null(strstr(out.data, "<tv "));
	assert_non_null(strstr(out.data, "</tv>\n"));
	ptv_epg_render_free(r);
	ptv_buf_free(&out);
}

static void test_report_format(void **state)
{
	struct ptv_epg_report r = {.programmes = 5, .channels = 3, .channels_kept = 2};
	char buf[1024];

	r.errors[PTV_EPG_ERR_OVERLAP] = 2;
	r.errors[PTV_EPG_ERR_NO_TITLE] = 1;
	ptv_epg_report_format(&r, buf, sizeof(buf));
	assert_non_null(strstr(buf, "5 programmes stored on 2 of 3 guide channels"));
	assert_non_null(strstr(buf, "3 entry problems"));
	assert_non_null(strstr(buf, "; no_title=1 overlap=2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_parse_shared_files),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_caps),
		cmocka_unit_test_setup_teardown(test_parse_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_stops_overlaps_dups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_interleaved_and_past, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_failures_keep_guide, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_size_cap_gzip_bomb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_files_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_empty_store, setup, teardown),
		cmocka_unit_test(test_report_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
