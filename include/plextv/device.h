/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HDHomeRun device identity: DeviceID (8 hex digits whose last nibble is libhdhomerun's
 * checksum), an RFC 4122 UUID and DeviceAuth. One per virtual device; made once and stored, so
 * Plex (which keys the DVR by DeviceID) sees the same tuner after every restart.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct ptv_store;

struct ptv_device_identity {
	uint32_t device_id;
	char device_id_hex[9]; /* "1054A3F7" */
	char uuid[37];	       /* lowercase RFC 4122 */
	char auth[25];	       /* 24 characters, base64 alphabet */
};

/** libhdhomerun's hdhomerun_discover_validate_device_id(). */
bool ptv_device_id_valid(uint32_t id);
/** Replaces the last nibble of @id with the checksum that makes it valid. */
uint32_t ptv_device_id_fix(uint32_t id);

/**
 * The identity of virtual device @index (0 = the first), creating and storing it on first use
 * (random DeviceID with a fixed "105" prefix as cabernet does, random UUID, random auth).
 * Creation checks and writes in one write transaction, so racing processes agree on one
 * identity, and no two indexes share a DeviceID or UUID. Errors: -PTV_ERR_PARSE (stored record
 * damaged: never silently replaced, Plex would see a new tuner), -EROFS (read-only store and no
 * identity yet), store errors. Blocking: store access.
 */
int ptv_device_identity(struct ptv_store *s, unsigned index, struct ptv_device_identity *out);

/** The identities of devices 0..@n-1, creating the missing ones in one write transaction. */
int ptv_device_identities(struct ptv_store *s, unsigned n, struct ptv_device_identity *out);
