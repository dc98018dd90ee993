/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Streaming parser for extended M3U playlists as IPTV providers write them (PROTOCOLS.md §6).
 *
 * Feed it bytes in any chunking; it calls back once per complete entry. Memory is bounded by
 * the longest line (capped: a longer line is skipped and counted), never by the file size, and
 * the time is linear in the input. Problems with one entry are counted by reason and never stop
 * the parse.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_M3U_MAX_LINE    (64u * 1024)
#define PTV_M3U_MAX_HEADERS 8

/* Per-entry problems (counted in struct ptv_m3u_stats::errors). */
enum ptv_m3u_error {
	/* #EXTINF not followed by a URL */
	PTV_M3U_ERR_NO_URL = 0,
	/* URL without #EXTINF (still reported as an entry, name = URL) */
	PTV_M3U_ERR_NO_EXTINF,
	/* line over PTV_M3U_MAX_LINE: skipped (with the entry it belonged to) */
	PTV_M3U_ERR_LINE_TOO_LONG,
	/* malformed attribute (unterminated quote…): rest of line is name; also a header refused
	 * (bad name, control characters after %-decoding, more than PTV_M3U_MAX_HEADERS) */
	PTV_M3U_ERR_BAD_ATTR,
	/* URL with control characters or an unusable scheme (javascript:, bad acestream id): the
	 * entry is dropped */
	PTV_M3U_ERR_BAD_URL,
	/* invalid UTF-8 (kept, bytes replaced with U+FFFD; %XX in URLs), counted once per line */
	PTV_M3U_ERR_ENCODING,
	/* an HLS playlist (#EXT-X-TARGETDURATION, -MEDIA-SEQUENCE, -PLAYLIST-TYPE, -STREAM-INF),
	 * not a channel list: counted once, nothing after it is reported */
	PTV_M3U_ERR_HLS_MEDIA,
	PTV_M3U_ERR_COUNT,
};

const char *ptv_m3u_error_name(enum ptv_m3u_error e); /* "no_url", … (metric label values) */

/** A request header that must accompany the stream URL (from |Header= suffixes, #EXTVLCOPT). */
struct ptv_m3u_header {
	const char *name;
	const char *value;
};

/**
 * One entry. Every string is NUL-terminated UTF-8, "" when absent, and valid only during the
 * callback. Attribute keys are matched case-insensitively with '_' equal to '-'. No string
 * contains CR, LF or another control character (they become spaces), but values may contain
 * '"', '<', '&': escape them when writing M3U, XML or HTML.
 */
struct ptv_m3u_entry {
	/* display name after the first comma outside quotes, trimmed; tvg-name if that is empty */
	const char *name;
	/* without a Kodi |suffix; "acestream://<id>" for ace/bare-hex forms. May be relative
	 * ("stream/x.m3u8") when it followed an #EXTINF: resolve it against the playlist URL or
	 * drop it. Any scheme:// is passed through: the importer applies the URL policy. */
	const char *url;
	const char *tvg_id;
	const char *tvg_name;
	const char *tvg_logo;
	const char *tvg_chno; /* tvg-chno, else channel-number, else channel-id */
	const char *group;    /* group-title, else #EXTGRP */
	double tvg_shift;     /* hours; the header's default when the entry has none */
	double duration;      /* -1 for live */
	bool radio;
	bool drm;	     /* #KODIPROP license_type/license_key seen: not playable by us */
	bool acestream;	     /* url is acestream://<40 hex> */
	const char *catchup; /* catchup attribute, else the header's, "" if none */
	struct ptv_m3u_header headers[PTV_M3U_MAX_HEADERS];
	unsigned n_headers;
	uint64_t line; /* 1-based line of the #EXTINF (or of the URL) */
};

struct ptv_m3u_stats {
	uint64_t entries;
	uint64_t lines;
	uint64_t errors[PTV_M3U_ERR_COUNT];
	bool saw_header;    /* #EXTM3U present */
	char url_tvg[2048]; /* url-tvg / x-tvg-url from the header (comma-separated list) */
	double header_shift;
	uint64_t junk_lines; /* non-'#' lines that are not URLs ("====sport===="): skipped */
	size_t mem_peak;     /* most bytes the parser held at once (line buffer + entry arena) */
};

struct ptv_m3u_parser;

/**
 * @cb returns 0 to continue or a negative errno to abort the parse (returned by feed/finish).
 */
int ptv_m3u_parser_new(int (*cb)(const struct ptv_m3u_entry *e, void *ctx), void *ctx,
		       struct ptv_m3u_parser **out);
void ptv_m3u_parser_free(struct ptv_m3u_parser *p);
/** Feeds @len bytes. Returns 0, or the callback's error. */
int ptv_m3u_parser_feed(struct ptv_m3u_parser *p, const char *data, size_t len);
/** Flushes the last line/entry. Returns 0, or the callback's error. */
int ptv_m3u_parser_finish(struct ptv_m3u_parser *p);
const struct ptv_m3u_stats *ptv_m3u_parser_stats(const struct ptv_m3u_parser *p);

/** Convenience: parses a whole file. */
int ptv_m3u_parse_file(const char *path, int (*cb)(const struct ptv_m3u_entry *e, void *ctx),
		       void *ctx, struct ptv_m3u_stats *stats);

/** True for a 40-hex-digit Acestream content id. */
bool ptv_m3u_is_ace_id(const char *s, size_t len);
