/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ace Stream engine client (PROTOCOLS.md §4): the engine's HTTP API as an upstream.
 *
 * The engine plays one reader per pid: a second reader of the same stream cuts the first. So a
 * channel gets ONE engine session (getstream with a fresh UUID v4 pid), its playback_url is
 * read by ONE ingest child, and the relay's ring fans it out to every viewer. When the last
 * viewer is gone the session is stopped (command_url?method=stop), or the engine keeps
 * downloading.
 *
 * Every call here blocks (libcurl through fetch.h) and has a timeout: call them on pool
 * threads (workers.h), never on a reactor.
 *
 * ---- How the relay uses it --------------------------------------------------------------------
 *
 * Start-up (main thread): ptv_acestream_new() from the [acestream] keys, then
 * ptv_acestream_monitor_start() (own thread: version check at once and every minute, stat_url
 * polls every stat_interval_ms while sessions run). Give the handle to the relay. SIGHUP:
 * ptv_acestream_reconfigure(). Shutdown, after the relay is freed: ptv_acestream_free().
 *
 * Tuning a PTV_CHANNEL_ACESTREAM channel (the session's spawn job, ON THE POOL THREAD, before
 * the ingest child is spawned):
 *
 *	rc = ptv_acestream_resolve(ace, ch->urls[0], ch->number, &s->ace, url, sizeof(url));
 *
 *   rc == 0: spawn the ingest child on @url (kind "url", that single URL), with a first-packet
 *            budget of prebuffer_ms (ingest "stall_timeout_ms"/"rw_timeout_ms"): the engine
 *            holds the playback connection open without data while it prebuffers, often for
 *            10-30 s. The viewer already has its headers after tune_grace_ms; the session's
 *            tune deadline for this channel must be at least prebuffer_ms.
 *   rc <  0: no child; fail the tune at once with 503 and ptv_acestream_hdhr_error(rc)
 *            (806 Tune Failed; 805 All Tuners In Use for the engine session limit). Nothing
 *            to release. Every failure returns within timeout_ms (default 5 s).
 *
 * The child restarting (crash, reconnect backoff) may reuse the same playback URL while the
 * session lives. If the child gave up (the engine dropped the session), release the old
 * session and resolve again: the new one gets a fresh pid.
 *
 * Teardown (the session is done: last viewer gone past linger, tune failed after resolve, or
 * drain), ON A POOL THREAD, after the ingest child was told to stop:
 *
 *	ptv_acestream_release(ace, s->ace); s->ace = NULL;
 *
 * It sends command_url?method=stop (at most stop_timeout_ms, default 3 s, best effort) and
 * frees the engine slot. It is safe while the monitor polls the session (refcounted).
 *
 * Errors (all calls): 0, or
 *   -EINVAL        not an Acestream source, bad engine URL
 *   -ECONNREFUSED  engine not running (also -EHOSTUNREACH: unknown host)
 *   -ETIMEDOUT     no complete answer within the timeout (engine hung)
 *   -EIO           HTTP error status from the engine (reason says which), truncated answer
 *   -EBADMSG       malformed JSON, or no usable playback_url
 *   -EREMOTEIO     the engine answered with its "error" field set (reason has its text)
 *   -PTV_ERR_LIMIT engine session limit reached (resolve only)
 *   -ENOMEM, -ECONNRESET, -EPROTO
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_ACESTREAM_ID_LEN		      40
#define PTV_ACESTREAM_TIMEOUT_MS_DEFAULT      5000u
#define PTV_ACESTREAM_STOP_TIMEOUT_MS_DEFAULT 3000u
#define PTV_ACESTREAM_STAT_MS_DEFAULT	      5000u
#define PTV_ACESTREAM_VERSION_MS_DEFAULT      60000u

/** Which getstream selector an id is sent as. */
enum ptv_acestream_selector {
	PTV_ACESTREAM_CONTENT_ID = 1, /* id= (content_id) */
	PTV_ACESTREAM_INFOHASH = 2,   /* infohash= */
};

/**
 * Takes the id out of an Acestream source: "acestream://ID", "ace://ID", a bare ID,
 * "acestream://infohash=ID", "infohash:ID", "infohash=ID", or an engine URL
 * "http://host:6878/ace/getstream?id=ID" (also content_id= and infohash=). ID is 40 hex digits;
 * it is written lowercase into @id. Returns 0 or -EINVAL.
 */
int ptv_acestream_parse_id(const char *src, char id[PTV_ACESTREAM_ID_LEN + 1],
			   enum ptv_acestream_selector *sel);

/** One engine session (one pid). Filled by ptv_acestream_start(); read-only for callers. */
struct ptv_acestream_session {
	char pid[37]; /* UUID v4, fresh for every start */
	char id[PTV_ACESTREAM_ID_LEN + 1];
	enum ptv_acestream_selector sel;
	char playback_url[1024]; /* MPEG-TS, one reader */
	char stat_url[1024];	 /* "" if the engine gave none */
	char command_url[1024];	 /* "" if the engine gave none: stop is then a no-op */
	char infohash[64];
	char playback_session_id[128];
	bool is_live;
	char reason[160]; /* short reason of the last failure, credentials redacted */
	/* private to acestream.c (set by ptv_acestream_resolve) */
	void *priv;
};

/** What stat_url reports (PROTOCOLS.md §4.1). */
struct ptv_acestream_stat {
	char status[16]; /* "prebuf" while prebuffering, "dl" while playing, … ("" if none) */
	unsigned peers;
	uint64_t speed_down; /* bytes/s (the engine says KiB/s) */
	uint64_t speed_up;   /* bytes/s */
	uint64_t downloaded; /* bytes, this engine session */
	uint64_t uploaded;
	unsigned progress; /* percent (prebuffering) */
};

/**
 * GET {engine}/ace/getstream?id=<id>&format=json&pid=<fresh UUID> (infohash= for infohash
 * ids); @src is any form ptv_acestream_parse_id() takes. @timeout_ms 0: default. Fills @out
 * (on failure only out->reason and the request fields are meaningful). Pool threads.
 */
int ptv_acestream_start(const char *engine, const char *src, unsigned timeout_ms,
			struct ptv_acestream_session *out);

/** GET command_url?method=stop, best effort. @timeout_ms 0: 3 s. Pool threads. */
int ptv_acestream_stop(struct ptv_acestream_session *s, unsigned timeout_ms);

/** GET stat_url into @out. @timeout_ms 0: default. Pool threads. */
int ptv_acestream_stat(struct ptv_acestream_session *s, unsigned timeout_ms,
		       struct ptv_acestream_stat *out);

/**
 * GET {engine}/webui/api/service?method=get_version&format=json: the version string ("3.1.0")
 * into @version and the numeric code into @code (either may be NULL). @reason (may be NULL)
 * gets a short reason on failure. Pool threads.
 */
int ptv_acestream_version(const char *engine, unsigned timeout_ms, char *version, size_t len,
			  long *code, char *reason, size_t reason_len);

/* ---- the engine as a shared resource (limit, metrics, monitor) ---- */

struct ptv_acestream;

struct ptv_acestream_opts {
	const char *engine;	   /* NULL or "": http://127.0.0.1:6878 */
	unsigned max_sessions;	   /* concurrent engine sessions; 0 = unlimited */
	unsigned timeout_ms;	   /* getstream, stat, version; 0: default */
	unsigned stop_timeout_ms;  /* 0: default */
	unsigned stat_interval_ms; /* monitor's stat polls; 0: none */
	unsigned prebuffer_ms;	   /* first-byte budget the relay should give a channel */
};

struct ptv_config;
/** Fills @o from the [acestream] keys and acestream_engine (@o points into @c). */
void ptv_acestream_opts_from_config(const struct ptv_config *c, struct ptv_acestream_opts *o);

/** Registers the plextv_acestream_* metrics. Main thread. Returns 0 or -EINVAL/-ENOMEM. */
int ptv_acestream_new(const struct ptv_acestream_opts *o, struct ptv_acestream **out);
/** Stops the monitor, stops and frees sessions still held. NULL is fine. */
void ptv_acestream_free(struct ptv_acestream *a);
/** New engine URL, limit and timeouts, for new sessions. Any thread. */
int ptv_acestream_reconfigure(struct ptv_acestream *a, const struct ptv_acestream_opts *o);
/** The configured prebuffer budget (ms), for the relay's deadlines. */
unsigned ptv_acestream_prebuffer_ms(const struct ptv_acestream *a);

/**
 * Engine session slots, separate from tuner limits. Non-blocking, any thread (a reactor may
 * check before queueing a tune). acquire returns 0 or -PTV_ERR_LIMIT; every successful acquire
 * needs one release. resolve/release below do this themselves.
 */
int ptv_acestream_slot_acquire(struct ptv_acestream *a);
void ptv_acestream_slot_release(struct ptv_acestream *a);
/** Sessions currently holding a slot. */
unsigned ptv_acestream_slots_used(struct ptv_acestream *a);

/**
 * The relay's source resolver (see the top of this file): takes a slot, starts an engine
 * session for @channel_url labelled @label (GuideNumber, for metrics and logs), copies its
 * playback URL into @playback_url and returns the session in @out. Pool threads.
 * Errors as listed above; on failure *@out is NULL and no slot is held.
 */
int ptv_acestream_resolve(struct ptv_acestream *a, const char *channel_url, const char *label,
			  struct ptv_acestream_session **out, char *playback_url, size_t len);

/** Stops the session (best effort, bounded), frees its slot and the session. NULL is fine. */
void ptv_acestream_release(struct ptv_acestream *a, struct ptv_acestream_session *s);

/** One stat_url poll of @s into its metrics and its last stat. Pool threads. */
int ptv_acestream_poll(struct ptv_acestream *a, struct ptv_acestream_session *s);

/** The last polled stat of @s (zeroed if none yet). Any thread. */
void ptv_acestream_last_stat(struct ptv_acestream_session *s, struct ptv_acestream_stat *out);

/**
 * One round of the monitor: the version check when due (at once, then every minute) and a
 * stat poll of every live session when due. Returns at once (-EBUSY) if another tick runs.
 * The monitor thread calls it; without the monitor, call it from a periodic pool job.
 */
int ptv_acestream_tick(struct ptv_acestream *a);

/** Starts the monitor thread (calls ptv_acestream_tick() about every second). Main thread. */
int ptv_acestream_monitor_start(struct ptv_acestream *a);

/** The HDHomeRun error a failed resolve maps to: 805 for -PTV_ERR_LIMIT, else 806. */
int ptv_acestream_hdhr_error(int err);

/** The metric label for an error ("refused", "timeout", "http", "malformed", "engine", …). */
const char *ptv_acestream_err_reason(int err);
