/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The importer's store side: the source record, the source's existing channels, and matching
 * new entries to them so identity and numbers survive refreshes.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "import_int.h"
#include "plextv/fetch.h"
#include "plextv/log.h"
#include "plextv/sources.h"
#include "plextv/redact.h"

/* ---- filters ---- */

static char **patterns_dup(const char *const *src)
{
	size_t n = 0;
	char **out;

	while (src && src[n])
		n++;
	out = ptv_xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = ptv_xstrdup(src[i]);
	return out;
}

static void patterns_free(char **p)
{
	for (size_t i = 0; p && p[i]; i++)
		free(p[i]);
	free(p);
}

int import_filters_init(struct import_filters *f, const struct ptv_import_m3u_opts *o)
{
	f->include_groups = patterns_dup(o->include_groups);
	f->exclude_groups = patterns_dup(o->exclude_groups);
	f->include_names = patterns_dup(o->include_names);
	f->exclude_names = patterns_dup(o->exclude_names);
	return 0;
}

void import_filters_free(struct import_filters *f)
{
	patterns_free(f->include_groups);
	patterns_free(f->exclude_groups);
	patterns_free(f->include_names);
	patterns_free(f->exclude_names);
	memset(f, 0, sizeof(*f));
}

static json_t *patterns_json(char **p)
{
	json_t *a = json_array();

	for (size_t i = 0; p && p[i]; i++)
		json_array_append_new(a, json_string(p[i]));
	return a;
}

/* ---- reading the playlist ---- */

static bool is_url(const char *s)
{
	return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

struct collect_sink {
	struct ptv_m3u_parser *parser;
};

static int collect_feed(const char *data, size_t len, void *ctx)
{
	struct collect_sink *cs = ctx;

	return ptv_m3u_parser_feed(cs->parser, data, len);
}

static int collect_fetch(struct import_ctx *x, struct collect_sink *cs)
{
	struct ptv_fetch_opts fo = {0};
	struct ptv_fetch_result res = {0};
	int ret;

	/* Local paths too: the fetcher handles .gz files and the size cap the same way. */
	ptv_fetch_opts_init(&fo);
	fo.url = x->location;
	fo.allow_file = x->opts->allow_file;
	fo.user_agent = x->opts->user_agent;
	ret = ptv_fetch(&fo, collect_feed, cs, &res);
	if (ret)
		snprintf(x->rep->error, sizeof(x->rep->error), "%s",
			 res.error[0] ? res.error : ptv_strerror(ret));
	ptv_fetch_result_deinit(&res);
	return ret;
}

int import_collect(struct import_ctx *x, int (*cb)(const struct ptv_m3u_entry *e, void *ctx))
{
	struct collect_sink cs = {0};
	const struct ptv_m3u_stats *st;
	int ret;

	snprintf(x->location, sizeof(x->location), "%s", x->opts->location);
	if (!is_url(x->location) && !x->opts->allow_file) {
		snprintf(x->rep->error, sizeof(x->rep->error),
			 "only http(s) URLs are allowed here");
		return -EPERM;
	}
	x->coll->base = is_url(x->location) ? x->location : NULL;
	x->coll->allow_file = x->opts->allow_file && !is_url(x->location);
	ret = ptv_m3u_parser_new(cb, x->coll, &cs.parser);
	if (ret)
		return ret;
	ret = collect_fetch(x, &cs);
	if (!ret)
		ret = ptv_m3u_parser_finish(cs.parser);
	st = ptv_m3u_parser_stats(cs.parser);
	memcpy(x->rep->errors, st->errors, sizeof(x->rep->errors));
	x->rep->errors[PTV_M3U_ERR_BAD_URL] += x->coll->bad_urls;
	snprintf(x->coll->url_tvg, sizeof(x->coll->url_tvg), "%s", st->url_tvg);
	if (!ret && st->errors[PTV_M3U_ERR_HLS_MEDIA]) {
		snprintf(x->rep->error, sizeof(x->rep->error),
			 "this is an HLS media playlist (one stream), not a channel list");
		ret = -PTV_ERR_PARSE;
	}
	ptv_m3u_parser_free(cs.parser);
	return ret;
}

/* ---- the source record ---- */

static int find_source(MDB_txn *txn, struct import_ctx *x)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, ptv_store_dbi(x->store, PTV_DB_SOURCES), &cur);

	if (rc)
		return ptv_store_err(rc);
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);

		/* A guide source may carry the same name: only playlists are ours. */
		if (o && !strcmp(json_string_value(json_object_get(o, "name")) ?: "", x->name) &&
		    !strcmp(json_string_value(json_object_get(o, "kind")) ?: "", "m3u")) {
			x->source = o;
			x->source_id = ptv_store_be32(k.mv_data);
			break;
		}
		json_decref(o);
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? ptv_store_err(rc) : 0;
}

int import_source_record(MDB_txn *txn, struct import_ctx *x)
{
	const struct ptv_import_m3u_opts *o = x->opts;
	int ret;

	if (o->name && o->name[0])
		snprintf(x->name, sizeof(x->name), "%s", o->name);
	else
		ptv_sources_derive_name(x->location, "", x->name, sizeof(x->name));
	ret = find_source(txn, x);
	if (ret)
		return ret;
	if (!x->source) {
		ret = ptv_store_next_id(txn, x->store, "source", &x->source_id);
		if (ret)
			return ret;
		x->source = json_pack("{s:i, s:s, s:s, s:i, s:i}", "id", (json_int_t)x->source_id,
				      "name", x->name, "kind", "m3u", "number_start", 1,
				      "refresh_s", 43200);
	}
	if (o->number_start)
		json_object_set_new(x->source, "number_start", json_integer(o->number_start));
	if (o->refresh_s)
		json_object_set_new(x->source, "refresh_s", json_integer(o->refresh_s));
	x->next_number = (unsigned)json_integer_value(json_object_get(x->source, "number_start"));
	if (!x->next_number)
		x->next_number = 1;
	return 0;
}

int import_source_finish(MDB_txn *txn, struct import_ctx *x)
{
	struct ptv_import_report *r = x->rep;
	json_t *errs = json_object();
	uint32_t key = htonl(x->source_id);
	double now = ptv_wall_seconds();
	int ret;

	for (int i = 0; i < PTV_M3U_ERR_COUNT; i++)
		json_object_set_new(errs, ptv_m3u_error_name(i),
				    json_integer((json_int_t)r->errors[i]));
	json_object_set_new(x->source, "location", json_string(x->location));
	json_object_set_new(x->source, "url_tvg", json_string(x->coll->url_tvg));
	json_object_set_new(x->source, "last_attempt", json_real(now));
	json_object_set_new(x->source, "last_success", json_real(now));
	json_object_set_new(x->source, "last_error", json_string(""));
	json_object_set_new(x->source, "entries", json_integer((json_int_t)r->entries));
	json_object_set_new(x->source, "channels", json_integer((json_int_t)r->channels));
	json_object_set_new(x->source, "errors", errs);
	json_object_set_new(x->source, "include_groups", patterns_json(x->filters.include_groups));
	json_object_set_new(x->source, "exclude_groups", patterns_json(x->filters.exclude_groups));
	json_object_set_new(x->source, "include_names", patterns_json(x->filters.include_names));
	json_object_set_new(x->source, "exclude_names", patterns_json(x->filters.exclude_names));
	json_object_set_new(x->source, "allow_file", json_boolean(x->opts->allow_file));
	ret = ptv_store_put_json(txn, ptv_store_dbi(x->store, PTV_DB_SOURCES), &key, sizeof(key),
				 x->source);
	return ret;
}

/* ---- existing channels and matching ---- */

static void old_index(struct import_ctx *x, size_t i)
{
	const struct ptv_chanrec *r = &x->old[i].rec;

	/* First holder of a key wins: later duplicates cannot be matched by it. Decoded strings
	 * are NUL-terminated inside the transaction's pages, which outlive the maps. */
	if (r->tvg_id.len)
		ptv_strmap_add(&x->by_tvg_id, r->tvg_id.p, (uint32_t)i);
	if (r->n_urls && r->urls[0].len)
		ptv_strmap_add(&x->by_url, r->urls[0].p, (uint32_t)i);
	if (r->tvg_name.len)
		ptv_strmap_add(&x->by_tvg_name, r->tvg_name.p, (uint32_t)i);
	if (r->name.len)
		ptv_strmap_add(&x->by_name, r->name.p, (uint32_t)i);
}

int import_load_old(MDB_txn *txn, struct import_ctx *x)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t cap = 0;
	int rc = mdb_cursor_open(txn, ptv_store_dbi(x->store, PTV_DB_CHANNELS), &cur);

	if (rc)
		return ptv_store_err(rc);
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		struct import_old *o;
		char *raw;

		if (ptv_chanrec_peek_source(v.mv_data, v.mv_size) != x->source_id)
			continue;
		/* A copy: values in a write transaction move once it writes (lmdb.h). */
		raw = ptv_xmalloc(v.mv_size);
		memcpy(raw, v.mv_data, v.mv_size);
		if (x->n_old == cap) {
			cap = cap ? cap * 2 : 256;
			x->old = ptv_xrealloc(x->old, cap * sizeof(*x->old));
		}
		o = &x->old[x->n_old];
		o->raw = raw;
		o->claimed = false;
		if (ptv_chanrec_decode(raw, v.mv_size, &o->rec)) {
			free(raw);
			continue;
		}
		o->id = o->rec.id;
		old_index(x, x->n_old++);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
}

static bool try_claim(struct import_ctx *x, const struct ptv_strmap *m, const char *key,
		      struct import_entry *e)
{
	uint32_t i;
	const char *num;

	if (!key[0] || !ptv_strmap_get(m, key, &i) || x->old[i].claimed)
		return false;
	x->old[i].claimed = true;
	e->id = x->old[i].id;
	e->matched = true;
	num = x->old[i].rec.number.p;
	snprintf(e->old_number, sizeof(e->old_number), "%s", num);
	return true;
}

void import_match(struct import_ctx *x)
{
	struct import_coll *c = x->coll;

	for (size_t i = 0; i < c->n; i++) {
		struct import_entry *e = &c->entries[i];

		if (e->merged)
			continue;
		if (try_claim(x, &x->by_tvg_id, e->tvg_id, e) ||
		    try_claim(x, &x->by_url, e->url, e) ||
		    try_claim(x, &x->by_tvg_name, e->tvg_name, e) ||
		    try_claim(x, &x->by_name, e->name, e))
			x->rep->updated++;
	}
}

/* New channels get ids after matching, so matching never competes with fresh ids. */
int import_assign_ids(MDB_txn *txn, struct import_ctx *x)
{
	struct import_coll *c = x->coll;
	int ret = 0;

	for (size_t i = 0; i < c->n && !ret; i++) {
		struct import_entry *e = &c->entries[i];

		if (e->merged || e->matched)
			continue;
		ret = ptv_store_next_id(txn, x->store, "channel", &e->id);
		x->rep->added++;
	}
	return ret;
}

void import_ctx_reset(struct import_ctx *x)
{
	struct import_coll *c = x->coll;

	/* The transaction may run again after the map grew: start from a clean slate. */
	import_ctx_free(x);
	x->rep->channels = x->rep->added = x->rep->updated = x->rep->removed = 0;
	x->rep->number_conflicts = 0;
	for (size_t i = 0; i < c->n; i++) {
		c->entries[i].id = 0;
		c->entries[i].matched = false;
		c->entries[i].number[0] = '\0';
		c->entries[i].old_number[0] = '\0';
	}
}

void import_ctx_free(struct import_ctx *x)
{
	for (size_t i = 0; i < x->n_old; i++)
		free(x->old[i].raw);
	ptv_freep(&x->old);
	ptv_buf_free(&x->recbuf);
	x->n_old = 0;
	json_decref(x->source);
	x->source = NULL;
	x->source_id = 0;
	ptv_strmap_free(&x->by_tvg_id);
	ptv_strmap_free(&x->by_url);
	ptv_strmap_free(&x->by_tvg_name);
	ptv_strmap_free(&x->by_name);
	ptv_strmap_free(&x->taken);
}
