/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for the XMLTV reader (epg_xml.c) and the programme record codec: every
 * programme the reader accepts is encoded and walked back, as the importer and the renderer
 * do. Build: CC=clang cmake -DPTV_BUILD_FUZZERS=ON -DPTV_SANITIZE='address;undefined'.
 * Seeds: the .xml files in $PTV_SHARED_DATA/xmltv.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../src/epg_int.h" /* the fuzz targets get no src/ include path */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_channel(struct epg_chan *c, void *ctx)
{
	char folded[EPG_KEY_MAX + 1];

	for (unsigned i = 0; i < c->n_names; i++)
		epg_fold(c->names[i], folded, sizeof(folded));
	return 0;
}

static int on_programme(struct epg_prog *p, void *ctx)
{
	struct ptv_buf *rec = ctx;
	struct epg_rec_field f;
	struct epg_rec r;
	size_t total = 0;

	ptv_buf_reset(rec);
	if (epg_rec_encode(p, 3600, rec) || epg_rec_open(rec->data, rec->len, &r))
		return 0;
	while (epg_rec_next(&r, &f)) {
		for (unsigned i = 0; i < 6; i++)
			total += strlen(epg_field_str(&f, i));
	}
	return total == SIZE_MAX; /* keep the walk from being optimised away */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct epg_parse_ops ops = {on_channel, on_programme};
	struct epg_parse_stats st = {0};
	struct ptv_buf rec = {0};

	epg_parse_mem((const char *)data, size, &ops, &rec, &st);
	ptv_buf_free(&rec);
	return 0;
}
