/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * XMLTV import: fetch into an unlinked temporary file (size-capped), then parse it inside one
 * write transaction that replaces the source's guide channels and programmes (see epg.h).
 *
 * Which guide channels are kept is decided while parsing, against the lineup's folded tvg-ids,
 * tvg-names and names (and manual overrides). A <channel> element decides its channel. A
 * programme whose channel has not been described yet is stored tentatively unless its id
 * already matches; if the <channel> comes later and does not match, or never comes, those
 * programmes are deleted at the end (documents where <programme> precedes <channel>, as
 * epg-tc's one-line file interleaves them).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "epg_int.h"
#include "plextv/chanrec.h"
#include "plextv/fetch.h"
#include "plextv/log.h"
#include "plextv/sources.h"
#include "plextv/redact.h"
#include "plextv/store.h"
#include "plextv/strmap.h"

enum imp_state {
	IC_TENTATIVE = 0, /* programmes seen, no <channel>, id not wanted */
	IC_WANTED,
	IC_UNWANTED,	  /* decided by its <channel>: programmes are dropped */
	IC_UNWANTED_LATE, /* decided after tentative programmes were stored: delete them */
};

struct imp_chan {
	char *id;
	uint32_t gkey; /* 0 until its first stored programme or the final write */
	uint8_t state;
	bool has_elem;
	bool needs_fix; /* a missing stop, or programmes out of order or overlapping */
	int64_t last_start, last_stop;
	uint32_t programmes;
	char *icon;
	char *names[PTV_EPG_MAX_NAMES];
	unsigned n_names;
};

struct imp {
	struct ptv_store *store;
	const struct ptv_epg_opts *o;
	const struct ptv_epg_import_opts *io;
	struct ptv_epg_report *rep;
	int fd;
	uint64_t deadline_ns;
	int64_t cutoff; /* programmes that ended before this are past */
	/* per transaction attempt */
	MDB_txn *txn;
	MDB_cursor *pcur;
	MDB_dbi dbp, dbc;
	struct ptv_strmap want_ids, want_names;
	char **strs;
	size_t n_strs, cap_strs;
	uint64_t want_hash;
	struct ptv_strmap by_id; /* raw channel id -> index in chans */
	struct imp_chan *chans;
	size_t n_chans, cap_chans;
	uint32_t source_id;
	json_t *source;
	double shift_s;
	uint64_t old_programmes;
	uint8_t last_key[EPG_PKEY_LEN];
	bool have_last;
	struct ptv_buf rec;
	struct epg_parse_stats st;
	char name[256];
	char location[2048];
	char etag[256], last_modified[64]; /* of the document being imported */
};

/* ---- the lineup's wanted ids and names ---- */

static const char *imp_keep(struct imp *x, const char *s)
{
	char *p = ptv_xstrdup(s);

	if (x->n_strs == x->cap_strs) {
		x->cap_strs = x->cap_strs ? x->cap_strs * 2 : 1024;
		x->strs = ptv_xrealloc(x->strs, x->cap_strs * sizeof(*x->strs));
	}
	x->strs[x->n_strs++] = p;
	return p;
}

static void want_add(struct imp *x, struct ptv_strmap *m, const char *s)
{
	char folded[EPG_KEY_MAX + 1];

	if (!epg_fold(s, folded, sizeof(folded)))
		return;
	if (ptv_strmap_get(m, folded, &(uint32_t){0}))
		return;
	/* Order-independent digest: a refresh is due when the lineup wants something else. */
	x->want_hash += ptv_str_hash(folded) * (m == &x->want_ids ? 3 : 5);
	ptv_strmap_add(m, imp_keep(x, folded), 1);
}

/* Manual overrides: lineup channel id -> target ("" = off). */
static int want_overrides(struct imp *x, struct ptv_strmap *ov)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(x->txn, ptv_store_dbi(x->store, PTV_DB_GUIDE_MAP), &cur);

	if (rc)
		return ptv_store_err(rc);
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		char buf[EPG_KEY_MAX + 16];
		const char *key;
		uint32_t id;

		if (k.mv_size != sizeof(id))
			continue;
		id = epg_be32(k.mv_data);
		/* "<id>\t<target>": the key borrowed by the map must outlive it. */
		snprintf(buf, sizeof(buf), "%u\t%.*s", id, (int)PTV_MIN(v.mv_size, EPG_KEY_MAX),
			 (const char *)v.mv_data);
		*strchr(buf, '\t') = '\0';
		key = imp_keep(x, buf);
		ptv_strmap_add(ov, key, (uint32_t)x->n_strs); /* the target's index, kept next */
		imp_keep(x, buf + strlen(buf) + 1);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
}

/*
 * What the lineup can take, mirroring epg_resolve(): an overridden channel only its target,
 * the others their tvg-id (ids) and tvg-name and name (names). A guide channel matching both a
 * channel's id and another's name is kept either way: a few extra programmes, never missing.
 */
static int want_load(struct imp *x)
{
	struct ptv_strmap ov;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	ptv_strmap_init(&ov);
	rc = want_overrides(x, &ov);
	if (!rc)
		rc = mdb_cursor_open(x->txn, ptv_store_dbi(x->store, PTV_DB_CHANNELS), &cur);
	if (rc) {
		ptv_strmap_free(&ov);
		return rc > 0 ? ptv_store_err(rc) : rc;
	}
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		struct ptv_chanrec r;
		char idbuf[16];
		uint32_t idx;

		if (ptv_chanrec_decode(v.mv_data, v.mv_size, &r) ||
		    !(r.flags & PTV_CHANREC_PRESENT))
			continue;
		snprintf(idbuf, sizeof(idbuf), "%u", r.id);
		if (ptv_strmap_get(&ov, idbuf, &idx)) {
			want_add(x, &x->want_ids, x->strs[idx]);
			continue;
		}
		want_add(x, &x->want_ids, r.tvg_id.p);
		want_add(x, &x->want_names, r.tvg_name.p);
		want_add(x, &x->want_names, r.name.p);
	}
	mdb_cursor_close(cur);
	ptv_strmap_free(&ov);
	return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
}

static bool wanted(struct imp *x, struct ptv_strmap *m, const char *s)
{
	char folded[EPG_KEY_MAX + 1];

	return epg_fold(s, folded, sizeof(folded)) && ptv_strmap_get(m, folded, &(uint32_t){0});
}

/* ---- the source record ---- */

/* Finds the source named x->name. Another kind with that name is an error. */
static int source_find(struct imp *x)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(x->txn, ptv_store_dbi(x->store, PTV_DB_SOURCES), &cur), ret = 0;

	if (rc)
		return ptv_store_err(rc);
	while (!ret && !(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);

		if (o && !strcmp(json_string_value(json_object_get(o, "name")) ?: "", x->name)) {
			if (strcmp(json_string_value(json_object_get(o, "kind")) ?: "", "xmltv")) {
				snprintf(x->rep->error, sizeof(x->rep->error),
					 "the name '%.100s' belongs to a source of another kind: "
					 "pass --name",
					 x->name);
				ret = -EEXIST;
			} else {
				x->source = json_incref(o);
				x->source_id = epg_be32(k.mv_data);
			}
		}
		json_decref(o);
		if (x->source)
			break;
	}
	mdb_cursor_close(cur);
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = ptv_store_err(rc);
	return ret;
}

static int source_open(struct imp *x)
{
	const struct ptv_epg_import_opts *io = x->io;
	int ret;

	if (io->name && io->name[0])
		snprintf(x->name, sizeof(x->name), "%s", io->name);
	else
		/* "-epg" so it cannot take the name a playlist from that host gets. */
		ptv_sources_derive_name(x->location, "-epg", x->name, sizeof(x->name));
	ret = source_find(x);
	if (ret)
		return ret;
	if (!x->source) {
		ret = ptv_store_next_id(x->txn, x->store, "source", &x->source_id);
		if (ret)
			return ret;
		x->source =
			json_pack("{s:i, s:s, s:s, s:i, s:f}", "id", (json_int_t)x->source_id,
				  "name", x->name, "kind", "xmltv", "refresh_s",
				  PTV_EPG_DEFAULT_REFRESH_S, "shift_hours", x->o->default_shift_h);
	}
	if (io->refresh_s)
		json_object_set_new(x->source, "refresh_s", json_integer(io->refresh_s));
	if (io->has_shift)
		json_object_set_new(x->source, "shift_hours", json_real(io->shift_h));
	x->shift_s = json_number_value(json_object_get(x->source, "shift_hours")) * 3600.0;
	x->old_programmes = (uint64_t)json_integer_value(json_object_get(x->source, "programmes"));
	return 0;
}

static int source_finish(struct imp *x)
{
	const struct ptv_epg_report *r = x->rep;
	json_t *errs = json_object();
	uint32_t key = htonl(x->source_id);
	double now = ptv_wall_seconds();
	char hash[24];

	for (int i = 0; i < PTV_EPG_ERR_COUNT; i++)
		json_object_set_new(errs, ptv_epg_error_name(i),
				    json_integer((json_int_t)r->errors[i]));
	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)x->want_hash);
	json_object_set_new(x->source, "location", json_string(x->location));
	json_object_set_new(x->source, "allow_file", json_boolean(x->io->allow_file));
	json_object_set_new(x->source, "last_attempt", json_real(now));
	json_object_set_new(x->source, "last_success", json_real(now));
	json_object_set_new(x->source, "last_error", json_string(""));
	json_object_set_new(x->source, "channels", json_integer((json_int_t)r->channels_kept));
	json_object_set_new(x->source, "guide_channels", json_integer((json_int_t)r->channels));
	json_object_set_new(x->source, "programmes", json_integer((json_int_t)r->programmes));
	json_object_set_new(x->source, "want_hash", json_string(hash));
	json_object_set_new(x->source, "etag", json_string(x->etag));
	json_object_set_new(x->source, "last_modified", json_string(x->last_modified));
	json_object_set_new(x->source, "errors", errs);
	return ptv_store_put_json(x->txn, ptv_store_dbi(x->store, PTV_DB_SOURCES), &key,
				  sizeof(key), x->source);
}

/* ---- removing the source's previous guide ---- */

static int del_range(struct imp *x, uint32_t gkey, uint64_t *count)
{
	uint8_t key[EPG_PKEY_LEN];
	MDB_val k = {sizeof(key), key}, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(x->txn, x->dbp, &cur);

	if (rc)
		return ptv_store_err(rc);
	epg_pkey(key, gkey, 0);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (!rc && k.mv_size == EPG_PKEY_LEN && epg_pkey_gkey(k.mv_data) == gkey) {
		rc = mdb_cursor_del(cur, 0);
		if (!rc && count)
			(*count)++;
		/* After a delete the cursor already sits on the next record; MDB_NEXT knows. */
		if (!rc)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? ptv_store_err(rc) : 0;
}

/*
 * Unlinks an old guide channel: its record and index entries. Its programmes stay, orphaned
 * (no record points at their gkey), and epg_gc() deletes them after the commit in bounded
 * transactions: deleting a million programmes inside the import doubled its time and its
 * dirty pages.
 */
static int del_channel(struct imp *x, uint32_t gkey)
{
	uint8_t key[EPG_KEY_MAX + 16];
	uint8_t kk[5] = {'k'};
	MDB_val k = {sizeof(kk), kk}, v;
	struct ptv_buf copy = {0};
	struct epg_gchan g;
	int rc;

	epg_put_be32(kk + 1, gkey);
	rc = mdb_get(x->txn, x->dbc, &k, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
	/* A copy: deleting other keys may move the record's page under its pointers. */
	ptv_buf_append(&copy, v.mv_data, v.mv_size);
	if (copy.oom)
		return -ENOMEM;
	rc = epg_gchan_decode(copy.data, copy.len, &g);
	if (!rc) {
		k = (MDB_val){epg_index_key(key, 'i', g.id, g.source, gkey), key};
		mdb_del(x->txn, x->dbc, &k, NULL);
		for (unsigned i = 0; i < g.n_names; i++) {
			k = (MDB_val){epg_index_key(key, 'n', g.names[i], g.source, gkey), key};
			mdb_del(x->txn, x->dbc, &k, NULL);
		}
	}
	ptv_buf_free(&copy);
	k = (MDB_val){sizeof(kk), kk};
	rc = mdb_del(x->txn, x->dbc, &k, NULL);
	return rc && rc != MDB_NOTFOUND ? ptv_store_err(rc) : 0;
}

static int old_remove(struct imp *x)
{
	uint8_t key[9] = {'s'};
	MDB_val k = {sizeof(key), key}, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(x->txn, x->dbc, &cur), ret = 0;

	if (rc)
		return ptv_store_err(rc);
	epg_put_be32(key + 1, x->source_id);
	epg_put_be32(key + 5, 0);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (!rc && !ret && k.mv_size == 9 && ((uint8_t *)k.mv_data)[0] == 's' &&
	       epg_be32((uint8_t *)k.mv_data + 1) == x->source_id) {
		ret = del_channel(x, epg_be32((uint8_t *)k.mv_data + 5));
		if (!ret)
			rc = mdb_cursor_del(cur, 0);
		if (!ret && !rc)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (!ret && rc && rc != MDB_NOTFOUND)
		ret = ptv_store_err(rc);
	return ret;
}

/* ---- channels ---- */

static struct imp_chan *chan_get(struct imp *x, const char *id, bool *created)
{
	uint32_t idx;

	*created = false;
	if (ptv_strmap_get(&x->by_id, id, &idx))
		return &x->chans[idx];
	if (x->n_chans == PTV_EPG_MAX_CHANNELS)
		return NULL;
	if (x->n_chans == x->cap_chans) {
		x->cap_chans = x->cap_chans ? x->cap_chans * 2 : 256;
		x->chans = ptv_xrealloc(x->chans, x->cap_chans * sizeof(*x->chans));
	}
	memset(&x->chans[x->n_chans], 0, sizeof(*x->chans));
	x->chans[x->n_chans].id = ptv_xstrdup(id);
	x->chans[x->n_chans].last_start = INT64_MIN;
	ptv_strmap_add(&x->by_id, x->chans[x->n_chans].id, (uint32_t)x->n_chans);
	*created = true;
	x->rep->channels++;
	return &x->chans[x->n_chans++];
}

static bool names_wanted(struct imp *x, const struct epg_chan *c)
{
	for (unsigned i = 0; i < c->n_names; i++) {
		if (wanted(x, &x->want_names, c->names[i]))
			return true;
	}
	return false;
}

static int on_channel(struct epg_chan *c, void *arg)
{
	struct imp *x = arg;
	bool created, want;
	struct imp_chan *ic = chan_get(x, c->id, &created);

	if (!ic) {
		snprintf(x->rep->error, sizeof(x->rep->error), "more than %d channels",
			 PTV_EPG_MAX_CHANNELS);
		return -PTV_ERR_LIMIT;
	}
	if (ic->has_elem) {
		x->st.errors[PTV_EPG_ERR_DUP_CHANNEL]++;
		return 0;
	}
	ic->has_elem = true;
	want = ic->state == IC_WANTED || wanted(x, &x->want_ids, c->id) || names_wanted(x, c);
	if (!want) {
		ic->state = created || !ic->programmes ? IC_UNWANTED : IC_UNWANTED_LATE;
		return 0;
	}
	ic->state = IC_WANTED;
	ic->icon = ptv_xstrdup(c->icon);
	for (unsigned i = 0; i < c->n_names; i++)
		ic->names[ic->n_names++] = ptv_xstrdup(c->names[i]);
	return 0;
}

/* ---- programmes ---- */

static int prog_put(struct imp *x, uint32_t gkey, int64_t start, uint32_t dur, struct epg_prog *p)
{
	uint8_t key[EPG_PKEY_LEN];
	MDB_val k = {sizeof(key), key}, v;
	bool append;
	int rc;

	epg_pkey(key, gkey, (uint64_t)start);
	ptv_buf_reset(&x->rec);
	rc = epg_rec_encode(p, dur, &x->rec);
	if (rc)
		return rc;
	v = (MDB_val){x->rec.len, x->rec.data};
	/* New gkeys sort after every stored key: a document grouped by channel appends. */
	append = !x->have_last || memcmp(key, x->last_key, sizeof(key)) > 0;
	rc = mdb_cursor_put(x->pcur, &k, &v, append ? MDB_APPEND : MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST && append)
		rc = mdb_cursor_put(x->pcur, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		x->st.errors[PTV_EPG_ERR_DUPLICATE]++;
		return 1;
	}
	if (rc)
		return ptv_store_err(rc);
	if (append) {
		memcpy(x->last_key, key, sizeof(key));
		x->have_last = true;
	}
	return 0;
}

static int on_programme(struct epg_prog *p, void *arg)
{
	struct imp *x = arg;
	bool created;
	struct imp_chan *ic = chan_get(x, p->channel, &created);
	int64_t start = p->start + (int64_t)x->shift_s, stop = -1;
	int ret;

	x->rep->programmes_in++;
	if (!ic) {
		snprintf(x->rep->error, sizeof(x->rep->error), "more than %d channels",
			 PTV_EPG_MAX_CHANNELS);
		return -PTV_ERR_LIMIT;
	}
	if (created && wanted(x, &x->want_ids, p->channel))
		ic->state = IC_WANTED;
	if (ic->state == IC_UNWANTED || ic->state == IC_UNWANTED_LATE) {
		x->rep->unmapped++;
		return 0;
	}
	if (p->stop >= 0)
		stop = p->stop + (int64_t)x->shift_s;
	else if (p->length_s > 0)
		stop = start + p->length_s;
	if ((stop >= 0 ? stop : start + PTV_EPG_DEFAULT_LENGTH_S) <= x->cutoff || start < 0) {
		x->rep->past++;
		return 0;
	}
	if (stop < 0 || start < ic->last_start || start < ic->last_stop)
		ic->needs_fix = true;
	p->flags = stop < 0 ? EPG_P_STOP_MISSING : 0;
	if (!ic->gkey) {
		ret = ptv_store_next_id(x->txn, x->store, "guide_channel", &ic->gkey);
		if (ret)
			return ret;
	}
	ret = prog_put(x, ic->gkey, start,
		       (uint32_t)(stop >= 0 ? PTV_MIN(stop - start, (int64_t)UINT32_MAX)
					    : PTV_EPG_DEFAULT_LENGTH_S),
		       p);
	if (ret < 0)
		return ret;
	if (!ret) {
		ic->programmes++;
		ic->last_start = start;
		ic->last_stop = stop >= 0 ? stop : start;
	}
	return 0;
}

/* ---- fix-ups: guessed stops and overlaps ---- */

struct fix_item {
	uint64_t start;
	uint32_t dur;
	uint8_t flags;
	bool changed;
};

static void fix_compute(struct imp *x, struct fix_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t next = i + 1 < n ? it[i + 1].start : 0;

		if (it[i].flags & EPG_P_STOP_MISSING) {
			it[i].dur = next && next - it[i].start <= PTV_EPG_MAX_GAP_S
					    ? (uint32_t)(next - it[i].start)
					    : PTV_EPG_DEFAULT_LENGTH_S;
			it[i].flags =
				(uint8_t)((it[i].flags & ~EPG_P_STOP_MISSING) | EPG_P_STOP_GUESSED);
			it[i].changed = true;
			x->rep->stop_guessed++;
		} else if (next && it[i].start + it[i].dur > next) {
			it[i].dur = (uint32_t)(next - it[i].start);
			it[i].changed = true;
			x->st.errors[PTV_EPG_ERR_OVERLAP]++;
		}
	}
}

static int fix_write(struct imp *x, uint32_t gkey, const struct fix_item *it, size_t n)
{
	uint8_t key[EPG_PKEY_LEN];
	MDB_val k = {sizeof(key), key}, v;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		if (!it[i].changed)
			continue;
		epg_pkey(key, gkey, it[i].start);
		rc = mdb_get(x->txn, x->dbp, &k, &v);
		if (rc)
			break;
		ptv_buf_reset(&x->rec);
		ptv_buf_append(&x->rec, v.mv_data, v.mv_size);
		if (x->rec.oom)
			return -ENOMEM;
		epg_rec_set_duration(x->rec.data, it[i].dur, it[i].flags);
		v = (MDB_val){x->rec.len, x->rec.data};
		rc = mdb_put(x->txn, x->dbp, &k, &v, 0);
	}
	return rc ? ptv_store_err(rc) : 0;
}

static int fix_channel(struct imp *x, uint32_t gkey)
{
	uint8_t key[EPG_PKEY_LEN];
	MDB_val k = {sizeof(key), key}, v;
	struct fix_item *it = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(x->txn, x->dbp, &cur), ret;

	if (rc)
		return ptv_store_err(rc);
	epg_pkey(key, gkey, 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && k.mv_size == EPG_PKEY_LEN && epg_pkey_gkey(k.mv_data) == gkey;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct epg_rec r;

		if (epg_rec_open(v.mv_data, v.mv_size, &r))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			it = ptv_xrealloc(it, cap * sizeof(*it));
		}
		it[n++] = (struct fix_item){epg_pkey_start(k.mv_data), r.duration, r.flags};
	}
	mdb_cursor_close(cur);
	ret = rc && rc != MDB_NOTFOUND ? ptv_store_err(rc) : 0;
	if (!ret) {
		fix_compute(x, it, n);
		ret = fix_write(x, gkey, it, n);
	}
	free(it);
	return ret;
}

/* ---- finishing: channel records, dropping tentative programmes ---- */

static int put_empty(struct imp *x, const uint8_t *key, size_t len)
{
	MDB_val k = {len, (void *)key}, v = {0, NULL};
	int rc = mdb_put(x->txn, x->dbc, &k, &v, 0);

	return rc ? ptv_store_err(rc) : 0;
}

static int chan_write(struct imp *x, struct imp_chan *ic)
{
	struct epg_gchan g = {.gkey = ic->gkey,
			      .source = x->source_id,
			      .id = ic->id,
			      .icon = ic->icon ?: "",
			      .programmes = ic->programmes};
	uint8_t key[EPG_KEY_MAX + 16];
	MDB_val k, v;
	int ret = 0;

	g.n_names = ic->n_names;
	for (unsigned i = 0; i < ic->n_names; i++)
		g.names[i] = ic->names[i];
	ptv_buf_reset(&x->rec);
	ret = epg_gchan_encode(&g, &x->rec);
	if (ret)
		return ret;
	key[0] = 'k';
	epg_put_be32(key + 1, ic->gkey);
	k = (MDB_val){5, key};
	v = (MDB_val){x->rec.len, x->rec.data};
	ret = ptv_store_err(mdb_put(x->txn, x->dbc, &k, &v, 0));
	key[0] = 's';
	epg_put_be32(key + 1, x->source_id);
	epg_put_be32(key + 5, ic->gkey);
	if (!ret)
		ret = put_empty(x, key, 9);
	if (!ret)
		ret = put_empty(x, key, epg_index_key(key, 'i', ic->id, x->source_id, ic->gkey));
	for (unsigned i = 0; i < ic->n_names && !ret; i++)
		ret = put_empty(x, key,
				epg_index_key(key, 'n', ic->names[i], x->source_id, ic->gkey));
	return ret;
}

static int chans_finish(struct imp *x)
{
	int ret = 0;

	for (size_t i = 0; i < x->n_chans && !ret; i++) {
		struct imp_chan *ic = &x->chans[i];
		uint64_t dropped = 0;

		if (ic->state != IC_WANTED) {
			if (ic->gkey)
				ret = del_range(x, ic->gkey, &dropped);
			x->rep->unmapped += dropped;
			continue;
		}
		if (!ic->gkey)
			ret = ptv_store_next_id(x->txn, x->store, "guide_channel", &ic->gkey);
		if (!ret && ic->needs_fix)
			ret = fix_channel(x, ic->gkey);
		if (!ret)
			ret = chan_write(x, ic);
		x->rep->channels_kept++;
		x->rep->programmes += ic->programmes;
	}
	return ret;
}

/* ---- the transaction ---- */

static void imp_reset(struct imp *x)
{
	for (size_t i = 0; i < x->n_chans; i++) {
		struct imp_chan *ic = &x->chans[i];

		free(ic->id);
		free(ic->icon);
		for (unsigned j = 0; j < ic->n_names; j++)
			free(ic->names[j]);
	}
	x->n_chans = 0;
	for (size_t i = 0; i < x->n_strs; i++)
		free(x->strs[i]);
	x->n_strs = 0;
	ptv_strmap_free(&x->by_id);
	ptv_strmap_free(&x->want_ids);
	ptv_strmap_free(&x->want_names);
	ptv_strmap_init(&x->by_id);
	ptv_strmap_init(&x->want_ids);
	ptv_strmap_init(&x->want_names);
	json_decref(x->source);
	x->source = NULL;
	x->source_id = 0;
	x->want_hash = 0;
	x->have_last = false;
	memset(&x->st, 0, sizeof(x->st));
}

static int fd_read(void *arg, char *buf, int len)
{
	int fd = *(int *)arg;
	ssize_t n;

	do {
		n = read(fd, buf, (size_t)len);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

static void rep_reset(struct ptv_epg_report *r)
{
	uint64_t bytes = r->bytes;
	uint32_t id = r->source_id;

	memset(r, 0, sizeof(*r));
	r->bytes = bytes;
	r->source_id = id;
}

static int imp_parse(struct imp *x)
{
	static const struct epg_parse_ops ops = {on_channel, on_programme};
	struct epg_input in = {fd_read, &x->fd};
	int rc = mdb_cursor_open(x->txn, x->dbp, &x->pcur), ret;

	if (rc)
		return ptv_store_err(rc);
	if (lseek(x->fd, 0, SEEK_SET) < 0) {
		ret = -errno;
	} else {
		ret = epg_parse(&in, &ops, x, x->deadline_ns, &x->st);
		if (ret && !x->rep->error[0])
			snprintf(x->rep->error, sizeof(x->rep->error), "%s",
				 x->st.error[0] ? x->st.error : ptv_strerror(ret));
	}
	mdb_cursor_close(x->pcur);
	x->pcur = NULL;
	return ret;
}

static int imp_txn(MDB_txn *txn, void *arg)
{
	struct imp *x = arg;
	int ret;

	/* ptv_store_write() may run us again after growing the map: start from scratch. */
	imp_reset(x);
	rep_reset(x->rep);
	x->txn = txn;
	x->dbp = ptv_store_dbi(x->store, PTV_DB_PROGRAMMES);
	x->dbc = ptv_store_dbi(x->store, PTV_DB_GUIDE_CHANNELS);
	ret = want_load(x);
	if (!ret)
		ret = source_open(x);
	if (!ret)
		ret = old_remove(x);
	if (!ret)
		ret = imp_parse(x);
	if (!ret)
		ret = chans_finish(x);
	memcpy(x->rep->errors, x->st.errors, sizeof(x->rep->errors));
	if (x->source_id)
		x->rep->source_id = x->source_id;
	if (!ret && !x->rep->programmes_in && x->old_programmes) {
		/* Providers answer errors with an empty <tv/>: keep yesterday's guide instead. */
		snprintf(x->rep->error, sizeof(x->rep->error),
			 "the document has no programmes (the source had %llu)",
			 (unsigned long long)x->old_programmes);
		ret = -PTV_ERR_PARSE;
	}
	if (!ret)
		ret = source_finish(x);
	if (!ret)
		ret = ptv_store_bump_version(txn, x->store, "guide_version");
	return ret;
}

/* ---- the lineup's digest, for the scheduler ---- */

static int want_hash_txn(MDB_txn *txn, void *arg)
{
	struct imp *x = arg;

	x->txn = txn;
	return want_load(x);
}

int epg_want_hash(struct ptv_store *s, uint64_t *out)
{
	struct imp x = {.store = s, .fd = -1};
	int ret;

	ptv_strmap_init(&x.by_id);
	ptv_strmap_init(&x.want_ids);
	ptv_strmap_init(&x.want_names);
	ret = ptv_store_read(s, want_hash_txn, &x);
	*out = x.want_hash;
	imp_reset(&x);
	free(x.strs);
	ptv_strmap_free(&x.by_id);
	ptv_strmap_free(&x.want_ids);
	ptv_strmap_free(&x.want_names);
	return ret;
}

/* ---- fetching into a temporary file ---- */

static int tmp_open(const char *data_dir)
{
	char dir[4096], path[4200];
	int fd;

	snprintf(dir, sizeof(dir), "%s/tmp", data_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	/* Filesystems without O_TMPFILE: a named file, unlinked at once. */
	snprintf(path, sizeof(path), "%s/epg-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

static int tmp_sink(const char *data, size_t len, void *arg)
{
	int fd = *(int *)arg;

	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool is_url(const char *s)
{
	return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

static int imp_fetch(struct imp *x)
{
	struct ptv_fetch_opts fo;
	struct ptv_fetch_result res = {0};
	int ret;

	ptv_fetch_opts_init(&fo);
	fo.url = x->location;
	fo.allow_file = x->io->allow_file;
	fo.max_bytes = x->o->max_bytes;
	fo.timeout_ms = x->o->timeout_s * 1000u;
	fo.user_agent = x->o->user_agent && x->o->user_agent[0] ? x->o->user_agent : NULL;
	fo.etag = x->io->etag;
	fo.last_modified = x->io->last_modified;
	ret = ptv_fetch(&fo, tmp_sink, &x->fd, &res);
	x->rep->bytes = res.bytes;
	x->rep->not_modified = res.not_modified;
	snprintf(x->etag, sizeof(x->etag), "%s", res.etag);
	snprintf(x->last_modified, sizeof(x->last_modified), "%s", res.last_modified);
	if (ret == -EFBIG)
		snprintf(x->rep->error, sizeof(x->rep->error),
			 "the guide is larger than guide_max_mb (%llu MiB, after decompression)",
			 (unsigned long long)(x->o->max_bytes >> 20));
	else if (ret)
		snprintf(x->rep->error, sizeof(x->rep->error), "%s",
			 res.error[0] ? res.error : ptv_strerror(ret));
	ptv_fetch_result_deinit(&res);
	return ret;
}

/*
 * A plain local file (not gzip) is parsed where it is: copying a 500 MB guide into the
 * temporary file cost more than a second. Returns the open fd, 0 to take the fetch path
 * (URL, file://, .gz, not a regular file), or a negative errno.
 */
static int imp_open_direct(struct imp *x)
{
	unsigned char magic[2];
	struct stat st;
	struct tm tm;
	int fd;

	if (is_url(x->location) || !strncasecmp(x->location, "file:", 5) || !x->io->allow_file)
		return 0;
	fd = open(x->location, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* the fetcher reports it */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b)) {
		close(fd);
		return 0;
	}
	/* The fetcher's validator for files, so refreshes of an unchanged file are no-ops. */
	gmtime_r(&st.st_mtime, &tm);
	strftime(x->last_modified, sizeof(x->last_modified), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	x->rep->bytes = (uint64_t)st.st_size;
	if (x->io->last_modified && !strcmp(x->io->last_modified, x->last_modified))
		x->rep->not_modified = true;
	if ((uint64_t)st.st_size > x->o->max_bytes) {
		close(fd);
		snprintf(x->rep->error, sizeof(x->rep->error),
			 "the guide is larger than guide_max_mb (%llu MiB)",
			 (unsigned long long)(x->o->max_bytes >> 20));
		return -EFBIG;
	}
	return fd;
}

/* The document in x->fd: opened in place, or fetched into a temporary file. */
static int imp_input(struct imp *x)
{
	int ret = imp_open_direct(x);

	if (ret)
		return ret < 0 ? ret : (x->fd = ret, 0);
	if (!is_url(x->location) && !x->io->allow_file) {
		snprintf(x->rep->error, sizeof(x->rep->error),
			 "only http(s) URLs are allowed here");
		return -EPERM;
	}
	ret = x->fd = tmp_open(x->o->data_dir);
	if (ret < 0)
		return ret;
	return imp_fetch(x);
}

/* Before fetching: the existing source's id (for failure records) and name clashes. */
static int lookup_txn(MDB_txn *txn, void *arg)
{
	struct imp *x = arg;
	int ret;

	x->txn = txn;
	if (x->io->name && x->io->name[0])
		snprintf(x->name, sizeof(x->name), "%s", x->io->name);
	else
		/* "-epg" so it cannot take the name a playlist from that host gets. */
		ptv_sources_derive_name(x->location, "-epg", x->name, sizeof(x->name));
	ret = source_find(x);
	x->rep->source_id = x->source_id;
	json_decref(x->source);
	x->source = NULL;
	x->source_id = 0;
	return ret;
}

/* Records an attempt that imported nothing (failed, or not modified) on an existing source,
 * so the scheduler backs off. */
struct attempt_ctx {
	struct imp *x;
	int err;
};

static int attempt_txn(MDB_txn *txn, void *arg)
{
	struct attempt_ctx *a = arg;
	struct imp *x = a->x;
	uint32_t key = htonl(x->rep->source_id);
	double now = ptv_wall_seconds();
	json_t *rec = NULL;
	int ret;

	if (!x->rep->source_id)
		return 0;
	ret = ptv_store_get_json(txn, ptv_store_dbi(x->store, PTV_DB_SOURCES), &key, sizeof(key),
				 &rec);
	if (ret)
		return ret == -ENOENT ? 0 : ret;
	json_object_set_new(rec, "last_attempt", json_real(now));
	if (a->err)
		json_object_set_new(
			rec, "last_error",
			json_string(x->rep->error[0] ? x->rep->error : ptv_strerror(a->err)));
	else
		json_object_set_new(rec, "last_success", json_real(now));
	ret = ptv_store_put_json(txn, ptv_store_dbi(x->store, PTV_DB_SOURCES), &key, sizeof(key),
				 rec);
	json_decref(rec);
	return ret;
}

int ptv_epg_import(struct ptv_store *s, const struct ptv_epg_opts *o,
		   const struct ptv_epg_import_opts *io, struct ptv_epg_report *rep)
{
	struct imp x = {.store = s, .o = o, .io = io, .rep = rep, .fd = -1};
	uint64_t t0 = ptv_now_ns();
	struct attempt_ctx a = {&x};
	int ret;

	memset(rep, 0, sizeof(*rep));
	ptv_strmap_init(&x.by_id);
	ptv_strmap_init(&x.want_ids);
	ptv_strmap_init(&x.want_names);
	snprintf(x.location, sizeof(x.location), "%s", io->location ?: "");
	x.deadline_ns = o->timeout_s ? t0 + (uint64_t)o->timeout_s * 1000000000ull : 0;
	x.cutoff = (int64_t)ptv_wall_seconds() - (int64_t)o->retention_s;
	ret = ptv_store_read(s, lookup_txn, &x);
	if (!ret)
		ret = imp_input(&x);
	if (!ret && !rep->not_modified)
		ret = ptv_store_write(s, imp_txn, &x);
	if (ret == -PTV_ERR_LIMIT && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "the store is full (map size limit)");
	if (ret && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "%s", ptv_strerror(ret));
	if (ret || rep->not_modified) {
		a.err = ret;
		ptv_store_write(s, attempt_txn, &a);
	}
	rep->seconds = (double)(ptv_now_ns() - t0) / 1e9;
	if (!ret && !rep->not_modified)
		epg_gc(s); /* the previous import's programmes, now orphaned */
	imp_reset(&x);
	free(x.chans);
	free(x.strs);
	ptv_strmap_free(&x.by_id);
	ptv_strmap_free(&x.want_ids);
	ptv_strmap_free(&x.want_names);
	ptv_buf_free(&x.rec);
	if (x.fd >= 0)
		close(x.fd);
	epg_metrics_import(rep, ret);
	return ret;
}
