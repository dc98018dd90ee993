/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv-bench plextv-httpd` (internal, started by `http`): PlexTV's own HTTP stack (reactor,
 * llhttp server, router, ops routes) with one extra route, GET /bench/1k, answering the same
 * 1 KiB body nginx serves. `plextv serve` has no static route of that size until the relay's
 * discover.json lands, so the 1 KiB row is measured here: the same code path as `serve`
 * (one reactor per worker, SO_REUSEPORT listener each, ptv_http_respond), wired up the way
 * src/server.c does it, minus config reload and metrics rendering.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "plextv/build-config.h"
#include "plextv/config.h"
#include "plextv/http.h"
#include "plextv/metrics.h"
#include "plextv/ops.h"
#include "plextv/reactor.h"
#include "plextv/router.h"
#include "plextv/workers.h"

struct httpd_thread {
	struct httpd *h;
	unsigned index;
	int listen_fd;
	struct ptv_reactor *r;
	struct ptv_http_server *http;
	pthread_t tid;
	int err;
	bool ready;
};

struct httpd {
	struct ptv_router *router;
	struct ptv_pool *pool;
	struct ptv_http_shared shared;
	struct ptv_http_limits limits;
	char server_header[64];
	char body[BENCH_STATIC_BYTES];
	struct httpd_thread *th;
	unsigned n;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned reported;
};

static int httpd_static(struct ptv_http_req *req, void *ctx)
{
	const struct httpd *h = ctx;

	return ptv_http_respond(req, 200, "text/plain; charset=utf-8", h->body, sizeof(h->body));
}

static void httpd_report(struct httpd_thread *t, int err)
{
	pthread_mutex_lock(&t->h->lock);
	t->err = err;
	t->ready = true;
	t->h->reported++;
	pthread_cond_broadcast(&t->h->cond);
	pthread_mutex_unlock(&t->h->lock);
}

static int httpd_thread_setup(struct httpd_thread *t)
{
	struct ptv_reactor_opts opts = {.index = t->index};
	int ret;

	ret = ptv_reactor_new(&opts, &t->r);
	if (!ret)
		ret = ptv_http_server_new(t->r, t->h->router, &t->h->shared, &t->h->limits,
					  t->listen_fd, &t->http);
	if (ret)
		return ret;
	t->listen_fd = -1;
	ptv_reactor_set_busy(t->r, ptv_http_server_busy, t->http);
	return ptv_http_server_start(t->http);
}

static void *httpd_thread_main(void *arg)
{
	struct httpd_thread *t = arg;
	int ret;

	ptv_metrics_thread_init();
	ret = httpd_thread_setup(t);
	httpd_report(t, ret);
	if (!ret)
		ptv_reactor_run(t->r);
	ptv_metrics_thread_exit();
	return NULL;
}

static int httpd_routes(struct httpd *h)
{
	const struct ptv_route r = {.name = "bench_1k",
				    .methods = PTV_HTTP_GET,
				    .path = "/bench/1k",
				    .fn = httpd_static,
				    .ctx = h};
	int ret;

	bench_static_body(h->body, sizeof(h->body));
	ret = ptv_pool_new(1, &h->pool);
	if (!ret)
		ret = ptv_router_new(&h->router);
	if (!ret)
		ret = ptv_ops_routes_register(h->router, h->pool);
	if (!ret)
		ret = ptv_router_add(h->router, &r);
	return ret;
}

static int httpd_init(struct httpd *h, unsigned workers, uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct ptv_config cfg;
	unsigned i;
	int ret;

	ptv_config_defaults(&cfg);
	ptv_http_limits_from_config(&h->limits, &cfg);
	snprintf(h->server_header, sizeof(h->server_header), "PlexTV/%s", PTV_VERSION);
	h->shared.server_header = h->server_header;
	atomic_init(&h->shared.open, 0);
	atomic_init(&h->shared.max_open, cfg.max_connections);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->n = workers;
	h->th = ptv_xcalloc(workers, sizeof(*h->th));
	ret = httpd_routes(h);
	for (i = 0; i < workers && !ret; i++) {
		h->th[i] = (struct httpd_thread){.h = h, .index = i};
		h->th[i].listen_fd = ptv_http_listen((struct sockaddr *)&sa, sizeof(sa));
		if (h->th[i].listen_fd < 0)
			ret = h->th[i].listen_fd;
	}
	return ret;
}

static int httpd_start(struct httpd *h, unsigned *started)
{
	int ret = 0;
	unsigned i;

	for (i = 0; i < h->n && !ret; i++) {
		ret = -pthread_create(&h->th[i].tid, NULL, httpd_thread_main, &h->th[i]);
		if (!ret)
			(*started)++;
	}
	pthread_mutex_lock(&h->lock);
	while (h->reported < *started)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	for (i = 0; i < *started && !ret; i++)
		ret = h->th[i].err;
	return ret;
}

static void httpd_drain_task(void *arg)
{
	struct httpd_thread *t = arg;

	ptv_http_server_drain(t->http);
}

static void httpd_stop(struct httpd *h, unsigned started)
{
	unsigned i;

	for (i = 0; i < started; i++) {
		if (h->th[i].r && !h->th[i].err) {
			ptv_reactor_post(h->th[i].r, httpd_drain_task, &h->th[i]);
			ptv_reactor_stop(h->th[i].r);
		}
	}
	for (i = 0; i < started; i++)
		pthread_join(h->th[i].tid, NULL);
	ptv_pool_free(h->pool);
	for (i = 0; i < h->n; i++) {
		ptv_reactor_free(h->th[i].r);
		ptv_http_server_free(h->th[i].http);
		if (h->th[i].listen_fd > 0)
			close(h->th[i].listen_fd);
	}
	ptv_router_free(h->router);
	free(h->th);
}

int bench_cmd_plextv_httpd(int argc, char **argv)
{
	static struct httpd h;
	unsigned port = 0, workers = 1, started = 0;
	sigset_t set;
	int ret, sig;

	if (argc != 3 || bench_parse_uint(argv[1], 1, 65535, &port) ||
	    bench_parse_uint(argv[2], 1, 256, &workers)) {
		fprintf(stderr, "usage: plextv-bench plextv-httpd PORT WORKERS\n");
		return BENCH_EX_USAGE;
	}
	/* Blocked before the reactors exist, so only this thread takes them (as serve does). */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	ret = httpd_init(&h, workers, (uint16_t)port);
	if (!ret)
		ret = httpd_start(&h, &started);
	if (ret) {
		fprintf(stderr, "plextv-httpd: %s\n", ptv_strerror(ret));
	} else {
		printf("plextv-httpd: 127.0.0.1:%u, %u reactors\n", port, workers);
		fflush(stdout);
		sigwait(&set, &sig);
	}
	httpd_stop(&h, started);
	return ret ? BENCH_EX_FAIL : BENCH_EX_OK;
}
