/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Per-viewer sending from a channel's ring: where a viewer starts, when it gets its next
 * batch, and what happens when it falls behind.
 *
 * A viewer is a cursor (an absolute ring offset) plus a sink that queues bytes on its
 * connection. ptv_egress_pump() is called when the sink has drained and when the ring grew;
 * it queues at most one batch and only when the sink is empty, so a viewer holds at most one
 * batch of references (a chunk or two) and never more than PTV_TS_PKT * 2 bytes of its own.
 *
 * Start: a viewer that joined a channel before its first byte starts at offset 0 (the ingest
 * child begins with PAT, PMT and a keyframe); any other viewer starts at the ring's newest
 * start point, after a copy of the PAT and PMT that preceded it.
 *
 * Batching: a batch is the rest of the cursor's chunk (up to ~64 KiB, PERFORMANCE-ANCHORS
 * §0.2); it goes out when the chunk is complete, or when the last batch left @batch_ms ago, so
 * low bitrates still flow at least every @batch_ms.
 *
 * Lag: a viewer whose cursor left the ring, or whose data is older than @max_lag_ms, jumps to
 * the newest start point (a resync). A viewer that cannot be written at all is evicted by
 * its connection's write timeout, outside this module.
 *
 * Send modes: this module decides what to send; the sink decides how (sendmsg, SEND_ZC, or
 * sendfile for memfd chunks: relay.h, http.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plextv/buf.h"
#include "plextv/ring.h"

enum ptv_send_mode {
	PTV_SEND_PLAIN = 0, /* sendmsg from the chunks (the kernel copies) */
	PTV_SEND_ZC = 1,    /* IORING_OP_SEND_ZC from the chunks */
	PTV_SEND_SPLICE = 2 /* splice/sendfile from a memfd ring */
};

/** Parses "send", "zc" or "splice". Returns 0 or -EINVAL. */
int ptv_send_mode_parse(const char *s, enum ptv_send_mode *out);
const char *ptv_send_mode_name(enum ptv_send_mode m);

/** How bytes reach a viewer's connection. Both writes queue; neither blocks. */
struct ptv_egress_sink {
	/** Queues a copy of @n bytes (the PAT/PMT prefix). Returns 0 or a negative errno. */
	int (*write_copy)(void *ctx, const void *p, size_t n);
	/** Queues @n bytes of @chunk from @off by reference (the sink takes its own ref). */
	int (*write_ref)(void *ctx, struct ptv_blob *chunk, size_t off, size_t n);
	/** Bytes queued and not yet sent. */
	size_t (*queued)(void *ctx);
};

struct ptv_egress_opts {
	unsigned batch_ms;   /* longest wait for a fuller batch */
	unsigned max_lag_ms; /* behind by more: jump to the newest start point; 0: only when the
				cursor left the ring */
};

enum ptv_egress_event {
	PTV_EGRESS_STARTED = 1u << 0, /* the first bytes were queued */
	PTV_EGRESS_RESYNC = 1u << 1,  /* the cursor jumped forward (lag) */
};

struct ptv_egress {
	uint64_t cursor;
	uint64_t last_batch_ms;
	uint64_t bytes;	  /* queued so far */
	uint64_t skipped; /* bytes jumped over by resyncs */
	unsigned resyncs;
	bool started;
	bool from_start; /* may start at offset 0 (joined before the channel had data) */
	unsigned events; /* PTV_EGRESS_* since the caller last cleared it */
};

/** A viewer that has not started. @from_start: see struct ptv_egress. */
void ptv_egress_init(struct ptv_egress *e, bool from_start);

/** True when the viewer could start now (a start point exists in @ring). */
bool ptv_egress_can_start(const struct ptv_egress *e, const struct ptv_ring *ring);

/**
 * Queues the viewer's next batch from @ring if the sink is empty and the policy says so.
 * Returns the number of bytes queued (0: nothing to do now) or the sink's negative errno.
 */
int ptv_egress_pump(struct ptv_egress *e, const struct ptv_ring *ring,
		    const struct ptv_egress_sink *sink, void *ctx, const struct ptv_egress_opts *o,
		    uint64_t now_ms);
