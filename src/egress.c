/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Per-viewer send policy over a ring (see egress.h).
 */
#include <string.h>

#include "plextv/common.h"
#include "plextv/egress.h"

static const char *const mode_names[] = {
	[PTV_SEND_PLAIN] = "send",
	[PTV_SEND_ZC] = "zc",
	[PTV_SEND_SPLICE] = "splice",
};

int ptv_send_mode_parse(const char *s, enum ptv_send_mode *out)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(mode_names); i++) {
		if (!strcmp(s, mode_names[i])) {
			*out = (enum ptv_send_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ptv_send_mode_name(enum ptv_send_mode m)
{
	return (size_t)m < PTV_ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

void ptv_egress_init(struct ptv_egress *e, bool from_start)
{
	memset(e, 0, sizeof(*e));
	e->from_start = from_start;
}

static bool egress_at_zero(const struct ptv_egress *e, const struct ptv_ring *ring)
{
	struct ptv_blob *chunk;
	size_t coff;

	return e->from_start && ring->tail == 0 && ptv_ring_peek(ring, 0, &chunk, &coff);
}

bool ptv_egress_can_start(const struct ptv_egress *e, const struct ptv_ring *ring)
{
	return egress_at_zero(e, ring) || ptv_ring_rap(ring);
}

/* Queues the PAT/PMT of @rap and moves the cursor to its keyframe. */
static int egress_jump(struct ptv_egress *e, const struct ptv_ring_rap *rap,
		       const struct ptv_egress_sink *sink, void *ctx)
{
	int ret = sink->write_copy(ctx, rap->psi, sizeof(rap->psi));

	if (ret)
		return ret;
	e->bytes += sizeof(rap->psi);
	e->cursor = rap->off;
	return 0;
}

static int egress_start(struct ptv_egress *e, const struct ptv_ring *ring,
			const struct ptv_egress_sink *sink, void *ctx)
{
	const struct ptv_ring_rap *rap;
	int ret;

	if (egress_at_zero(e, ring)) {
		e->cursor = 0;
	} else {
		rap = ptv_ring_rap(ring);
		if (!rap)
			return 0;
		ret = egress_jump(e, rap, sink, ctx);
		if (ret)
			return ret;
	}
	e->started = true;
	e->events |= PTV_EGRESS_STARTED;
	return 1;
}

/* Behind the bound: jump to the newest start point, if it is ahead of us. */
static int egress_check_lag(struct ptv_egress *e, const struct ptv_ring *ring,
			    const struct ptv_egress_sink *sink, void *ctx,
			    const struct ptv_egress_opts *o, uint64_t now_ms)
{
	const struct ptv_ring_rap *rap;
	bool gone = e->cursor < ring->tail;
	uint64_t from = e->cursor;
	int ret;

	if (!gone && (!o->max_lag_ms || ptv_ring_lag_ms(ring, e->cursor, now_ms) <= o->max_lag_ms))
		return 0;
	rap = ptv_ring_rap(ring);
	if (rap && rap->off > e->cursor) {
		ret = egress_jump(e, rap, sink, ctx);
		if (ret)
			return ret;
	} else if (gone) {
		/* No start point ahead: the oldest data is the best we have. */
		e->cursor = ring->tail;
	} else {
		return 0;
	}
	e->skipped += e->cursor - from;
	e->resyncs++;
	e->events |= PTV_EGRESS_RESYNC;
	return 1;
}

int ptv_egress_pump(struct ptv_egress *e, const struct ptv_ring *ring,
		    const struct ptv_egress_sink *sink, void *ctx, const struct ptv_egress_opts *o,
		    uint64_t now_ms)
{
	struct ptv_blob *chunk;
	bool urgent = false;
	size_t coff, len;
	uint64_t before = e->bytes;
	int ret;

	if (sink->queued(ctx))
		return 0;
	if (!e->started)
		ret = egress_start(e, ring, sink, ctx);
	else
		ret = egress_check_lag(e, ring, sink, ctx, o, now_ms);
	if (ret < 0)
		return ret;
	/* A first batch, or the first after a jump, goes out at once. */
	urgent = ret > 0;
	if (!e->started)
		return 0;
	len = ptv_ring_peek(ring, e->cursor, &chunk, &coff);
	if (!len)
		return (int)(e->bytes - before);
	if (!urgent && coff + len < ring->chunk_size && now_ms < e->last_batch_ms + o->batch_ms)
		return (int)(e->bytes - before); /* wait for a fuller batch */
	ret = sink->write_ref(ctx, chunk, coff, len);
	if (ret)
		return ret;
	e->cursor += len;
	e->bytes += len;
	e->last_batch_ms = now_ms;
	return (int)(e->bytes - before);
}
