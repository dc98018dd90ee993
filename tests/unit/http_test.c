/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The HTTP server in-process, with routes that only tests register: blob responses, chunked
 * and close-delimited streams, deferred answers (on time and too late), over real loopback
 * sockets.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "plextv/http.h"
#include "plextv/memring.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"
#include "plextv/workers.h"

#define BLOB_SIZE (1u << 20)

struct fixture {
	struct ptv_router *router;
	struct ptv_pool *pool;
	struct ptv_http_shared shared;
	struct ptv_http_limits limits;
	struct ptv_reactor *r;
	struct ptv_http_server *srv;
	struct ptv_blob *blob;
	struct ptv_memring *mring;
	struct ptv_blob *mblob; /* fx.blob's bytes in a memfd (sendfile) */
	int short_fd;
	int listen_fd;
	int port;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready;
};

static struct fixture fx;

static int blob_handler(struct ptv_http_req *req, void *ctx)
{
	return ptv_http_respond_blob(req, 200, "application/octet-stream", fx.blob);
}

struct stream_state {
	int step;
	int closed;
	bool splice;
};

static int chunked_drain(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = ctx;
	char line[32];

	if (st->step == 3)
		return ptv_http_stream_end(req) ? -1 : 1;
	snprintf(line, sizeof(line), "part%d;", st->step++);
	return ptv_http_stream_write(req, line, strlen(line));
}

static void stream_closed(void *ctx)
{
	struct stream_state *st = ctx;

	st->closed++;
	free(st);
}

static int chunked_handler(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = calloc(1, sizeof(*st));

	return ptv_http_stream_begin(req, 200, "text/plain", PTV_HTTP_STREAM_CHUNKED, chunked_drain,
				     stream_closed, st);
}

static int close_drain(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = ctx;

	/* 100 KiB from the blob by reference, in ten pieces. */
	if (st->step == 10)
		return ptv_http_stream_end(req) ? -1 : 1;
	st->step++;
	if (!st->splice)
		return ptv_http_stream_write_blob(req, fx.blob, (size_t)st->step * 10240, 10240);
	/* sendfile() pieces with a copied one in between: the order must hold across both. */
	if (st->step == 4)
		return ptv_http_stream_write(req, fx.blob->data + 4 * 10240, 10240);
	return ptv_http_stream_write_blob(req, fx.mblob, (size_t)st->step * 10240, 10240);
}

static int close_handler(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = calloc(1, sizeof(*st));
	int ret = ptv_http_stream_begin(req, 200, "video/mp2t", PTV_HTTP_STREAM_CLOSE, close_drain,
					stream_closed, st);

	/* ctx 1: the same stream through zero-copy sends; 2: through sendfile(). */
	if (!ret && ctx == (void *)1)
		ret = ptv_http_stream_set_zerocopy(req, true);
	if (!ret && ctx == (void *)2) {
		st->splice = true;
		ret = ptv_http_stream_set_splice(req, true);
	}
	return ret;
}

static int drain_idle(struct ptv_http_req *req, void *ctx)
{
	return 0;
}

/* A blob that says its bytes are in a file that is empty: sendfile() returns 0. */
static int splice_short_handler(struct ptv_http_req *req, void *ctx)
{
	struct ptv_blob *b = ptv_blob_new(NULL, 4096);
	int ret = ptv_http_stream_begin(req, 200, "video/mp2t", PTV_HTTP_STREAM_CLOSE, drain_idle,
					NULL, NULL);

	b->fd = memfd_create("short", MFD_CLOEXEC);
	if (!ret)
		ret = ptv_http_stream_set_splice(req, true);
	if (!ret)
		ret = ptv_http_stream_write_blob(req, b, 0, 4096);
	/* The queued segment holds its own reference (and the fd number stays valid: the test
	 * ends the connection before it closes it). */
	fx.short_fd = b->fd;
	ptv_blob_unref(b);
	return ret;
}

#define BIG_REPEAT 8

static int big_drain(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = ctx;

	if (st->step == BIG_REPEAT)
		return ptv_http_stream_end(req) ? -1 : 1;
	st->step++;
	return ptv_http_stream_write_blob(req, fx.mblob, 0, BLOB_SIZE);
}

/* 8 MiB by sendfile() through a 64 KiB socket buffer: most calls find the socket full. */
static int splice_big_handler(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = calloc(1, sizeof(*st));
	int sndbuf = 65536;
	int ret;

	setsockopt(ptv_http_req_fd(req), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	ret = ptv_http_stream_begin(req, 200, "video/mp2t", PTV_HTTP_STREAM_CLOSE, big_drain,
				    stream_closed, st);
	return ret ? ret : ptv_http_stream_set_splice(req, true);
}

struct defer_job {
	struct ptv_http_req *req;
	unsigned sleep_ms;
};

static void defer_work(void *arg)
{
	struct defer_job *j = arg;

	usleep(j->sleep_ms * 1000);
}

static void defer_done(void *arg)
{
	struct defer_job *j = arg;

	ptv_http_respond(j->req, 200, "text/plain", "later\n", 6);
	free(j);
}

static int defer_handler(struct ptv_http_req *req, void *ctx)
{
	struct defer_job *j = calloc(1, sizeof(*j));

	j->req = req;
	j->sleep_ms = (unsigned)(uintptr_t)ctx;
	ptv_http_defer(req);
	return ptv_pool_submit(fx.pool, ptv_http_req_reactor(req), defer_work, defer_done, j);
}

static int echo_handler(struct ptv_http_req *req, void *ctx)
{
	char v[64] = "";
	char out[256];
	const char *ua = ptv_http_req_header(req, "x-test");
	int n;

	ptv_http_req_query_param(req, "a", v, sizeof(v));
	n = snprintf(out, sizeof(out), "path=%s a=%s x-test=%s body=%zu", ptv_http_req_path(req), v,
		     ua ? ua : "-", ptv_http_req_body(req)->len);
	return ptv_http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void *reactor_thread(void *arg)
{
	struct ptv_reactor_opts opts = {0};
	int ret;

	ptv_metrics_thread_init();
	ret = ptv_reactor_new(&opts, &fx.r);
	if (!ret)
		ret = ptv_http_server_new(fx.r, fx.router, &fx.shared, &fx.limits, fx.listen_fd,
					  &fx.srv);
	if (!ret) {
		ptv_reactor_set_busy(fx.r, ptv_http_server_busy, fx.srv);
		ptv_http_server_start(fx.srv);
	}
	pthread_mutex_lock(&fx.lock);
	fx.ready = ret ? ret : 1;
	pthread_cond_broadcast(&fx.cond);
	pthread_mutex_unlock(&fx.lock);
	if (!ret)
		ptv_reactor_run(fx.r);
	ptv_metrics_thread_exit();
	return NULL;
}

static int setup(void **state)
{
	const struct ptv_route routes[] = {
		{"blob", PTV_HTTP_GET, "/blob", false, blob_handler, NULL},
		{"chunked", PTV_HTTP_GET, "/chunked", false, chunked_handler, NULL},
		{"close", PTV_HTTP_GET, "/close", false, close_handler, NULL},
		{"close_zc", PTV_HTTP_GET, "/close-zc", false, close_handler, (void *)1},
		{"close_splice", PTV_HTTP_GET, "/close-splice", false, close_handler, (void *)2},
		{"splice_big", PTV_HTTP_GET, "/splice-big", false, splice_big_handler, NULL},
		{"splice_short", PTV_HTTP_GET, "/splice-short", false, splice_short_handler, NULL},
		{"defer", PTV_HTTP_GET, "/defer", false, defer_handler, (void *)(uintptr_t)50},
		{"late", PTV_HTTP_GET, "/late", false, defer_handler, (void *)(uintptr_t)700},
		{"echo", PTV_HTTP_GET | PTV_HTTP_POST, "/echo/", true, echo_handler, NULL},
	};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);

	memset(&fx, 0, sizeof(fx));
	pthread_mutex_init(&fx.lock, NULL);
	pthread_cond_init(&fx.cond, NULL);
	fx.blob = ptv_blob_new(NULL, BLOB_SIZE);
	for (unsigned i = 0; i < BLOB_SIZE; i++)
		fx.blob->data[i] = (char)('a' + i % 26);
	assert_int_equal(ptv_memring_new(BLOB_SIZE, 1, &fx.mring), 0);
	fx.mblob = ptv_memring_chunk_new(fx.mring);
	memcpy(fx.mblob->data, fx.blob->data, BLOB_SIZE);
	assert_int_equal(ptv_router_new(&fx.router), 0);
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		assert_int_equal(ptv_router_add(fx.router, &routes[i]), 0);
	assert_int_equal(ptv_pool_new(2, &fx.pool), 0);
	atomic_init(&fx.shared.open, 0);
	atomic_init(&fx.shared.max_open, 100);
	fx.shared.server_header = "PlexTV/test";
	fx.limits = (struct ptv_http_limits){16384, 100, 8192, 1 << 20, 5000, 5000, 300};
	fx.listen_fd = ptv_http_listen((struct sockaddr *)&sin, sizeof(sin));
	assert_true(fx.listen_fd >= 0);
	getsockname(fx.listen_fd, (struct sockaddr *)&sin, &len);
	fx.port = ntohs(sin.sin_port);
	pthread_create(&fx.tid, NULL, reactor_thread, NULL);
	pthread_mutex_lock(&fx.lock);
	while (!fx.ready)
		pthread_cond_wait(&fx.cond, &fx.lock);
	pthread_mutex_unlock(&fx.lock);
	assert_int_equal(fx.ready, 1);
	*state = &fx;
	return 0;
}

static void drain_task(void *arg)
{
	ptv_http_server_drain(arg);
}

static int teardown(void **state)
{
	ptv_reactor_post(fx.r, drain_task, fx.srv);
	ptv_reactor_stop(fx.r);
	pthread_join(fx.tid, NULL);
	ptv_pool_free(fx.pool);
	ptv_reactor_free(fx.r);
	ptv_http_server_free(fx.srv);
	ptv_router_free(fx.router);
	ptv_blob_unref(fx.blob);
	ptv_blob_unref(fx.mblob);
	ptv_memring_unref(fx.mring);
	return 0;
}

static int client(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)fx.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void send_all(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads until @needle appears or the peer closes; returns the bytes read (NUL-terminated). */
static char *read_until(int fd, const char *needle, size_t *len, bool *closed)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);

	*closed = false;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r <= 0) {
			*closed = r == 0;
			break;
		}
		n += (size_t)r;
		buf[n] = '\0';
		if (needle && memmem(buf, n, needle, strlen(needle)))
			break;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void test_blob_sent_whole(void **state)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp;
	const char *body;

	send_all(fd, "GET /blob HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	resp = read_until(fd, NULL, &len, &closed);
	assert_true(closed);
	assert_non_null(strstr(resp, "Content-Length: 1048576\r\n"));
	body = strstr(resp, "\r\n\r\n") + 4;
	assert_int_equal(len - (size_t)(body - resp), BLOB_SIZE);
	assert_memory_equal(body, fx.blob->data, BLOB_SIZE);
	free(resp);
	close(fd);
}

static void test_chunked_stream_then_keepalive(void **state)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp;

	send_all(fd, "GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n");
	resp = read_until(fd, "0\r\n\r\n", &len, &closed);
	assert_false(closed);
	assert_non_null(strstr(resp, "Transfer-Encoding: chunked\r\n"));
	assert_null(strstr(resp, "Content-Length"));
	assert_non_null(
		strstr(resp, "\r\n\r\n6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n"));
	free(resp);
	/* The connection survives the stream: a second request on it works. */
	send_all(fd, "GET /echo/x HTTP/1.1\r\nHost: t\r\n\r\n");
	resp = read_until(fd, "body=0", &len, &closed);
	assert_non_null(strstr(resp, "path=/echo/x"));
	free(resp);
	close(fd);
}

static void check_close_stream(const char *request)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp;
	const char *body;

	send_all(fd, request);
	resp = read_until(fd, NULL, &len, &closed);
	assert_true(closed);
	assert_non_null(strstr(resp, "Connection: close\r\n"));
	body = strstr(resp, "\r\n\r\n") + 4;
	assert_int_equal(len - (size_t)(body - resp), 10 * 10240);
	assert_memory_equal(body, fx.blob->data + 10240, 10 * 10240);
	free(resp);
	close(fd);
}

static void test_close_delimited_stream(void **state)
{
	check_close_stream("GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
}

static void test_zero_copy_stream(void **state)
{
	/* Same bytes through SENDMSG_ZC; the blob stays referenced until the notifications. */
	check_close_stream("GET /close-zc HTTP/1.1\r\nHost: t\r\n\r\n");
}

static void test_sendfile_stream(void **state)
{
	/* Same bytes, from memfd pages with sendfile() (send_mode splice). */
	check_close_stream("GET /close-splice HTTP/1.1\r\nHost: t\r\n\r\n");
}

static void test_sendfile_slow_reader(void **state)
{
	int fd, rcvbuf = 16384;
	size_t len, off = 0;
	char *body = malloc((size_t)BIG_REPEAT * BLOB_SIZE + 4096);
	char *hdr_end;
	bool closed = false;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)fx.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	send_all(fd, "GET /splice-big HTTP/1.1\r\nHost: t\r\n\r\n");
	/* Slow at first (the server finds the socket full again and again), then at full speed;
	 * bounded: 20 s at most. */
	for (unsigned i = 0; !closed && i < 200000; i++) {
		ssize_t n = read(fd, body + off, i < 200 ? 4096 : 1 << 16);

		if (n <= 0)
			closed = true;
		else
			off += (size_t)n;
		if (i < 200)
			usleep(2000);
	}
	assert_true(closed);
	body[off] = '\0';
	hdr_end = strstr(body, "\r\n\r\n");
	assert_non_null(hdr_end);
	len = off - (size_t)(hdr_end + 4 - body);
	assert_int_equal(len, (size_t)BIG_REPEAT * BLOB_SIZE);
	for (unsigned k = 0; k < BIG_REPEAT; k++)
		assert_memory_equal(hdr_end + 4 + (size_t)k * BLOB_SIZE, fx.blob->data, BLOB_SIZE);
	free(body);
	close(fd);
}

static void test_sendfile_peer_reset(void **state)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	char buf[65536];
	size_t got = 0;
	int fd = client();

	/* The viewer resets mid-stream: the server's next sendfile() (or receive) fails; the
	 * connection ends from a completion and the server goes on serving. */
	send_all(fd, "GET /splice-big HTTP/1.1\r\nHost: t\r\n\r\n");
	for (unsigned i = 0; got < sizeof(buf) && i < 1000; i++) {
		ssize_t n = read(fd, buf, sizeof(buf) - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	assert_true(got > 0);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	check_close_stream("GET /close-splice HTTP/1.1\r\nHost: t\r\n\r\n");
}

/* Sends @request on a new connection; returns everything read until the server closed it. */
static char *get_until_closed(const char *request, size_t *len)
{
	int fd = client();
	bool closed;
	char *resp;

	send_all(fd, request);
	resp = read_until(fd, NULL, len, &closed);
	assert_true(closed);
	close(fd);
	return resp;
}

/* The value of one sample line ("name{labels}") in /metrics, 0 when absent. */
static double metric_sample(const char *sample)
{
	struct ptv_buf b = {0};
	const char *p;
	double v = 0;

	assert_int_equal(ptv_metrics_render(&b), 0);
	p = b.data ? strstr(b.data, sample) : NULL;
	if (p)
		v = strtod(p + strlen(sample), NULL);
	ptv_buf_free(&b);
	return v;
}

static void test_sendfile_file_too_short(void **state)
{
	const char *send_err = "plextv_http_errors_total{reason=\"send\"} ";
	const char *timeout_err = "plextv_http_errors_total{reason=\"write_timeout\"} ";
	double sends = metric_sample(send_err), timeouts = metric_sample(timeout_err);
	/* Bad input to sendfile (the file ends before the segment): the connection is closed
	 * with an error instead of retrying forever, and the server goes on. */
	size_t len;
	char *resp = get_until_closed("GET /splice-short HTTP/1.1\r\nHost: t\r\n\r\n", &len);

	assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
	assert_int_equal(len - (size_t)(strstr(resp, "\r\n\r\n") + 4 - resp), 0);
	free(resp);
	close(fx.short_fd);
	/* Ended as a send error, not by the write timeout after spinning on POLLOUT. */
	assert_true(metric_sample(send_err) == sends + 1);
	assert_true(metric_sample(timeout_err) == timeouts);
	check_close_stream("GET /close-splice HTTP/1.1\r\nHost: t\r\n\r\n");
}

static void test_head_on_stream_sends_no_body(void **state)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp;

	send_all(
		fd,
		"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/h HTTP/1.1\r\nHost: t\r\n\r\n");
	resp = read_until(fd, "body=0", &len, &closed);
	assert_null(strstr(resp, "part0"));
	assert_non_null(strstr(resp, "path=/echo/h"));
	free(resp);
	close(fd);
}

static void test_deferred_answers_in_order(void **state)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp, *a, *b;

	/* The deferred answer must come before the pipelined request behind it. */
	send_all(fd, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/after HTTP/1.1\r\nHost: "
		     "t\r\n\r\n");
	resp = read_until(fd, "body=0", &len, &closed);
	a = strstr(resp, "later\n");
	b = strstr(resp, "path=/echo/after");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	free(resp);
	close(fd);
}

static void test_deferred_too_late_gets_503(void **state)
{
	size_t len;
	char *resp = get_until_closed("GET /late HTTP/1.1\r\nHost: t\r\n\r\n", &len);

	if (strncmp(resp, "HTTP/1.1 503 ", 13))
		fprintf(stderr, "got: %s\n", resp);
	assert_true(!strncmp(resp, "HTTP/1.1 503 ", 13));
	assert_null(strstr(resp, "later"));
	free(resp);
	/* Let the late answer arrive and be dropped before the next test. */
	usleep(900 * 1000);
}

static void test_query_headers_body(void **state)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp;

	send_all(fd, "POST /echo/p%20q?a=x%2By+z HTTP/1.1\r\nHost: t\r\nX-Test: v1  \r\n"
		     "Content-Length: 4\r\n\r\nabcd");
	resp = read_until(fd, "body=4", &len, &closed);
	assert_non_null(strstr(resp, "path=/echo/p q a=x+y z x-test=v1 body=4"));
	free(resp);
	close(fd);
}

static void test_chunked_request_body(void **state)
{
	int fd = client();
	size_t len;
	bool closed;
	char *resp;

	send_all(fd, "POST /echo/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /echo/next HTTP/1.1\r\nHost: t\r\n\r\n");
	resp = read_until(fd, "path=/echo/next", &len, &closed);
	assert_non_null(strstr(resp, "path=/echo/c a= x-test=- body=5"));
	free(resp);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_sent_whole),
		cmocka_unit_test(test_chunked_stream_then_keepalive),
		cmocka_unit_test(test_close_delimited_stream),
		cmocka_unit_test(test_zero_copy_stream),
		cmocka_unit_test(test_sendfile_stream),
		cmocka_unit_test(test_sendfile_slow_reader),
		cmocka_unit_test(test_sendfile_peer_reset),
		cmocka_unit_test(test_sendfile_file_too_short),
		cmocka_unit_test(test_head_on_stream_sends_no_body),
		cmocka_unit_test(test_deferred_answers_in_order),
		cmocka_unit_test(test_deferred_too_late_gets_503),
		cmocka_unit_test(test_query_headers_body),
		cmocka_unit_test(test_chunked_request_body),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
