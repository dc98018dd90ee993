/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "plextv/metrics.h"
#include "plextv/router.h"

/* Status codes that get their own cached series; anything else shares the last slot. */
static const int route_codes[] = {200, 204, 206, 301, 302, 304, 400, 401, 403, 404,
				  405, 408, 413, 414, 431, 500, 501, 503, 0};
#define ROUTE_NCODES PTV_ARRAY_SIZE(route_codes)

struct ptv_route_entry {
	struct ptv_route route;
	_Atomic(struct ptv_metric *) requests[ROUTE_NCODES];
	struct ptv_metric_family *requests_family;
	struct ptv_metric *duration;
};

struct ptv_router {
	struct ptv_route_entry **entries;
	size_t n;
	struct ptv_route_entry unmatched;
	struct ptv_metric_family *requests;
	struct ptv_metric_family *duration;
};

static const double duration_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					  0.1,	  0.25,	 0.5,	 1,	2.5,  5,     10};

static void entry_init(struct ptv_router *rt, struct ptv_route_entry *e)
{
	const char *labels[] = {e->route.name, NULL};

	e->requests_family = rt->requests;
	e->duration = ptv_metric_get(rt->duration, labels);
}

int ptv_router_new(struct ptv_router **out)
{
	static const char *const req_labels[] = {"handler", "code", NULL};
	static const char *const dur_labels[] = {"handler", NULL};
	struct ptv_router *rt = ptv_xcalloc(1, sizeof(*rt));

	rt->requests = ptv_metrics_family("plextv_http_requests_total",
					  "HTTP requests answered, by handler and status code",
					  PTV_METRIC_COUNTER, req_labels, NULL, 0, 1024);
	rt->duration = ptv_metrics_family(
		"plextv_http_request_duration_seconds",
		"Time from the end of the request head to the response being queued",
		PTV_METRIC_HISTOGRAM, dur_labels, duration_buckets,
		PTV_ARRAY_SIZE(duration_buckets), 128);
	rt->unmatched.route.name = "none";
	entry_init(rt, &rt->unmatched);
	*out = rt;
	return 0;
}

void ptv_router_free(struct ptv_router *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->n; i++)
		free(rt->entries[i]);
	free(rt->entries);
	free(rt);
}

int ptv_router_add(struct ptv_router *rt, const struct ptv_route *route)
{
	struct ptv_route_entry *e;

	if (!route->name || !route->path || route->path[0] != '/' || !route->fn || !route->methods)
		return -EINVAL;
	for (size_t i = 0; i < rt->n; i++) {
		const struct ptv_route *o = &rt->entries[i]->route;

		if (o->prefix == route->prefix && !strcmp(o->path, route->path))
			return -EEXIST;
	}
	e = ptv_xcalloc(1, sizeof(*e));
	e->route = *route;
	if (e->route.methods & PTV_HTTP_GET)
		e->route.methods |= PTV_HTTP_HEAD;
	entry_init(rt, e);
	rt->entries = ptv_xrealloc(rt->entries, (rt->n + 1) * sizeof(*rt->entries));
	rt->entries[rt->n++] = e;
	return 0;
}

static struct ptv_route_entry *router_find(struct ptv_router *rt, const char *path)
{
	struct ptv_route_entry *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < rt->n; i++) {
		struct ptv_route_entry *e = rt->entries[i];
		size_t len = strlen(e->route.path);

		if (!e->route.prefix) {
			if (!strcmp(e->route.path, path))
				return e;
			continue;
		}
		if (len > best_len && !strncmp(e->route.path, path, len)) {
			best = e;
			best_len = len;
		}
	}
	return best;
}

struct ptv_route_entry *ptv_router_match(struct ptv_router *rt, unsigned method, const char *path,
					 int *status, unsigned *allow)
{
	struct ptv_route_entry *e = router_find(rt, path);

	*allow = 0;
	if (!e) {
		*status = 404;
		return NULL;
	}
	if (!(e->route.methods & method)) {
		*status = 405;
		*allow = e->route.methods;
		return e;
	}
	*status = 0;
	return e;
}

const struct ptv_route *ptv_route_entry_route(const struct ptv_route_entry *e)
{
	return &e->route;
}

struct ptv_route_entry *ptv_router_unmatched(struct ptv_router *rt)
{
	return &rt->unmatched;
}

struct ptv_metric *ptv_route_entry_duration(struct ptv_route_entry *e)
{
	return e->duration;
}

struct ptv_metric *ptv_route_entry_requests(struct ptv_route_entry *e, int code)
{
	const char *values[] = {e->route.name, NULL, NULL};
	struct ptv_metric *m;
	char codebuf[8];
	size_t i = 0;

	while (route_codes[i] && route_codes[i] != code)
		i++;
	m = atomic_load_explicit(&e->requests[i], memory_order_acquire);
	if (m)
		return m;
	/* First use of this code on this route: the registry lookup takes its lock once. */
	if (route_codes[i])
		snprintf(codebuf, sizeof(codebuf), "%d", code);
	else
		snprintf(codebuf, sizeof(codebuf), "other");
	values[1] = codebuf;
	m = ptv_metric_get(e->requests_family, values);
	/* Two reactors may race here; both get the same series from the registry. */
	atomic_store_explicit(&e->requests[i], m, memory_order_release);
	return m;
}

void ptv_http_methods_format(unsigned mask, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{PTV_HTTP_GET, "GET"},	  {PTV_HTTP_HEAD, "HEAD"},
		     {PTV_HTTP_POST, "POST"},	  {PTV_HTTP_PUT, "PUT"},
		     {PTV_HTTP_DELETE, "DELETE"}, {PTV_HTTP_OPTIONS, "OPTIONS"},
		     {PTV_HTTP_PATCH, "PATCH"}};
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < PTV_ARRAY_SIZE(names); i++) {
		if (!(mask & names[i].bit))
			continue;
		used += (size_t)snprintf(buf + PTV_MIN(used, len), len - PTV_MIN(used, len), "%s%s",
					 used ? ", " : "", names[i].name);
	}
}
