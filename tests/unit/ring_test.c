/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ring tests: writing whole and partial packets, chunk boundaries, eviction by bytes and by
 * time, the rule that a referenced chunk is never rewritten, start points, and replication to
 * another reactor's replica (including a replica that fell far behind and one that was
 * cleared). Run under ASan for the reference counting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "plextv/common.h"
#include "plextv/ring.h"

#define CS PTV_RING_CHUNK

/* Packet number @n: sync byte, then the number repeated (so any byte tells where it is from). */
static void make_pkt(uint8_t *p, uint32_t n)
{
	p[0] = PTV_TS_SYNC;
	for (size_t i = 1; i + 4 <= PTV_TS_PKT; i += 4)
		memcpy(p + i, &n, 4);
}

static uint32_t pkt_num(const uint8_t *p)
{
	uint32_t n;

	memcpy(&n, p + 1, 4);
	return n;
}

/* Writes packets [first, first + count) through reserve/wrote/commit, @split bytes at a time. */
static void write_pkts(struct ptv_ring *r, uint32_t first, uint32_t count, size_t split,
		       uint64_t now)
{
	uint8_t pkt[PTV_TS_PKT];
	size_t done = 0, total = (size_t)count * PTV_TS_PKT;

	while (done < total) {
		uint8_t *p, *pend;
		size_t len, n, pending;

		assert_int_equal(ptv_ring_reserve(r, now, &p, &len), 0);
		n = PTV_MIN(PTV_MIN(len, split), total - done);
		for (size_t i = 0; i < n; i++) {
			size_t at = done + i;

			if (i == 0 || at % PTV_TS_PKT == 0)
				make_pkt(pkt, first + (uint32_t)(at / PTV_TS_PKT));
			p[i] = pkt[at % PTV_TS_PKT];
		}
		ptv_ring_wrote(r, n);
		done += n;
		pend = ptv_ring_pending(r, &pending);
		(void)pend;
		ptv_ring_commit(r, pending - pending % PTV_TS_PKT);
	}
}

/* Every packet in [from, head) reads back as the number it was written with. */
static void check_range(const struct ptv_ring *r, uint64_t from, uint32_t first_num)
{
	uint64_t off = from;

	while (off < r->head) {
		struct ptv_blob *chunk;
		size_t coff, len = ptv_ring_peek(r, off, &chunk, &coff);

		assert_true(len > 0);
		assert_int_equal(len % PTV_TS_PKT, 0);
		for (size_t i = 0; i < len; i += PTV_TS_PKT) {
			const uint8_t *p = (const uint8_t *)chunk->data + coff + i;

			assert_int_equal(p[0], PTV_TS_SYNC);
			assert_int_equal(pkt_num(p), first_num + (off + i - from) / PTV_TS_PKT);
		}
		off += len;
	}
}

static void test_write_read(void **state)
{
	struct ptv_ring r;
	struct ptv_blob *chunk;
	size_t coff;

	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	assert_int_equal(ptv_ring_peek(&r, 0, &chunk, &coff), 0);
	write_pkts(&r, 0, 10, 1000, 0);
	assert_int_equal(r.head, 10 * PTV_TS_PKT);
	assert_int_equal(ptv_ring_peek(&r, 0, &chunk, &coff), 10 * PTV_TS_PKT);
	assert_int_equal(ptv_ring_peek(&r, 188 * 3, &chunk, &coff), 7 * PTV_TS_PKT);
	assert_int_equal(coff, 188 * 3);
	check_range(&r, 0, 0);
	/* Across chunk boundaries, with odd read sizes. */
	write_pkts(&r, 10, PTV_RING_CHUNK_PKTS * 2, 7777, 0);
	assert_int_equal(r.head, (10 + 2 * PTV_RING_CHUNK_PKTS) * PTV_TS_PKT);
	check_range(&r, 0, 0);
	/* A peek never crosses a chunk end. */
	assert_int_equal(ptv_ring_peek(&r, CS - 188, &chunk, &coff), 188);
	ptv_ring_deinit(&r);
}

static void test_partial_packet(void **state)
{
	struct ptv_ring r;
	uint8_t *p, *pend;
	size_t len, pending;

	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	assert_int_equal(ptv_ring_reserve(&r, 0, &p, &len), 0);
	assert_int_equal(len, CS);
	memset(p, PTV_TS_SYNC, 300);
	ptv_ring_wrote(&r, 300);
	pend = ptv_ring_pending(&r, &pending);
	assert_ptr_equal(pend, p);
	assert_int_equal(pending, 300);
	ptv_ring_commit(&r, 188);
	assert_int_equal(r.head, 188);
	ptv_ring_pending(&r, &pending);
	assert_int_equal(pending, 112);
	/* The input ends: its incomplete packet is forgotten, the next one starts at head. */
	ptv_ring_discard_partial(&r);
	ptv_ring_pending(&r, &pending);
	assert_int_equal(pending, 0);
	assert_int_equal(ptv_ring_reserve(&r, 0, &p, &len), 0);
	assert_int_equal(len, CS - 188);
	/* Lost sync: drop bytes from the front of what is pending. */
	memset(p, 0, 5);
	memset(p + 5, PTV_TS_SYNC, 188);
	ptv_ring_wrote(&r, 193);
	ptv_ring_drop_pending(&r, 5);
	pend = ptv_ring_pending(&r, &pending);
	assert_int_equal(pending, 188);
	assert_int_equal(pend[0], PTV_TS_SYNC);
	ptv_ring_commit(&r, 188);
	assert_int_equal(r.head, 376);
	ptv_ring_deinit(&r);
}

static void test_evict_bytes(void **state)
{
	struct ptv_ring r;
	struct ptv_blob *chunk;
	size_t coff;

	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	assert_int_equal(r.nslots, 4);
	write_pkts(&r, 0, PTV_RING_CHUNK_PKTS * 10 + 5, 65536, 0);
	/* Four chunks at most: the newest (5 packets) and three full ones. */
	assert_int_equal(r.tail, 7 * (uint64_t)CS);
	assert_int_equal(ptv_ring_peek(&r, r.tail - 188, &chunk, &coff), 0);
	check_range(&r, r.tail, 7 * PTV_RING_CHUNK_PKTS);
	/* Unreferenced chunks are recycled: no allocation per chunk in the steady state. */
	assert_true(r.chunks_new <= r.nslots + PTV_ARRAY_SIZE(r.spare));
	ptv_ring_deinit(&r);
}

static void test_referenced_chunk_kept(void **state)
{
	struct ptv_ring r;
	struct ptv_blob *held, *chunk;
	uint8_t copy[CS];
	size_t coff;

	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	write_pkts(&r, 0, PTV_RING_CHUNK_PKTS, 65536, 0);
	assert_int_equal(ptv_ring_peek(&r, 0, &held, &coff), CS);
	/* An in-flight send holds chunk 0. */
	ptv_blob_ref(held);
	memcpy(copy, held->data, CS);
	write_pkts(&r, PTV_RING_CHUNK_PKTS, PTV_RING_CHUNK_PKTS * 20, 65536, 0);
	assert_true(r.tail > 0);
	/* Its slot was reused many times, never with its memory. */
	assert_memory_equal(held->data, copy, CS);
	for (uint64_t off = r.tail; off < r.head; off += CS) {
		assert_true(ptv_ring_peek(&r, off, &chunk, &coff) > 0);
		assert_ptr_not_equal(chunk, held);
	}
	assert_int_equal(atomic_load(&held->refs), 1);
	ptv_blob_unref(held);
	ptv_ring_deinit(&r);
}

static void test_evict_time(void **state)
{
	struct ptv_ring r;

	assert_int_equal(ptv_ring_init(&r, 100 * CS, 1000), 0);
	for (uint32_t i = 0; i < 10; i++)
		write_pkts(&r, i * PTV_RING_CHUNK_PKTS, PTV_RING_CHUNK_PKTS, 65536, 100 * i);
	/* Chunk i started at 100 * i ms. At 1350 ms chunks whose successor started before
	 * 350 ms (chunks 0..2) are entirely too old. */
	ptv_ring_trim(&r, 1350);
	assert_int_equal(r.tail, 3 * (uint64_t)CS);
	check_range(&r, r.tail, 3 * PTV_RING_CHUNK_PKTS);
	/* The newest chunk always stays. */
	ptv_ring_trim(&r, 1000000);
	assert_int_equal(r.tail, 9 * (uint64_t)CS);
	ptv_ring_deinit(&r);
}

static void test_rap_and_lag(void **state)
{
	struct ptv_ring r;
	uint8_t pat[PTV_TS_PKT], pmt[PTV_TS_PKT];
	const struct ptv_ring_rap *rap;

	memset(pat, 0xaa, sizeof(pat));
	memset(pmt, 0xbb, sizeof(pmt));
	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	assert_null(ptv_ring_rap(&r));
	write_pkts(&r, 0, 100, 65536, 0);
	ptv_ring_set_rap(&r, 50 * PTV_TS_PKT, pat, pmt, 7);
	rap = ptv_ring_rap(&r);
	assert_non_null(rap);
	assert_int_equal(rap->off, 50 * PTV_TS_PKT);
	assert_memory_equal(rap->psi, pat, PTV_TS_PKT);
	assert_memory_equal(rap->psi + PTV_TS_PKT, pmt, PTV_TS_PKT);

	/* Lag: 0 inside the newest chunk, else the age of the chunk after the reader's. */
	assert_int_equal(ptv_ring_lag_ms(&r, 0, 500), 0);
	write_pkts(&r, 100, PTV_RING_CHUNK_PKTS, 65536, 1000);
	assert_int_equal(ptv_ring_lag_ms(&r, 0, 1500), 500);
	assert_int_equal(ptv_ring_lag_ms(&r, r.head - 188, 1500), 0);

	/* The start point leaves with its chunk. */
	write_pkts(&r, 1000, PTV_RING_CHUNK_PKTS * 5, 65536, 2000);
	assert_true(r.tail > 50 * PTV_TS_PKT);
	assert_null(ptv_ring_rap(&r));
	ptv_ring_deinit(&r);
}

static void test_replica(void **state)
{
	struct ptv_ring m, rep;
	struct ptv_ring_update *u;
	uint8_t pat[PTV_TS_PKT] = {0}, pmt[PTV_TS_PKT] = {0};
	uint64_t sent = 0;
	struct ptv_blob *chunk;
	size_t coff;

	assert_int_equal(ptv_ring_init(&m, 6 * CS, 0), 0);
	assert_int_equal(ptv_ring_init(&rep, 6 * CS, 0), 0);
	/* Empty master: an update with bounds only. */
	u = ptv_ring_update_new(&m, sent);
	assert_int_equal(u->n, 0);
	ptv_ring_update_apply(&rep, u);
	assert_int_equal(rep.head, 0);

	for (uint32_t i = 0; i < 40; i++) {
		write_pkts(&m, i * 100, 100, 5000, i);
		if (i == 20)
			ptv_ring_set_rap(&m, m.head - 188, pat, pmt, i);
		if (i % 3)
			continue; /* the replica is updated every third write only */
		u = ptv_ring_update_new(&m, sent);
		assert_non_null(u);
		assert_true(u->n <= 2);
		sent = u->head;
		ptv_ring_update_apply(&rep, u);
		assert_int_equal(rep.head, m.head);
		assert_int_equal(rep.tail, m.tail);
		check_range(&rep, rep.tail, (uint32_t)(rep.tail / PTV_TS_PKT));
	}
	assert_non_null(ptv_ring_rap(&rep));

	/* A replica cleared when its reactor lost its viewers, then brought back from 0. */
	ptv_ring_clear(&rep);
	assert_int_equal(ptv_ring_peek(&rep, rep.tail, &chunk, &coff), 0);
	write_pkts(&m, 4000, PTV_RING_CHUNK_PKTS * 9, 65536, 100);
	u = ptv_ring_update_new(&m, 0);
	assert_int_equal(u->n, m.nslots);
	ptv_ring_update_apply(&rep, u);
	check_range(&rep, rep.tail, (uint32_t)(rep.tail / PTV_TS_PKT));

	/* An update that is never applied gives its references back. */
	ptv_ring_update_free(ptv_ring_update_new(&m, 0));
	ptv_ring_deinit(&m);
	/* The replica alone keeps its chunks alive. */
	check_range(&rep, rep.tail, (uint32_t)(rep.tail / PTV_TS_PKT));
	ptv_ring_deinit(&rep);
}

/*
 * Two threads, as in the relay: a home reactor writing the master ring and sending updates
 * through a mutex-protected queue (the inbox), and another reactor applying them to its
 * replica, reading every byte and holding a few chunks for a while like in-flight sends.
 * Under TSan this checks the chunk reference protocol; everywhere it checks no byte changes
 * under a reader.
 */
#define Q_MAX 8

struct xq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ptv_ring_update *q[Q_MAX];
	unsigned head, n;
	bool done;
};

static void xq_push(struct xq *x, struct ptv_ring_update *u)
{
	pthread_mutex_lock(&x->lock);
	while (x->n == Q_MAX)
		pthread_cond_wait(&x->cond, &x->lock);
	x->q[(x->head + x->n++) % Q_MAX] = u;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

static struct ptv_ring_update *xq_pop(struct xq *x)
{
	struct ptv_ring_update *u = NULL;

	pthread_mutex_lock(&x->lock);
	while (!x->n && !x->done)
		pthread_cond_wait(&x->cond, &x->lock);
	if (x->n) {
		u = x->q[x->head];
		x->head = (x->head + 1) % Q_MAX;
		x->n--;
		pthread_cond_broadcast(&x->cond);
	}
	pthread_mutex_unlock(&x->lock);
	return u;
}

static void *reader_main(void *arg)
{
	struct xq *x = arg;
	struct ptv_ring rep;
	struct ptv_blob *held[3] = {0};
	unsigned k = 0;
	struct ptv_ring_update *u;

	assert_int_equal(ptv_ring_init(&rep, 6 * CS, 0), 0);
	while ((u = xq_pop(x))) {
		struct ptv_blob *chunk;
		size_t coff;
		uint64_t from = PTV_MAX(rep.head, u->tail);

		ptv_ring_update_apply(&rep, u);
		/* What arrived, every time; all of it now and then (TSan makes reads slow). */
		if (++k % 32 == 0)
			from = rep.tail;
		check_range(&rep, from, (uint32_t)(from / PTV_TS_PKT));
		/* Keep the newest chunk a while, as a slow send would. */
		if (ptv_ring_peek(&rep, rep.head - 188, &chunk, &coff)) {
			ptv_blob_unref(held[k % 3]);
			held[k % 3] = ptv_blob_ref(chunk);
		}
	}
	for (unsigned i = 0; i < 3; i++)
		ptv_blob_unref(held[i]);
	ptv_ring_deinit(&rep);
	return NULL;
}

static void test_replica_threads(void **state)
{
	struct xq x = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct ptv_ring m;
	pthread_t t;
	uint64_t sent = 0;

	assert_int_equal(ptv_ring_init(&m, 6 * CS, 0), 0);
	assert_int_equal(pthread_create(&t, NULL, reader_main, &x), 0);
	for (uint32_t i = 0; i < 2000; i++) {
		struct ptv_ring_update *u;

		write_pkts(&m, i * 50, 50, 3001, i);
		u = ptv_ring_update_new(&m, sent);
		sent = u->head;
		xq_push(&x, u);
	}
	pthread_mutex_lock(&x.lock);
	x.done = true;
	pthread_cond_broadcast(&x.cond);
	pthread_mutex_unlock(&x.lock);
	pthread_join(t, NULL);
	/* Chunks held by the reader were replaced by fresh ones, never rewritten in place. */
	assert_true(m.chunks_new > m.nslots);
	ptv_ring_deinit(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read),  cmocka_unit_test(test_partial_packet),
		cmocka_unit_test(test_evict_bytes), cmocka_unit_test(test_referenced_chunk_kept),
		cmocka_unit_test(test_evict_time),  cmocka_unit_test(test_rap_and_lag),
		cmocka_unit_test(test_replica),	    cmocka_unit_test(test_replica_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
