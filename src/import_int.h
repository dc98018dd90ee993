/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Internals of the M3U importer (import.c, import_match.c). */
#pragma once

#include <jansson.h>

#include "plextv/chanrec.h"
#include "plextv/sources.h"
#include "plextv/store.h"
#include "plextv/strmap.h"

#define IMPORT_MAX_BACKUPS 8

struct import_entry {
	const char *name, *url, *tvg_id, *tvg_name, *logo, *chno, *group;
	const char *hdr_names[PTV_M3U_MAX_HEADERS], *hdr_values[PTV_M3U_MAX_HEADERS];
	unsigned n_headers;
	const char *backups[IMPORT_MAX_BACKUPS];
	unsigned n_backups;
	double shift;
	bool radio, drm, acestream, file, hd, enabled, merged;
	const char *off_reason;
	/* reconciliation */
	uint32_t id;
	bool matched;
	char number[16];
	char old_number[16];
};

struct import_coll {
	struct import_entry *entries;
	size_t n, cap;
	char **strs;
	size_t n_strs, cap_strs;
	char url_tvg[2048];
	/* URL policy */
	const char *base;  /* the playlist's own URL, to resolve relative entries; NULL if local */
	bool allow_file;   /* file:// entries allowed (playlists the operator named) */
	uint64_t bad_urls; /* entries refused by the policy */
};

struct import_filters {
	char **include_groups, **exclude_groups, **include_names, **exclude_names;
};

/* An existing channel of the source being refreshed. */
struct import_old {
	uint32_t id;
	char *raw;		/* a copy of the stored record */
	struct ptv_chanrec rec; /* points into @raw */
	bool claimed;
};

struct import_ctx {
	struct ptv_store *store;
	const struct ptv_import_m3u_opts *opts;
	struct ptv_import_report *rep;
	struct import_coll *coll;
	struct import_filters filters;
	uint32_t source_id;
	json_t *source; /* the source record being written */
	char location[2048];
	char name[256];
	struct import_old *old;
	size_t n_old;
	struct ptv_strmap by_tvg_id, by_url, by_tvg_name, by_name, taken;
	unsigned next_number;
	struct ptv_buf recbuf; /* encoding scratch */
};

int import_filters_init(struct import_filters *f, const struct ptv_import_m3u_opts *o);
void import_filters_free(struct import_filters *f);
int import_collect(struct import_ctx *x, int (*cb)(const struct ptv_m3u_entry *e, void *ctx));
void import_coll_free(struct import_coll *c);
void import_ctx_reset(struct import_ctx *x);
void import_ctx_free(struct import_ctx *x);
int import_source_record(MDB_txn *txn, struct import_ctx *x);
int import_source_finish(MDB_txn *txn, struct import_ctx *x);
int import_load_old(MDB_txn *txn, struct import_ctx *x);
void import_match(struct import_ctx *x);
int import_assign_ids(MDB_txn *txn, struct import_ctx *x);
