/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The relay service (relay.h): tuner slots, HTTP stream routes, viewers and the per-reactor
 * views they read from. The home side of a session is in relay_session.c.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "plextv/bpf_loader.h"
#include "plextv/discovery.h"
#include "plextv/router.h"
#include "relay_int.h"

static const char *const tune_buckets_names[] = {"kind", NULL};
static const double tune_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10};

/* ---- configuration ---- */

static int relay_cfg_load(struct relay_cfg *rc, const struct ptv_config *c)
{
	if (ptv_send_mode_parse(c->relay_send_mode, &rc->send_mode)) {
		ptv_error(RELAY_MOD, "send_mode '%s' is not one of send, zc, splice",
			  c->relay_send_mode);
		return -PTV_ERR_CONFIG;
	}
	rc->tuners = c->tuners;
	rc->source_max_streams = c->relay_source_max_streams;
	rc->ring_bytes = c->relay_ring_bytes;
	rc->ring_ms = c->relay_ring_seconds * 1000u;
	rc->linger_ms = c->relay_linger_ms;
	rc->grace_ms = c->relay_tune_grace_ms;
	rc->deadline_ms = PTV_MAX(c->relay_tune_deadline_ms, c->relay_tune_grace_ms);
	rc->batch_ms = c->relay_send_batch_ms;
	rc->max_lag_ms = c->relay_max_lag_ms;
	rc->stall_ms = c->relay_ingest_stall_ms;
	rc->write_timeout_ms = c->write_timeout_ms;
	snprintf(rc->user_agent, sizeof(rc->user_agent), "%s", c->user_agent);
	snprintf(rc->ingest_command, sizeof(rc->ingest_command), "%s", c->relay_ingest_command);
	return 0;
}

/*
 * The user-space side of per-channel accounting: the same families discovery fills from the
 * kernel (source="bpf"), so the two can be compared series by series. Payload bytes as the
 * relay sees them: TS body bytes a viewer's socket accepted, TS bytes the ingest gave.
 */
static void relay_acct_metrics_init(struct ptv_relay *relay)
{
	static const char *const labels[] = {"channel", "source", NULL};

	relay->f_acct_out = ptv_metrics_family(PTV_CHANNEL_EGRESS_METRIC,
					       "Payload bytes sent to viewers per channel "
					       "(source: bpf = kernel, user = relay)",
					       PTV_METRIC_COUNTER, labels, NULL, 0, 8192);
	relay->f_acct_in = ptv_metrics_family(PTV_CHANNEL_INGRESS_METRIC,
					      "Payload bytes received from upstreams per channel "
					      "(source: bpf = kernel, user = relay)",
					      PTV_METRIC_COUNTER, labels, NULL, 0, 8192);
}

static void relay_metrics_init(struct ptv_relay *relay)
{
	static const char *const ch[] = {"channel", NULL};
	static const char *const ch_reason[] = {"channel", "reason", NULL};
	static const char *const dev[] = {"device", NULL};
	static const char *const code[] = {"code", NULL};
	static const char *const warm[] = {"warm", NULL}, *const cold[] = {"cold", NULL};

	relay->f_viewers = ptv_metrics_family("plextv_relay_viewers", "Viewers connected",
					      PTV_METRIC_GAUGE, ch, NULL, 0, 512);
	relay->f_bytes_in = ptv_metrics_family("plextv_relay_upstream_bytes_total",
					       "TS bytes received from the channel's ingest",
					       PTV_METRIC_COUNTER, ch, NULL, 0, 512);
	relay->f_bytes_out = ptv_metrics_family("plextv_relay_viewer_bytes_total",
						"TS bytes queued to the channel's viewers",
						PTV_METRIC_COUNTER, ch, NULL, 0, 512);
	relay->f_resyncs = ptv_metrics_family("plextv_relay_resyncs_total",
					      "Lagging viewers moved to the newest keyframe",
					      PTV_METRIC_COUNTER, ch, NULL, 0, 512);
	relay->f_evictions = ptv_metrics_family("plextv_relay_evictions_total",
						"Viewers disconnected by the write timeout",
						PTV_METRIC_COUNTER, ch, NULL, 0, 512);
	relay->f_restarts = ptv_metrics_family("plextv_relay_ingest_restarts_total",
					       "Ingest children restarted, by reason",
					       PTV_METRIC_COUNTER, ch_reason, NULL, 0, 1024);
	relay->f_reconnects =
		ptv_metrics_family("plextv_relay_upstream_reconnects_total",
				   "Upstream reconnects inside the ingest child, by reason",
				   PTV_METRIC_COUNTER, ch_reason, NULL, 0, 1024);
	relay->f_failovers = ptv_metrics_family("plextv_relay_upstream_failovers_total",
						"Switches to the channel's next URL",
						PTV_METRIC_COUNTER, ch, NULL, 0, 512);
	relay->f_cc =
		ptv_metrics_family("plextv_relay_upstream_continuity_errors_total",
				   "Continuity errors in the ingest output (before rewriting)",
				   PTV_METRIC_COUNTER, ch, NULL, 0, 512);
	relay->f_tuners = ptv_metrics_family("plextv_relay_tuners_in_use",
					     "Tuner slots (upstreams) in use per virtual device",
					     PTV_METRIC_GAUGE, dev, NULL, 0, 256);
	relay->f_refusals = ptv_metrics_family("plextv_relay_refusals_total",
					       "Tune requests refused, by HDHomeRun error code",
					       PTV_METRIC_COUNTER, code, NULL, 0, 16);
	relay->f_tune = ptv_metrics_family("plextv_relay_tune_seconds",
					   "Request to first TS byte queued, warm or cold channel",
					   PTV_METRIC_HISTOGRAM, tune_buckets_names, tune_buckets,
					   PTV_ARRAY_SIZE(tune_buckets), 2);
	relay_acct_metrics_init(relay);
	relay->m_tune_warm = ptv_metric_get(relay->f_tune, warm);
	relay->m_tune_cold = ptv_metric_get(relay->f_tune, cold);
	relay->m_sessions = ptv_metric_simple("plextv_relay_sessions",
					      "Channels with a running upstream", PTV_METRIC_GAUGE);
}

/* plextv_relay_send_mode{mode}: 1 for the mode new viewers get, 0 for the others. */
static void relay_send_mode_metric(enum ptv_send_mode mode)
{
	static const char *const names[] = {"mode", NULL};
	struct ptv_metric_family *f =
		ptv_metrics_family("plextv_relay_send_mode", "Send mode new viewers get (1)",
				   PTV_METRIC_GAUGE, names, NULL, 0, 4);

	for (int m = PTV_SEND_PLAIN; m <= PTV_SEND_SPLICE; m++) {
		const char *v[] = {ptv_send_mode_name((enum ptv_send_mode)m), NULL};
		struct ptv_metric *g = ptv_metric_get(f, v);

		ptv_metric_set(g, (double)(m == (int)mode) - ptv_metric_value(g));
	}
}

int ptv_relay_new(const struct ptv_config *cfg, struct ptv_pool *pool, unsigned nreactors,
		  struct ptv_relay **out)
{
	struct ptv_relay *relay = ptv_xcalloc(1, sizeof(*relay));

	if (relay_cfg_load(&relay->cfg, cfg)) {
		free(relay);
		return -PTV_ERR_CONFIG;
	}
	relay->pool = pool;
	relay->nreactors = nreactors;
	relay->locals = ptv_xcalloc(nreactors, sizeof(*relay->locals));
	pthread_mutex_init(&relay->lock, NULL);
	ptv_list_init(&relay->sessions);
	relay_metrics_init(relay);
	relay_send_mode_metric(relay->cfg.send_mode);
	*out = relay;
	return 0;
}

void ptv_relay_set_acestream(struct ptv_relay *relay, struct ptv_acestream *ace)
{
	relay->ace = ace;
}

void ptv_relay_reconfigure(struct ptv_relay *relay, const struct ptv_config *cfg)
{
	struct relay_cfg rc;

	if (relay_cfg_load(&rc, cfg))
		return;
	pthread_mutex_lock(&relay->lock);
	if (rc.send_mode != relay->cfg.send_mode)
		ptv_info(RELAY_MOD, "send_mode %s for new viewers",
			 ptv_send_mode_name(rc.send_mode));
	relay->cfg = rc;
	pthread_mutex_unlock(&relay->lock);
	relay_send_mode_metric(rc.send_mode);
}

/* ---- sessions: references and the table ---- */

struct relay_local *relay_local(struct ptv_reactor *r)
{
	return ptv_reactor_local(r, PTV_SLOT_RELAY);
}

void relay_session_ref(struct relay_session *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void relay_session_unref(struct relay_session *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		relay_session_free(s);
}

bool relay_post(struct relay_local *loc, void (*fn)(void *arg), void *arg)
{
	bool ok;

	pthread_mutex_lock(&loc->post_lock);
	ok = !loc->closed;
	if (ok)
		ptv_reactor_post(loc->r, fn, arg);
	pthread_mutex_unlock(&loc->post_lock);
	return ok;
}

static struct relay_dev *relay_dev_locked(struct ptv_relay *relay, unsigned device)
{
	struct relay_dev *d;

	if (device >= relay->ndevs) {
		unsigned n = PTV_MAX(device + 1, relay->ndevs * 2);

		relay->devs = ptv_xrealloc(relay->devs, n * sizeof(*relay->devs));
		memset(relay->devs + relay->ndevs, 0, (n - relay->ndevs) * sizeof(*relay->devs));
		relay->ndevs = n;
	}
	d = &relay->devs[device];
	if (d->n < relay->cfg.tuners) {
		d->slot = ptv_xrealloc(d->slot, relay->cfg.tuners * sizeof(*d->slot));
		memset(d->slot + d->n, 0, (relay->cfg.tuners - d->n) * sizeof(*d->slot));
		d->n = relay->cfg.tuners;
	}
	return d;
}

static void tuners_metric(struct ptv_relay *relay, unsigned device, int delta)
{
	char dev[16];
	const char *v[] = {dev, NULL};
	struct ptv_metric *m;

	snprintf(dev, sizeof(dev), "%u", device);
	m = ptv_metric_get(relay->f_tuners, v);
	if (delta > 0)
		ptv_metric_add(m, 1);
	else
		ptv_metric_sub(m, 1);
}

void relay_session_unlist_locked(struct relay_session *s)
{
	struct ptv_relay *relay = s->relay;

	if (s->dying)
		return;
	s->dying = true;
	ptv_list_del(&s->node);
	if (s->device < relay->ndevs && s->tuner < relay->devs[s->device].n &&
	    relay->devs[s->device].slot[s->tuner] == s)
		relay->devs[s->device].slot[s->tuner] = NULL;
	tuners_metric(relay, s->device, -1);
	ptv_metric_sub(relay->m_sessions, 1);
}

static struct relay_session *session_find_locked(struct ptv_relay *relay, uint32_t channel_id)
{
	struct ptv_list *pos, *tmp;

	ptv_list_for_each_safe (pos, tmp, &relay->sessions) {
		struct relay_session *s = ptv_container_of(pos, struct relay_session, node);

		if (s->channel_id == channel_id)
			return s;
	}
	return NULL;
}

static unsigned source_sessions_locked(struct ptv_relay *relay, uint32_t source_id)
{
	struct ptv_list *pos, *tmp;
	unsigned n = 0;

	ptv_list_for_each_safe (pos, tmp, &relay->sessions) {
		n += ptv_container_of(pos, struct relay_session, node)->source_id == source_id;
	}
	return n;
}

/* A free slot of @ch's device: its index, or the HDHomeRun refusal code (negative). */
static int slot_pick_locked(struct ptv_relay *relay, const struct ptv_lineup_channel *ch, int tuner)
{
	struct relay_dev *d = relay_dev_locked(relay, ch->device);
	unsigned limit = relay->cfg.source_max_streams;

	if (tuner >= 0 && (unsigned)tuner >= relay->cfg.tuners)
		return -801;
	if (tuner >= 0 && d->slot[tuner])
		return -804;
	if (limit && source_sessions_locked(relay, ch->source_id) >= limit)
		return -805; /* the provider's connections are all in use */
	if (tuner >= 0)
		return tuner;
	for (unsigned i = 0; i < relay->cfg.tuners; i++) {
		if (!d->slot[i])
			return (int)i;
	}
	return -805;
}

/* ---- the child's configuration ---- */

static char *ingest_json(const struct relay_cfg *cfg, const struct ptv_lineup_channel *ch)
{
	json_t *o = json_object(), *urls = json_array(), *hdrs = json_object();
	bool have_ua = false;
	char *out;

	/* An Acestream channel's URL is the engine's playback URL, known only once the spawn
	 * job has resolved it (relay_session.c): the template goes without. */
	for (unsigned i = 0; ch->kind != PTV_CHANNEL_ACESTREAM && i < ch->n_urls && i < 16; i++)
		json_array_append_new(urls, json_string(ch->urls[i]));
	for (unsigned i = 0; i < ch->n_headers; i++) {
		json_object_set_new(hdrs, ch->headers[i].name, json_string(ch->headers[i].value));
		have_ua |= !strcasecmp(ch->headers[i].name, "User-Agent");
	}
	if (!have_ua && cfg->user_agent[0])
		json_object_set_new(hdrs, "User-Agent", json_string(cfg->user_agent));
	json_object_set_new(o, "channel", json_string(ch->number));
	json_object_set_new(o, "kind", json_string(ch->kind == PTV_CHANNEL_FILE ? "file" : "url"));
	json_object_set_new(o, "urls", urls);
	json_object_set_new(o, "headers", hdrs);
	if (ch->kind == PTV_CHANNEL_FILE)
		json_object_set_new(o, "loop", json_true());
	json_object_set_new(o, "stall_timeout_ms", json_integer(cfg->stall_ms));
	json_object_set_new(o, "ppid", json_integer(getpid()));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Sanitizer builds reserve terabytes of address space: no RLIMIT_AS for them. */
	json_object_set_new(o, "rlimit_as_mb", json_integer(0));
#endif
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

/* ---- sessions: creation ---- */

static void session_metrics(struct relay_session *s)
{
	struct ptv_relay *relay = s->relay;
	const char *v[] = {s->number, NULL};
	char id[16];
	const char *acct[] = {id, "user", NULL};

	s->m_viewers = ptv_metric_get(relay->f_viewers, v);
	s->m_bytes_in = ptv_metric_get(relay->f_bytes_in, v);
	s->m_bytes_out = ptv_metric_get(relay->f_bytes_out, v);
	s->m_resyncs = ptv_metric_get(relay->f_resyncs, v);
	s->m_evictions = ptv_metric_get(relay->f_evictions, v);
	s->m_failovers = ptv_metric_get(relay->f_failovers, v);
	s->m_cc = ptv_metric_get(relay->f_cc, v);
	snprintf(id, sizeof(id), "%u", s->channel_id);
	s->m_acct_out = ptv_metric_get(relay->f_acct_out, acct);
	s->m_acct_in = ptv_metric_get(relay->f_acct_in, acct);
}

static struct relay_session *session_new_locked(struct ptv_relay *relay,
						const struct ptv_lineup_channel *ch, unsigned tuner,
						struct relay_local *home)
{
	struct relay_session *s = ptv_xcalloc(1, sizeof(*s));
	const struct relay_cfg *cfg = &relay->cfg;

	atomic_init(&s->refs, 1); /* the home's */
	s->relay = relay;
	s->home = home;
	s->channel_id = ch->id;
	s->source_id = ch->source_id;
	s->device = ch->device;
	s->tuner = tuner;
	snprintf(s->number, sizeof(s->number), "%s", ch->number);
	snprintf(s->name, sizeof(s->name), "%s", ch->name ? ch->name : "");
	s->cfg.ring_bytes = cfg->ring_bytes;
	s->cfg.ring_ms = cfg->ring_ms;
	s->cfg.linger_ms = cfg->linger_ms;
	s->cfg.stall_ms = cfg->stall_ms;
	snprintf(s->cfg.exe, sizeof(s->cfg.exe), "%s",
		 cfg->ingest_command[0] ? cfg->ingest_command : "/proc/self/exe");
	s->ingest_json = ingest_json(cfg, ch);
	if (ch->kind == PTV_CHANNEL_ACESTREAM && ch->n_urls) {
		s->ace_src = ptv_xstrdup(ch->urls[0]);
		/* The engine holds the playback connection silent while it prebuffers: the
		 * watchdog must not take that for a hung child. */
		if (relay->ace)
			s->cfg.stall_ms =
				PTV_MAX(s->cfg.stall_ms, ptv_acestream_prebuffer_ms(relay->ace));
	}
	s->views = ptv_xcalloc(relay->nreactors, sizeof(*s->views));
	for (unsigned i = 0; i < relay->nreactors; i++) {
		struct relay_view *v = &s->views[i];

		v->s = s;
		v->loc = atomic_load(&relay->locals[i]);
		ptv_list_init(&v->viewers);
		ptv_list_init(&v->lnode);
		ptv_timer_init(&v->tick, NULL);
		atomic_init(&v->refresh, true);
		if (ptv_ring_init(&v->replica, cfg->ring_bytes, 0))
			abort(); /* small fixed allocation: the policy for those is to abort */
	}
	session_metrics(s);
	ptv_list_add_tail(&relay->sessions, &s->node);
	relay_dev_locked(relay, ch->device)->slot[tuner] = s;
	tuners_metric(relay, ch->device, 1);
	ptv_metric_add(relay->m_sessions, 1);
	return s;
}

/* ---- viewers ---- */

static int sink_copy(void *ctx, const void *p, size_t n)
{
	return ptv_http_stream_write(((struct relay_viewer *)ctx)->req, p, n);
}

static int sink_ref(void *ctx, struct ptv_blob *chunk, size_t off, size_t n)
{
	return ptv_http_stream_write_blob(((struct relay_viewer *)ctx)->req, chunk, off, n);
}

static size_t sink_queued(void *ctx)
{
	return ptv_http_stream_queued(((struct relay_viewer *)ctx)->req);
}

static const struct ptv_egress_sink http_sink = {sink_copy, sink_ref, sink_queued};

const struct ptv_ring *relay_view_ring(const struct relay_view *v)
{
	return v->loc == v->s->home ? &v->s->ring : &v->replica;
}

static uint64_t view_now(const struct relay_view *v)
{
	return ptv_reactor_now_ms(v->loc->r);
}

static void refusal_count(struct ptv_relay *relay, int code)
{
	char c[8];
	const char *v[] = {c, NULL};

	snprintf(c, sizeof(c), "%d", code);
	ptv_metric_inc(ptv_metric_get(relay->f_refusals, v));
}

static int drain_none(struct ptv_http_req *req, void *ctx)
{
	return 0;
}

static const char *code_text(int code)
{
	switch (code) {
	case 801:
		return "801 Unknown Channel";
	case 803:
		return "803 System Busy";
	case 804:
		return "804 Tuner In Use";
	case 805:
		return "805 All Tuners In Use";
	case 807:
		return "807 No Video Data";
	default:
		return "806 Tune Failed";
	}
}

/*
 * 404/503 with X-HDHomeRun-Error, a short body and Connection: close: a tuner client retries
 * on a fresh connection, and a half-read request of a refused stream is not worth keeping.
 */
static int respond_refusal(struct ptv_relay *relay, struct ptv_http_req *req, int code)
{
	const char *text = code_text(code);
	int status = code == 801 ? 404 : 503;
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", text);

	refusal_count(relay, code);
	ptv_http_set_close(req);
	ptv_http_add_header(req, "X-HDHomeRun-Error", text);
	return ptv_http_respond(req, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static void view_deactivate(struct relay_view *v)
{
	atomic_store(&v->active, false);
	ptv_timer_cancel(&v->tick);
	ptv_list_del(&v->lnode);
	if (v->loc != v->s->home) {
		/* Without readers a replica would pin up to a whole ring of chunks. */
		ptv_ring_clear(&v->replica);
		atomic_store(&v->refresh, true);
	}
}

/* The viewer is gone (its connection closed, or it was refused): forget it. */
static void viewer_gone(struct relay_viewer *v)
{
	struct relay_view *view = v->view;
	struct relay_session *s = view->s;

	if (v->eg.resyncs)
		ptv_debug(RELAY_MOD, "[%s] viewer left after %u resyncs", s->number, v->eg.resyncs);
	ptv_list_del(&v->node);
	view->loc->nviewers--;
	if (--view->nviewers == 0)
		view_deactivate(view);
	ptv_metric_sub(s->m_viewers, 1);
	pthread_mutex_lock(&s->relay->lock);
	s->viewers--;
	pthread_mutex_unlock(&s->relay->lock);
	free(v);
	relay_session_unref(s);
}

/*
 * User-space accounting of what the viewer's socket took: body bytes queued minus those still
 * queued. Counted as the HTTP layer drains (and at the end), never per pump, so an evicted
 * viewer's unsent backlog does not count; the eBPF side counts the same socket's payload.
 */
static void viewer_count_sent(struct relay_viewer *v)
{
	size_t queued = ptv_http_stream_queued(v->req);
	uint64_t sent = v->pumped > queued ? v->pumped - queued : 0;

	if (sent <= v->counted)
		return;
	ptv_metric_add(v->view->s->m_acct_out, sent - v->counted);
	v->counted = sent;
}

static void viewer_on_close(void *ctx)
{
	struct relay_viewer *v = ctx;
	struct relay_session *s = v->view->s;
	uint64_t now = view_now(v->view);

	viewer_count_sent(v);
	/* Bytes still queued and no progress for the write timeout: the HTTP layer gave up on
	 * a viewer that stopped reading. That is an eviction. */
	if (v->state == RV_STREAMING && v->write_timeout_ms && ptv_http_stream_queued(v->req) &&
	    now + 2 * PTV_TIMER_TICK_MS >= v->last_drain_ms + v->write_timeout_ms) {
		ptv_metric_inc(s->m_evictions);
		ptv_info(RELAY_MOD, "[%s] viewer evicted: nothing written for %llu ms", s->number,
			 (unsigned long long)(now - v->last_drain_ms));
	}
	viewer_gone(v);
}

static void viewer_observe(struct relay_viewer *v)
{
	struct ptv_relay *relay = v->view->s->relay;
	double dt = (double)(ptv_now_ns() - v->t0_ns) / 1e9;

	v->observed = true;
	ptv_metric_observe(v->warm ? relay->m_tune_warm : relay->m_tune_cold, dt);
	ptv_debug(RELAY_MOD, "[%s] %s tune: first bytes after %.1f ms", v->view->s->number,
		  v->warm ? "warm" : "cold", dt * 1000);
}

/* Queues the viewer's next batch; returns a negative errno to give up on the connection. */
static int viewer_pump(struct relay_viewer *v, uint64_t now)
{
	struct relay_session *s = v->view->s;
	int n = ptv_egress_pump(&v->eg, relay_view_ring(v->view), &http_sink, v, &v->eopts, now);

	if (n > 0) {
		ptv_metric_add(s->m_bytes_out, (uint64_t)n);
		v->pumped += (uint64_t)n;
	}
	if (v->eg.events & PTV_EGRESS_STARTED && !v->observed)
		viewer_observe(v);
	if (v->eg.events & PTV_EGRESS_RESYNC)
		ptv_metric_inc(s->m_resyncs);
	v->eg.events = 0;
	return n < 0 ? n : 0;
}

/* Ends the stream; @v may be gone when this returns (on_close can run at once). */
static void viewer_end(struct relay_viewer *v)
{
	v->state = RV_ENDING;
	ptv_http_stream_end(v->req);
}

static int viewer_on_drain(struct ptv_http_req *req, void *ctx)
{
	struct relay_viewer *v = ctx;
	uint64_t now = view_now(v->view);

	v->last_drain_ms = now;
	viewer_count_sent(v);
	if (v->state != RV_STREAMING)
		return 0;
	if (v->end_at && now >= v->end_at) {
		viewer_end(v);
		return 1;
	}
	return viewer_pump(v, now);
}

/*
 * Bounds the kernel's share of a viewer: without it a stalled client soaks up to
 * net.ipv4.tcp_wmem's max (4 MiB) before a send blocks and the write timeout can start, and
 * 1,000 clients could pin gigabytes (PERFORMANCE-ANCHORS §7c). TCP_NOTSENT_LOWAT also makes a
 * send wait while more than that much is still unsent (HAProxy: 10x less socket memory).
 * The eBPF accounting tag names the channel this socket's payload counts toward (one map
 * update; a cheap -ENODEV when accounting is off).
 */
static void viewer_sockopts(struct relay_viewer *v)
{
	int fd = ptv_http_req_fd(v->req), sndbuf = RELAY_SNDBUF, lowat = RELAY_NOTSENT_LOWAT;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	ptv_bpf_account_socket(fd, v->view->s->channel_id, false);
}

/* Sends the 200 head. False: the connection is gone and @v was freed. */
static bool viewer_begin(struct relay_viewer *v)
{
	char res[32];

	snprintf(res, sizeof(res), "tuner%u", v->tuner);
	ptv_http_add_header(v->req, "X-HDHomeRun-Resource", res);
	viewer_sockopts(v);
	if (ptv_http_stream_begin(v->req, 200, "video/mp2t", PTV_HTTP_STREAM_CLOSE, viewer_on_drain,
				  viewer_on_close, v)) {
		viewer_gone(v);
		return false;
	}
	/* SENDMSG_ZC: the HTTP layer keeps each chunk referenced until the kernel's
	 * notification, and the ring never rewrites a referenced chunk. */
	if (v->send_mode == PTV_SEND_ZC && ptv_http_stream_set_zerocopy(v->req, true) &&
	    !atomic_exchange(&v->view->s->relay->zc_warned, true))
		ptv_warn(RELAY_MOD,
			 "send_mode zc: this kernel has no zero-copy sendmsg; using send");
	/* sendfile() from the memfd chunks; bytes in heap chunks (written before the first
	 * splice viewer came) and the PAT/PMT prefix still go with sendmsg. */
	if (v->send_mode == PTV_SEND_SPLICE && ptv_http_stream_set_splice(v->req, true) &&
	    !atomic_exchange(&v->view->s->relay->splice_warned, true))
		ptv_warn(RELAY_MOD, "send_mode splice: cannot make the socket non-blocking; "
				    "using send");
	v->state = RV_WAITING;
	v->last_drain_ms = view_now(v->view);
	return true;
}

static void viewer_refuse(struct relay_viewer *v, int code)
{
	struct ptv_relay *relay = v->view->s->relay;

	v->state = RV_ENDING;
	respond_refusal(relay, v->req, code);
	viewer_gone(v);
}

/* Moves one viewer along: start, refuse, time out, end, or send. @v may be freed. */
static void viewer_service(struct relay_viewer *v, uint64_t now)
{
	const struct ptv_ring *ring = relay_view_ring(v->view);
	int fail = atomic_load(&v->view->s->fail_code);
	bool can = ptv_egress_can_start(&v->eg, ring);

	switch (v->state) {
	case RV_PENDING:
		if (fail && !can) {
			viewer_refuse(v, fail > 0 ? fail : 806);
			return;
		}
		if (!can && now < v->grace_at)
			return;
		if (!viewer_begin(v))
			return;
		/* fall through */
	case RV_WAITING:
		if (can) {
			v->state = RV_STREAMING;
		} else if (fail) {
			viewer_end(v);
			return;
		} else if (now >= v->deadline_at) {
			/* Our own deadline: nothing was queued after the head, close at once. */
			refusal_count(v->view->s->relay, 807);
			v->state = RV_ENDING;
			ptv_http_stream_abort(v->req);
			return;
		} else {
			return;
		}
		/* fall through */
	case RV_STREAMING:
		/* duration= reached, or the upstream is gone for good. */
		if ((v->end_at && now >= v->end_at) || fail) {
			viewer_end(v);
			return;
		}
		viewer_pump(v, now);
		return;
	case RV_ENDING:
		return;
	}
}

void relay_view_kick(struct relay_view *v)
{
	struct relay_session *s = v->s;
	uint64_t now = view_now(v);
	struct ptv_list *pos, *tmp;

	/* A viewer leaving may drop the last reference to the session (and this view). */
	relay_session_ref(s);
	ptv_list_for_each_safe (pos, tmp, &v->viewers) {
		viewer_service(ptv_container_of(pos, struct relay_viewer, node), now);
	}
	relay_session_unref(s);
}

static void view_tick_cb(struct ptv_timer *t)
{
	struct relay_view *v = ptv_container_of(t, struct relay_view, tick);

	ptv_timer_arm(v->loc->r, &v->tick, RELAY_TICK_MS);
	relay_view_kick(v);
}

static void view_add(struct relay_view *view, struct relay_viewer *v)
{
	struct relay_local *loc = view->loc;

	v->view = view;
	ptv_list_add_tail(&view->viewers, &v->node);
	loc->nviewers++;
	if (view->nviewers++ == 0) {
		ptv_list_add_tail(&loc->views, &view->lnode);
		view->tick.cb = view_tick_cb;
		ptv_timer_arm(loc->r, &view->tick, RELAY_TICK_MS);
		atomic_store(&view->active, true);
		/* A warm tune on this reactor: get the replica filled now, not at the next read. */
		if (loc != view->s->home)
			relay_session_kick_home(view->s);
	}
	ptv_metric_add(view->s->m_viewers, 1);
}

/* ---- tuning ---- */

static void peer_ip(struct ptv_http_req *req, char *out, size_t len)
{
	const struct sockaddr_storage *ss = ptv_http_req_peer(req);

	out[0] = '\0';
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out,
			  (socklen_t)len);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
			  (socklen_t)len);
}

/* Finds or starts the channel's session and counts a viewer in it; or a refusal code. */
static int session_acquire(struct ptv_relay *relay, struct relay_local *loc,
			   const struct ptv_lineup_channel *ch, int tuner, struct relay_viewer *v,
			   const char *ip, struct relay_session **out, bool *created)
{
	struct relay_session *s;
	int slot;

	pthread_mutex_lock(&relay->lock);
	s = session_find_locked(relay, ch->id);
	*created = !s;
	if (!s) {
		slot = slot_pick_locked(relay, ch, tuner);
		if (slot < 0) {
			pthread_mutex_unlock(&relay->lock);
			return -slot;
		}
		s = session_new_locked(relay, ch, (unsigned)slot, loc);
	}
	relay_session_ref(s);
	s->viewers++;
	if (!s->target_ip[0])
		snprintf(s->target_ip, sizeof(s->target_ip), "%s", ip);
	v->tuner = s->tuner;
	v->grace_at = relay->cfg.grace_ms;
	v->deadline_at = relay->cfg.deadline_ms;
	/* Prebuffering takes tens of seconds: an Acestream tune may wait as long. */
	if (ch->kind == PTV_CHANNEL_ACESTREAM && relay->ace)
		v->deadline_at = PTV_MAX(v->deadline_at, ptv_acestream_prebuffer_ms(relay->ace));
	v->eopts.batch_ms = relay->cfg.batch_ms;
	v->eopts.max_lag_ms = relay->cfg.max_lag_ms;
	v->write_timeout_ms = relay->cfg.write_timeout_ms;
	v->send_mode = relay->cfg.send_mode;
	if (v->send_mode == PTV_SEND_SPLICE)
		atomic_store(&s->want_memfd, true);
	pthread_mutex_unlock(&relay->lock);
	*out = s;
	return 0;
}

static int tune_head(struct ptv_http_req *req)
{
	/* Headers only, and no tuner taken: a HEAD stream ends before it starts. */
	return ptv_http_stream_begin(req, 200, "video/mp2t", PTV_HTTP_STREAM_CLOSE, drain_none,
				     NULL, NULL);
}

static uint64_t tune_duration_ms(struct ptv_http_req *req)
{
	char buf[32];
	double d;

	if (ptv_http_req_query_param(req, "duration", buf, sizeof(buf)) <= 0)
		return 0;
	d = strtod(buf, NULL);
	return d > 0 && d < 1e7 ? (uint64_t)(d * 1000) : 0;
}

int ptv_relay_tune(struct ptv_relay *relay, struct ptv_http_req *req,
		   const struct ptv_lineup_channel *ch, int tuner)
{
	struct relay_local *loc = relay_local(ptv_http_req_reactor(req));
	struct relay_viewer *v;
	struct relay_session *s;
	uint64_t now, duration;
	bool created;
	char ip[48];
	int code;

	if (!ch || !ch->enabled)
		return respond_refusal(relay, req, 801);
	if (ptv_http_req_method(req) == PTV_HTTP_HEAD)
		return tune_head(req);
	if (!loc || loc->draining)
		return respond_refusal(relay, req, 803);
	v = ptv_xcalloc(1, sizeof(*v));
	v->req = req;
	v->t0_ns = ptv_now_ns();
	peer_ip(req, ip, sizeof(ip));
	code = session_acquire(relay, loc, ch, tuner, v, ip, &s, &created);
	if (code) {
		free(v);
		ptv_info(RELAY_MOD, "[%s] tune refused: %s", ch->number, code_text(code));
		return respond_refusal(relay, req, code);
	}
	if (created && relay_session_home_init(s, loc)) {
		ptv_error(RELAY_MOD, "[%s] cannot start a session: out of memory", ch->number);
		atomic_store(&s->fail_code, 806);
	}
	now = ptv_reactor_now_ms(loc->r);
	duration = tune_duration_ms(req);
	v->end_at = duration ? now + duration : 0;
	v->grace_at += now;
	v->deadline_at += now;
	v->warm = atomic_load(&s->has_data);
	ptv_egress_init(&v->eg, !v->warm);
	/* A reactor that attached after the session was made fills in its view now. */
	if (!s->views[loc->index].loc)
		s->views[loc->index].loc = loc;
	view_add(&s->views[loc->index], v);
	/* One line per upstream start; warm tunes can come by the thousand. */
	if (created)
		ptv_info(RELAY_MOD, "[%s] cold tune from %s on tuner%u", ch->number, ip, v->tuner);
	else
		ptv_debug(RELAY_MOD, "[%s] tune from %s on tuner%u", ch->number, ip, v->tuner);
	ptv_http_defer(req);
	viewer_service(v, now);
	return 0;
}

int ptv_relay_hook_tune(void *relay, struct ptv_http_req *req, const struct ptv_lineup_channel *ch,
			int tuner)
{
	return ptv_relay_tune(relay, req, ch, tuner);
}

/* ---- routes ---- */

static const struct ptv_lineup_channel *route_lineup_number(struct ptv_http_req *req,
							    const char *number)
{
	struct ptv_lineup *l = ptv_lineup_current(ptv_http_req_reactor(req));

	return l && *number ? ptv_lineup_by_number(l, number) : NULL;
}

static int auto_handler(struct ptv_http_req *req, void *ctx)
{
	const char *p = ptv_http_req_path(req) + strlen("/auto/");

	if (*p != 'v')
		return respond_refusal(ctx, req, 801);
	return ptv_relay_tune(ctx, req, route_lineup_number(req, p + 1), -1);
}

static int tuner_handler(struct ptv_http_req *req, void *ctx)
{
	const char *p = ptv_http_req_path(req) + strlen("/tuner");
	char *end;
	unsigned long n;

	if (*p < '0' || *p > '9')
		return respond_refusal(ctx, req, 801);
	n = strtoul(p, &end, 10);
	if (strncmp(end, "/v", 2) || n > 100000)
		return respond_refusal(ctx, req, 801);
	return ptv_relay_tune(ctx, req, route_lineup_number(req, end + 2), (int)n);
}

static int stream_handler(struct ptv_http_req *req, void *ctx)
{
	const char *p = ptv_http_req_path(req) + strlen("/stream/");
	struct ptv_lineup *l = ptv_lineup_current(ptv_http_req_reactor(req));
	char *end;
	unsigned long id;

	if (*p < '0' || *p > '9')
		return respond_refusal(ctx, req, 801);
	id = strtoul(p, &end, 10);
	if (*end || id > UINT32_MAX || !l)
		return respond_refusal(ctx, req, 801);
	return ptv_relay_tune(ctx, req, ptv_lineup_by_id(l, (uint32_t)id), -1);
}

int ptv_relay_routes_register(struct ptv_relay *relay, struct ptv_router *rt)
{
	const struct ptv_route routes[] = {
		{"relay_auto", PTV_HTTP_GET | PTV_HTTP_HEAD, "/auto/", true, auto_handler, relay},
		{"relay_tuner", PTV_HTTP_GET | PTV_HTTP_HEAD, "/tuner", true, tuner_handler, relay},
		{"relay_stream", PTV_HTTP_GET | PTV_HTTP_HEAD, "/stream/", true, stream_handler,
		 relay},
	};
	int ret = 0;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(routes) && !ret; i++)
		ret = ptv_router_add(rt, &routes[i]);
	return ret;
}

/* ---- status ---- */

unsigned ptv_relay_status(struct ptv_relay *relay, unsigned device,
			  struct ptv_relay_tuner_status *out, unsigned n)
{
	unsigned tuners;

	pthread_mutex_lock(&relay->lock);
	tuners = relay->cfg.tuners;
	for (unsigned i = 0; i < n && i < tuners; i++) {
		struct relay_session *s = NULL;

		if (device < relay->ndevs && i < relay->devs[device].n)
			s = relay->devs[device].slot[i];
		memset(&out[i], 0, sizeof(out[i]));
		if (!s)
			continue;
		out[i].in_use = true;
		snprintf(out[i].number, sizeof(out[i].number), "%s", s->number);
		snprintf(out[i].name, sizeof(out[i].name), "%s", s->name);
		snprintf(out[i].target_ip, sizeof(out[i].target_ip), "%s", s->target_ip);
		out[i].rate_bps = atomic_load(&s->rate_bps);
		out[i].viewers = s->viewers;
	}
	pthread_mutex_unlock(&relay->lock);
	return tuners;
}

int ptv_relay_status_json(struct ptv_relay *relay, unsigned device, struct ptv_buf *out)
{
	struct ptv_relay_tuner_status st[64];
	unsigned n = ptv_relay_status(relay, device, st, PTV_ARRAY_SIZE(st));
	json_t *a = json_array();
	char *s;
	int ret = 0;

	for (unsigned i = 0; i < n; i++) {
		json_t *o = json_object();
		char res[32];

		snprintf(res, sizeof(res), "tuner%u", i);
		json_object_set_new(o, "Resource", json_string(res));
		if (i < PTV_ARRAY_SIZE(st) && st[i].in_use) {
			json_object_set_new(o, "VctNumber", json_string(st[i].number));
			json_object_set_new(o, "VctName", json_string(st[i].name));
			json_object_set_new(o, "Frequency", json_integer(0));
			json_object_set_new(o, "SignalStrengthPercent", json_integer(100));
			json_object_set_new(o, "SignalQualityPercent", json_integer(100));
			json_object_set_new(o, "SymbolQualityPercent", json_integer(100));
			json_object_set_new(o, "TargetIP", json_string(st[i].target_ip));
			json_object_set_new(o, "NetworkRate",
					    json_integer((json_int_t)st[i].rate_bps));
		}
		json_array_append_new(a, o);
	}
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	if (!s)
		return -ENOMEM;
	ret = ptv_buf_puts(out, s);
	free(s);
	return ret;
}

int ptv_relay_hook_status(void *relay, unsigned device, struct ptv_buf *out)
{
	return ptv_relay_status_json(relay, device, out);
}

/* ---- reactors ---- */

int ptv_relay_attach(struct ptv_relay *relay, struct ptv_reactor *r)
{
	unsigned i = ptv_reactor_index(r);
	struct relay_local *loc;

	if (i >= relay->nreactors)
		return -EINVAL;
	loc = ptv_xcalloc(1, sizeof(*loc));
	loc->relay = relay;
	loc->r = r;
	loc->index = i;
	pthread_mutex_init(&loc->post_lock, NULL);
	ptv_list_init(&loc->homes);
	ptv_list_init(&loc->views);
	ptv_reactor_set_local(r, PTV_SLOT_RELAY, loc);
	atomic_store(&relay->locals[i], loc);
	return 0;
}

static void view_end_all(struct relay_view *view)
{
	struct relay_session *s = view->s;
	struct ptv_list *pos, *tmp;

	relay_session_ref(s);
	ptv_list_for_each_safe (pos, tmp, &view->viewers) {
		struct relay_viewer *v = ptv_container_of(pos, struct relay_viewer, node);

		if (v->state == RV_PENDING)
			viewer_refuse(v, 803);
		else if (v->state != RV_ENDING)
			viewer_end(v);
	}
	relay_session_unref(s);
}

void ptv_relay_drain(struct ptv_reactor *r)
{
	struct relay_local *loc = relay_local(r);
	struct ptv_list *pos, *tmp;

	if (!loc || loc->draining)
		return;
	loc->draining = true;
	ptv_list_for_each_safe (pos, tmp, &loc->homes) {
		struct relay_session *s = ptv_container_of(pos, struct relay_session, home_node);

		pthread_mutex_lock(&loc->relay->lock);
		relay_session_unlist_locked(s);
		pthread_mutex_unlock(&loc->relay->lock);
		relay_session_stop(s);
	}
	ptv_list_for_each_safe (pos, tmp, &loc->views) {
		view_end_all(ptv_container_of(pos, struct relay_view, lnode));
	}
}

bool ptv_relay_busy(struct ptv_reactor *r)
{
	struct relay_local *loc = relay_local(r);

	return loc && (loc->ops || loc->nviewers || !ptv_list_empty(&loc->homes) ||
		       atomic_load(&loc->msgs));
}

void ptv_relay_detach(struct ptv_reactor *r)
{
	struct relay_local *loc = relay_local(r);

	if (!loc)
		return;
	pthread_mutex_lock(&loc->post_lock);
	loc->closed = true;
	pthread_mutex_unlock(&loc->post_lock);
	/* What was posted before the door closed still runs (and releases its references). */
	ptv_reactor_run_inbox(r);
}

static void local_free_viewers(struct relay_local *loc)
{
	/* A forced shutdown: the HTTP server freed the connections without on_close. */
	while (!ptv_list_empty(&loc->views)) {
		struct relay_view *view =
			ptv_container_of(loc->views.next, struct relay_view, lnode);
		struct relay_session *s = view->s;

		relay_session_ref(s);
		while (!ptv_list_empty(&view->viewers)) {
			struct relay_viewer *v =
				ptv_container_of(view->viewers.next, struct relay_viewer, node);

			/* The view's timer went with the reactor's wheel. */
			view->tick.node.next = NULL;
			v->state = RV_ENDING;
			viewer_gone(v);
		}
		relay_session_unref(s);
	}
}

void ptv_relay_free(struct ptv_relay *relay)
{
	if (!relay)
		return;
	for (unsigned i = 0; i < relay->nreactors; i++) {
		struct relay_local *loc = atomic_load(&relay->locals[i]);

		if (loc)
			local_free_viewers(loc);
	}
	for (unsigned i = 0; i < relay->nreactors; i++) {
		struct relay_local *loc = atomic_load(&relay->locals[i]);

		if (!loc)
			continue;
		while (!ptv_list_empty(&loc->homes)) {
			struct relay_session *s =
				ptv_container_of(loc->homes.next, struct relay_session, home_node);

			ptv_list_del(&s->home_node);
			relay_session_force_free(s);
			relay_session_free(s);
		}
		pthread_mutex_destroy(&loc->post_lock);
		free(loc);
	}
	for (unsigned i = 0; i < relay->ndevs; i++)
		free(relay->devs[i].slot);
	free(relay->devs);
	free(relay->locals);
	pthread_mutex_destroy(&relay->lock);
	free(relay);
}
