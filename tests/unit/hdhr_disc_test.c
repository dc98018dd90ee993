/* SPDX-License-Identifier: GPL-3.0-or-later */
/* HDHomeRun UDP discovery codec: CRC vectors, Jellyfin's probe, malformed frames, replies read
 * back by our parser and by libhdhomerun's own (when the library is installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/device.h"
#include "plextv/hdhr_disc.h"
#include "plextv/log.h"

static void quiet_sink(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

/* Jellyfin's fixed probe (HdHomerunManager): wildcard type, wildcard id, CRC 0x8F7DCC73 LE. */
static const uint8_t jellyfin_probe[] = {0x00, 0x02, 0x00, 0x0C, 0x01, 0x04, 0xFF,
					 0xFF, 0xFF, 0xFF, 0x02, 0x04, 0xFF, 0xFF,
					 0xFF, 0xFF, 0x73, 0xCC, 0x7D, 0x8F};

static void test_crc_vectors(void **state)
{
	/* The CRC-32 check value and the empty string (zlib/IEEE). */
	assert_int_equal(ptv_hdhr_crc32("123456789", 9), 0xCBF43926u);
	assert_int_equal(ptv_hdhr_crc32("", 0), 0);
	assert_int_equal(ptv_hdhr_crc32(jellyfin_probe, 16), 0x8F7DCC73u);
}

static void test_jellyfin_probe(void **state)
{
	struct ptv_hdhr_disc_req req;

	assert_int_equal(ptv_hdhr_disc_parse(jellyfin_probe, sizeof(jellyfin_probe), &req), 0);
	assert_int_equal(req.n_types, 1);
	assert_int_equal(req.types[0], PTV_HDHR_WILDCARD);
	assert_true(req.has_id);
	assert_int_equal(req.device_id, PTV_HDHR_WILDCARD);
	assert_true(ptv_hdhr_disc_matches(&req, 0x10539F7Au));
}

static void test_request_roundtrip(void **state)
{
	uint8_t buf[64];
	uint32_t tuner = PTV_HDHR_DEVICE_TYPE_TUNER, multi[] = {5, 1}, storage = 5;
	struct ptv_hdhr_disc_req req;
	int n;

	/* What our writer makes for Jellyfin's request is byte for byte the real probe. */
	uint32_t wild = PTV_HDHR_WILDCARD;

	n = ptv_hdhr_disc_request(&wild, 1, true, PTV_HDHR_WILDCARD, buf, sizeof(buf));
	assert_int_equal(n, (int)sizeof(jellyfin_probe));
	assert_memory_equal(buf, jellyfin_probe, sizeof(jellyfin_probe));

	n = ptv_hdhr_disc_request(&tuner, 1, false, 0, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(ptv_hdhr_disc_parse(buf, (size_t)n, &req), 0);
	assert_false(req.has_id);
	assert_true(ptv_hdhr_disc_matches(&req, 0x12345674u));

	n = ptv_hdhr_disc_request(multi, 2, true, 0x12345674u, buf, sizeof(buf));
	assert_int_equal(ptv_hdhr_disc_parse(buf, (size_t)n, &req), 0);
	assert_int_equal(req.n_types, 2);
	assert_true(ptv_hdhr_disc_matches(&req, 0x12345674u));
	assert_false(ptv_hdhr_disc_matches(&req, 0x10439EFDu)); /* another device's id */

	n = ptv_hdhr_disc_request(&storage, 1, false, 0, buf, sizeof(buf));
	assert_int_equal(ptv_hdhr_disc_parse(buf, (size_t)n, &req), 0);
	assert_false(ptv_hdhr_disc_matches(&req, 0x12345674u)); /* storage only: not a tuner */
}

static void test_malformed(void **state)
{
	struct ptv_hdhr_disc_req req;
	uint8_t p[sizeof(jellyfin_probe)], big[PTV_HDHR_MAX_PACKET + 1] = {0};
	uint8_t reply_frame[8] = {0x00, 0x03, 0x00, 0x00}, tlv[16];
	uint32_t crc;

	assert_int_equal(ptv_hdhr_disc_parse(jellyfin_probe, 7, &req), -EMSGSIZE);
	assert_int_equal(ptv_hdhr_disc_parse(big, sizeof(big), &req), -EMSGSIZE);
	/* Length field larger than the datagram. */
	memcpy(p, jellyfin_probe, sizeof(p));
	p[3] = 0x0D;
	assert_int_equal(ptv_hdhr_disc_parse(p, sizeof(p), &req), -EMSGSIZE);
	/* One bit off in the payload: CRC mismatch. */
	memcpy(p, jellyfin_probe, sizeof(p));
	p[9] ^= 1;
	assert_int_equal(ptv_hdhr_disc_parse(p, sizeof(p), &req), -EBADMSG);
	/* A reply (type 3) with a valid CRC is not a request. */
	crc = ptv_hdhr_crc32(reply_frame, 4);
	memcpy(reply_frame + 4, &crc, 4); /* little-endian host */
	assert_int_equal(ptv_hdhr_disc_parse(reply_frame, 8, &req), -ENOMSG);
	/* TLV whose length runs past the payload; DEVICE_TYPE of 3 bytes. */
	{
		const uint8_t bad1[] = {0x00, 0x02, 0x00, 0x03, 0x01, 0x09, 0xFF};
		const uint8_t bad2[] = {0x00, 0x02, 0x00, 0x05, 0x01, 0x03, 0xFF, 0xFF, 0xFF};

		memcpy(tlv, bad1, sizeof(bad1));
		crc = ptv_hdhr_crc32(tlv, sizeof(bad1));
		memcpy(tlv + sizeof(bad1), &crc, 4);
		assert_int_equal(ptv_hdhr_disc_parse(tlv, sizeof(bad1) + 4, &req), -EINVAL);
		memcpy(tlv, bad2, sizeof(bad2));
		crc = ptv_hdhr_crc32(tlv, sizeof(bad2));
		memcpy(tlv + sizeof(bad2), &crc, 4);
		assert_int_equal(ptv_hdhr_disc_parse(tlv, sizeof(bad2) + 4, &req), -EINVAL);
	}
}

static void test_unknown_long_tlv_skipped(void **state)
{
	/* A 200-byte unknown tag uses the two-byte length form: 0xC8 0x01. */
	uint8_t p[4 + 3 + 200 + 6 + 4] = {0x00, 0x02, 0x00, 3 + 200 + 6, 0x7E, 0xC8, 0x01};
	struct ptv_hdhr_disc_req req;
	size_t off = 7 + 200;
	uint32_t crc;

	memcpy(p + off, (const uint8_t[]){0x01, 0x04, 0x00, 0x00, 0x00, 0x01}, 6);
	off += 6;
	crc = ptv_hdhr_crc32(p, off);
	memcpy(p + off, &crc, 4);
	assert_int_equal(ptv_hdhr_disc_parse(p, off + 4, &req), 0);
	assert_int_equal(req.n_types, 1);
	assert_int_equal(req.types[0], PTV_HDHR_DEVICE_TYPE_TUNER);
}

struct tlv_seen {
	uint32_t type, id;
	unsigned tuners;
	char base[300], lineup[300], auth[64];
};

static void read_reply(const uint8_t *p, size_t n, struct tlv_seen *s)
{
	size_t plen = (size_t)(p[2] << 8 | p[3]), i = 4;
	uint32_t crc;

	memset(s, 0, sizeof(*s));
	assert_int_equal(p[0] << 8 | p[1], PTV_HDHR_TYPE_DISCOVER_RPY);
	assert_int_equal(plen + 8, n);
	memcpy(&crc, p + 4 + plen, 4);
	assert_int_equal(crc, ptv_hdhr_crc32(p, 4 + plen));
	while (i < 4 + plen) {
		uint8_t tag = p[i];
		size_t len = p[i + 1], hl = 2;

		if (len & 0x80) {
			len = (len & 0x7F) | (size_t)p[i + 2] << 7;
			hl = 3;
		}
		const uint8_t *v = p + i + hl;
		uint32_t u = len == 4 ? (uint32_t)v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3] : 0;

		switch (tag) {
		case PTV_HDHR_TAG_DEVICE_TYPE:
			s->type = u;
			break;
		case PTV_HDHR_TAG_DEVICE_ID:
			s->id = u;
			break;
		case PTV_HDHR_TAG_TUNER_COUNT:
			s->tuners = v[0];
			break;
		case PTV_HDHR_TAG_BASE_URL:
			memcpy(s->base, v, len);
			break;
		case PTV_HDHR_TAG_LINEUP_URL:
			memcpy(s->lineup, v, len);
			break;
		case PTV_HDHR_TAG_DEVICE_AUTH_STR:
			memcpy(s->auth, v, len);
			break;
		}
		i += hl + len;
	}
	assert_int_equal(i, 4 + plen);
}

static void test_reply(void **state)
{
	char longbase[200];
	struct ptv_hdhr_disc_info info = {
		.device_id = 0x10439EFDu,
		.tuner_count = 4,
		.base_url = "http://10.0.0.1:8080",
		.lineup_url = "http://10.0.0.1:8080/lineup.json",
		.device_auth = "abcdefghijklmnopqrstuvwx",
	};
	struct tlv_seen s;
	uint8_t out[PTV_HDHR_MAX_PACKET];
	int n;

	assert_true(ptv_device_id_valid(info.device_id));
	n = ptv_hdhr_disc_reply(&info, out, sizeof(out));
	assert_true(n > 13); /* Jellyfin's only check, with byte[1] == 3 */
	assert_int_equal(out[1], 3);
	read_reply(out, (size_t)n, &s);
	assert_int_equal(s.type, PTV_HDHR_DEVICE_TYPE_TUNER);
	assert_int_equal(s.id, 0x10439EFDu);
	assert_int_equal(s.tuners, 4);
	assert_string_equal(s.base, info.base_url);
	assert_string_equal(s.lineup, info.lineup_url);
	assert_string_equal(s.auth, info.device_auth);

	/* A base URL above 127 bytes takes the two-byte length form. */
	memset(longbase, 'a', sizeof(longbase) - 1);
	longbase[sizeof(longbase) - 1] = '\0';
	memcpy(longbase, "http://", 7);
	info.base_url = longbase;
	info.tuner_count = 1000; /* capped at 255 */
	n = ptv_hdhr_disc_reply(&info, out, sizeof(out));
	read_reply(out, (size_t)n, &s);
	assert_string_equal(s.base, longbase);
	assert_int_equal(s.tuners, 255);
	/* Too small a buffer is an error, not a truncated frame. */
	assert_int_equal(ptv_hdhr_disc_reply(&info, out, 40), -ENOSPC);
}

/* libhdhomerun's own frame reader accepts our reply (dlopen: the library is optional). */
static void test_libhdhomerun_reads_reply(void **state)
{
	struct pkt_t {
		uint8_t *pos, *start, *end, *limit;
		uint8_t buffer[3074];
	} * pkt;
	void *lib = dlopen("libhdhomerun.so.4", RTLD_NOW);
	struct ptv_hdhr_disc_info info = {0x10539F7Au, 2, "http://10.0.0.1:5004",
					  "http://10.0.0.1:5004/lineup.json", "authauthauth"};
	void *(*create)(void);
	void (*destroy)(void *);
	int (*open_frame)(void *, uint16_t *);
	uint8_t *(*read_tlv)(void *, uint8_t *, size_t *);
	uint8_t out[PTV_HDHR_MAX_PACKET], tag;
	uint16_t type = 0;
	size_t len;
	unsigned tags = 0;
	int n;

	if (!lib)
		skip();
	*(void **)&create = dlsym(lib, "hdhomerun_pkt_create");
	*(void **)&destroy = dlsym(lib, "hdhomerun_pkt_destroy");
	*(void **)&open_frame = dlsym(lib, "hdhomerun_pkt_open_frame");
	*(void **)&read_tlv = dlsym(lib, "hdhomerun_pkt_read_tlv");
	assert_non_null(create);
	n = ptv_hdhr_disc_reply(&info, out, sizeof(out));
	pkt = create();
	memcpy(pkt->end, out, (size_t)n);
	pkt->end += n;
	assert_int_equal(open_frame(pkt, &type), 1);
	assert_int_equal(type, PTV_HDHR_TYPE_DISCOVER_RPY);
	while (pkt->pos < pkt->end) {
		uint8_t *next = read_tlv(pkt, &tag, &len);

		assert_non_null(next);
		pkt->pos = next; /* it returns where the next TLV starts */
		tags++;
	}
	assert_int_equal(tags, 6);
	destroy(pkt);
	dlclose(lib);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_vectors),
		cmocka_unit_test(test_jellyfin_probe),
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_unknown_long_tlv_skipped),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_libhdhomerun_reads_reply),
	};

	ptv_log_set_sink(quiet_sink, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
