/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * SSDP (UPnP discovery, PROTOCOLS.md §3) for Plex: answers M-SEARCH on UDP 1900 and announces
 * every virtual device with NOTIFY on 239.255.255.250.
 *
 * Each virtual device is a root device with three targets: upnp:rootdevice, uuid:<UUID> (the
 * UDN of its device.xml) and urn:schemas-upnp-org:device:MediaServer:1.
 *
 * Amplification budget (RELIABILITY.md S2). A search is answered with at most one response per
 * response ST, and past the first response only while the bytes sent stay within twice the
 * request's bytes (PTV_SSDP_AMPLIFICATION). One response (~270 bytes) is more than twice a
 * minimal M-SEARCH (~95 bytes), so:
 *   - a search always gets its first response (else Plex would find nothing): out/in is about
 *     2.9 for the smallest valid search and below 2 from ~140 bytes up (most clients send a
 *     USER-AGENT and land there);
 *   - ssdp:all does not get 3 x N responses: it gets rootdevice, then MediaServer:1, then
 *     uuid of one device, as far as the budget goes;
 *   - with several virtual devices, a search is answered for one device, rotating from search
 *     to search (clients repeat their searches), and NOTIFY, which no remote party can
 *     trigger, announces all of them every interval. A client that sends one search and
 *     never listens to NOTIFY therefore sees one device per search.
 * Together with the per-source token bucket (netfilter.h) a flood gets at most
 * PTV_DISC_SRC_BURST + PTV_DISC_SRC_RATE x seconds answers per source.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_SSDP_PORT	       1900
#define PTV_SSDP_GROUP	       "239.255.255.250"
#define PTV_SSDP_MAX_ST	       256  /* longer ST lines are noise (miniupnpd #267: 1000 colons) */
#define PTV_SSDP_MAX_PACKET    1460 /* larger datagrams are noise */
#define PTV_SSDP_MAX_AGE       1800
#define PTV_SSDP_MX_MAX	       5
#define PTV_SSDP_AMPLIFICATION 2 /* bytes out / bytes in, past the first response */
#define PTV_SSDP_MEDIASERVER   "urn:schemas-upnp-org:device:MediaServer:1"

struct ptv_reactor;
struct ptv_netfilter;
struct ptv_disc_reach;

/** A parsed M-SEARCH. */
struct ptv_ssdp_msearch {
	char st[PTV_SSDP_MAX_ST + 1];
	int mx; /* clamped to 1..PTV_SSDP_MX_MAX; -1 when absent (allowed for unicast only) */
};

/**
 * Parses an M-SEARCH datagram. Returns 0; -ENOMSG for other valid SSDP traffic (NOTIFY,
 * responses: ignored without counting); -EMSGSIZE above PTV_SSDP_MAX_PACKET; -EINVAL for
 * anything malformed (bad start line, NUL or control bytes, MAN other than "ssdp:discover",
 * missing or oversized ST, non-numeric MX, duplicated MAN/ST/MX).
 */
int ptv_ssdp_parse(const void *p, size_t n, struct ptv_ssdp_msearch *out);

/** The targets each device advertises, in the order a budget spends on them. */
enum ptv_ssdp_target {
	PTV_SSDP_T_ROOT = 0,	    /* upnp:rootdevice */
	PTV_SSDP_T_MEDIASERVER = 1, /* urn:schemas-upnp-org:device:MediaServer:1 */
	PTV_SSDP_T_UUID = 2,	    /* uuid:<UUID> */
	PTV_SSDP_NTARGETS = 3,
};

/** What a search asks for. */
enum ptv_ssdp_want {
	PTV_SSDP_WANT_NONE = 0, /* a target we do not serve: no answer, no amplification */
	PTV_SSDP_WANT_ALL,
	PTV_SSDP_WANT_ROOT,
	PTV_SSDP_WANT_MEDIASERVER,
	PTV_SSDP_WANT_UUID,
};

/** Classifies @st; for a uuid: target, *@uuid points at the UUID part. */
enum ptv_ssdp_want ptv_ssdp_classify(const char *st, const char **uuid);

/** The identity of one advertised device. */
struct ptv_ssdp_adv {
	const char *uuid;     /* lowercase RFC 4122, as in device.xml's UDN */
	const char *location; /* http://ADDR:PORT/device.xml */
	const char *server;   /* "Linux/6.1 UPnP/1.1 PlexTV/0.1.0" */
	unsigned max_age;
	uint32_t bootid, configid;
};

/** Writes the search response for target @t. Returns its length or -ENOSPC. */
int ptv_ssdp_response(const struct ptv_ssdp_adv *a, enum ptv_ssdp_target t, char *out, size_t cap);
/** Writes a NOTIFY ssdp:alive (@alive) or ssdp:byebye. Returns its length or -ENOSPC. */
int ptv_ssdp_notify(const struct ptv_ssdp_adv *a, enum ptv_ssdp_target t, bool alive, char *out,
		    size_t cap);

/* ---- The responder (reactor-only) ---- */

struct ptv_ssdp;

struct ptv_ssdp_opts {
	const struct ptv_disc_reach *reach;
	uint16_t port;		  /* PTV_SSDP_PORT */
	unsigned notify_interval; /* seconds between alive rounds, < max-age/2; jittered */
};

/** Binds the port on @r, joins the group where netfilter says, starts the alive rounds. */
int ptv_ssdp_start(struct ptv_reactor *r, struct ptv_netfilter *nf, const struct ptv_ssdp_opts *o,
		   struct ptv_ssdp **out);
int ptv_ssdp_fd(const struct ptv_ssdp *s);
/** The interface table changed: join/leave the group, announce on new interfaces. */
void ptv_ssdp_ifaces_changed(struct ptv_ssdp *s);
/** Sends ssdp:byebye for every device on every interface, then stops (on the reactor). */
void ptv_ssdp_stop(struct ptv_ssdp *s);
/** Frees it once the reactor's ring is gone. */
void ptv_ssdp_free(struct ptv_ssdp *s);
