/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ace Stream engine client (acestream.h).
 *
 * Every engine call is one bounded HTTP GET through the fetcher (connect, total and stall
 * timeouts all set to the call's timeout), its body capped at ENGINE_BODY_MAX and parsed with
 * jansson. The engine wraps every answer in {"response"|"result": …, "error": null|"text"};
 * one function (engine_call) turns transport, HTTP, JSON and engine failures into the
 * distinct codes the header lists, so each caller only reads fields.
 *
 * Sessions made by ptv_acestream_resolve() are refcounted and listed on the engine object so
 * the monitor can poll stat_url without holding the lock across the HTTP call, and a release
 * racing a poll frees the session only after the poll is done.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "plextv/acestream.h"
#include "plextv/common.h"
#include "plextv/config.h"
#include "plextv/fetch.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/redact.h"

#define MOD		 "acestream"
#define ENGINE_DEFAULT	 "http://127.0.0.1:6878"
#define ENGINE_BODY_MAX	 (64u * 1024) /* the JSON answers are a few hundred bytes */
#define URL_MAX		 2048
#define POLL_BATCH	 256 /* sessions polled per tick; the rest wait for the next one */
#define VERSION_RETRY_MS 10000u
#define LABEL_MAX	 32
#define CHANNEL_SERIES	 1024

/* ---- ids and pids ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copies a 40-hex id that ends at @s[40] (end, '/', '?', '#', '&') lowercased into @id. */
static int take_hex_id(const char *s, char *id)
{
	for (size_t i = 0; i < PTV_ACESTREAM_ID_LEN; i++) {
		if (hexval((unsigned char)s[i]) < 0)
			return -EINVAL;
		id[i] = (char)tolower((unsigned char)s[i]);
	}
	if (s[PTV_ACESTREAM_ID_LEN] && !strchr("/?#&", s[PTV_ACESTREAM_ID_LEN]))
		return -EINVAL;
	id[PTV_ACESTREAM_ID_LEN] = '\0';
	return 0;
}

/* "…?a=b&id=X…": finds @key= as a query parameter of an engine URL. */
static const char *query_param(const char *url, const char *key)
{
	const char *q = strchr(url, '?');
	size_t k = strlen(key);

	for (; q && *q; q = strchr(q + 1, '&')) {
		if (!strncasecmp(q + 1, key, k) && q[1 + k] == '=')
			return q + 2 + k;
	}
	return NULL;
}

static int parse_engine_url(const char *src, char *id, enum ptv_acestream_selector *sel)
{
	const char *v;

	if (!strstr(src, "/ace/getstream") && !strstr(src, "/ace/manifest.m3u8"))
		return -EINVAL;
	if ((v = query_param(src, "id")) || (v = query_param(src, "content_id"))) {
		*sel = PTV_ACESTREAM_CONTENT_ID;
		return take_hex_id(v, id);
	}
	if ((v = query_param(src, "infohash"))) {
		*sel = PTV_ACESTREAM_INFOHASH;
		return take_hex_id(v, id);
	}
	return -EINVAL;
}

int ptv_acestream_parse_id(const char *src, char id[PTV_ACESTREAM_ID_LEN + 1],
			   enum ptv_acestream_selector *sel)
{
	const char *p = src;

	if (!src)
		return -EINVAL;
	*sel = PTV_ACESTREAM_CONTENT_ID;
	if (!strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8))
		return parse_engine_url(src, id, sel);
	if (!strncasecmp(p, "acestream://", 12))
		p += 12;
	else if (!strncasecmp(p, "ace://", 6))
		p += 6;
	if (!strncasecmp(p, "infohash=", 9) || !strncasecmp(p, "infohash:", 9)) {
		*sel = PTV_ACESTREAM_INFOHASH;
		p += 9;
	}
	return take_hex_id(p, id);
}

/* RFC 4122 version 4: random, with the version and variant bits set. */
static int uuid4(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

/* ---- one engine call ---- */

struct membuf {
	char *p;
	size_t n;
};

static int membuf_sink(const char *data, size_t len, void *ctx)
{
	struct membuf *m = ctx;

	/* The fetcher's max_bytes keeps n + len within ENGINE_BODY_MAX. */
	memcpy(m->p + m->n, data, len);
	m->n += len;
	return 0;
}

static bool engine_url_ok(const char *u)
{
	if (!u || (strncasecmp(u, "http://", 7) && strncasecmp(u, "https://", 8)))
		return false;
	for (; *u; u++)
		if ((unsigned char)*u <= 0x20 || *u == 0x7f)
			return false;
	return true;
}

static void set_reason(char *reason, size_t len, const char *fmt, ...) PTV_PRINTF(3, 4);
static void set_reason(char *reason, size_t len, const char *fmt, ...)
{
	char raw[512];
	va_list ap;

	if (!reason || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* Engine text and URLs may carry tokens or user:pass@: redacted before anyone sees it. */
	for (char *c = raw; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	ptv_redact_text(raw, reason, len);
}

/* Maps the fetcher's result to our codes; the reason names the failure class. */
static int transport_error(int rc, const struct ptv_fetch_result *res, char *reason, size_t len)
{
	if (res->status >= 400) {
		set_reason(reason, len, "engine answered HTTP %ld", res->status);
		return -EIO;
	}
	switch (rc) {
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
		set_reason(reason, len, "engine not reachable (%s)", ptv_strerror(rc));
		return rc;
	case -ETIMEDOUT:
		set_reason(reason, len, "engine did not answer in time");
		return rc;
	case -EFBIG:
		set_reason(reason, len, "engine answer too large");
		return -EBADMSG;
	case -EINVAL:
	case -EPERM:
	case -EPROTONOSUPPORT:
	case -ELOOP:
		set_reason(reason, len, "bad engine URL (%s)", ptv_strerror(rc));
		return -EINVAL;
	default:
		set_reason(reason, len, "engine request failed: %s", res->error);
		return rc;
	}
}

/* The envelope's "error": a string (or any non-null value) means the engine refused. */
static int envelope_error(json_t *root, char *reason, size_t len)
{
	json_t *e = json_object_get(root, "error");

	if (!e || json_is_null(e) || json_is_false(e))
		return 0;
	if (json_is_string(e) && !json_string_length(e))
		return 0;
	set_reason(reason, len, "engine error: %s",
		   json_is_string(e) ? json_string_value(e) : "(not a string)");
	return -EREMOTEIO;
}

/*
 * GET @url; on success *@root is the parsed envelope and *@payload its @key member (an
 * object; @key NULL: not looked at). The caller frees *@root.
 */
static int engine_call(const char *url, unsigned timeout_ms, const char *key, json_t **root,
		       json_t **payload, char *reason, size_t len)
{
	struct ptv_fetch_opts o;
	struct ptv_fetch_result res;
	struct membuf m = {0};
	json_error_t jerr;
	int rc;

	*root = *payload = NULL;
	if (!engine_url_ok(url)) {
		set_reason(reason, len, "bad engine URL");
		return -EINVAL;
	}
	m.p = malloc(ENGINE_BODY_MAX);
	if (!m.p)
		return -ENOMEM;
	ptv_fetch_opts_init(&o);
	o.url = url;
	o.connect_timeout_ms = o.timeout_ms = o.stall_timeout_ms = timeout_ms;
	o.max_bytes = ENGINE_BODY_MAX;
	/* Engine failures are reported by the callers (806 answers, metrics, one log line per
	 * state change): an engine that is simply not installed must not fill the log. */
	o.quiet = true;
	rc = ptv_fetch(&o, membuf_sink, &m, &res);
	if (rc) {
		rc = transport_error(rc, &res, reason, len);
		goto out;
	}
	*root = json_loadb(m.p, m.n, 0, &jerr);
	if (!*root || !json_is_object(*root)) {
		set_reason(reason, len, "engine answer is not a JSON object");
		rc = -EBADMSG;
		goto out;
	}
	rc = envelope_error(*root, reason, len);
	if (rc || !key)
		goto out;
	*payload = json_object_get(*root, key);
	if (!json_is_object(*payload)) {
		set_reason(reason, len, "engine answer has no \"%s\" object", key);
		rc = -EBADMSG;
	}
out:
	if (rc) {
		json_decref(*root);
		*root = *payload = NULL;
	}
	ptv_fetch_result_deinit(&res);
	free(m.p);
	return rc;
}

static unsigned timeout_or(unsigned v, unsigned def)
{
	return v ? v : def;
}

/* "http://h:6878///" → "http://h:6878" into @out. */
static int engine_base(const char *engine, char *out, size_t len)
{
	size_t n;

	if (!engine || !engine[0])
		engine = ENGINE_DEFAULT;
	if (!engine_url_ok(engine) || strchr(engine, '?') || strchr(engine, '#'))
		return -EINVAL;
	n = strlen(engine);
	while (n && engine[n - 1] == '/')
		n--;
	if (n + 1 > len)
		return -EINVAL;
	memcpy(out, engine, n);
	out[n] = '\0';
	return 0;
}

/* ---- start / stop / stat / version ---- */

/* Copies a URL field; a missing one is "" unless @required; a bad one is an error. */
static int copy_url(json_t *resp, const char *key, char *dst, size_t cap, bool required)
{
	const char *v = json_string_value(json_object_get(resp, key));

	dst[0] = '\0';
	if (!v || !v[0])
		return required ? -EBADMSG : 0;
	if (!engine_url_ok(v) || strlen(v) >= cap)
		return -EBADMSG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static void copy_str(json_t *resp, const char *key, char *dst, size_t cap)
{
	const char *v = json_string_value(json_object_get(resp, key));

	snprintf(dst, cap, "%s", v ? v : "");
	for (char *c = dst; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
}

static int session_fill(struct ptv_acestream_session *s, json_t *resp)
{
	json_t *live = json_object_get(resp, "is_live");
	int rc;

	rc = copy_url(resp, "playback_url", s->playback_url, sizeof(s->playback_url), true);
	rc = rc ?: copy_url(resp, "stat_url", s->stat_url, sizeof(s->stat_url), false);
	rc = rc ?: copy_url(resp, "command_url", s->command_url, sizeof(s->command_url), false);
	if (rc) {
		set_reason(s->reason, sizeof(s->reason), "engine gave no usable playback URL");
		return rc;
	}
	copy_str(resp, "infohash", s->infohash, sizeof(s->infohash));
	copy_str(resp, "playback_session_id", s->playback_session_id,
		 sizeof(s->playback_session_id));
	s->is_live = json_is_true(live) || (json_is_integer(live) && json_integer_value(live));
	return 0;
}

int ptv_acestream_start(const char *engine, const char *src, unsigned timeout_ms,
			struct ptv_acestream_session *out)
{
	char base[URL_MAX], url[URL_MAX + 256];
	json_t *root, *resp;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = ptv_acestream_parse_id(src, out->id, &out->sel);
	if (rc) {
		set_reason(out->reason, sizeof(out->reason), "not an Acestream id");
		return rc;
	}
	if (engine_base(engine, base, sizeof(base))) {
		set_reason(out->reason, sizeof(out->reason), "bad engine URL");
		return -EINVAL;
	}
	rc = uuid4(out->pid);
	if (rc)
		return rc;
	snprintf(url, sizeof(url), "%s/ace/getstream?%s=%s&format=json&pid=%s", base,
		 out->sel == PTV_ACESTREAM_INFOHASH ? "infohash" : "id", out->id, out->pid);
	rc = engine_call(url, timeout_or(timeout_ms, PTV_ACESTREAM_TIMEOUT_MS_DEFAULT), "response",
			 &root, &resp, out->reason, sizeof(out->reason));
	if (rc)
		return rc;
	rc = session_fill(out, resp);
	json_decref(root);
	return rc;
}

int ptv_acestream_stop(struct ptv_acestream_session *s, unsigned timeout_ms)
{
	char url[URL_MAX];
	json_t *root, *resp;
	int rc;

	if (!s->command_url[0])
		return 0;
	snprintf(url, sizeof(url), "%s%cmethod=stop", s->command_url,
		 strchr(s->command_url, '?') ? '&' : '?');
	/* Engines answer stop with "response": "ok" (a string) or an object: either is a stop. */
	rc = engine_call(url, timeout_or(timeout_ms, PTV_ACESTREAM_STOP_TIMEOUT_MS_DEFAULT), NULL,
			 &root, &resp, s->reason, sizeof(s->reason));
	json_decref(root);
	return rc;
}

static uint64_t juint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
	if (json_is_real(v))
		return json_real_value(v) > 0 ? (uint64_t)json_real_value(v) : 0;
	return 0;
}

int ptv_acestream_stat(struct ptv_acestream_session *s, unsigned timeout_ms,
		       struct ptv_acestream_stat *out)
{
	json_t *root, *r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!s->stat_url[0])
		return -ENOENT;
	rc = engine_call(s->stat_url, timeout_or(timeout_ms, PTV_ACESTREAM_TIMEOUT_MS_DEFAULT),
			 "response", &root, &r, s->reason, sizeof(s->reason));
	if (rc)
		return rc;
	copy_str(r, "status", out->status, sizeof(out->status));
	out->peers = (unsigned)PTV_MIN(juint(r, "peers"), (uint64_t)UINT32_MAX);
	/* The engine reports speeds in KiB/s. */
	out->speed_down = PTV_MIN(juint(r, "speed_down"), UINT64_MAX / 1024) * 1024;
	out->speed_up = PTV_MIN(juint(r, "speed_up"), UINT64_MAX / 1024) * 1024;
	out->downloaded = juint(r, "downloaded");
	out->uploaded = juint(r, "uploaded");
	out->progress = (unsigned)PTV_MIN(juint(r, "progress"), 100u);
	json_decref(root);
	return 0;
}

int ptv_acestream_version(const char *engine, unsigned timeout_ms, char *version, size_t len,
			  long *code, char *reason, size_t reason_len)
{
	char base[URL_MAX], url[URL_MAX + 256];
	json_t *root, *r;
	const char *v;
	int rc;

	if (engine_base(engine, base, sizeof(base))) {
		set_reason(reason, reason_len, "bad engine URL");
		return -EINVAL;
	}
	snprintf(url, sizeof(url), "%s/webui/api/service?method=get_version&format=json", base);
	rc = engine_call(url, timeout_or(timeout_ms, PTV_ACESTREAM_TIMEOUT_MS_DEFAULT), "result",
			 &root, &r, reason, reason_len);
	if (rc)
		return rc;
	v = json_string_value(json_object_get(r, "version"));
	if (version && len)
		copy_str(r, "version", version, len);
	if (code)
		*code = (long)juint(r, "code");
	if (!v) {
		set_reason(reason, reason_len, "engine answer has no version");
		rc = -EBADMSG;
	}
	json_decref(root);
	return rc;
}

/* ---- errors ---- */

int ptv_acestream_hdhr_error(int err)
{
	return err == -PTV_ERR_LIMIT ? 805 : 806;
}

const char *ptv_acestream_err_reason(int err)
{
	switch (err) {
	case 0:
		return "none";
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
		return "refused";
	case -ETIMEDOUT:
		return "timeout";
	case -EIO:
		return "http";
	case -EBADMSG:
		return "malformed";
	case -EREMOTEIO:
		return "engine";
	case -PTV_ERR_LIMIT:
		return "limit";
	case -EINVAL:
		return "invalid";
	default:
		return "other";
	}
}

/* ---- the engine object: limits, sessions, metrics, monitor ---- */

struct ace_metrics {
	struct ptv_metric_family *errors, *info, *status;
	struct ptv_metric_family *peers, *down, *up, *dled, *uled, *prebuf;
	struct ptv_metric *up_g, *sessions, *limit, *starts, *stops;
};

struct ace_sess {
	struct ptv_acestream_session pub;
	struct ptv_acestream *a;
	struct ptv_list link; /* on ptv_acestream.sessions while live */
	unsigned refs;	      /* under the engine lock */
	bool live;	      /* false once released: polls no longer touch metrics */
	char label[LABEL_MAX];
	struct ptv_acestream_stat last;
	struct ptv_metric *peers, *down, *up, *dled, *uled, *prebuf, *status;
};

struct ptv_acestream {
	pthread_mutex_t lock;
	char engine[URL_MAX];
	unsigned max_sessions, timeout_ms, stop_timeout_ms, stat_ms, prebuffer_ms;
	unsigned used; /* slots held */
	struct ptv_list sessions;
	struct ace_metrics m;
	struct ptv_metric *version_series; /* the info series set to 1 */
	pthread_mutex_t tick_lock;	   /* one tick at a time */
	uint64_t next_version_ms, next_stat_ms;
	/* monitor thread */
	pthread_t thread;
	bool thread_started;
	bool stopping;
	pthread_cond_t cond;
};

static void metrics_register(struct ace_metrics *m)
{
	static const char *const reason_l[] = {"call", "reason", NULL};
	static const char *const version_l[] = {"version", NULL};
	static const char *const chan_l[] = {"channel", NULL};
	static const char *const status_l[] = {"channel", "status", NULL};

	m->up_g = ptv_metric_simple("plextv_acestream_engine_up",
				    "1 when the last engine version check succeeded",
				    PTV_METRIC_GAUGE);
	m->info = ptv_metrics_family("plextv_acestream_engine_info",
				     "engine version (value 1) from the last successful check",
				     PTV_METRIC_GAUGE, version_l, NULL, 0, 16);
	m->sessions =
		ptv_metric_simple("plextv_acestream_sessions",
				  "engine sessions (one pid each) open now", PTV_METRIC_GAUGE);
	m->limit =
		ptv_metric_simple("plextv_acestream_sessions_limit",
				  "most engine sessions at once (0 = unlimited)", PTV_METRIC_GAUGE);
	m->starts = ptv_metric_simple("plextv_acestream_getstream_requests_total",
				      "getstream calls made to the engine", PTV_METRIC_COUNTER);
	m->stops = ptv_metric_simple("plextv_acestream_stop_requests_total",
				     "command_url?method=stop calls made to the engine",
				     PTV_METRIC_COUNTER);
	m->errors = ptv_metrics_family("plextv_acestream_errors_total",
				       "failed engine calls by call and reason", PTV_METRIC_COUNTER,
				       reason_l, NULL, 0, 64);
	m->peers = ptv_metrics_family("plextv_acestream_peers", "peers of the channel's session",
				      PTV_METRIC_GAUGE, chan_l, NULL, 0, CHANNEL_SERIES);
	m->down = ptv_metrics_family("plextv_acestream_download_speed_bytes_per_second",
				     "engine download speed for the channel", PTV_METRIC_GAUGE,
				     chan_l, NULL, 0, CHANNEL_SERIES);
	m->up = ptv_metrics_family("plextv_acestream_upload_speed_bytes_per_second",
				   "engine upload speed for the channel", PTV_METRIC_GAUGE, chan_l,
				   NULL, 0, CHANNEL_SERIES);
	m->dled = ptv_metrics_family("plextv_acestream_downloaded_bytes",
				     "bytes the channel's engine session downloaded",
				     PTV_METRIC_GAUGE, chan_l, NULL, 0, CHANNEL_SERIES);
	m->uled = ptv_metrics_family("plextv_acestream_uploaded_bytes",
				     "bytes the channel's engine session uploaded",
				     PTV_METRIC_GAUGE, chan_l, NULL, 0, CHANNEL_SERIES);
	m->prebuf = ptv_metrics_family("plextv_acestream_prebuffer_ratio",
				       "prebuffer progress of the channel's session (0..1)",
				       PTV_METRIC_GAUGE, chan_l, NULL, 0, CHANNEL_SERIES);
	m->status = ptv_metrics_family("plextv_acestream_status",
				       "1 for the engine status of the channel's session",
				       PTV_METRIC_GAUGE, status_l, NULL, 0, 4 * CHANNEL_SERIES);
}

static void count_error(struct ptv_acestream *a, const char *call, int err)
{
	const char *v[] = {call, ptv_acestream_err_reason(err), NULL};

	ptv_metric_inc(ptv_metric_get(a->m.errors, v));
}

static int opts_apply(struct ptv_acestream *a, const struct ptv_acestream_opts *o)
{
	char base[URL_MAX];

	if (engine_base(o->engine, base, sizeof(base)))
		return -EINVAL;
	pthread_mutex_lock(&a->lock);
	memcpy(a->engine, base, strlen(base) + 1);
	a->max_sessions = o->max_sessions;
	a->timeout_ms = timeout_or(o->timeout_ms, PTV_ACESTREAM_TIMEOUT_MS_DEFAULT);
	a->stop_timeout_ms = timeout_or(o->stop_timeout_ms, PTV_ACESTREAM_STOP_TIMEOUT_MS_DEFAULT);
	a->stat_ms = o->stat_interval_ms;
	a->prebuffer_ms = o->prebuffer_ms;
	a->next_version_ms = 0; /* a new engine is checked at once */
	pthread_mutex_unlock(&a->lock);
	ptv_metric_set(a->m.limit, o->max_sessions);
	return 0;
}

int ptv_acestream_new(const struct ptv_acestream_opts *o, struct ptv_acestream **out)
{
	struct ptv_acestream *a = ptv_xcalloc(1, sizeof(*a));
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->tick_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	ptv_list_init(&a->sessions);
	metrics_register(&a->m);
	rc = opts_apply(a, o);
	if (rc) {
		ptv_error(MOD, "invalid engine URL");
		ptv_acestream_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int ptv_acestream_reconfigure(struct ptv_acestream *a, const struct ptv_acestream_opts *o)
{
	return opts_apply(a, o);
}

unsigned ptv_acestream_prebuffer_ms(const struct ptv_acestream *a)
{
	/* Reactors and pool threads read it while SIGHUP may rewrite it. */
	struct ptv_acestream *m = (struct ptv_acestream *)a;
	unsigned ms;

	pthread_mutex_lock(&m->lock);
	ms = m->prebuffer_ms;
	pthread_mutex_unlock(&m->lock);
	return ms;
}

int ptv_acestream_slot_acquire(struct ptv_acestream *a)
{
	int rc = 0;

	pthread_mutex_lock(&a->lock);
	if (a->max_sessions && a->used >= a->max_sessions)
		rc = -PTV_ERR_LIMIT;
	else
		a->used++;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void ptv_acestream_slot_release(struct ptv_acestream *a)
{
	pthread_mutex_lock(&a->lock);
	PTV_BUG_ON(!a->used);
	a->used--;
	pthread_mutex_unlock(&a->lock);
}

unsigned ptv_acestream_slots_used(struct ptv_acestream *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->used;
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* ---- sessions ---- */

static struct ace_sess *sess_of(struct ptv_acestream_session *s)
{
	return ptv_container_of(s, struct ace_sess, pub);
}

static void sess_metrics(struct ptv_acestream *a, struct ace_sess *x)
{
	const char *v[] = {x->label, NULL};

	x->peers = ptv_metric_get(a->m.peers, v);
	x->down = ptv_metric_get(a->m.down, v);
	x->up = ptv_metric_get(a->m.up, v);
	x->dled = ptv_metric_get(a->m.dled, v);
	x->uled = ptv_metric_get(a->m.uled, v);
	x->prebuf = ptv_metric_get(a->m.prebuf, v);
}

/* The engine's status words; anything else is "other" (bounded label values). */
static const char *status_label(const char *s)
{
	static const char *const known[] = {"prebuf", "dl", "buf", "wait", "check", "idle", NULL};

	for (const char *const *k = known; *k; k++)
		if (!strcmp(s, *k))
			return *k;
	return s[0] ? "other" : "unknown";
}

/* Under the engine lock; x->live. */
static void sess_metrics_set(struct ptv_acestream *a, struct ace_sess *x,
			     const struct ptv_acestream_stat *st)
{
	const char *v[] = {x->label, status_label(st->status), NULL};
	struct ptv_metric *status = ptv_metric_get(a->m.status, v);

	ptv_metric_set(x->peers, st->peers);
	ptv_metric_set(x->down, (double)st->speed_down);
	ptv_metric_set(x->up, (double)st->speed_up);
	ptv_metric_set(x->dled, (double)st->downloaded);
	ptv_metric_set(x->uled, (double)st->uploaded);
	ptv_metric_set(x->prebuf, st->progress / 100.0);
	if (x->status != status)
		ptv_metric_set(x->status, 0);
	x->status = status;
	ptv_metric_set(status, 1);
}

static void sess_metrics_clear(struct ace_sess *x)
{
	struct ptv_metric *all[] = {x->peers, x->down,	 x->up,	   x->dled,
				    x->uled,  x->prebuf, x->status};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(all); i++)
		ptv_metric_set(all[i], 0);
}

static void sess_unref(struct ptv_acestream *a, struct ace_sess *x)
{
	bool last;

	pthread_mutex_lock(&a->lock);
	last = --x->refs == 0;
	pthread_mutex_unlock(&a->lock);
	if (last)
		free(x);
}

static struct ace_sess *sess_new(struct ptv_acestream *a, const char *label)
{
	struct ace_sess *x = ptv_xcalloc(1, sizeof(*x));

	x->a = a;
	snprintf(x->label, sizeof(x->label), "%s", label && label[0] ? label : "?");
	ptv_list_init(&x->link);
	x->refs = 1;
	sess_metrics(a, x);
	return x;
}

static void engine_snapshot(struct ptv_acestream *a, char *engine, unsigned *timeout)
{
	pthread_mutex_lock(&a->lock);
	memcpy(engine, a->engine, strlen(a->engine) + 1);
	*timeout = a->timeout_ms;
	pthread_mutex_unlock(&a->lock);
}

int ptv_acestream_resolve(struct ptv_acestream *a, const char *channel_url, const char *label,
			  struct ptv_acestream_session **out, char *playback_url, size_t len)
{
	char engine[URL_MAX];
	struct ace_sess *x;
	unsigned timeout;
	int rc;

	*out = NULL;
	rc = ptv_acestream_slot_acquire(a);
	if (rc) {
		count_error(a, "getstream", rc);
		ptv_warn(MOD, "[%s] engine session limit reached", label ? label : "?");
		return rc;
	}
	x = sess_new(a, label);
	engine_snapshot(a, engine, &timeout);
	ptv_metric_inc(a->m.starts);
	rc = ptv_acestream_start(engine, channel_url, timeout, &x->pub);
	if (!rc && strlen(x->pub.playback_url) >= len) {
		set_reason(x->pub.reason, sizeof(x->pub.reason), "playback URL too long");
		ptv_acestream_stop(&x->pub, 1000);
		rc = -ENAMETOOLONG;
	}
	if (rc) {
		count_error(a, "getstream", rc);
		ptv_warn(MOD, "[%s] getstream failed: %s", x->label, x->pub.reason);
		ptv_acestream_slot_release(a);
		free(x);
		return rc;
	}
	memcpy(playback_url, x->pub.playback_url, strlen(x->pub.playback_url) + 1);
	pthread_mutex_lock(&a->lock);
	x->live = true;
	ptv_list_add_tail(&a->sessions, &x->link);
	pthread_mutex_unlock(&a->lock);
	ptv_metric_add(a->m.sessions, 1);
	ptv_info(MOD, "[%s] engine session %s (pid %s, %s)", x->label, x->pub.playback_session_id,
		 x->pub.pid, x->pub.is_live ? "live" : "vod");
	*out = &x->pub;
	return 0;
}

void ptv_acestream_release(struct ptv_acestream *a, struct ptv_acestream_session *s)
{
	struct ace_sess *x;
	unsigned timeout;
	int rc;

	if (!s)
		return;
	x = sess_of(s);
	pthread_mutex_lock(&a->lock);
	x->live = false;
	ptv_list_del(&x->link);
	timeout = a->stop_timeout_ms;
	sess_metrics_clear(x);
	pthread_mutex_unlock(&a->lock);
	ptv_metric_inc(a->m.stops);
	rc = ptv_acestream_stop(s, timeout);
	if (rc) {
		count_error(a, "stop", rc);
		ptv_warn(MOD, "[%s] stop failed: %s", x->label, s->reason);
	} else {
		ptv_info(MOD, "[%s] engine session stopped", x->label);
	}
	ptv_metric_sub(a->m.sessions, 1);
	ptv_acestream_slot_release(a);
	sess_unref(a, x);
}

int ptv_acestream_poll(struct ptv_acestream *a, struct ptv_acestream_session *s)
{
	struct ace_sess *x = sess_of(s);
	struct ptv_acestream_stat st;
	unsigned timeout;
	int rc;

	pthread_mutex_lock(&a->lock);
	timeout = a->timeout_ms;
	pthread_mutex_unlock(&a->lock);
	rc = ptv_acestream_stat(s, timeout, &st);
	if (rc) {
		count_error(a, "stat", rc);
		return rc;
	}
	pthread_mutex_lock(&a->lock);
	if (x->live) {
		x->last = st;
		sess_metrics_set(a, x, &st);
	}
	pthread_mutex_unlock(&a->lock);
	ptv_debug(MOD, "[%s] %s peers=%u down=%llu B/s", x->label, st.status, st.peers,
		  (unsigned long long)st.speed_down);
	return 0;
}

void ptv_acestream_last_stat(struct ptv_acestream_session *s, struct ptv_acestream_stat *out)
{
	struct ace_sess *x = sess_of(s);

	pthread_mutex_lock(&x->a->lock);
	*out = x->last;
	pthread_mutex_unlock(&x->a->lock);
}

/* ---- monitor ---- */

static void version_check(struct ptv_acestream *a)
{
	char engine[URL_MAX], version[32], reason[160];
	const char *v[] = {version, NULL};
	struct ptv_metric *series;
	unsigned timeout;
	int rc;

	engine_snapshot(a, engine, &timeout);
	rc = ptv_acestream_version(engine, timeout, version, sizeof(version), NULL, reason,
				   sizeof(reason));
	pthread_mutex_lock(&a->lock);
	a->next_version_ms =
		ptv_now_ms() + (rc ? VERSION_RETRY_MS : PTV_ACESTREAM_VERSION_MS_DEFAULT);
	pthread_mutex_unlock(&a->lock);
	ptv_metric_set(a->m.up_g, rc ? 0 : 1);
	if (rc) {
		count_error(a, "version", rc);
		ptv_debug(MOD, "engine version check failed: %s", reason);
		return;
	}
	series = ptv_metric_get(a->m.info, v);
	if (series != a->version_series) {
		ptv_metric_set(a->version_series, 0);
		ptv_info(MOD, "engine version %s", version);
	}
	a->version_series = series; /* only ticks touch it, one at a time */
	ptv_metric_set(series, 1);
}

/* Takes a reference to up to POLL_BATCH live sessions (the lock is not held while polling). */
static size_t poll_collect(struct ptv_acestream *a, struct ace_sess **batch)
{
	struct ptv_list *pos, *tmp;
	size_t n = 0;

	pthread_mutex_lock(&a->lock);
	ptv_list_for_each_safe (pos, tmp, &a->sessions) {
		struct ace_sess *x = ptv_container_of(pos, struct ace_sess, link);

		if (n == POLL_BATCH)
			break;
		x->refs++;
		batch[n++] = x;
	}
	pthread_mutex_unlock(&a->lock);
	return n;
}

static void stat_round(struct ptv_acestream *a)
{
	struct ace_sess *batch[POLL_BATCH];
	size_t n = poll_collect(a, batch);

	for (size_t i = 0; i < n; i++) {
		bool live;

		pthread_mutex_lock(&a->lock);
		live = batch[i]->live;
		pthread_mutex_unlock(&a->lock);
		if (live)
			ptv_acestream_poll(a, &batch[i]->pub);
		sess_unref(a, batch[i]);
	}
}

int ptv_acestream_tick(struct ptv_acestream *a)
{
	uint64_t now = ptv_now_ms();
	bool version_due, stat_due;

	if (pthread_mutex_trylock(&a->tick_lock))
		return -EBUSY;
	pthread_mutex_lock(&a->lock);
	version_due = now >= a->next_version_ms;
	stat_due = a->stat_ms && now >= a->next_stat_ms && !ptv_list_empty(&a->sessions);
	if (stat_due)
		a->next_stat_ms = now + a->stat_ms;
	pthread_mutex_unlock(&a->lock);
	if (version_due)
		version_check(a);
	if (stat_due)
		stat_round(a);
	pthread_mutex_unlock(&a->tick_lock);
	return 0;
}

static void *monitor_main(void *arg)
{
	struct ptv_acestream *a = arg;
	struct timespec ts;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		pthread_mutex_unlock(&a->lock);
		ptv_acestream_tick(a);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_mutex_lock(&a->lock);
		if (!a->stopping)
			pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int ptv_acestream_monitor_start(struct ptv_acestream *a)
{
	int rc;

	if (a->thread_started)
		return -EALREADY;
	rc = -pthread_create(&a->thread, NULL, monitor_main, a);
	if (!rc)
		a->thread_started = true;
	return rc;
}

void ptv_acestream_free(struct ptv_acestream *a)
{
	struct ptv_list *pos;

	if (!a)
		return;
	if (a->thread_started) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_signal(&a->cond);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	/* Sessions the relay did not release: stop them, or the engine keeps downloading. */
	for (unsigned i = 0; i < 100000; i++) {
		pthread_mutex_lock(&a->lock);
		pos = ptv_list_empty(&a->sessions) ? NULL : a->sessions.next;
		pthread_mutex_unlock(&a->lock);
		if (!pos)
			break;
		ptv_acestream_release(a, &ptv_container_of(pos, struct ace_sess, link)->pub);
	}
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->tick_lock);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

void ptv_acestream_opts_from_config(const struct ptv_config *c, struct ptv_acestream_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->engine = c->acestream_engine;
	o->max_sessions = c->acestream_max_sessions;
	o->timeout_ms = c->acestream_timeout_ms;
	o->stop_timeout_ms = c->acestream_stop_timeout_ms;
	o->stat_interval_ms = c->acestream_stat_interval_ms;
	o->prebuffer_ms = c->acestream_prebuffer_ms;
}
