/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The electronic programme guide: XMLTV sources imported into the store, mapped onto the lineup,
 * and served to Plex as /xmltv.xml (and /xmltv.xml.gz).
 *
 * Import (epg_import.c). A guide source is a record of kind "xmltv" in PTV_DB_SOURCES, so
 * `plextv sources list` shows it next to the playlists. Its body is fetched (libcurl, or a local
 * file for the CLI and the config; gzip transfer and .gz bodies are undone by ptv_fetch) into an
 * unlinked temporary file under DATA_DIR/tmp with the size cap (a plain local file is read in
 * place), then streamed through libxml2's xmlReader (xmlReaderForIO over a 8 KiB read buffer)
 * inside ONE write transaction: a fetch error, a malformed or hostile document, a time-out or
 * a full map aborts it and the previous guide stays served. A file, not the network, feeds the
 * parser (libcurl pushes into a sink, the reader pulls) so the writer lock is held only while
 * parsing, and so that the store's MAP_FULL retry can run the parse again from the start. The
 * previous import's programmes are unlinked in that transaction and deleted after the commit
 * in bounded batches (epg_gc), which halves the time and dirty memory of a re-import.
 * Scheduled refreshes send the last ETag / Last-Modified (a file's mtime) and skip an
 * unchanged document, unless the lineup now wants other guide channels.
 *
 * Hardening: XML_PARSE_NONET and never NOENT, DTDLOAD, DTDATTR, XINCLUDE or HUGE. A document
 * that declares entities in its internal subset, or references any entity other than the five
 * predefined ones and character references, is rejected: XMLTV has no use for them, and that
 * rules out billion-laughs, quadratic blow-up and XXE in one check (libxml2 2.9.14 already
 * refuses entity loops and never reads external entities without NOENT/DTDLOAD; we do not rely
 * on it alone). Element depth is capped at PTV_EPG_MAX_DEPTH (libxml2's own cap is 256), text
 * fields at PTV_EPG_MAX_FIELD bytes (longer ones are cut at a UTF-8 boundary and counted), and
 * the whole import (fetch + parse + store) at a wall-time budget. Two real-world faults are
 * repaired, and counted, before libxml2 sees them: junk before the document (Xtream panels)
 * and a bare '&' ("A&E", raw query strings in icon URLs), read as "&amp;".
 *
 * What is kept per programme: every child element of the XMLTV DTD (title, sub-title, desc,
 * credits with roles, date, category, keyword, language, orig-language, length, icon, url,
 * country, episode-num of any system, video, audio, previously-shown, premiere, last-chance,
 * new, subtitles, rating, star-rating, review, image) with their attributes and `lang`.
 * Non-DTD elements (<live/>, x-*) are ignored: the output must stay valid against xmltv.dtd
 * 1.2.1, which has no <live/>. Empty elements are dropped (empty_element), since
 * tv_validate_file rejects an empty <desc>.
 *
 * Times: "YYYYMMDDhhmmss +hhmm" and any leading prefix of the digits (missing fields are 0 or
 * 1), offsets as +hhmm, +hh:mm or +hh, "Z"; no zone means UTC (the XMLTV rule). Common
 * abbreviations (BST, CET, CEST, EST, PDT, …) are mapped; an unknown one is taken as UTC and
 * counted (unknown_timezone). Everything is stored as UTC instants; the source's shift
 * (--shift-hours, default [guide] guide_shift_hours) is added at import, a channel's tvg-shift
 * at output.
 *
 * Stop times: a missing stop becomes the start of the channel's next programme when that is
 * at most 24 h later, else start + <length>, else start + 1 hour (stop_guessed, not an error).
 * Overlapping programmes on one channel have the earlier one's stop cut to the later one's
 * start (counted: overlap). Two programmes with the same channel and start: the first wins
 * (counted: duplicate).
 *
 * Mapping (epg_map.c): a lineup channel takes, in this order, its manual override
 * (PTV_DB_GUIDE_MAP, `plextv guide map`), the guide channel whose id equals its tvg-id, else one
 * whose display-name equals its tvg-name, else its name. Comparisons are case-insensitive (ASCII)
 * with surrounding blanks trimmed and inner runs of blanks folded; among several sources the
 * one added first wins. Programmes of guide channels no lineup channel can take are dropped at
 * import (counted: unmapped), as are those that ended before the retention window (past).
 *
 * Storage (see epg_int.h for the key layout): programmes keyed by guide channel key (u32 BE) +
 * start (u64 BE), so a channel's time range is one cursor walk; values are a compact binary
 * record (a 1,000 x 1,000 import spends its time in libxml2, not in encoding).
 *
 * Output (epg_output.c): rendered on the worker pool from an LMDB read transaction in slices
 * of about 1 MiB (never the whole document in memory, never on a reactor) and streamed with
 * chunked encoding. Channel ids are GuideNumbers; display-names are the name, then the number.
 * A channel with no programme in the window gets a dummy guide (if enabled): blocks of
 * guide_dummy_block_minutes titled with the channel name, from the current block for
 * guide_dummy_hours.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "plextv/buf.h"
#include "plextv/config.h"

struct ptv_store;
struct ptv_pool;
struct ptv_router;
struct ptv_lineup;
struct ptv_lineup_svc;

#define PTV_EPG_MAX_DEPTH	  64
#define PTV_EPG_MAX_FIELD	  (16u << 10) /* bytes of one text field */
#define PTV_EPG_MAX_FIELDS	  128	      /* child elements kept per programme */
#define PTV_EPG_MAX_NAMES	  8	      /* display-names kept per guide channel */
#define PTV_EPG_MAX_CHANNELS	  200000      /* distinct guide channel ids per document */
#define PTV_EPG_DEFAULT_LENGTH_S  3600
#define PTV_EPG_MAX_GAP_S	  (24 * 3600) /* a missing stop takes the next start within this */
#define PTV_EPG_DEFAULT_REFRESH_S 43200

/** Per-entry problems, counted by reason (plextv_guide_entry_errors_total{reason}). */
enum ptv_epg_err {
	PTV_EPG_ERR_BAD_START = 0, /* unparsable start: programme dropped */
	PTV_EPG_ERR_BAD_STOP,	   /* unparsable stop, or not after start: treated as missing */
	PTV_EPG_ERR_UNKNOWN_TZ,	   /* zone abbreviation we do not know: taken as UTC */
	PTV_EPG_ERR_NO_CHANNEL,	   /* channel without id / programme without channel: dropped */
	PTV_EPG_ERR_NO_TITLE,	   /* kept; the output titles it with the channel name */
	PTV_EPG_ERR_EMPTY,	   /* an empty element (<desc/>, <category></category>): dropped */
	PTV_EPG_ERR_TOO_LONG,	   /* text over PTV_EPG_MAX_FIELD: cut */
	PTV_EPG_ERR_TOO_MANY,	   /* fields or names over the caps: dropped */
	PTV_EPG_ERR_BAD_VALUE,	   /* malformed attribute or value (length units, …): dropped */
	PTV_EPG_ERR_BAD_EPISODE,   /* xmltv_ns that does not parse: kept as onscreen */
	PTV_EPG_ERR_DUPLICATE,	   /* same channel and start as an earlier programme: dropped */
	PTV_EPG_ERR_OVERLAP,	   /* stop cut to the next programme's start */
	PTV_EPG_ERR_DUP_CHANNEL,   /* a second <channel> with the same id: ignored */
	PTV_EPG_ERR_LEADING_GARBAGE, /* bytes before the document (Xtream panels): skipped */
	PTV_EPG_ERR_BARE_AMPERSAND,  /* '&' not starting a reference ("A&E"): read as "&amp;" */
	PTV_EPG_ERR_COUNT,
};

const char *ptv_epg_error_name(enum ptv_epg_err e);

/** Settings from the [guide] section, shared by import and output. */
struct ptv_epg_opts {
	const char *data_dir; /* DATA_DIR: temporary files go to DATA_DIR/tmp */
	const char *user_agent;
	uint64_t max_bytes;   /* decoded document size cap */
	unsigned timeout_s;   /* wall time for one import: fetch + parse + store */
	unsigned retention_s; /* programmes that ended longer ago are dropped / not served */
	bool dummy;	      /* dummy guide for channels without programmes */
	unsigned dummy_block_s;
	unsigned dummy_span_s;	/* how far ahead the dummy guide reaches */
	double default_shift_h; /* a new source's shift unless --shift-hours */
};

/**
 * Fills @o from @cfg (strings point into @cfg). Returns 0 or -PTV_ERR_CONFIG when
 * guide_shift_hours is not a number of hours in -24..24 (@err says so).
 */
int ptv_epg_opts_from_config(struct ptv_epg_opts *o, const struct ptv_config *cfg, char *err,
			     size_t errlen);

struct ptv_epg_import_opts {
	const char *name;     /* source name; NULL: keep the stored one or derive from location */
	const char *location; /* file path or http(s) URL */
	bool allow_file;      /* local paths allowed (CLI and config, not remote input) */
	bool has_shift;	      /* shift_h given (else the stored value or the default) */
	double shift_h;
	unsigned refresh_s;	   /* 0: keep the stored value or 12 h */
	const char *etag;	   /* conditional refresh: validators of the last import */
	const char *last_modified; /* (NULL: unconditional) */
};

struct ptv_epg_report {
	uint32_t source_id;
	uint64_t bytes;		 /* decoded document size */
	uint64_t channels;	 /* <channel> elements and channel ids seen */
	uint64_t channels_kept;	 /* guide channels some lineup channel can take */
	uint64_t programmes_in;	 /* <programme> elements */
	uint64_t programmes;	 /* stored */
	uint64_t unmapped, past; /* dropped: channel not in the lineup, ended before retention */
	uint64_t stop_guessed;
	uint64_t errors[PTV_EPG_ERR_COUNT];
	bool not_modified; /* conditional refresh: the document did not change, nothing done */
	double seconds;
	char error[256];
};

/**
 * Adds or refreshes the guide source named by @io (found by name, else by location). One write
 * transaction: on any error the previous guide is kept. Returns 0 or a negative errno:
 * -PTV_ERR_PARSE (not XMLTV, malformed, entities), -PTV_ERR_LIMIT (depth, channel count, map
 * full), -EFBIG (size cap), -ETIMEDOUT (wall time), fetch errors (see fetch.h).
 */
int ptv_epg_import(struct ptv_store *s, const struct ptv_epg_opts *o,
		   const struct ptv_epg_import_opts *io, struct ptv_epg_report *rep);

/** Re-imports guide source @id with its stored settings; -ENOENT if it is not a guide source. */
int ptv_epg_refresh(struct ptv_store *s, const struct ptv_epg_opts *o, uint32_t id,
		    struct ptv_epg_report *rep);

/** True when source @id is a guide source (kind "xmltv"). */
bool ptv_epg_is_guide_source(struct ptv_store *s, uint32_t id);

/** Drops programmes that ended before now - retention, in every source. Returns how many. */
int64_t ptv_epg_prune(struct ptv_store *s, const struct ptv_epg_opts *o, int64_t now);

/** One line for CLI output and logs. */
void ptv_epg_report_format(const struct ptv_epg_report *r, char *buf, size_t len);

/**
 * Manual mapping: lineup channel @guide_number takes guide channel @guide_channel_id (an XMLTV
 * channel id, as in the source); "" means "no guide" (the dummy guide); NULL removes the
 * override. Returns 0, -ENOENT (no such GuideNumber) or a store error.
 */
int ptv_epg_map_set(struct ptv_store *s, const char *guide_number, const char *guide_channel_id);

/** `plextv guide list`: each lineup channel, how its guide was found, programmes stored. */
int ptv_epg_map_print(struct ptv_store *s, FILE *out, bool json);

/* ---- output ---- */

/** A resumable renderer of the XMLTV document (also used by tests and benchmarks). */
struct ptv_epg_render;

/**
 * Starts a document over the enabled channels of @lineup (a reference is taken) at wall time
 * @now. @gzip: the output is a gzip stream. Returns 0 or -ENOMEM.
 */
int ptv_epg_render_new(struct ptv_store *s, struct ptv_lineup *lineup, const struct ptv_epg_opts *o,
		       int64_t now, bool gzip, struct ptv_epg_render **out);
/**
 * Appends about @budget bytes of output to @out (at programme boundaries), each call in its own
 * read transaction. Returns 1 when the document is complete, 0 when there is more, or a
 * negative errno.
 */
int ptv_epg_render_step(struct ptv_epg_render *r, struct ptv_buf *out, size_t budget);
void ptv_epg_render_free(struct ptv_epg_render *r);

/** The guide service inside `plextv serve`: routes, scheduled refreshes, pruning, metrics. */
struct ptv_epg_svc;

int ptv_epg_svc_new(const struct ptv_config *cfg, struct ptv_store *store, struct ptv_pool *pool,
		    struct ptv_epg_svc **out);
/** Call after the pool is freed (jobs hold the service). NULL is fine. */
void ptv_epg_svc_free(struct ptv_epg_svc *svc);
/** GET /xmltv.xml, /xmltv.xml.gz (and /epg.xml, the other common spelling). */
int ptv_epg_routes_register(struct ptv_router *rt, struct ptv_epg_svc *svc);
/** SIGHUP: new [guide] settings for later requests and refreshes. */
void ptv_epg_svc_reconfigure(struct ptv_epg_svc *svc, const struct ptv_config *cfg);
/** About once a second from the main thread: starts due refreshes and pruning on the pool. */
void ptv_epg_svc_tick(struct ptv_epg_svc *svc);
