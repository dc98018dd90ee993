/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Discovery inside `plextv serve`: the SSDP and HDHomeRun UDP responders (ssdp.h,
 * hdhr_disc.h), the allow-list they share (netfilter.h), the eBPF programs (bpf_loader.h:
 * kernel socket filter and per-channel accounting) and the optional extra HTTP listener on
 * port 80 that Jellyfin needs. One object; the server drives its lifecycle:
 *
 *   ptv_discovery_new()    main thread, before the reactors: checks the [discovery] keys,
 *                          loads BPF (or logs the one-line fallback), opens port 80
 *   ptv_discovery_start()  on reactor 0: sockets, interface watch, first NOTIFYs
 *   ptv_discovery_stop()   on reactor 0 at SIGTERM: ssdp:byebye, sockets closed
 *   ptv_discovery_free()   main thread, after the reactor's ring is gone
 *
 * Metrics: plextv_bpf_enabled, plextv_bpf_info{filter,accounting},
 * plextv_discovery_*_total{proto,…} (netfilter.h) and
 * plextv_channel_{egress,ingress}_bytes_total{channel,source="bpf"} read from the kernel on
 * each scrape. The relay adds the source="user" series of the same families itself.
 */
#pragma once

#include "plextv/config.h"

struct ptv_discovery;
struct ptv_lineup_svc;
struct ptv_router;
struct ptv_reactor;
struct ptv_http_shared;
struct ptv_http_limits;

struct ptv_discovery_deps {
	const struct ptv_config *cfg;
	struct ptv_lineup_svc *lineup;
	/* For the port-80 listener: the same routes, connection limit and HTTP limits. */
	struct ptv_router *router;
	struct ptv_http_shared *http_shared;
	const struct ptv_http_limits *http_limits;
};

/** Family names shared with the relay, which adds the source="user" series. */
#define PTV_CHANNEL_EGRESS_METRIC  "plextv_channel_egress_bytes_total"
#define PTV_CHANNEL_INGRESS_METRIC "plextv_channel_ingress_bytes_total"

/**
 * Main thread, before the reactors start. Returns 0, -PTV_ERR_CONFIG for a bad [discovery]
 * value (logged), or the BPF error when bpf = on and BPF is unavailable (logged).
 */
int ptv_discovery_new(const struct ptv_discovery_deps *deps, struct ptv_discovery **out);
/** On the reactor that will own discovery. A responder that cannot bind is logged and
 * skipped; the relay serves on without it. */
int ptv_discovery_start(struct ptv_discovery *d, struct ptv_reactor *r);
/** On that reactor: byebye, then stop answering. Safe to call twice or when not started. */
void ptv_discovery_stop(struct ptv_discovery *d);
/** Main thread, after the reactor's ring was freed. Accepts NULL. */
void ptv_discovery_free(struct ptv_discovery *d);
