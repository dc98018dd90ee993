/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HDHomeRun discovery on UDP 65001 (PROTOCOLS.md §2), as libhdhomerun, Jellyfin, Emby and the
 * HDHomeRun apps send it: a broadcast (or unicast) DISCOVER_REQ, answered by unicast with one
 * DISCOVER_RPY per virtual device.
 *
 * Frame: u16 BE type, u16 BE payload length, TLVs, u32 LE CRC-32 (zlib) over everything
 * before it. TLV: u8 tag, length (one byte if <= 127, else two: (len & 0x7F) | 0x80, len >> 7),
 * value. Integers are big-endian.
 *
 * Known client limit: libhdhomerun (hdhomerun_config, HDHomeRun apps) keeps at most 28 bytes
 * of BASE_URL and de-duplicates replies by (source IP, BASE_URL); a longer URL is replaced by
 * http://IP:80. Virtual devices past the first (".../devices/N") therefore collapse into one
 * entry there. Jellyfin and Emby ignore BASE_URL; Plex uses SSDP and HTTP.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_HDHR_PORT		     65001
#define PTV_HDHR_MAX_PACKET	     1460
#define PTV_HDHR_TYPE_DISCOVER_REQ   0x0002
#define PTV_HDHR_TYPE_DISCOVER_RPY   0x0003
#define PTV_HDHR_TAG_DEVICE_TYPE     0x01
#define PTV_HDHR_TAG_DEVICE_ID	     0x02
#define PTV_HDHR_TAG_TUNER_COUNT     0x10
#define PTV_HDHR_TAG_LINEUP_URL	     0x27
#define PTV_HDHR_TAG_BASE_URL	     0x2A
#define PTV_HDHR_TAG_DEVICE_AUTH_STR 0x2B
#define PTV_HDHR_TAG_MULTI_TYPE	     0x2D
#define PTV_HDHR_DEVICE_TYPE_TUNER   0x00000001u
#define PTV_HDHR_WILDCARD	     0xFFFFFFFFu /* device type and device id */
#define PTV_HDHR_MAX_TYPES	     16

struct ptv_reactor;
struct ptv_netfilter;
struct ptv_disc_reach;

/** A parsed DISCOVER_REQ. */
struct ptv_hdhr_disc_req {
	uint32_t types[PTV_HDHR_MAX_TYPES]; /* DEVICE_TYPE and MULTI_TYPE entries */
	unsigned n_types;
	bool has_id;
	uint32_t device_id;
};

/** zlib's CRC-32 (IEEE, reflected, init and xorout 0xFFFFFFFF). */
uint32_t ptv_hdhr_crc32(const void *p, size_t n);

/**
 * Parses a discover request. Returns 0; -EMSGSIZE (shorter than a header, longer than 1460
 * bytes, or the length field disagrees), -EBADMSG (CRC), -EINVAL (bad TLV), -ENOMSG (a valid
 * frame of another type).
 */
int ptv_hdhr_disc_parse(const void *p, size_t n, struct ptv_hdhr_disc_req *out);

/** True when a device @device_id (a tuner) should answer @req. */
bool ptv_hdhr_disc_matches(const struct ptv_hdhr_disc_req *req, uint32_t device_id);

/** What one DISCOVER_RPY carries. */
struct ptv_hdhr_disc_info {
	uint32_t device_id;
	unsigned tuner_count; /* sent as u8: capped at 255 */
	const char *base_url;
	const char *lineup_url;
	const char *device_auth;
};

/** Writes a DISCOVER_RPY into @out. Returns its length, or -ENOSPC / -EINVAL. */
int ptv_hdhr_disc_reply(const struct ptv_hdhr_disc_info *d, uint8_t *out, size_t cap);

/** Writes a DISCOVER_REQ (for tests and tools). Returns its length or -ENOSPC. */
int ptv_hdhr_disc_request(const uint32_t *types, unsigned n_types, bool has_id, uint32_t device_id,
			  uint8_t *out, size_t cap);

/* ---- The responder (reactor-only) ---- */

struct ptv_hdhr_disc;

/**
 * Binds UDP @port (PTV_HDHR_PORT) on reactor @r and answers requests that pass @nf with
 * the virtual devices of the reactor's current lineup. @reach says what URLs to advertise.
 */
int ptv_hdhr_disc_start(struct ptv_reactor *r, struct ptv_netfilter *nf,
			const struct ptv_disc_reach *reach, uint16_t port,
			struct ptv_hdhr_disc **out);
/** The socket, for the kernel filter. */
int ptv_hdhr_disc_fd(const struct ptv_hdhr_disc *h);
/** Stops answering (on the reactor). */
void ptv_hdhr_disc_stop(struct ptv_hdhr_disc *h);
/** Frees it once the reactor's ring is gone. */
void ptv_hdhr_disc_free(struct ptv_hdhr_disc *h);
