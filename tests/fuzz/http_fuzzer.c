/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for HTTP request handling: the real server (http_conn.c, http.c, router.c,
 * llhttp in strict mode) runs in-process on its own reactor thread, as tests/unit/http_test.c
 * starts it, with small limits so 413/414/431 are reachable and a few routes that answer at
 * once, from a blob, deferred, streamed (chunked and close-delimited) or by failing.
 *
 * Input: one control byte, then the bytes a client sends. Per input the driver connects over
 * loopback TCP, sends the bytes (control bit 7: in two writes, split at (bits 0-6)/128 of the
 * length, with a short pause between so the server sees two reads), shuts its write side
 * down and reads until the server closes. Checked besides crashes and sanitizer reports:
 *  - the server closes within CLOSE_WAIT_MS of the client's FIN (no hang, no leaked
 *    connection);
 *  - the output is a sequence of whole responses, each starting "HTTP/1.1 " + three digits +
 *    " ", framed by Content-Length, chunked encoding, or the end of the connection (HEAD
 *    answers have no body);
 *  - a framing error (400, 408, 413, 414, 431) says "Connection: close" and is the last
 *    response: nothing after a request the server could not frame is ever answered
 *    (request smuggling).
 * Use with -dict=tests/fuzz/http.dict and -max_len=16384.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "plextv/common.h"
#include "plextv/http.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"
#include "plextv/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BLOB_SIZE     20000
#define CLOSE_WAIT_MS 5000
#define MAX_OUTPUT    (16u << 20)

static struct {
	struct ptv_router *router;
	struct ptv_http_shared shared;
	struct ptv_http_limits limits;
	struct ptv_reactor *r;
	struct ptv_http_server *srv;
	struct ptv_blob *blob;
	int listen_fd;
	uint16_t port;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready;
} fx = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---- routes ---- */

static int echo_handler(struct ptv_http_req *req, void *ctx)
{
	const char *xt = ptv_http_req_header(req, "x-test");
	char v[64] = "", out[512];
	int n;

	ptv_http_req_query_param(req, "a", v, sizeof(v));
	n = snprintf(out, sizeof(out), "path=%s q=%s a=%s x-test=%s body=%zu",
		     ptv_http_req_path(req), ptv_http_req_query(req), v, xt ? xt : "-",
		     ptv_http_req_body(req)->len);
	if (n < 0 || (size_t)n >= sizeof(out))
		n = (int)strlen(out);
	ptv_http_add_header(req, "X-Echo", "1");
	return ptv_http_respond(req, 200, "text/plain", out, (size_t)n);
}

static int blob_handler(struct ptv_http_req *req, void *ctx)
{
	return ptv_http_respond_blob(req, 200, "application/octet-stream", fx.blob);
}

static int fail_handler(struct ptv_http_req *req, void *ctx)
{
	return -EIO; /* no answer: the server owes a 500 */
}

static void defer_answer(void *arg)
{
	ptv_http_respond(arg, 200, "text/plain", "later\n", 6);
}

static int defer_handler(struct ptv_http_req *req, void *ctx)
{
	ptv_http_defer(req);
	ptv_reactor_post(ptv_http_req_reactor(req), defer_answer, req);
	return 0;
}

struct stream_state {
	int step;
};

static int stream_drain(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = ctx;
	char line[32];
	int n;

	if (st->step == 3)
		return ptv_http_stream_end(req) ? -1 : 1;
	n = snprintf(line, sizeof(line), "part%d;", st->step++);
	return ptv_http_stream_write(req, line, (size_t)n);
}

static void stream_closed(void *ctx)
{
	free(ctx);
}

static int stream_handler(struct ptv_http_req *req, void *ctx)
{
	struct stream_state *st = calloc(1, sizeof(*st));
	int ret;

	if (!st)
		return -ENOMEM;
	ret = ptv_http_stream_begin(req, 200, "text/plain",
				    (enum ptv_http_stream_mode)(intptr_t)ctx, stream_drain,
				    stream_closed, st);
	if (ret)
		free(st);
	return ret;
}

/* ---- the server, once per process ---- */

static void quiet(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_FUZZ_VERBOSE"))
		fwrite(line, 1, len, stderr);
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
		ret = ptv_http_server_start(fx.srv);
	}
	pthread_mutex_lock(&fx.lock);
	fx.ready = ret ? ret : 1;
	pthread_cond_broadcast(&fx.cond);
	pthread_mutex_unlock(&fx.lock);
	if (!ret)
		ptv_reactor_run(fx.r);
	return NULL;
}

static void setup(void)
{
	static const struct ptv_route routes[] = {
		{"echo", PTV_HTTP_GET | PTV_HTTP_POST | PTV_HTTP_PUT, "/echo/", true, echo_handler,
		 NULL},
		{"blob", PTV_HTTP_GET, "/blob", false, blob_handler, NULL},
		{"fail", PTV_HTTP_GET | PTV_HTTP_DELETE, "/fail", false, fail_handler, NULL},
		{"defer", PTV_HTTP_GET | PTV_HTTP_POST, "/defer", false, defer_handler, NULL},
		{"chunked", PTV_HTTP_GET, "/chunked", false, stream_handler,
		 (void *)(intptr_t)PTV_HTTP_STREAM_CHUNKED},
		{"close", PTV_HTTP_GET, "/close", false, stream_handler,
		 (void *)(intptr_t)PTV_HTTP_STREAM_CLOSE},
	};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);

	ptv_log_set_sink(quiet, NULL);
	fx.blob = ptv_blob_new(NULL, BLOB_SIZE);
	if (!fx.blob || ptv_router_new(&fx.router))
		abort();
	for (unsigned i = 0; i < BLOB_SIZE; i++)
		fx.blob->data[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (ptv_router_add(fx.router, &routes[i]))
			abort();
	}
	atomic_init(&fx.shared.open, 0);
	atomic_init(&fx.shared.max_open, 1000);
	fx.shared.server_header = "PlexTV/fuzz";
	fx.limits = (struct ptv_http_limits){.header_max_bytes = 4096,
					     .header_max_count = 24,
					     .url_max_bytes = 1024,
					     .body_max_bytes = 8192,
					     .header_timeout_ms = 2000,
					     .idle_timeout_ms = 2000,
					     .write_timeout_ms = 2000};
	fx.listen_fd = ptv_http_listen((struct sockaddr *)&sin, sizeof(sin));
	if (fx.listen_fd < 0 || getsockname(fx.listen_fd, (struct sockaddr *)&sin, &len))
		abort();
	fx.port = ntohs(sin.sin_port);
	if (pthread_create(&fx.tid, NULL, reactor_thread, NULL))
		abort();
	pthread_mutex_lock(&fx.lock);
	while (!fx.ready)
		pthread_cond_wait(&fx.cond, &fx.lock);
	pthread_mutex_unlock(&fx.lock);
	if (fx.ready == -PTV_ERR_UNSUPPORTED || fx.ready == -EPERM || fx.ready == -ENOSYS) {
		/* No io_uring here (seccomp, old kernel): nothing to test; ctest counts 77 as a
		 * skip. */
		fprintf(stderr, "http_fuzzer: io_uring unavailable (%d): skipped\n", fx.ready);
		exit(77);
	}
	if (fx.ready != 1) {
		fprintf(stderr, "http_fuzzer: server start failed: %d\n", fx.ready);
		abort();
	}
	/* The reactor thread runs until the process exits; libFuzzer never returns. */
}

/* ---- client side ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fail(const char *why, const char *out, size_t n)
{
	fprintf(stderr, "http_fuzzer: %s\n--- server output (%zu bytes) ---\n%.*s\n---\n", why, n,
		(int)(n < 4096 ? n : 4096), out);
	abort();
}

static bool send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false; /* the server closed early (framing error): fine */
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads until EOF; returns false on a timeout. A reset is an end like any other. */
static bool read_all(int fd, char **out, size_t *len)
{
	uint64_t deadline = now_ms() + CLOSE_WAIT_MS;
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		abort();
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t t = now_ms();
		ssize_t r;

		if (t >= deadline || poll(&pfd, 1, (int)(deadline - t)) == 0) {
			*out = buf;
			*len = n;
			buf[n] = '\0';
			return false;
		}
		if (n == cap) {
			if (cap >= MAX_OUTPUT)
				fail("more output than any route can produce", buf, n);
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				abort();
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return true;
}

static bool starts_response(const char *p, size_t left)
{
	return left >= 13 && !memcmp(p, "HTTP/1.1 ", 9) && p[9] >= '1' && p[9] <= '5' &&
	       p[10] >= '0' && p[10] <= '9' && p[11] >= '0' && p[11] <= '9' && p[12] == ' ';
}

/* A response may start at @off: it is the end of the output or the start of a response. */
static bool boundary(const char *out, size_t n, size_t off)
{
	return off == n || (off < n && starts_response(out + off, n - off));
}

/* Value of header @name in the head [p, end) (after "name:" and blanks), or NULL. */
static const char *head_value(const char *p, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);

	for (const char *line = memmem(p, (size_t)(end - p), "\r\n", 2); line && line < end;) {
		const char *next;

		line += 2;
		next = memmem(line, (size_t)(end - line), "\r\n", 2);
		if (!next)
			next = end;
		if ((size_t)(next - line) > nl && line[nl] == ':' && !strncasecmp(line, name, nl)) {
			const char *v = line + nl + 1;

			while (v < next && *v == ' ')
				v++;
			*vlen = (size_t)(next - v);
			return v;
		}
		line = next;
	}
	return NULL;
}

/* Skips a chunked body at @off; returns its end or SIZE_MAX when it is not one. */
static size_t skip_chunked(const char *out, size_t n, size_t off)
{
	for (;;) {
		size_t sz = 0, digits = 0;

		while (off < n && ((out[off] >= '0' && out[off] <= '9') ||
				   (out[off] >= 'a' && out[off] <= 'f') ||
				   (out[off] >= 'A' && out[off] <= 'F'))) {
			char c = out[off++];

			if (++digits > 8)
				return SIZE_MAX;
			sz = sz * 16 + (size_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
		}
		if (!digits || n - off < 2 || memcmp(out + off, "\r\n", 2))
			return SIZE_MAX;
		off += 2;
		if (!sz)
			return n - off >= 2 && !memcmp(out + off, "\r\n", 2) ? off + 2 : SIZE_MAX;
		if (n - off < sz + 2 || memcmp(out + off + sz, "\r\n", 2))
			return SIZE_MAX;
		off += sz + 2;
	}
}

static bool is_framing_error(int status)
{
	return status == 400 || status == 408 || status == 413 || status == 414 || status == 431;
}

static void check_output(const char *out, size_t n)
{
	size_t off = 0;
	int fatal = 0;

	while (off < n) {
		const char *head = out + off, *head_end, *v;
		size_t body, end = SIZE_MAX, vlen, cl;
		int status;

		if (fatal) {
			char why[96];

			snprintf(why, sizeof(why), "a response follows the %d that ended framing",
				 fatal);
			fail(why, out, n);
		}
		if (!starts_response(head, n - off))
			fail("output is not a response", out, n);
		status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
		head_end = memmem(head, n - off, "\r\n\r\n", 4);
		if (!head_end)
			fail("response head cut short", out, n);
		body = (size_t)(head_end - out) + 4;
		if (is_framing_error(status)) {
			v = head_value(head, head_end + 2, "Connection", &vlen);
			if (!v || vlen != 5 || strncasecmp(v, "close", 5))
				fail("framing error without Connection: close", out, n);
			fatal = status;
		}
		if (status < 200 || status == 204 || status == 304) {
			off = body;
			continue;
		}
		v = head_value(head, head_end + 2, "Transfer-Encoding", &vlen);
		if (v) {
			end = skip_chunked(out, n, body);
		} else if ((v = head_value(head, head_end + 2, "Content-Length", &vlen))) {
			cl = strtoul(v, NULL, 10);
			end = cl <= n - body ? body + cl : SIZE_MAX;
		} else {
			end = n; /* close-delimited */
		}
		if (end != SIZE_MAX && boundary(out, n, end))
			off = end;
		else if (boundary(out, n, body))
			off = body; /* a HEAD answer: headers only */
		else
			fail("response body does not match its framing", out, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	size_t split, outlen;
	char *out;
	uint8_t ctl;
	bool closed;
	int fd, one = 1;

	if (!fx.srv)
		setup();
	if (!size)
		return 0;
	ctl = data[0];
	data++;
	size--;
	split = (ctl & 0x80) ? size * (ctl & 0x7f) / 128 : size;

	sin.sin_port = htons(fx.port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		perror("http_fuzzer: connect");
		abort();
	}
	if (send_all(fd, data, split) && split < size) {
		usleep(200);
		send_all(fd, data + split, size - split);
	}
	shutdown(fd, SHUT_WR);
	closed = read_all(fd, &out, &outlen);
	if (!closed)
		fail("the server did not close the connection after the client's FIN", out, outlen);
	check_output(out, outlen);
	free(out);
	/* Reset instead of FIN: no TIME_WAIT pile-up over millions of connections. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return 0;
}
