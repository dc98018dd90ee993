/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for the whole XMLTV import (epg.h: ptv_epg_import), as `plextv guide add`
 * and the scheduled refresh run it: the local-file fetch into DATA_DIR/tmp, libxml2's reader
 * with our hardening (entities, depth, field caps), the guide mapping onto a lineup and the
 * LMDB write transaction. xmltv_fuzzer.c covers the reader and record codec alone, much
 * faster; this one also reaches the mapping, the stop-time guessing and the store.
 *
 * Once per process: a temporary DATA_DIR (under /dev/shm when it exists, so commits are
 * cheap) with a store and a five-channel lineup imported from an M3U. Per input: the bytes
 * are written to a file and imported into the same guide source again. Checked besides
 * crashes and sanitizer reports: the return value is one the header documents, the report's
 * error text is NUL-terminated, and its counters are consistent (stored <= seen, kept
 * channels <= channels).
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plextv/common.h"
#include "plextv/epg.h"
#include "plextv/log.h"
#include "plextv/sources.h"
#include "plextv/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LINEUP[] =
	"#EXTM3U\n"
	"#EXTINF:-1 tvg-id=\"a.tv\" tvg-chno=\"1\",Alpha\nhttp://x/1\n"
	"#EXTINF:-1 tvg-name=\"Bee\" tvg-chno=\"2\",Channel Two\nhttp://x/2\n"
	"#EXTINF:-1 tvg-chno=\"3\",Sea  Channel\nhttp://x/3\n"
	"#EXTINF:-1 tvg-id=\"I10436.labs.zap2it.com\" tvg-chno=\"4\",NBC\nhttp://x/4\n"
	"#EXTINF:-1 tvg-id=\"shift.tv\" tvg-shift=\"2\" tvg-chno=\"5\",Shifted\nhttp://x/5\n";

static struct {
	char dir[64];
	char data[96];
	char input[128];
	struct ptv_store *store;
	struct ptv_epg_opts opts;
} fx;

static void quiet(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_FUZZ_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	if (fx.store)
		ptv_store_close(fx.store);
	fx.store = NULL;
	nftw(fx.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -errno;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) || !ok ? -EIO : 0;
}

static void setup(void)
{
	struct ptv_store_opts so = {.map_size = 16u << 20, .map_max = 256u << 20};
	struct ptv_import_m3u_opts mo = {.allow_file = true, .name = "iptv"};
	struct ptv_import_report rep;
	char m3u[128];

	ptv_log_set_sink(quiet, NULL);
	snprintf(fx.dir, sizeof(fx.dir), "%s/ptv-epg-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fx.dir))
		abort();
	atexit(cleanup);
	snprintf(fx.data, sizeof(fx.data), "%s/data", fx.dir);
	snprintf(fx.input, sizeof(fx.input), "%s/guide.xml", fx.dir);
	snprintf(m3u, sizeof(m3u), "%s/lineup.m3u", fx.dir);
	if (ptv_store_open(fx.data, &so, &fx.store) || write_file(m3u, LINEUP, strlen(LINEUP)))
		abort();
	mo.location = m3u;
	if (ptv_sources_import_m3u(fx.store, &mo, &rep))
		abort();
	fx.opts = (struct ptv_epg_opts){.data_dir = fx.data,
					.max_bytes = 1u << 20,
					.timeout_s = 60,
					.retention_s = 86400,
					.dummy = true,
					.dummy_block_s = 3600,
					.dummy_span_s = 24 * 3600};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ptv_epg_import_opts io = {.name = "guide", .allow_file = true};
	struct ptv_epg_report rep;
	int ret;

	if (!fx.store)
		setup();
	if (write_file(fx.input, data, size))
		abort();
	io.location = fx.input;
	memset(&rep, 0, sizeof(rep));
	ret = ptv_epg_import(fx.store, &fx.opts, &io, &rep);
	if (ret && ret != -PTV_ERR_PARSE && ret != -PTV_ERR_LIMIT && ret != -EFBIG &&
	    ret != -ETIMEDOUT) {
		fprintf(stderr, "ptv_epg_import: unexpected %d (%s)\n", ret, rep.error);
		abort();
	}
	if (!memchr(rep.error, '\0', sizeof(rep.error)))
		abort();
	if (!ret && (rep.programmes > rep.programmes_in || rep.channels_kept > rep.channels)) {
		fprintf(stderr,
			"ptv_epg_import: inconsistent report: %lu of %lu programmes, %lu "
			"of %lu channels\n",
			(unsigned long)rep.programmes, (unsigned long)rep.programmes_in,
			(unsigned long)rep.channels_kept, (unsigned long)rep.channels);
		abort();
	}
	return 0;
}
