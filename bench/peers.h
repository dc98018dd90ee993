/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Relays under test for `fanout`: how to start each one on loopback behind the paced source,
 * where its clients connect, and whether they speak HTTP or raw TCP.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum bench_relay_kind {
	BENCH_RELAY_PLEXTV = 1, /* plextv serve + one-channel M3U import, /auto/v1 */
	BENCH_RELAY_VLC,	/* VLC 3 sout #std{access=http,mux=ts} */
	BENCH_RELAY_GSTREAMER,	/* tcpclientsrc ! tcpserversink (raw TCP) */
	BENCH_RELAY_DIRECT,	/* no relay: clients read the paced source itself */
	BENCH_RELAY_URL,	/* any HTTP TS server given by URL (not started by us) */
	BENCH_RELAY_RAW,	/* any raw TCP TS server given by host:port (not started by us) */
};

struct bench_relay {
	enum bench_relay_kind kind;
	const char *name;
	char host[64];
	uint16_t port;	/* where clients connect */
	char path[512]; /* HTTP path; unused in raw mode */
	bool raw;
	bool needs_source; /* the bench starts the paced source for it */
	bool source_raw;   /* ... in raw TCP mode */
	pid_t pid;	   /* process tree measured as "the relay"; 0: none */
	char cmdline[1024];
	/* plextv only: serve options and where it keeps its state */
	const char *send_mode;	  /* --send-mode (NULL: serve's default) */
	const char *bpf;	  /* --bpf (NULL: off, so runs compare like for like) */
	const char *const *extra; /* more serve arguments, NULL-terminated; may be NULL */
	char data_dir[4096];
	char bin[4096];	      /* the plextv executable */
	uint16_t source_port; /* the paced source the channel points at */
};

/** The plextv executable: $PLEXTV_BIN, else `plextv` beside this executable. */
int bench_plextv_bin(char *out, size_t n);
/* Fills argv with `BIN serve` on a quiet loopback setup (no demo, no discovery, warn logs,
 * BPF per @bpf) and returns how many slots it used; the caller appends and NULL-terminates. */
size_t bench_serve_argv(const char **argv, const char *bin, const char *data_dir,
			const char *listen, const char *bpf);
/** Runs `plextv ARGS...` to completion (bounded by @timeout_ms); 0 when it exited 0. */
int bench_plextv_run(const char *bin, const char *const *args, const char *log,
		     unsigned timeout_ms);
/** Polls GET @path on 127.0.0.1:@port until the body contains @needle. */
int bench_wait_body(uint16_t port, const char *path, const char *needle, unsigned timeout_ms);
/** Sum (or max, with @max) of every sample of metric @name in a Prometheus text body. */
double bench_metric(const char *text, const char *name, bool max);
/** GET /metrics and bench_metric(); NaN when unavailable. */
double bench_metric_get(uint16_t port, const char *name, bool max);

/** Parses plextv|vlc|gstreamer|direct|url:URL|raw:HOST:PORT. Returns 0 or -EINVAL/-EPERM. */
int bench_relay_parse(const char *spec, struct bench_relay *r);
/**
 * Starts the relay reading from the source on @src_port; logs go to @tmpdir. Waits until it
 * accepts connections. Returns 0, -ENOENT (peer not installed), -ETIMEDOUT or -errno.
 */
int bench_relay_start(struct bench_relay *r, const char *tmpdir, uint16_t src_port);
void bench_relay_stop(struct bench_relay *r);

/*
 * The upstream rate plextv really receives (its ingest child's remuxed output, which can be below
 * the source's nominal bitrate): plextv_relay_upstream_bytes_total sampled every few hundred ms,
 * and the least-squares slope over the samples, as the swarm computes each client's rate.
 */
#define BENCH_UPMETER_MAX 4096
struct bench_upmeter {
	unsigned n;
	double t[BENCH_UPMETER_MAX], bytes[BENCH_UPMETER_MAX];
};
void bench_upmeter_sample(struct bench_upmeter *m, uint16_t port);
/** Samples every @period_ms until the monotonic time @until_ns. */
void bench_upmeter_run(struct bench_upmeter *m, uint16_t port, uint64_t until_ns,
		       unsigned period_ms);
double bench_upmeter_mbps(const struct bench_upmeter *m);
