/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for the configuration file reader (config.h): ptv_config_load() on
 * arbitrary INI text. The text is written to a memfd once per input and loaded through
 * /proc/self/fd/N, so no file lands on disk. Checked besides crashes:
 *  - the error message is NUL-terminated inside its buffer, and set exactly when loading
 *    fails;
 *  - a loaded configuration has every string field NUL-terminated inside its array;
 *  - ptv_config_show() of it keeps the INI line structure: every line is blank, a comment, a
 *    [section] or "key = value" (no value can smuggle a line break into the output).
 * Seeds: the INI texts of tests/unit/config_test.c and the README.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plextv/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELD_OK(c, f) (memchr((c)->f, '\0', sizeof((c)->f)) != NULL)

static void check_strings(const struct ptv_config *c)
{
	if (!FIELD_OK(c, listen) || !FIELD_OK(c, data_dir) || !FIELD_OK(c, base_url) ||
	    !FIELD_OK(c, demo_dir) || !FIELD_OK(c, friendly_name) || !FIELD_OK(c, user_agent) ||
	    !FIELD_OK(c, acestream_engine) || !FIELD_OK(c, relay_send_mode) ||
	    !FIELD_OK(c, relay_ingest_command) || !FIELD_OK(c, config_file) || !FIELD_OK(c, ssdp) ||
	    !FIELD_OK(c, hdhr_discovery) || !FIELD_OK(c, allow_prefixes) ||
	    !FIELD_OK(c, http_port80) || !FIELD_OK(c, bpf) || !FIELD_OK(c, guide_shift_hours))
		abort();
}

static bool is_key_line(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n &&
	       ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
		i++;
	return i > 0 && n - i >= 3 && !memcmp(s + i, " = ", 3);
}

static void check_show(const struct ptv_config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		abort();
	ptv_config_show(c, f);
	fclose(f);
	if (strlen(text) != len)
		abort();
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		if (n && line[0] != ';' && !(line[0] == '[' && line[n - 1] == ']') &&
		    !is_key_line(line, n))
			abort();
		line += n + (nl ? 1 : 0);
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct ptv_config *c;
	char err[256];
	int ret;

	if (fd < 0) {
		fd = memfd_create("ptv-config-fuzz", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	c = malloc(sizeof(*c));
	if (!c)
		abort();
	memset(err, 0x5a, sizeof(err));
	ret = ptv_config_load(c, path, NULL, 0, err, sizeof(err));
	if (!memchr(err, '\0', sizeof(err)) || (ret != 0) != (err[0] != '\0'))
		abort();
	if (!ret) {
		check_strings(c);
		check_show(c);
	}
	free(c);
	return 0;
}
