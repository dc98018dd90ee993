/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Configuration layers (see config.h). One table describes every key: where it lives in the
 * INI file, its flag and environment names, its type and limits, where it is stored in
 * struct ptv_config and its default. Defaults, the INI handler, the environment scan, flag
 * overrides, `config show` and the CLI option list are all driven by it, so adding a key is
 * one table row plus one struct field.
 *
 * Every layer goes through the same setter (defaults too, as text), so a value is validated
 * the same way wherever it came from.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <ini.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "plextv/build-config.h"
#include "plextv/config.h"
#include "plextv/redact.h"

/* A config file or a *_FILE secret larger than this is a mistake, not a config. */
#define CONFIG_FILE_MAX (1u << 20)
#define ERR_MAX		512

enum key_type {
	KT_STRING, /* free text without control characters */
	KT_PATH,   /* non-empty KT_STRING */
	KT_UINT,   /* decimal, within [min, max] */
	KT_LISTEN, /* ptv_config_parse_listen() */
	KT_URL,	   /* empty, or http(s)://host... */
	KT_LEVEL,  /* enum ptv_log_level */
	KT_FORMAT, /* enum ptv_log_format */
};

enum key_source {
	SRC_DEFAULT = 0,
	SRC_FILE,
	SRC_ENV,
	SRC_FLAG,
};

static const char *const source_names[] = {"default", "file", "env", "flag"};

struct key {
	struct ptv_config_key_desc d;
	enum key_type type;
	size_t off;  /* offset of the field in struct ptv_config */
	size_t size; /* size of the field (strings: including the NUL) */
	unsigned min, max;
	const char *def;     /* default, as text */
	bool url;	     /* may carry credentials: shown through ptv_redact_url() */
	bool secret;	     /* shown as *** */
	const char *choices; /* KT_STRING limited to these words, "|"-separated ("on|off") */
};

/* Designated-initializer fragments for the table rows. */
/* clang-format off */
#define FIELD(f) \
	.off = offsetof(struct ptv_config, f), .size = sizeof(((struct ptv_config *)0)->f)
#define DESC(sec, name, flag, env, metavar, help) \
	.d = { sec, name, flag, env, metavar, help }
/* clang-format on */

static const struct key keys[] = {
	/* [server] */
	{DESC("server", "listen", "listen", "PLEXTV_LISTEN", "ADDR:PORT",
	      "HTTP listen address (\":PORT\" = all IPv4 addresses)"),
	 .type = KT_LISTEN, FIELD(listen), .def = "0.0.0.0:8080"},
	{DESC("server", "data_dir", "data-dir", "PLEXTV_DATA_DIR", "DIR",
	      "state directory; DIR/plextv.conf is read when present"),
	 .type = KT_PATH, FIELD(data_dir), .def = "./data"},
	{DESC("server", "base_url", "base-url", "PLEXTV_BASE_URL", "URL",
	      "URL advertised to clients (default: derived from a LAN address)"),
	 .type = KT_URL, FIELD(base_url), .def = "", .url = true},
	{DESC("server", "workers", "workers", "PLEXTV_WORKERS", "N",
	      "reactor threads, 0 = one per online CPU"),
	 .type = KT_UINT, FIELD(workers), .min = 0, .max = 256, .def = "0"},
	{DESC("server", "pool_threads", "pool-threads", "PLEXTV_POOL_THREADS", "N",
	      "threads for blocking work"),
	 .type = KT_UINT, FIELD(pool_threads), .min = 1, .max = 64, .def = "2"},
	{DESC("server", "max_connections", "max-connections", "PLEXTV_MAX_CONNECTIONS", "N",
	      "open client connections at most"),
	 .type = KT_UINT, FIELD(max_connections), .min = 1, .max = 1000000, .def = "10000"},
	{DESC("server", "shutdown_timeout_ms", "shutdown-timeout-ms", "PLEXTV_SHUTDOWN_TIMEOUT_MS",
	      "MS", "grace period for in-flight responses on SIGTERM"),
	 .type = KT_UINT, FIELD(shutdown_timeout_ms), .min = 0, .max = 3600000, .def = "5000"},
	{DESC("server", "demo_dir", "demo-dir", "PLEXTV_DEMO_DIR", "DIR",
	      "sample streams seeded as the demo lineup into an empty store (\"\" = none)"),
	 .type = KT_STRING, FIELD(demo_dir), .def = PTV_DEMO_DIR},
	/* [http] */
	{DESC("http", "header_max_bytes", "header-max-bytes", "PLEXTV_HEADER_MAX_BYTES", "N",
	      "largest request head"),
	 .type = KT_UINT, FIELD(header_max_bytes), .min = 1024, .max = 1048576, .def = "16384"},
	{DESC("http", "header_max_count", "header-max-count", "PLEXTV_HEADER_MAX_COUNT", "N",
	      "most header fields in a request"),
	 .type = KT_UINT, FIELD(header_max_count), .min = 1, .max = 10000, .def = "100"},
	{DESC("http", "url_max_bytes", "url-max-bytes", "PLEXTV_URL_MAX_BYTES", "N",
	      "longest request target"),
	 .type = KT_UINT, FIELD(url_max_bytes), .min = 64, .max = 1048576, .def = "8192"},
	{DESC("http", "body_max_bytes", "body-max-bytes", "PLEXTV_BODY_MAX_BYTES", "N",
	      "largest request body"),
	 .type = KT_UINT, FIELD(body_max_bytes), .min = 0, .max = 1u << 30, .def = "1048576"},
	{DESC("http", "header_timeout_ms", "header-timeout-ms", "PLEXTV_HEADER_TIMEOUT_MS", "MS",
	      "time for a whole request head to arrive"),
	 .type = KT_UINT, FIELD(header_timeout_ms), .min = 100, .max = 3600000, .def = "10000"},
	{DESC("http", "idle_timeout_ms", "idle-timeout-ms", "PLEXTV_IDLE_TIMEOUT_MS", "MS",
	      "keep-alive connection without a request"),
	 .type = KT_UINT, FIELD(idle_timeout_ms), .min = 100, .max = 86400000, .def = "60000"},
	{DESC("http", "write_timeout_ms", "write-timeout-ms", "PLEXTV_WRITE_TIMEOUT_MS", "MS",
	      "longest wait between two successful writes to a client"),
	 .type = KT_UINT, FIELD(write_timeout_ms), .min = 100, .max = 3600000, .def = "30000"},
	/* [log] */
	{DESC("log", "log_level", "log-level", "PLEXTV_LOG_LEVEL", "LEVEL",
	      "debug, info, warn or error"),
	 .type = KT_LEVEL, FIELD(log_level), .def = "info"},
	{DESC("log", "log_format", "log-format", "PLEXTV_LOG_FORMAT", "FORMAT", "text or json"),
	 .type = KT_FORMAT, FIELD(log_format), .def = "text"},
	/* [tuner] */
	{DESC("tuner", "tuners", "tuners", "PLEXTV_TUNERS", "N",
	      "tuner count advertised to Plex (concurrent channels)"),
	 .type = KT_UINT, FIELD(tuners), .min = 1, .max = 1024, .def = "4"},
	{DESC("tuner", "friendly_name", "friendly-name", "PLEXTV_FRIENDLY_NAME", "NAME",
	      "device name shown by Plex (virtual devices get \" 2\", \" 3\"…)"),
	 .type = KT_STRING, FIELD(friendly_name), .def = "PlexTV"},
	{DESC("tuner", "device_channels", "device-channels", "PLEXTV_DEVICE_CHANNELS", "N",
	      "channels per virtual device; longer lineups are split (Plex caps near 480)"),
	 .type = KT_UINT, FIELD(device_channels), .min = 1, .max = 100000, .def = "479"},
	/* [sources] */
	{DESC("sources", "user_agent", "user-agent", "PLEXTV_USER_AGENT", "STRING",
	      "User-Agent sent to providers"),
	 .type = KT_STRING, FIELD(user_agent), .def = "PlexTV/" PTV_VERSION},
	{DESC("sources", "acestream_engine", "acestream-engine", "PLEXTV_ACESTREAM_ENGINE", "URL",
	      "Acestream engine HTTP API"),
	 .type = KT_URL, FIELD(acestream_engine), .def = "http://127.0.0.1:6878", .url = true},
	/* [relay] */
	{DESC("relay", "send_mode", "send-mode", "PLEXTV_SEND_MODE", "MODE",
	      "how TS reaches viewers: send, zc (SEND_ZC) or splice"),
	 .type = KT_STRING, FIELD(relay_send_mode), .def = "splice", .choices = "send|zc|splice"},
	{DESC("relay", "ring_bytes", "ring-bytes", "PLEXTV_RING_BYTES", "N",
	      "per-channel buffer, bytes (rounded up to 64 KiB chunks)"),
	 .type = KT_UINT, FIELD(relay_ring_bytes), .min = 262144, .max = 1u << 30,
	 .def = "16777216"},
	{DESC("relay", "ring_seconds", "ring-seconds", "PLEXTV_RING_SECONDS", "S",
	      "per-channel buffer, seconds at most (0 = bytes only)"),
	 .type = KT_UINT, FIELD(relay_ring_seconds), .min = 0, .max = 3600, .def = "20"},
	{DESC("relay", "linger_ms", "linger-ms", "PLEXTV_LINGER_MS", "MS",
	      "keep a channel's upstream this long after its last viewer left (zapping)"),
	 .type = KT_UINT, FIELD(relay_linger_ms), .min = 0, .max = 3600000, .def = "5000"},
	{DESC("relay", "tune_grace_ms", "tune-grace-ms", "PLEXTV_TUNE_GRACE_MS", "MS",
	      "cold tune: hold the response this long for data or a 806/807 before sending 200"),
	 .type = KT_UINT, FIELD(relay_tune_grace_ms), .min = 0, .max = 60000, .def = "1000"},
	{DESC("relay", "tune_deadline_ms", "tune-deadline-ms", "PLEXTV_TUNE_DEADLINE_MS", "MS",
	      "cold tune: close the stream when no byte came by then"),
	 .type = KT_UINT, FIELD(relay_tune_deadline_ms), .min = 100, .max = 600000, .def = "10000"},
	{DESC("relay", "source_max_streams", "source-max-streams", "PLEXTV_SOURCE_MAX_STREAMS", "N",
	      "concurrent channels per source unless the source says (0 = unlimited)"),
	 .type = KT_UINT, FIELD(relay_source_max_streams), .min = 0, .max = 100000, .def = "0"},
	{DESC("relay", "max_lag_ms", "max-lag-ms", "PLEXTV_MAX_LAG_MS", "MS",
	      "a viewer further behind jumps to the newest keyframe"),
	 .type = KT_UINT, FIELD(relay_max_lag_ms), .min = 0, .max = 3600000, .def = "5000"},
	{DESC("relay", "send_batch_ms", "send-batch-ms", "PLEXTV_SEND_BATCH_MS", "MS",
	      "longest wait to fill a viewer's next send (64 KiB otherwise)"),
	 .type = KT_UINT, FIELD(relay_send_batch_ms), .min = 1, .max = 10000, .def = "100"},
	{DESC("relay", "ingest_stall_ms", "ingest-stall-ms", "PLEXTV_INGEST_STALL_MS", "MS",
	      "upstream silent this long: the ingest child reconnects (also its first-byte "
	      "budget)"),
	 .type = KT_UINT, FIELD(relay_ingest_stall_ms), .min = 500, .max = 600000, .def = "5000"},
	{DESC("relay", "ingest_command", "ingest-command", "PLEXTV_INGEST_COMMAND", "PATH",
	      "program run per upstream instead of the built-in `plextv ingest` (tests)"),
	 .type = KT_STRING, FIELD(relay_ingest_command), .def = ""},
	/* [discovery] */
	{DESC("discovery", "ssdp", "ssdp", "PLEXTV_SSDP", "on|off",
	      "answer SSDP searches and announce the tuners (Plex finds them by this)"),
	 .type = KT_STRING, FIELD(ssdp), .def = "on", .choices = "on|off"},
	{DESC("discovery", "hdhr_discovery", "hdhr-discovery", "PLEXTV_HDHR_DISCOVERY", "on|off",
	      "answer HDHomeRun discovery on UDP 65001 (Jellyfin, Emby, HDHomeRun apps)"),
	 .type = KT_STRING, FIELD(hdhr_discovery), .def = "on", .choices = "on|off"},
	{DESC("discovery", "allow_prefixes", "allow-prefixes", "PLEXTV_ALLOW_PREFIXES", "CIDRS",
	      "discovery also answers these sources (e.g. 10.8.0.0/16), besides attached subnets"),
	 .type = KT_STRING, FIELD(allow_prefixes), .def = ""},
	{DESC("discovery", "http_port80", "http-port80", "PLEXTV_HTTP_PORT80", "on|off",
	      "also serve HTTP on port 80, where Jellyfin looks after a UDP 65001 reply"),
	 .type = KT_STRING, FIELD(http_port80), .def = "off", .choices = "on|off"},
	{DESC("discovery", "bpf", "bpf", "PLEXTV_BPF", "auto|on|off",
	      "eBPF discovery filter and per-channel accounting (auto: when permitted)"),
	 .type = KT_STRING, FIELD(bpf), .def = "auto", .choices = "auto|on|off"},
	{DESC("discovery", "ssdp_notify_interval", "ssdp-notify-interval",
	      "PLEXTV_SSDP_NOTIFY_INTERVAL", "S", "seconds between SSDP alive announcements"),
	 .type = KT_UINT, FIELD(ssdp_notify_interval), .min = 10, .max = 899, .def = "60"},
	/* [guide] (EPG, epg.h) */
	{DESC("guide", "guide_retention_days", "guide-retention-days",
	      "PLEXTV_GUIDE_RETENTION_DAYS", "DAYS",
	      "keep and serve programmes that ended up to this long ago"),
	 .type = KT_UINT, FIELD(guide_retention_days), .min = 0, .max = 36500, .def = "1"},
	{DESC("guide", "guide_dummy", "guide-dummy", "PLEXTV_GUIDE_DUMMY", "0|1",
	      "dummy guide (blocks titled with the channel name) for channels without one"),
	 .type = KT_UINT, FIELD(guide_dummy), .min = 0, .max = 1, .def = "1"},
	{DESC("guide", "guide_dummy_block_minutes", "guide-dummy-block-minutes",
	      "PLEXTV_GUIDE_DUMMY_BLOCK_MINUTES", "MIN", "length of a dummy programme"),
	 .type = KT_UINT, FIELD(guide_dummy_block_minutes), .min = 5, .max = 1440, .def = "60"},
	{DESC("guide", "guide_dummy_hours", "guide-dummy-hours", "PLEXTV_GUIDE_DUMMY_HOURS", "H",
	      "how far ahead the dummy guide reaches"),
	 .type = KT_UINT, FIELD(guide_dummy_hours), .min = 1, .max = 744, .def = "168"},
	{DESC("guide", "guide_shift_hours", "guide-shift-hours", "PLEXTV_GUIDE_SHIFT_HOURS", "H",
	      "time shift of new guide sources, hours (-24..24; --shift-hours per source)"),
	 .type = KT_STRING, FIELD(guide_shift_hours), .def = "0"},
	{DESC("guide", "guide_max_mb", "guide-max-mb", "PLEXTV_GUIDE_MAX_MB", "MIB",
	      "largest XMLTV document, after decompression"),
	 .type = KT_UINT, FIELD(guide_max_mb), .min = 1, .max = 65536, .def = "1024"},
	{DESC("guide", "guide_timeout_s", "guide-timeout-s", "PLEXTV_GUIDE_TIMEOUT_S", "S",
	      "wall time of one guide import (fetch, parse, store)"),
	 .type = KT_UINT, FIELD(guide_timeout_s), .min = 5, .max = 86400, .def = "600"},
	/* [acestream] (acestream.h) */
	{DESC("acestream", "acestream_max_sessions", "acestream-max-sessions",
	      "PLEXTV_ACESTREAM_MAX_SESSIONS", "N",
	      "concurrent Acestream engine sessions, apart from tuner limits (0 = unlimited)"),
	 .type = KT_UINT, FIELD(acestream_max_sessions), .min = 0, .max = 1000, .def = "4"},
	{DESC("acestream", "acestream_timeout_ms", "acestream-timeout-ms",
	      "PLEXTV_ACESTREAM_TIMEOUT_MS", "MS",
	      "longest wait for the engine's getstream, stat and version answers"),
	 .type = KT_UINT, FIELD(acestream_timeout_ms), .min = 100, .max = 60000, .def = "5000"},
	{DESC("acestream", "acestream_stop_timeout_ms", "acestream-stop-timeout-ms",
	      "PLEXTV_ACESTREAM_STOP_TIMEOUT_MS", "MS",
	      "longest wait for the engine's stop answer"),
	 .type = KT_UINT, FIELD(acestream_stop_timeout_ms), .min = 100, .max = 60000,
	 .def = "3000"},
	{DESC("acestream", "acestream_stat_interval_ms", "acestream-stat-interval-ms",
	      "PLEXTV_ACESTREAM_STAT_INTERVAL_MS", "MS",
	      "poll the engine's stat_url this often while a channel runs (0 = never)"),
	 .type = KT_UINT, FIELD(acestream_stat_interval_ms), .min = 0, .max = 3600000,
	 .def = "5000"},
	{DESC("acestream", "acestream_prebuffer_ms", "acestream-prebuffer-ms",
	      "PLEXTV_ACESTREAM_PREBUFFER_MS", "MS",
	      "how long an Acestream channel may prebuffer before its first TS byte"),
	 .type = KT_UINT, FIELD(acestream_prebuffer_ms), .min = 1000, .max = 600000,
	 .def = "20000"},
};

_Static_assert(PTV_ARRAY_SIZE(keys) <= sizeof(((struct ptv_config *)0)->source),
	       "struct ptv_config.source is too small for the key table");

const struct ptv_config_key_desc *ptv_config_key(size_t i)
{
	return i < PTV_ARRAY_SIZE(keys) ? &keys[i].d : NULL;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(keys); i++) {
		if (!strcmp(name, keys[i].d.name) || !strcmp(name, keys[i].d.flag))
			return &keys[i];
	}
	return NULL;
}

bool ptv_config_has_key(const char *key)
{
	return find_key(key) != NULL;
}

static void *field(struct ptv_config *c, const struct key *k)
{
	return (char *)c + k->off;
}

static const void *cfield(const struct ptv_config *c, const struct key *k)
{
	return (const char *)c + k->off;
}

/* ---- listen addresses ---- */

static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (!isdigit((unsigned char)s[i]) || i >= 5)
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!i || v > 65535)
		return -EINVAL;
	*port = htons((in_port_t)v);
	return 0;
}

/* Numeric IPv6 only (AI_NUMERICHOST: never a DNS lookup); keeps a %zone scope id. */
static int parse_v6(const char *host, in_port_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {.ai_family = AF_INET6, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *res = NULL;
	struct sockaddr_in6 *sin6;

	if (getaddrinfo(host, NULL, &hints, &res) || !res)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_port = port;
	*len = sizeof(*sin6);
	return 0;
}

static int parse_v4(const char *host, in_port_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = port;
	if (!host[0])
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (!strcasecmp(host, "localhost"))
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	*len = sizeof(*sin);
	return 0;
}

int ptv_config_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_storage tmp_ss;
	socklen_t tmp_len;
	char host[128];
	const char *end, *port_str;
	size_t host_len;
	in_port_t port;
	bool v6 = s[0] == '[';

	if (!ss)
		ss = &tmp_ss;
	if (!len)
		len = &tmp_len;
	if (v6) {
		end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		host_len = (size_t)(end - s - 1);
		port_str = end + 2;
		s++;
	} else {
		end = strrchr(s, ':');
		if (!end)
			return -EINVAL;
		host_len = (size_t)(end - s);
		port_str = end + 1;
		/* "::1:8080" is ambiguous: IPv6 needs brackets. */
		if (memchr(s, ':', host_len))
			return -EINVAL;
	}
	if (host_len >= sizeof(host) || parse_port(port_str, &port))
		return -EINVAL;
	memcpy(host, s, host_len);
	host[host_len] = '\0';
	if (v6)
		return host_len ? parse_v6(host, port, ss, len) : -EINVAL;
	return parse_v4(host, port, ss, len);
}

/* ---- values ---- */

static int check_text(const char *v, size_t size, char *why, size_t whylen)
{
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(why, whylen, "contains a control character");
			return -EINVAL;
		}
	}
	if (strlen(v) >= size) {
		snprintf(why, whylen, "too long (at most %zu bytes)", size - 1);
		return -EINVAL;
	}
	return 0;
}

static int check_url(const char *v, char *why, size_t whylen)
{
	size_t skip;

	if (!v[0])
		return 0;
	if (!strncasecmp(v, "http://", 7))
		skip = 7;
	else if (!strncasecmp(v, "https://", 8))
		skip = 8;
	else
		goto bad;
	if (!v[skip] || strchr("/?#", v[skip]))
		goto bad;
	return 0;
bad:
	snprintf(why, whylen, "not an http:// or https:// URL");
	return -EINVAL;
}

static int parse_uint(const struct key *k, const char *v, unsigned *out, char *why, size_t whylen)
{
	unsigned long long n = 0;
	const char *p = v;

	if (!*p)
		goto bad;
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			goto bad;
		n = n * 10 + (unsigned)(*p - '0');
		if (n > k->max)
			break; /* keeps going would overflow; it is out of range anyway */
	}
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			goto bad;
	}
	if (n < k->min || n > k->max) {
		snprintf(why, whylen, "%s is out of range (%u..%u)", v, k->min, k->max);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
bad:
	snprintf(why, whylen, "'%s' is not a number", v);
	return -EINVAL;
}

/* Text fields are bounded by their array; enums and numbers by any sane spelling. */
static size_t text_limit(const struct key *k)
{
	switch (k->type) {
	case KT_UINT:
	case KT_LEVEL:
	case KT_FORMAT:
		return 64;
	default:
		return k->size;
	}
}

/* A word out of @k->choices, so `config check` catches "ssdp = maybe" before serve does. */
static int check_choice(const struct key *k, const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);
	const char *p;

	if (!k->choices)
		return 0;
	for (p = k->choices; *p; p += strcspn(p, "|"), p += *p == '|') {
		if (strcspn(p, "|") == n && !strncmp(p, v, n))
			return 0;
	}
	snprintf(why, whylen, "'%s' is not one of %s", v, k->choices);
	return -EINVAL;
}

/* Validates @v for @k and stores it; on error writes the reason (without the key) to @why. */
static int set_value(struct ptv_config *c, const struct key *k, const char *v, char *why,
		     size_t whylen)
{
	enum ptv_log_level level;
	enum ptv_log_format fmt;
	int ret;

	ret = check_text(v, text_limit(k), why, whylen);
	if (ret)
		return ret;
	switch (k->type) {
	case KT_PATH:
		if (!v[0]) {
			snprintf(why, whylen, "must not be empty");
			return -EINVAL;
		}
		break;
	case KT_URL:
		ret = check_url(v, why, whylen);
		break;
	case KT_LISTEN:
		ret = ptv_config_parse_listen(v, NULL, NULL);
		if (ret)
			snprintf(why, whylen,
				 "'%s' is not ADDR:PORT, [IPV6]:PORT or :PORT (port 0..65535)", v);
		break;
	case KT_UINT:
		return parse_uint(k, v, field(c, k), why, whylen);
	case KT_LEVEL:
		ret = ptv_log_level_parse(v, &level);
		if (ret)
			snprintf(why, whylen, "'%s' is not debug, info, warn or error", v);
		else
			*(enum ptv_log_level *)field(c, k) = level;
		return ret;
	case KT_FORMAT:
		ret = ptv_log_format_parse(v, &fmt);
		if (ret)
			snprintf(why, whylen, "'%s' is not text or json", v);
		else
			*(enum ptv_log_format *)field(c, k) = fmt;
		return ret;
	case KT_STRING:
		ret = check_choice(k, v, why, whylen);
		break;
	}
	if (!ret)
		memcpy(field(c, k), v, strlen(v) + 1);
	return ret;
}

static int set_key(struct ptv_config *c, const struct key *k, const char *v, enum key_source src,
		   char *why, size_t whylen)
{
	int ret = set_value(c, k, v, why, whylen);

	if (!ret)
		c->source[k - keys] = (unsigned char)src;
	return ret;
}

/* Printable form of a value for `config show` and error messages: credentials redacted. */
static void format_value(const struct ptv_config *c, const struct key *k, char *out, size_t len)
{
	const void *f = cfield(c, k);

	switch (k->type) {
	case KT_UINT:
		snprintf(out, len, "%u", *(const unsigned *)f);
		break;
	case KT_LEVEL:
		snprintf(out, len, "%s", ptv_log_level_name(*(const enum ptv_log_level *)f));
		break;
	case KT_FORMAT:
		snprintf(out, len, "%s", ptv_log_format_name(*(const enum ptv_log_format *)f));
		break;
	default:
		if (k->secret && *(const char *)f)
			snprintf(out, len, "***");
		else if (k->url)
			ptv_redact_url(f, out, len);
		else
			snprintf(out, len, "%s", (const char *)f);
		break;
	}
}

void ptv_config_defaults(struct ptv_config *c)
{
	char why[128];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < PTV_ARRAY_SIZE(keys); i++) {
		int ret = set_key(c, &keys[i], keys[i].def, SRC_DEFAULT, why, sizeof(why));

		PTV_BUG_ON(ret); /* a default that fails its own validation */
	}
}

static int config_error(char *err, size_t errlen, const char *fmt, ...) PTV_PRINTF(3, 4);
static int config_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -PTV_ERR_CONFIG;
}

int ptv_config_set(struct ptv_config *c, const char *key, const char *value, char *err,
		   size_t errlen)
{
	const struct key *k = find_key(key);
	char why[ERR_MAX];

	if (!k)
		return config_error(err, errlen, "unknown configuration key '%s'", key);
	if (set_key(c, k, value, SRC_FLAG, why, sizeof(why)))
		return config_error(err, errlen, "%s: %s", key, why);
	return 0;
}

/* ---- INI file ---- */

struct ini_ctx {
	struct ptv_config *c;
	const char *data;
	size_t len, pos;
	unsigned line;	   /* lines handed to inih so far = the line being parsed */
	unsigned err_line; /* first error found by us (0: none) */
	char err[ERR_MAX];
	unsigned set_line[PTV_ARRAY_SIZE(keys)];
};

static void ini_fail(struct ini_ctx *x, unsigned line, const char *fmt, ...) PTV_PRINTF(3, 4);
static void ini_fail(struct ini_ctx *x, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (x->err_line)
		return; /* keep the first */
	x->err_line = line;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
}

/* fgets() over the file in memory, counting lines so the handler can name them. */
static char *config_ini_read(char *str, int num, void *stream)
{
	struct ini_ctx *x = stream;
	const char *nl;
	size_t n;

	if (x->pos >= x->len || num < 2)
		return NULL;
	nl = memchr(x->data + x->pos, '\n', x->len - x->pos);
	n = nl ? (size_t)(nl - (x->data + x->pos)) + 1 : x->len - x->pos;
	x->line++;
	/* inih would silently split a long line in two: refuse it instead. */
	if (n > (size_t)num - 1) {
		ini_fail(x, x->line, "line too long (at most %d bytes)", num - 2);
		return NULL;
	}
	if (memchr(x->data + x->pos, '\0', n)) {
		ini_fail(x, x->line, "contains a NUL byte");
		return NULL;
	}
	memcpy(str, x->data + x->pos, n);
	str[n] = '\0';
	x->pos += n;
	return str;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(keys); i++) {
		if (!strcmp(section, keys[i].d.section))
			return true;
	}
	return false;
}

static int config_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = user;
	const struct key *k = NULL;
	char why[ERR_MAX];
	size_t idx;

	for (idx = 0; idx < PTV_ARRAY_SIZE(keys); idx++) {
		if (!strcmp(name, keys[idx].d.name)) {
			k = &keys[idx];
			break;
		}
	}
	if (!k) {
		if (section[0] && !known_section(section))
			ini_fail(x, x->line, "unknown section [%s]", section);
		else
			ini_fail(x, x->line, "unknown key '%s'", name);
		return 0;
	}
	if (strcmp(section, k->d.section)) {
		ini_fail(x, x->line, "key '%s' belongs in [%s], not %s%s%s", name, k->d.section,
			 section[0] ? "[" : "", section[0] ? section : "outside any section",
			 section[0] ? "]" : "");
		return 0;
	}
	if (x->set_line[idx]) {
		ini_fail(x, x->line,
			 "key '%s' already set on line %u (an indented line continues the previous "
			 "value)",
			 name, x->set_line[idx]);
		return 0;
	}
	x->set_line[idx] = x->line;
	if (set_key(x->c, k, value, SRC_FILE, why, sizeof(why))) {
		ini_fail(x, x->line, "%s: %s", name, why);
		return 0;
	}
	return 1;
}

static int read_small_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t n;
	int ret = 0;

	if (!f)
		return -errno;
	data = malloc(max + 1);
	if (!data) {
		ret = -ENOMEM;
		goto out;
	}
	errno = 0;
	n = fread(data, 1, max + 1, f);
	if (ferror(f)) {
		ret = errno ? -errno : -EIO; /* EISDIR for a directory */
		goto out;
	}
	if (n > max) {
		ret = -EFBIG;
		goto out;
	}
	data[n] = '\0';
	*out = data;
	*len = n;
	data = NULL;
out:
	free(data);
	fclose(f);
	return ret;
}

static int load_file(struct ptv_config *c, const char *path, char *err, size_t errlen)
{
	struct ini_ctx *x = ptv_xcalloc(1, sizeof(*x));
	char *data = NULL;
	int ret, line;

	ret = read_small_file(path, CONFIG_FILE_MAX, &data, &x->len);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "config file %s: %s", path,
				 ret == -EFBIG ? "larger than 1 MiB" : ptv_strerror(ret));
		if (ret == -EFBIG)
			ret = -PTV_ERR_CONFIG;
		goto out;
	}
	x->c = c;
	x->data = data;
	line = ini_parse_stream(config_ini_read, x, config_ini_entry, x);
	if (x->err_line && (line <= 0 || x->err_line <= (unsigned)line))
		ret = config_error(err, errlen, "%s:%u: %s", path, x->err_line, x->err);
	else if (line > 0)
		ret = config_error(err, errlen,
				   "%s:%d: syntax error (expected [section] or key = value)", path,
				   line);
	else if (line < 0)
		ret = config_error(err, errlen, "%s: out of memory while parsing", path);
out:
	free(data);
	free(x);
	return ret;
}

/* ---- environment ---- */

/*
 * The value of @k from the environment: PLEXTV_X, or the contents of the file named by
 * PLEXTV_X_FILE or FILE__PLEXTV_X (Docker secrets). At most one of the three may be set.
 * Returns 1 with *value set, 0 when none is set, or -PTV_ERR_CONFIG.
 */
static int env_value(const struct key *k, char *buf, size_t buflen, const char **value, char *err,
		     size_t errlen)
{
	char file_var[128], file_var2[128];
	const char *direct, *file, *file2, *path;
	size_t n;
	char *data = NULL;
	int ret;

	snprintf(file_var, sizeof(file_var), "%s_FILE", k->d.env);
	snprintf(file_var2, sizeof(file_var2), "FILE__%s", k->d.env);
	direct = getenv(k->d.env);
	file = getenv(file_var);
	file2 = getenv(file_var2);
	if (!!direct + !!file + !!file2 > 1)
		return config_error(err, errlen, "%s: set only one of %s, %s and %s", k->d.env,
				    k->d.env, file_var, file_var2);
	if (direct) {
		*value = direct;
		return 1;
	}
	if (!file && !file2)
		return 0;
	path = file ? file : file2;
	ret = read_small_file(path, buflen - 1, &data, &n);
	if (ret)
		return config_error(err, errlen, "%s: cannot read %s: %s",
				    file ? file_var : file_var2, path,
				    ret == -EFBIG ? "file too large" : ptv_strerror(ret));
	while (n && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	if (memchr(data, '\0', n)) {
		free(data);
		return config_error(err, errlen, "%s: %s contains a NUL byte",
				    file ? file_var : file_var2, path);
	}
	memcpy(buf, data, n);
	buf[n] = '\0';
	free(data);
	*value = buf;
	return 1;
}

static int apply_env(struct ptv_config *c, char *err, size_t errlen)
{
	char buf[PATH_MAX + 2], why[ERR_MAX];
	const char *v = NULL;
	int ret;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(keys); i++) {
		ret = env_value(&keys[i], buf, sizeof(buf), &v, err, errlen);
		if (ret < 0)
			return ret;
		if (ret && set_key(c, &keys[i], v, SRC_ENV, why, sizeof(why)))
			return config_error(err, errlen, "%s: %s", keys[i].d.env, why);
	}
	return 0;
}

static int apply_overrides(struct ptv_config *c, const struct ptv_config_override *ov, size_t n,
			   char *err, size_t errlen)
{
	char why[ERR_MAX];

	for (size_t i = 0; i < n; i++) {
		const struct key *k = find_key(ov[i].key);

		if (!k)
			return config_error(err, errlen, "unknown option --%s", ov[i].key);
		if (set_key(c, k, ov[i].value, SRC_FLAG, why, sizeof(why)))
			return config_error(err, errlen, "--%s: %s", k->d.flag, why);
	}
	return 0;
}

/* DATA_DIR/plextv.conf, with DATA_DIR taken from the layers above the file. */
static int default_file(const struct ptv_config_override *ov, size_t n_ov, char *path,
			size_t pathlen, char *err, size_t errlen)
{
	struct ptv_config *tmp = ptv_xmalloc(sizeof(*tmp));
	int ret;

	ptv_config_defaults(tmp);
	ret = apply_env(tmp, err, errlen);
	if (!ret)
		ret = apply_overrides(tmp, ov, n_ov, err, errlen);
	if (!ret && (size_t)snprintf(path, pathlen, "%s/plextv.conf", tmp->data_dir) >= pathlen)
		ret = config_error(err, errlen, "data_dir: path too long");
	free(tmp);
	return ret;
}

int ptv_config_load(struct ptv_config *out, const char *file, const struct ptv_config_override *ov,
		    size_t n_ov, char *err, size_t errlen)
{
	struct ptv_config *c = ptv_xmalloc(sizeof(*c));
	char path[PATH_MAX];
	int ret;

	if (err && errlen)
		err[0] = '\0';
	ptv_config_defaults(c);
	if (!file) {
		ret = default_file(ov, n_ov, path, sizeof(path), err, errlen);
		if (ret)
			goto out;
		/* The default file is optional; anything but "not there" is still an error. */
		if (access(path, F_OK) == 0)
			file = path;
	}
	if (file) {
		if (strlen(file) >= sizeof(c->config_file)) {
			ret = config_error(err, errlen, "config file path too long");
			goto out;
		}
		ret = load_file(c, file, err, errlen);
		if (ret)
			goto out;
		strcpy(c->config_file, file);
	}
	ret = apply_env(c, err, errlen);
	if (ret)
		goto out;
	ret = apply_overrides(c, ov, n_ov, err, errlen);
	if (ret)
		goto out;
	*out = *c;
out:
	free(c);
	return ret;
}

void ptv_config_show(const struct ptv_config *c, FILE *out)
{
	const char *section = NULL;
	char value[PATH_MAX + 16];

	fprintf(out, "; effective configuration (config file: %s)\n",
		c->config_file[0] ? c->config_file : "none");
	for (size_t i = 0; i < PTV_ARRAY_SIZE(keys); i++) {
		const struct key *k = &keys[i];
		unsigned src = c->source[i] < PTV_ARRAY_SIZE(source_names) ? c->source[i] : 0;

		if (!section || strcmp(section, k->d.section)) {
			section = k->d.section;
			fprintf(out, "\n[%s]\n", section);
		}
		format_value(c, k, value, sizeof(value));
		fprintf(out, "%s = %s  ; from %s\n", k->d.name, value, source_names[src]);
	}
}
