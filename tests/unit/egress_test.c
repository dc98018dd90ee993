/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Egress policy tests with an in-memory sink: where viewers start (offset 0 for cold viewers,
 * the newest start point with its PAT/PMT for warm ones), batching, one batch in flight,
 * resync on lag, and an end-to-end check on a real capture: a late viewer's bytes start with
 * PAT and PMT, hold a keyframe next, and have no continuity error, even across an ingest
 * restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/common.h"
#include "plextv/egress.h"
#include "plextv/ts.h"

/* ---- sink: collects what would go on the wire ---- */

struct sink {
	struct ptv_buf out; /* everything "sent" */
	size_t queued;	    /* not drained yet */
	unsigned writes;
	struct ptv_blob *held; /* the chunk of the batch in flight */
	int fail;
};

static int sink_copy(void *ctx, const void *p, size_t n)
{
	struct sink *s = ctx;

	if (s->fail)
		return s->fail;
	ptv_buf_append(&s->out, p, n);
	s->queued += n;
	s->writes++;
	return 0;
}

static int sink_ref(void *ctx, struct ptv_blob *chunk, size_t off, size_t n)
{
	struct sink *s = ctx;

	if (s->fail)
		return s->fail;
	assert_null(s->held);
	s->held = ptv_blob_ref(chunk);
	ptv_buf_append(&s->out, chunk->data + off, n);
	s->queued += n;
	s->writes++;
	return 0;
}

static size_t sink_queued(void *ctx)
{
	return ((struct sink *)ctx)->queued;
}

static void sink_drain(struct sink *s)
{
	s->queued = 0;
	ptv_blob_unref(s->held);
	s->held = NULL;
}

static const struct ptv_egress_sink sink_ops = {sink_copy, sink_ref, sink_queued};
static const struct ptv_egress_opts opts = {.batch_ms = 100, .max_lag_ms = 2000};

/* ---- ring filling ---- */

static void fill_pkts(struct ptv_ring *r, unsigned count, uint64_t now)
{
	while (count) {
		uint8_t *p;
		size_t len, n;

		assert_int_equal(ptv_ring_reserve(r, now, &p, &len), 0);
		n = PTV_MIN((size_t)count, len / PTV_TS_PKT);
		for (size_t i = 0; i < n; i++) {
			memset(p + i * PTV_TS_PKT, (int)(r->head / PTV_TS_PKT + i) & 0x7f,
			       PTV_TS_PKT);
			p[i * PTV_TS_PKT] = PTV_TS_SYNC;
		}
		ptv_ring_wrote(r, n * PTV_TS_PKT);
		ptv_ring_commit(r, n * PTV_TS_PKT);
		count -= (unsigned)n;
	}
}

static void test_cold_start(void **state)
{
	struct ptv_ring r;
	struct ptv_egress e;
	struct sink s = {0};

	assert_int_equal(ptv_ring_init(&r, 8 * PTV_RING_CHUNK, 0), 0);
	ptv_egress_init(&e, true);
	assert_false(ptv_egress_can_start(&e, &r));
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 0), 0);
	fill_pkts(&r, 10, 0);
	assert_true(ptv_egress_can_start(&e, &r));
	/* The first batch goes at once, from offset 0, without a prefix. */
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 1), 10 * PTV_TS_PKT);
	assert_true(e.events & PTV_EGRESS_STARTED);
	assert_int_equal(s.out.len, 10 * PTV_TS_PKT);
	assert_int_equal(e.cursor, r.head);
	/* In flight: nothing more until drained. */
	fill_pkts(&r, PTV_RING_CHUNK_PKTS, 2);
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 3), 0);
	sink_drain(&s);
	/* The rest of chunk 0 is complete: it goes now, and stops at the chunk end. */
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 3),
			 PTV_RING_CHUNK - 10 * PTV_TS_PKT);
	assert_int_equal(e.cursor, PTV_RING_CHUNK);
	sink_drain(&s);
	/* 10 packets of chunk 1: too few, too soon... */
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 50), 0);
	/* ...until batch_ms after the last batch. */
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 103), 10 * PTV_TS_PKT);
	sink_drain(&s);
	assert_int_equal(e.bytes, s.out.len);
	ptv_buf_free(&s.out);
	ptv_ring_deinit(&r);
}

static void test_warm_start_prefix(void **state)
{
	struct ptv_ring r;
	struct ptv_egress e;
	struct sink s = {0};
	uint8_t pat[PTV_TS_PKT], pmt[PTV_TS_PKT];

	memset(pat, 0xa0, sizeof(pat));
	memset(pmt, 0xb0, sizeof(pmt));
	assert_int_equal(ptv_ring_init(&r, 8 * PTV_RING_CHUNK, 0), 0);
	fill_pkts(&r, 500, 0);
	/* A warm viewer never starts at 0, and waits for a start point. */
	ptv_egress_init(&e, false);
	assert_false(ptv_egress_can_start(&e, &r));
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 0), 0);
	ptv_ring_set_rap(&r, 400 * PTV_TS_PKT, pat, pmt, 0);
	assert_true(ptv_egress_can_start(&e, &r));
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 0),
			 2 * PTV_TS_PKT + (500 - 400) * PTV_TS_PKT);
	assert_memory_equal(s.out.data, pat, PTV_TS_PKT);
	assert_memory_equal(s.out.data + PTV_TS_PKT, pmt, PTV_TS_PKT);
	assert_int_equal((uint8_t)s.out.data[2 * PTV_TS_PKT + 1], 400 & 0x7f);
	sink_drain(&s);
	ptv_buf_free(&s.out);
	ptv_ring_deinit(&r);
}

static void test_resync(void **state)
{
	struct ptv_ring r;
	struct ptv_egress e;
	struct sink s = {0};
	uint8_t pat[PTV_TS_PKT] = {0x47}, pmt[PTV_TS_PKT] = {0x47};
	uint64_t rap;

	assert_int_equal(ptv_ring_init(&r, 4 * PTV_RING_CHUNK, 0), 0);
	fill_pkts(&r, 10, 0);
	ptv_egress_init(&e, true);
	assert_true(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 0) > 0);
	/* The viewer stalls (never drains) while the ring wraps past its cursor. */
	fill_pkts(&r, PTV_RING_CHUNK_PKTS * 6, 10);
	rap = r.head - 5 * PTV_TS_PKT;
	ptv_ring_set_rap(&r, rap, pat, pmt, 10);
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 20), 0);
	sink_drain(&s);
	/* Its cursor left the ring: jump to the start point, prefix first, at once. */
	e.events = 0;
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 20),
			 2 * PTV_TS_PKT + 5 * PTV_TS_PKT);
	assert_true(e.events & PTV_EGRESS_RESYNC);
	assert_int_equal(e.resyncs, 1);
	assert_int_equal(e.cursor, r.head);
	assert_true(e.skipped > 0);
	sink_drain(&s);

	/* Lag by time: data older than max_lag_ms while a newer start point exists. */
	fill_pkts(&r, PTV_RING_CHUNK_PKTS, 1000);
	fill_pkts(&r, 10, 4000);
	ptv_ring_set_rap(&r, r.head - 5 * PTV_TS_PKT, pat, pmt, 4000);
	e.events = 0;
	assert_true(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 4000) > 0);
	assert_true(e.events & PTV_EGRESS_RESYNC);
	assert_int_equal(e.resyncs, 2);
	sink_drain(&s);

	/* Sink errors come back as they are. */
	fill_pkts(&r, PTV_RING_CHUNK_PKTS, 5000);
	s.fail = -EPIPE;
	assert_int_equal(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 6000), -EPIPE);
	ptv_buf_free(&s.out);
	ptv_ring_deinit(&r);
}

/* ---- end to end on a real capture ---- */

static uint8_t *load_ts(const char *name, size_t *n)
{
	const char *dir = getenv("PTV_SHARED_DATA");
	char path[4096];
	uint8_t *buf;
	FILE *f;
	long len;

	snprintf(path, sizeof(path), "%s/ts/%s", dir ? dir : "../shared/data", name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len - (size_t)len % PTV_TS_PKT;
	return buf;
}

/* What the relay does with a read from the ingest pipe (relay.c), minus the I/O. */
static void ingest(struct ptv_ring *r, struct ptv_ts_state *st, const uint8_t *data, size_t n,
		   uint64_t now)
{
	size_t done = 0;

	while (done < n) {
		uint8_t *p, *pend;
		size_t len, k, pending;

		assert_int_equal(ptv_ring_reserve(r, now, &p, &len), 0);
		k = PTV_MIN(len, n - done);
		memcpy(p, data + done, k);
		ptv_ring_wrote(r, k);
		done += k;
		pend = ptv_ring_pending(r, &pending);
		for (size_t i = 0; i + PTV_TS_PKT <= pending; i += PTV_TS_PKT) {
			unsigned f = ptv_ts_process(st, pend + i, now);

			if ((f & PTV_TS_F_KEY) && st->have_pat && st->have_pmt)
				ptv_ring_set_rap(r, r->head + i, st->pat, st->pmt, now);
		}
		ptv_ring_commit(r, pending - pending % PTV_TS_PKT);
	}
}

struct tscheck {
	uint8_t pid[PTV_TS_PIDS];
	unsigned cc_errors, packets;
};

static void tscheck(struct tscheck *c, const uint8_t *b, size_t n)
{
	for (size_t off = 0; off + PTV_TS_PKT <= n; off += PTV_TS_PKT) {
		const uint8_t *p = b + off;
		unsigned pid = ptv_ts_pid(p), cc = ptv_ts_cc(p);
		uint8_t s = c->pid[pid];

		assert_int_equal(p[0], PTV_TS_SYNC);
		c->packets++;
		if (pid == PTV_TS_PID_NULL)
			continue;
		if ((s & 0x10) && !ptv_ts_discontinuity(p)) {
			unsigned want = ptv_ts_has_payload(p) ? ((s & 15) + 1) & 15 : (s & 15);

			if (cc != want && !(ptv_ts_has_payload(p) && cc == (s & 15)))
				c->cc_errors++;
		}
		c->pid[pid] = (uint8_t)(0x10 | cc);
	}
}

static void test_capture_late_viewer(void **state)
{
	struct ptv_ts_state *st = malloc(sizeof(*st));
	struct tscheck *chk = calloc(1, sizeof(*chk));
	struct ptv_ring r;
	struct ptv_egress e;
	struct sink s = {0};
	size_t n = 0, half;
	uint8_t *ts = load_ts("muxjs_test-segment.ts", &n);
	int video_pid;

	if (!ts) {
		free(st);
		free(chk);
		skip();
	}
	ptv_ts_state_init(st);
	assert_int_equal(ptv_ring_init(&r, 64 * PTV_RING_CHUNK, 0), 0);
	half = n / 2 - (n / 2) % PTV_TS_PKT;
	ingest(&r, st, ts, half, 0);
	video_pid = st->video_pid;
	/* A viewer joins mid-file. */
	ptv_egress_init(&e, false);
	assert_true(ptv_egress_can_start(&e, &r));
	ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, 0);
	/* The ingest child is replaced: the same bytes again, counters starting over. */
	ingest(&r, st, ts + half, n - half, 10);
	ptv_ts_state_restart(st);
	ingest(&r, st, ts, n, 20);
	/* Pumps batch_ms apart, never lagging past max_lag_ms (no resync in this test). */
	for (uint64_t t = 100; e.cursor < r.head; t += 100) {
		sink_drain(&s);
		assert_true(ptv_egress_pump(&e, &r, &sink_ops, &s, &opts, t) > 0);
	}
	sink_drain(&s);
	/* PAT, PMT, then the keyframe's PES start on the video PID. */
	assert_int_equal(ptv_ts_pid((uint8_t *)s.out.data), PTV_TS_PID_PAT);
	assert_int_equal(ptv_ts_pid((uint8_t *)s.out.data + PTV_TS_PKT), st->pmt_pid);
	assert_int_equal(ptv_ts_pid((uint8_t *)s.out.data + 2 * PTV_TS_PKT), video_pid);
	assert_true(ptv_ts_pusi((uint8_t *)s.out.data + 2 * PTV_TS_PKT));
	tscheck(chk, (uint8_t *)s.out.data, s.out.len);
	assert_int_equal(s.out.len % PTV_TS_PKT, 0);
	assert_int_equal(chk->cc_errors, 0);
	assert_true(chk->packets > n / PTV_TS_PKT);
	ptv_buf_free(&s.out);
	ptv_ring_deinit(&r);
	free(ts);
	free(st);
	free(chk);
}

static void test_send_mode_names(void **state)
{
	enum ptv_send_mode m;

	assert_int_equal(ptv_send_mode_parse("send", &m), 0);
	assert_int_equal(m, PTV_SEND_PLAIN);
	assert_int_equal(ptv_send_mode_parse("zc", &m), 0);
	assert_int_equal(m, PTV_SEND_ZC);
	assert_int_equal(ptv_send_mode_parse("splice", &m), 0);
	assert_int_equal(m, PTV_SEND_SPLICE);
	assert_int_equal(ptv_send_mode_parse("sendfile", &m), -EINVAL);
	assert_string_equal(ptv_send_mode_name(PTV_SEND_ZC), "zc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cold_start),	cmocka_unit_test(test_warm_start_prefix),
		cmocka_unit_test(test_resync),		cmocka_unit_test(test_capture_late_viewer),
		cmocka_unit_test(test_send_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
