/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Guide sources: settings, refresh, pruning, reports and metrics. */
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "epg_int.h"
#include "plextv/metrics.h"
#include "plextv/store.h"

int ptv_epg_opts_from_config(struct ptv_epg_opts *o, const struct ptv_config *cfg, char *err,
			     size_t errlen)
{
	char *end;
	double shift;

	memset(o, 0, sizeof(*o));
	o->data_dir = cfg->data_dir;
	o->user_agent = cfg->user_agent;
	o->max_bytes = (uint64_t)cfg->guide_max_mb << 20;
	o->timeout_s = cfg->guide_timeout_s;
	o->retention_s = cfg->guide_retention_days * 86400u;
	o->dummy = cfg->guide_dummy != 0;
	o->dummy_block_s = cfg->guide_dummy_block_minutes * 60u;
	o->dummy_span_s = cfg->guide_dummy_hours * 3600u;
	errno = 0;
	shift = strtod(cfg->guide_shift_hours, &end);
	if (errno || end == cfg->guide_shift_hours || *end || !(fabs(shift) <= 24)) {
		if (err && errlen)
			snprintf(err, errlen,
				 "guide_shift_hours: '%s' is not a number of hours "
				 "(-24..24)",
				 cfg->guide_shift_hours);
		return -PTV_ERR_CONFIG;
	}
	o->default_shift_h = shift;
	return 0;
}

/* ---- source records ---- */

struct src_get_ctx {
	struct ptv_store *s;
	uint32_t id;
	json_t *rec;
};

static int src_get_txn(MDB_txn *txn, void *arg)
{
	struct src_get_ctx *g = arg;
	uint32_t key = htonl(g->id);

	return ptv_store_get_json(txn, ptv_store_dbi(g->s, PTV_DB_SOURCES), &key, sizeof(key),
				  &g->rec);
}

/* The record of guide source @id, or NULL (not found, or another kind). */
static json_t *guide_source_get(struct ptv_store *s, uint32_t id)
{
	struct src_get_ctx g = {s, id, NULL};

	if (ptv_store_read(s, src_get_txn, &g))
		return NULL;
	if (strcmp(json_string_value(json_object_get(g.rec, "kind")) ?: "", "xmltv")) {
		json_decref(g.rec);
		return NULL;
	}
	return g.rec;
}

bool ptv_epg_is_guide_source(struct ptv_store *s, uint32_t id)
{
	json_t *rec = guide_source_get(s, id);

	json_decref(rec);
	return rec != NULL;
}

int ptv_epg_refresh(struct ptv_store *s, const struct ptv_epg_opts *o, uint32_t id,
		    struct ptv_epg_report *rep)
{
	json_t *rec = guide_source_get(s, id);
	struct ptv_epg_import_opts io = {0};
	char want[24] = "";
	uint64_t hash;
	int ret;

	memset(rep, 0, sizeof(*rep));
	rep->source_id = id;
	if (!rec)
		return -ENOENT;
	io.name = json_string_value(json_object_get(rec, "name"));
	io.location = json_string_value(json_object_get(rec, "location"));
	io.allow_file = json_is_true(json_object_get(rec, "allow_file"));
	io.has_shift = true;
	io.shift_h = json_number_value(json_object_get(rec, "shift_hours"));
	/* Unchanged lineup: ask for the document only if it changed (ETag, Last-Modified). */
	if (!epg_want_hash(s, &hash))
		snprintf(want, sizeof(want), "%016llx", (unsigned long long)hash);
	if (want[0] && !strcmp(want, json_string_value(json_object_get(rec, "want_hash")) ?: "") &&
	    json_integer_value(json_object_get(rec, "programmes")) > 0) {
		io.etag = json_string_value(json_object_get(rec, "etag"));
		io.last_modified = json_string_value(json_object_get(rec, "last_modified"));
	}
	ret = io.location ? ptv_epg_import(s, o, &io, rep) : -PTV_ERR_CONFIG;
	json_decref(rec);
	return ret;
}

/* ---- pruning ---- */

/*
 * Moves @cur to the first programme of channel @gkey (@next: of the channel after it), @key
 * being the caller's key buffer. MDB_NOTFOUND when there is none (past the last channel).
 */
static int pkey_seek(MDB_cursor *cur, uint32_t gkey, bool next, uint8_t *key, MDB_val *k,
		     MDB_val *v)
{
	if (next && gkey == UINT32_MAX)
		return MDB_NOTFOUND;
	epg_pkey(key, next ? gkey + 1 : gkey, 0);
	*k = (MDB_val){EPG_PKEY_LEN, key};
	return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

struct prune_ctx {
	struct ptv_store *s;
	int64_t cutoff;
	int64_t removed;
};

static int prune_txn(MDB_txn *txn, void *arg)
{
	struct prune_ctx *p = arg;
	uint8_t key[EPG_PKEY_LEN];
	MDB_val k = {sizeof(key), key}, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, ptv_store_dbi(p->s, PTV_DB_PROGRAMMES), &cur);

	if (rc)
		return ptv_store_err(rc);
	p->removed = 0;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (!rc) {
		uint32_t gkey = epg_pkey_gkey(k.mv_data);
		struct epg_rec r;

		if (k.mv_size == EPG_PKEY_LEN && !epg_rec_open(v.mv_data, v.mv_size, &r) &&
		    (int64_t)(epg_pkey_start(k.mv_data) + r.duration) > p->cutoff) {
			/* Sorted by start: the rest of this channel is current. Next channel. */
			rc = pkey_seek(cur, gkey, true, key, &k, &v);
			continue;
		}
		rc = mdb_cursor_del(cur, 0);
		if (!rc) {
			p->removed++;
			rc = mdb_cursor_get(cur, &k, &v,
					    MDB_NEXT); /* the record after the deleted */
		}
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return ptv_store_err(rc);
	return p->removed ? ptv_store_bump_version(txn, p->s, "guide_version") : 0;
}

int64_t ptv_epg_prune(struct ptv_store *s, const struct ptv_epg_opts *o, int64_t now)
{
	struct prune_ctx p = {s, now - (int64_t)o->retention_s, 0};
	int ret = ptv_store_write(s, prune_txn, &p);

	/* Orphans left by an import whose clean-up was interrupted (crash, kill). */
	epg_gc(s);
	return ret ? ret : p.removed;
}

/* ---- orphaned programmes ---- */

struct gc_ctx {
	struct ptv_store *s;
	uint32_t from;	 /* next gkey to look at */
	int64_t removed; /* in this transaction */
	bool more;
};

static bool gkey_alive(MDB_txn *txn, struct ptv_store *s, uint32_t gkey)
{
	uint8_t kk[5] = {'k'};
	MDB_val k = {sizeof(kk), kk}, v;

	epg_put_be32(kk + 1, gkey);
	return !mdb_get(txn, ptv_store_dbi(s, PTV_DB_GUIDE_CHANNELS), &k, &v);
}

static int gc_txn(MDB_txn *txn, void *arg)
{
	struct gc_ctx *g = arg;
	uint8_t key[EPG_PKEY_LEN];
	MDB_val k, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, ptv_store_dbi(g->s, PTV_DB_PROGRAMMES), &cur);

	if (rc)
		return ptv_store_err(rc);
	g->removed = 0;
	g->more = false;
	rc = pkey_seek(cur, g->from, false, key, &k, &v);
	while (!rc && k.mv_size == EPG_PKEY_LEN) {
		uint32_t gkey = epg_pkey_gkey(k.mv_data);

		if (gkey_alive(txn, g->s, gkey)) {
			rc = pkey_seek(cur, gkey, true, key, &k, &v);
			continue;
		}
		if (g->removed == EPG_GC_BATCH) {
			g->from = gkey;
			g->more = true;
			break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (!rc) {
			g->removed++;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? ptv_store_err(rc) : 0;
}

int64_t epg_gc(struct ptv_store *s)
{
	struct gc_ctx g = {.s = s, .from = 0};
	int64_t total = 0;
	int ret;

	do {
		ret = ptv_store_write(s, gc_txn, &g);
		if (ret)
			return ret;
		total += g.removed;
	} while (g.more);
	return total;
}

/* ---- reports ---- */

void ptv_epg_report_format(const struct ptv_epg_report *r, char *buf, size_t len)
{
	const char *sep = ";";
	uint64_t errs = 0;
	int n;

	for (int i = 0; i < PTV_EPG_ERR_COUNT; i++)
		errs += r->errors[i];
	if (r->not_modified) {
		snprintf(buf, len, "not modified since the last import, %.2f s", r->seconds);
		return;
	}
	n = snprintf(buf, len,
		     "%llu programmes stored on %llu of %llu guide channels (%llu in the document; "
		     "dropped: %llu for channels not in the lineup, %llu past; %llu stop times "
		     "guessed), %llu entry problems, %.1f MB, %.2f s",
		     (unsigned long long)r->programmes, (unsigned long long)r->channels_kept,
		     (unsigned long long)r->channels, (unsigned long long)r->programmes_in,
		     (unsigned long long)r->unmapped, (unsigned long long)r->past,
		     (unsigned long long)r->stop_guessed, (unsigned long long)errs,
		     (double)r->bytes / 1e6, r->seconds);
	for (int i = 0; i < PTV_EPG_ERR_COUNT && n > 0 && (size_t)n < len; i++) {
		if (!r->errors[i])
			continue;
		n += snprintf(buf + n, len - (size_t)n, "%s %s=%llu", sep, ptv_epg_error_name(i),
			      (unsigned long long)r->errors[i]);
		sep = "";
	}
}

/* ---- metrics ---- */

static struct {
	pthread_once_t once;
	struct ptv_metric *programmes, *channels, *last_success, *duration;
	struct ptv_metric_family *imports, *errors, *dropped;
} m = {.once = PTHREAD_ONCE_INIT};

static void metrics_register(void)
{
	static const double buckets[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
	static const char *const result[] = {"result", NULL};
	static const char *const reason[] = {"reason", NULL};

	m.programmes = ptv_metric_simple("plextv_guide_programmes", "Programmes in the guide store",
					 PTV_METRIC_GAUGE);
	m.channels = ptv_metric_simple("plextv_guide_channels",
				       "Guide channels kept (taken by some lineup channel)",
				       PTV_METRIC_GAUGE);
	m.last_success = ptv_metric_simple("plextv_guide_last_success_timestamp_seconds",
					   "Unix time of the last successful guide import, any "
					   "process",
					   PTV_METRIC_GAUGE);
	m.duration = ptv_metric_get(
		ptv_metrics_family("plextv_guide_import_duration_seconds",
				   "Guide imports run by this process: fetch, parse and store",
				   PTV_METRIC_HISTOGRAM, NULL, buckets, PTV_ARRAY_SIZE(buckets), 1),
		NULL);
	m.imports = ptv_metrics_family("plextv_guide_imports_total",
				       "Guide imports run by this process, by result",
				       PTV_METRIC_COUNTER, result, NULL, 0, 4);
	m.errors = ptv_metrics_family("plextv_guide_entry_errors_total",
				      "Problems with single guide entries, by reason",
				      PTV_METRIC_COUNTER, reason, NULL, 0, PTV_EPG_ERR_COUNT + 2);
	m.dropped = ptv_metrics_family("plextv_guide_programmes_dropped_total",
				       "Programmes not stored: channel not in the lineup, or past",
				       PTV_METRIC_COUNTER, reason, NULL, 0, 4);
}

static void labelled_add(struct ptv_metric_family *f, const char *label, uint64_t v)
{
	const char *vals[] = {label, NULL};

	if (v)
		ptv_metric_add(ptv_metric_get(f, vals), v);
}

void epg_metrics_import(const struct ptv_epg_report *r, int ret)
{
	const char *res[] = {ret ? "error" : "ok", NULL};

	pthread_once(&m.once, metrics_register);
	ptv_metric_inc(ptv_metric_get(m.imports, res));
	ptv_metric_observe(m.duration, r->seconds);
	if (ret)
		return;
	for (int i = 0; i < PTV_EPG_ERR_COUNT; i++)
		labelled_add(m.errors, ptv_epg_error_name(i), r->errors[i]);
	labelled_add(m.dropped, "unmapped", r->unmapped);
	labelled_add(m.dropped, "past", r->past);
}

struct gauges_ctx {
	struct ptv_store *s;
	uint64_t programmes, channels;
	double last_success;
};

static int gauges_txn(MDB_txn *txn, void *arg)
{
	struct gauges_ctx *g = arg;
	uint8_t kk[1] = {'k'};
	MDB_val k = {1, kk}, v;
	MDB_cursor *cur;
	MDB_stat st;
	int rc = mdb_stat(txn, ptv_store_dbi(g->s, PTV_DB_PROGRAMMES), &st);

	if (rc)
		return ptv_store_err(rc);
	g->programmes = st.ms_entries;
	rc = mdb_cursor_open(txn, ptv_store_dbi(g->s, PTV_DB_GUIDE_CHANNELS), &cur);
	if (rc)
		return ptv_store_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && ((uint8_t *)k.mv_data)[0] == 'k'; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		g->channels++;
	mdb_cursor_close(cur);
	rc = mdb_cursor_open(txn, ptv_store_dbi(g->s, PTV_DB_SOURCES), &cur);
	if (rc)
		return ptv_store_err(rc);
	while (!mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);

		if (!strcmp(json_string_value(json_object_get(o, "kind")) ?: "", "xmltv"))
			g->last_success =
				fmax(g->last_success,
				     json_number_value(json_object_get(o, "last_success")));
		json_decref(o);
	}
	mdb_cursor_close(cur);
	return 0;
}

void epg_metrics_store(struct ptv_store *s)
{
	struct gauges_ctx g = {s};

	pthread_once(&m.once, metrics_register);
	if (ptv_store_read(s, gauges_txn, &g))
		return;
	ptv_metric_set(m.programmes, (double)g.programmes);
	ptv_metric_set(m.channels, (double)g.channels);
	if (g.last_success > 0)
		ptv_metric_set(m.last_success, g.last_success);
}
