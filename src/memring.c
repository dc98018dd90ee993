/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ring chunks in a memfd (see memring.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plextv/common.h"
#include "plextv/memring.h"

/* Linux 6.3: without it the kernel logs a warning for every executable-by-default memfd. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

struct ptv_memring {
	atomic_uint refs; /* the owner's, plus one per live chunk */
	int fd;
	char *base;
	size_t size, extent, chunk_bytes;

	pthread_mutex_t lock; /* the rest */
	unsigned max, next;   /* extents; next: first never used */
	unsigned nfree, live, retired;
	unsigned *free; /* [max] extents ready for a chunk (punched) */
};

static int memring_file(size_t size, int *fd_out)
{
	int fd = memfd_create("plextv-ring", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

	/* Kernels before 6.3 refuse the flag they do not know. */
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("plextv-ring", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	*fd_out = fd;
	return 0;
}

int ptv_memring_new(size_t chunk_bytes, unsigned max_chunks, struct ptv_memring **out)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct ptv_memring *m;
	int ret;

	if (!chunk_bytes || !max_chunks)
		return -EINVAL;
	m = ptv_xcalloc(1, sizeof(*m));
	/* Whole pages per extent, so punching one never touches a neighbour. */
	m->extent = (offsetof(struct ptv_blob, data) + chunk_bytes + 1 + page - 1) / page * page;
	m->chunk_bytes = chunk_bytes;
	m->max = max_chunks;
	m->size = m->extent * max_chunks;
	m->free = ptv_xcalloc(max_chunks, sizeof(*m->free));
	atomic_init(&m->refs, 1);
	pthread_mutex_init(&m->lock, NULL);
	ret = memring_file(m->size, &m->fd);
	if (ret)
		goto fail;
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (m->base == MAP_FAILED) {
		ret = -errno;
		close(m->fd);
		goto fail;
	}
	*out = m;
	return 0;
fail:
	pthread_mutex_destroy(&m->lock);
	free(m->free);
	free(m);
	return ret;
}

void ptv_memring_unref(struct ptv_memring *m)
{
	if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	munmap(m->base, m->size);
	close(m->fd);
	pthread_mutex_destroy(&m->lock);
	free(m->free);
	free(m);
}

/* The last reference to a chunk went: detach its pages from the file, then offer the extent. */
static void memring_chunk_release(struct ptv_blob *b)
{
	struct ptv_memring *m = b->owner;
	unsigned i = (unsigned)(((char *)b - m->base) / m->extent);
	bool punched = !fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)i * (off_t)m->extent, (off_t)m->extent);

	/* b is gone from here on: its header was in the punched pages. */
	pthread_mutex_lock(&m->lock);
	/* An extent whose old pages may still be in a socket cannot be written again. */
	if (punched)
		m->free[m->nfree++] = i;
	else
		m->retired++;
	m->live--;
	pthread_mutex_unlock(&m->lock);
	ptv_memring_unref(m);
}

static bool memring_take(struct ptv_memring *m, unsigned *i)
{
	bool ok = true;

	pthread_mutex_lock(&m->lock);
	if (m->nfree)
		*i = m->free[--m->nfree];
	else if (m->next < m->max)
		*i = m->next++;
	else
		ok = false;
	if (ok)
		m->live++;
	pthread_mutex_unlock(&m->lock);
	return ok;
}

struct ptv_blob *ptv_memring_chunk_new(struct ptv_memring *m)
{
	struct ptv_blob *b;
	unsigned i;

	if (!memring_take(m, &i))
		return NULL;
	b = (struct ptv_blob *)(m->base + (size_t)i * m->extent);
	atomic_init(&b->refs, 1);
	b->fd = m->fd;
	b->len = m->chunk_bytes;
	b->file_off = (uint64_t)i * m->extent + offsetof(struct ptv_blob, data);
	b->release = memring_chunk_release;
	b->owner = m;
	b->data[b->len] = '\0';
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return b;
}

void ptv_memring_stats(struct ptv_memring *m, unsigned *live, unsigned *retired)
{
	pthread_mutex_lock(&m->lock);
	*live = m->live;
	*retired = m->retired;
	pthread_mutex_unlock(&m->lock);
}
