/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Logging: levels, text or JSON lines on stderr.
 *
 * Every line passes through ptv_redact_text() before it is written, so credentials inside URLs
 * (user:pass@, username=/password= parameters, Xtream /live/USER/PASS/ paths) never reach the
 * log whatever the caller passed.
 *
 * In `serve`, ptv_log_async_start() moves the write(2) to a logger thread behind a bounded queue:
 * a reactor thread must never block on a full stderr pipe. Lines that do not fit are dropped
 * and counted (ptv_log_dropped()). Without it (CLI commands, tests) lines are written at once.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/common.h"

enum ptv_log_level {
	PTV_LOG_DEBUG = 0,
	PTV_LOG_INFO = 1,
	PTV_LOG_WARN = 2,
	PTV_LOG_ERROR = 3,
};

enum ptv_log_format {
	PTV_LOG_TEXT = 0, /* 2026-11-01T12:00:00.123Z INFO http: message */
	PTV_LOG_JSON = 1, /* {"ts":"…","level":"info","module":"http","msg":"…"} */
};

/** Parses "debug|info|warn|warning|error" (case-insensitive). Returns 0 or -EINVAL. */
int ptv_log_level_parse(const char *s, enum ptv_log_level *out);
/** Parses "text|json". Returns 0 or -EINVAL. */
int ptv_log_format_parse(const char *s, enum ptv_log_format *out);
const char *ptv_log_level_name(enum ptv_log_level level);
const char *ptv_log_format_name(enum ptv_log_format fmt);

/** Thread-safe; takes effect for the next line (used by SIGHUP reload). */
void ptv_log_set_level(enum ptv_log_level level);
void ptv_log_set_format(enum ptv_log_format fmt);
bool ptv_log_enabled(enum ptv_log_level level);

/**
 * Starts the logger thread; lines are queued (at most @queue_lines) instead of written by the
 * caller. Returns 0 or a negative errno. Calling it twice is an error (-EALREADY).
 */
int ptv_log_async_start(size_t queue_lines);
/** Writes out what is queued and stops the logger thread. Safe to call when not started. */
void ptv_log_async_stop(void);
/** Lines dropped because the queue was full. */
uint64_t ptv_log_dropped(void);

/**
 * Replaces the output: every formatted line (with its trailing '\n') goes to @fn instead of
 * stderr. For tests; pass NULL to restore stderr.
 */
void ptv_log_set_sink(void (*fn)(const char *line, size_t len, void *ctx), void *ctx);

void ptv_log(enum ptv_log_level level, const char *module, const char *fmt, ...) PTV_PRINTF(3, 4);
void ptv_logv(enum ptv_log_level level, const char *module, const char *fmt, va_list ap)
	PTV_PRINTF(3, 0);

#define ptv_debug(mod, ...)                                       \
	do {                                                      \
		if (ptv_log_enabled(PTV_LOG_DEBUG))               \
			ptv_log(PTV_LOG_DEBUG, mod, __VA_ARGS__); \
	} while (0)
#define ptv_info(mod, ...)  ptv_log(PTV_LOG_INFO, mod, __VA_ARGS__)
#define ptv_warn(mod, ...)  ptv_log(PTV_LOG_WARN, mod, __VA_ARGS__)
#define ptv_error(mod, ...) ptv_log(PTV_LOG_ERROR, mod, __VA_ARGS__)
