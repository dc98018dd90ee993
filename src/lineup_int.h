/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Internals of the lineup module (lineup.c, lineup_render.c, lineup_svc.c). */
#pragma once

#include "plextv/lineup.h"

struct ptv_store;

struct lineup_arena_block {
	struct lineup_arena_block *next;
	size_t used, cap;
	char data[];
};

struct lineup_priv {
	struct ptv_store *store;
	struct lineup_arena_block *arena;
	const struct ptv_lineup_channel **by_number; /* open addressing, idx_cap slots */
	const struct ptv_lineup_channel **by_id;
	size_t idx_cap;
};

struct lineup_build_opts {
	struct ptv_store *store;
	const char *base_url; /* "http://192.168.1.10:8080", no trailing slash */
	const char *friendly_name;
	unsigned tuners;
	unsigned device_max; /* channels per virtual device (Plex caps near 480) */
};

int ptv_lineup_build(const struct lineup_build_opts *o, struct ptv_lineup **out);
int lineup_devices_build(const struct lineup_build_opts *o, struct ptv_lineup *l);
int ptv_lineup_number_cmp(const char *a, const char *b);
