/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Lineup snapshots: read the channels from the store, order them, split them over virtual
 * devices, and pre-render every HDHomeRun document as a blob. Built off the reactors (main or
 * pool thread); immutable once built.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lineup_int.h"
#include "plextv/log.h"
#include "plextv/store.h"
#include "plextv/strmap.h"

/* ---- arena for the snapshot's strings ---- */

static char *arena_strdup(struct lineup_priv *p, const char *s)
{
	size_t n = strlen(s ? s : "") + 1;
	struct lineup_arena_block *b = p->arena;

	if (!b || b->used + n > b->cap) {
		size_t cap = PTV_MAX(n, (size_t)64 * 1024);

		b = ptv_xmalloc(sizeof(*b) + cap);
		b->next = p->arena;
		b->used = 0;
		b->cap = cap;
		p->arena = b;
	}
	memcpy(b->data + b->used, s ? s : "", n);
	b->used += n;
	return b->data + b->used - n;
}

static void arena_free(struct lineup_priv *p)
{
	struct lineup_arena_block *b = p->arena, *next;

	for (; b; b = next) {
		next = b->next;
		free(b);
	}
}

/* ---- lookups ---- */

static void index_build(struct lineup_priv *p, struct ptv_lineup *l)
{
	size_t cap = 16;

	while (cap < l->n_channels * 2)
		cap *= 2;
	p->idx_cap = cap;
	p->by_number = ptv_xcalloc(cap, sizeof(*p->by_number));
	p->by_id = ptv_xcalloc(cap, sizeof(*p->by_id));
	for (size_t i = 0; i < l->n_channels; i++) {
		struct ptv_lineup_channel *ch = &l->channels[i];
		size_t h = ptv_str_hash(ch->number) & (cap - 1);

		while (p->by_number[h])
			h = (h + 1) & (cap - 1);
		p->by_number[h] = ch;
		h = (ch->id * 2654435761u) & (cap - 1);
		while (p->by_id[h])
			h = (h + 1) & (cap - 1);
		p->by_id[h] = ch;
	}
}

const struct ptv_lineup_channel *ptv_lineup_by_number(const struct ptv_lineup *l,
						      const char *number)
{
	const struct lineup_priv *p = l->priv;
	size_t h;

	if (!p->idx_cap)
		return NULL;
	h = ptv_str_hash(number) & (p->idx_cap - 1);
	for (; p->by_number[h]; h = (h + 1) & (p->idx_cap - 1)) {
		if (!strcmp(p->by_number[h]->number, number))
			return p->by_number[h];
	}
	return NULL;
}

const struct ptv_lineup_channel *ptv_lineup_by_id(const struct ptv_lineup *l, uint32_t id)
{
	const struct lineup_priv *p = l->priv;
	size_t h;

	if (!p->idx_cap)
		return NULL;
	h = (id * 2654435761u) & (p->idx_cap - 1);
	for (; p->by_id[h]; h = (h + 1) & (p->idx_cap - 1)) {
		if (p->by_id[h]->id == id)
			return p->by_id[h];
	}
	return NULL;
}

/* ---- lifetime ---- */

struct ptv_lineup *ptv_lineup_ref(struct ptv_lineup *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

static void device_free(struct ptv_lineup_device *d)
{
	ptv_blob_unref(d->discover_json);
	ptv_blob_unref(d->lineup_json);
	ptv_blob_unref(d->lineup_json_all);
	ptv_blob_unref(d->lineup_m3u);
	ptv_blob_unref(d->lineup_xml);
	ptv_blob_unref(d->device_xml);
}

void ptv_lineup_unref(struct ptv_lineup *l)
{
	struct lineup_priv *p;

	if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	p = l->priv;
	for (unsigned i = 0; i < l->n_devices; i++)
		device_free(&l->devices[i]);
	ptv_blob_unref(l->all_m3u);
	free(l->devices);
	free(l->channels);
	free(p->by_number);
	free(p->by_id);
	free(p->url_ptrs);
	free(p->hdr_items);
	arena_free(p);
	free(p);
	free(l);
}

/* ---- reading channel records ---- */

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static enum ptv_channel_kind kind_parse(const char *s)
{
	if (!strcmp(s, "acestream"))
		return PTV_CHANNEL_ACESTREAM;
	if (!strcmp(s, "file"))
		return PTV_CHANNEL_FILE;
	return PTV_CHANNEL_URL;
}

struct load_ctx {
	struct ptv_lineup *l;
	struct lineup_priv *p;
	size_t cap;
	size_t n_urls, n_hdrs;
	json_t **recs;
	size_t n_recs;
};

static int load_records(MDB_txn *txn, void *arg)
{
	struct load_ctx *lc = arg;
	struct ptv_store *s = lc->p->store;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, ptv_store_dbi(s, PTV_DB_CHANNELS), &cur);
	if (rc)
		return ptv_store_err(rc);
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);

		if (!o)
			continue;
		if (!json_is_true(json_object_get(o, "present"))) {
			json_decref(o);
			continue;
		}
		if (lc->n_recs == lc->cap) {
			lc->cap = lc->cap ? lc->cap * 2 : 256;
			lc->recs = ptv_xrealloc(lc->recs, lc->cap * sizeof(*lc->recs));
		}
		lc->recs[lc->n_recs++] = o;
		lc->n_urls += json_array_size(json_object_get(o, "urls"));
		lc->n_hdrs += json_object_size(json_object_get(o, "headers"));
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
}

static void channel_from_json(struct load_ctx *lc, struct ptv_lineup_channel *ch, json_t *o)
{
	struct lineup_priv *p = lc->p;
	json_t *urls = json_object_get(o, "urls"), *hdrs = json_object_get(o, "headers"), *val;
	const char **uslot = p->url_ptrs + lc->n_urls;
	struct ptv_lineup_header *hslot = p->hdr_items + lc->n_hdrs;
	const char *key;
	size_t i;

	ch->id = (uint32_t)json_integer_value(json_object_get(o, "id"));
	ch->number = arena_strdup(p, jstr(o, "number"));
	ch->name = arena_strdup(p, jstr(o, "name"));
	ch->tvg_id = arena_strdup(p, jstr(o, "tvg_id"));
	ch->tvg_name = arena_strdup(p, jstr(o, "tvg_name"));
	ch->logo = arena_strdup(p, jstr(o, "logo"));
	ch->group = arena_strdup(p, jstr(o, "group"));
	ch->kind = kind_parse(jstr(o, "kind"));
	ch->source_id = (uint32_t)json_integer_value(json_object_get(o, "source"));
	ch->shift_hours = json_number_value(json_object_get(o, "shift"));
	ch->enabled = json_is_true(json_object_get(o, "enabled"));
	ch->drm = json_is_true(json_object_get(o, "drm"));
	ch->radio = json_is_true(json_object_get(o, "radio"));
	ch->hd = json_is_true(json_object_get(o, "hd"));
	json_array_foreach(urls, i, val)
		uslot[ch->n_urls++] = arena_strdup(p, json_string_value(val));
	ch->urls = uslot;
	json_object_foreach(hdrs, key, val)
	{
		hslot[ch->n_headers].name = arena_strdup(p, key);
		hslot[ch->n_headers++].value = arena_strdup(p, json_string_value(val));
	}
	ch->headers = hslot;
	lc->n_urls += ch->n_urls;
	lc->n_hdrs += ch->n_headers;
}

/* GuideNumber order: numeric parts compared as numbers ("2" < "10" < "10.1"). */
int ptv_lineup_number_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			char *ea, *eb;
			unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);

			if (x != y)
				return x < y ? -1 : 1;
			a = ea;
			b = eb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return 0;
}

static int channel_cmp(const void *x, const void *y)
{
	const struct ptv_lineup_channel *a = x, *b = y;
	int c = ptv_lineup_number_cmp(a->number, b->number);

	return c ? c : (a->id < b->id ? -1 : a->id > b->id);
}

static int lineup_load_channels(struct ptv_lineup *l, struct lineup_priv *p)
{
	struct load_ctx lc = { .l = l, .p = p };
	int ret = ptv_store_read(p->store, load_records, &lc);

	if (ret)
		goto out;
	l->channels = ptv_xcalloc(lc.n_recs ? lc.n_recs : 1, sizeof(*l->channels));
	p->url_ptrs = ptv_xcalloc(lc.n_urls + 1, sizeof(*p->url_ptrs));
	p->hdr_items = ptv_xcalloc(lc.n_hdrs + 1, sizeof(*p->hdr_items));
	lc.n_urls = lc.n_hdrs = 0;
	for (size_t i = 0; i < lc.n_recs; i++)
		channel_from_json(&lc, &l->channels[i], lc.recs[i]);
	l->n_channels = lc.n_recs;
	qsort(l->channels, l->n_channels, sizeof(*l->channels), channel_cmp);
out:
	for (size_t i = 0; i < lc.n_recs; i++)
		json_decref(lc.recs[i]);
	free(lc.recs);
	return ret;
}

int ptv_lineup_build(const struct lineup_build_opts *o, struct ptv_lineup **out)
{
	struct ptv_lineup *l = ptv_xcalloc(1, sizeof(*l));
	struct lineup_priv *p = ptv_xcalloc(1, sizeof(*p));
	int ret;

	atomic_init(&l->refs, 1);
	l->priv = p;
	p->store = o->store;
	l->version = ptv_store_version(o->store, "lineup_version");
	ret = lineup_load_channels(l, p);
	if (!ret)
		ret = lineup_devices_build(o, l);
	if (ret) {
		ptv_lineup_unref(l);
		return ret;
	}
	index_build(p, l);
	*out = l;
	return 0;
}
