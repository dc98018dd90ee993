/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <libavformat/avformat.h>
#include <llhttp.h>
#include <stdio.h>

#include "plextv/build-config.h"
#include "plextv/http.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/ops.h"
#include "plextv/workers.h"

#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

static int health_handler(struct ptv_http_req *req, void *ctx)
{
	return ptv_http_respond(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

struct metrics_job {
	struct ptv_http_req *req;
	struct ptv_blob *blob;
};

static void metrics_render_work(void *arg)
{
	struct metrics_job *job = arg;
	struct ptv_buf out = {0};

	/* Collectors read /proc and sum every shard: pool work, not reactor work. */
	if (!ptv_metrics_render(&out))
		job->blob = ptv_blob_from_buf(&out);
	ptv_buf_free(&out);
}

static void metrics_render_done(void *arg)
{
	struct metrics_job *job = arg;

	if (job->blob)
		ptv_http_respond_blob(job->req, 200, METRICS_CTYPE, job->blob);
	else
		ptv_http_respond_error(job->req, 500);
	ptv_blob_unref(job->blob);
	free(job);
}

static int metrics_handler(struct ptv_http_req *req, void *ctx)
{
	struct ptv_pool *pool = ctx;
	struct metrics_job *job = ptv_xcalloc(1, sizeof(*job));
	int ret;

	job->req = req;
	ret = ptv_pool_submit(pool, ptv_http_req_reactor(req), metrics_render_work,
			      metrics_render_done, job);
	if (ret) {
		free(job);
		return ptv_http_respond_error(req, 503);
	}
	ptv_http_defer(req);
	return 0;
}

int ptv_ops_routes_register(struct ptv_router *rt, struct ptv_pool *pool)
{
	const struct ptv_route routes[] = {
		{.name = "health",
		 .methods = PTV_HTTP_GET,
		 .path = "/health",
		 .fn = health_handler},
		{.name = "metrics",
		 .methods = PTV_HTTP_GET,
		 .path = "/metrics",
		 .fn = metrics_handler,
		 .ctx = pool},
	};
	int ret = 0;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(routes) && !ret; i++)
		ret = ptv_router_add(rt, &routes[i]);
	return ret;
}

void ptv_ops_build_info(const char *io_backend)
{
	static const char *const names[] = {"version", "commit",      "io_backend",
					    "llhttp",  "libavformat", NULL};
	struct ptv_metric_family *f;
	char llhttp[32];
	const char *values[6];

	snprintf(llhttp, sizeof(llhttp), "%d.%d.%d", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
		 LLHTTP_VERSION_PATCH);
	values[0] = PTV_VERSION;
	values[1] = PTV_GIT_COMMIT;
	values[2] = io_backend;
	values[3] = llhttp;
	values[4] = AV_STRINGIFY(LIBAVFORMAT_VERSION);
	values[5] = NULL;
	f = ptv_metrics_family("plextv_build_info", "Build and runtime facts; always 1",
			       PTV_METRIC_GAUGE, names, NULL, 0, 4);
	ptv_metric_set(ptv_metric_get(f, values), 1);
}
