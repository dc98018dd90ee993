/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Internals shared by relay.c (service, tuners, HTTP, viewers and per-reactor views) and
 * relay_session.c (a session's home side: the ingest child, the ring, publication). Not a
 * public header.
 *
 * Who touches what:
 *   struct ptv_relay      main thread at start/stop; `lock` guards sessions, slots, cfg
 *   struct relay_local    its reactor only, except post_lock/closed/msgs (any thread)
 *   struct relay_session  identity: immutable; viewers/dying/target_ip: under relay->lock;
 *                         atomics: any thread; the rest: its home reactor only
 *   struct relay_view     its reactor only, except the atomics (the home reads them)
 *   struct relay_viewer   its reactor only
 * A session is freed by whoever drops its last reference; by then no operation, message,
 * viewer or timer refers to it.
 */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "plextv/acestream.h"
#include "plextv/egress.h"
#include "plextv/http.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"
#include "plextv/relay.h"
#include "plextv/ring.h"
#include "plextv/ts.h"
#include "plextv/workers.h"

#define RELAY_MOD	     "relay"
#define RELAY_PUBLISH_MS     20u    /* a view hears about new data at most this often... */
#define RELAY_PUBLISH_BYTES  32768u /* ...unless this much arrived */
#define RELAY_TICK_MS	     50u
#define RELAY_TS_PIPE_SIZE   (1u << 20) /* absorbs upstream bursts while the reactor is busy */
#define RELAY_BACKOFF_MIN_MS 500u
#define RELAY_BACKOFF_MAX_MS 15000u
#define RELAY_HEALTHY_MS     10000u /* a child that delivered this long resets the backoff */
#define RELAY_KILL_GRACE_MS  2000u
#define RELAY_EVLINE_MAX     4096u
#define RELAY_SNDBUF	     (256 * 1024) /* SO_SNDBUF per viewer (the kernel doubles it) */
#define RELAY_NOTSENT_LOWAT  (128 * 1024) /* TCP_NOTSENT_LOWAT per viewer */

/* Values the relay reads from the configuration (copied; replaced on SIGHUP). */
struct relay_cfg {
	unsigned tuners;
	unsigned source_max_streams;
	size_t ring_bytes;
	unsigned ring_ms;
	unsigned linger_ms;
	unsigned grace_ms;
	unsigned deadline_ms;
	unsigned batch_ms;
	unsigned max_lag_ms;
	unsigned stall_ms;
	unsigned write_timeout_ms;
	enum ptv_send_mode send_mode;
	char user_agent[256];
	char ingest_command[PATH_MAX];
};

/* What a session needs from the configuration, copied when it starts (SIGHUP-safe). */
struct relay_scfg {
	size_t ring_bytes;
	unsigned ring_ms;
	unsigned linger_ms;
	unsigned stall_ms;
	char exe[PATH_MAX];
};

struct relay_dev {
	unsigned n;
	struct relay_session **slot;
};

struct ptv_relay {
	struct ptv_pool *pool;
	struct ptv_acestream *ace; /* NULL: Acestream channels fail with 806 */
	unsigned nreactors;
	_Atomic(struct relay_local *) *locals;

	pthread_mutex_t lock;
	struct relay_cfg cfg;
	struct ptv_list sessions; /* live (not dying) */
	struct relay_dev *devs;
	unsigned ndevs;

	struct ptv_metric_family *f_viewers, *f_bytes_in, *f_bytes_out, *f_resyncs, *f_evictions,
		*f_restarts, *f_reconnects, *f_failovers, *f_cc, *f_tuners, *f_refusals, *f_tune,
		*f_acct_out, *f_acct_in; /* the source="user" twins of the eBPF counters */
	struct ptv_metric *m_sessions, *m_tune_warm, *m_tune_cold;
	atomic_bool zc_warned;
	atomic_bool splice_warned;
};

struct relay_local {
	struct ptv_relay *relay;
	struct ptv_reactor *r;
	unsigned index;
	pthread_mutex_t post_lock;
	bool closed;	       /* under post_lock: no more messages */
	atomic_uint msgs;      /* posted, not run yet */
	struct ptv_list homes; /* sessions homed here, until their teardown ends */
	struct ptv_list views; /* views of this reactor that have viewers */
	unsigned nviewers;
	unsigned ops; /* home sessions' in-flight operations and pool jobs */
	bool draining;
};

enum relay_state {
	RS_NEW = 0,
	RS_SPAWNING, /* a pool job is starting the child */
	RS_RUNNING,  /* the child runs (its reads and pidfd poll are armed) */
	RS_BACKOFF,  /* waiting to start the next child */
	RS_STOPPING, /* no viewer after the linger, or shutdown: ending the child */
	RS_DONE,
};

struct relay_child;

struct relay_view {
	struct relay_session *s;
	struct relay_local *loc; /* the reactor this view belongs to */
	/* that reactor only */
	struct ptv_list lnode; /* loc->views while it has viewers */
	struct ptv_list viewers;
	unsigned nviewers;
	struct ptv_ring replica; /* remote views; the home view reads the master ring */
	struct ptv_timer tick;
	/* shared */
	atomic_bool active;  /* has viewers: the home publishes to it */
	atomic_bool refresh; /* its replica was cleared: next update from offset 0 */
	atomic_bool posted;  /* an update is on its way */
	/* home only */
	uint64_t sent_head;
	uint64_t pub_head;
	uint64_t pub_ms;
};

struct relay_session {
	atomic_uint refs;
	struct ptv_relay *relay;
	struct ptv_list node;	   /* relay->sessions, under relay->lock */
	struct ptv_list home_node; /* home->homes */
	struct relay_local *home;

	/* identity */
	uint32_t channel_id, source_id;
	unsigned device, tuner;
	char number[32];
	char name[128];
	char *ingest_json; /* carries credentials: never logged */
	char *ace_src;	   /* Acestream channel: its source, resolved on each spawn; else NULL */
	struct relay_scfg cfg;

	/* under relay->lock */
	unsigned viewers;
	bool dying;
	char target_ip[48];

	/* any thread */
	atomic_int fail_code; /* 806/807 when the tune failed before any byte; -1: ended */
	atomic_bool has_data;
	atomic_uint_fast64_t rate_bps;
	atomic_bool want_memfd; /* a splice viewer came: new chunks go into a memfd */

	/* home only */
	enum relay_state state;
	struct ptv_ring ring;
	struct ptv_ts_state *ts;
	struct relay_child *child;
	bool spawn_inflight;
	bool release_inflight;		   /* a pool job is stopping the engine session */
	struct ptv_acestream_session *ace; /* the engine session the child reads, or NULL */
	unsigned fails;			   /* consecutive restarts without a healthy run */
	uint64_t backoff_until;
	uint64_t idle_since;   /* no viewer since (0: has viewers) */
	uint64_t last_data_ms; /* last TS byte from any child */
	uint64_t started_ms;
	uint64_t rate_bytes, rate_ms;
	uint64_t rng;
	unsigned sync_losses;
	bool memfd_warned;
	struct ptv_timer tick;
	struct relay_view *views; /* [relay->nreactors] */

	struct ptv_metric *m_viewers, *m_bytes_in, *m_bytes_out, *m_resyncs, *m_evictions,
		*m_failovers, *m_cc, *m_acct_out, *m_acct_in;
};

struct relay_child {
	struct relay_session *s;
	pid_t pid;
	int pidfd, ts_fd, ev_fd;
	struct ptv_op ts_op, ev_op, pid_op;
	unsigned ops;
	bool ts_eof, ev_eof, exited, stall_killed;
	int status; /* exit code, or -signal */
	uint64_t started_ms, last_ts_ms, last_ev_ms, bytes;
	struct ptv_timer kill_timer;
	size_t evlen;
	char ev[RELAY_EVLINE_MAX + 1];
};

enum relay_viewer_state {
	RV_PENDING = 0, /* deferred: no status line yet */
	RV_WAITING,	/* 200 sent at the grace, no data yet */
	RV_STREAMING,
	RV_ENDING, /* stream_end() called, waiting for on_close */
};

struct relay_viewer {
	struct ptv_list node; /* view->viewers */
	struct relay_view *view;
	struct ptv_http_req *req;
	struct ptv_egress eg;
	enum relay_viewer_state state;
	bool warm, observed;
	unsigned tuner;
	uint64_t t0_ns;
	uint64_t grace_at, deadline_at, end_at; /* ms; end_at 0: no duration */
	uint64_t last_drain_ms;
	uint64_t pumped, counted; /* body bytes queued; of those, counted as sent */
	unsigned write_timeout_ms;
	enum ptv_send_mode send_mode;
	struct ptv_egress_opts eopts;
};

/* relay.c */
struct relay_local *relay_local(struct ptv_reactor *r);
void relay_session_ref(struct relay_session *s);
void relay_session_unref(struct relay_session *s);
/** Posts @fn(@arg) to @loc's reactor unless it closed; false: not posted (caller cleans up). */
bool relay_post(struct relay_local *loc, void (*fn)(void *arg), void *arg);
/** The channel lost its upstream for good: tell every view (answers or ends its viewers). */
void relay_session_broadcast_end(struct relay_session *s);
/** On a view's own reactor: new data (or an end) arrived, serve its viewers. */
void relay_view_kick(struct relay_view *v);
const struct ptv_ring *relay_view_ring(const struct relay_view *v);
/** Under relay->lock: the session leaves the table and its slot. */
void relay_session_unlist_locked(struct relay_session *s);

/* relay_session.c */
int relay_session_home_init(struct relay_session *s, struct relay_local *home);
/** Home: publishes ring growth to the views (rate-limited unless @force). */
void relay_session_publish(struct relay_session *s, bool force);
/** Any reactor: asks the home to publish now (a view just got its first viewer). */
void relay_session_kick_home(struct relay_session *s);
/** Home: shutdown, stop the session now whatever its viewers and linger. */
void relay_session_stop(struct relay_session *s);
/** Main thread, reactors gone: kill and reap the child, release the home's resources. */
void relay_session_force_free(struct relay_session *s);
void relay_session_free(struct relay_session *s);
