/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Source records: refresh, schedule, listing, and the demo lineup. */
#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "plextv/chanrec.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/redact.h"
#include "plextv/sources.h"
#include "plextv/store.h"

struct records_ctx {
	struct ptv_store *store;
	enum ptv_store_db db;
	int (*fn)(uint32_t id, json_t *rec, void *ctx);
	void *ctx;
};

static int records_each_txn(MDB_txn *txn, void *arg)
{
	struct records_ctx *rc = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	int ret = 0, m = mdb_cursor_open(txn, ptv_store_dbi(rc->store, rc->db), &cur);

	if (m)
		return ptv_store_err(m);
	while (!ret && !(m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);

		if (o)
			ret = rc->fn(ptv_store_be32(k.mv_data), o, rc->ctx);
		json_decref(o);
	}
	mdb_cursor_close(cur);
	if (!ret && m != MDB_NOTFOUND)
		ret = ptv_store_err(m);
	return ret;
}

/* Calls @fn for each record of @db in one read transaction; @fn must not keep @rec. */
static int records_each(struct ptv_store *s, enum ptv_store_db db,
			int (*fn)(uint32_t id, json_t *rec, void *ctx), void *ctx)
{
	struct records_ctx rc = {s, db, fn, ctx};

	return ptv_store_read(s, records_each_txn, &rc);
}

/* ---- refresh ---- */

struct get_ctx {
	uint32_t id;
	json_t *rec;
};

static int get_source_cb(uint32_t id, json_t *rec, void *ctx)
{
	struct get_ctx *g = ctx;

	if (id == g->id)
		g->rec = json_incref(rec);
	return 0;
}

static const char **patterns_from(json_t *arr)
{
	size_t n = json_array_size(arr);
	const char **out = ptv_xcalloc(n + 1, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = json_string_value(json_array_get(arr, i));
	return out;
}

int ptv_sources_refresh(struct ptv_store *s, uint32_t id, struct ptv_import_report *rep)
{
	struct get_ctx g = {.id = id};
	struct ptv_import_m3u_opts o = {0};
	int ret = records_each(s, PTV_DB_SOURCES, get_source_cb, &g);

	if (!ret && !g.rec)
		ret = -ENOENT;
	if (ret)
		return ret;
	if (strcmp(json_string_value(json_object_get(g.rec, "kind")) ?: "", "m3u")) {
		/* Demo and future kinds have nothing to fetch. */
		json_decref(g.rec);
		memset(rep, 0, sizeof(*rep));
		return 0;
	}
	o.name = json_string_value(json_object_get(g.rec, "name"));
	o.location = json_string_value(json_object_get(g.rec, "location"));
	o.allow_file = json_is_true(json_object_get(g.rec, "allow_file"));
	o.include_groups = patterns_from(json_object_get(g.rec, "include_groups"));
	o.exclude_groups = patterns_from(json_object_get(g.rec, "exclude_groups"));
	o.include_names = patterns_from(json_object_get(g.rec, "include_names"));
	o.exclude_names = patterns_from(json_object_get(g.rec, "exclude_names"));
	ret = o.location ? ptv_sources_import_m3u(s, &o, rep) : -PTV_ERR_CONFIG;
	free((void *)o.include_groups);
	free((void *)o.exclude_groups);
	free((void *)o.include_names);
	free((void *)o.exclude_names);
	json_decref(g.rec);
	return ret;
}

struct each_ctx {
	bool due_only;
	double now;
	void (*fn)(uint32_t id, void *ctx);
	void *ctx;
	uint32_t *ids;
	size_t n;
};

static int each_cb(uint32_t id, json_t *rec, void *ctx)
{
	struct each_ctx *e = ctx;
	double last = json_number_value(json_object_get(rec, "last_attempt"));
	double period = json_number_value(json_object_get(rec, "refresh_s"));

	if (e->due_only && (period <= 0 || e->now < last + period))
		return 0;
	e->ids = ptv_xrealloc(e->ids, (e->n + 1) * sizeof(*e->ids));
	e->ids[e->n++] = id;
	return 0;
}

int ptv_sources_each(struct ptv_store *s, bool due_only, double now,
		     void (*fn)(uint32_t id, void *ctx), void *ctx)
{
	struct each_ctx e = {due_only, now, fn, ctx, NULL, 0};
	int ret = records_each(s, PTV_DB_SOURCES, each_cb, &e);

	/* Outside the read transaction: @fn may write. */
	for (size_t i = 0; !ret && i < e.n; i++)
		fn(e.ids[i], ctx);
	free(e.ids);
	return ret;
}

/* ---- demo lineup ---- */

struct demo_ctx {
	char **files;
	size_t n;
	bool seeded;
};

static int count_cb(uint32_t id, json_t *rec, void *ctx)
{
	(*(size_t *)ctx)++;
	return 0;
}

static void demo_title(const char *file, char *out, size_t len)
{
	const char *base = strrchr(file, '/');
	size_t n = 0;

	base = base ? base + 1 : file;
	/* "demo-news.ts" -> "Demo News" */
	for (bool up = true; *base && *base != '.' && n + 1 < len; base++) {
		char ch = *base == '-' || *base == '_' ? ' ' : *base;

		out[n++] = up && ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
		up = ch == ' ';
	}
	out[n] = '\0';
}

static int demo_channel(MDB_txn *txn, struct ptv_store *s, uint32_t source, const char *file,
			unsigned number)
{
	struct ptv_chanrec r = {.kind = PTV_CHANNEL_FILE,
				.flags = PTV_CHANREC_PRESENT | PTV_CHANREC_ENABLED};
	struct ptv_buf enc = {0};
	char name[128], num[16];
	uint32_t key, be;
	MDB_val k, v;
	int ret = ptv_store_next_id(txn, s, "channel", &r.id);

	if (ret)
		return ret;
	demo_title(file, name, sizeof(name));
	snprintf(num, sizeof(num), "%u", number);
	r.source = source;
	r.number = ptv_str_c(num);
	r.name = r.tvg_name = ptv_str_c(name);
	r.group = ptv_str_c("Demo");
	r.urls[r.n_urls++] = ptv_str_c(file);
	ret = ptv_chanrec_encode(&r, &enc);
	key = htonl(r.id);
	k = (MDB_val){sizeof(key), &key};
	v = (MDB_val){enc.len, enc.data};
	if (!ret)
		ret = ptv_store_err(mdb_put(txn, ptv_store_dbi(s, PTV_DB_CHANNELS), &k, &v, 0));
	ptv_buf_free(&enc);
	if (ret)
		return ret;
	be = htonl(r.id);
	k = (MDB_val){strlen(num), num};
	v = (MDB_val){sizeof(be), &be};
	return ptv_store_err(mdb_put(txn, ptv_store_dbi(s, PTV_DB_NUMBERS), &k, &v, 0));
}

struct demo_txn_ctx {
	struct ptv_store *store;
	struct demo_ctx *d;
};

static int demo_txn(MDB_txn *txn, void *arg)
{
	struct demo_txn_ctx *t = arg;
	uint32_t source, key;
	json_t *rec;
	int ret;

	ret = ptv_store_next_id(txn, t->store, "source", &source);
	if (ret)
		return ret;
	rec = json_pack("{s:i, s:s, s:s, s:i}", "id", (json_int_t)source, "name", "demo", "kind",
			"demo", "refresh_s", 0);
	key = htonl(source);
	ret = ptv_store_put_json(txn, ptv_store_dbi(t->store, PTV_DB_SOURCES), &key, sizeof(key),
				 rec);
	json_decref(rec);
	for (size_t i = 0; i < t->d->n && !ret; i++)
		ret = demo_channel(txn, t->store, source, t->d->files[i], (unsigned)i + 1);
	if (!ret)
		ret = ptv_store_bump_version(txn, t->store, "lineup_version");
	return ret;
}

static int demo_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int demo_scan(const char *dir, struct demo_ctx *d)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char path[4096];

	if (!dp)
		return -errno;
	while ((de = readdir(dp))) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".ts"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		d->files = ptv_xrealloc(d->files, (d->n + 1) * sizeof(*d->files));
		d->files[d->n++] = realpath(path, NULL) ?: ptv_xstrdup(path);
	}
	closedir(dp);
	qsort(d->files, d->n, sizeof(*d->files), demo_cmp);
	return 0;
}

int ptv_sources_seed_demo(struct ptv_store *s, const char *demo_dir)
{
	struct demo_ctx d = {0};
	struct demo_txn_ctx t = {s, &d};
	size_t sources = 0;
	int ret = records_each(s, PTV_DB_SOURCES, count_cb, &sources);

	if (ret || sources)
		return ret;
	ret = demo_scan(demo_dir, &d);
	if (!ret && !d.n)
		ret = -ENOENT;
	if (!ret)
		ret = ptv_store_write(s, demo_txn, &t);
	if (ret)
		ptv_warn("lineup", "no demo lineup: %s (%s)", ptv_strerror(ret), demo_dir);
	else
		ptv_info("lineup", "empty store: seeded the demo lineup (%zu channels from %s)",
			 d.n, demo_dir);
	for (size_t i = 0; i < d.n; i++)
		free(d.files[i]);
	free(d.files);
	return ret ? ret : 1;
}

/* ---- listings ---- */

struct print_ctx {
	struct ptv_store *store;
	FILE *out;
	json_t *arr;
};

static void redact_urls(json_t *rec, const char *key)
{
	json_t *v = json_object_get(rec, key), *item;
	char buf[4096];
	size_t i;

	if (json_is_string(v)) {
		ptv_redact_url(json_string_value(v), buf, sizeof(buf));
		json_object_set_new(rec, key, json_string(buf));
	}
	json_array_foreach(v, i, item)
	{
		ptv_redact_url(json_string_value(item) ?: "", buf, sizeof(buf));
		json_array_set_new(v, i, json_string(buf));
	}
}

static int source_print_cb(uint32_t id, json_t *rec, void *ctx)
{
	struct print_ctx *p = ctx;
	json_t *copy = json_deep_copy(rec);

	redact_urls(copy, "location");
	if (p->arr) {
		json_array_append_new(p->arr, copy);
		return 0;
	}
	fprintf(p->out, "%-4u %-20s %-5s %6lld channels  every %llds  %s\n", id,
		json_string_value(json_object_get(copy, "name")) ?: "",
		json_string_value(json_object_get(copy, "kind")) ?: "",
		(long long)json_integer_value(json_object_get(copy, "channels")),
		(long long)json_integer_value(json_object_get(copy, "refresh_s")),
		json_string_value(json_object_get(copy, "location")) ?: "");
	json_decref(copy);
	return 0;
}

static json_t *strs_json(const struct ptv_str *v, unsigned n, bool redact)
{
	json_t *a = json_array();
	char buf[4096];

	for (unsigned i = 0; i < n; i++) {
		if (redact)
			ptv_redact_url(v[i].p, buf, sizeof(buf));
		json_array_append_new(a, json_string(redact ? buf : v[i].p));
	}
	return a;
}

/* A channel as people and scripts see it: JSON with credentials redacted. */
static json_t *chanrec_json(const struct ptv_chanrec *r)
{
	static const char *const kinds[] = {"?", "url", "acestream", "file"};
	json_t *hdrs = json_object();

	for (unsigned i = 0; i < r->n_headers; i++)
		json_object_set_new(hdrs, r->hdr_names[i].p, json_string(r->hdr_values[i].p));
	return json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:b, s:b, "
			 "s:b, s:f, s:s}",
			 "id", (json_int_t)r->id, "source", (json_int_t)r->source, "number",
			 r->number.p, "name", r->name.p, "tvg_id", r->tvg_id.p, "tvg_name",
			 r->tvg_name.p, "logo", r->logo.p, "group", r->group.p, "kind",
			 kinds[r->kind < 4 ? r->kind : 0], "urls",
			 strs_json(r->urls, r->n_urls, true), "headers", hdrs, "enabled",
			 r->flags & PTV_CHANREC_ENABLED, "drm", r->flags & PTV_CHANREC_DRM, "radio",
			 r->flags & PTV_CHANREC_RADIO, "hd", r->flags & PTV_CHANREC_HD, "shift",
			 r->shift, "off_reason", r->off_reason.p);
}

static int channel_print_txn(MDB_txn *txn, void *arg)
{
	struct print_ctx *p = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	int m = mdb_cursor_open(txn, ptv_store_dbi(p->store, PTV_DB_CHANNELS), &cur);

	if (m)
		return ptv_store_err(m);
	while (!(m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		struct ptv_chanrec r;
		json_t *o;

		if (ptv_chanrec_decode(v.mv_data, v.mv_size, &r) ||
		    !(r.flags & PTV_CHANREC_PRESENT))
			continue;
		if (!p->arr) {
			fprintf(p->out, "%-8s %-40s %-20s%s%s%s\n", r.number.p, r.name.p, r.group.p,
				r.flags & PTV_CHANREC_ENABLED ? "" : " [off: ",
				r.flags & PTV_CHANREC_ENABLED ? "" : r.off_reason.p,
				r.flags & PTV_CHANREC_ENABLED ? "" : "]");
			continue;
		}
		o = chanrec_json(&r);
		if (o)
			json_array_append_new(p->arr, o);
	}
	mdb_cursor_close(cur);
	return m == MDB_NOTFOUND ? 0 : ptv_store_err(m);
}

static int print_records(struct ptv_store *s, FILE *out, bool json,
			 int (*cb)(uint32_t, json_t *, void *))
{
	struct print_ctx p = {s, out, json ? json_array() : NULL};
	int ret = cb ? records_each(s, PTV_DB_SOURCES, cb, &p)
		     : ptv_store_read(s, channel_print_txn, &p);

	if (!ret && json) {
		json_dumpf(p.arr, out, JSON_INDENT(2));
		fputc('\n', out);
	}
	json_decref(p.arr);
	return ret;
}

int ptv_sources_print(struct ptv_store *s, FILE *out, bool json)
{
	return print_records(s, out, json, source_print_cb);
}

int ptv_channels_print(struct ptv_store *s, FILE *out, bool json)
{
	return print_records(s, out, json, NULL);
}

void ptv_sources_derive_name(const char *location, const char *suffix, char *out, size_t len)
{
	char clean[2048];
	const char *s, *slash;

	ptv_redact_url(location, clean, sizeof(clean));
	s = strstr(clean, "://");
	if (s) {
		s += 3;
		if (strchr(s, '@'))
			s = strchr(s, '@') + 1;
		snprintf(out, len, "%.*s%s", (int)strcspn(s, ":/?"), s, suffix);
		return;
	}
	slash = strrchr(location, '/');
	snprintf(out, len, "%s", slash ? slash + 1 : location);
}
