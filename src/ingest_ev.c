/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Event lines on fd 2 (see plextv/ingest.h): one JSON object per line, each written with one
 * write(2) of at most PIPE_BUF bytes so the parent never sees a torn line. av_log output is
 * turned into "log" events: redacted (FFmpeg prints URLs with their credentials) and
 * rate-limited (a broken stream can log thousands of lines per second).
 */
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "plextv/common.h"
#include "plextv/log.h"
#include "plextv/redact.h"
#include "ingest_int.h"

#define LOG_BURST     20   /* log lines allowed at once... */
#define LOG_REFILL_MS 1000 /* ...then one per second */
#define MSG_MAX	      1024

/*
 * File-scope state: av_log_set_callback() takes no context pointer, and the child process
 * exists for one upstream, so one event stream per process is the whole truth. The mutex is
 * there because FFmpeg may log from a thread of its own.
 */
static struct {
	pthread_mutex_t lock;
	int fd;
	uint64_t t0_ns;
	double tokens;	       /* rate limiter for av_log lines */
	uint64_t refill_ns;    /* last refill */
	unsigned suppressed;   /* lines dropped since the last one written */
	char partial[MSG_MAX]; /* av_log line still missing its '\n' */
	size_t partial_len;
	char last_error[MSG_MAX]; /* the newest av_log line at error level, redacted */
} ev = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = 2};

int64_t ing_ev_elapsed_ms(void)
{
	return (int64_t)((ptv_now_ns() - ev.t0_ns) / 1000000u);
}

static void write_line(json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
	size_t len;
	ssize_t n;

	if (!s)
		return;
	len = strlen(s);
	if (len + 1 > PIPE_BUF) {
		/* Only "msg" can be long: cut it and try again. */
		json_t *msg = json_object_get(obj, "msg");

		free(s);
		if (!msg || json_string_length(msg) < 64)
			return;
		json_object_set_new(
			obj, "msg",
			json_stringn(json_string_value(msg), json_string_length(msg) / 2));
		write_line(obj);
		return;
	}
	s[len++] = '\n'; /* json_dumps left room: it wrote a NUL there */
	do {
		n = write(ev.fd, s, len);
	} while (n < 0 && errno == EINTR);
	/* A short write cannot happen below PIPE_BUF; a dead parent is noticed on fd 1. */
	free(s);
}

static void emit(const char *name, const char *fmt, va_list ap)
{
	json_t *obj = json_object(), *rest = NULL;
	char full[256];

	json_object_set_new(obj, "ev", json_string(name));
	if (fmt) {
		snprintf(full, sizeof(full), "{%s}", fmt);
		rest = json_vpack_ex(NULL, 0, full, ap);
		PTV_BUG_ON(!rest); /* a bad format is a bug in this file's callers */
		json_object_update(obj, rest);
		json_decref(rest);
	}
	write_line(obj);
	json_decref(obj);
}

void ing_ev(const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&ev.lock);
	emit(name, fmt, ap);
	pthread_mutex_unlock(&ev.lock);
	va_end(ap);
}

/*
 * Strips the trailing newline, turns control characters into spaces and non-ASCII bytes into
 * '?': FFmpeg prints stream metadata as it comes, and jansson refuses invalid UTF-8.
 */
static void clean(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (char *p = s; *p; p++) {
		if ((unsigned char)*p < 0x20)
			*p = ' ';
		else if ((unsigned char)*p >= 0x7f)
			*p = '?';
	}
}

/* Caller holds the lock. */
static void log_locked(const char *level, const char *msg)
{
	char red[MSG_MAX];
	json_t *obj;

	ptv_redact_text(msg, red, sizeof(red));
	clean(red);
	obj = json_pack("{s:s, s:s, s:s}", "ev", "log", "level", level, "msg", red);
	if (obj) {
		write_line(obj);
		json_decref(obj);
	}
}

void ing_ev_log(const char *level, const char *msg)
{
	pthread_mutex_lock(&ev.lock);
	log_locked(level, msg);
	pthread_mutex_unlock(&ev.lock);
}

/* Token bucket; caller holds the lock. */
static bool log_allowed(void)
{
	uint64_t now = ptv_now_ns();

	ev.tokens += (double)(now - ev.refill_ns) / (LOG_REFILL_MS * 1e6);
	ev.refill_ns = now;
	if (ev.tokens > LOG_BURST)
		ev.tokens = LOG_BURST;
	if (ev.tokens < 1) {
		ev.suppressed++;
		return false;
	}
	ev.tokens -= 1;
	if (ev.suppressed) {
		char note[64];

		snprintf(note, sizeof(note), "%u log lines suppressed", ev.suppressed);
		ev.suppressed = 0;
		log_locked("warn", note);
	}
	return true;
}

static void av_log_cb(void *avcl, int level, const char *fmt, va_list vl)
{
	static int print_prefix = 1; /* av_log_format_line2's state across partial lines */
	char line[MSG_MAX];
	size_t n;

	if (level > AV_LOG_WARNING)
		return;
	pthread_mutex_lock(&ev.lock);
	if (av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix) < 0)
		goto out;
	n = strlen(line);
	/* A line may come in pieces: keep pieces until the newline. */
	if (ev.partial_len + n >= sizeof(ev.partial))
		n = sizeof(ev.partial) - ev.partial_len - 1;
	memcpy(ev.partial + ev.partial_len, line, n);
	ev.partial_len += n;
	ev.partial[ev.partial_len] = '\0';
	if (!print_prefix && ev.partial_len < sizeof(ev.partial) - 1)
		goto out; /* no newline yet */
	clean(ev.partial);
	if (level <= AV_LOG_ERROR && ev.partial[0]) {
		ptv_redact_text(ev.partial, ev.last_error, sizeof(ev.last_error));
		clean(ev.last_error);
	}
	if (ev.partial[0] && log_allowed())
		log_locked(level <= AV_LOG_ERROR ? "error" : "warn", ev.partial);
	ev.partial_len = 0;
out:
	pthread_mutex_unlock(&ev.lock);
}

void ing_ev_last_error(char *out, size_t len, bool clear)
{
	pthread_mutex_lock(&ev.lock);
	snprintf(out, len, "%s", ev.last_error);
	if (clear)
		ev.last_error[0] = '\0';
	pthread_mutex_unlock(&ev.lock);
}

/* Our own ptv_log() lines (shared code may log) become "log" events too. */
static void ptv_log_sink(const char *line, size_t len, void *ctx)
{
	char buf[MSG_MAX];

	len = PTV_MIN(len, sizeof(buf) - 1);
	memcpy(buf, line, len);
	buf[len] = '\0';
	clean(buf);
	ing_ev_log("warn", buf);
}

void ing_ev_init(int fd, uint64_t t0_ns)
{
	ev.fd = fd;
	ev.t0_ns = t0_ns;
	ev.tokens = LOG_BURST;
	ev.refill_ns = t0_ns;
	av_log_set_level(AV_LOG_WARNING);
	av_log_set_callback(av_log_cb);
	ptv_log_set_sink(ptv_log_sink, NULL);
}
