/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <string.h>

#include "tscheck.h"

#define PID_SEEN 0x80u
#define PID_DUP	 0x40u

void bench_ts_check_init(struct bench_ts_check *c)
{
	memset(c, 0, sizeof(*c));
}

static void ts_check_packet(struct bench_ts_check *c, const uint8_t *p)
{
	unsigned pid = ((p[1] & 0x1fu) << 8) | p[2];
	unsigned afc = (p[3] >> 4) & 3u;
	unsigned cc = p[3] & 0x0fu;
	unsigned st = c->pid[pid];
	bool disc;

	c->packets++;
	/* afc 00 is reserved: a decoder discards the packet, so do we. */
	if (pid == BENCH_TS_NULL_PID || afc == 0)
		return;
	disc = (afc & 2u) && p[4] > 0 && (p[5] & 0x80u);
	if (!(st & PID_SEEN) || disc) {
		c->pid[pid] = (uint8_t)(PID_SEEN | cc);
		return;
	}
	if (!(afc & 1u))
		return; /* adaptation field only: the counter does not move */
	if (cc == (((st & 0x0fu) + 1u) & 0x0fu)) {
		c->pid[pid] = (uint8_t)(PID_SEEN | cc);
	} else if (cc == (st & 0x0fu) && !(st & PID_DUP)) {
		c->pid[pid] = (uint8_t)(st | PID_DUP);
	} else {
		c->cc_errors++;
		c->pid[pid] = (uint8_t)(PID_SEEN | cc);
	}
}

/* Looks for 0x47 twice 188 bytes apart; needs 189 bytes. Returns the offset or -1. */
static long ts_find_sync(const uint8_t *p, size_t n)
{
	const uint8_t *q = p;
	const uint8_t *end = p + n - BENCH_TS_PKT;

	while (q < end) {
		q = memchr(q, 0x47, (size_t)(end - q));
		if (!q)
			return -1;
		if (q[BENCH_TS_PKT] == 0x47)
			return q - p;
		q++;
	}
	return -1;
}

static void ts_skip(struct bench_ts_check *c, size_t n)
{
	if (c->ever_locked)
		c->resync_skip += n;
	else
		c->initial_skip += n;
}

/* Consumes whole packets (locked) or scans for sync; leaves a tail it cannot decide on yet. */
static size_t ts_process(struct bench_ts_check *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	long at;

	for (;;) {
		if (c->locked) {
			if (n - off < BENCH_TS_PKT)
				break;
			if (p[off] != 0x47) {
				c->sync_errors++;
				c->locked = false;
				memset(c->pid, 0, sizeof(c->pid));
				ts_skip(c, 1);
				off++;
				continue;
			}
			ts_check_packet(c, p + off);
			off += BENCH_TS_PKT;
			continue;
		}
		if (n - off <= BENCH_TS_PKT)
			break;
		at = ts_find_sync(p + off, n - off);
		if (at < 0) {
			ts_skip(c, n - off - BENCH_TS_PKT);
			off = n - BENCH_TS_PKT;
			break;
		}
		ts_skip(c, (size_t)at);
		off += (size_t)at;
		c->locked = true;
		c->ever_locked = true;
	}
	return off;
}

static size_t ts_pend_fill(struct bench_ts_check *c, const uint8_t *p, size_t n)
{
	/* Locked: complete exactly one packet so the next bytes go through the copy-free path. */
	size_t room = c->locked ? BENCH_TS_PKT - c->pend_len : BENCH_TS_PEND_CAP - c->pend_len;
	size_t take = n < room ? n : room;
	size_t used;

	memcpy(c->pend + c->pend_len, p, take);
	c->pend_len = (uint16_t)(c->pend_len + take);
	used = ts_process(c, c->pend, c->pend_len);
	memmove(c->pend, c->pend + used, c->pend_len - used);
	c->pend_len = (uint16_t)(c->pend_len - used);
	return take;
}

void bench_ts_check_feed(struct bench_ts_check *c, const uint8_t *p, size_t n)
{
	size_t used;

	while (c->pend_len && n) {
		used = ts_pend_fill(c, p, n);
		p += used;
		n -= used;
	}
	if (!n)
		return;
	used = ts_process(c, p, n);
	/* What is left is shorter than the unit ts_process needs, so it fits in pend. */
	memcpy(c->pend, p + used, n - used);
	c->pend_len = (uint16_t)(n - used);
}
