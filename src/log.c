/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Logger (see log.h). A line is built in three steps: format the message, redact it, then wrap
 * it in the text or JSON envelope. Redaction runs on the whole formatted message before any
 * cut, so the size cap can never split a URL and leave half a password behind; the cap then
 * applies to the redacted text.
 *
 * Output is one write(2) per line. In async mode the line (already formatted, so the caller's
 * arguments need not outlive the call) is handed to the logger thread through a bounded ring.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "plextv/buf.h"
#include "plextv/log.h"
#include "plextv/redact.h"

/* Longest message kept (after redaction); the rest is cut and a marker says how much. */
#define LOG_MSG_MAX 8192

struct log_entry {
	char *line;
	size_t len;
};

typedef void (*log_sink_fn)(const char *line, size_t len, void *ctx);

/*
 * Process-wide state, on purpose: like libbpf_set_print() or the stderr stream itself, there is
 * one log per process, and every module logs without being handed a context. Level and format
 * are atomics so SIGHUP can change them while reactors log; the rest is behind mutexes.
 */
static struct {
	atomic_int level;
	atomic_int format;
	atomic_uint_least64_t dropped;

	pthread_mutex_t out_lock; /* serialises output and guards the sink */
	log_sink_fn sink;
	void *sink_ctx;

	pthread_mutex_t q_lock; /* guards everything below */
	pthread_cond_t q_cond;
	pthread_t thread;
	bool running;  /* producers queue instead of writing */
	bool stopping; /* the thread drains and exits */
	struct log_entry *ring;
	size_t cap, head, count;
} logger = {
	.level = PTV_LOG_INFO,
	.format = PTV_LOG_TEXT,
	.out_lock = PTHREAD_MUTEX_INITIALIZER,
	.q_lock = PTHREAD_MUTEX_INITIALIZER,
	.q_cond = PTHREAD_COND_INITIALIZER,
};

static const char *const level_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_lower[] = {"debug", "info", "warn", "error"};

int ptv_log_level_parse(const char *s, enum ptv_log_level *out)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(level_lower); i++) {
		if (!strcasecmp(s, level_lower[i])) {
			*out = (enum ptv_log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warning")) {
		*out = PTV_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

int ptv_log_format_parse(const char *s, enum ptv_log_format *out)
{
	if (!strcasecmp(s, "text"))
		*out = PTV_LOG_TEXT;
	else if (!strcasecmp(s, "json"))
		*out = PTV_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

static unsigned level_index(enum ptv_log_level level)
{
	return (unsigned)level < PTV_ARRAY_SIZE(level_lower) ? (unsigned)level : PTV_LOG_ERROR;
}

const char *ptv_log_level_name(enum ptv_log_level level)
{
	return level_lower[level_index(level)];
}

const char *ptv_log_format_name(enum ptv_log_format fmt)
{
	return fmt == PTV_LOG_JSON ? "json" : "text";
}

void ptv_log_set_level(enum ptv_log_level level)
{
	atomic_store_explicit(&logger.level, (int)level_index(level), memory_order_relaxed);
}

void ptv_log_set_format(enum ptv_log_format fmt)
{
	atomic_store_explicit(&logger.format, fmt == PTV_LOG_JSON ? PTV_LOG_JSON : PTV_LOG_TEXT,
			      memory_order_relaxed);
}

bool ptv_log_enabled(enum ptv_log_level level)
{
	return (int)level >= atomic_load_explicit(&logger.level, memory_order_relaxed);
}

uint64_t ptv_log_dropped(void)
{
	return atomic_load_explicit(&logger.dropped, memory_order_relaxed);
}

void ptv_log_set_sink(void (*fn)(const char *line, size_t len, void *ctx), void *ctx)
{
	pthread_mutex_lock(&logger.out_lock);
	logger.sink = fn;
	logger.sink_ctx = ctx;
	pthread_mutex_unlock(&logger.out_lock);
}

/* One write(2) per line so lines from several processes on one pipe do not interleave. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere to report a failing stderr */
		}
		p += r;
		n -= (size_t)r;
	}
}

static void emit(const char *line, size_t len)
{
	pthread_mutex_lock(&logger.out_lock);
	if (logger.sink)
		logger.sink(line, len, logger.sink_ctx);
	else
		write_all(STDERR_FILENO, line, len);
	pthread_mutex_unlock(&logger.out_lock);
}

static void put_timestamp(struct ptv_buf *b)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	ptv_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Length of the valid UTF-8 sequence at @p (at most @n bytes), or 0 if it is not valid. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string body: quotes, backslashes and controls escaped, invalid UTF-8 as U+FFFD. */
static void put_json_string(struct ptv_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t run = i, len;

		/* Copy the longest run that needs no escaping in one append. */
		while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		ptv_buf_append(b, s + i, run - i);
		i = run;
		if (i == n)
			break;
		switch (p[i]) {
		case '"':
			ptv_buf_puts(b, "\\\"");
			break;
		case '\\':
			ptv_buf_puts(b, "\\\\");
			break;
		case '\n':
			ptv_buf_puts(b, "\\n");
			break;
		case '\r':
			ptv_buf_puts(b, "\\r");
			break;
		case '\t':
			ptv_buf_puts(b, "\\t");
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				ptv_buf_printf(b, "\\u%04x", p[i]);
				break;
			}
			len = utf8_seq_len(p + i, n - i);
			if (!len) {
				ptv_buf_puts(b, "\\ufffd");
				len = 1;
			} else {
				ptv_buf_append(b, s + i, len);
			}
			i += len;
			continue;
		}
		i++;
	}
}

/* Text lines stay one line each: a newline inside a message (say a channel name) is escaped. */
static void put_text(struct ptv_buf *b, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t run = i;

		while (run < n && ((unsigned char)s[run] >= 0x20 || s[run] == '\t') &&
		       s[run] != 0x7f)
			run++;
		ptv_buf_append(b, s + i, run - i);
		i = run;
		if (i == n)
			break;
		if (s[i] == '\n')
			ptv_buf_puts(b, "\\n");
		else if (s[i] == '\r')
			ptv_buf_puts(b, "\\r");
		else
			ptv_buf_printf(b, "\\x%02x", (unsigned char)s[i]);
		i++;
	}
}

/* Where to cut @s to at most @max bytes without splitting a UTF-8 sequence. */
static size_t cut_point(const char *s, size_t max)
{
	size_t cut = max, back = 0;

	while (cut > 0 && back < 3 && ((unsigned char)s[cut] & 0xc0) == 0x80) {
		cut--;
		back++;
	}
	return ((unsigned char)s[cut] & 0xc0) == 0x80 ? max : cut;
}

static void build_line(struct ptv_buf *b, enum ptv_log_level level, const char *module,
		       const char *msg)
{
	size_t len = strlen(msg), keep = len;
	char marker[64] = "";

	if (!module)
		module = "-";
	if (len > LOG_MSG_MAX) {
		keep = cut_point(msg, LOG_MSG_MAX);
		snprintf(marker, sizeof(marker), " [truncated %zu bytes]", len - keep);
	}
	if (atomic_load_explicit(&logger.format, memory_order_relaxed) == PTV_LOG_JSON) {
		ptv_buf_puts(b, "{\"ts\":\"");
		put_timestamp(b);
		ptv_buf_printf(b, "\",\"level\":\"%s\",\"module\":\"", level_lower[level]);
		put_json_string(b, module, strlen(module));
		ptv_buf_puts(b, "\",\"msg\":\"");
		put_json_string(b, msg, keep);
		ptv_buf_puts(b, marker);
		ptv_buf_puts(b, "\"}\n");
	} else {
		put_timestamp(b);
		ptv_buf_printf(b, " %s ", level_upper[level]);
		put_text(b, module, strlen(module));
		ptv_buf_puts(b, ": ");
		put_text(b, msg, keep);
		ptv_buf_puts(b, marker);
		ptv_buf_putc(b, '\n');
	}
}

/* Async mode: true when the line was queued or dropped, false when the caller must write it. */
static bool enqueue(struct ptv_buf *b)
{
	struct log_entry *e;
	bool taken = false;

	pthread_mutex_lock(&logger.q_lock);
	if (!logger.running)
		goto out;
	taken = true;
	if (logger.count == logger.cap) {
		atomic_fetch_add_explicit(&logger.dropped, 1, memory_order_relaxed);
		goto out;
	}
	e = &logger.ring[(logger.head + logger.count) % logger.cap];
	e->line = ptv_buf_steal(b, &e->len);
	if (!e->line) {
		atomic_fetch_add_explicit(&logger.dropped, 1, memory_order_relaxed);
		goto out;
	}
	logger.count++;
	pthread_cond_signal(&logger.q_cond);
out:
	pthread_mutex_unlock(&logger.q_lock);
	return taken;
}

static void output(struct ptv_buf *b)
{
	if (b->oom) {
		atomic_fetch_add_explicit(&logger.dropped, 1, memory_order_relaxed);
		return;
	}
	if (!enqueue(b))
		emit(b->data, b->len);
}

static void log_message(enum ptv_log_level level, const char *module, const char *msg)
{
	char stack[2048], *red = stack;
	struct ptv_buf b;
	size_t n;

	n = ptv_redact_text(msg, stack, sizeof(stack));
	if (n >= sizeof(stack)) {
		red = malloc(n + 1);
		if (!red) {
			red = stack;
			snprintf(stack, sizeof(stack), "[message dropped: out of memory]");
		} else {
			ptv_redact_text(msg, red, n + 1);
		}
	}
	ptv_buf_init(&b);
	build_line(&b, level, module, red);
	output(&b);
	ptv_buf_free(&b);
	if (red != stack)
		free(red);
}

void ptv_logv(enum ptv_log_level level, const char *module, const char *fmt, va_list ap)
{
	char stack[1024], *heap = NULL;
	const char *msg = stack;
	int saved_errno = errno; /* callers may log between a failing call and reading errno */
	va_list ap2;
	int n;

	if (!ptv_log_enabled(level))
		return;
	level = (enum ptv_log_level)level_index(level);
	va_copy(ap2, ap);
	n = vsnprintf(stack, sizeof(stack), fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		msg = "[message dropped: bad format]";
	} else if ((size_t)n >= sizeof(stack)) {
		heap = malloc((size_t)n + 1);
		if (heap) {
			vsnprintf(heap, (size_t)n + 1, fmt, ap);
			msg = heap;
		} else {
			msg = "[message dropped: out of memory]";
		}
	}
	log_message(level, module, msg);
	free(heap);
	errno = saved_errno;
}

void ptv_log(enum ptv_log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ptv_logv(level, module, fmt, ap);
	va_end(ap);
}

/* Says how many lines were lost once the queue has room again. */
static void report_drops(uint64_t *reported)
{
	uint64_t now = ptv_log_dropped();
	struct ptv_buf b;
	char msg[96];

	if (now == *reported)
		return;
	snprintf(msg, sizeof(msg), "%llu log lines dropped (queue full, %llu in total)",
		 (unsigned long long)(now - *reported), (unsigned long long)now);
	*reported = now;
	ptv_buf_init(&b);
	build_line(&b, PTV_LOG_WARN, "log", msg);
	if (!b.oom)
		emit(b.data, b.len);
	ptv_buf_free(&b);
}

static void *logger_main(void *arg)
{
	uint64_t reported = ptv_log_dropped();
	struct log_entry e;

	pthread_mutex_lock(&logger.q_lock);
	for (;;) {
		while (!logger.count && !logger.stopping)
			pthread_cond_wait(&logger.q_cond, &logger.q_lock);
		if (!logger.count)
			break; /* stopping and drained */
		e = logger.ring[logger.head];
		logger.head = (logger.head + 1) % logger.cap;
		logger.count--;
		pthread_mutex_unlock(&logger.q_lock);

		emit(e.line, e.len);
		free(e.line);

		pthread_mutex_lock(&logger.q_lock);
		if (!logger.count) {
			pthread_mutex_unlock(&logger.q_lock);
			report_drops(&reported);
			pthread_mutex_lock(&logger.q_lock);
		}
	}
	pthread_mutex_unlock(&logger.q_lock);
	report_drops(&reported);
	return NULL;
}

int ptv_log_async_start(size_t queue_lines)
{
	int ret = 0;

	if (!queue_lines)
		return -EINVAL;
	pthread_mutex_lock(&logger.q_lock);
	if (logger.running || logger.stopping) {
		ret = -EALREADY;
		goto out;
	}
	logger.ring = calloc(queue_lines, sizeof(*logger.ring));
	if (!logger.ring) {
		ret = -ENOMEM;
		goto out;
	}
	logger.cap = queue_lines;
	logger.head = logger.count = 0;
	ret = -pthread_create(&logger.thread, NULL, logger_main, NULL);
	if (ret) {
		ptv_freep(&logger.ring);
		goto out;
	}
	pthread_setname_np(logger.thread, "ptv-log");
	logger.running = true;
out:
	pthread_mutex_unlock(&logger.q_lock);
	return ret;
}

void ptv_log_async_stop(void)
{
	pthread_t thread;

	pthread_mutex_lock(&logger.q_lock);
	if (!logger.running) {
		pthread_mutex_unlock(&logger.q_lock);
		return;
	}
	/* From here on callers write directly; the thread writes out what was queued before. */
	logger.running = false;
	logger.stopping = true;
	thread = logger.thread;
	pthread_cond_signal(&logger.q_cond);
	pthread_mutex_unlock(&logger.q_lock);

	pthread_join(thread, NULL);

	pthread_mutex_lock(&logger.q_lock);
	logger.stopping = false;
	ptv_freep(&logger.ring);
	logger.cap = 0;
	pthread_mutex_unlock(&logger.q_lock);
}
