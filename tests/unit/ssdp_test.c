/* SPDX-License-Identifier: GPL-3.0-or-later */
/* SSDP: M-SEARCH parser (valid and malformed: RELIABILITY.md S4), target classification,
 * response and NOTIFY writers with the exact headers of PROTOCOLS.md §3.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/log.h"
#include "plextv/ssdp.h"

#define UUID "0b5c5a8e-4f0e-4c57-9a43-1d2b3c4d5e6f"

static void quiet_sink(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

static int parse(const char *s, struct ptv_ssdp_msearch *m)
{
	return ptv_ssdp_parse(s, strlen(s), m);
}

static void test_parse_valid(void **state)
{
	struct ptv_ssdp_msearch m;

	assert_int_equal(parse("M-SEARCH * HTTP/1.1\r\n"
			       "HOST: 239.255.255.250:1900\r\n"
			       "MAN: \"ssdp:discover\"\r\n"
			       "MX: 3\r\n"
			       "ST: " PTV_SSDP_MEDIASERVER "\r\n"
			       "USER-AGENT: Linux/6.1 UPnP/1.1 test/1\r\n"
			       "\r\n",
			       &m),
			 0);
	assert_string_equal(m.st, PTV_SSDP_MEDIASERVER);
	assert_int_equal(m.mx, 3);
	/* Header names are case-insensitive; LF-only lines and a missing final blank line are
	 * tolerated; no MX is fine for a unicast search (the caller decides). */
	assert_int_equal(parse("M-SEARCH * HTTP/1.1\nman: ssdp:discover\nst:  ssdp:all  \n", &m),
			 0);
	assert_string_equal(m.st, "ssdp:all");
	assert_int_equal(m.mx, -1);
}

static void test_parse_mx_clamped(void **state)
{
	struct ptv_ssdp_msearch m;
	static const struct {
		const char *mx;
		int want;
	} cases[] = {{"-1", 1}, {"0", 1}, {"1", 1}, {"5", 5}, {"999", 5}, {"123456789", 5}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];

		snprintf(buf, sizeof(buf),
			 "M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: %s\r\nST: "
			 "upnp:rootdevice\r\n\r\n",
			 cases[i].mx);
		assert_int_equal(parse(buf, &m), 0);
		assert_int_equal(m.mx, cases[i].want);
	}
}

static void test_parse_malformed(void **state)
{
	struct ptv_ssdp_msearch m;
	static const char *const bad[] = {
		"",
		"GET / HTTP/1.1\r\n\r\n",
		"m-search * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n",
		"M-SEARCH * HTTP/1.0\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n",		 /* no MAN */
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\n\r\n", /* no ST */
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:update\"\r\nST: ssdp:all\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: a\r\nST: b\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nMX: 2\r\nST: a\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: soon\r\nST: a\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 1234567890\r\nST: a\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: -\r\nST: a\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST:\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: a\x01z\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: a\rz\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nno colon here\r\nST: a\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\n: empty name\r\nST: a\r\n\r\n",
		"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nS T: a\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(bad[i], &m);

		if (ret != -EINVAL)
			fail_msg("case %zu: %d for %s", i, ret, bad[i]);
	}
	/* A NUL inside. */
	assert_int_equal(ptv_ssdp_parse("M-SEARCH * HTTP/1.1\r\n\0MAN", 24, &m), -EINVAL);
}

static void test_parse_ignored(void **state)
{
	struct ptv_ssdp_msearch m;

	/* Other devices' announcements and responses are valid traffic, not ours to answer. */
	assert_int_equal(parse("NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\n\r\n", &m), -ENOMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n", &m), -ENOMSG);
}

/* 64 KiB datagram and miniupnpd #267's ST of 1,000 colons. */
static void test_parse_hostile(void **state)
{
	struct ptv_ssdp_msearch m;
	size_t big = 65507;
	char *p = malloc(big), *q;
	int n;

	assert_non_null(p);
	memset(p, 'A', big);
	memcpy(p, "M-SEARCH * HTTP/1.1\r\n", 21);
	assert_int_equal(ptv_ssdp_parse(p, big, &m), -EMSGSIZE);

	q = p;
	n = sprintf(q, "M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ");
	memset(q + n, ':', 1000);
	memcpy(q + n + 1000, "\r\n\r\n", 5);
	assert_int_equal(ptv_ssdp_parse(q, strlen(q), &m), -EINVAL);
	/* Also when it fits the datagram limit but not the ST limit: 300 colons. */
	memcpy(q + n + 300, "\r\n\r\n", 5);
	assert_int_equal(ptv_ssdp_parse(q, strlen(q), &m), -EINVAL);
	/* 256 is the longest ST accepted. */
	memcpy(q + n + 256, "\r\n\r\n", 5);
	assert_int_equal(ptv_ssdp_parse(q, strlen(q), &m), 0);
	assert_int_equal(strlen(m.st), 256);
	free(p);
}

/* Random bytes and random mutations of a valid search: no crash, only known results. */
static void test_parse_noise(void **state)
{
	static const char valid[] = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
				    "MAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\n\r\n";
	struct ptv_ssdp_msearch m;
	unsigned seed = 12345;
	char buf[sizeof(valid)];

	for (int i = 0; i < 20000; i++) {
		size_t n = sizeof(valid) - 1;
		int ret;

		memcpy(buf, valid, n);
		for (int k = 0; k < 1 + i % 4; k++)
			buf[rand_r(&seed) % n] = (char)rand_r(&seed);
		ret = ptv_ssdp_parse(buf, (size_t)(rand_r(&seed) % (n + 1)), &m);
		assert_true(ret == 0 || ret == -EINVAL || ret == -ENOMSG);
		if (!ret)
			assert_true(strlen(m.st) <= PTV_SSDP_MAX_ST);
	}
}

static void test_classify(void **state)
{
	const char *u;

	assert_int_equal(ptv_ssdp_classify("ssdp:all", &u), PTV_SSDP_WANT_ALL);
	assert_int_equal(ptv_ssdp_classify("upnp:rootdevice", &u), PTV_SSDP_WANT_ROOT);
	assert_int_equal(ptv_ssdp_classify(PTV_SSDP_MEDIASERVER, &u), PTV_SSDP_WANT_MEDIASERVER);
	assert_int_equal(ptv_ssdp_classify("uuid:" UUID, &u), PTV_SSDP_WANT_UUID);
	assert_string_equal(u, UUID);
	assert_int_equal(ptv_ssdp_classify("uuid:short", &u), PTV_SSDP_WANT_NONE);
	assert_int_equal(ptv_ssdp_classify("urn:schemas-upnp-org:device:MediaServer:2", &u),
			 PTV_SSDP_WANT_NONE);
	assert_int_equal(ptv_ssdp_classify("urn:dial-multiscreen-org:service:dial:1", &u),
			 PTV_SSDP_WANT_NONE);
	assert_int_equal(ptv_ssdp_classify("SSDP:ALL", &u), PTV_SSDP_WANT_NONE);
}

static const struct ptv_ssdp_adv adv = {
	.uuid = UUID,
	.location = "http://192.168.1.20:5004/device.xml",
	.server = "Linux/6.1 UPnP/1.1 PlexTV/0.1.0",
	.max_age = 1800,
	.bootid = 1740823200,
	.configid = 7,
};

static void test_response_exact(void **state)
{
	char out[1024];
	int n = ptv_ssdp_response(&adv, PTV_SSDP_T_ROOT, out, sizeof(out));
	static const char want[] = "HTTP/1.1 200 OK\r\n"
				   "CACHE-CONTROL: max-age=1800\r\n"
				   "EXT:\r\n"
				   "LOCATION: http://192.168.1.20:5004/device.xml\r\n"
				   "SERVER: Linux/6.1 UPnP/1.1 PlexTV/0.1.0\r\n"
				   "ST: upnp:rootdevice\r\n"
				   "USN: uuid:" UUID "::upnp:rootdevice\r\n"
				   "BOOTID.UPNP.ORG: 1740823200\r\n"
				   "CONFIGID.UPNP.ORG: 7\r\n"
				   "\r\n";

	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(out, want);
	n = ptv_ssdp_response(&adv, PTV_SSDP_T_UUID, out, sizeof(out));
	assert_non_null(strstr(out, "\r\nST: uuid:" UUID "\r\nUSN: uuid:" UUID "\r\n"));
	n = ptv_ssdp_response(&adv, PTV_SSDP_T_MEDIASERVER, out, sizeof(out));
	assert_non_null(strstr(out, "\r\nST: " PTV_SSDP_MEDIASERVER "\r\nUSN: uuid:" UUID
				    "::" PTV_SSDP_MEDIASERVER "\r\n"));
	assert_int_equal(ptv_ssdp_response(&adv, PTV_SSDP_T_ROOT, out, 100), -ENOSPC);
}

static void test_notify_exact(void **state)
{
	char out[1024];
	static const char alive[] = "NOTIFY * HTTP/1.1\r\n"
				    "HOST: 239.255.255.250:1900\r\n"
				    "CACHE-CONTROL: max-age=1800\r\n"
				    "LOCATION: http://192.168.1.20:5004/device.xml\r\n"
				    "NT: " PTV_SSDP_MEDIASERVER "\r\n"
				    "NTS: ssdp:alive\r\n"
				    "SERVER: Linux/6.1 UPnP/1.1 PlexTV/0.1.0\r\n"
				    "USN: uuid:" UUID "::" PTV_SSDP_MEDIASERVER "\r\n"
				    "BOOTID.UPNP.ORG: 1740823200\r\n"
				    "CONFIGID.UPNP.ORG: 7\r\n"
				    "\r\n";
	static const char bye[] = "NOTIFY * HTTP/1.1\r\n"
				  "HOST: 239.255.255.250:1900\r\n"
				  "NT: upnp:rootdevice\r\n"
				  "NTS: ssdp:byebye\r\n"
				  "USN: uuid:" UUID "::upnp:rootdevice\r\n"
				  "BOOTID.UPNP.ORG: 1740823200\r\n"
				  "CONFIGID.UPNP.ORG: 7\r\n"
				  "\r\n";

	assert_int_equal(ptv_ssdp_notify(&adv, PTV_SSDP_T_MEDIASERVER, true, out, sizeof(out)),
			 (int)strlen(alive));
	assert_string_equal(out, alive);
	assert_int_equal(ptv_ssdp_notify(&adv, PTV_SSDP_T_ROOT, false, out, sizeof(out)),
			 (int)strlen(bye));
	assert_string_equal(out, bye);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),	cmocka_unit_test(test_parse_mx_clamped),
		cmocka_unit_test(test_parse_malformed), cmocka_unit_test(test_parse_ignored),
		cmocka_unit_test(test_parse_hostile),	cmocka_unit_test(test_parse_noise),
		cmocka_unit_test(test_classify),	cmocka_unit_test(test_response_exact),
		cmocka_unit_test(test_notify_exact),
	};

	ptv_log_set_sink(quiet_sink, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
