/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "plextv/log.h"

/* Lines the sink received, in order. Written by whichever thread logs (or the logger thread). */
struct capture {
	char text[1 << 16];
	size_t len;
	unsigned lines;
	/* Gate: when armed, the sink blocks on its first line until released. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed, blocked, released;
};

static struct capture cap = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void sink(const char *line, size_t len, void *ctx)
{
	struct capture *c = ctx;

	pthread_mutex_lock(&c->lock);
	if (c->armed) {
		c->blocked = true;
		pthread_cond_broadcast(&c->cond);
		while (!c->released)
			pthread_cond_wait(&c->cond, &c->lock);
		c->armed = false;
	}
	if (c->len + len < sizeof(c->text)) {
		memcpy(c->text + c->len, line, len);
		c->len += len;
		c->text[c->len] = '\0';
	}
	c->lines++;
	pthread_mutex_unlock(&c->lock);
}

static int setup(void **state)
{
	pthread_mutex_lock(&cap.lock);
	cap.len = 0;
	cap.text[0] = '\0';
	cap.lines = 0;
	cap.armed = cap.blocked = cap.released = false;
	pthread_mutex_unlock(&cap.lock);
	ptv_log_set_sink(sink, &cap);
	ptv_log_set_level(PTV_LOG_INFO);
	ptv_log_set_format(PTV_LOG_TEXT);
	return 0;
}

static int teardown(void **state)
{
	ptv_log_async_stop();
	ptv_log_set_sink(NULL, NULL);
	return 0;
}

static void assert_matches(const char *text, const char *pattern)
{
	regex_t re;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&re, text, 0, NULL, 0))
		fail_msg("\"%s\" does not match /%s/", text, pattern);
	regfree(&re);
}

static void test_parse_names(void **state)
{
	enum ptv_log_level l;
	enum ptv_log_format f;

	assert_int_equal(ptv_log_level_parse("debug", &l), 0);
	assert_int_equal(l, PTV_LOG_DEBUG);
	assert_int_equal(ptv_log_level_parse("INFO", &l), 0);
	assert_int_equal(l, PTV_LOG_INFO);
	assert_int_equal(ptv_log_level_parse("Warning", &l), 0);
	assert_int_equal(l, PTV_LOG_WARN);
	assert_int_equal(ptv_log_level_parse("warn", &l), 0);
	assert_int_equal(l, PTV_LOG_WARN);
	assert_int_equal(ptv_log_level_parse("error", &l), 0);
	assert_int_equal(l, PTV_LOG_ERROR);
	assert_int_equal(ptv_log_level_parse("loud", &l), -EINVAL);
	assert_int_equal(ptv_log_level_parse("", &l), -EINVAL);
	assert_int_equal(ptv_log_format_parse("JSON", &f), 0);
	assert_int_equal(f, PTV_LOG_JSON);
	assert_int_equal(ptv_log_format_parse("text", &f), 0);
	assert_int_equal(f, PTV_LOG_TEXT);
	assert_int_equal(ptv_log_format_parse("xml", &f), -EINVAL);
	assert_string_equal(ptv_log_level_name(PTV_LOG_WARN), "warn");
	assert_string_equal(ptv_log_format_name(PTV_LOG_JSON), "json");
}

static void test_text_format(void **state)
{
	ptv_info("http", "hello %d", 42);
	assert_int_equal(cap.lines, 1);
	assert_matches(cap.text,
		       "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
		       "INFO http: hello 42\n$");
	cap.len = 0;
	ptv_error(NULL, "x");
	assert_matches(cap.text, "Z ERROR -: x\n$");
	/* A newline in a message must not start a fake log line. */
	cap.len = 0;
	ptv_warn("m3u", "name=%s", "a\nZ INFO fake: b\r\x01\tc");
	assert_matches(cap.text, "Z WARN m3u: name=a\\\\nZ INFO fake: b\\\\r\\\\x01\tc\n$");
}

static void test_keeps_errno(void **state)
{
	errno = EPIPE;
	ptv_info("t", "%s", "x");
	ptv_debug("t", "filtered");
	assert_int_equal(errno, EPIPE);
	assert_int_equal(cap.lines, 1);
}

static void test_levels(void **state)
{
	ptv_log_set_level(PTV_LOG_WARN);
	assert_false(ptv_log_enabled(PTV_LOG_INFO));
	assert_true(ptv_log_enabled(PTV_LOG_WARN));
	ptv_debug("t", "d");
	ptv_info("t", "i");
	assert_int_equal(cap.lines, 0);
	ptv_warn("t", "w");
	ptv_error("t", "e");
	assert_int_equal(cap.lines, 2);
	ptv_log_set_level(PTV_LOG_DEBUG);
	ptv_debug("t", "d");
	assert_int_equal(cap.lines, 3);
	assert_matches(cap.text, "DEBUG t: d\n$");
}

static void test_json_format(void **state)
{
	json_error_t jerr;
	json_t *j;

	ptv_log_set_format(PTV_LOG_JSON);
	ptv_warn("http", "client %s said \"hi\" \\ ok", "1.2.3.4");
	assert_int_equal(cap.lines, 1);
	assert_matches(cap.text,
		       "^\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z\","
		       "\"level\":\"warn\",\"module\":\"http\",\"msg\":\"client 1\\.2\\.3\\.4 "
		       "said \\\\\"hi\\\\\" \\\\\\\\ ok\"\\}\n$");
	j = json_loads(cap.text, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "msg")),
			    "client 1.2.3.4 said \"hi\" \\ ok");
	assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
	json_decref(j);
}

static void test_json_escaping(void **state)
{
	/* Controls, DEL, valid UTF-8 (2, 3, 4 bytes), then invalid: lone continuation, overlong,
	 * surrogate, truncated sequence, > U+10FFFF. */
	const char *msg = "a\n\r\t\b\x01\x1f\x7f"
			  "\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xba"
			  "|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82|\xf4\x90\x80\x80|\xff";
	const char *want = "\"msg\":\"a\\n\\r\\t\\u0008\\u0001\\u001f\\u007f"
			   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xba"
			   "|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd|"
			   "\\ufffd\\ufffd\\ufffd\\ufffd|\\ufffd\"}\n";
	json_error_t jerr;
	json_t *j;

	ptv_log_set_format(PTV_LOG_JSON);
	ptv_info("m\"od", "%s", msg);
	if (!strstr(cap.text, want))
		fail_msg("got %s", cap.text);
	assert_non_null(strstr(cap.text, "\"module\":\"m\\\"od\""));
	j = json_loads(cap.text, 0, &jerr);
	if (!j)
		fail_msg("not JSON: %s (%s)", cap.text, jerr.text);
	json_decref(j);
}

static void test_redaction(void **state)
{
	ptv_info("src", "GET http://user:pw@h/get.php?username=U&password=P failed");
	ptv_log_set_format(PTV_LOG_JSON);
	ptv_info("src", "tune \"http://h/live/U/P/1.ts\"\n(retry http://h:8080/U/P/12345)");
	assert_int_equal(cap.lines, 2);
	assert_null(strstr(cap.text, "user:"));
	assert_null(strstr(cap.text, "pw"));
	assert_null(strstr(cap.text, "/U/"));
	assert_null(strstr(cap.text, "=U"));
	assert_null(strstr(cap.text, "=P"));
	assert_non_null(
		strstr(cap.text, "GET http://***@h/get.php?username=***&password=*** failed"));
	assert_non_null(strstr(cap.text, "\\\"http://h/live/***/***/1.ts\\\"\\n(retry "
					 "http://h:8080/***/***/12345)"));
}

static void test_truncation(void **state)
{
	static char big[20000];

	/* Credentials straddling the size cap: redaction runs before the cut. */
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big + 8180, " http://user:secretpassword@h/", 30);
	ptv_info("t", "%s", big);
	assert_int_equal(cap.lines, 1);
	assert_true(cap.len < 8192 + 128);
	assert_null(strstr(cap.text, "secret"));
	assert_null(strstr(cap.text, "user"));
	assert_matches(cap.text, "INFO t: xxx.* \\[truncated [0-9]+ bytes\\]\n$");

	/* Multi-byte characters are not split at the cut (the JSON stays valid UTF-8). */
	cap.len = 0;
	ptv_log_set_format(PTV_LOG_JSON);
	for (size_t i = 0; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[sizeof(big) - 2] = '\0';
	ptv_info("t", "x%s", big); /* odd offset: a naive cut would split a character */
	assert_null(strstr(cap.text, "\\ufffd"));
	assert_non_null(strstr(cap.text, " [truncated "));
}

static void test_async_flush(void **state)
{
	uint64_t dropped = ptv_log_dropped();

	assert_int_equal(ptv_log_async_start(1000), 0);
	assert_int_equal(ptv_log_async_start(10), -EALREADY);
	for (int i = 0; i < 500; i++)
		ptv_info("t", "line %d", i);
	ptv_log_async_stop();
	assert_int_equal(cap.lines, 500);
	assert_int_equal(ptv_log_dropped(), dropped);
	assert_non_null(strstr(cap.text, "INFO t: line 0\n"));
	assert_non_null(strstr(cap.text, "INFO t: line 499\n"));
	ptv_log_async_stop(); /* twice is harmless */

	/* Back to synchronous writes. */
	ptv_info("t", "sync");
	assert_int_equal(cap.lines, 501);
	assert_int_equal(ptv_log_async_start(0), -EINVAL);
}

static void test_async_drop(void **state)
{
	uint64_t before = ptv_log_dropped(), dropped;
	unsigned counted = 0;

	pthread_mutex_lock(&cap.lock);
	cap.armed = true;
	pthread_mutex_unlock(&cap.lock);

	assert_int_equal(ptv_log_async_start(4), 0);
	ptv_info("t", "first");
	/* Wait until the logger thread is stuck in the sink, as on a full stderr pipe. */
	pthread_mutex_lock(&cap.lock);
	while (!cap.blocked)
		pthread_cond_wait(&cap.cond, &cap.lock);
	pthread_mutex_unlock(&cap.lock);

	for (int i = 0; i < 100; i++)
		ptv_info("t", "line %d", i); /* never blocks: 4 fit, 96 are dropped */
	dropped = ptv_log_dropped() - before;
	assert_int_equal(dropped, 96);

	pthread_mutex_lock(&cap.lock);
	cap.released = true;
	pthread_cond_broadcast(&cap.cond);
	pthread_mutex_unlock(&cap.lock);
	ptv_log_async_stop();

	/* first + 4 queued + one line saying how many were lost. */
	assert_int_equal(cap.lines, 6);
	for (const char *p = cap.text; (p = strstr(p, "INFO t: ")); p++)
		counted++;
	assert_int_equal(counted, 5);
	assert_non_null(strstr(cap.text, "INFO t: line 3\n"));
	assert_null(strstr(cap.text, "line 4\n"));
	assert_matches(cap.text,
		       "WARN log: 96 log lines dropped \\(queue full, [0-9]+ in total\\)\n$");
}

static void *log_from_thread(void *arg)
{
	for (int i = 0; i < 200; i++)
		ptv_info("thr", "thread %d line %d", *(int *)arg, i);
	return NULL;
}

/* Run under TSan: several producers, one logger thread, level changes in between. */
static void test_async_threads(void **state)
{
	pthread_t th[4];
	int ids[4];
	uint64_t before = ptv_log_dropped();

	assert_int_equal(ptv_log_async_start(1024), 0);
	for (int i = 0; i < 4; i++) {
		ids[i] = i;
		assert_int_equal(pthread_create(&th[i], NULL, log_from_thread, &ids[i]), 0);
	}
	ptv_log_set_format(PTV_LOG_JSON);
	ptv_log_set_format(PTV_LOG_TEXT);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ptv_log_async_stop();
	/* 800 lines never fill a 1024-line queue. */
	assert_int_equal(ptv_log_dropped(), before);
	assert_int_equal(cap.lines, 800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keeps_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
