/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * MPEG-TS stream checker for the client swarm: every received byte passes through it.
 *
 * Checks sync (0x47 every 188 bytes) and continuity counters per PID following ISO/IEC 13818-1
 * §2.4.3.3: the counter increments only on packets that carry a payload, a packet with an
 * adaptation field only keeps it, one duplicate (same counter, payload present) is allowed, the
 * null PID 0x1FFF is not counted, and discontinuity_indicator restarts the PID.
 *
 * The stream may start mid-packet (raw TCP peers hand a new client whatever buffer is current):
 * the checker locks when it sees 0x47 twice 188 bytes apart. Bytes skipped before the first lock
 * are normal (initial_skip); a lost lock later is a sync error and the PID states are reset so one
 * loss is not also reported as a burst of continuity errors.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_TS_PKT	  188u
#define BENCH_TS_NULL_PID 0x1FFFu
#define BENCH_TS_PEND_CAP (3u * BENCH_TS_PKT)

struct bench_ts_check {
	uint64_t packets;      /* packets checked while locked */
	uint64_t cc_errors;    /* continuity errors (after the PID's first packet) */
	uint64_t sync_errors;  /* lock lost after it was first acquired */
	uint64_t initial_skip; /* bytes before the first lock */
	uint64_t resync_skip;  /* bytes skipped while re-locking after a sync error */
	bool locked;
	bool ever_locked;
	uint16_t pend_len;
	uint8_t pend[BENCH_TS_PEND_CAP]; /* bytes not processed yet (partial packet or scan tail) */
	uint8_t pid[8192]; /* per PID: bit 7 seen, bit 6 duplicate used, low 4 bits CC */
};

void bench_ts_check_init(struct bench_ts_check *c);
/** Feeds @n bytes of the stream (any split). */
void bench_ts_check_feed(struct bench_ts_check *c, const uint8_t *p, size_t n);
