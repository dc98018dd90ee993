/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Per-channel TS ring: fixed-size refcounted chunks (ptv_blob, PTV_RING_CHUNK bytes, a whole
 * number of TS packets) addressed by absolute byte offsets that only grow.
 *
 * Bytes [tail, head) are valid. Byte o lives in chunk o / chunk_size, held in slot
 * (o / chunk_size) % nslots. A chunk's bytes below head never change: the writer only appends
 * past head. When the ring is full (by bytes, or the oldest chunk is older than max_ms) the
 * oldest chunk leaves the ring and the ring drops its reference; anyone still sending from it
 * (an in-flight send, another reactor's replica) keeps it alive through its own reference, and
 * the writer reuses a chunk's memory only when the ring held the last reference. So no byte is
 * ever sent after its slot was reused: a slot reuse is always a different chunk. Chunks in a
 * memfd (splice mode) are never reused in place at all: the socket may still hold their pages
 * after the last reference goes, so they go back to the memring, which punches them out of
 * the file first (memring.h).
 *
 * Threads: a ring is used by one thread. The session's home reactor owns the master ring (it
 * writes); every other reactor with viewers of the channel owns a replica, fed by
 * ptv_ring_update messages through its inbox. Chunk references are the only thing shared
 * (atomic refcounts), so readers take no lock and see immutable bytes.
 *
 * Start points: the ring remembers the newest random-access point (a video keyframe, or an
 * audio frame for radio) together with the PAT and PMT packets that preceded it, as they were
 * written (so their continuity counters fit the packets that follow). A viewer starts by
 * sending those two packets and then the ring from the keyframe on: decodable TS at once.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/buf.h"
#include "plextv/ts.h"

struct ptv_memring;

/* 348 packets = 65,424 bytes: a send-sized unit (PERFORMANCE-ANCHORS §0.2). */
#define PTV_RING_CHUNK_PKTS 348u
#define PTV_RING_CHUNK	    (PTV_RING_CHUNK_PKTS * PTV_TS_PKT)

struct ptv_ring_rap {
	uint64_t off;		     /* first byte to send after psi[] (a keyframe packet) */
	uint64_t t_ms;		     /* when it was written */
	uint8_t psi[2 * PTV_TS_PKT]; /* PAT then PMT */
};

struct ptv_ring_slot {
	struct ptv_blob *chunk; /* NULL: empty */
	uint64_t index;		/* chunk number: bytes [index * chunk_size, +chunk_size) */
	uint64_t t_ms;		/* when its first byte was written */
};

struct ptv_ring {
	size_t chunk_size;
	unsigned nslots;
	unsigned max_ms; /* 0: no time bound */
	struct ptv_ring_slot *slots;
	uint64_t head; /* end of valid data (whole packets) */
	uint64_t tail; /* start of valid data (chunk aligned) */
	bool have_rap;
	struct ptv_ring_rap rap;

	/* Writer (master) only. */
	size_t fill;		   /* bytes in the head chunk, an incomplete packet included */
	struct ptv_blob *spare[2]; /* heap chunks whose memory can be reused */
	unsigned nspare;
	uint64_t chunks_new;	 /* chunks allocated (not reused) */
	struct ptv_memring *mem; /* new chunks come from this memfd (splice mode), or NULL */
	uint64_t mem_misses;	 /* chunks that had to come from the heap instead */
};

/**
 * Prepares an empty ring holding at most @max_bytes (rounded up to whole chunks, at least 4)
 * and, when @max_ms > 0, nothing older than @max_ms. Returns 0 or -ENOMEM.
 */
int ptv_ring_init(struct ptv_ring *r, size_t max_bytes, unsigned max_ms);
/** Drops every reference the ring holds. */
void ptv_ring_deinit(struct ptv_ring *r);
/**
 * From now on, new chunks live in a memfd (memring.h) so viewers can be sent them with
 * sendfile(); chunks already written stay where they are. When the memfd is out of room a
 * chunk comes from the heap (counted in mem_misses) and is sent by copy. Writer only.
 * Returns 0 (also when already on) or a negative errno.
 */
int ptv_ring_use_memfd(struct ptv_ring *r);

/* ---- writer ---- */

/**
 * Where the next bytes go: *@p, at most *@len of them, in the head chunk. Starts a new chunk
 * when the head chunk is full (evicting the oldest one if the ring is full). The memory stays
 * valid until the next ptv_ring_reserve() (the ring keeps the head chunk). Returns 0 or -ENOMEM.
 */
int ptv_ring_reserve(struct ptv_ring *r, uint64_t now_ms, uint8_t **p, size_t *len);
/** @n bytes were written at the reserved place. */
void ptv_ring_wrote(struct ptv_ring *r, size_t n);
/** Written but not committed bytes (at head; may end in an incomplete packet). */
uint8_t *ptv_ring_pending(struct ptv_ring *r, size_t *n);
/** Commits @n pending bytes (whole packets): they become visible at head. */
void ptv_ring_commit(struct ptv_ring *r, size_t n);
/** Removes @n pending bytes from the front of the pending bytes (lost sync). */
void ptv_ring_drop_pending(struct ptv_ring *r, size_t n);
/** Forgets pending bytes (an incomplete packet from an input that ended). */
void ptv_ring_discard_partial(struct ptv_ring *r);
/** Records a start point at @off (committed or about to be) with the PAT and PMT before it. */
void ptv_ring_set_rap(struct ptv_ring *r, uint64_t off, const uint8_t *pat, const uint8_t *pmt,
		      uint64_t now_ms);
/** Applies the time bound: drops chunks entirely older than max_ms. */
void ptv_ring_trim(struct ptv_ring *r, uint64_t now_ms);

/* ---- readers ---- */

/**
 * The contiguous bytes at @off: sets *@chunk (not referenced: take a ref to keep it) and
 * *@coff, and returns how many bytes follow in that chunk below head, or 0 when @off is not
 * in [tail, head) or its chunk is missing (a replica not updated yet).
 */
size_t ptv_ring_peek(const struct ptv_ring *r, uint64_t off, struct ptv_blob **chunk, size_t *coff);
/**
 * How long ago (ms) the data after @off's chunk started: 0 when @off is in the newest chunk.
 * A lower bound of the lag of a reader at @off that works at any bitrate.
 */
uint64_t ptv_ring_lag_ms(const struct ptv_ring *r, uint64_t off, uint64_t now_ms);
/** The newest start point whose chunk is present, or NULL. */
const struct ptv_ring_rap *ptv_ring_rap(const struct ptv_ring *r);

/* ---- replication (master -> replicas on other reactors) ---- */

struct ptv_ring_update {
	uint64_t head, tail;
	bool have_rap;
	struct ptv_ring_rap rap;
	unsigned n;
	struct ptv_ring_slot slots[]; /* referenced chunks */
};

/**
 * A message bringing a replica that has the data up to @from (0: nothing) to the master's
 * state: references to every chunk holding bytes in [max(from, tail), head), the bounds and the
 * start point. Returns NULL on allocation failure.
 */
struct ptv_ring_update *ptv_ring_update_new(const struct ptv_ring *master, uint64_t from);
/** Applies @u to the replica @r (same chunk size and slot count) and frees @u. */
void ptv_ring_update_apply(struct ptv_ring *r, struct ptv_ring_update *u);
/** Frees an update that will not be applied (drops its references). NULL is fine. */
void ptv_ring_update_free(struct ptv_ring_update *u);
/** Drops every chunk of a replica (it has no reader any more); bounds are kept. */
void ptv_ring_clear(struct ptv_ring *r);
