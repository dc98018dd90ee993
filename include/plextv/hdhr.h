/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HDHomeRun HTTP emulation (PROTOCOLS.md §1): /discover.json, /lineup.json, /lineup.m3u,
 * /lineup.xml, /lineup_status.json, POST /lineup.post, /device.xml, /status.json, and the same
 * under /devices/{n}/ for every virtual device, where /devices/{n}/auto/v{GuideNumber} and
 * /devices/{n}/tuner{k}/v{GuideNumber} are handed to the relay.
 */
#pragma once

struct ptv_router;
struct ptv_lineup_svc;
struct ptv_http_req;
struct ptv_buf;
struct ptv_lineup_channel;

/** What the relay provides to the HDHomeRun routes (NULL members: not available). */
struct ptv_hdhr_hooks {
	/** Tunes @ch for @req; @tuner = -1 for any free tuner of the channel's device. */
	int (*tune)(void *ctx, struct ptv_http_req *req, const struct ptv_lineup_channel *ch,
		    int tuner);
	/** Appends the /status.json array of virtual device @device to @out. */
	int (*status)(void *ctx, unsigned device, struct ptv_buf *out);
	void *ctx;
};

struct ptv_hdhr;

/** Registers the routes; the returned context must outlive the router (ptv_hdhr_free after). */
int ptv_hdhr_routes_register(struct ptv_router *rt, struct ptv_lineup_svc *svc,
			     const struct ptv_hdhr_hooks *hooks, struct ptv_hdhr **out);
void ptv_hdhr_free(struct ptv_hdhr *x);
