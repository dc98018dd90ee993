/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <stdio.h>
#include <string.h>

#include "plextv/buf.h"

void ptv_buf_init(struct ptv_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void ptv_buf_free(struct ptv_buf *b)
{
	free(b->data);
	ptv_buf_init(b);
}

void ptv_buf_reset(struct ptv_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data)
		b->data[0] = '\0';
}

int ptv_buf_reserve(struct ptv_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return -ENOMEM;
	/* +1 keeps room for the NUL that makes data usable as a C string. */
	if (__builtin_add_overflow(b->len, extra + 1, &need))
		goto fail;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (__builtin_mul_overflow(cap, 2, &cap))
			goto fail;
	}
	p = realloc(b->data, cap);
	if (!p)
		goto fail;
	b->data = p;
	b->cap = cap;
	return 0;
fail:
	b->oom = true;
	return -ENOMEM;
}

int ptv_buf_append(struct ptv_buf *b, const void *p, size_t n)
{
	int ret = ptv_buf_reserve(b, n);

	if (ret)
		return ret;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ptv_buf_puts(struct ptv_buf *b, const char *s)
{
	return ptv_buf_append(b, s, strlen(s));
}

int ptv_buf_putc(struct ptv_buf *b, char c)
{
	return ptv_buf_append(b, &c, 1);
}

int ptv_buf_vprintf(struct ptv_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, ret;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	ret = ptv_buf_reserve(b, (size_t)n);
	if (ret)
		return ret;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int ptv_buf_printf(struct ptv_buf *b, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = ptv_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return ret;
}

void ptv_buf_consume(struct ptv_buf *b, size_t n)
{
	if (n >= b->len) {
		ptv_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *ptv_buf_steal(struct ptv_buf *b, size_t *len)
{
	char *p = b->oom ? NULL : b->data;

	if (len)
		*len = p ? b->len : 0;
	if (!p)
		free(b->data);
	ptv_buf_init(b);
	return p;
}

struct ptv_blob *ptv_blob_new(const void *p, size_t len)
{
	struct ptv_blob *blob = malloc(sizeof(*blob) + len + 1);

	if (!blob)
		return NULL;
	atomic_init(&blob->refs, 1);
	blob->fd = -1;
	blob->len = len;
	blob->file_off = 0;
	blob->release = NULL;
	blob->owner = NULL;
	if (p)
		memcpy(blob->data, p, len);
	blob->data[len] = '\0';
	return blob;
}

struct ptv_blob *ptv_blob_from_buf(struct ptv_buf *b)
{
	struct ptv_blob *blob = b->oom ? NULL : ptv_blob_new(b->data, b->len);

	ptv_buf_free(b);
	return blob;
}

struct ptv_blob *ptv_blob_ref(struct ptv_blob *blob)
{
	atomic_fetch_add_explicit(&blob->refs, 1, memory_order_relaxed);
	return blob;
}

void ptv_blob_unref(struct ptv_blob *blob)
{
	if (!blob)
		return;
	/* acq_rel: the last owner must see every write made before other owners let go. */
	if (atomic_fetch_sub_explicit(&blob->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (blob->release)
		blob->release(blob);
	else
		free(blob);
}
