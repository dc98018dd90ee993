/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/hdhr.h"
#include "plextv/http.h"
#include "plextv/lineup.h"
#include "plextv/lineup_svc.h"
#include "plextv/log.h"

#define CT_JSON "application/json"
#define CT_XML	"application/xml; charset=utf-8"
#define CT_M3U	"audio/x-mpegurl; charset=utf-8"

struct ptv_hdhr {
	struct ptv_lineup_svc *svc;
	struct ptv_hdhr_hooks hooks;
};

/* The documents a virtual device serves, by path below its base. */
enum hdhr_doc {
	DOC_DISCOVER,
	DOC_LINEUP_JSON,
	DOC_LINEUP_M3U,
	DOC_LINEUP_XML,
	DOC_DEVICE_XML,
	DOC_STATUS,
	DOC_LINEUP_STATUS,
	DOC_LINEUP_POST,
	DOC_NONE,
};

static const struct {
	const char *path; /* at the root; below /devices/{n} without the slash */
	const char *name; /* metrics label */
	enum hdhr_doc doc;
} hdhr_docs[] = {
	{"/discover.json", "discover", DOC_DISCOVER},
	{"/lineup.json", "lineup_json", DOC_LINEUP_JSON},
	{"/lineup.m3u", "lineup_m3u", DOC_LINEUP_M3U},
	{"/lineup.xml", "lineup_xml", DOC_LINEUP_XML},
	{"/device.xml", "device_xml", DOC_DEVICE_XML},
	{"/status.json", "status", DOC_STATUS},
	{"/lineup_status.json", "lineup_status", DOC_LINEUP_STATUS},
	{"/lineup.post", "lineup_post", DOC_LINEUP_POST},
};

static enum hdhr_doc doc_find(const char *rest)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(hdhr_docs); i++) {
		if (!strcmp(hdhr_docs[i].path + 1, rest))
			return hdhr_docs[i].doc;
	}
	return DOC_NONE;
}

static int lineup_status(struct ptv_hdhr *x, struct ptv_http_req *req)
{
	char body[256];
	unsigned progress, found;
	bool running;
	int n;

	ptv_lineup_svc_scan_state(x->svc, &running, &progress, &found);
	if (running)
		n = snprintf(body, sizeof(body),
			     "{\"ScanInProgress\":1,\"Progress\":%u,\"Found\":%u}", progress,
			     found);
	else
		n = snprintf(body, sizeof(body),
			     "{\"ScanInProgress\":0,\"ScanPossible\":1,\"Source\":\"Cable\","
			     "\"SourceList\":[\"Cable\"]}");
	return ptv_http_respond(req, 200, CT_JSON, body, (size_t)n);
}

static int lineup_post(struct ptv_hdhr *x, struct ptv_http_req *req)
{
	char scan[16];

	/* scan=start means "reload the sources"; it runs on the pool and the status shows it. */
	if (ptv_http_req_query_param(req, "scan", scan, sizeof(scan)) >= 0 &&
	    !strcmp(scan, "start") && !ptv_lineup_svc_scan(x->svc))
		ptv_info("hdhr", "scan requested while one is running: ignored");
	return ptv_http_respond(req, 200, "text/plain; charset=utf-8", "", 0);
}

static int status_json(struct ptv_hdhr *x, struct ptv_http_req *req,
		       const struct ptv_lineup_device *d, unsigned device)
{
	struct ptv_buf b = {0};
	int ret = 0;

	if (x->hooks.status) {
		ret = x->hooks.status(x->hooks.ctx, device, &b);
	} else {
		ptv_buf_putc(&b, '[');
		for (unsigned i = 0; i < d->tuners; i++)
			ptv_buf_printf(&b, "%s{\"Resource\":\"tuner%u\"}", i ? "," : "", i);
		ptv_buf_putc(&b, ']');
	}
	if (!ret && b.oom)
		ret = -ENOMEM;
	ret = ret ? ptv_http_respond_error(req, 500)
		  : ptv_http_respond(req, 200, CT_JSON, b.data, b.len);
	ptv_buf_free(&b);
	return ret;
}

static int serve_doc(struct ptv_hdhr *x, struct ptv_http_req *req, const struct ptv_lineup *l,
		     unsigned device, enum hdhr_doc doc, bool root)
{
	const struct ptv_lineup_device *d = &l->devices[device];
	char show[16] = "";

	switch (doc) {
	case DOC_DISCOVER:
		return ptv_http_respond_blob(req, 200, CT_JSON, d->discover_json);
	case DOC_LINEUP_JSON:
		ptv_http_req_query_param(req, "show", show, sizeof(show));
		return ptv_http_respond_blob(req, 200, CT_JSON,
					     !strcmp(show, "all") ? d->lineup_json_all
								  : d->lineup_json);
	case DOC_LINEUP_M3U:
		/* At the root, every device's channels: what M3U tuners (Jellyfin) want. */
		return ptv_http_respond_blob(req, 200, CT_M3U, root ? l->all_m3u : d->lineup_m3u);
	case DOC_LINEUP_XML:
		return ptv_http_respond_blob(req, 200, CT_XML, d->lineup_xml);
	case DOC_DEVICE_XML:
		return ptv_http_respond_blob(req, 200, CT_XML, d->device_xml);
	case DOC_STATUS:
		return status_json(x, req, d, device);
	case DOC_LINEUP_STATUS:
		return lineup_status(x, req);
	case DOC_LINEUP_POST:
		return lineup_post(x, req);
	case DOC_NONE:
		break;
	}
	return ptv_http_respond_error(req, 404);
}

static bool doc_method_ok(enum hdhr_doc doc, unsigned method)
{
	if (doc == DOC_LINEUP_POST)
		return method == PTV_HTTP_POST;
	return method == PTV_HTTP_GET || method == PTV_HTTP_HEAD;
}

static int respond_hdhr_error(struct ptv_http_req *req, int status, const char *code)
{
	ptv_http_add_header(req, "X-HDHomeRun-Error", code);
	return ptv_http_respond(req, status, "text/plain; charset=utf-8", code, strlen(code));
}

/* "auto/v5.1" or "tuner2/v5.1" below a device. */
static int stream_path(struct ptv_hdhr *x, struct ptv_http_req *req, const struct ptv_lineup *l,
		       unsigned device, const char *rest)
{
	const struct ptv_lineup_channel *ch;
	const char *num;
	int tuner = -1;
	char *end;

	if (!strncmp(rest, "auto/v", 6)) {
		num = rest + 6;
	} else if (!strncmp(rest, "tuner", 5) && rest[5] >= '0' && rest[5] <= '9') {
		tuner = (int)strtol(rest + 5, &end, 10);
		if (strncmp(end, "/v", 2))
			return ptv_http_respond_error(req, 404);
		num = end + 2;
	} else {
		return ptv_http_respond_error(req, 404);
	}
	ch = ptv_lineup_by_number(l, num);
	if (!ch || ch->device != device || !ch->enabled)
		return respond_hdhr_error(req, 404, "801 Unknown Channel");
	if (tuner >= 0 && (unsigned)tuner >= l->devices[device].tuners)
		return respond_hdhr_error(req, 404, "801 Unknown Channel");
	if (!x->hooks.tune)
		return respond_hdhr_error(req, 503, "806 Tune Failed");
	return x->hooks.tune(x->hooks.ctx, req, ch, tuner);
}

static int device_request(struct ptv_hdhr *x, struct ptv_http_req *req, unsigned device,
			  const char *rest, bool root)
{
	struct ptv_lineup *l = ptv_lineup_current(ptv_http_req_reactor(req));
	enum hdhr_doc doc;

	if (!l)
		return ptv_http_respond_error(req, 503);
	if (device >= l->n_devices)
		return ptv_http_respond_error(req, 404);
	doc = doc_find(rest);
	if (doc == DOC_NONE)
		return stream_path(x, req, l, device, rest);
	if (!doc_method_ok(doc, ptv_http_req_method(req))) {
		ptv_http_add_header(req, "Allow", doc == DOC_LINEUP_POST ? "POST" : "GET, HEAD");
		return ptv_http_respond_error(req, 405);
	}
	return serve_doc(x, req, l, device, doc, root);
}

static int root_handler(struct ptv_http_req *req, void *ctx)
{
	return device_request(ctx, req, 0, ptv_http_req_path(req) + 1, true);
}

static int devices_handler(struct ptv_http_req *req, void *ctx)
{
	const char *p = ptv_http_req_path(req) + strlen("/devices/");
	char *end;
	unsigned long n;

	if (*p < '0' || *p > '9')
		return ptv_http_respond_error(req, 404);
	n = strtoul(p, &end, 10);
	if (*end != '/' || n > 100000)
		return ptv_http_respond_error(req, 404);
	return device_request(ctx, req, (unsigned)n, end + 1, false);
}

int ptv_hdhr_routes_register(struct ptv_router *rt, struct ptv_lineup_svc *svc,
			     const struct ptv_hdhr_hooks *hooks, struct ptv_hdhr **out)
{
	struct ptv_hdhr *x = ptv_xcalloc(1, sizeof(*x));
	struct ptv_route r = {.methods = PTV_HTTP_GET | PTV_HTTP_POST, .ctx = x};
	int ret = 0;

	x->svc = svc;
	if (hooks)
		x->hooks = *hooks;
	r.fn = root_handler;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(hdhr_docs) && !ret; i++) {
		r.name = hdhr_docs[i].name;
		r.path = hdhr_docs[i].path;
		ret = ptv_router_add(rt, &r);
	}
	r.name = "hdhr_device";
	r.path = "/devices/";
	r.prefix = true;
	r.fn = devices_handler;
	if (!ret)
		ret = ptv_router_add(rt, &r);
	if (ret) {
		free(x);
		return ret;
	}
	*out = x;
	return 0;
}

void ptv_hdhr_free(struct ptv_hdhr *x)
{
	free(x);
}
