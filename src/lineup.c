/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Lineup snapshots: read the channels from the store, order them, split them over virtual
 * devices, and pre-render every HDHomeRun document as a blob. Built off the reactors (main or
 * pool thread); immutable once built.
 */
#include <stdio.h>
#include <string.h>

#include "lineup_int.h"
#include "plextv/log.h"
#include "plextv/chanrec.h"
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
	for (size_t i = 0; i < l->n_channels; i++) {
		free((void *)l->channels[i].urls);
		free((void *)l->channels[i].headers);
	}
	free(l->channels);
	free(p->by_number);
	free(p->by_id);
	arena_free(p);
	free(p);
	free(l);
}

/* ---- reading channel records ---- */

struct load_ctx {
	struct lineup_priv *p;
	struct ptv_lineup_channel *chans;
	size_t n, cap;
	size_t n_urls, n_hdrs;
	struct ptv_chanrec *recs; /* decoded inside the read transaction */
};

static const char *arena_str(struct lineup_priv *p, struct ptv_str s)
{
	return arena_strdup(p, s.p);
}

static void channel_from_rec(struct load_ctx *lc, struct ptv_lineup_channel *ch,
			     const struct ptv_chanrec *r)
{
	struct lineup_priv *p = lc->p;
	const char **uslot = ptv_xcalloc(r->n_urls + 1, sizeof(*uslot));
	struct ptv_lineup_header *hslot = ptv_xcalloc(r->n_headers + 1, sizeof(*hslot));

	ch->id = r->id;
	ch->number = arena_str(p, r->number);
	ch->name = arena_str(p, r->name);
	ch->tvg_id = arena_str(p, r->tvg_id);
	ch->tvg_name = arena_str(p, r->tvg_name);
	ch->logo = arena_str(p, r->logo);
	ch->group = arena_str(p, r->group);
	ch->kind = r->kind ? (enum ptv_channel_kind)r->kind : PTV_CHANNEL_URL;
	ch->source_id = r->source;
	ch->shift_hours = r->shift;
	ch->enabled = r->flags & PTV_CHANREC_ENABLED;
	ch->drm = r->flags & PTV_CHANREC_DRM;
	ch->radio = r->flags & PTV_CHANREC_RADIO;
	ch->hd = r->flags & PTV_CHANREC_HD;
	for (unsigned i = 0; i < r->n_urls; i++)
		uslot[ch->n_urls++] = arena_str(p, r->urls[i]);
	for (unsigned i = 0; i < r->n_headers; i++) {
		hslot[i].name = arena_str(p, r->hdr_names[i]);
		hslot[i].value = arena_str(p, r->hdr_values[i]);
		ch->n_headers++;
	}
	ch->urls = uslot;
	ch->headers = hslot;
}

static int load_records(MDB_txn *txn, void *arg)
{
	struct load_ctx *lc = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, ptv_store_dbi(lc->p->store, PTV_DB_CHANNELS), &cur);
	if (rc)
		return ptv_store_err(rc);
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		struct ptv_chanrec r;

		if (ptv_chanrec_decode(v.mv_data, v.mv_size, &r) ||
		    !(r.flags & PTV_CHANREC_PRESENT))
			continue;
		if (lc->n == lc->cap) {
			lc->cap = lc->cap ? lc->cap * 2 : 256;
			lc->chans = ptv_xrealloc(lc->chans, lc->cap * sizeof(*lc->chans));
		}
		/* Copied into the arena now: the pages are only valid inside the transaction. */
		memset(&lc->chans[lc->n], 0, sizeof(*lc->chans));
		channel_from_rec(lc, &lc->chans[lc->n++], &r);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
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
	struct load_ctx lc = {.p = p};
	int ret = ptv_store_read(p->store, load_records, &lc);

	l->channels = lc.chans;
	l->n_channels = lc.n;
	if (!ret && l->n_channels)
		qsort(l->channels, l->n_channels, sizeof(*l->channels), channel_cmp);
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
