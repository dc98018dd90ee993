/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "plextv/common.h"
#include "plextv/redact.h"

struct redact_case {
	const char *in;
	const char *want;
};

static void check_url(const char *in, const char *want)
{
	char out[512];
	size_t n = ptv_redact_url(in, out, sizeof(out));

	if (strcmp(out, want))
		fail_msg("ptv_redact_url(\"%s\")\n  got  \"%s\"\n  want \"%s\"", in, out, want);
	assert_int_equal(n, strlen(want));
}

static void check_text(const char *in, const char *want)
{
	char out[1024];
	size_t n = ptv_redact_text(in, out, sizeof(out));

	if (strcmp(out, want))
		fail_msg("ptv_redact_text(\"%s\")\n  got  \"%s\"\n  want \"%s\"", in, out, want);
	assert_int_equal(n, strlen(want));
}

static void test_userinfo(void **state)
{
	static const struct redact_case cases[] = {
		{"http://user:pass@host/x", "http://***@host/x"},
		{"http://user@host/x", "http://***@host/x"},
		{"https://u:p@example.com:8443/a/b?c=d", "https://***@example.com:8443/a/b?c=d"},
		{"http://user:p@ss@host:80/", "http://***@host:80/"},
		{"http://user:pa/ss@host/x", "http://***@host/x"},
		{"http://u:p@[::1]:8080/x", "http://***@[::1]:8080/x"},
		{"http://u:p@host", "http://***@host"},
		{"http://host:8080/x", "http://host:8080/x"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"http://host/path@thing", "http://host/path@thing"},
		{"http://host/?email=a@b", "http://host/?email=a@b"},
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++)
		check_url(cases[i].in, cases[i].want);
}

static void test_query(void **state)
{
	static const struct redact_case cases[] = {
		{"http://h/get.php?username=bob&password=secret&type=m3u_plus",
		 "http://h/get.php?username=***&password=***&type=m3u_plus"},
		{"http://h/x?USER=a&Pass=b&passwd=c&token=d&key=e&auth=f",
		 "http://h/x?USER=***&Pass=***&passwd=***&token=***&key=***&auth=***"},
		{"http://h/x?api_key=1&apikey=2&access_token=3&secret=4&sig=5",
		 "http://h/x?api_key=***&apikey=***&access_token=***&secret=***&sig=***"},
		{"http://h/x?keyword=a&monkey=b&x=1", "http://h/x?keyword=a&monkey=b&x=1"},
		{"http://h/x?token=abc#frag", "http://h/x?token=***#frag"},
		{"http://h/x#access_token=abc", "http://h/x#access_token=***"},
		{"http://h/x?password=&flag", "http://h/x?password=&flag"},
		{"http://h/x?a=1;token=z", "http://h/x?a=1;token=***"},
		{"http://h/r?next=http://i/y?token=z", "http://h/r?next=http://i/y?token=***"},
		{"http://h/x?", "http://h/x?"},
		{"http://h/x?&&=&", "http://h/x?&&=&"},
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++)
		check_url(cases[i].in, cases[i].want);
}

static void test_xtream_paths(void **state)
{
	static const struct redact_case cases[] = {
		{"http://h:8080/live/U/P/123.ts", "http://h:8080/live/***/***/123.ts"},
		{"http://h:8080/live/U/P/123.m3u8", "http://h:8080/live/***/***/123.m3u8"},
		{"http://h/movie/U/P/1.mkv", "http://h/movie/***/***/1.mkv"},
		{"http://h/series/U/P/2.mp4", "http://h/series/***/***/2.mp4"},
		{"http://h/timeshift/U/P/120/2026-11-01:12-00/55.ts",
		 "http://h/timeshift/***/***/120/2026-11-01:12-00/55.ts"},
		{"https://h/LIVE/U/P/9", "https://h/LIVE/***/***/9"},
		{"http://h:8080/U/P/12345", "http://h:8080/***/***/12345"},
		{"http://h:8080/U/P/12345.ts", "http://h:8080/***/***/12345.ts"},
		{"http://h:8080/U/P/12345?x=1", "http://h:8080/***/***/12345?x=1"},
		/* Not Xtream shapes: left alone. */
		{"http://h/live/stream.m3u8", "http://h/live/stream.m3u8"},
		{"http://h/live/a/b", "http://h/live/a/b"},
		{"http://h/a/b/c", "http://h/a/b/c"},
		{"http://h/a/b/12345/", "http://h/a/b/12345/"},
		{"http://h/a/b/c/12345", "http://h/a/b/c/12345"},
		{"http://h/a/b/12.", "http://h/a/b/12."},
		{"http://h/a/b/1x.ts", "http://h/a/b/1x.ts"},
		{"http://h//P/123", "http://h//P/123"},
		{"http://h/", "http://h/"},
		{"http://h", "http://h"},
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++)
		check_url(cases[i].in, cases[i].want);
}

static void test_other_schemes(void **state)
{
	static const struct redact_case cases[] = {
		{"rtsp://admin:pw@cam:554/Streaming/Channels/101",
		 "rtsp://***@cam:554/Streaming/Channels/101"},
		{"rtsp://cam/live/a/b/1", "rtsp://cam/live/a/b/1"},
		{"rtmp://u:p@h/live/stream", "rtmp://***@h/live/stream"},
		{"rtmps://h/app/key?token=t", "rtmps://h/app/key?token=***"},
		{"acestream://94c2fd8fb9bc8f2fc71a2cbe9d4b866f227a0209",
		 "acestream://94c2fd8fb9bc8f2fc71a2cbe9d4b866f227a0209"},
		{"udp://@239.0.0.1:1234", "udp://@239.0.0.1:1234"},
		{"srt://h:9000?passphrase=x&streamid=y", "srt://h:9000?passphrase=***&streamid=y"},
		{"not a url", "not a url"},
		{"/live/U/P/1.ts", "/live/U/P/1.ts"},
		{"://x", "://x"},
		{"", ""},
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++)
		check_url(cases[i].in, cases[i].want);
}

static void test_truncation(void **state)
{
	const char *in = "http://user:pass@host/live/U/P/1.ts";
	const char *full = "http://***@host/live/***/***/1.ts";
	char out[64];

	for (size_t len = 0; len <= strlen(full) + 1; len++) {
		memset(out, 'Z', sizeof(out));
		assert_int_equal(ptv_redact_url(in, out, len), strlen(full));
		if (len == 0) {
			assert_int_equal(out[0], 'Z'); /* untouched, like snprintf(NULL, 0) */
			continue;
		}
		assert_int_equal(strlen(out), PTV_MIN(len - 1, strlen(full)));
		assert_memory_equal(out, full, strlen(out));
		/* A prefix of the redacted form never shows the credentials. */
		assert_null(strstr(out, "pass"));
		assert_null(strstr(out, "/U/"));
	}
	assert_int_equal(ptv_redact_url(in, NULL, 0), strlen(full));
	assert_int_equal(ptv_redact_text("see http://u:p@h/", NULL, 0),
			 strlen("see http://***@h/"));
	memset(out, 'Z', sizeof(out));
	assert_int_equal(ptv_redact_text("see http://u:p@h/", out, 8), strlen("see http://***@h/"));
	assert_string_equal(out, "see htt");
}

static void test_text(void **state)
{
	static const struct redact_case cases[] = {
		{"no urls here", "no urls here"},
		{"fetch http://u:p@a/x failed, retry https://b/get.php?username=U&password=P now",
		 "fetch http://***@a/x failed, retry https://b/get.php?username=***&password=*** "
		 "now"},
		{"url=\"http://h/live/U/P/1.ts\" next='rtsp://a:b@c/'",
		 "url=\"http://h/live/***/***/1.ts\" next='rtsp://***@c/'"},
		{"<http://u:p@h/>", "<http://***@h/>"},
		{"(see http://h:8080/U/P/12345).", "(see http://h:8080/***/***/12345)."},
		{"tab\thttp://h/U/P/1\nnext", "tab\thttp://h/***/***/1\nnext"},
		{"end http://h/U/P/7.", "end http://h/***/***/7."},
		{"x://", "x://"},
		{"9http://u:p@h/", "9http://***@h/"},
		{":// nothing", ":// nothing"},
		{"http://u:p@h/ http://u:p@h/", "http://***@h/ http://***@h/"},
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++)
		check_text(cases[i].in, cases[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_userinfo),     cmocka_unit_test(test_query),
		cmocka_unit_test(test_xtream_paths), cmocka_unit_test(test_other_schemes),
		cmocka_unit_test(test_truncation),   cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
