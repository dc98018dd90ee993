/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The ingest child's config: one JSON object read from fd 3 (see plextv/ingest.h for the keys
 * and defaults). Strict on types and ranges (a parent bug must not become a silent default),
 * lenient on unknown keys (an older child must accept a newer parent's config).
 * Error messages name the key, never its value: URLs and headers carry credentials.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "plextv/common.h"
#include "plextv/ingest.h"
#include "ingest_int.h"

/* Schemes a configured URL may start with (nested protocols such as tcp/tls/crypto are only
 * reached through these; a top-level tcp:// could even be told to listen). */
static const char *const url_schemes[] = {
	"http",	  "https", "rtsp",   "rtsps", "rtmp", "rtmps", "rtmpt",
	"rtmpts", "rtmpe", "rtmpte", "udp",   "rtp",  "srt",   "rist",
};

static int fail(char *err, size_t errlen, const char *key, const char *why)
{
	snprintf(err, errlen, "config: \"%s\" %s", key, why);
	return -EINVAL;
}

/* Reads integer @key into @out when present; bounds are inclusive. */
static int get_int(json_t *root, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err,
		   size_t errlen)
{
	json_t *v = json_object_get(root, key);
	json_int_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return fail(err, errlen, key, "must be an integer");
	i = json_integer_value(v);
	if (i < lo || i > hi)
		return fail(err, errlen, key, "is out of range");
	*out = i;
	return 0;
}

static int get_int32(json_t *root, const char *key, int lo, int hi, int *out, char *err,
		     size_t errlen)
{
	int64_t v = *out;
	int ret = get_int(root, key, lo, hi, &v, err, errlen);

	*out = (int)v;
	return ret;
}

static int get_bool(json_t *root, const char *key, bool *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(err, errlen, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

/* A string key; *out stays NULL when absent. */
static int get_str(json_t *root, const char *key, char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, errlen, key, "must be a string");
	*out = ptv_xstrdup(json_string_value(v));
	return 0;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static int parse_urls(struct ing_cfg *cfg, json_t *root, char *err, size_t errlen)
{
	json_t *a = json_object_get(root, "urls"), *v;
	size_t i;

	if (!json_is_array(a) || !json_array_size(a))
		return fail(err, errlen, "urls", "must be a non-empty array of strings");
	if (json_array_size(a) > ING_MAX_URLS)
		return fail(err, errlen, "urls", "has more than 16 entries");
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || !json_string_length(v))
			return fail(err, errlen, "urls", "must hold non-empty strings");
		/* Control characters in a URL would end up in request lines: refuse them. */
		if (strlen(json_string_value(v)) != json_string_length(v) ||
		    has_ctl(json_string_value(v)))
			return fail(err, errlen, "urls", "holds a control character");
		cfg->urls[cfg->n_urls++] = ptv_xstrdup(json_string_value(v));
	}
	return 0;
}

/* A header name is an RFC 9110 token; a value has no CR, LF or NUL (no header injection). */
static bool header_ok(const char *name, const char *value, size_t vlen)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";

	if (!*name)
		return false;
	for (const char *p = name; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || strchr(tchar, *p)))
			return false;
	}
	return strlen(value) == vlen && !strpbrk(value, "\r\n");
}

static int parse_headers(struct ing_cfg *cfg, json_t *root, char *err, size_t errlen)
{
	json_t *h = json_object_get(root, "headers"), *v;
	const char *name;
	size_t len = 0;

	if (!h || json_is_null(h))
		return 0;
	if (!json_is_object(h))
		return fail(err, errlen, "headers", "must be an object of strings");
	json_object_foreach(h, name, v)
	{
		const char *value = json_string_value(v);
		size_t n;

		if (!value || !header_ok(name, value, json_string_length(v)))
			return fail(err, errlen, "headers", "holds an invalid name or value");
		if (!strcasecmp(name, "User-Agent")) {
			free(cfg->user_agent);
			cfg->user_agent = ptv_xstrdup(value);
			continue;
		}
		if (!strcasecmp(name, "Referer")) {
			free(cfg->referer);
			cfg->referer = ptv_xstrdup(value);
			continue;
		}
		n = strlen(name) + strlen(value) + 4;
		cfg->headers = ptv_xrealloc(cfg->headers, len + n + 1);
		snprintf(cfg->headers + len, n + 1, "%s: %s\r\n", name, value);
		len += n;
	}
	return 0;
}

static int parse_kind(struct ing_cfg *cfg, json_t *root, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, "kind");

	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v) && !strcmp(json_string_value(v), "url"))
		cfg->kind = ING_KIND_URL;
	else if (json_is_string(v) && !strcmp(json_string_value(v), "file"))
		cfg->kind = ING_KIND_FILE;
	else
		return fail(err, errlen, "kind", "must be \"url\" or \"file\"");
	cfg->realtime = cfg->kind == ING_KIND_FILE;
	return 0;
}

static int parse_variant(struct ing_cfg *cfg, json_t *root, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, "hls_variant");
	const char *s;
	char *end;
	long long bps;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		cfg->variant = ING_VARIANT_MAX_BPS;
		cfg->variant_max_bps = json_integer_value(v);
		return 0;
	}
	s = json_string_value(v);
	if (s && !strcmp(s, "best")) {
		cfg->variant = ING_VARIANT_BEST;
		return 0;
	}
	if (s && !strcmp(s, "worst")) {
		cfg->variant = ING_VARIANT_WORST;
		return 0;
	}
	errno = 0;
	bps = s ? strtoll(s, &end, 10) : 0;
	if (!s || errno || end == s || *end || bps <= 0)
		return fail(err, errlen, "hls_variant",
			    "must be \"best\", \"worst\" or a bandwidth in bit/s");
	cfg->variant = ING_VARIANT_MAX_BPS;
	cfg->variant_max_bps = bps;
	return 0;
}

static void set_defaults(struct ing_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->kind = ING_KIND_URL;
	/* 1 MB / 1 s instead of FFmpeg's 5 MB / 5 s: enough for PAT/PMT + SPS at 8 Mbit/s and
	 * the difference between a 1 s and a 5 s cold tune (PERFORMANCE-ANCHORS §6). */
	cfg->probesize = 1000000;
	cfg->analyzeduration_us = 1000000;
	cfg->rw_timeout_ms = 5000;
	cfg->stall_timeout_ms = 5000; /* clients give up after 6-10 s (RELIABILITY §3) */
	cfg->video_stall_ms = 5000;
	cfg->max_reconnects = 3;
	cfg->backoff_initial_ms = 500;
	cfg->backoff_max_ms = 8000;
	cfg->variant = ING_VARIANT_BEST;
	cfg->rlimit_as_mb = 1024;
}

static int parse_numbers(struct ing_cfg *cfg, json_t *root, char *err, size_t errlen)
{
	int64_t ppid = 0;
	int ret = 0;

	ret = ret ?: get_int(root, "probesize", 32, 50000000, &cfg->probesize, err, errlen);
	ret = ret
		      ?: get_int(root, "analyzeduration_us", 0, 60000000, &cfg->analyzeduration_us,
				 err, errlen);
	ret = ret
		      ?: get_int32(root, "rw_timeout_ms", 100, 600000, &cfg->rw_timeout_ms, err,
				   errlen);
	ret = ret
		      ?: get_int32(root, "stall_timeout_ms", 500, 600000, &cfg->stall_timeout_ms,
				   err, errlen);
	ret = ret
		      ?: get_int32(root, "video_stall_ms", 500, 600000, &cfg->video_stall_ms, err,
				   errlen);
	ret = ret
		      ?: get_int32(root, "max_reconnects_per_url", 0, 1000, &cfg->max_reconnects,
				   err, errlen);
	ret = ret
		      ?: get_int32(root, "backoff_initial_ms", 0, 600000, &cfg->backoff_initial_ms,
				   err, errlen);
	ret = ret
		      ?: get_int32(root, "backoff_max_ms", 0, 600000, &cfg->backoff_max_ms, err,
				   errlen);
	ret = ret ?: get_int(root, "ppid", 1, INT32_MAX, &ppid, err, errlen);
	cfg->ppid = (long)ppid;
	ret = ret ?: get_int32(root, "rlimit_as_mb", 0, 65536, &cfg->rlimit_as_mb, err, errlen);
	if (!ret && cfg->rlimit_as_mb && cfg->rlimit_as_mb < 256)
		ret = fail(err, errlen, "rlimit_as_mb", "must be 0 or at least 256");
	if (!ret && cfg->backoff_max_ms < cfg->backoff_initial_ms)
		cfg->backoff_max_ms = cfg->backoff_initial_ms;
	return ret;
}

int ing_cfg_parse(struct ing_cfg *cfg, const char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int ret;

	set_defaults(cfg);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		/* jerr.text may quote the input (a URL): give only the position. */
		snprintf(err, errlen, "config: not a JSON object (line %d, column %d)", jerr.line,
			 jerr.column);
		json_decref(root);
		return -EINVAL;
	}
	ret = get_str(root, "channel", &cfg->channel, err, errlen);
	ret = ret ?: parse_kind(cfg, root, err, errlen);
	ret = ret ?: parse_urls(cfg, root, err, errlen);
	ret = ret ?: parse_headers(cfg, root, err, errlen);
	ret = ret ?: get_bool(root, "loop", &cfg->loop, err, errlen);
	ret = ret ?: get_bool(root, "realtime", &cfg->realtime, err, errlen);
	ret = ret ?: parse_numbers(cfg, root, err, errlen);
	ret = ret ?: get_str(root, "protocol_whitelist", &cfg->protocol_whitelist, err, errlen);
	ret = ret ?: parse_variant(cfg, root, err, errlen);
	if (!ret && cfg->channel && has_ctl(cfg->channel))
		ret = fail(err, errlen, "channel", "holds a control character");
	json_decref(root);
	return ret;
}

void ing_cfg_free(struct ing_cfg *cfg)
{
	for (int i = 0; i < cfg->n_urls; i++)
		ptv_freep(&cfg->urls[i]);
	cfg->n_urls = 0;
	ptv_freep(&cfg->channel);
	ptv_freep(&cfg->user_agent);
	ptv_freep(&cfg->referer);
	ptv_freep(&cfg->headers);
	ptv_freep(&cfg->protocol_whitelist);
}

const char *ing_cfg_protocols(const struct ing_cfg *cfg)
{
	if (cfg->protocol_whitelist)
		return cfg->protocol_whitelist;
	return cfg->kind == ING_KIND_FILE ? "file" : PTV_INGEST_URL_PROTOCOLS;
}

/* Is @name (length @n) one of the comma-separated words of @list? */
static bool in_list(const char *list, const char *name, size_t n)
{
	const char *p = list;

	while (*p) {
		size_t w = strcspn(p, ",");

		if (w == n && !strncasecmp(p, name, n))
			return true;
		p += w;
		p += *p == ',';
	}
	return false;
}

int ing_cfg_check_scheme(const struct ing_cfg *cfg, const char *url)
{
	const char *protos = ing_cfg_protocols(cfg);
	size_t n = strcspn(url, ":/?#");
	bool known = false;

	if (cfg->kind == ING_KIND_FILE) {
		/* A path, or file:PATH; libavformat would treat "x:y" as protocol x. */
		if (url[n] != ':')
			return in_list(protos, "file", 4) ? 0 : -EPERM;
		return n == 4 && !strncasecmp(url, "file", 4) && in_list(protos, "file", 4)
			       ? 0
			       : -EPERM;
	}
	if (url[n] != ':' || !n)
		return -EPERM; /* no scheme: libavformat would open it as a file */
	for (size_t i = 0; i < PTV_ARRAY_SIZE(url_schemes); i++)
		known |= strlen(url_schemes[i]) == n && !strncasecmp(url, url_schemes[i], n);
	return known && in_list(protos, url, n) ? 0 : -EPERM;
}

/*
 * FFmpeg's rtsp demuxer takes its transport only as an option; IPTV lists carry it in the URL
 * (?rtsp_transport=udp). The rest of the query and the fragment are kept as they were.
 */
char *ing_url_take_param(const char *url, const char *name, char *val, size_t vlen)
{
	const char *q = strchr(url, '?'), *p;
	size_t nlen = strlen(name);
	char *res, *w;

	val[0] = '\0';
	res = ptv_xstrdup(url);
	if (!q)
		return res;
	w = res + (q - url); /* rebuild the query in place: it can only shrink */
	for (p = q + 1; *p && *p != '#';) {
		size_t n = strcspn(p, "&#");

		if (n > nlen && !strncmp(p, name, nlen) && p[nlen] == '=') {
			snprintf(val, vlen, "%.*s", (int)(n - nlen - 1), p + nlen + 1);
		} else if (n) {
			char sep = w == res + (q - url) ? '?' : '&';

			*w++ = sep;
			memcpy(w, p, n);
			w += n;
		}
		p += n;
		p += *p == '&';
	}
	strcpy(w, p); /* "" or the fragment */
	return res;
}
