/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Per-channel TS ring of refcounted chunks (see ring.h).
 */
#include <stdlib.h>
#include <string.h>

#include "plextv/common.h"
#include "plextv/memring.h"
#include "plextv/ring.h"

int ptv_ring_init(struct ptv_ring *r, size_t max_bytes, unsigned max_ms)
{
	size_t n = (max_bytes + PTV_RING_CHUNK - 1) / PTV_RING_CHUNK;

	memset(r, 0, sizeof(*r));
	/* The head chunk is being written and a reader needs the one before: 4 at least. */
	r->nslots = (unsigned)PTV_MAX(n, (size_t)4);
	r->chunk_size = PTV_RING_CHUNK;
	r->max_ms = max_ms;
	r->slots = calloc(r->nslots, sizeof(*r->slots));
	return r->slots ? 0 : -ENOMEM;
}

void ptv_ring_clear(struct ptv_ring *r)
{
	for (unsigned i = 0; i < r->nslots; i++) {
		ptv_blob_unref(r->slots[i].chunk);
		r->slots[i].chunk = NULL;
	}
	r->have_rap = false;
}

void ptv_ring_deinit(struct ptv_ring *r)
{
	if (!r->slots)
		return;
	ptv_ring_clear(r);
	for (unsigned i = 0; i < r->nspare; i++)
		ptv_blob_unref(r->spare[i]);
	ptv_freep(&r->slots);
	r->nspare = 0;
	ptv_memring_unref(r->mem);
	r->mem = NULL;
}

int ptv_ring_use_memfd(struct ptv_ring *r)
{
	if (r->mem)
		return 0;
	/* The ring's own chunks, plus room for chunks that left it but are still being sent or
	 * held by replicas on other reactors. Only live chunks take memory. */
	return ptv_memring_new(r->chunk_size, r->nslots * 4 + 16, &r->mem);
}

static struct ptv_ring_slot *ring_slot(const struct ptv_ring *r, uint64_t index)
{
	return &r->slots[index % r->nslots];
}

/* The chunk of the oldest data leaves the ring. */
static void ring_evict_oldest(struct ptv_ring *r)
{
	struct ptv_ring_slot *s = ring_slot(r, r->tail / r->chunk_size);
	struct ptv_blob *b = s->chunk;

	s->chunk = NULL;
	r->tail += r->chunk_size;
	if (r->have_rap && r->rap.off < r->tail)
		r->have_rap = false;
	if (!b)
		return;
	/*
	 * Only the ring holds it: no send and no replica can see it any more, and nobody can
	 * take a new reference (references are only ever taken from a ring), so its memory may
	 * be written again. The acquire pairs with the releasing unref of the last other owner.
	 * Not a memfd chunk: a socket may still hold its pages (memring.h).
	 */
	if (b->fd < 0 && r->nspare < PTV_ARRAY_SIZE(r->spare) &&
	    atomic_load_explicit(&b->refs, memory_order_acquire) == 1) {
		r->spare[r->nspare++] = b;
		return;
	}
	ptv_blob_unref(b);
}

static struct ptv_blob *ring_chunk_new(struct ptv_ring *r)
{
	struct ptv_blob *b = r->mem ? ptv_memring_chunk_new(r->mem) : NULL;

	if (b)
		return b;
	if (r->mem)
		r->mem_misses++;
	if (r->nspare)
		return r->spare[--r->nspare];
	r->chunks_new++;
	return ptv_blob_new(NULL, r->chunk_size);
}

static int ring_start_chunk(struct ptv_ring *r, uint64_t now_ms)
{
	uint64_t index = r->head / r->chunk_size;
	struct ptv_ring_slot *s;
	struct ptv_blob *b;

	while (r->head - r->tail >= (uint64_t)r->nslots * r->chunk_size)
		ring_evict_oldest(r);
	b = ring_chunk_new(r);
	if (!b)
		return -ENOMEM;
	s = ring_slot(r, index);
	PTV_BUG_ON(s->chunk != NULL);
	s->chunk = b;
	s->index = index;
	s->t_ms = now_ms;
	r->fill = 0;
	return 0;
}

int ptv_ring_reserve(struct ptv_ring *r, uint64_t now_ms, uint8_t **p, size_t *len)
{
	struct ptv_ring_slot *s = ring_slot(r, r->head / r->chunk_size);
	int ret;

	/* head on a chunk boundary with everything committed: the next chunk starts. */
	if (r->head % r->chunk_size == 0 && r->fill == 0 &&
	    (!s->chunk || s->index != r->head / r->chunk_size)) {
		ret = ring_start_chunk(r, now_ms);
		if (ret)
			return ret;
		s = ring_slot(r, r->head / r->chunk_size);
	}
	*p = (uint8_t *)s->chunk->data + r->fill;
	*len = r->chunk_size - r->fill;
	return 0;
}

void ptv_ring_wrote(struct ptv_ring *r, size_t n)
{
	PTV_BUG_ON(r->fill + n > r->chunk_size);
	r->fill += n;
}

uint8_t *ptv_ring_pending(struct ptv_ring *r, size_t *n)
{
	size_t hoff = r->head % r->chunk_size;
	struct ptv_ring_slot *s = ring_slot(r, r->head / r->chunk_size);

	/* fill counts from the start of the head chunk; commit resets it when a chunk ends. */
	*n = r->fill - hoff;
	return *n ? (uint8_t *)s->chunk->data + hoff : NULL;
}

void ptv_ring_commit(struct ptv_ring *r, size_t n)
{
	size_t pending;

	ptv_ring_pending(r, &pending);
	PTV_BUG_ON(n > pending || n % PTV_TS_PKT);
	r->head += n;
	if (r->fill == r->chunk_size && r->head % r->chunk_size == 0)
		r->fill = 0; /* the chunk is complete: the next reserve starts a new one */
}

void ptv_ring_drop_pending(struct ptv_ring *r, size_t n)
{
	size_t pending;
	uint8_t *p = ptv_ring_pending(r, &pending);

	PTV_BUG_ON(n > pending);
	memmove(p, p + n, pending - n);
	r->fill -= n;
}

void ptv_ring_discard_partial(struct ptv_ring *r)
{
	size_t pending;

	ptv_ring_pending(r, &pending);
	r->fill -= pending;
}

void ptv_ring_set_rap(struct ptv_ring *r, uint64_t off, const uint8_t *pat, const uint8_t *pmt,
		      uint64_t now_ms)
{
	r->rap.off = off;
	r->rap.t_ms = now_ms;
	memcpy(r->rap.psi, pat, PTV_TS_PKT);
	memcpy(r->rap.psi + PTV_TS_PKT, pmt, PTV_TS_PKT);
	r->have_rap = true;
}

void ptv_ring_trim(struct ptv_ring *r, uint64_t now_ms)
{
	if (!r->max_ms)
		return;
	/* Drop the oldest chunk while the chunk after it, and so all of it, is too old. */
	while (r->head / r->chunk_size > r->tail / r->chunk_size + 1) {
		const struct ptv_ring_slot *next = ring_slot(r, r->tail / r->chunk_size + 1);

		if (!next->chunk || next->t_ms + r->max_ms > now_ms)
			break;
		ring_evict_oldest(r);
	}
}

size_t ptv_ring_peek(const struct ptv_ring *r, uint64_t off, struct ptv_blob **chunk, size_t *coff)
{
	uint64_t index = off / r->chunk_size, end;
	const struct ptv_ring_slot *s;

	if (off < r->tail || off >= r->head)
		return 0;
	s = ring_slot(r, index);
	if (!s->chunk || s->index != index)
		return 0;
	end = PTV_MIN(r->head, (index + 1) * r->chunk_size);
	*chunk = s->chunk;
	*coff = (size_t)(off % r->chunk_size);
	return (size_t)(end - off);
}

uint64_t ptv_ring_lag_ms(const struct ptv_ring *r, uint64_t off, uint64_t now_ms)
{
	uint64_t index = off / r->chunk_size;
	const struct ptv_ring_slot *next;

	if (r->head == 0 || index >= (r->head - 1) / r->chunk_size)
		return 0;
	next = ring_slot(r, index + 1);
	if (!next->chunk || next->index != index + 1 || next->t_ms > now_ms)
		return 0;
	return now_ms - next->t_ms;
}

const struct ptv_ring_rap *ptv_ring_rap(const struct ptv_ring *r)
{
	struct ptv_blob *chunk;
	size_t coff;

	if (!r->have_rap || !ptv_ring_peek(r, r->rap.off, &chunk, &coff))
		return NULL;
	return &r->rap;
}

/* ---- replication ---- */

struct ptv_ring_update *ptv_ring_update_new(const struct ptv_ring *m, uint64_t from)
{
	uint64_t start = PTV_MAX(from, m->tail), first = start / m->chunk_size, count = 0;
	struct ptv_ring_update *u;
	unsigned n = 0;

	/* Nothing new: the message still carries the bounds and the start point. */
	if (start < m->head)
		count = (m->head - 1) / m->chunk_size + 1 - first;
	u = malloc(sizeof(*u) + (size_t)count * sizeof(u->slots[0]));
	if (!u)
		return NULL;
	for (uint64_t i = first; i < first + count; i++) {
		const struct ptv_ring_slot *s = ring_slot(m, i);

		if (!s->chunk || s->index != i)
			continue;
		u->slots[n] = *s;
		ptv_blob_ref(s->chunk);
		n++;
	}
	u->n = n;
	u->head = m->head;
	u->tail = m->tail;
	u->have_rap = m->have_rap;
	if (m->have_rap)
		u->rap = m->rap;
	return u;
}

void ptv_ring_update_apply(struct ptv_ring *r, struct ptv_ring_update *u)
{
	uint64_t from = r->tail / r->chunk_size, to = u->tail / r->chunk_size;

	/* Below the new tail nothing is valid any more: let those chunks go first (each slot
	 * once, however far behind the replica was). */
	if (to > from + r->nslots)
		from = to - r->nslots;
	for (uint64_t i = from; i < to; i++) {
		struct ptv_ring_slot *s = ring_slot(r, i);

		if (s->chunk && s->index == i) {
			ptv_blob_unref(s->chunk);
			s->chunk = NULL;
		}
	}
	for (unsigned i = 0; i < u->n; i++) {
		struct ptv_ring_slot *s = ring_slot(r, u->slots[i].index);

		ptv_blob_unref(s->chunk);
		*s = u->slots[i];
	}
	r->head = u->head;
	r->tail = u->tail;
	r->have_rap = u->have_rap;
	if (u->have_rap)
		r->rap = u->rap;
	free(u);
}

void ptv_ring_update_free(struct ptv_ring_update *u)
{
	if (!u)
		return;
	for (unsigned i = 0; i < u->n; i++)
		ptv_blob_unref(u->slots[i].chunk);
	free(u);
}
