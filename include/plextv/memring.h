/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ring chunks kept in one memfd, so a viewer's bytes can reach its socket with sendfile(): the
 * kernel hands the file's pages to TCP instead of copying the bytes (send_mode = splice).
 *
 * Why a chunk's memory is never written twice: after sendfile() returns, the socket still
 * holds references to the pages it was given (until the peer acknowledges the bytes, and for
 * retransmits), and on loopback the receiver copies from those very pages when it reads.
 * Writing new data into them would change bytes already "sent". So when a chunk's last
 * reference goes, its extent is punched out of the file (fallocate PUNCH_HOLE): the old pages
 * leave the file but live on, unchanged, for as long as a socket or pipe holds them, and the
 * next chunk placed in that extent faults in fresh pages.
 *
 * A chunk is a ptv_blob whose header and bytes live in the mapping (fd and file_off say where
 * the bytes are in the file), so rings, replicas and the HTTP layer share it like any other
 * blob. Every live chunk holds a reference to its memring: the file outlives its chunks.
 * Thread-safe: chunks are released on whichever reactor drops the last reference.
 */
#pragma once

#include <stddef.h>

#include "plextv/buf.h"

struct ptv_memring;

/**
 * A memfd with room for @max_chunks chunks of @chunk_bytes (virtual: pages exist only while a
 * chunk is alive). Returns 0, or a negative errno (memfd_create, ftruncate or mmap failed).
 */
int ptv_memring_new(size_t chunk_bytes, unsigned max_chunks, struct ptv_memring **out);
/** A new chunk (refs = 1, contents undefined), or NULL when every extent is in use. */
struct ptv_blob *ptv_memring_chunk_new(struct ptv_memring *m);
/** Drops the owner's reference; the file goes when its last chunk does. NULL is fine. */
void ptv_memring_unref(struct ptv_memring *m);
/**
 * Chunks alive now, and extents retired because their hole could not be punched (they are
 * never written again; should stay 0). For tests and metrics.
 */
void ptv_memring_stats(struct ptv_memring *m, unsigned *live, unsigned *retired);
