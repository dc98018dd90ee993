/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Internals of the guide module: the XMLTV reader (epg_xml.c), programme records and times
 * (epg_rec.c), the importer (epg_import.c), mapping (epg_map.c), output (epg_output.c).
 *
 * Store layout.
 *
 *   PTV_DB_GUIDE_CHANNELS
 *     'k' u32be gkey                          -> guide channel record (below)
 *     's' u32be source u32be gkey             -> ""  (the source's channels, for refreshes)
 *     'i' key(id) 0 u32be source u32be gkey   -> ""  (lookup by id; key() = folded text)
 *     'n' key(name) 0 u32be source u32be gkey -> ""  (lookup by display-name)
 *   PTV_DB_PROGRAMMES
 *     u32be gkey u64be start                  -> programme record (below)
 *   PTV_DB_GUIDE_MAP
 *     u32be lineup channel id                 -> XMLTV channel id ("" = no guide)
 *
 * gkey is a store-wide sequence ("seq:guide_channel"), so a new import's keys sort after every
 * existing one and its programmes can be appended. Index keys sort by source id, so the source
 * added first wins a tie.
 *
 * Guide channel record: u8 version, u8 n_names, u16 reserved, u32 source, u32 programmes,
 * then NUL-terminated strings: id, icon, names....
 *
 * Programme record: u8 version, u8 flags (EPG_P_*), u16 n_fields, u32 duration (seconds),
 * then fields sorted in DTD order: u8 type (enum epg_field), u8 sub, u16 len, len bytes of
 * NUL-terminated strings (the field's attributes and text, in the order documented at
 * enum epg_field).
 */
#pragma once

#include <libxml/xmlreader.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "plextv/buf.h"
#include "plextv/epg.h"

#define EPG_REC_VERSION	 1
#define EPG_CHAN_VERSION 1
#define EPG_PKEY_LEN	 12  /* u32 gkey + u64 start */
#define EPG_KEY_MAX	 400 /* folded id/name bytes in an index key (LMDB keys stop at 511) */

/* Child elements of <programme>, numbered in the order the DTD requires them. */
enum epg_field {
	EPG_F_TITLE = 1,	/* lang, text */
	EPG_F_SUB_TITLE,	/* lang, text */
	EPG_F_DESC,		/* lang, text */
	EPG_F_CREDIT,		/* sub = enum epg_credit; name, role, guest */
	EPG_F_DATE,		/* text */
	EPG_F_CATEGORY,		/* lang, text */
	EPG_F_KEYWORD,		/* lang, text */
	EPG_F_LANGUAGE,		/* lang, text */
	EPG_F_ORIG_LANGUAGE,	/* lang, text */
	EPG_F_LENGTH,		/* units, value */
	EPG_F_ICON,		/* src, width, height */
	EPG_F_URL,		/* system, text */
	EPG_F_COUNTRY,		/* lang, text */
	EPG_F_EPISODE_NUM,	/* system, text */
	EPG_F_VIDEO,		/* present, colour, aspect, quality */
	EPG_F_AUDIO,		/* present, stereo */
	EPG_F_PREVIOUSLY_SHOWN, /* start, channel */
	EPG_F_PREMIERE,		/* lang, text */
	EPG_F_LAST_CHANCE,	/* lang, text */
	EPG_F_NEW,		/* (nothing) */
	EPG_F_SUBTITLES,	/* type, lang, language text */
	EPG_F_RATING,		/* system, value, icon src... */
	EPG_F_STAR_RATING,	/* system, value, icon src... */
	EPG_F_REVIEW,		/* type, source, reviewer, lang, text */
	EPG_F_IMAGE,		/* type, size, orient, system, text */
	EPG_F_COUNT,
};

/* <credits> children in DTD order. */
enum epg_credit {
	EPG_C_DIRECTOR = 0,
	EPG_C_ACTOR,
	EPG_C_WRITER,
	EPG_C_ADAPTER,
	EPG_C_PRODUCER,
	EPG_C_COMPOSER,
	EPG_C_EDITOR,
	EPG_C_PRESENTER,
	EPG_C_COMMENTATOR,
	EPG_C_GUEST,
	EPG_C_COUNT,
};

extern const char *const epg_field_names[EPG_F_COUNT];
extern const char *const epg_credit_names[EPG_C_COUNT];

enum epg_prog_flag {
	EPG_P_STOP_GUESSED = 1u << 0, /* stop not from the document */
	EPG_P_STOP_MISSING = 1u << 1, /* import-time only: to be guessed in the fix-up pass */
};

/* One parsed field: strings live in the owner's data buffer at off..off+len. */
struct epg_pfield {
	uint8_t type, sub;
	uint32_t off, len;
};

/* A parsed programme, reused for every <programme> of a document. */
struct epg_prog {
	const char *channel;
	int64_t start, stop; /* UTC unix seconds; stop < 0: none */
	int64_t length_s;    /* from <length>, -1: none */
	uint8_t flags;
	unsigned n_fields;
	bool has_title;
	struct epg_pfield fields[PTV_EPG_MAX_FIELDS];
	struct ptv_buf data;
};

/* A parsed <channel>; strings live in @data. */
struct epg_chan {
	const char *id;
	const char *icon;
	const char *names[PTV_EPG_MAX_NAMES];
	unsigned n_names;
	struct ptv_buf data;
};

struct epg_parse_ops {
	int (*channel)(struct epg_chan *c, void *ctx);
	int (*programme)(struct epg_prog *p, void *ctx);
};

struct epg_parse_stats {
	uint64_t bytes;
	uint64_t errors[PTV_EPG_ERR_COUNT];
	char error[200]; /* first fatal problem, for the report */
};

/* Reads the document; @read returns bytes (0 at the end) or a negative errno. */
struct epg_input {
	int (*read)(void *ctx, char *buf, int len);
	void *ctx;
};

/**
 * Parses an XMLTV document from @in, calling @ops for each channel and programme; a callback's
 * negative return stops the parse and is returned. @deadline_ns (monotonic, 0: none) bounds
 * the wall time. Returns 0, -PTV_ERR_PARSE, -PTV_ERR_LIMIT, -ETIMEDOUT, -ENOMEM or the
 * callback's / reader's error.
 */
int epg_parse(const struct epg_input *in, const struct epg_parse_ops *ops, void *ctx,
	      uint64_t deadline_ns, struct epg_parse_stats *st);
/** The same over a buffer in memory (tests, fuzzing). */
int epg_parse_mem(const char *data, size_t len, const struct epg_parse_ops *ops, void *ctx,
		  struct epg_parse_stats *st);

/* ---- times and records (epg_rec.c) ---- */

/** Parses an XMLTV time into UTC unix seconds. Returns 0, 1 (unknown zone: UTC), -EINVAL. */
int epg_parse_time(const char *s, int64_t *out);
/** "YYYYMMDDhhmmss +0000" (20 bytes + NUL into @buf). */
void epg_format_time(int64_t t, char buf[21]);

/** Normalised <date>: "YYYYMMDD", "YYYYMM" or "YYYY" from common spellings; false if none. */
bool epg_norm_date(const char *in, char *out, size_t len);
/** True when @s is a valid xmltv_ns episode number ("1.2.0/1", " . 3 . "). */
bool epg_xmltv_ns_ok(const char *s);

/** Appends the record of @p (fields sorted into DTD order) to @out. */
int epg_rec_encode(struct epg_prog *p, uint32_t duration, struct ptv_buf *out);

struct epg_rec_field {
	uint8_t type, sub;
	const char *p; /* NUL-separated strings */
	uint16_t len;
};

struct epg_rec {
	uint8_t flags;
	uint16_t n_fields;
	uint32_t duration;
	const uint8_t *fields, *end;
};

/** Checks the header of @data; fields are read with epg_rec_next(). Returns 0 or -PTV_ERR_PARSE. */
int epg_rec_open(const void *data, size_t len, struct epg_rec *r);
/** Next field, or false at the end (or on a malformed field). */
bool epg_rec_next(struct epg_rec *r, struct epg_rec_field *f);
/** The @i-th NUL-terminated string of @f ("" past the end). */
const char *epg_field_str(const struct epg_rec_field *f, unsigned i);

/** Updates the duration of an encoded record in place. */
void epg_rec_set_duration(void *data, uint32_t duration, uint8_t flags);

/* Keys. */
void epg_pkey(uint8_t key[EPG_PKEY_LEN], uint32_t gkey, uint64_t start);
uint32_t epg_pkey_gkey(const void *key);
uint64_t epg_pkey_start(const void *key);
static inline uint32_t epg_be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline void epg_put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

/**
 * Folds @s for matching: ASCII lower case, blanks trimmed, inner runs of blanks made one
 * space, cut at EPG_KEY_MAX bytes. Returns the length written to @out (NUL-terminated).
 */
size_t epg_fold(const char *s, char *out, size_t len);

/* ---- guide channel records (epg_map.c) ---- */

struct epg_gchan {
	uint32_t gkey, source, programmes;
	const char *id, *icon;
	const char *names[PTV_EPG_MAX_NAMES];
	unsigned n_names;
};

int epg_gchan_encode(const struct epg_gchan *c, struct ptv_buf *out);
int epg_gchan_decode(const void *data, size_t len, struct epg_gchan *c);
/** Reads the record of @gkey (strings point into the transaction's pages). -ENOENT if none. */
int epg_gchan_get(MDB_txn *txn, struct ptv_store *s, uint32_t gkey, struct epg_gchan *c);

/** Builds an index key: @kind ('i' or 'n'), folded @text, 0, source, gkey. Returns its length. */
size_t epg_index_key(uint8_t *key, char kind, const char *text, uint32_t source, uint32_t gkey);

enum epg_how {
	EPG_HOW_NONE = 0, /* no guide channel */
	EPG_HOW_MANUAL,	  /* PTV_DB_GUIDE_MAP */
	EPG_HOW_OFF,	  /* PTV_DB_GUIDE_MAP says "no guide" */
	EPG_HOW_TVG_ID,
	EPG_HOW_TVG_NAME,
	EPG_HOW_NAME,
};

extern const char *const epg_how_names[];

/**
 * Finds the guide channel of lineup channel (@id, @tvg_id, @tvg_name, @name). Returns 0 with
 * *@gkey set, or -ENOENT (with *@how telling whether an override turned the guide off).
 */
int epg_resolve(MDB_txn *txn, struct ptv_store *s, uint32_t id, const char *tvg_id,
		const char *tvg_name, const char *name, uint32_t *gkey, enum epg_how *how);

/**
 * Deletes programmes whose guide channel record is gone (a previous import's), in write
 * transactions of at most EPG_GC_BATCH deletions. Returns how many, or a negative errno.
 */
int64_t epg_gc(struct ptv_store *s);
#define EPG_GC_BATCH 100000

/** Digest of the folded tvg-ids, names and overrides the lineup wants (order-independent). */
int epg_want_hash(struct ptv_store *s, uint64_t *out);

/* ---- metrics (epg_source.c) ---- */

/** Registers the guide metric families (idempotent) and records one import's outcome. */
void epg_metrics_import(const struct ptv_epg_report *r, int ret);
/** Sets the gauges from the store: programmes and channels stored, last success. */
void epg_metrics_store(struct ptv_store *s);
