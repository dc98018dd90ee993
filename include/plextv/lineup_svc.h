/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The lineup service inside `plextv serve`: builds snapshots from the store, publishes them to
 * every reactor, notices changes made by other processes (`plextv import`) through the store's
 * lineup_version, refreshes sources on a schedule and on `POST /lineup.post?scan=start`, and
 * seeds the demo lineup into an empty store.
 */
#pragma once

#include <stdbool.h>

#include "plextv/config.h"
#include "plextv/lineup.h"

struct ptv_lineup_svc;
struct ptv_pool;
struct ptv_store;
struct ptv_reactor;

/** Creates the service and builds the first snapshot (seeding the demo lineup if the store has
 * no source). Blocking: call on the main thread before the reactors start. */
int ptv_lineup_svc_new(const struct ptv_config *cfg, struct ptv_store *store, struct ptv_pool *pool,
		       struct ptv_lineup_svc **out);
void ptv_lineup_svc_free(struct ptv_lineup_svc *svc);

/** On the reactor's thread: give it the current snapshot and future ones. */
void ptv_lineup_svc_attach(struct ptv_lineup_svc *svc, struct ptv_reactor *r);
/** On the reactor's thread, before it is freed: stop publishing to it. Then run its inbox
 * (publications already posted) and call ptv_lineup_svc_release(). */
void ptv_lineup_svc_detach(struct ptv_lineup_svc *svc, struct ptv_reactor *r);
/** Drops the reactor's snapshot. */
void ptv_lineup_svc_release(struct ptv_reactor *r);

/** Periodic work, called by the main thread about once a second: rebuild on store changes,
 * start due source refreshes. Never blocks (work goes to the pool). */
void ptv_lineup_svc_tick(struct ptv_lineup_svc *svc);

/** Refreshes every source now (lineup.post scan=start). Thread-safe; false if one is running. */
bool ptv_lineup_svc_scan(struct ptv_lineup_svc *svc);
/** Scan state for /lineup_status.json. */
void ptv_lineup_svc_scan_state(struct ptv_lineup_svc *svc, bool *running, unsigned *progress,
			       unsigned *found);

/** A reference to the newest snapshot (any thread). Release with ptv_lineup_unref(). */
struct ptv_lineup *ptv_lineup_svc_get(struct ptv_lineup_svc *svc);

/** The advertised base URL ("http://192.168.1.10:8080"). */
const char *ptv_lineup_svc_base_url(const struct ptv_lineup_svc *svc);

/**
 * Picks the base URL: @configured if set, else the listen address if it is a specific one,
 * else the IPv4 address of the interface holding the default route (never loopback unless
 * nothing else exists, which is logged).
 */
void ptv_lineup_base_url(const char *configured, const char *listen, char *out, size_t len);
