/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "plextv/common.h"

static const char *const ptv_err_text[] = {
	[PTV_ERR_PARSE - PTV_ERR_BASE] = "input could not be parsed",
	[PTV_ERR_CONFIG - PTV_ERR_BASE] = "invalid configuration",
	[PTV_ERR_LIMIT - PTV_ERR_BASE] = "limit reached",
	[PTV_ERR_UNSUPPORTED - PTV_ERR_BASE] = "not supported by this kernel",
};

const char *ptv_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e >= PTV_ERR_BASE && e < PTV_ERR_MAX)
		return ptv_err_text[e - PTV_ERR_BASE];
	/* strerror() is thread-safe in glibc for known codes (static strings). */
	return strerror(e);
}

void ptv_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "BUG at %s:%d: %s\n", file, line, what);
	abort();
}

static void ptv_oom(size_t n)
{
	fprintf(stderr, "out of memory allocating %zu bytes\n", n);
	abort();
}

void *ptv_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		ptv_oom(n);
	return p;
}

void *ptv_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		ptv_oom(n * size);
	return p;
}

void *ptv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		ptv_oom(n);
	return q;
}

char *ptv_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(ptv_xmalloc(n), s, n);
}

uint64_t ptv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double ptv_wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
