/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv COMMAND [OPTIONS]` (see cli.h). Commands are rows of one table; each declares which
 * option groups it takes, and the getopt_long table and the --help text are built from those
 * groups. The configuration group has one long flag per key of the config table, so a new
 * config key gets its flag and its help line without touching this file.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <getopt.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <llhttp.h>
#include <lmdb.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "plextv/build-config.h"
#include "plextv/cli.h"
#include "plextv/config.h"
#include "plextv/epg.h"
#include "plextv/ingest.h"
#include "plextv/redact.h"
#include "plextv/lineup_svc.h"
#include "plextv/server.h"
#include "plextv/sources.h"
#include "plextv/store.h"

#define PROG		 "plextv"
#define HEALTH_TIMEOUT_S 5.0

/* Option groups a command can take. */
enum {
	CLI_OPT_CONFIG = 1u << 0, /* --config FILE and one flag per configuration key */
	CLI_OPT_HEALTH = 1u << 1, /* --url, --timeout */
	CLI_OPT_IMPORT = 1u << 2, /* --name, --include-group, …, --number-start, --refresh-hours */
	CLI_OPT_JSON = 1u << 3,	  /* --json */
};

#define CLI_MAX_PATTERNS 32

/* getopt_long values: short options are their letter, the rest start past the char range. */
enum {
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
	OPT_CONFIG = 'c',
	OPT_URL = 0x100,
	OPT_TIMEOUT,
	OPT_NAME,
	OPT_INCLUDE_GROUP,
	OPT_EXCLUDE_GROUP,
	OPT_INCLUDE_NAME,
	OPT_EXCLUDE_NAME,
	OPT_NUMBER_START,
	OPT_REFRESH_HOURS,
	OPT_JSON,
	OPT_SHIFT_HOURS,      /* import xmltv (EPG) */
	OPT_KEY_BASE = 0x200, /* + index into ptv_config_key() */
};

struct cli_ctx;

struct cli_cmd {
	const char *name;
	const char *synopsis; /* after "plextv " in the usage line */
	const char *summary;
	unsigned opts; /* CLI_OPT_* */
	int (*run)(struct cli_ctx *x);
};

/* The parsed command line of one command. */
struct cli_ctx {
	const struct cli_cmd *cmd;
	const char *config_file; /* --config, NULL: DATA_DIR/plextv.conf when present */
	struct ptv_config_override *ov;
	size_t n_ov;
	const char *url;
	double timeout_s;
	/* import */
	const char *name;
	const char *patterns[4][CLI_MAX_PATTERNS + 1]; /* include/exclude group/name */
	unsigned n_patterns[4];
	unsigned number_start;
	unsigned refresh_s;
	bool has_shift; /* import xmltv --shift-hours (EPG) */
	double shift_h;
	bool json;
	int argc; /* positional arguments after the options */
	char **argv;
};

static int cmd_serve(struct cli_ctx *x);
static int cmd_config(struct cli_ctx *x);
static int cmd_healthcheck(struct cli_ctx *x);
static int cmd_version(struct cli_ctx *x);
static int cmd_help(struct cli_ctx *x);
static int cmd_import(struct cli_ctx *x);
static int cmd_channels(struct cli_ctx *x);
static int cmd_sources(struct cli_ctx *x);
static int cmd_guide(struct cli_ctx *x);

/* Adding a command is one row here plus its cmd_ function. */
static const struct cli_cmd commands[] = {
	{"serve", "serve [OPTIONS]", "run the relay", CLI_OPT_CONFIG, cmd_serve},
	{"config", "config show|check [OPTIONS]",
	 "print the effective configuration (secrets redacted) or validate it", CLI_OPT_CONFIG,
	 cmd_config},
	{"healthcheck", "healthcheck [--url URL] [--timeout SECONDS] [OPTIONS]",
	 "exit 0 when the local server answers /health (Docker HEALTHCHECK)",
	 CLI_OPT_CONFIG | CLI_OPT_HEALTH, cmd_healthcheck},
	{"import", "import m3u|xmltv PATH|URL [--name NAME] [FILTERS] [OPTIONS]",
	 "add or refresh an M3U source or an XMLTV guide (works while serve runs)",
	 CLI_OPT_CONFIG | CLI_OPT_IMPORT, cmd_import},
	{"channels", "channels list [--json] [OPTIONS]", "list the lineup's channels",
	 CLI_OPT_CONFIG | CLI_OPT_JSON, cmd_channels},
	{"sources", "sources list [--json] [OPTIONS]", "list the sources",
	 CLI_OPT_CONFIG | CLI_OPT_JSON, cmd_sources},
	{"guide", "guide map GUIDENUMBER GUIDE_CHANNEL_ID|-, unmap GUIDENUMBER, list [--json]",
	 "pin a channel's guide (- for none), or show how each channel's guide was found",
	 CLI_OPT_CONFIG | CLI_OPT_JSON, cmd_guide},
	{"version", "version", "print the version of plextv and of its libraries", 0, cmd_version},
	{"help", "help [COMMAND]", "show help for plextv or for COMMAND", 0, cmd_help},
	{"ingest", "ingest (config JSON on fd 3)",
	 "internal: relay one upstream to stdout as MPEG-TS", 0, ptv_ingest_cli},
};

static const struct cli_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(commands); i++) {
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	}
	return NULL;
}

/* ---- help ---- */

static void print_opt(FILE *out, char short_opt, const char *name, const char *metavar,
		      const char *help)
{
	char left[64];

	snprintf(left, sizeof(left), "%c%c%c --%s%s%s", short_opt ? '-' : ' ',
		 short_opt ? short_opt : ' ', short_opt ? ',' : ' ', name, metavar ? " " : "",
		 metavar ? metavar : "");
	fprintf(out, "  %-30s %s\n", left, help);
}

static void usage_main(FILE *out)
{
	fprintf(out,
		"Usage: %s COMMAND [OPTIONS]\n"
		"Relays IPTV sources to Plex as an emulated HDHomeRun tuner.\n\nCommands:\n",
		PROG);
	for (size_t i = 0; i < PTV_ARRAY_SIZE(commands); i++) {
		/* Commands the relay runs for itself (the ingest child) are not for people. */
		if (strncmp(commands[i].summary, "internal:", 9))
			fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
	}
	fprintf(out, "\nOptions:\n");
	print_opt(out, 'h', "help", NULL, "show this help and exit");
	print_opt(out, 'V', "version", NULL, "show the version and exit");
	fprintf(out, "\nRun '%s COMMAND --help' for the options of a command.\n", PROG);
}

static void usage_command(const struct cli_cmd *cmd, FILE *out)
{
	const struct ptv_config_key_desc *d;

	fprintf(out, "Usage: %s %s\n%c%s.\n", PROG, cmd->synopsis, toupper(cmd->summary[0]),
		cmd->summary + 1);
	fprintf(out, "\nOptions:\n");
	if (cmd->opts & CLI_OPT_HEALTH) {
		print_opt(out, 0, "url", "URL",
			  "URL to check (default: /health on the listen port)");
		print_opt(out, 0, "timeout", "SECONDS", "give up after this long (default 5)");
	}
	if (cmd->opts & CLI_OPT_IMPORT) {
		print_opt(out, 0, "name", "NAME", "source name (default: the host or file name)");
		print_opt(out, 0, "include-group", "GLOB",
			  "keep only matching groups (repeatable)");
		print_opt(out, 0, "exclude-group", "GLOB", "turn matching groups off (repeatable)");
		print_opt(out, 0, "include-name", "GLOB", "keep only matching names (repeatable)");
		print_opt(out, 0, "exclude-name", "GLOB", "turn matching names off (repeatable)");
		print_opt(out, 0, "number-start", "N", "first GuideNumber for unnumbered channels");
		print_opt(out, 0, "refresh-hours", "H", "refresh period inside serve (default 12)");
		print_opt(out, 0, "shift-hours", "H", "xmltv: move the guide's times by H hours");
	}
	if (cmd->opts & CLI_OPT_JSON)
		print_opt(out, 0, "json", NULL, "print JSON");
	if (cmd->opts & CLI_OPT_CONFIG) {
		print_opt(out, 'c', "config", "FILE",
			  "INI file (default: DATA_DIR/plextv.conf when present)");
		for (size_t i = 0; (d = ptv_config_key(i)); i++)
			print_opt(out, 0, d->flag, d->metavar, d->help);
	}
	print_opt(out, 'h', "help", NULL, "show this help and exit");
	print_opt(out, 'V', "version", NULL, "show the version and exit");
	if (cmd->opts & CLI_OPT_CONFIG)
		fprintf(out,
			"\nEach --some-key flag is also the environment variable PLEXTV_SOME_KEY\n"
			"and the key some_key of the config file. Later layers win: defaults <\n"
			"config file < environment < flags. A variable can also name a file that\n"
			"holds the value: PLEXTV_SOME_KEY_FILE=PATH or "
			"FILE__PLEXTV_SOME_KEY=PATH.\n");
}

static int usage_error(const struct cli_cmd *cmd, const char *fmt, ...) PTV_PRINTF(2, 3);
static int usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", PROG, cmd ? " " : "", cmd ? cmd->name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s%s%s --help' for more information.\n", PROG, cmd ? " " : "",
		cmd ? cmd->name : "");
	return EX_USAGE;
}

/* ---- option parsing ---- */

static void add_opt(struct option *o, size_t *n, const char *name, int has_arg, int val)
{
	o[*n] = (struct option){.name = name, .has_arg = has_arg, .val = val};
	(*n)++;
}

/* The getopt_long table of @cmd; freed by the caller. */
static struct option *build_options(const struct cli_cmd *cmd)
{
	size_t nkeys = 0, n = 0;
	struct option *o;

	while (ptv_config_key(nkeys))
		nkeys++;
	o = ptv_xcalloc(nkeys + 16, sizeof(*o));
	add_opt(o, &n, "help", no_argument, OPT_HELP);
	add_opt(o, &n, "version", no_argument, OPT_VERSION);
	if (cmd->opts & CLI_OPT_HEALTH) {
		add_opt(o, &n, "url", required_argument, OPT_URL);
		add_opt(o, &n, "timeout", required_argument, OPT_TIMEOUT);
	}
	if (cmd->opts & CLI_OPT_IMPORT) {
		add_opt(o, &n, "name", required_argument, OPT_NAME);
		add_opt(o, &n, "include-group", required_argument, OPT_INCLUDE_GROUP);
		add_opt(o, &n, "exclude-group", required_argument, OPT_EXCLUDE_GROUP);
		add_opt(o, &n, "include-name", required_argument, OPT_INCLUDE_NAME);
		add_opt(o, &n, "exclude-name", required_argument, OPT_EXCLUDE_NAME);
		add_opt(o, &n, "number-start", required_argument, OPT_NUMBER_START);
		add_opt(o, &n, "refresh-hours", required_argument, OPT_REFRESH_HOURS);
		add_opt(o, &n, "shift-hours", required_argument, OPT_SHIFT_HOURS);
	}
	if (cmd->opts & CLI_OPT_JSON)
		add_opt(o, &n, "json", no_argument, OPT_JSON);
	if (cmd->opts & CLI_OPT_CONFIG) {
		add_opt(o, &n, "config", required_argument, OPT_CONFIG);
		for (size_t i = 0; i < nkeys; i++)
			add_opt(o, &n, ptv_config_key(i)->flag, required_argument,
				(int)(OPT_KEY_BASE + i));
	}
	return o; /* calloc left the terminating all-zero entry */
}

static int parse_timeout(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0 && v <= 3600))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int add_pattern(struct cli_ctx *x, int which, const char *pat)
{
	if (x->n_patterns[which] == CLI_MAX_PATTERNS)
		return usage_error(x->cmd, "at most %d patterns per filter", CLI_MAX_PATTERNS);
	x->patterns[which][x->n_patterns[which]++] = pat;
	return -1;
}

/* Handles one option; returns -1 to go on or an exit status. */
static int handle_opt(struct cli_ctx *x, int c, char **argv)
{
	switch (c) {
	case OPT_HELP:
		usage_command(x->cmd, stdout);
		return EX_OK;
	case OPT_VERSION:
		return cmd_version(x);
	case OPT_CONFIG:
		x->config_file = optarg;
		return -1;
	case OPT_URL:
		x->url = optarg;
		return -1;
	case OPT_TIMEOUT:
		if (parse_timeout(optarg, &x->timeout_s))
			return usage_error(x->cmd,
					   "--timeout: '%s' is not a number of seconds "
					   "(0 < SECONDS <= 3600)",
					   optarg);
		return -1;
	case OPT_NAME:
		x->name = optarg;
		return -1;
	case OPT_INCLUDE_GROUP:
	case OPT_EXCLUDE_GROUP:
	case OPT_INCLUDE_NAME:
	case OPT_EXCLUDE_NAME:
		return add_pattern(x, c - OPT_INCLUDE_GROUP, optarg);
	case OPT_NUMBER_START:
		if (parse_uint(optarg, 1, 1000000, &x->number_start))
			return usage_error(x->cmd, "--number-start: '%s' is not 1..1000000",
					   optarg);
		return -1;
	case OPT_REFRESH_HOURS:
		if (parse_uint(optarg, 1, 24 * 365, &x->refresh_s))
			return usage_error(x->cmd, "--refresh-hours: '%s' is not 1..8760", optarg);
		x->refresh_s *= 3600;
		return -1;
	case OPT_JSON:
		x->json = true;
		return -1;
	case OPT_SHIFT_HOURS: {
		char *end;

		errno = 0;
		x->shift_h = strtod(optarg, &end);
		if (errno || end == optarg || *end || !(x->shift_h >= -24 && x->shift_h <= 24))
			return usage_error(x->cmd, "--shift-hours: '%s' is not -24..24", optarg);
		x->has_shift = true;
		return -1;
	}
	case ':':
		return usage_error(x->cmd, "option '%s' requires an argument", argv[optind - 1]);
	case '?':
		if (optopt)
			return usage_error(x->cmd, "unknown option '-%c'", optopt);
		return usage_error(x->cmd, "unknown option '%s'", argv[optind - 1]);
	default:
		if (c >= OPT_KEY_BASE && ptv_config_key((size_t)(c - OPT_KEY_BASE))) {
			x->ov[x->n_ov].key = ptv_config_key((size_t)(c - OPT_KEY_BASE))->flag;
			x->ov[x->n_ov++].value = optarg;
			return -1;
		}
		return usage_error(x->cmd, "unexpected option");
	}
}

/* Parses argv[0..] (argv[0] = the command name). Returns -1 to run the command, else a status. */
static int parse_command_line(struct cli_ctx *x, int argc, char **argv)
{
	struct option *opts = build_options(x->cmd);
	const char *shorts = (x->cmd->opts & CLI_OPT_CONFIG) ? ":hVc:" : ":hV";
	int c, ret = -1;

	/* Every option takes at most one argv slot per override: argc bounds the count. */
	x->ov = ptv_xcalloc((size_t)argc, sizeof(*x->ov));
	optind = 0; /* glibc: full reset, ptv_cli_main() may run more than once (tests) */
	opterr = 0; /* our messages name the command */
	while (ret < 0 && (c = getopt_long(argc, argv, shorts, opts, NULL)) != -1)
		ret = handle_opt(x, c, argv);
	if (ret < 0) {
		x->argc = argc - optind;
		x->argv = argv + optind;
	}
	free(opts);
	return ret;
}

/* ---- commands ---- */

static int load_config(struct cli_ctx *x, struct ptv_config *cfg)
{
	char err[1024];
	int ret;

	ret = ptv_config_load(cfg, x->config_file, x->ov, x->n_ov, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "%s %s: configuration error: %s\n", PROG, x->cmd->name,
			err[0] ? err : ptv_strerror(ret));
		return EX_CONFIG;
	}
	return EX_OK;
}

static int no_arguments(struct cli_ctx *x)
{
	if (x->argc > 0)
		return usage_error(x->cmd, "unexpected argument '%s'", x->argv[0]);
	return EX_OK;
}

static int cmd_serve(struct cli_ctx *x)
{
	struct ptv_config *cfg = ptv_xmalloc(sizeof(*cfg));
	int ret;

	ret = no_arguments(x);
	if (ret)
		goto out;
	ret = load_config(x, cfg);
	if (ret)
		goto out;
	ptv_log_set_level(cfg->log_level);
	ptv_log_set_format(cfg->log_format);
	ret = ptv_server_run(cfg, x->config_file, x->ov, x->n_ov);
	/* ptv_server_run() has logged the cause; only the exit status is left to choose. */
	if (ret == -PTV_ERR_CONFIG)
		ret = EX_CONFIG;
	else if (ret)
		ret = EX_OSERR;
out:
	free(cfg);
	return ret;
}

static int cmd_config(struct cli_ctx *x)
{
	struct ptv_config *cfg = ptv_xmalloc(sizeof(*cfg));
	bool show;
	int ret;

	if (!x->argc) {
		ret = usage_error(x->cmd, "missing action (expected show or check)");
		goto out;
	}
	if (strcmp(x->argv[0], "show") && strcmp(x->argv[0], "check")) {
		ret = usage_error(x->cmd, "unknown action '%s' (expected show or check)",
				  x->argv[0]);
		goto out;
	}
	if (x->argc > 1) {
		ret = usage_error(x->cmd, "unexpected argument '%s'", x->argv[1]);
		goto out;
	}
	show = !strcmp(x->argv[0], "show");
	ret = load_config(x, cfg);
	if (ret)
		goto out;
	if (show)
		ptv_config_show(cfg, stdout);
	else
		printf("configuration OK (file: %s)\n",
		       cfg->config_file[0] ? cfg->config_file : "none");
out:
	free(cfg);
	return ret;
}

/* http://HOST:PORT/health for the effective listen address; wildcards become loopback. */
static int health_url(struct cli_ctx *x, char *url, size_t len)
{
	struct ptv_config *cfg = ptv_xmalloc(sizeof(*cfg));
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int ret;

	ret = load_config(x, cfg);
	if (ret)
		goto out;
	/* The loaded value was validated: parsing it again cannot fail. */
	PTV_BUG_ON(ptv_config_parse_listen(cfg->listen, &ss, NULL));
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		snprintf(url, len, "http://[%s]:%u/health", host, port);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		snprintf(url, len, "http://%s:%u/health", host, port);
	}
	if (!port) {
		fprintf(stderr,
			"%s healthcheck: the listen port is 0 (chosen at start): pass --url\n",
			PROG);
		ret = EX_USAGE;
	}
out:
	free(cfg);
	return ret;
}

static size_t discard_body(char *p, size_t size, size_t n, void *ctx)
{
	return size * n;
}

/* GETs @url; returns EX_OK on HTTP 200, else says why on stderr and returns EX_UNAVAILABLE. */
static int http_check(const char *url, double timeout_s)
{
	char shown[1024], errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;
	CURL *h;
	int ret = EX_UNAVAILABLE;

	ptv_redact_url(url, shown, sizeof(shown));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) || !(h = curl_easy_init())) {
		fprintf(stderr, "%s healthcheck: cannot initialise libcurl\n", PROG);
		return EX_SOFTWARE;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* http_proxy must not catch a local check */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, PROG "-healthcheck/" PTV_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		fprintf(stderr, "%s healthcheck: %s: %s\n", PROG, shown,
			errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		fprintf(stderr, "%s healthcheck: %s answered HTTP %ld\n", PROG, shown, status);
		goto out;
	}
	printf("healthy: %s answered HTTP 200\n", shown);
	ret = EX_OK;
out:
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return ret;
}

/* Opens the store of the configured data directory for a lineup command. */
static int open_store(struct cli_ctx *x, struct ptv_store **out)
{
	struct ptv_config *cfg = ptv_xmalloc(sizeof(*cfg));
	struct ptv_store_opts so = {0};
	int ret = load_config(x, cfg);

	if (!ret && ptv_store_open(cfg->data_dir, &so, out)) {
		fprintf(stderr, "%s %s: cannot open the store in '%s' (see the log line above)\n",
			PROG, x->cmd->name, cfg->data_dir);
		ret = EX_CANTCREAT;
	}
	free(cfg);
	return ret;
}

/* `import xmltv PATH|URL`: add or refresh a guide source (EPG, issue 6; see epg.h). */
static int cmd_import_xmltv(struct cli_ctx *x)
{
	struct ptv_config *cfg = ptv_xmalloc(sizeof(*cfg));
	struct ptv_epg_import_opts io = {0};
	struct ptv_store *store = NULL;
	struct ptv_epg_report rep;
	struct ptv_epg_opts eo;
	char line[1024], where[2048], err[256];
	int ret = load_config(x, cfg);

	if (!ret && ptv_epg_opts_from_config(&eo, cfg, err, sizeof(err))) {
		fprintf(stderr, "%s import: configuration error: %s\n", PROG, err);
		ret = EX_CONFIG;
	}
	if (!ret)
		ret = open_store(x, &store);
	if (ret)
		goto out;
	io.name = x->name;
	io.location = x->argv[1];
	io.allow_file = true; /* the operator typed it */
	io.has_shift = x->has_shift;
	io.shift_h = x->shift_h;
	io.refresh_s = x->refresh_s;
	ret = ptv_epg_import(store, &eo, &io, &rep);
	ptv_redact_url(io.location, where, sizeof(where));
	ptv_epg_report_format(&rep, line, sizeof(line));
	if (ret) {
		fprintf(stderr, "%s import: %s: %s; the guide is unchanged\n", PROG, where,
			rep.error[0] ? rep.error : ptv_strerror(ret));
		ret = ret == -PTV_ERR_PARSE || ret == -PTV_ERR_LIMIT || ret == -EFBIG
			      ? EX_DATAERR
			      : EX_UNAVAILABLE;
	} else {
		printf("guide source %u (%s): %s\n", rep.source_id, where, line);
	}
	ptv_store_close(store);
out:
	free(cfg);
	return ret;
}

static int cmd_import(struct cli_ctx *x)
{
	struct ptv_import_m3u_opts o = {0};
	struct ptv_import_report rep;
	struct ptv_store *store = NULL;
	char line[1024], where[2048];
	int ret;

	if (x->argc == 2 && !strcmp(x->argv[0], "xmltv"))
		return cmd_import_xmltv(x);
	if (x->argc != 2 || strcmp(x->argv[0], "m3u"))
		return usage_error(x->cmd, "expected: import m3u|xmltv PATH|URL");
	ret = open_store(x, &store);
	if (ret)
		return ret;
	o.name = x->name;
	o.location = x->argv[1];
	o.allow_file = true; /* the operator typed it */
	o.number_start = x->number_start;
	o.refresh_s = x->refresh_s;
	o.include_groups = x->patterns[0];
	o.exclude_groups = x->patterns[1];
	o.include_names = x->patterns[2];
	o.exclude_names = x->patterns[3];
	ret = ptv_sources_import_m3u(store, &o, &rep);
	ptv_redact_url(o.location, where, sizeof(where));
	ptv_import_report_format(&rep, line, sizeof(line));
	if (ret) {
		fprintf(stderr, "%s import: %s: %s; the lineup is unchanged\n", PROG, where,
			rep.error[0] ? rep.error : ptv_strerror(ret));
		ret = ret == -PTV_ERR_PARSE ? EX_DATAERR : EX_UNAVAILABLE;
	} else {
		printf("source %u (%s): %s\n", rep.source_id, where, line);
	}
	ptv_store_close(store);
	return ret;
}

static int list_command(struct cli_ctx *x, int (*print)(struct ptv_store *, FILE *, bool))
{
	struct ptv_store *store = NULL;
	int ret;

	if (x->argc != 1 || strcmp(x->argv[0], "list"))
		return usage_error(x->cmd, "expected: %s list [--json]", x->cmd->name);
	ret = open_store(x, &store);
	if (ret)
		return ret;
	if (print(store, stdout, x->json)) {
		fprintf(stderr, "%s %s: cannot read the store\n", PROG, x->cmd->name);
		ret = EX_IOERR;
	}
	ptv_store_close(store);
	return ret;
}

static int cmd_channels(struct cli_ctx *x)
{
	return list_command(x, ptv_channels_print);
}

static int cmd_sources(struct cli_ctx *x)
{
	struct ptv_config *cfg = ptv_xmalloc(sizeof(*cfg));
	char base[512];
	int ret = list_command(x, ptv_sources_print);

	/* What to paste into Plex, Jellyfin or Channels DVR. */
	if (!ret && !x->json && !load_config(x, cfg)) {
		ptv_lineup_base_url(cfg->base_url, cfg->listen, base, sizeof(base));
		printf("\nTuner (HDHomeRun): %s\nM3U: %s/lineup.m3u\nGuide (XMLTV): %s/xmltv.xml\n",
		       base, base, base);
	}
	free(cfg);
	return ret;
}

/* `guide map|unmap|list` (EPG, issue 6): manual guide mapping, stored in the store. */
static int cmd_guide(struct cli_ctx *x)
{
	const char *act = x->argc ? x->argv[0] : "";
	struct ptv_store *store = NULL;
	const char *target;
	int ret;

	if (!((!strcmp(act, "map") && x->argc == 3) || (!strcmp(act, "unmap") && x->argc == 2) ||
	      (!strcmp(act, "list") && x->argc == 1)))
		return usage_error(x->cmd, "expected: guide map GUIDENUMBER GUIDE_CHANNEL_ID|-, "
					   "guide unmap GUIDENUMBER or guide list [--json]");
	ret = open_store(x, &store);
	if (ret)
		return ret;
	if (!strcmp(act, "list")) {
		ret = ptv_epg_map_print(store, stdout, x->json) ? EX_IOERR : EX_OK;
		goto out;
	}
	target = act[0] == 'u' ? NULL : (strcmp(x->argv[2], "-") ? x->argv[2] : "");
	ret = ptv_epg_map_set(store, x->argv[1], target);
	if (ret == -ENOENT) {
		fprintf(stderr, "%s guide: no channel has GuideNumber '%s'\n", PROG, x->argv[1]);
		ret = EX_DATAERR;
	} else if (ret) {
		fprintf(stderr, "%s guide: %s\n", PROG, ptv_strerror(ret));
		ret = EX_IOERR;
	} else {
		printf("channel %s: %s%s%s\n", x->argv[1],
		       !target	   ? "automatic guide matching"
		       : target[0] ? "guide channel "
				   : "",
		       target ? target : "", target && !target[0] ? "no guide (dummy)" : "");
		printf("guide channels are kept at import: run the guide's import again (or wait "
		       "for its refresh) to fetch programmes for a new mapping\n");
	}
out:
	ptv_store_close(store);
	return ret;
}

static int cmd_healthcheck(struct cli_ctx *x)
{
	char url[256];
	int ret;

	ret = no_arguments(x);
	if (ret)
		return ret;
	/* An explicit --url needs no configuration: a broken config file must not hide health. */
	if (!x->url) {
		ret = health_url(x, url, sizeof(url));
		if (ret)
			return ret;
	}
	return http_check(x->url ? x->url : url, x->timeout_s);
}

static int cmd_version(struct cli_ctx *x)
{
	curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	unsigned lavf = avformat_version();
	int maj, min, patch;

	printf("%s %s (commit %s)\n", PROG, PTV_VERSION, PTV_GIT_COMMIT);
#ifdef IO_URING_VERSION_MAJOR
	printf("liburing %d.%d\n", IO_URING_VERSION_MAJOR, IO_URING_VERSION_MINOR);
#endif
	printf("llhttp %d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
	       LLHTTP_VERSION_PATCH);
	printf("libavformat %u.%u.%u (FFmpeg %s)\n", AV_VERSION_MAJOR(lavf), AV_VERSION_MINOR(lavf),
	       AV_VERSION_MICRO(lavf), av_version_info());
	mdb_version(&maj, &min, &patch);
	printf("lmdb %d.%d.%d\n", maj, min, patch);
	printf("libcurl %s\n", curl->version);
	return EX_OK;
}

static int cmd_help(struct cli_ctx *x)
{
	const struct cli_cmd *cmd;

	if (x->argc == 0) {
		usage_main(stdout);
		return EX_OK;
	}
	cmd = find_command(x->argv[0]);
	if (!cmd || x->argc > 1)
		return usage_error(NULL, "unknown command '%s'", x->argv[cmd ? 1 : 0]);
	usage_command(cmd, stdout);
	return EX_OK;
}

int ptv_cli_main(int argc, char **argv)
{
	struct cli_ctx x = {.timeout_s = HEALTH_TIMEOUT_S};
	int ret;

	if (argc < 2) {
		usage_main(stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage_main(stdout);
		return EX_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return cmd_version(&x);
	x.cmd = find_command(argv[1]);
	if (!x.cmd)
		return usage_error(NULL, "%s '%s'",
				   argv[1][0] == '-' ? "unknown option" : "unknown command",
				   argv[1]);
	ret = parse_command_line(&x, argc - 1, argv + 1);
	if (ret < 0)
		ret = x.cmd->run(&x);
	free(x.ov);
	fflush(stdout);
	return ret;
}
