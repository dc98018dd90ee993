/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The lineup as the reactors see it: an immutable, refcounted snapshot built from the store on
 * a pool thread, with every HDHomeRun document pre-rendered as a blob (so a 100,000-channel
 * /lineup.json is sent by reference and never rendered on a reactor).
 *
 * Publication: the lineup service hands each reactor its own reference through the reactor's
 * inbox; handlers read the reactor-local pointer (ptv_lineup_current()) without locks.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/buf.h"
#include "plextv/device.h"

struct ptv_reactor;

enum ptv_channel_kind {
	PTV_CHANNEL_URL = 1, /* anything libavformat opens: http(s), hls, rtsp, rtmp, udp, srt */
	PTV_CHANNEL_ACESTREAM = 2, /* acestream://<id> through the engine's HTTP API */
	PTV_CHANNEL_FILE = 3, /* local file, looped (demo lineup, tests); never from remote lists */
};

struct ptv_lineup_header {
	const char *name;
	const char *value;
};

/** One channel. Strings live in the snapshot's arena. */
struct ptv_lineup_channel {
	uint32_t id;	    /* stable store id; /stream/{id} */
	const char *number; /* GuideNumber */
	const char *name;
	const char *tvg_id, *tvg_name, *logo, *group;
	enum ptv_channel_kind kind;
	const char *const *urls; /* primary, then backups. Carry credentials: never output them */
	unsigned n_urls;
	const struct ptv_lineup_header *headers; /* request headers for the upstream */
	unsigned n_headers;
	uint32_t source_id;
	unsigned device;    /* virtual device index */
	double shift_hours; /* guide time shift */
	bool enabled;	    /* false: filtered out; listed only with show=all */
	bool drm, radio, hd;
};

/** One virtual HDHomeRun device and its pre-rendered documents. */
struct ptv_lineup_device {
	struct ptv_device_identity id;
	char friendly_name[64];
	char base_url[512]; /* "http://192.168.1.10:8080" or ".../devices/1" */
	unsigned tuners;
	size_t first, count; /* its channels: channels[first .. first+count) */
	struct ptv_blob *discover_json;
	struct ptv_blob *lineup_json;	  /* enabled channels (show=found, default) */
	struct ptv_blob *lineup_json_all; /* show=all */
	struct ptv_blob *lineup_m3u;
	struct ptv_blob *lineup_xml;
	struct ptv_blob *device_xml;
};

struct ptv_lineup {
	atomic_uint refs;
	uint64_t version;		     /* store lineup_version it was built from */
	struct ptv_lineup_channel *channels; /* by device, then lineup order */
	size_t n_channels;
	struct ptv_lineup_device *devices;
	unsigned n_devices;
	struct ptv_blob *all_m3u; /* every device's channels: /lineup.m3u at the root */
	/* private: indexes and arena */
	void *priv;
};

struct ptv_lineup *ptv_lineup_ref(struct ptv_lineup *l);
void ptv_lineup_unref(struct ptv_lineup *l);

/** Exact-string GuideNumber lookup ("5.1" != "5.10"); NULL if unknown. */
const struct ptv_lineup_channel *ptv_lineup_by_number(const struct ptv_lineup *l,
						      const char *number);
const struct ptv_lineup_channel *ptv_lineup_by_id(const struct ptv_lineup *l, uint32_t id);

/** The snapshot current on this reactor (may be NULL before the first publish). Reactor only. */
struct ptv_lineup *ptv_lineup_current(struct ptv_reactor *r);
