/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Memring tests: chunks are blobs in a memfd, extents are reused only after their pages were
 * punched out, and bytes handed to a pipe (splice) or a TCP socket (sendfile) before a chunk
 * was released stay what they were although the next chunk in the same extent is written at
 * once. A control test shows the hazard is real: rewriting the pages in place (what the ring
 * does with heap chunks) changes bytes the kernel was already given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plextv/memring.h"
#include "plextv/ring.h"

#define CS PTV_RING_CHUNK

static unsigned mr_live(struct ptv_memring *m)
{
	unsigned live, retired;

	ptv_memring_stats(m, &live, &retired);
	assert_int_equal(retired, 0);
	return live;
}

static struct ptv_memring *mr_new(unsigned max)
{
	struct ptv_memring *m = NULL;

	assert_int_equal(ptv_memring_new(CS, max, &m), 0);
	return m;
}

/* Splices @n bytes of @b's file into a new pipe; returns the read end. */
static int splice_to_pipe(const struct ptv_blob *b, size_t n)
{
	int p[2];
	loff_t off = (loff_t)b->file_off;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[1], F_SETPIPE_SZ, 1 << 20) >= (int)n, 1);
	assert_int_equal(splice(b->fd, &off, p[1], NULL, n, 0), (ssize_t)n);
	close(p[1]);
	return p[0];
}

static void read_all(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		assert_true(r > 0);
		got += (size_t)r;
	}
}

static void test_chunks_are_file_backed(void **state)
{
	struct ptv_memring *m = mr_new(3);
	struct ptv_blob *a = ptv_memring_chunk_new(m), *b = ptv_memring_chunk_new(m), *c;
	char buf[64];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->len, CS);
	assert_true(a->fd >= 0);
	assert_int_not_equal(a->file_off, b->file_off);
	memset(a->data, 'x', CS);
	/* The file and the mapping are the same bytes. */
	assert_int_equal(pread(a->fd, buf, sizeof(buf), (off_t)a->file_off + 100), sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 'x');
	assert_int_equal(mr_live(m), 2);
	c = ptv_memring_chunk_new(m);
	assert_non_null(c);
	assert_null(ptv_memring_chunk_new(m)); /* full */
	ptv_blob_unref(a);
	assert_int_equal(mr_live(m), 2);
	a = ptv_memring_chunk_new(m); /* the freed extent again */
	assert_non_null(a);
	ptv_blob_unref(a);
	ptv_blob_unref(b);
	ptv_blob_unref(c);
	assert_int_equal(mr_live(m), 0);
	ptv_memring_unref(m);
}

static void test_pipe_keeps_old_bytes(void **state)
{
	struct ptv_memring *m = mr_new(1);
	struct ptv_blob *a = ptv_memring_chunk_new(m), *b;
	uint64_t off_a = a->file_off;
	char *got = malloc(CS);
	int rd;

	memset(a->data, 'A', CS);
	rd = splice_to_pipe(a, CS);
	/* The pipe holds the pages now; the chunk goes and its only extent is reused. */
	ptv_blob_unref(a);
	b = ptv_memring_chunk_new(m);
	assert_non_null(b);
	assert_int_equal(b->file_off, off_a);
	memset(b->data, 'B', CS);
	read_all(rd, got, CS);
	for (size_t i = 0; i < CS; i++)
		if (got[i] != 'A')
			fail_msg("byte %zu changed under the pipe: %c", i, got[i]);
	close(rd);
	ptv_blob_unref(b);
	ptv_memring_unref(m);
	free(got);
}

static void test_rewrite_in_place_is_unsafe(void **state)
{
	/* Control: the hazard the memring exists for. Same splice, but the pages are written
	 * again without punching them out first (heap-chunk style reuse). */
	struct ptv_memring *m = mr_new(1);
	struct ptv_blob *a = ptv_memring_chunk_new(m);
	char *got = malloc(CS);
	size_t changed = 0;
	int rd;

	memset(a->data, 'A', CS);
	rd = splice_to_pipe(a, CS);
	memset(a->data, 'B', CS);
	read_all(rd, got, CS);
	for (size_t i = 0; i < CS; i++)
		changed += got[i] == 'B';
	assert_true(changed > 0);
	close(rd);
	ptv_blob_unref(a);
	ptv_memring_unref(m);
	free(got);
}

static void tcp_pair(int *tx, int *rx)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM, 0), small = 16384;

	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	*rx = socket(AF_INET, SOCK_STREAM, 0);
	/* A small window so most bytes wait in the sender's queue, holding page references. */
	setsockopt(*rx, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	assert_int_equal(connect(*rx, (struct sockaddr *)&sin, sizeof(sin)), 0);
	*tx = accept(l, NULL, NULL);
	assert_true(*tx >= 0);
	close(l);
}

static void test_socket_keeps_old_bytes(void **state)
{
	struct ptv_memring *m = mr_new(2);
	unsigned rounds = 8;
	size_t total = (size_t)rounds * CS, got = 0;
	char *buf = malloc(total);
	int tx, rx, big = 4 << 20;

	tcp_pair(&tx, &rx);
	setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	/* Each chunk is sent with sendfile and released at once; the next one reuses an extent
	 * whose pages are still queued in the socket (the reader has not read yet). */
	for (unsigned r = 0; r < rounds; r++) {
		struct ptv_blob *b = ptv_memring_chunk_new(m);
		off_t off;

		assert_non_null(b);
		memset(b->data, 'a' + (int)r, CS);
		off = (off_t)b->file_off;
		assert_int_equal(sendfile(tx, b->fd, &off, CS), (ssize_t)CS);
		ptv_blob_unref(b);
	}
	close(tx);
	while (got < total) {
		ssize_t n = read(rx, buf + got, total - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	for (size_t i = 0; i < total; i++)
		if (buf[i] != 'a' + (int)(i / CS))
			fail_msg("byte %zu is %c, expected %c", i, buf[i], 'a' + (int)(i / CS));
	close(rx);
	assert_int_equal(mr_live(m), 0);
	ptv_memring_unref(m);
	free(buf);
}

static void *release_many(void *arg)
{
	struct ptv_blob **v = arg;

	for (unsigned i = 0; i < 64; i++)
		ptv_blob_unref(v[i]);
	return NULL;
}

static void test_release_on_other_threads_and_owner_first(void **state)
{
	struct ptv_memring *m = mr_new(128);
	struct ptv_blob *v[2][64];
	pthread_t t[2];

	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < 64; i++) {
			v[k][i] = ptv_memring_chunk_new(m);
			assert_non_null(v[k][i]);
			v[k][i]->data[0] = 1;
		}
	/* The owner lets go first: the file stays until the last chunk goes (ASan checks). */
	ptv_memring_unref(m);
	for (unsigned k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, release_many, v[k]), 0);
	for (unsigned k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
}

static void test_ring_uses_memfd(void **state)
{
	struct ptv_blob *held = NULL;
	struct ptv_ring r;
	uint8_t *p;
	size_t len, coff;

	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	assert_int_equal(ptv_ring_use_memfd(&r), 0);
	for (unsigned c = 0; c < 12; c++) {
		assert_int_equal(ptv_ring_reserve(&r, c, &p, &len), 0);
		assert_int_equal(len, CS);
		memset(p, 'a' + (int)c, len);
		ptv_ring_wrote(&r, len);
		ptv_ring_commit(&r, len);
		if (c == 1) {
			/* A reader (an in-flight send) keeps a chunk past its eviction. */
			assert_int_equal(ptv_ring_peek(&r, r.head - 1, &held, &coff), 1);
			ptv_blob_ref(held);
		}
	}
	assert_int_equal(r.mem_misses, 0);
	assert_int_equal(r.nspare, 0); /* memfd chunks never become spares */
	assert_true(held->fd >= 0);
	/* Evicted long ago, its bytes are still the ones written. */
	for (size_t i = 0; i < CS; i++)
		assert_int_equal(held->data[i], 'b');
	ptv_ring_deinit(&r);
	ptv_blob_unref(held);
}

static void test_bad_sizes_refused(void **state)
{
	struct ptv_memring *m = NULL;

	assert_int_equal(ptv_memring_new(0, 4, &m), -EINVAL);
	assert_int_equal(ptv_memring_new(CS, 0, &m), -EINVAL);
	assert_null(m);
	ptv_memring_unref(NULL);
}

static void test_ring_falls_back_to_heap_when_full(void **state)
{
	/* 4 slots -> room for 4 * 4 + 16 = 32 memfd chunks. Readers that keep every chunk use
	 * them all up: further chunks come from the heap, counted, and still hold the bytes. */
	struct ptv_blob *held[48];
	struct ptv_ring r;
	unsigned heap = 0;
	uint8_t *p;
	size_t len, coff;

	assert_int_equal(ptv_ring_init(&r, 4 * CS, 0), 0);
	assert_int_equal(ptv_ring_use_memfd(&r), 0);
	assert_int_equal(ptv_ring_use_memfd(&r), 0); /* already on */
	for (unsigned c = 0; c < 48; c++) {
		assert_int_equal(ptv_ring_reserve(&r, c, &p, &len), 0);
		memset(p, 'A' + (int)(c % 26), len);
		ptv_ring_wrote(&r, len);
		ptv_ring_commit(&r, len);
		assert_int_equal(ptv_ring_peek(&r, r.head - 1, &held[c], &coff), 1);
		ptv_blob_ref(held[c]);
		heap += held[c]->fd < 0;
	}
	assert_int_equal(heap, 48 - 32);
	assert_int_equal(r.mem_misses, 48 - 32);
	for (unsigned c = 0; c < 48; c++) {
		assert_int_equal(held[c]->data[CS - 1], 'A' + (int)(c % 26));
		ptv_blob_unref(held[c]);
	}
	ptv_ring_deinit(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_are_file_backed),
		cmocka_unit_test(test_pipe_keeps_old_bytes),
		cmocka_unit_test(test_rewrite_in_place_is_unsafe),
		cmocka_unit_test(test_socket_keeps_old_bytes),
		cmocka_unit_test(test_release_on_other_threads_and_owner_first),
		cmocka_unit_test(test_ring_uses_memfd),
		cmocka_unit_test(test_bad_sizes_refused),
		cmocka_unit_test(test_ring_falls_back_to_heap_when_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
