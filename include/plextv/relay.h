/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The relay: live MPEG-TS for /auto/v{GuideNumber}, /tuner{N}/v{GuideNumber} and
 * /stream/{channelId} (and the per-device variants through ptv_relay_tune()).
 *
 * ---- Sessions and tuners ---------------------------------------------------------------------
 * A session is one channel's upstream: one ingest child process (ingest.h) and one ring
 * (ring.h), however many viewers. It starts with the first viewer and stops when the last one
 * has been gone for linger_ms (channel zapping). A tuner slot is a session: each virtual device
 * has `tuners` slots, and a source may cap its concurrent sessions (source_max_streams, 0 = no
 * cap). Viewers of a running channel share its slot whatever tuner URL they used.
 *
 * Refusals are answered at once, with Connection: close and a short body:
 *   unknown or disabled channel     404 + X-HDHomeRun-Error: 801 Unknown Channel
 *   /tunerN/ busy with another one  503 + 804 Tuner In Use
 *   no free slot (device or source) 503 + 805 All Tuners In Use
 *
 * ---- Tuning: "headers at once" and "503 + 806/807 within the deadline" ------------------------
 * A warm channel (its session already has data) answers 200 at once and the first bytes are
 * the PAT and PMT that preceded the newest keyframe, then the ring from that keyframe on.
 *
 * A cold channel holds the response for at most tune_grace_ms (default 1 s):
 *   - the first TS bytes arrive: 200, Content-Type: video/mp2t, close-delimited body (never
 *     chunked, no Content-Length), starting at the first byte the upstream gave;
 *   - the ingest child gives up first (exit 2: no URL opened; exit 3: opened but no data; or
 *     a bad configuration): 503 + 806 Tune Failed or 807 No Video Data;
 *   - the grace passes with neither: 200 and the headers go out anyway (clients such as Plex
 *     time out when headers are slow), the body follows when the data comes; if no byte came
 *     by tune_deadline_ms (default 10 s) after the request, or the child gave up, the
 *     connection is closed.
 * So a dead upstream that fails fast (refused, 404, DNS) gets a proper 503 + 806, a slow one
 * gets headers within the grace, and no request ever waits longer than the deadline.
 *
 * HEAD gets the 200 headers and takes no tuner. `duration=<s>` closes the stream after s
 * seconds; `transcode=` and unknown parameters are ignored; Range (e.g. bytes=0-) is ignored,
 * so the answer is always 200, never 206 or 416. A successful answer carries
 * X-HDHomeRun-Resource: tuner<N>.
 *
 * ---- Acestream channels ------------------------------------------------------------------------
 * The spawn job (on the pool) first starts an engine session with a fresh pid
 * (ptv_acestream_resolve()) and the child reads its playback URL, with the engine's prebuffer
 * budget as its first-packet and read timeouts; the tune deadline of such a channel is at least
 * that budget. A failed resolve answers 503 + 806 (805 at the engine session limit) within
 * the engine timeout. Every respawn and the teardown stop the engine session on the pool
 * (command_url?method=stop), so viewers of one channel cost one engine session.
 *
 * ---- Accounting ---------------------------------------------------------------------------------
 * plextv_channel_{egress,ingress}_bytes_total{channel=<id>,source="user"}: TS body bytes each
 * viewer's socket accepted, TS bytes the ingest gave. The eBPF twins (source="bpf") count the
 * same sockets in the kernel: a viewer's socket is tagged when its stream starts, the child's
 * sockets when it reports "opened"/"first_packet" (bpf_loader.h); no-ops without BPF.
 *
 * ---- Threads ----------------------------------------------------------------------------------
 * A session lives on the reactor of its first viewer (its home): the home spawns the child
 * (posix_spawn on the worker pool), reads its TS pipe with io_uring straight into ring chunks,
 * reads its event pipe into log lines and metrics, and watches its pidfd. Viewers stay on the
 * reactor that accepted them; every other reactor with viewers of the channel keeps a replica
 * of the ring, fed by one inbox message per batch (references to chunks, never copies), so
 * many viewers of one channel use every core and the per-packet path takes no lock.
 *
 * ---- Per viewer -------------------------------------------------------------------------------
 * A cursor into the ring (egress.h): at most one batch in flight, a batch being the rest of a
 * 64 KiB chunk sent by reference, or what came within send_batch_ms. The socket is bounded
 * (SO_SNDBUF 256 KiB, TCP_NOTSENT_LOWAT 128 KiB), so a stalled viewer blocks its own send soon
 * and the HTTP write timeout disconnects it (counted as an eviction); a slow one falling
 * max_lag_ms behind jumps to the newest keyframe (counted as a resync). Other viewers of the
 * channel read the same chunks and never wait for it.
 *
 * ---- Restarts ---------------------------------------------------------------------------------
 * The child reconnects and fails over between the channel's URLs by itself. When it dies (a
 * crash, SIGSEGV included), exits mid-stream, or goes quiet (no TS byte and no event for a
 * watchdog period) it is killed if needed and restarted with exponential backoff and jitter;
 * viewers stay connected, continuity counters stay continuous (ts.h rewrites them) and a
 * timebase jump is marked with discontinuity_indicator.
 *
 * ---- Send modes -------------------------------------------------------------------------------
 * send_mode = splice (the default, measured cheapest: the session's ring takes new chunks from
 * a memfd, memring.h, from the first splice viewer on; the HTTP layer sends them with
 * sendfile() on a non-blocking socket, so the kernel references the pages instead of copying,
 * and the PAT/PMT prefix and older heap chunks by sendmsg), send (sendmsg from the chunks: one
 * copy per viewer) or zc (IORING_OP_SENDMSG_ZC from the same chunks: the HTTP layer keeps each
 * chunk referenced until the kernel's notification, and the ring never rewrites a referenced
 * chunk; on loopback the kernel copies anyway, PERFORMANCE-ANCHORS §0.3). SIGHUP switches the
 * mode for new viewers; /metrics shows it (plextv_relay_send_mode).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "plextv/config.h"

struct ptv_relay;
struct ptv_pool;
struct ptv_reactor;
struct ptv_router;
struct ptv_http_req;
struct ptv_buf;
struct ptv_lineup_channel;
struct ptv_acestream;

/**
 * Creates the relay for @nreactors reactors (indexes 0..n-1). Main thread, before the reactors
 * start. Returns 0, or -PTV_ERR_CONFIG (logged) for an invalid relay setting.
 */
int ptv_relay_new(const struct ptv_config *cfg, struct ptv_pool *pool, unsigned nreactors,
		  struct ptv_relay **out);
/**
 * Frees the relay. Main thread, after every reactor was freed (so no io_uring operation can
 * still write into a ring): kills and reaps children still running. NULL is fine.
 */
void ptv_relay_free(struct ptv_relay *relay);
/**
 * Gives the relay the shared Acestream engine client (acestream.h) for PTV_CHANNEL_ACESTREAM
 * channels. Main thread, before the reactors start; @ace must outlive the relay. Without one,
 * Acestream channels fail with 503 + 806.
 */
void ptv_relay_set_acestream(struct ptv_relay *relay, struct ptv_acestream *ace);
/** SIGHUP: new tuner counts, limits and timeouts apply to new sessions and viewers. */
void ptv_relay_reconfigure(struct ptv_relay *relay, const struct ptv_config *cfg);

/** Registers /auto/, /tuner{N}/ and /stream/. Before the reactors start. */
int ptv_relay_routes_register(struct ptv_relay *relay, struct ptv_router *rt);

/* ---- per reactor (each on the reactor's own thread) ---- */

/** Sets up the reactor's relay state (PTV_SLOT_RELAY). Before its HTTP server accepts. */
int ptv_relay_attach(struct ptv_relay *relay, struct ptv_reactor *r);
/** SIGTERM: ends the reactor's streams and stops the sessions it is home to. */
void ptv_relay_drain(struct ptv_reactor *r);
/** True while the reactor's relay work is unfinished (children, reads, messages, viewers). */
bool ptv_relay_busy(struct ptv_reactor *r);
/**
 * After the reactor's loop ended: refuses further messages to it and runs those already
 * posted. Memory is released by ptv_relay_free().
 */
void ptv_relay_detach(struct ptv_reactor *r);

/* ---- HTTP ---- */

/**
 * Answers @req with channel @ch (see the top of this file); @tuner is -1 for any free slot of
 * the channel's device. For the HDHomeRun routes under /devices/N/. Returns 0 once answered
 * (or deferred), like a route handler.
 */
int ptv_relay_tune(struct ptv_relay *relay, struct ptv_http_req *req,
		   const struct ptv_lineup_channel *ch, int tuner);

/** One tuner's state for /status.json. */
struct ptv_relay_tuner_status {
	bool in_use;
	char number[32]; /* GuideNumber */
	char name[128];
	char target_ip[48]; /* first viewer's address */
	uint64_t rate_bps;  /* upstream bit rate, last seconds */
	unsigned viewers;
};

/** Fills @out[0..n) with the tuners of virtual device @device; returns the tuner count. */
unsigned ptv_relay_status(struct ptv_relay *relay, unsigned device,
			  struct ptv_relay_tuner_status *out, unsigned n);
/** Appends device @device's /status.json array (PROTOCOLS.md §1.8) to @out. */
int ptv_relay_status_json(struct ptv_relay *relay, unsigned device, struct ptv_buf *out);

/** ptv_relay_tune() and ptv_relay_status_json() with a void context (struct ptv_hdhr_hooks). */
int ptv_relay_hook_tune(void *relay, struct ptv_http_req *req, const struct ptv_lineup_channel *ch,
			int tuner);
int ptv_relay_hook_status(void *relay, unsigned device, struct ptv_buf *out);
