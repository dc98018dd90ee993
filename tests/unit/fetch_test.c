/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Fetcher tests against a small HTTP/1.1 server run on a thread of this process, bound to
 * 127.0.0.1 only. Every wait is bounded: the server polls with timeouts, every fetch has a
 * total timeout, and ctest adds its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "plextv/common.h"
#include "plextv/fetch.h"
#include "plextv/log.h"
#include "plextv/m3u.h"

#define BODY_TEXT "#EXTM3U\n#EXTINF:-1,Test\nhttp://example.invalid/1.ts\n"
#define LAST_MOD  "Wed, 21 Oct 2015 07:28:00 GMT"
#define BOMB_SIZE (64u << 20)

/* ---- test server ---- */

struct blob {
	unsigned char *p;
	size_t n;
};

static struct server {
	int lfd, port;
	int hang_fd, hang_port; /* listening, never accepted: connects, then silence */
	int refused_port;	/* bound once, closed: nothing listens there */
	pthread_t th;
	atomic_bool stop;
	pthread_mutex_t lock;
	char last_req[8192];
	struct blob gz, gz_multi, bomb, playlist_gz;
} srv;

static void blob_append(struct blob *b, const void *p, size_t n)
{
	b->p = realloc(b->p, b->n + n);
	assert_non_null(b->p);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

/* gzip (RFC 1952) of @len bytes of @data, or of @zeros zero bytes when @data is NULL. */
static void gzip_make(struct blob *out, const void *data, size_t len, size_t zeros)
{
	static unsigned char zbuf[1 << 20];
	unsigned char obuf[65536];
	z_stream z = {0};
	size_t left = data ? len : zeros;
	int rc;

	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	do {
		size_t n = data ? left : PTV_MIN(left, sizeof(zbuf));

		z.next_in = data ? (unsigned char *)data + (len - left) : zbuf;
		z.avail_in = (uInt)n;
		left -= n;
		do {
			z.next_out = obuf;
			z.avail_out = sizeof(obuf);
			rc = deflate(&z, left ? Z_NO_FLUSH : Z_FINISH);
			blob_append(out, obuf, sizeof(obuf) - z.avail_out);
		} while (z.avail_out == 0);
	} while (left);
	assert_int_equal(rc, Z_STREAM_END);
	deflateEnd(&z);
}

static int listen_on(int *port, bool do_listen)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false; /* the client gave up (size cap, timeout): fine */
		c += w;
		n -= (size_t)w;
	}
	return true;
}

static void reply(int fd, const char *status, const char *extra, const void *body, size_t n)
{
	char head[1024];
	int len = snprintf(head, sizeof(head),
			   "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
			   status, n, extra ? extra : "");

	if (send_all(fd, head, (size_t)len))
		send_all(fd, body, n);
}

/* A body with no Content-Length, ended by closing: the cap must work without a length. */
static void reply_unsized(int fd, size_t n)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
	char buf[65536];

	memset(buf, 'a', sizeof(buf));
	if (!send_all(fd, head, sizeof(head) - 1))
		return;
	while (n) {
		size_t k = PTV_MIN(n, sizeof(buf));

		if (!send_all(fd, buf, k))
			return;
		n -= k;
	}
}

/* Headers and a few bytes, then nothing until the client leaves (at most 10 s). */
static void reply_stall(int fd)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabcde";
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	send_all(fd, head, sizeof(head) - 1);
	poll(&pfd, 1, 10000);
}

static bool req_has(const char *req, const char *needle)
{
	return strcasestr(req, needle) != NULL;
}

static void route_redirect(int fd, const char *path)
{
	int n = atoi(path + strlen("/redir/"));
	char loc[128];

	if (n <= 0) {
		reply(fd, "200 OK", NULL, "end", 3);
		return;
	}
	snprintf(loc, sizeof(loc), "Location: /redir/%d\r\n", n - 1);
	reply(fd, "302 Found", loc, "moved", 5);
}

static void route(int fd, const char *req, const char *path)
{
	if (!strcmp(path, "/plain")) {
		reply(fd, "200 OK", "Content-Type: audio/x-mpegurl\r\n", BODY_TEXT,
		      strlen(BODY_TEXT));
	} else if (!strcmp(path, "/echo")) {
		reply(fd, "200 OK", NULL, req, strlen(req));
	} else if (!strcmp(path, "/gzip-ce")) {
		if (!req_has(req, "Accept-Encoding:") || !req_has(req, "gzip"))
			reply(fd, "400 No Gzip", NULL, "", 0);
		else
			reply(fd, "200 OK", "Content-Encoding: gzip\r\n", srv.gz.p, srv.gz.n);
	} else if (!strcmp(path, "/file.gz")) {
		reply(fd, "200 OK", "Content-Type: application/octet-stream\r\n", srv.gz.p,
		      srv.gz.n);
	} else if (!strcmp(path, "/multi.gz")) {
		reply(fd, "200 OK", NULL, srv.gz_multi.p, srv.gz_multi.n);
	} else if (!strcmp(path, "/truncated.gz")) {
		reply(fd, "200 OK", NULL, srv.gz.p, srv.gz.n - 6);
	} else if (!strcmp(path, "/bad.gz")) {
		reply(fd, "200 OK", NULL, "\x1f\x8bnot really gzip at all", 24);
	} else if (!strcmp(path, "/bomb.gz")) {
		reply(fd, "200 OK", NULL, srv.bomb.p, srv.bomb.n);
	} else if (!strcmp(path, "/bomb-ce")) {
		reply(fd, "200 OK", "Content-Encoding: gzip\r\n", srv.bomb.p, srv.bomb.n);
	} else if (!strcmp(path, "/playlist.m3u.gz")) {
		reply(fd, "200 OK", NULL, srv.playlist_gz.p, srv.playlist_gz.n);
	} else if (!strcmp(path, "/etag")) {
		if (req_has(req, "If-None-Match: \"v1\""))
			reply(fd, "304 Not Modified", "ETag: \"v1\"\r\n", "", 0);
		else
			reply(fd, "200 OK", "ETag: \"v1\"\r\nLast-Modified: " LAST_MOD "\r\n",
			      BODY_TEXT, strlen(BODY_TEXT));
	} else if (!strcmp(path, "/lm")) {
		if (req_has(req, "If-Modified-Since: " LAST_MOD))
			reply(fd, "304 Not Modified", NULL, "", 0);
		else
			reply(fd, "200 OK", "Last-Modified: " LAST_MOD "\r\n", "x", 1);
	} else if (!strncmp(path, "/redir/", 7)) {
		route_redirect(fd, path);
	} else if (!strcmp(path, "/tofile")) {
		reply(fd, "302 Found", "Location: file:///etc/passwd\r\n", "", 0);
	} else if (!strcmp(path, "/noloc")) {
		reply(fd, "302 Found", NULL, "redirect body", 13);
	} else if (!strcmp(path, "/403")) {
		reply(fd, "403 Forbidden", NULL, "go away", 7);
	} else if (!strcmp(path, "/500")) {
		reply(fd, "500 Oops", NULL, "error page", 10);
	} else if (!strcmp(path, "/sized-big")) {
		static char big[1 << 20];

		memset(big, 'b', sizeof(big));
		reply(fd, "200 OK", NULL, big, sizeof(big));
	} else if (!strcmp(path, "/unsized-big")) {
		reply_unsized(fd, 4u << 20);
	} else if (!strcmp(path, "/stall")) {
		reply_stall(fd);
	} else {
		reply(fd, "404 Not Found", NULL, "not found page", 14);
	}
}

/* Reads the request head (bounded in size and time). */
static bool read_request(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n < cap - 1) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&pfd, 1, 3000) <= 0)
			return false;
		r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r <= 0)
			return false;
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return true;
	}
	return false;
}

static void serve_one(int fd)
{
	char req[8192], path[1024] = "";
	struct timeval tv = {.tv_sec = 5};

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!read_request(fd, req, sizeof(req)))
		return;
	sscanf(req, "%*s %1023s", path);
	pthread_mutex_lock(&srv.lock);
	snprintf(srv.last_req, sizeof(srv.last_req), "%s", req);
	pthread_mutex_unlock(&srv.lock);
	route(fd, req, path);
}

static void *server_main(void *arg)
{
	while (!atomic_load(&srv.stop)) {
		struct pollfd pfd = {.fd = srv.lfd, .events = POLLIN};
		int fd;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = accept4(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
	return NULL;
}

static void make_playlist_gz(void)
{
	const char *dir = getenv("PTV_SHARED_DATA");
	char path[4096];
	FILE *f;
	char buf[65536];
	struct blob raw = {0};
	size_t n;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/m3u/ipytv_iptv-org-index.m3u", dir);
	f = fopen(path, "rb");
	if (!f)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		blob_append(&raw, buf, n);
	fclose(f);
	gzip_make(&srv.playlist_gz, raw.p, raw.n, 0);
	free(raw.p);
}

static int setup(void **state)
{
	int fd;

	pthread_mutex_init(&srv.lock, NULL);
	gzip_make(&srv.gz, BODY_TEXT, strlen(BODY_TEXT), 0);
	gzip_make(&srv.gz_multi, BODY_TEXT, strlen(BODY_TEXT), 0);
	blob_append(&srv.gz_multi, srv.gz.p, srv.gz.n); /* two members: the text twice */
	gzip_make(&srv.bomb, NULL, 0, BOMB_SIZE);
	make_playlist_gz();
	srv.lfd = listen_on(&srv.port, true);
	srv.hang_fd = listen_on(&srv.hang_port, true);
	fd = listen_on(&srv.refused_port, false);
	close(fd);
	atomic_store(&srv.stop, false);
	assert_int_equal(pthread_create(&srv.th, NULL, server_main, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	atomic_store(&srv.stop, true);
	pthread_join(srv.th, NULL);
	close(srv.lfd);
	close(srv.hang_fd);
	free(srv.gz.p);
	free(srv.gz_multi.p);
	free(srv.bomb.p);
	free(srv.playlist_gz.p);
	return 0;
}

/* ---- client side ---- */

struct sink {
	char *buf;
	size_t len, cap;
	unsigned calls;
};

static int sink_fn(const char *data, size_t len, void *ctx)
{
	struct sink *s = ctx;

	s->calls++;
	if (s->len + len + 1 > s->cap) {
		s->cap = (s->len + len + 1) * 2;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return 0;
}

static void sink_free(struct sink *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static char *url(const char *path)
{
	static char u[256];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", srv.port, path);
	return u;
}

static void opts_for(struct ptv_fetch_opts *o, const char *u)
{
	ptv_fetch_opts_init(o);
	o->url = u;
	o->timeout_ms = 10000;
	o->connect_timeout_ms = 3000;
}

/* Fetches @path with default test options; returns the code, body in @s. */
static int get(const char *path, struct sink *s, struct ptv_fetch_result *res)
{
	struct ptv_fetch_opts o;

	opts_for(&o, url(path));
	return ptv_fetch(&o, sink_fn, s, res);
}

static void test_plain(void **state)
{
	struct ptv_fetch_result res;
	struct sink s = {0};

	assert_int_equal(get("/plain", &s, &res), 0);
	assert_int_equal(res.status, 200);
	assert_string_equal(s.buf, BODY_TEXT);
	assert_int_equal(res.bytes, strlen(BODY_TEXT));
	assert_false(res.not_modified);
	assert_false(res.gunzipped);
	assert_string_equal(res.final_url, url("/plain"));
	ptv_fetch_result_deinit(&res);
	assert_null(res.final_url);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
}

static void test_request_headers(void **state)
{
	static const char *const extra[] = {"X-Token: abc", "Referer: http://ref.example/"};
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};

	assert_int_equal(get("/echo", &s, &res), 0);
	assert_non_null(strcasestr(s.buf, "User-Agent: PlexTV/"));
	assert_non_null(strcasestr(s.buf, "Accept-Encoding: "));
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	opts_for(&o, url("/echo"));
	o.user_agent = "Custom/1.0";
	o.headers = extra;
	o.n_headers = 2;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), 0);
	assert_non_null(strstr(s.buf, "User-Agent: Custom/1.0\r\n"));
	assert_non_null(strstr(s.buf, "X-Token: abc\r\n"));
	assert_non_null(strstr(s.buf, "Referer: http://ref.example/\r\n"));
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	/* a header that would split into two lines is refused before anything is sent */
	static const char *const evil[] = {"X-A: 1\r\nX-Injected: 2"};
	o.headers = evil;
	o.n_headers = 1;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EINVAL);
	assert_int_equal(s.len, 0);
	ptv_fetch_result_deinit(&res);
}

static void test_gzip_content_encoding(void **state)
{
	struct ptv_fetch_result res;
	struct sink s = {0};

	assert_int_equal(get("/gzip-ce", &s, &res), 0);
	assert_string_equal(s.buf, BODY_TEXT);
	assert_false(res.gunzipped); /* libcurl undid the transfer encoding */
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
}

static void test_gz_file_body(void **state)
{
	struct ptv_fetch_result res;
	struct sink s = {0};

	assert_int_equal(get("/file.gz", &s, &res), 0);
	assert_string_equal(s.buf, BODY_TEXT);
	assert_true(res.gunzipped);
	assert_int_equal(res.bytes, strlen(BODY_TEXT));
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	assert_int_equal(get("/multi.gz", &s, &res), 0);
	assert_string_equal(s.buf, BODY_TEXT BODY_TEXT);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	assert_int_equal(get("/truncated.gz", &s, &res), -EBADMSG);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
	assert_int_equal(get("/bad.gz", &s, &res), -EBADMSG);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
}

static void test_gzip_bomb(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};

	opts_for(&o, url("/bomb.gz"));
	o.max_bytes = 1u << 20;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EFBIG);
	assert_true(res.bytes <= o.max_bytes);
	assert_true(s.len <= o.max_bytes);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	opts_for(&o, url("/bomb-ce"));
	o.max_bytes = 1u << 20;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EFBIG);
	assert_true(s.len <= o.max_bytes);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	/* under the cap the whole bomb inflates: the cap, not luck, stopped it above */
	opts_for(&o, url("/bomb.gz"));
	o.max_bytes = BOMB_SIZE;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), 0);
	assert_int_equal(res.bytes, BOMB_SIZE);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
}

static void test_size_cap(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};

	opts_for(&o, url("/sized-big")); /* Content-Length over the cap: refused up front */
	o.max_bytes = 100 * 1024;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EFBIG);
	assert_true(s.len <= o.max_bytes);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	opts_for(&o, url("/unsized-big")); /* no length: stopped while streaming */
	o.max_bytes = 100 * 1024;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EFBIG);
	assert_true(s.len <= o.max_bytes);
	assert_string_equal(res.error, "body over the size limit");
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	opts_for(&o, url("/unsized-big")); /* exactly at the cap is fine */
	o.max_bytes = 4u << 20;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), 0);
	assert_int_equal(s.len, 4u << 20);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
}

static void test_conditional_get(void **state)
{
	struct ptv_fetch_result res, res2;
	struct ptv_fetch_opts o;
	struct sink s = {0};

	assert_int_equal(get("/etag", &s, &res), 0);
	assert_string_equal(res.etag, "\"v1\"");
	assert_string_equal(res.last_modified, LAST_MOD);
	sink_free(&s);

	opts_for(&o, url("/etag"));
	o.etag = res.etag;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res2), 0);
	assert_true(res2.not_modified);
	assert_int_equal(res2.status, 304);
	assert_int_equal(s.calls, 0);
	assert_int_equal(res2.bytes, 0);
	ptv_fetch_result_deinit(&res2);

	opts_for(&o, url("/lm"));
	o.last_modified = res.last_modified;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res2), 0);
	assert_true(res2.not_modified);
	assert_int_equal(s.calls, 0);
	ptv_fetch_result_deinit(&res2);
	ptv_fetch_result_deinit(&res);
}

static void test_redirects(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};

	assert_int_equal(get("/redir/5", &s, &res), 0); /* 5 hops: the default limit */
	assert_string_equal(s.buf, "end");
	assert_string_equal(res.final_url, url("/redir/0"));
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	assert_int_equal(get("/redir/6", &s, &res), -ELOOP);
	assert_int_equal(s.len, 0); /* redirect bodies never reach the sink */
	ptv_fetch_result_deinit(&res);

	opts_for(&o, url("/redir/3"));
	o.max_redirs = 2;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ELOOP);
	ptv_fetch_result_deinit(&res);

	opts_for(&o, url("/redir/1"));
	o.no_redirects = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ELOOP);
	assert_int_equal(s.len, 0);
	ptv_fetch_result_deinit(&res);

	/* a 3xx we cannot follow is an error, and its body is not the playlist */
	assert_int_equal(get("/noloc", &s, &res), -EIO);
	assert_int_equal(res.status, 302);
	assert_int_equal(s.len, 0);
	ptv_fetch_result_deinit(&res);

	/* http → file:// must not read a local file */
	assert_int_equal(get("/tofile", &s, &res), -EPROTONOSUPPORT);
	assert_int_equal(s.len, 0);
	ptv_fetch_result_deinit(&res);
}

static void test_http_errors(void **state)
{
	struct ptv_fetch_result res;
	struct sink s = {0};

	assert_int_equal(get("/nothing-here", &s, &res), -ENOENT);
	assert_int_equal(res.status, 404);
	assert_int_equal(s.len, 0); /* the error page is not a playlist */
	assert_string_equal(res.error, "HTTP 404");
	ptv_fetch_result_deinit(&res);

	assert_int_equal(get("/403", &s, &res), -EACCES);
	assert_int_equal(res.status, 403);
	ptv_fetch_result_deinit(&res);

	assert_int_equal(get("/500", &s, &res), -EIO);
	assert_int_equal(res.status, 500);
	assert_int_equal(s.len, 0);
	ptv_fetch_result_deinit(&res);
}

static void test_connection_refused(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};
	char u[128];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", srv.refused_port);
	opts_for(&o, u);
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ECONNREFUSED);
	assert_int_equal(res.status, 0);
	ptv_fetch_result_deinit(&res);
}

static void test_timeouts(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};
	uint64_t t0, ms;
	char u[128];

	/* accepted by the kernel, never answered: the total timeout ends it */
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", srv.hang_port);
	opts_for(&o, u);
	o.timeout_ms = 700;
	t0 = ptv_now_ms();
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ETIMEDOUT);
	ms = ptv_now_ms() - t0;
	print_message("silent server: gave up after %llu ms (timeout 700)\n",
		      (unsigned long long)ms);
	assert_true(ms >= 600 && ms < 3000);
	ptv_fetch_result_deinit(&res);

	/* headers and 5 bytes, then silence: the stall timeout ends it before the total one */
	opts_for(&o, url("/stall"));
	o.timeout_ms = 20000;
	o.stall_timeout_ms = 1000;
	t0 = ptv_now_ms();
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ETIMEDOUT);
	ms = ptv_now_ms() - t0;
	print_message("stalled body: gave up after %llu ms (stall 1000)\n", (unsigned long long)ms);
	assert_true(ms < 5000);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
}

static void test_protocols_and_proxy(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};
	char proxy[128];

	opts_for(&o, "ftp://127.0.0.1/x");
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EPROTONOSUPPORT);
	ptv_fetch_result_deinit(&res);
	opts_for(&o, "gopher://127.0.0.1/x");
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EPROTONOSUPPORT);
	ptv_fetch_result_deinit(&res);

	/* A proxy from the environment is ignored (it points at a dead port here)... */
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", srv.refused_port);
	setenv("http_proxy", proxy, 1);
	setenv("HTTP_PROXY", proxy, 1);
	setenv("ALL_PROXY", proxy, 1);
	assert_int_equal(get("/plain", &s, &res), 0);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);
	/* ...a configured one is used. */
	opts_for(&o, url("/plain"));
	o.proxy = proxy;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ECONNREFUSED);
	ptv_fetch_result_deinit(&res);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");

	opts_for(&o, "");
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EINVAL);
	assert_int_equal(ptv_fetch(NULL, sink_fn, &s, &res), -EINVAL);
}

/* ---- local files ---- */

static char tmpdir[256];

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void test_local_files(void **state)
{
	struct ptv_fetch_result res, res2;
	struct ptv_fetch_opts o;
	struct sink s = {0};
	char path[512], gz[512], u[600];
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/ptv-fetch-XXXXXX", base ? base : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/list one.m3u", tmpdir);
	snprintf(gz, sizeof(gz), "%s/epg.xml.gz", tmpdir);
	write_file(path, BODY_TEXT, strlen(BODY_TEXT));
	write_file(gz, srv.gz.p, srv.gz.n);

	opts_for(&o, path); /* not allowed by default: a remote playlist could name /etc/… */
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EPERM);
	ptv_fetch_result_deinit(&res);
	snprintf(u, sizeof(u), "file://%s", gz);
	opts_for(&o, u);
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EPERM);
	assert_int_equal(s.len, 0);
	ptv_fetch_result_deinit(&res);

	opts_for(&o, path);
	o.allow_file = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), 0);
	assert_string_equal(s.buf, BODY_TEXT);
	assert_int_equal(res.status, 0);
	assert_true(res.last_modified[0]);
	sink_free(&s);

	/* unchanged mtime: not modified, nothing read */
	o.last_modified = res.last_modified;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res2), 0);
	assert_true(res2.not_modified);
	assert_int_equal(s.calls, 0);
	ptv_fetch_result_deinit(&res2);
	ptv_fetch_result_deinit(&res);

	opts_for(&o, u); /* file:// and a .gz file */
	o.allow_file = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), 0);
	assert_string_equal(s.buf, BODY_TEXT);
	assert_true(res.gunzipped);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	snprintf(u, sizeof(u), "file://localhost%s/list%%20one.m3u", tmpdir);
	opts_for(&o, u);
	o.allow_file = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), 0);
	assert_string_equal(s.buf, BODY_TEXT);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	opts_for(&o, "file://otherhost/etc/passwd");
	o.allow_file = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EINVAL);
	ptv_fetch_result_deinit(&res);
	opts_for(&o, tmpdir);
	o.allow_file = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EISDIR);
	ptv_fetch_result_deinit(&res);
	snprintf(u, sizeof(u), "%s/missing.m3u", tmpdir);
	opts_for(&o, u);
	o.allow_file = true;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ENOENT);
	ptv_fetch_result_deinit(&res);

	opts_for(&o, gz); /* the size cap applies to local files too */
	o.allow_file = true;
	o.max_bytes = 10;
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -EFBIG);
	ptv_fetch_result_deinit(&res);
	sink_free(&s);

	unlink(path);
	unlink(gz);
	rmdir(tmpdir);
}

/* ---- credentials never reach the log ---- */

struct logcap {
	char text[8192];
	size_t len;
};

static void log_sink(const char *line, size_t len, void *ctx)
{
	struct logcap *c = ctx;

	len = PTV_MIN(len, sizeof(c->text) - 1 - c->len);
	memcpy(c->text + c->len, line, len);
	c->len += len;
	c->text[c->len] = '\0';
}

static void test_errors_redacted(void **state)
{
	struct logcap cap = {0};
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;
	struct sink s = {0};
	char u[256];

	ptv_log_set_sink(log_sink, &cap);
	snprintf(u, sizeof(u),
		 "http://bob:hunter2@127.0.0.1:%d/get.php?username=bob&password=s3cret", srv.port);
	opts_for(&o, u);
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ENOENT);
	ptv_fetch_result_deinit(&res);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/live/bob/s3cret/1.ts", srv.refused_port);
	opts_for(&o, u);
	assert_int_equal(ptv_fetch(&o, sink_fn, &s, &res), -ECONNREFUSED);
	assert_null(strstr(res.error, "s3cret"));
	ptv_fetch_result_deinit(&res);
	ptv_log_set_sink(NULL, NULL);
	print_message("log: %s", cap.text);
	assert_true(cap.len > 0);
	assert_null(strstr(cap.text, "hunter2"));
	assert_null(strstr(cap.text, "s3cret"));
}

/* ---- end to end: a gzipped 1 MB playlist streamed into the M3U parser ---- */

static int count_entry(const struct ptv_m3u_entry *e, void *ctx)
{
	(*(unsigned *)ctx)++;
	return 0;
}

static int sink_parser(const char *data, size_t len, void *ctx)
{
	return ptv_m3u_parser_feed(ctx, data, len);
}

static void test_stream_into_parser(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_m3u_parser *p;
	struct ptv_fetch_opts o;
	unsigned n = 0;

	if (!srv.playlist_gz.n)
		skip();
	assert_int_equal(ptv_m3u_parser_new(count_entry, &n, &p), 0);
	opts_for(&o, url("/playlist.m3u.gz"));
	assert_int_equal(ptv_fetch(&o, sink_parser, p, &res), 0);
	assert_int_equal(ptv_m3u_parser_finish(p), 0);
	assert_true(res.gunzipped);
	assert_int_equal(n, 4601); /* see m3u_test.c for how this count was derived */
	ptv_m3u_parser_free(p);
	ptv_fetch_result_deinit(&res);
}

static int sink_abort(const char *data, size_t len, void *ctx)
{
	return -ECANCELED;
}

static void test_sink_abort(void **state)
{
	struct ptv_fetch_result res;
	struct ptv_fetch_opts o;

	opts_for(&o, url("/unsized-big"));
	assert_int_equal(ptv_fetch(&o, sink_abort, NULL, &res), -ECANCELED);
	ptv_fetch_result_deinit(&res);
	opts_for(&o, url("/file.gz"));
	assert_int_equal(ptv_fetch(&o, sink_abort, NULL, &res), -ECANCELED);
	ptv_fetch_result_deinit(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_request_headers),
		cmocka_unit_test(test_gzip_content_encoding),
		cmocka_unit_test(test_gz_file_body),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_conditional_get),
		cmocka_unit_test(test_redirects),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_protocols_and_proxy),
		cmocka_unit_test(test_local_files),
		cmocka_unit_test(test_errors_redacted),
		cmocka_unit_test(test_stream_into_parser),
		cmocka_unit_test(test_sink_abort),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
