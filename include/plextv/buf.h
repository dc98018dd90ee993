/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Growable byte buffers and refcounted immutable blobs.
 *
 * struct ptv_buf: an all-zero struct is a valid empty buffer. Append errors are sticky (the
 * `oom` flag) so a renderer can append many pieces and check once at the end.
 *
 * struct ptv_blob: bytes shared by many connections without a copy per client (a pre-rendered
 * lineup, a cached response). Refcounts are atomic: blobs cross threads.
 */
#pragma once

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/common.h"

struct ptv_buf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

void ptv_buf_init(struct ptv_buf *b);
void ptv_buf_free(struct ptv_buf *b);
void ptv_buf_reset(struct ptv_buf *b);
/** Makes room for @extra more bytes. Returns 0 or -ENOMEM (and sets oom). */
int ptv_buf_reserve(struct ptv_buf *b, size_t extra);
int ptv_buf_append(struct ptv_buf *b, const void *p, size_t n);
int ptv_buf_puts(struct ptv_buf *b, const char *s);
int ptv_buf_putc(struct ptv_buf *b, char c);
int ptv_buf_printf(struct ptv_buf *b, const char *fmt, ...) PTV_PRINTF(2, 3);
int ptv_buf_vprintf(struct ptv_buf *b, const char *fmt, va_list ap) PTV_PRINTF(2, 0);
/** Removes the first @n bytes. */
void ptv_buf_consume(struct ptv_buf *b, size_t n);
/** Returns the heap array (NUL-terminated) and leaves @b empty. NULL when empty or oom. */
char *ptv_buf_steal(struct ptv_buf *b, size_t *len);

struct ptv_blob {
	atomic_uint refs;
	int fd; /* -1, or a file holding data[] at file_off (for sendfile) */
	size_t len;
	uint64_t file_off;
	/* Frees the blob when the last reference goes; NULL: free(). Lets a blob live in memory
	 * that is not the heap (memring.h) and still be shared like any other. */
	void (*release)(struct ptv_blob *blob);
	void *owner; /* for release */
	char data[];
};

/** A new blob holding a copy of @p (or uninitialised bytes when @p is NULL); refs = 1. */
struct ptv_blob *ptv_blob_new(const void *p, size_t len);
/** Copies the contents of @b into a new blob and empties @b. NULL on oom. */
struct ptv_blob *ptv_blob_from_buf(struct ptv_buf *b);
struct ptv_blob *ptv_blob_ref(struct ptv_blob *blob);
void ptv_blob_unref(struct ptv_blob *blob);
