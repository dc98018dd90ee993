/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Discovery allow-list (user-space path), interface classification, token buckets, URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/log.h"
#include "plextv/netfilter.h"

static void quiet_sink(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static struct sockaddr_in src(const char *addr, uint16_t port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};

	s.sin_addr.s_addr = ip(addr);
	return s;
}

/* lo (1), eth0 (2: 10.0.0.5/24 and 172.16.0.1/16), wlan0 down (3), eth1 (4: 10.9.9.1/24). */
static void table(struct ptv_iface ifs[4])
{
	memset(ifs, 0, 4 * sizeof(*ifs));
	ifs[0] = (struct ptv_iface){
		.ifindex = 1, .name = "lo", .flags = IFF_UP | IFF_LOOPBACK, .n_addrs = 1};
	ifs[0].addrs[0] = ip("127.0.0.1");
	ifs[0].plen[0] = 8;
	ifs[1] = (struct ptv_iface){
		.ifindex = 2, .name = "eth0", .flags = IFF_UP | IFF_MULTICAST, .n_addrs = 2};
	ifs[1].addrs[0] = ip("10.0.0.5");
	ifs[1].plen[0] = 24;
	ifs[1].addrs[1] = ip("172.16.0.1");
	ifs[1].plen[1] = 16;
	ifs[2] = (struct ptv_iface){
		.ifindex = 3, .name = "wlan0", .flags = IFF_MULTICAST, .n_addrs = 1};
	ifs[2].addrs[0] = ip("192.168.7.2");
	ifs[2].plen[0] = 24;
	ifs[3] = (struct ptv_iface){
		.ifindex = 4, .name = "eth1", .flags = IFF_UP | IFF_MULTICAST, .n_addrs = 1};
	ifs[3].addrs[0] = ip("10.9.9.1");
	ifs[3].plen[0] = 24;
}

static struct ptv_netfilter *make(const char *prefixes, const char *listen)
{
	struct ptv_netfilter_opts o = {.allow_prefixes = prefixes, .listen_addr = ip(listen)};
	struct ptv_netfilter *nf = NULL;
	struct ptv_iface ifs[4];

	assert_int_equal(ptv_netfilter_new(&o, &nf), 0);
	table(ifs);
	assert_int_equal(ptv_netfilter_set_ifaces(nf, ifs, 4), 0);
	return nf;
}

static void test_parse_prefixes(void **state)
{
	struct ptv_prefix p[4];
	size_t n;

	assert_int_equal(
		ptv_netfilter_parse_prefixes("10.1.2.3/8, 192.168.5.7\t0.0.0.0/0", p, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(p[0].addr, ip("10.0.0.0")); /* host bits cleared */
	assert_int_equal(p[0].len, 8);
	assert_int_equal(p[1].len, 32);
	assert_int_equal(p[2].len, 0);
	assert_int_equal(ptv_netfilter_parse_prefixes("", p, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ptv_netfilter_parse_prefixes("10.0.0.0/33", p, 4, &n), -EINVAL);
	assert_int_equal(ptv_netfilter_parse_prefixes("10.0.0.0/", p, 4, &n), -EINVAL);
	assert_int_equal(ptv_netfilter_parse_prefixes("10.0.0.0/-1", p, 4, &n), -EINVAL);
	assert_int_equal(ptv_netfilter_parse_prefixes("example.com", p, 4, &n), -EINVAL);
	assert_int_equal(ptv_netfilter_parse_prefixes("fe80::/10", p, 4, &n), -EINVAL);
	assert_int_equal(ptv_netfilter_parse_prefixes("1.1.1.1 2.2.2.2 3.3.3.3", p, 2, &n), -E2BIG);
}

static void test_check_wildcard(void **state)
{
	struct ptv_netfilter *nf = make("", "0.0.0.0");
	struct sockaddr_in s;

	s = src("10.0.0.77", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OK);
	s = src("172.16.200.1", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OK); /* second address */
	s = src("10.0.1.77", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OFF_SUBNET); /* routed in */
	s = src("10.9.9.7", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OFF_SUBNET); /* other link */
	assert_int_equal(ptv_netfilter_check(nf, &s, 4), PTV_DISC_OK);
	s = src("192.168.7.9", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 3), PTV_DISC_OFF_SUBNET); /* link down */
	s = src("127.0.0.1", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 1), PTV_DISC_OK);	       /* from this host */
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OFF_SUBNET); /* spoofed */
	s = src("10.0.0.5", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 1), PTV_DISC_OK); /* local, via lo */
	s = src("10.0.0.77", 0);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_MALFORMED);
	s = src("10.0.0.77", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 99), PTV_DISC_OFF_SUBNET); /* unknown if */
	ptv_netfilter_free(nf);
}

static void test_check_extra_and_specific(void **state)
{
	struct ptv_netfilter *nf = make("192.168.50.0/24,8.8.8.8", "10.9.9.1");
	const struct ptv_iface *f;
	struct sockaddr_in s;

	/* Listening on eth1's address: eth0 is not served, eth1 is. */
	s = src("10.0.0.77", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OFF_SUBNET);
	s = src("10.9.9.7", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 4), PTV_DISC_OK);
	/* Configured prefixes are answered on any interface. */
	s = src("192.168.50.20", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 2), PTV_DISC_OK);
	s = src("8.8.8.8", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 4), PTV_DISC_OK);
	s = src("8.8.4.4", 40000);
	assert_int_equal(ptv_netfilter_check(nf, &s, 4), PTV_DISC_OFF_SUBNET);
	f = ptv_netfilter_iface(nf, 4);
	assert_true(f->served && f->ssdp_adv);
	f = ptv_netfilter_iface(nf, 2);
	assert_false(f->served || f->ssdp_adv);
	f = ptv_netfilter_iface(nf, 1);
	assert_false(f->ssdp_adv);
	ptv_netfilter_free(nf);
}

static void test_classify_loopback(void **state)
{
	struct ptv_netfilter *nf = make("", "0.0.0.0");
	const struct ptv_iface *f;

	/* Listening everywhere: announce on LAN links, never on lo or a down link. */
	assert_false(ptv_netfilter_iface(nf, 1)->ssdp_adv);
	assert_true(ptv_netfilter_iface(nf, 2)->ssdp_adv);
	assert_false(ptv_netfilter_iface(nf, 3)->ssdp_adv);
	ptv_netfilter_free(nf);
	/* Listening on loopback only: lo is the one place the URL works. */
	nf = make("", "127.0.0.1");
	f = ptv_netfilter_iface(nf, 1);
	assert_true(f->served && f->ssdp_adv);
	assert_false(ptv_netfilter_iface(nf, 2)->ssdp_adv);
	ptv_netfilter_free(nf);
}

static void test_rate(void **state)
{
	struct ptv_netfilter *nf = make("", "0.0.0.0");
	uint32_t a = ip("10.0.0.77"), b = ip("10.0.0.78");
	uint64_t t = 1000000;
	unsigned ok = 0;

	for (int i = 0; i < 100; i++)
		ok += ptv_netfilter_rate_ok(nf, PTV_DISC_SSDP, a, t);
	assert_int_equal(ok, PTV_DISC_SRC_BURST);
	/* Another source and another protocol have their own buckets. */
	assert_true(ptv_netfilter_rate_ok(nf, PTV_DISC_SSDP, b, t));
	assert_true(ptv_netfilter_rate_ok(nf, PTV_DISC_HDHR, a, t));
	/* One second later: PTV_DISC_SRC_RATE more. */
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += ptv_netfilter_rate_ok(nf, PTV_DISC_SSDP, a, t + 1000);
	assert_int_equal(ok, PTV_DISC_SRC_RATE);
	ptv_netfilter_free(nf);
}

static void test_rate_global(void **state)
{
	struct ptv_netfilter *nf = make("", "0.0.0.0");
	unsigned ok = 0;

	/* Many sources at once (spoofed on-link addresses): the global bucket caps them. */
	for (uint32_t i = 1; i <= 5000; i++)
		ok += ptv_netfilter_rate_ok(nf, PTV_DISC_HDHR, htonl(0x0A000000u + i), 5000);
	assert_int_equal(ok, PTV_DISC_ALL_BURST);
	ptv_netfilter_free(nf);
}

static void test_base_url(void **state)
{
	struct ptv_disc_reach r = {.listen_addr = 0, .http_port = 8080};
	char out[256];

	ptv_disc_base_url(&r, "http://ignored", 0, ip("10.0.0.5"), out, sizeof(out));
	assert_string_equal(out, "http://10.0.0.5:8080");
	ptv_disc_base_url(&r, "http://ignored/devices/2", 2, ip("10.0.0.5"), out, sizeof(out));
	assert_string_equal(out, "http://10.0.0.5:8080/devices/2");
	r.listen_addr = ip("10.9.9.1");
	ptv_disc_base_url(&r, "http://ignored", 0, ip("10.0.0.5"), out, sizeof(out));
	assert_string_equal(out, "http://10.9.9.1:8080");
	r.base_url_configured = true;
	ptv_disc_base_url(&r, "https://tv.example/devices/1", 1, ip("10.0.0.5"), out, sizeof(out));
	assert_string_equal(out, "https://tv.example/devices/1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_prefixes),
		cmocka_unit_test(test_check_wildcard),
		cmocka_unit_test(test_check_extra_and_specific),
		cmocka_unit_test(test_classify_loopback),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_rate_global),
		cmocka_unit_test(test_base_url),
	};

	ptv_log_set_sink(quiet_sink, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
