/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Static configuration, in four layers, later ones winning:
 *   built-in defaults < INI file < PLEXTV_* environment < command-line flags.
 *
 * The INI file is --config FILE, else DATA_DIR/plextv.conf when it exists. Keys live in
 * sections ([server], [http], [log], [tuner], [sources], [relay], [discovery], [guide],
 * [acestream]); each key has one environment name
 * (PLEXTV_<KEY>, e.g. PLEXTV_LOG_LEVEL) and one long flag (--log-level). Environment values can
 * also come from files: PLEXTV_X_FILE=/run/secrets/x or FILE__PLEXTV_X=/run/secrets/x.
 *
 * Dynamic state (sources, channels, guide mapping, device identity) is not here: it lives in
 * LMDB.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#include "plextv/log.h"

struct ptv_config {
	/* [server] */
	char listen[128]; /* ADDR:PORT, [v6]:PORT; default 0.0.0.0:8080 */
	char data_dir[PATH_MAX];
	char base_url[512];    /* advertised URL; empty = derived from a LAN address */
	unsigned workers;      /* reactor threads; 0 = one per online CPU */
	unsigned pool_threads; /* threads for blocking work */
	unsigned max_connections;
	unsigned shutdown_timeout_ms; /* SIGTERM: how long in-flight responses may finish */
	char demo_dir[PATH_MAX];      /* seeded into an empty store; "" = no demo */
	/* [http] */
	unsigned header_max_bytes;
	unsigned header_max_count;
	unsigned url_max_bytes;
	unsigned body_max_bytes;
	unsigned header_timeout_ms; /* whole request head must arrive within this (slowloris) */
	unsigned idle_timeout_ms;   /* keep-alive connection with no request */
	unsigned write_timeout_ms;  /* between two successful writes */
	/* [log] */
	enum ptv_log_level log_level;
	enum ptv_log_format log_format;
	/* [tuner] */
	unsigned tuners;
	char friendly_name[64];
	unsigned device_channels; /* per virtual device */
	/* [sources] */
	char user_agent[256];
	char acestream_engine[512]; /* may carry credentials: redacted on output */
	/* [relay] */
	char relay_send_mode[16];	     /* send | zc | splice */
	unsigned relay_ring_bytes;	     /* per-channel ring */
	unsigned relay_ring_seconds;	     /* per-channel ring, time bound; 0 = none */
	unsigned relay_linger_ms;	     /* upstream kept after the last viewer left */
	unsigned relay_tune_grace_ms;	     /* cold tune: wait for data or 806/807 before 200 */
	unsigned relay_tune_deadline_ms;     /* cold tune: close when no byte came by then */
	unsigned relay_source_max_streams;   /* per source, 0 = unlimited */
	unsigned relay_max_lag_ms;	     /* viewer lag bound before a resync */
	unsigned relay_send_batch_ms;	     /* longest wait to fill a send */
	unsigned relay_ingest_stall_ms;	     /* child's stall and first-packet budget */
	char relay_ingest_command[PATH_MAX]; /* "" = /proc/self/exe ingest */

	/* Where the INI file was read from ("" if none). Not a key. */
	char config_file[PATH_MAX];

	/*
	 * Which layer set each key (default, file, env, flag), indexed like ptv_config_key().
	 * Private to config.c, which fills it and prints it in ptv_config_show(); kept in the
	 * struct so that copying a config copies its provenance.
	 */
	unsigned char source[64];
	/* [discovery] (ssdp.h, hdhr_disc.h, netfilter.h, bpf_loader.h) */
	char ssdp[8];		       /* on | off */
	char hdhr_discovery[8];	       /* on | off: UDP 65001 */
	char allow_prefixes[512];      /* answered besides directly attached subnets */
	char http_port80[8];	       /* on | off: also serve HTTP on port 80 (Jellyfin) */
	char bpf[8];		       /* auto | on | off */
	unsigned ssdp_notify_interval; /* seconds between ssdp:alive rounds */
	/* [guide] (EPG, epg.h) */
	unsigned guide_retention_days;	    /* programmes that ended longer ago are dropped */
	unsigned guide_dummy;		    /* 1: dummy guide for channels without programmes */
	unsigned guide_dummy_block_minutes; /* length of a dummy programme */
	unsigned guide_dummy_hours;	    /* how far ahead the dummy guide reaches */
	char guide_shift_hours[16];	    /* default shift of a new guide source, -24..24 */
	unsigned guide_max_mb;		    /* decoded XMLTV size cap */
	unsigned guide_timeout_s;	    /* wall time of one import: fetch + parse + store */
	/* [acestream] (acestream.h; the engine URL is acestream_engine in [sources]) */
	unsigned acestream_max_sessions;     /* concurrent engine sessions, 0 = unlimited */
	unsigned acestream_timeout_ms;	     /* getstream, stat_url and version calls */
	unsigned acestream_stop_timeout_ms;  /* command_url?method=stop */
	unsigned acestream_stat_interval_ms; /* stat_url polls while a channel runs, 0 = none */
	unsigned acestream_prebuffer_ms;     /* first-TS-byte budget of an Acestream channel */
};

/** Describes one configuration key; the table in config.c is the single source of truth. */
struct ptv_config_key_desc {
	const char *section; /* INI section without brackets: "log" */
	const char *name;    /* INI key: "log_level" */
	const char *flag;    /* long flag without dashes: "log-level" */
	const char *env;     /* environment variable: "PLEXTV_LOG_LEVEL" */
	const char *metavar; /* placeholder in --help: "LEVEL" */
	const char *help;    /* one line for --help */
};

/** The @i-th key in section order, or NULL past the last one (for CLI option tables). */
const struct ptv_config_key_desc *ptv_config_key(size_t i);

/** A command-line override: @key is the long flag name without dashes ("log-level"). */
struct ptv_config_override {
	const char *key;
	const char *value;
};

void ptv_config_defaults(struct ptv_config *c);

/**
 * Builds the effective configuration: defaults, then @file (NULL: DATA_DIR/plextv.conf if it
 * exists, where DATA_DIR comes from the later layers or the default), then the environment,
 * then @ov. On failure returns -PTV_ERR_CONFIG (or a negative errno for an unreadable file)
 * and writes a one-line reason naming the file, line and key into @err.
 */
int ptv_config_load(struct ptv_config *out, const char *file, const struct ptv_config_override *ov,
		    size_t n_ov, char *err, size_t errlen);

/** Sets one key by its flag name ("log-level") or INI name ("log_level"); validates the value. */
int ptv_config_set(struct ptv_config *c, const char *key, const char *value, char *err,
		   size_t errlen);

/** True when @key names a configuration key (flag or INI spelling). */
bool ptv_config_has_key(const char *key);

/** Prints every key = effective value (secrets and URL credentials redacted), INI-style. */
void ptv_config_show(const struct ptv_config *c, FILE *out);

/** Parses "ADDR:PORT", "[v6]:PORT" or ":PORT" into a socket address. Returns 0 or -EINVAL. */
int ptv_config_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);
