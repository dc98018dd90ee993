/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Sources: M3U playlists imported into the store as channels with stable identity and numbers.
 *
 * Identity across refreshes: an entry takes over the existing channel of the same source that
 * matches it by tvg-id, else by URL, else by tvg-name, else by name, so a channel keeps its id
 * and GuideNumber when the provider reorders, renames or re-tokens the list. Entries that
 * disappear are kept (not present) with their number reserved, so they come back unchanged.
 * Duplicates of one tvg-id become backup URLs of the first. tvg-chno is honoured when free;
 * other channels are numbered from number_start.
 *
 * All functions block (fetching, LMDB writes): CLI, main thread or pool only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "plextv/m3u.h"

struct ptv_store;

struct ptv_import_m3u_opts {
	const char *name;     /* source name; NULL: keep the stored one or derive from location */
	const char *location; /* file path or http(s) URL */
	const char *user_agent;
	unsigned number_start;		   /* 0: keep the stored value or 1 */
	const char *const *include_groups; /* NULL-terminated fnmatch patterns (case-insensitive) */
	const char *const *exclude_groups;
	const char *const *include_names;
	const char *const *exclude_names;
	unsigned refresh_s; /* refresh period inside serve; 0: keep the stored value or 12 h */
	bool allow_file;    /* local paths allowed (CLI and config, not remote input) */
	bool allow_empty;   /* accept a playlist with no entries */
	bool keep_filters;  /* refresh: use the filters stored with the source */
};

struct ptv_import_report {
	uint32_t source_id;
	uint64_t entries, channels, added, updated, removed, merged, filtered, drm;
	uint64_t number_conflicts;
	uint64_t errors[PTV_M3U_ERR_COUNT];
	bool not_modified;
	double seconds;
	char error[256];
};

/** Adds or refreshes the source named by @o; one write transaction, so a failure (fetch,
 * parse, store) leaves the previous lineup intact. */
int ptv_sources_import_m3u(struct ptv_store *s, const struct ptv_import_m3u_opts *o,
			   struct ptv_import_report *rep);

/** Re-imports source @id with its stored location and filters. */
int ptv_sources_refresh(struct ptv_store *s, uint32_t id, struct ptv_import_report *rep);

/** Calls @fn for every source id; used for scheduled refreshes. @due_only: only those whose
 * refresh period has elapsed at @now (unix seconds). */
int ptv_sources_each(struct ptv_store *s, bool due_only, double now,
		     void (*fn)(uint32_t id, void *ctx), void *ctx);

/** Creates the "demo" source from the looping sample streams in @demo_dir when the store has
 * no source at all. Returns 1 if seeded, 0 if not needed, or a negative errno. */
int ptv_sources_seed_demo(struct ptv_store *s, const char *demo_dir);

/** `plextv sources list` / `plextv channels list [--json]` output (credentials redacted). */
int ptv_sources_print(struct ptv_store *s, FILE *out, bool json);
int ptv_channels_print(struct ptv_store *s, FILE *out, bool json);

/**
 * A source name for @location when none was given: the URL's host followed by @suffix, or the
 * file name — never the URL itself, which may carry credentials.
 */
void ptv_sources_derive_name(const char *location, const char *suffix, char *out, size_t len);

/** One line per report for CLI output and logs. */
void ptv_import_report_format(const struct ptv_import_report *r, char *buf, size_t len);
