/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for HDHomeRun discovery packets on UDP 65001 (hdhr_disc.h).
 *
 * Input: one control byte, then the datagram. Control bit 0 set: the driver writes the right
 * CRC-32 into the last four bytes first, so mutations get past the checksum and reach the TLV
 * reader (a real sender can always compute the CRC). Checked besides crashes, for requests
 * that parse:
 *  - at most PTV_HDHR_MAX_TYPES types, frame length as the header says;
 *  - ptv_hdhr_disc_matches() follows the rules in its header for a few device ids;
 *  - writing the parsed request back with ptv_hdhr_disc_request() and parsing that gives
 *    the same request.
 * Every datagram is also put through the reply writer's device-auth/URL fields (bounded).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/hdhr_disc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool expect_match(const struct ptv_hdhr_disc_req *q, uint32_t id)
{
	bool type_ok = !q->n_types;

	for (unsigned i = 0; i < q->n_types; i++)
		type_ok |= q->types[i] == PTV_HDHR_WILDCARD ||
			   q->types[i] == PTV_HDHR_DEVICE_TYPE_TUNER;
	return type_ok && (!q->has_id || q->device_id == PTV_HDHR_WILDCARD || q->device_id == id);
}

static void check_reply(const uint8_t *data, size_t size)
{
	char s[3][64];
	struct ptv_hdhr_disc_info info = {
		.base_url = s[0], .lineup_url = s[1], .device_auth = s[2]};
	uint8_t out[PTV_HDHR_MAX_PACKET];
	int n;

	/* Three strings (no NUL inside) and a count cut from the input. */
	for (unsigned i = 0; i < 3; i++) {
		size_t k = 0;

		while (k < sizeof(s[i]) - 1 && size && *data) {
			s[i][k++] = (char)*data++;
			size--;
		}
		s[i][k] = '\0';
		if (size) {
			data++;
			size--;
		}
	}
	info.device_id = 0x12345678u;
	info.tuner_count = size ? data[0] * 3u : 2;
	n = ptv_hdhr_disc_reply(&info, out, sizeof(out));
	if (n > (int)sizeof(out) || (n >= 0 && n < 8))
		abort();
	if (n > 0 && (out[0] << 8 | out[1]) != PTV_HDHR_TYPE_DISCOVER_RPY)
		abort();
	if (n > 0 && (size_t)(out[2] << 8 | out[3]) + 8 != (size_t)n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t ids[] = {0x12345678u, 0, PTV_HDHR_WILDCARD, 0x1010ABCDu};
	struct ptv_hdhr_disc_req q, again;
	uint8_t *pkt, rebuilt[PTV_HDHR_MAX_PACKET];
	uint8_t ctl;
	int ret, n;

	if (!size)
		return 0;
	ctl = data[0];
	data++;
	size--;
	pkt = malloc(size ? size : 1);
	if (!pkt)
		abort();
	memcpy(pkt, data, size);
	if ((ctl & 1) && size >= 8) {
		uint32_t crc = ptv_hdhr_crc32(pkt, size - 4);

		pkt[size - 4] = (uint8_t)crc;
		pkt[size - 3] = (uint8_t)(crc >> 8);
		pkt[size - 2] = (uint8_t)(crc >> 16);
		pkt[size - 1] = (uint8_t)(crc >> 24);
	}
	ret = ptv_hdhr_disc_parse(pkt, size, &q);
	if (ret == 0) {
		if (q.n_types > PTV_HDHR_MAX_TYPES || size < 8 || size > PTV_HDHR_MAX_PACKET ||
		    (size_t)(pkt[2] << 8 | pkt[3]) + 8 != size)
			abort();
		for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
			if (ptv_hdhr_disc_matches(&q, ids[i]) != expect_match(&q, ids[i]))
				abort();
		}
		n = ptv_hdhr_disc_request(q.types, q.n_types, q.has_id, q.device_id, rebuilt,
					  sizeof(rebuilt));
		if (n < 8)
			abort();
		if (ptv_hdhr_disc_parse(rebuilt, (size_t)n, &again) || again.n_types != q.n_types ||
		    again.has_id != q.has_id || (q.has_id && again.device_id != q.device_id) ||
		    memcmp(again.types, q.types, q.n_types * sizeof(q.types[0])))
			abort();
	} else if (ret != -EMSGSIZE && ret != -EBADMSG && ret != -EINVAL && ret != -ENOMSG) {
		abort();
	}
	if (ctl & 2)
		check_reply(data, size);
	free(pkt);
	return 0;
}
