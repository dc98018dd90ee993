/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for the SSDP M-SEARCH parser (ssdp.h): every datagram that reaches UDP 1900
 * from an allowed subnet goes through ptv_ssdp_parse(). Checked besides crashes, for the
 * datagrams it accepts (RELIABILITY.md S4):
 *  - never more than PTV_SSDP_MAX_PACKET bytes and never a NUL in the input;
 *  - ST is non-empty, at most PTV_SSDP_MAX_ST bytes, NUL-terminated, free of control bytes
 *    but HTAB and of surrounding blanks, and copied from the datagram;
 *  - MX is -1 (absent) or clamped to 1..PTV_SSDP_MX_MAX;
 *  - ptv_ssdp_classify() points a uuid: target at the 36 bytes after "uuid:".
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/ssdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ptv_ssdp_msearch m;
	enum ptv_ssdp_want want;
	const char *uuid;
	size_t len;
	int ret;

	memset(&m, 0xa5, sizeof(m));
	ret = ptv_ssdp_parse(data, size, &m);
	if (ret == -EMSGSIZE && size <= PTV_SSDP_MAX_PACKET)
		abort();
	if (ret)
		return 0;
	if (size > PTV_SSDP_MAX_PACKET || memchr(data, '\0', size))
		abort();
	len = strnlen(m.st, sizeof(m.st));
	if (!len || len > PTV_SSDP_MAX_ST || m.st[0] == ' ' || m.st[0] == '\t' ||
	    m.st[len - 1] == ' ' || m.st[len - 1] == '\t' || !memmem(data, size, m.st, len))
		abort();
	for (size_t i = 0; i < len; i++) {
		/* HTAB is field-value whitespace (RFC 9110 §5.5): kept inside, trimmed around. */
		if (((unsigned char)m.st[i] < 0x20 && m.st[i] != '\t') || m.st[i] == 0x7f)
			abort();
	}
	if (m.mx != -1 && (m.mx < 1 || m.mx > PTV_SSDP_MX_MAX))
		abort();
	want = ptv_ssdp_classify(m.st, &uuid);
	if (want == PTV_SSDP_WANT_UUID ? uuid != m.st + 5 || strlen(uuid) != 36 : uuid != NULL)
		abort();
	return 0;
}
