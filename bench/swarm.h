/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The client swarm: thousands of TS readers on loopback, written so that it is never what limits
 * a result. One thread per core, each with its own io_uring (SINGLE_ISSUER + DEFER_TASKRUN when
 * the kernel has them), connects, sends the GET (HTTP mode) and reads with one multishot receive
 * per connection into a provided-buffer ring; the buffers are checked (tscheck.h) and handed back
 * in the same loop turn, so memory does not grow with the client count beyond the checker state.
 *
 * Per client it records time to first body byte, bytes in the measurement window (after the
 * warm-up), the longest gap between two receives and how many gaps exceeded the stall threshold,
 * continuity and sync errors, and how the connection ended (still open, closed by the server,
 * error, refused, bad HTTP status). Its own CPU time is summed from RUSAGE_THREAD.
 */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum bench_client_end {
	BENCH_CLIENT_OPEN = 0,	     /* still streaming at the end of the run */
	BENCH_CLIENT_EOF = 1,	     /* the server closed the connection */
	BENCH_CLIENT_ERROR = 2,	     /* receive or send failed (reset...) */
	BENCH_CLIENT_REFUSED = 3,    /* connect failed */
	BENCH_CLIENT_HTTP = 4,	     /* status other than 200, or an unusable response header */
	BENCH_CLIENT_NOSTART = 5,    /* never got to connect (run ended or interrupted first) */
	BENCH_CLIENT_CONNECTING = 6, /* connect still pending at the end (server not accepting) */
};

struct bench_client_stats {
	uint64_t body_bytes;
	uint64_t window_bytes;
	int64_t ttfb_ns; /* connect start to first body byte; -1: none */
	uint64_t max_gap_ns;
	uint32_t stalls;
	int http_status;
	enum bench_client_end end;
	int error; /* negative errno for ERROR and REFUSED */
	uint64_t packets, cc_errors, sync_errors, initial_skip, resync_skip;
	double delivered_mbps;
};

struct bench_swarm_opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char request[1024]; /* empty: raw TCP mode (read as soon as connected) */
	unsigned clients;
	unsigned threads;
	double duration_s;
	double warmup_s;	   /* bytes before this are not counted in the rates */
	unsigned stall_ms;	   /* a gap longer than this is a stall */
	unsigned rcvbuf;	   /* SO_RCVBUF; 0 keeps the kernel's autotuning */
	unsigned buf_size;	   /* provided receive buffer size */
	unsigned buf_count;	   /* per thread; power of two */
	unsigned connect_inflight; /* per thread */
	unsigned connect_rate;	   /* new connections per second, all threads (0: no ramp) */
};

struct bench_swarm_result {
	struct bench_client_stats *clients;
	unsigned n;
	double window_s;
	double cpu_s; /* the swarm threads' own CPU time */
	bool single_issuer, defer_taskrun;
};

struct bench_swarm_summary {
	unsigned clients;
	double mbps_min, mbps_p1, mbps_p50, gbps_total;
	double ttfb_ms_p50, ttfb_ms_p95, max_gap_ms;
	uint64_t stalls, cc_errors, sync_errors, packets;
	unsigned dropped;	  /* closed by the server or failed while streaming */
	unsigned refused;	  /* connect failed, or never started */
	unsigned connect_pending; /* connect still pending at the end: the server's backlog */
	unsigned http_errors;
	unsigned no_data;   /* connected but never received a body byte */
	unsigned below_999; /* delivered < 99.9 % of the expected bitrate */
	double expected_mbps;
	double cpu_s;
	double window_s;
};

struct bench_swarm;

/**
 * Fills defaults: 1 thread per online CPU, 1 s stall threshold, 32 KiB x 512 buffers, and a
 * connect ramp of 1000/s, because some peers listen with a tiny backlog (GStreamer's GSocket
 * default is 10) and a burst of SYNs past it waits for the 1 s SYN retransmit. The warm-up
 * (not measured) is at least the ramp plus one second.
 */
void bench_swarm_opts_default(struct bench_swarm_opts *o);
/** Sets addr and, unless @raw, the GET request for @path. Loopback only. */
int bench_swarm_target(struct bench_swarm_opts *o, const char *host, uint16_t port,
		       const char *path, bool raw);
/** Starts the threads; the run ends by itself after duration_s. Returns 0 or -errno. */
int bench_swarm_start(const struct bench_swarm_opts *o, struct bench_swarm **out);
/** Monotonic times (ns) of the measurement window, for sampling peers' CPU over it. */
uint64_t bench_swarm_window_start(const struct bench_swarm *sw);
uint64_t bench_swarm_end(const struct bench_swarm *sw);
/** Joins the threads, fills @res (caller frees with bench_swarm_result_free) and frees @sw. */
int bench_swarm_finish(struct bench_swarm *sw, struct bench_swarm_result *res);
void bench_swarm_result_free(struct bench_swarm_result *res);

void bench_swarm_summarize(const struct bench_swarm_result *res, double expected_mbps,
			   struct bench_swarm_summary *s);
/** Adds the summary fields (issue 7 names) to @obj. */
void bench_swarm_summary_json(const struct bench_swarm_summary *s, json_t *obj);
const char *bench_client_end_name(enum bench_client_end e);
/** One object per client (for debugging a run: --per-client). */
json_t *bench_swarm_clients_json(const struct bench_swarm_result *res);
