/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Which guide channel a lineup channel takes: manual override, then tvg-id, tvg-name, name
 * (see epg.h). Also guide channel records and `plextv guide map|list`.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <string.h>

#include "epg_int.h"
#include "plextv/chanrec.h"
#include "plextv/store.h"

const char *const epg_how_names[] = {
	[EPG_HOW_NONE] = "none",     [EPG_HOW_MANUAL] = "manual",     [EPG_HOW_OFF] = "off",
	[EPG_HOW_TVG_ID] = "tvg-id", [EPG_HOW_TVG_NAME] = "tvg-name", [EPG_HOW_NAME] = "name",
};

/* ---- guide channel records ---- */

int epg_gchan_encode(const struct epg_gchan *c, struct ptv_buf *out)
{
	uint8_t hdr[12] = {EPG_CHAN_VERSION, (uint8_t)c->n_names};

	epg_put_be32(hdr + 4, c->source);
	epg_put_be32(hdr + 8, c->programmes);
	ptv_buf_append(out, hdr, sizeof(hdr));
	ptv_buf_append(out, c->id, strlen(c->id) + 1);
	ptv_buf_append(out, c->icon, strlen(c->icon) + 1);
	for (unsigned i = 0; i < c->n_names; i++)
		ptv_buf_append(out, c->names[i], strlen(c->names[i]) + 1);
	return out->oom ? -ENOMEM : 0;
}

static const char *next_str(const char **p, const char *end)
{
	const char *s = *p, *nul = s < end ? memchr(s, '\0', (size_t)(end - s)) : NULL;

	if (!nul)
		return NULL;
	*p = nul + 1;
	return s;
}

int epg_gchan_decode(const void *data, size_t len, struct epg_gchan *c)
{
	const uint8_t *b = data;
	const char *p = (const char *)b + 12, *end = (const char *)b + len;

	if (len < 12 || b[0] != EPG_CHAN_VERSION || b[1] > PTV_EPG_MAX_NAMES)
		return -PTV_ERR_PARSE;
	c->n_names = b[1];
	c->source = epg_be32(b + 4);
	c->programmes = epg_be32(b + 8);
	c->id = next_str(&p, end);
	c->icon = c->id ? next_str(&p, end) : NULL;
	if (!c->icon)
		return -PTV_ERR_PARSE;
	for (unsigned i = 0; i < c->n_names; i++) {
		c->names[i] = next_str(&p, end);
		if (!c->names[i])
			return -PTV_ERR_PARSE;
	}
	return 0;
}

int epg_gchan_get(MDB_txn *txn, struct ptv_store *s, uint32_t gkey, struct epg_gchan *c)
{
	uint8_t key[5] = {'k'};
	MDB_val k = {sizeof(key), key}, v;
	int rc;

	epg_put_be32(key + 1, gkey);
	rc = mdb_get(txn, ptv_store_dbi(s, PTV_DB_GUIDE_CHANNELS), &k, &v);
	if (rc)
		return ptv_store_err(rc);
	c->gkey = gkey;
	return epg_gchan_decode(v.mv_data, v.mv_size, c);
}

size_t epg_index_key(uint8_t *key, char kind, const char *text, uint32_t source, uint32_t gkey)
{
	size_t n = 1;

	key[0] = (uint8_t)kind;
	n += epg_fold(text, (char *)key + 1, EPG_KEY_MAX + 1);
	key[n++] = '\0';
	epg_put_be32(key + n, source);
	epg_put_be32(key + n + 4, gkey);
	return n + 8;
}

/* ---- resolution ---- */

/* The first guide channel (lowest source, then key) under index @kind for @text. */
static int index_first(MDB_txn *txn, struct ptv_store *s, char kind, const char *text,
		       uint32_t *gkey)
{
	uint8_t key[EPG_KEY_MAX + 16];
	size_t plen = epg_index_key(key, kind, text, 0, 0) - 8;
	MDB_val k = {plen, key}, v;
	MDB_cursor *cur;
	int rc;

	if (plen <= 2)
		return -ENOENT; /* nothing left after folding */
	rc = mdb_cursor_open(txn, ptv_store_dbi(s, PTV_DB_GUIDE_CHANNELS), &cur);
	if (rc)
		return ptv_store_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (!rc && (k.mv_size != plen + 8 || memcmp(k.mv_data, key, plen)))
		rc = MDB_NOTFOUND;
	if (!rc)
		*gkey = epg_be32((const uint8_t *)k.mv_data + plen + 4);
	mdb_cursor_close(cur);
	return rc ? ptv_store_err(rc) : 0;
}

int epg_resolve(MDB_txn *txn, struct ptv_store *s, uint32_t id, const char *tvg_id,
		const char *tvg_name, const char *name, uint32_t *gkey, enum epg_how *how)
{
	uint32_t be = htonl(id);
	MDB_val k = {sizeof(be), &be}, v;
	char target[EPG_KEY_MAX + 1];
	int rc = mdb_get(txn, ptv_store_dbi(s, PTV_DB_GUIDE_MAP), &k, &v);

	if (rc && rc != MDB_NOTFOUND)
		return ptv_store_err(rc);
	if (!rc) {
		/* An explicit choice: no fallback to automatic matching. */
		*how = v.mv_size ? EPG_HOW_MANUAL : EPG_HOW_OFF;
		if (!v.mv_size)
			return -ENOENT;
		snprintf(target, sizeof(target), "%.*s", (int)PTV_MIN(v.mv_size, EPG_KEY_MAX),
			 (const char *)v.mv_data);
		return index_first(txn, s, 'i', target, gkey);
	}
	*how = EPG_HOW_TVG_ID;
	rc = tvg_id && tvg_id[0] ? index_first(txn, s, 'i', tvg_id, gkey) : -ENOENT;
	if (rc == -ENOENT && tvg_name && tvg_name[0]) {
		*how = EPG_HOW_TVG_NAME;
		rc = index_first(txn, s, 'n', tvg_name, gkey);
	}
	if (rc == -ENOENT && name && name[0]) {
		*how = EPG_HOW_NAME;
		rc = index_first(txn, s, 'n', name, gkey);
	}
	if (rc == -ENOENT)
		*how = EPG_HOW_NONE;
	return rc;
}

/* ---- manual overrides ---- */

struct map_set_ctx {
	struct ptv_store *s;
	const char *number, *target;
};

static int map_set_txn(MDB_txn *txn, void *arg)
{
	struct map_set_ctx *m = arg;
	MDB_val k = {strlen(m->number), (void *)m->number}, v;
	uint32_t be;
	int rc = mdb_get(txn, ptv_store_dbi(m->s, PTV_DB_NUMBERS), &k, &v);

	if (rc)
		return ptv_store_err(rc);
	if (v.mv_size != sizeof(be))
		return -PTV_ERR_PARSE;
	memcpy(&be, v.mv_data, sizeof(be));
	k = (MDB_val){sizeof(be), &be};
	if (!m->target) {
		rc = mdb_del(txn, ptv_store_dbi(m->s, PTV_DB_GUIDE_MAP), &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	} else {
		v = (MDB_val){strlen(m->target), (void *)m->target};
		rc = mdb_put(txn, ptv_store_dbi(m->s, PTV_DB_GUIDE_MAP), &k, &v, 0);
	}
	/* Running servers re-render from the store on every request; the version tells
	 * schedulers that the wanted guide channels changed. */
	return rc ? ptv_store_err(rc) : ptv_store_bump_version(txn, m->s, "guide_version");
}

int ptv_epg_map_set(struct ptv_store *s, const char *guide_number, const char *guide_channel_id)
{
	struct map_set_ctx m = {s, guide_number, guide_channel_id};

	if (!guide_number || !guide_number[0])
		return -EINVAL;
	if (guide_channel_id && strlen(guide_channel_id) > EPG_KEY_MAX)
		return -ENAMETOOLONG;
	return ptv_store_write(s, map_set_txn, &m);
}

/* ---- `plextv guide list` ---- */

struct map_print_ctx {
	struct ptv_store *s;
	FILE *out;
	json_t *arr;
};

static void map_print_one(struct map_print_ctx *p, MDB_txn *txn, const struct ptv_chanrec *r)
{
	struct epg_gchan g = {0};
	enum epg_how how = EPG_HOW_NONE;
	uint32_t gkey;
	bool found = !epg_resolve(txn, p->s, r->id, r->tvg_id.p, r->tvg_name.p, r->name.p, &gkey,
				  &how) &&
		     !epg_gchan_get(txn, p->s, gkey, &g);

	if (p->arr) {
		json_array_append_new(
			p->arr,
			json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "number", r->number.p, "name",
				  r->name.p, "how", epg_how_names[how], "guide_channel",
				  found ? g.id : "", "source", (json_int_t)(found ? g.source : 0),
				  "programmes", (json_int_t)(found ? g.programmes : 0)));
		return;
	}
	fprintf(p->out, "%-8s %-32s %-8s %-32s %7u programmes%s\n", r->number.p, r->name.p,
		epg_how_names[how], found ? g.id : "-", found ? g.programmes : 0,
		found && g.programmes ? "" : " (dummy guide)");
}

static int map_print_txn(MDB_txn *txn, void *arg)
{
	struct map_print_ctx *p = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, ptv_store_dbi(p->s, PTV_DB_CHANNELS), &cur);

	if (rc)
		return ptv_store_err(rc);
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		struct ptv_chanrec r;

		if (!ptv_chanrec_decode(v.mv_data, v.mv_size, &r) &&
		    (r.flags & PTV_CHANREC_PRESENT))
			map_print_one(p, txn, &r);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
}

int ptv_epg_map_print(struct ptv_store *s, FILE *out, bool json)
{
	struct map_print_ctx p = {s, out, json ? json_array() : NULL};
	int ret = ptv_store_read(s, map_print_txn, &p);

	if (!ret && json) {
		json_dumpf(p.arr, out, JSON_INDENT(2));
		fputc('\n', out);
	}
	json_decref(p.arr);
	return ret;
}
