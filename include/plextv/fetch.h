/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Blocking fetcher for playlists and guides (libcurl), for worker-pool threads and CLI imports.
 *
 * The body is streamed to a sink in pieces, so the M3U and XMLTV parsers run while it arrives
 * and memory stays constant. Transfer encodings (gzip, deflate, br, zstd as libcurl supports)
 * are undone by libcurl; a body that is itself a gzip file (epg.xml.gz served as
 * application/octet-stream) is recognised by its magic bytes and inflated here, multi-member
 * files included. Both are bounded by @max_bytes of *decoded* output, so a gzip bomb ends with
 * -EFBIG.
 *
 * Only http and https are spoken, on the first request and on redirects. Proxy environment
 * variables are ignored unless a proxy is configured. Local files (a path or file:// URL) are
 * read only with @allow_file, which only the CLI and the config file may set: a URL taken from
 * a remote playlist must never reach the local file system.
 *
 * On failure the sink may already have seen part of the body; the caller throws it away (the
 * importer aborts its transaction). Failures are logged through ptv_log, which redacts
 * credentials in URLs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_FETCH_MAX_REDIRS_DEFAULT	     5
#define PTV_FETCH_MAX_BYTES_DEFAULT	     (256ull << 20)
#define PTV_FETCH_CONNECT_TIMEOUT_MS_DEFAULT 10000u
#define PTV_FETCH_TIMEOUT_MS_DEFAULT	     300000u
#define PTV_FETCH_STALL_TIMEOUT_MS_DEFAULT   60000u

struct ptv_fetch_opts {
	const char *url;	     /* http(s) URL; a path or file:// URL when allow_file */
	bool allow_file;	     /* CLI and config only: never for URLs out of a playlist */
	unsigned connect_timeout_ms; /* 0: PTV_FETCH_CONNECT_TIMEOUT_MS_DEFAULT */
	unsigned timeout_ms;	     /* whole transfer; 0: PTV_FETCH_TIMEOUT_MS_DEFAULT */
	unsigned stall_timeout_ms;   /* abort after this long with no body byte; 0: default */
	unsigned max_redirs;	     /* 0: PTV_FETCH_MAX_REDIRS_DEFAULT */
	bool no_redirects;	     /* a redirect is an error (-ELOOP) */
	uint64_t max_bytes;	     /* decoded body cap; 0: PTV_FETCH_MAX_BYTES_DEFAULT */
	const char *user_agent;	     /* NULL: "PlexTV/<version>" */
	const char *const *headers;  /* extra "Name: value" lines, @n_headers of them */
	size_t n_headers;
	const char *etag;	   /* from a previous result: sends If-None-Match */
	const char *last_modified; /* from a previous result: sends If-Modified-Since */
	const char *proxy;	   /* NULL or "": no proxy, whatever the environment says */
	bool quiet;		   /* failures not logged: the caller reports them (res->error) */
};

struct ptv_fetch_result {
	long status;		/* final HTTP status; 0 for local files and transport errors */
	char *final_url;	/* after redirects (malloc'd; unredacted: redact before logging) */
	char etag[256];		/* "" if none or too long */
	char last_modified[64]; /* "" if none */
	uint64_t bytes;		/* decoded bytes handed to the sink */
	bool not_modified;	/* 304 to a conditional request: the sink saw nothing */
	bool gunzipped;		/* the body was a .gz file and was inflated here */
	char error[256];	/* short reason on failure, credentials redacted */
};

/** Sets @o to the defaults (same as zero-initialising it). */
void ptv_fetch_opts_init(struct ptv_fetch_opts *o);

/**
 * Fetches @o->url and streams the decoded body to @sink, which returns 0 to continue or a
 * negative errno to stop (that value is then returned). @res is filled in either way and
 * must be released with ptv_fetch_result_deinit().
 *
 * Returns 0 (also for a 304 when not_modified is set), or:
 *  -EINVAL           bad options or URL
 *  -EPERM            a local file without allow_file
 *  -EPROTONOSUPPORT  a scheme other than http/https, on the first request or a redirect
 *  -ELOOP            more than max_redirs redirects
 *  -EFBIG            the body (or what it inflates to) is over max_bytes
 *  -ETIMEDOUT        connect, total or stall timeout
 *  -ECONNREFUSED, -EHOSTUNREACH (includes DNS failure), -ECONNRESET
 *  -EACCES           HTTP 401 or 403; -ENOENT HTTP 404 or 410; -EIO other HTTP >= 400,
 *                    a truncated or failed transfer; res->status has the code
 *  -EBADMSG          a corrupt gzip body
 *  -EPROTO           TLS errors and other protocol failures
 *  -ENOMEM, or an errno from opening or reading a local file
 */
int ptv_fetch(const struct ptv_fetch_opts *o, int (*sink)(const char *data, size_t len, void *ctx),
	      void *ctx, struct ptv_fetch_result *res);

/** Frees what @res holds (final_url). Accepts a zeroed or already released result. */
void ptv_fetch_result_deinit(struct ptv_fetch_result *res);
