/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * One reactor per thread: an io_uring, a provided-buffer ring for receives, a timer wheel for
 * deadlines, and an inbox that other threads post work to (eventfd read kept armed in the ring).
 *
 * Operations: every SQE's user_data points at a struct ptv_op embedded in its owner. The owner
 * counts its in-flight operations and is freed only after the last completion arrived (the
 * io_uring lifetime rule: never free while an SQE may still reference the memory).
 *
 * Everything in this header except ptv_reactor_post() and ptv_reactor_stop() must be called on
 * the reactor's own thread; the ring is created with SINGLE_ISSUER where the kernel has it.
 */
#pragma once

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "plextv/common.h"

struct ptv_reactor;
struct ptv_op;

/**
 * Completion callback. @res is cqe->res (bytes or a negative errno), @flags is cqe->flags
 * (IORING_CQE_F_MORE while a multishot operation stays armed, IORING_CQE_F_BUFFER with a buffer
 * id for provided-buffer receives).
 */
typedef void (*ptv_op_cb)(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags);

struct ptv_op {
	ptv_op_cb cb;
};

/** What the kernel offered when the ring was set up (logged once, shown in metrics). */
struct ptv_reactor_features {
	bool single_issuer;
	bool defer_taskrun;
	bool coop_taskrun;
	bool multishot_accept;
	bool multishot_recv;
	bool send_zc;
	bool sendmsg_zc; /* 6.1+: zero-copy sendmsg (several iovecs) */
	bool buf_ring;
};

/** Timer: embed it; cb runs on the reactor thread when the deadline passes. */
struct ptv_timer {
	struct ptv_list node;
	uint64_t expires_ms;
	void (*cb)(struct ptv_timer *t);
};

struct ptv_reactor_opts {
	unsigned index;	     /* 0..n-1, for logs and metrics */
	unsigned sq_entries; /* power of two; default 1024 */
	unsigned buf_count;  /* provided receive buffers; power of two; default 512 */
	unsigned buf_size;   /* bytes each; default 4096 */
};

/**
 * Creates a reactor. Must be called on the thread that will run it (SINGLE_ISSUER). Returns 0,
 * or -EPERM/-ENOSYS when io_uring is blocked or absent (the caller explains the fix), or
 * -PTV_ERR_UNSUPPORTED when a required operation is missing from the kernel.
 */
int ptv_reactor_new(const struct ptv_reactor_opts *opts, struct ptv_reactor **out);
/** Frees the reactor. Every owner of in-flight operations must be gone. */
void ptv_reactor_free(struct ptv_reactor *r);

/**
 * Runs the loop until ptv_reactor_stop() was called and ptv_reactor_set_busy() says nothing
 * is left (or immediately after stop if no busy callback is set). Returns 0 or a negative errno.
 */
int ptv_reactor_run(struct ptv_reactor *r);
/** Asks the loop to end. Thread-safe. */
void ptv_reactor_stop(struct ptv_reactor *r);
bool ptv_reactor_stopping(const struct ptv_reactor *r);
/** Called after stop on every loop turn: return true while work remains (open connections). */
void ptv_reactor_set_busy(struct ptv_reactor *r, bool (*busy)(void *ctx), void *ctx);

/** Runs what is queued in the inbox now; for the reactor's thread after its loop ended. */
void ptv_reactor_run_inbox(struct ptv_reactor *r);

/** Runs @fn(@arg) on the reactor's thread soon. Thread-safe; may be called from any thread. */
void ptv_reactor_post(struct ptv_reactor *r, void (*fn)(void *arg), void *arg);

/** A free SQE with user_data set to @op (submitting the queue first if it is full). */
struct io_uring_sqe *ptv_reactor_sqe(struct ptv_reactor *r, struct ptv_op *op);

/** Provided-buffer receive support: group id for IOSQE_BUFFER_SELECT, buffer lookup, recycle. */
uint16_t ptv_reactor_buf_group(const struct ptv_reactor *r);
void *ptv_reactor_buf_get(struct ptv_reactor *r, uint16_t bid);
void ptv_reactor_buf_put(struct ptv_reactor *r, uint16_t bid);

/* Per-reactor pointers owned by other modules (each reactor has its own copy). */
enum ptv_reactor_slot {
	PTV_SLOT_LINEUP = 0, /* struct ptv_lineup * current on this reactor */
	PTV_SLOT_RELAY,	     /* relay state of this reactor */
	PTV_SLOT_HTTP,	     /* struct ptv_http_server * */
	PTV_SLOT_COUNT,
};

void *ptv_reactor_local(const struct ptv_reactor *r, enum ptv_reactor_slot slot);
void ptv_reactor_set_local(struct ptv_reactor *r, enum ptv_reactor_slot slot, void *p);

/** Monotonic milliseconds, cached once per loop turn. */
uint64_t ptv_reactor_now_ms(const struct ptv_reactor *r);
unsigned ptv_reactor_index(const struct ptv_reactor *r);
const struct ptv_reactor_features *ptv_reactor_features(const struct ptv_reactor *r);

/** (Re)arms @t to fire @delay_ms from now (resolution: PTV_TIMER_TICK_MS). */
void ptv_timer_arm(struct ptv_reactor *r, struct ptv_timer *t, uint64_t delay_ms);
void ptv_timer_cancel(struct ptv_timer *t);
static inline bool ptv_timer_armed(const struct ptv_timer *t)
{
	return t->node.next && !ptv_list_empty(&t->node);
}
static inline void ptv_timer_init(struct ptv_timer *t, void (*cb)(struct ptv_timer *t))
{
	ptv_list_init(&t->node);
	t->expires_ms = 0;
	t->cb = cb;
}

#define PTV_TIMER_TICK_MS 50u
