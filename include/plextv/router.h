/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Routing table: method + exact path or path prefix -> handler. Modules register their routes
 * before the reactors start; the table is read-only afterwards and shared by every reactor.
 */
#pragma once

#include <stdbool.h>

struct ptv_http_req;

enum ptv_http_method {
	PTV_HTTP_GET = 1u << 0,
	PTV_HTTP_HEAD = 1u << 1, /* implied wherever GET is allowed */
	PTV_HTTP_POST = 1u << 2,
	PTV_HTTP_PUT = 1u << 3,
	PTV_HTTP_DELETE = 1u << 4,
	PTV_HTTP_OPTIONS = 1u << 5,
	PTV_HTTP_PATCH = 1u << 6,
};

/**
 * A handler answers with one of the ptv_http_respond*() calls, starts a stream, or defers
 * (ptv_http_defer) and answers later on the same reactor thread. Returning a negative errno
 * without having answered gives the client a 500.
 */
typedef int (*ptv_http_handler_fn)(struct ptv_http_req *req, void *ctx);

struct ptv_route {
	const char *name; /* label in plextv_http_requests_total{handler=…}; static string */
	unsigned methods; /* PTV_HTTP_* mask */
	const char *path; /* "/health", or a prefix such as "/auto/" when @prefix */
	bool prefix;
	ptv_http_handler_fn fn;
	void *ctx;
};

struct ptv_router;
struct ptv_route_entry;

int ptv_router_new(struct ptv_router **out);
void ptv_router_free(struct ptv_router *rt);
/** Copies @route. Returns 0, -EEXIST for a duplicate path, -EINVAL for a bad route. */
int ptv_router_add(struct ptv_router *rt, const struct ptv_route *route);

/**
 * Finds the route for @path (exact match first, then the longest prefix). Returns the entry
 * with *@status 0 when the method is allowed, or the entry with *@status 405 (*@allow gets the
 * allowed mask), or NULL with *@status 404.
 */
struct ptv_route_entry *ptv_router_match(struct ptv_router *rt, unsigned method, const char *path,
					 int *status, unsigned *allow);
const struct ptv_route *ptv_route_entry_route(const struct ptv_route_entry *e);

/** The per-route request counter for @code, created once and cached (lock-free afterwards). */
struct ptv_metric *ptv_route_entry_requests(struct ptv_route_entry *e, int code);
struct ptv_metric *ptv_route_entry_duration(struct ptv_route_entry *e);
/** The pseudo-entry used for requests no route matched (handler="none"). */
struct ptv_route_entry *ptv_router_unmatched(struct ptv_router *rt);

/** Writes "GET, HEAD, POST" for @mask into @buf. */
void ptv_http_methods_format(unsigned mask, char *buf, size_t len);
