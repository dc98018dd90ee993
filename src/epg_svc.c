/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The guide inside `plextv serve`: GET /xmltv.xml(.gz) streamed slice by slice from the pool
 * (see epg_output.c for the flow control), scheduled refreshes of guide sources, pruning, and
 * the store-derived gauges.
 *
 * Refresh schedule (checked on the pool once a minute, and at once when the lineup changes):
 * a guide source is due when its refresh period has passed since its last attempt (30 minutes
 * after a failure, at most), or when the lineup now wants other guide channels than at its
 * last import (want_hash: a playlist import added channels, a manual mapping changed), right
 * away unless its last attempt failed less than 5 minutes ago. Pruning runs hourly.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "epg_int.h"
#include "plextv/http.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"
#include "plextv/redact.h"
#include "plextv/router.h"
#include "plextv/store.h"
#include "plextv/workers.h"

#define EPG_SLICE_BYTES	   (1u << 20)
#define EPG_QUEUE_HIGH	   (2u << 20)
#define EPG_CHECK_MS	   60000u
#define EPG_PRUNE_MS	   3600000u
#define EPG_RETRY_S	   1800.0 /* after a failed refresh, at most this long to retry */
#define EPG_LINEUP_RETRY_S 300.0  /* lineup changes trigger a refresh at most this often */
#define EPG_CTYPE_XML	   "application/xml; charset=utf-8"
#define EPG_CTYPE_GZIP	   "application/gzip"

/* Settings a job works with, copied under the lock (SIGHUP may replace them). */
struct epg_job_opts {
	struct ptv_epg_opts o;
	char data_dir[PATH_MAX];
	char user_agent[256];
};

struct ptv_epg_svc {
	struct ptv_store *store;
	struct ptv_pool *pool;
	pthread_mutex_t lock;
	struct epg_job_opts opts;
	atomic_bool refreshing, pruning;
	uint64_t last_check_ms, last_prune_ms;
	uint64_t lineup_version, guide_version; /* as last seen by the tick */
	bool started;
	struct ptv_metric *m_bytes, *m_streams;
	/* Responses in progress: freed here if shutdown dropped their last pool callback. */
	pthread_mutex_t streams_lock;
	struct ptv_list streams;
};

static void svc_opts(struct ptv_epg_svc *svc, struct epg_job_opts *out)
{
	pthread_mutex_lock(&svc->lock);
	*out = svc->opts;
	pthread_mutex_unlock(&svc->lock);
	out->o.data_dir = out->data_dir;
	out->o.user_agent = out->user_agent;
}

static int opts_load(struct epg_job_opts *jo, const struct ptv_config *cfg)
{
	char err[256];
	int ret = ptv_epg_opts_from_config(&jo->o, cfg, err, sizeof(err));

	if (ret) {
		ptv_error("guide", "%s", err);
		return ret;
	}
	snprintf(jo->data_dir, sizeof(jo->data_dir), "%s", cfg->data_dir);
	snprintf(jo->user_agent, sizeof(jo->user_agent), "%s", cfg->user_agent);
	return 0;
}

/* ---- GET /xmltv.xml ---- */

struct epg_stream {
	struct ptv_list node; /* in svc->streams */
	struct ptv_epg_svc *svc;
	struct ptv_http_req *req;
	struct ptv_reactor *reactor;
	struct ptv_epg_render *render;
	struct ptv_buf buf;    /* the slice being rendered (pool) */
	struct ptv_blob *blob; /* the slice handed over (pool -> reactor) */
	int job_ret;	       /* 1 done, 0 more, < 0 error */
	bool gzip;
	bool job_running, started, closed, done, failed;
};

static void stream_free(struct epg_stream *st)
{
	pthread_mutex_lock(&st->svc->streams_lock);
	ptv_list_del(&st->node);
	pthread_mutex_unlock(&st->svc->streams_lock);
	if (st->started)
		ptv_metric_sub(st->svc->m_streams, 1);
	ptv_epg_render_free(st->render);
	ptv_blob_unref(st->blob);
	ptv_buf_free(&st->buf);
	free(st);
}

static void slice_work(void *arg)
{
	struct epg_stream *st = arg;

	ptv_buf_reset(&st->buf);
	st->job_ret = ptv_epg_render_step(st->render, &st->buf, EPG_SLICE_BYTES);
	if (st->job_ret >= 0 && st->buf.len) {
		st->blob = ptv_blob_new(st->buf.data, st->buf.len);
		if (!st->blob)
			st->job_ret = -ENOMEM;
	}
	/* A big slice buffer is not kept between slices of a slow client. */
	if (st->buf.cap > 4 * EPG_SLICE_BYTES)
		ptv_buf_free(&st->buf);
}

static void slice_done(void *arg);

static int slice_submit(struct epg_stream *st)
{
	int ret;

	st->job_running = true;
	ret = ptv_pool_submit(st->svc->pool, st->reactor, slice_work, slice_done, st);
	if (ret)
		st->job_running = false;
	return ret;
}

/* Ends the response without its last chunk, so the client sees a failed transfer. */
static void stream_fail(struct epg_stream *st, int err)
{
	char note[160];
	int n;

	ptv_warn("guide", "/xmltv.xml aborted: %s", ptv_strerror(err));
	st->failed = true;
	n = snprintf(note, sizeof(note), "\n<!-- PlexTV: the guide could not be rendered: %s -->\n",
		     ptv_strerror(err));
	/* Queuing something makes on_drain run, which aborts the connection. */
	ptv_http_stream_write(st->req, st->gzip ? "\n" : note, st->gzip ? 1 : (size_t)n);
}

static int stream_on_drain(struct ptv_http_req *req, void *ctx)
{
	struct epg_stream *st = ctx;

	if (st->failed)
		return -EIO;
	if (!st->job_running && !st->done && slice_submit(st))
		return -EIO;
	return 0;
}

static void stream_on_close(void *ctx)
{
	struct epg_stream *st = ctx;

	st->closed = true;
	if (!st->job_running)
		stream_free(st);
}

static bool stream_start(struct epg_stream *st)
{
	int ret;

	if (st->job_ret < 0) {
		ptv_warn("guide", "/xmltv.xml: %s", ptv_strerror(st->job_ret));
		ptv_http_respond_error(st->req, 500);
		return false;
	}
	ret = ptv_http_stream_begin(st->req, 200, st->gzip ? EPG_CTYPE_GZIP : EPG_CTYPE_XML,
				    PTV_HTTP_STREAM_CHUNKED, stream_on_drain, stream_on_close, st);
	if (ret)
		return false; /* the client left while we rendered: nothing to send */
	st->started = true;
	ptv_metric_add(st->svc->m_streams, 1);
	return true;
}

static void slice_done(void *arg)
{
	struct epg_stream *st = arg;
	struct ptv_blob *blob = st->blob;

	st->blob = NULL;
	if (st->closed || (!st->started && !stream_start(st))) {
		ptv_blob_unref(blob);
		st->job_running = false;
		stream_free(st);
		return;
	}
	/* Still marked running while we queue: a drain callback must not start a second job. */
	if (blob) {
		ptv_metric_add(st->svc->m_bytes, blob->len);
		ptv_http_stream_write_blob(st->req, blob, 0, blob->len);
		ptv_blob_unref(blob);
	}
	st->job_running = false;
	if (st->job_ret < 0) {
		stream_fail(st, st->job_ret);
	} else if (st->job_ret == 1) {
		st->done = true;
		ptv_http_stream_end(st->req);
	} else if (ptv_http_stream_queued(st->req) < EPG_QUEUE_HIGH && slice_submit(st)) {
		stream_fail(st, -ESHUTDOWN);
	}
}

static int head_on_drain(struct ptv_http_req *req, void *ctx)
{
	return 1;
}

static int xmltv_serve(struct ptv_http_req *req, struct ptv_epg_svc *svc, bool gzip)
{
	struct ptv_reactor *r = ptv_http_req_reactor(req);
	struct epg_job_opts jo;
	struct epg_stream *st;
	int ret;

	if (ptv_http_req_method(req) == PTV_HTTP_HEAD)
		return ptv_http_stream_begin(req, 200, gzip ? EPG_CTYPE_GZIP : EPG_CTYPE_XML,
					     PTV_HTTP_STREAM_CHUNKED, head_on_drain, NULL, NULL);
	svc_opts(svc, &jo);
	st = ptv_xcalloc(1, sizeof(*st));
	st->svc = svc;
	pthread_mutex_lock(&svc->streams_lock);
	ptv_list_add_tail(&svc->streams, &st->node);
	pthread_mutex_unlock(&svc->streams_lock);
	st->req = req;
	st->reactor = r;
	st->gzip = gzip;
	ret = ptv_epg_render_new(svc->store, ptv_lineup_current(r), &jo.o,
				 (int64_t)ptv_wall_seconds(), gzip, &st->render);
	if (!ret)
		ret = slice_submit(st);
	if (ret) {
		stream_free(st);
		return ptv_http_respond_error(req, 503);
	}
	/* The first slice decides between 200 and 500. */
	ptv_http_defer(req);
	return 0;
}

static int xmltv_handler(struct ptv_http_req *req, void *ctx)
{
	return xmltv_serve(req, ctx, false);
}

static int xmltv_gz_handler(struct ptv_http_req *req, void *ctx)
{
	return xmltv_serve(req, ctx, true);
}

int ptv_epg_routes_register(struct ptv_router *rt, struct ptv_epg_svc *svc)
{
	const struct ptv_route routes[] = {
		{.name = "xmltv",
		 .methods = PTV_HTTP_GET,
		 .path = "/xmltv.xml",
		 .fn = xmltv_handler,
		 .ctx = svc},
		{.name = "xmltv_gz",
		 .methods = PTV_HTTP_GET,
		 .path = "/xmltv.xml.gz",
		 .fn = xmltv_gz_handler,
		 .ctx = svc},
		{.name = "epg_xml",
		 .methods = PTV_HTTP_GET,
		 .path = "/epg.xml",
		 .fn = xmltv_handler,
		 .ctx = svc},
	};
	int ret = 0;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(routes) && !ret; i++)
		ret = ptv_router_add(rt, &routes[i]);
	return ret;
}

/* ---- scheduled refreshes ---- */

struct due_ctx {
	struct ptv_store *s;
	double now;
	char want[24];
	uint32_t *ids;
	size_t n;
};

static bool source_due(const struct due_ctx *d, json_t *rec)
{
	double last = json_number_value(json_object_get(rec, "last_attempt"));
	double period = json_number_value(json_object_get(rec, "refresh_s"));
	const char *err = json_string_value(json_object_get(rec, "last_error")) ?: "";
	const char *hash = json_string_value(json_object_get(rec, "want_hash")) ?: "";

	if (err[0] && period > EPG_RETRY_S)
		period = EPG_RETRY_S;
	if (period > 0 && d->now >= last + period)
		return true;
	return d->want[0] && strcmp(hash, d->want) &&
	       (!err[0] || d->now >= last + EPG_LINEUP_RETRY_S);
}

static int due_txn(MDB_txn *txn, void *arg)
{
	struct due_ctx *d = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, ptv_store_dbi(d->s, PTV_DB_SOURCES), &cur);

	if (rc)
		return ptv_store_err(rc);
	d->n = 0;
	while (!mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);

		if (!strcmp(json_string_value(json_object_get(o, "kind")) ?: "", "xmltv") &&
		    source_due(d, o)) {
			d->ids = ptv_xrealloc(d->ids, (d->n + 1) * sizeof(*d->ids));
			d->ids[d->n++] = epg_be32(k.mv_data);
		}
		json_decref(o);
	}
	mdb_cursor_close(cur);
	return 0;
}

static void refresh_one(struct ptv_epg_svc *svc, const struct epg_job_opts *jo, uint32_t id)
{
	struct ptv_epg_report rep;
	char line[1024];
	int ret = ptv_epg_refresh(svc->store, &jo->o, id, &rep);

	ptv_epg_report_format(&rep, line, sizeof(line));
	if (ret)
		ptv_error("guide", "source %u: refresh failed: %s; the previous guide stays", id,
			  rep.error[0] ? rep.error : ptv_strerror(ret));
	else
		ptv_info("guide", "source %u refreshed: %s", id, line);
}

static void refresh_work(void *arg)
{
	struct ptv_epg_svc *svc = arg;
	struct due_ctx d = {svc->store, ptv_wall_seconds()};
	struct epg_job_opts jo;
	uint64_t want;

	svc_opts(svc, &jo);
	if (!epg_want_hash(svc->store, &want))
		snprintf(d.want, sizeof(d.want), "%016llx", (unsigned long long)want);
	if (!ptv_store_read(svc->store, due_txn, &d)) {
		for (size_t i = 0; i < d.n; i++)
			refresh_one(svc, &jo, d.ids[i]);
	}
	free(d.ids);
	epg_metrics_store(svc->store);
	atomic_store(&svc->refreshing, false);
}

static void prune_work(void *arg)
{
	struct ptv_epg_svc *svc = arg;
	struct epg_job_opts jo;
	int64_t n;

	svc_opts(svc, &jo);
	n = ptv_epg_prune(svc->store, &jo.o, (int64_t)ptv_wall_seconds());
	if (n > 0)
		ptv_info("guide", "pruned %lld programmes that ended before the retention window",
			 (long long)n);
	else if (n < 0)
		ptv_warn("guide", "pruning failed: %s", ptv_strerror((int)n));
	atomic_store(&svc->pruning, false);
}

void ptv_epg_svc_tick(struct ptv_epg_svc *svc)
{
	uint64_t now = ptv_now_ms(), lv, gv;
	bool changed;

	if (!svc)
		return;
	/* Another process imported a playlist or changed a mapping: look now, not in a minute. */
	lv = ptv_store_version(svc->store, "lineup_version");
	gv = ptv_store_version(svc->store, "guide_version");
	changed = lv != svc->lineup_version || gv != svc->guide_version;
	if ((!svc->started || changed || now - svc->last_check_ms >= EPG_CHECK_MS) &&
	    !atomic_exchange(&svc->refreshing, true)) {
		/* Versions are taken only when a check starts: a change seen while one runs is
		 * looked at by the next tick. */
		svc->last_check_ms = now;
		svc->lineup_version = lv;
		svc->guide_version = gv;
		if (ptv_pool_submit(svc->pool, NULL, refresh_work, NULL, svc))
			atomic_store(&svc->refreshing, false);
	}
	if (!svc->started || now - svc->last_prune_ms >= EPG_PRUNE_MS) {
		svc->last_prune_ms = now;
		if (!atomic_exchange(&svc->pruning, true) &&
		    ptv_pool_submit(svc->pool, NULL, prune_work, NULL, svc))
			atomic_store(&svc->pruning, false);
	}
	svc->started = true;
}

/* ---- lifecycle ---- */

int ptv_epg_svc_new(const struct ptv_config *cfg, struct ptv_store *store, struct ptv_pool *pool,
		    struct ptv_epg_svc **out)
{
	struct ptv_epg_svc *svc = ptv_xcalloc(1, sizeof(*svc));
	int ret = opts_load(&svc->opts, cfg);

	if (ret) {
		free(svc);
		return ret;
	}
	pthread_mutex_init(&svc->lock, NULL);
	pthread_mutex_init(&svc->streams_lock, NULL);
	ptv_list_init(&svc->streams);
	svc->store = store;
	svc->pool = pool;
	svc->m_bytes =
		ptv_metric_simple("plextv_guide_output_bytes_total",
				  "Bytes of /xmltv.xml(.gz) handed to clients", PTV_METRIC_COUNTER);
	svc->m_streams = ptv_metric_simple("plextv_guide_output_streams",
					   "/xmltv.xml responses being streamed", PTV_METRIC_GAUGE);
	epg_metrics_store(store);
	*out = svc;
	return 0;
}

void ptv_epg_svc_free(struct ptv_epg_svc *svc)
{
	struct ptv_list *pos, *tmp;

	if (!svc)
		return;
	/* The pool and the reactors are gone: whatever is left lost its last callback (a slice
	 * finished after its reactor stopped). */
	ptv_list_for_each_safe (pos, tmp, &svc->streams)
		stream_free(ptv_container_of(pos, struct epg_stream, node));
	pthread_mutex_destroy(&svc->streams_lock);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}

void ptv_epg_svc_reconfigure(struct ptv_epg_svc *svc, const struct ptv_config *cfg)
{
	struct epg_job_opts jo;

	if (!svc || opts_load(&jo, cfg))
		return; /* logged; the running settings stay */
	pthread_mutex_lock(&svc->lock);
	svc->opts = jo;
	pthread_mutex_unlock(&svc->lock);
}
