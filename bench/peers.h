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
	BENCH_RELAY_PLEXTV = 1, /* pending on the relay core (issue 4) */
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
};

/** Parses plextv|vlc|gstreamer|direct|url:URL|raw:HOST:PORT. Returns 0 or -EINVAL/-EPERM. */
int bench_relay_parse(const char *spec, struct bench_relay *r);
/**
 * Starts the relay reading from the source on @src_port; logs go to @tmpdir. Waits until it
 * accepts connections. Returns 0, -ENOENT (peer not installed), -ETIMEDOUT or -errno.
 */
int bench_relay_start(struct bench_relay *r, const char *tmpdir, uint16_t src_port);
void bench_relay_stop(struct bench_relay *r);
