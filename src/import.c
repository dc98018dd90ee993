/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * M3U import: parse the whole playlist into memory first (so a fetch or parse failure touches
 * nothing), then reconcile it with the source's existing channels in one write transaction.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "import_int.h"
#include "plextv/acestream.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/redact.h"

/* ---- collecting entries ---- */

static char *coll_strdup(struct import_coll *c, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p;

	p = malloc(n);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	if (c->n_strs == c->cap_strs) {
		c->cap_strs = c->cap_strs ? c->cap_strs * 2 : 1024;
		c->strs = ptv_xrealloc(c->strs, c->cap_strs * sizeof(*c->strs));
	}
	c->strs[c->n_strs++] = p;
	return p;
}

/* Schemes libavformat may open for a channel out of a playlist. Never file:, data:, concat:
 * or anything that reads local state, unless the operator named the playlist himself. */
static const char *const url_schemes[] = {"http",  "https", "rtmp", "rtmps", "rtmpt",	 "rtsp",
					  "rtsps", "udp",   "rtp",  "srt",   "acestream"};

static bool scheme_allowed(const char *url, bool allow_file, bool *file)
{
	size_t n = strcspn(url, ":");

	*file = false;
	if (strncmp(url + n, "://", 3))
		return false;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(url_schemes); i++) {
		if (strlen(url_schemes[i]) == n && !strncasecmp(url, url_schemes[i], n))
			return true;
	}
	*file = n == 4 && !strncasecmp(url, "file", 4);
	return *file && allow_file;
}

/* A relative entry URL resolved against the playlist's URL; NULL when impossible. */
static char *url_resolve(const char *base, const char *rel)
{
	CURLU *u = curl_url();
	char *out = NULL;

	if (u && base && !curl_url_set(u, CURLUPART_URL, base, 0) &&
	    !curl_url_set(u, CURLUPART_URL, rel, 0))
		curl_url_get(u, CURLUPART_URL, &out, 0);
	curl_url_cleanup(u);
	return out;
}

/*
 * An engine URL in a playlist (http://host:6878/ace/getstream?id=ID, or infohash=) is an
 * Acestream channel: stored as acestream://ID (acestream://infohash=ID) so the relay tunes it
 * through its own engine client, one fresh pid per session, and duplicates compare equal.
 */
static bool ace_engine_url(const char *url, char *out, size_t len)
{
	char id[PTV_ACESTREAM_ID_LEN + 1];
	enum ptv_acestream_selector sel;

	if (strncasecmp(url, "http", 4) || ptv_acestream_parse_id(url, id, &sel))
		return false;
	snprintf(out, len, "acestream://%s%s", sel == PTV_ACESTREAM_INFOHASH ? "infohash=" : "",
		 id);
	return true;
}

static int coll_entry(const struct ptv_m3u_entry *e, void *ctx)
{
	struct import_coll *c = ctx;
	struct import_entry *ie;
	char *resolved = NULL;
	const char *url = e->url;
	char ace[sizeof("acestream://infohash=") + PTV_ACESTREAM_ID_LEN];
	bool file, ace_url;

	if (!strstr(url, "://")) {
		resolved = url_resolve(c->base, url);
		url = resolved;
	}
	if (!url || !scheme_allowed(url, c->allow_file, &file)) {
		c->bad_urls++;
		curl_free(resolved);
		return 0;
	}

	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->entries = ptv_xrealloc(c->entries, c->cap * sizeof(*c->entries));
	}
	ace_url = !e->acestream && ace_engine_url(url, ace, sizeof(ace));
	ie = &c->entries[c->n++];
	memset(ie, 0, sizeof(*ie));
	ie->name = coll_strdup(c, e->name[0] ? e->name : url);
	ie->url = coll_strdup(c, ace_url ? ace : url);
	ie->file = file;
	curl_free(resolved);
	ie->tvg_id = coll_strdup(c, e->tvg_id);
	ie->tvg_name = coll_strdup(c, e->tvg_name);
	ie->logo = coll_strdup(c, e->tvg_logo);
	ie->chno = coll_strdup(c, e->tvg_chno);
	ie->group = coll_strdup(c, e->group);
	ie->shift = e->tvg_shift;
	ie->radio = e->radio;
	ie->drm = e->drm;
	ie->acestream = e->acestream || ace_url;
	ie->n_headers = PTV_MIN(e->n_headers, (unsigned)PTV_M3U_MAX_HEADERS);
	for (unsigned i = 0; i < ie->n_headers; i++) {
		ie->hdr_names[i] = coll_strdup(c, e->headers[i].name);
		ie->hdr_values[i] = coll_strdup(c, e->headers[i].value);
	}
	if (!ie->name || !ie->url || !ie->tvg_id || !ie->tvg_name || !ie->logo || !ie->chno ||
	    !ie->group)
		return -ENOMEM;
	return 0;
}

void import_coll_free(struct import_coll *c)
{
	for (size_t i = 0; i < c->n_strs; i++)
		free(c->strs[i]);
	free(c->strs);
	free(c->entries);
	memset(c, 0, sizeof(*c));
}

/* ---- filters ---- */

static bool match_any(const char *const *pats, const char *s)
{
	for (; pats && *pats; pats++) {
		if (!fnmatch(*pats, s, FNM_CASEFOLD))
			return true;
	}
	return false;
}

static bool filters_pass(const struct import_filters *f, const struct import_entry *e)
{
	if (f->include_groups[0] && !match_any((const char *const *)f->include_groups, e->group))
		return false;
	if (match_any((const char *const *)f->exclude_groups, e->group))
		return false;
	if (f->include_names[0] && !match_any((const char *const *)f->include_names, e->name))
		return false;
	return !match_any((const char *const *)f->exclude_names, e->name);
}

/* ---- reconciling with the store ---- */

static void entry_to_rec(const struct import_entry *e, uint32_t source, struct ptv_chanrec *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = e->acestream ? PTV_CHANNEL_ACESTREAM
		  : e->file    ? PTV_CHANNEL_FILE
			       : PTV_CHANNEL_URL;
	r->flags = PTV_CHANREC_PRESENT | (e->enabled ? PTV_CHANREC_ENABLED : 0) |
		   (e->drm ? PTV_CHANREC_DRM : 0) | (e->radio ? PTV_CHANREC_RADIO : 0) |
		   (e->hd ? PTV_CHANREC_HD : 0);
	r->id = e->id;
	r->source = source;
	r->shift = e->shift;
	r->number = ptv_str_c(e->number);
	r->name = ptv_str_c(e->name);
	r->tvg_id = ptv_str_c(e->tvg_id);
	r->tvg_name = ptv_str_c(e->tvg_name);
	r->logo = ptv_str_c(e->logo);
	r->group = ptv_str_c(e->group);
	r->off_reason = ptv_str_c(e->off_reason);
	r->urls[r->n_urls++] = ptv_str_c(e->url);
	for (unsigned i = 0; i < e->n_backups && r->n_urls < PTV_CHANREC_MAX_URLS; i++)
		r->urls[r->n_urls++] = ptv_str_c(e->backups[i]);
	for (unsigned i = 0; i < e->n_headers && i < PTV_CHANREC_MAX_HEADERS; i++) {
		r->hdr_names[i] = ptv_str_c(e->hdr_names[i]);
		r->hdr_values[i] = ptv_str_c(e->hdr_values[i]);
		r->n_headers++;
	}
}

static int chanrec_put(MDB_txn *txn, struct import_ctx *x, const struct ptv_chanrec *r)
{
	uint32_t key = htonl(r->id);
	MDB_val k = {sizeof(key), &key}, v;
	int rc;

	ptv_buf_reset(&x->recbuf);
	rc = ptv_chanrec_encode(r, &x->recbuf);
	if (rc)
		return rc;
	v = (MDB_val){x->recbuf.len, x->recbuf.data};
	rc = mdb_put(txn, ptv_store_dbi(x->store, PTV_DB_CHANNELS), &k, &v, 0);
	return rc ? ptv_store_err(rc) : 0;
}

static int number_owner(MDB_txn *txn, struct import_ctx *x, const char *number, uint32_t *owner)
{
	MDB_val k = {strlen(number), (void *)number}, v;
	int rc;

	if (ptv_strmap_get(&x->taken, number, owner))
		return 0;
	rc = mdb_get(txn, ptv_store_dbi(x->store, PTV_DB_NUMBERS), &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc)
		return ptv_store_err(rc);
	*owner = ptv_store_be32(v.mv_data);
	return 0;
}

/* A number is free for channel @id when nobody, or @id itself, holds it. */
static int number_free_for(MDB_txn *txn, struct import_ctx *x, const char *number, uint32_t id,
			   bool *free_out)
{
	uint32_t owner;
	int ret = number_owner(txn, x, number, &owner);

	if (ret == -ENOENT) {
		*free_out = true;
		return 0;
	}
	*free_out = !ret && owner == id;
	return ret;
}

static int number_take(struct import_ctx *x, struct import_entry *e, const char *number)
{
	snprintf(e->number, sizeof(e->number), "%s", number);
	ptv_strmap_set(&x->taken, e->number, e->id);
	return 0;
}

static int number_allocate(MDB_txn *txn, struct import_ctx *x, struct import_entry *e)
{
	char num[16];
	bool ok = false;
	int ret;

	for (;;) {
		snprintf(num, sizeof(num), "%u", x->next_number++);
		ret = number_free_for(txn, x, num, e->id, &ok);
		if (ret)
			return ret;
		if (ok)
			return number_take(x, e, num);
	}
}

static int assign_numbers(MDB_txn *txn, struct import_ctx *x)
{
	struct import_coll *c = x->coll;
	bool ok;
	int ret;

	/* Requested numbers first, then the ones channels already had, then new ones. */
	for (size_t i = 0; i < c->n; i++) {
		struct import_entry *e = &c->entries[i];

		if (e->merged || !e->chno[0])
			continue;
		ret = number_free_for(txn, x, e->chno, e->id, &ok);
		if (ret)
			return ret;
		if (ok)
			number_take(x, e, e->chno);
		else
			x->rep->number_conflicts++;
	}
	for (size_t i = 0; i < c->n; i++) {
		struct import_entry *e = &c->entries[i];

		if (e->merged || e->number[0] || !e->old_number[0])
			continue;
		ret = number_free_for(txn, x, e->old_number, e->id, &ok);
		if (ret)
			return ret;
		if (ok)
			number_take(x, e, e->old_number);
	}
	for (size_t i = 0; i < c->n; i++) {
		struct import_entry *e = &c->entries[i];

		if (!e->merged && !e->number[0] && (ret = number_allocate(txn, x, e)))
			return ret;
	}
	return 0;
}

static int numbers_write(MDB_txn *txn, struct import_ctx *x, const struct import_entry *e)
{
	MDB_dbi dbi = ptv_store_dbi(x->store, PTV_DB_NUMBERS);
	uint32_t be = htonl(e->id), owner;
	MDB_val k, v = {sizeof(be), &be};
	int rc;

	if (e->old_number[0] && strcmp(e->old_number, e->number)) {
		k = (MDB_val){strlen(e->old_number), (void *)e->old_number};
		if (!number_owner(txn, x, e->old_number, &owner) && owner == e->id)
			mdb_del(txn, dbi, &k, NULL);
	}
	k = (MDB_val){strlen(e->number), (void *)e->number};
	rc = mdb_put(txn, dbi, &k, &v, 0);
	return rc ? ptv_store_err(rc) : 0;
}

static int channels_write(MDB_txn *txn, struct import_ctx *x)
{
	struct import_coll *c = x->coll;
	struct ptv_chanrec rec;
	int ret = 0;

	for (size_t i = 0; i < c->n && !ret; i++) {
		struct import_entry *e = &c->entries[i];

		if (e->merged)
			continue;
		entry_to_rec(e, x->source_id, &rec);
		ret = chanrec_put(txn, x, &rec);
		if (!ret)
			ret = numbers_write(txn, x, e);
		x->rep->channels++;
	}
	return ret;
}

static int mark_gone(MDB_txn *txn, struct import_ctx *x)
{
	int ret = 0;

	/* Kept with their numbers reserved, so a channel that comes back is unchanged. */
	for (size_t i = 0; i < x->n_old && !ret; i++) {
		struct import_old *o = &x->old[i];
		struct ptv_chanrec rec = o->rec;

		if (o->claimed || !(rec.flags & PTV_CHANREC_PRESENT))
			continue;
		rec.flags &= (uint8_t)~PTV_CHANREC_PRESENT;
		ret = chanrec_put(txn, x, &rec);
		x->rep->removed++;
	}
	return ret;
}

static int import_txn(MDB_txn *txn, void *arg)
{
	struct import_ctx *x = arg;
	int ret;

	import_ctx_reset(x);
	ret = import_source_record(txn, x);
	if (!ret)
		ret = import_load_old(txn, x);
	if (!ret)
		import_match(x);
	if (!ret)
		ret = import_assign_ids(txn, x);
	if (!ret)
		ret = assign_numbers(txn, x);
	if (!ret)
		ret = channels_write(txn, x);
	if (!ret)
		ret = mark_gone(txn, x);
	if (!ret)
		ret = import_source_finish(txn, x);
	if (!ret)
		ret = ptv_store_bump_version(txn, x->store, "lineup_version");
	return ret;
}

/* Providers mark HD in the name: "CNN HD", "BBC One (1080p)", "ESPN FHD". */
static bool name_says_hd(const char *name)
{
	static const char *const marks[] = {"HD",   "FHD",   "UHD",   "4K",
					    "720p", "1080p", "1080i", "2160p"};
	const char *p;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(marks); i++) {
		size_t n = strlen(marks[i]);

		for (p = strstr(name, marks[i]); p; p = strstr(p + 1, marks[i])) {
			bool left = p == name || !isalnum((unsigned char)p[-1]);
			bool right = !isalnum((unsigned char)p[n]);

			if (left && right)
				return true;
		}
	}
	return false;
}

/* Marks duplicates and applies filters: work that needs no store access. */
static void import_prepare(struct import_ctx *x)
{
	struct import_coll *c = x->coll;
	struct ptv_strmap seen;

	ptv_strmap_init(&seen);
	for (size_t i = 0; i < c->n; i++) {
		struct import_entry *e = &c->entries[i];
		uint32_t first;

		e->enabled = filters_pass(&x->filters, e);
		e->off_reason = e->enabled ? "" : "filtered";
		if (!e->enabled)
			x->rep->filtered++;
		if (e->drm) {
			/* We cannot play DRM streams; keep them visible only with show=all. */
			e->enabled = false;
			e->off_reason = "drm";
			x->rep->drm++;
		}
		e->hd = name_says_hd(e->name);
		if (e->tvg_id[0] && !ptv_strmap_add(&seen, e->tvg_id, (uint32_t)i) &&
		    ptv_strmap_get(&seen, e->tvg_id, &first)) {
			struct import_entry *f = &c->entries[first];

			if (f->n_backups < IMPORT_MAX_BACKUPS)
				f->backups[f->n_backups++] = e->url;
			e->merged = true;
			x->rep->merged++;
		}
	}
	ptv_strmap_free(&seen);
}

int ptv_sources_import_m3u(struct ptv_store *s, const struct ptv_import_m3u_opts *o,
			   struct ptv_import_report *rep)
{
	struct import_coll coll = {0};
	struct import_ctx x = {.store = s, .opts = o, .rep = rep, .coll = &coll};
	uint64_t t0 = ptv_now_ns();
	int ret;

	memset(rep, 0, sizeof(*rep));
	ret = import_filters_init(&x.filters, o);
	if (!ret)
		ret = import_collect(&x, coll_entry);
	if (!ret && !coll.n && !o->allow_empty) {
		snprintf(rep->error, sizeof(rep->error), "the playlist has no entries");
		ret = -PTV_ERR_PARSE;
	}
	if (!ret) {
		import_prepare(&x);
		rep->entries = coll.n;
		ret = ptv_store_write(s, import_txn, &x);
	}
	if (ret && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "%s", ptv_strerror(ret));
	rep->source_id = x.source_id;
	rep->seconds = (double)(ptv_now_ns() - t0) / 1e9;
	import_ctx_free(&x);
	import_filters_free(&x.filters);
	import_coll_free(&coll);
	return ret;
}

void ptv_import_report_format(const struct ptv_import_report *r, char *buf, size_t len)
{
	size_t errs = 0;
	int n;

	for (int i = 0; i < PTV_M3U_ERR_COUNT; i++)
		errs += r->errors[i];
	n = snprintf(buf, len,
		     "%llu entries -> %llu channels (%llu new, %llu updated, %llu gone, %llu "
		     "duplicates merged, %llu filtered, %llu DRM, %llu number conflicts), %zu "
		     "entry problems, %.2f s",
		     (unsigned long long)r->entries, (unsigned long long)r->channels,
		     (unsigned long long)r->added, (unsigned long long)r->updated,
		     (unsigned long long)r->removed, (unsigned long long)r->merged,
		     (unsigned long long)r->filtered, (unsigned long long)r->drm,
		     (unsigned long long)r->number_conflicts, errs, r->seconds);
	for (int i = 0; i < PTV_M3U_ERR_COUNT && n > 0 && (size_t)n < len; i++) {
		if (r->errors[i])
			n += snprintf(buf + n, len - (size_t)n, "%s %s=%llu", i ? "" : ";",
				      ptv_m3u_error_name(i), (unsigned long long)r->errors[i]);
	}
}
