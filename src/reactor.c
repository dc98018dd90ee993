/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"

#define PTV_WHEEL_SLOTS 2048u /* x 50 ms = 102 s before a timer needs a second lap */
#define PTV_BUF_GROUP	0

struct ptv_inbox_task {
	struct ptv_inbox_task *next;
	void (*fn)(void *arg);
	void *arg;
};

struct ptv_reactor {
	struct io_uring ring;
	struct ptv_reactor_features feat;
	unsigned index;
	uint64_t now_ms;
	atomic_bool stop;
	bool (*busy)(void *ctx);
	void *busy_ctx;

	/* Inbox: other threads append under the lock and poke the eventfd only when the list was
	 * empty; the reactor takes the whole list after each eventfd read completes. */
	pthread_mutex_t inbox_lock;
	struct ptv_inbox_task *inbox_head;
	struct ptv_inbox_task **inbox_tail;
	int efd;
	uint64_t efd_val;
	struct ptv_op efd_op;
	bool efd_armed;

	/* Provided receive buffers: the kernel picks one per completion. */
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	unsigned buf_count;
	unsigned buf_size;

	struct ptv_list wheel[PTV_WHEEL_SLOTS];
	uint64_t wheel_tick;

	void *local[PTV_SLOT_COUNT];

	/* How long one loop turn (completions + timers) keeps the thread busy: a stall here
	 * delays every connection of this reactor. */
	struct ptv_metric *m_turn;
	uint64_t turn_max_ns;
	struct ptv_metric *m_turn_max;
};

static int reactor_ring_init(struct ptv_reactor *r, unsigned entries)
{
	/* Best first: one issuer thread lets the kernel skip locking, and deferring task work to
	 * our own io_uring_enter() keeps completions from interrupting us. Older kernels reject
	 * the flags with -EINVAL, so fall back step by step. */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	int ret = -EINVAL;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(tries); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &r->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret)
		return ret;
	r->feat.single_issuer = p.flags & IORING_SETUP_SINGLE_ISSUER;
	r->feat.defer_taskrun = p.flags & IORING_SETUP_DEFER_TASKRUN;
	r->feat.coop_taskrun = p.flags & IORING_SETUP_COOP_TASKRUN;
	return 0;
}

static int reactor_probe(struct ptv_reactor *r)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
	static const int needed[] = {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SENDMSG,
				     IORING_OP_READ, IORING_OP_ASYNC_CANCEL};
	int ret = 0;

	if (!probe)
		return -PTV_ERR_UNSUPPORTED;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(needed); i++) {
		if (!io_uring_opcode_supported(probe, needed[i]))
			ret = -PTV_ERR_UNSUPPORTED;
	}
	/* SEND_ZC arrived in 6.0 together with multishot receive; multishot accept in 5.19. We
	 * need both multishot forms, so the SEND_ZC opcode is our witness for "6.0 or later". */
	r->feat.send_zc = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
	r->feat.sendmsg_zc = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
	r->feat.multishot_accept = r->feat.send_zc;
	r->feat.multishot_recv = r->feat.send_zc;
	if (!r->feat.send_zc)
		ret = -PTV_ERR_UNSUPPORTED;
	io_uring_free_probe(probe);
	return ret;
}

static int reactor_bufs_init(struct ptv_reactor *r)
{
	struct io_uring_buf_reg reg = {0};
	unsigned mask = io_uring_buf_ring_mask(r->buf_count);
	int ret;

	r->br_size = r->buf_count * sizeof(struct io_uring_buf);
	/* The ring must be page aligned; anonymous mmap gives that. */
	r->br = mmap(NULL, r->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (r->br == MAP_FAILED) {
		r->br = NULL;
		return -errno;
	}
	r->bufs = malloc((size_t)r->buf_count * r->buf_size);
	if (!r->bufs)
		return -ENOMEM;
	reg.ring_addr = (unsigned long)r->br;
	reg.ring_entries = r->buf_count;
	reg.bgid = PTV_BUF_GROUP;
	ret = io_uring_register_buf_ring(&r->ring, &reg, 0);
	if (ret)
		return ret;
	io_uring_buf_ring_init(r->br);
	for (unsigned i = 0; i < r->buf_count; i++)
		io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * r->buf_size, r->buf_size,
				      (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(r->br, (int)r->buf_count);
	r->feat.buf_ring = true;
	return 0;
}

static void reactor_inbox_drain(struct ptv_reactor *r)
{
	struct ptv_inbox_task *t, *next;

	pthread_mutex_lock(&r->inbox_lock);
	t = r->inbox_head;
	r->inbox_head = NULL;
	r->inbox_tail = &r->inbox_head;
	pthread_mutex_unlock(&r->inbox_lock);
	for (; t; t = next) {
		next = t->next;
		t->fn(t->arg);
		free(t);
	}
}

static void reactor_efd_arm(struct ptv_reactor *r);

void ptv_reactor_run_inbox(struct ptv_reactor *r)
{
	reactor_inbox_drain(r);
}

static void reactor_efd_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	r->efd_armed = false;
	if (res < 0 && res != -EINTR && res != -ECANCELED)
		ptv_error("reactor", "reactor %u: eventfd read failed: %s", r->index,
			  ptv_strerror(res));
	reactor_efd_arm(r);
	reactor_inbox_drain(r);
}

static void reactor_efd_arm(struct ptv_reactor *r)
{
	struct io_uring_sqe *sqe;

	if (r->efd_armed)
		return;
	sqe = ptv_reactor_sqe(r, &r->efd_op);
	io_uring_prep_read(sqe, r->efd, &r->efd_val, sizeof(r->efd_val), 0);
	r->efd_armed = true;
}

static void reactor_metrics_init(struct ptv_reactor *r)
{
	static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
					 0.005,	 0.01,	  0.025,  0.05,	 0.1};
	static const char *const labels[] = {"reactor", NULL};
	struct ptv_metric_family *f;
	char idx[16];
	const char *values[] = {idx, NULL};

	snprintf(idx, sizeof(idx), "%u", r->index);
	f = ptv_metrics_family("plextv_reactor_turn_seconds",
			       "Time one reactor loop turn kept its thread busy",
			       PTV_METRIC_HISTOGRAM, labels, buckets, PTV_ARRAY_SIZE(buckets), 256);
	r->m_turn = ptv_metric_get(f, values);
	f = ptv_metrics_family("plextv_reactor_turn_max_seconds",
			       "Longest reactor loop turn since start", PTV_METRIC_GAUGE, labels,
			       NULL, 0, 256);
	r->m_turn_max = ptv_metric_get(f, values);
}

int ptv_reactor_new(const struct ptv_reactor_opts *opts, struct ptv_reactor **out)
{
	struct ptv_reactor *r = ptv_xcalloc(1, sizeof(*r));
	unsigned entries = opts->sq_entries ? opts->sq_entries : 1024;
	int ret;

	r->index = opts->index;
	r->buf_count = opts->buf_count ? opts->buf_count : 512;
	r->buf_size = opts->buf_size ? opts->buf_size : 4096;
	r->efd = -1;
	r->efd_op.cb = reactor_efd_cb;
	r->inbox_tail = &r->inbox_head;
	pthread_mutex_init(&r->inbox_lock, NULL);
	for (unsigned i = 0; i < PTV_WHEEL_SLOTS; i++)
		ptv_list_init(&r->wheel[i]);
	r->now_ms = ptv_now_ms();
	r->wheel_tick = r->now_ms / PTV_TIMER_TICK_MS;

	ret = reactor_ring_init(r, entries);
	if (ret)
		goto fail_noring;
	ret = reactor_probe(r);
	if (ret)
		goto fail;
	ret = reactor_bufs_init(r);
	if (ret)
		goto fail;
	r->efd = eventfd(0, EFD_CLOEXEC);
	if (r->efd < 0) {
		ret = -errno;
		goto fail;
	}
	reactor_efd_arm(r);
	reactor_metrics_init(r);
	*out = r;
	return 0;
fail:
	io_uring_queue_exit(&r->ring);
fail_noring:
	if (r->br)
		munmap(r->br, r->br_size);
	free(r->bufs);
	pthread_mutex_destroy(&r->inbox_lock);
	free(r);
	return ret;
}

void ptv_reactor_free(struct ptv_reactor *r)
{
	struct ptv_inbox_task *t, *next;

	if (!r)
		return;
	/* Tearing down the ring cancels whatever is still in flight, so the memory those
	 * operations point at may be freed by their owners after this returns. */
	io_uring_queue_exit(&r->ring);
	if (r->efd >= 0)
		close(r->efd);
	if (r->br)
		munmap(r->br, r->br_size);
	free(r->bufs);
	for (t = r->inbox_head; t; t = next) {
		next = t->next;
		free(t);
	}
	pthread_mutex_destroy(&r->inbox_lock);
	free(r);
}

struct io_uring_sqe *ptv_reactor_sqe(struct ptv_reactor *r, struct ptv_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	while (!sqe) {
		/* Full submission queue: hand what we have to the kernel and try again. */
		int ret = io_uring_submit(&r->ring);

		PTV_BUG_ON(ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR);
		sqe = io_uring_get_sqe(&r->ring);
	}
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

uint16_t ptv_reactor_buf_group(const struct ptv_reactor *r)
{
	return PTV_BUF_GROUP;
}

void *ptv_reactor_buf_get(struct ptv_reactor *r, uint16_t bid)
{
	PTV_BUG_ON(bid >= r->buf_count);
	return r->bufs + (size_t)bid * r->buf_size;
}

void ptv_reactor_buf_put(struct ptv_reactor *r, uint16_t bid)
{
	io_uring_buf_ring_add(r->br, ptv_reactor_buf_get(r, bid), r->buf_size, bid,
			      io_uring_buf_ring_mask(r->buf_count), 0);
	io_uring_buf_ring_advance(r->br, 1);
}

void *ptv_reactor_local(const struct ptv_reactor *r, enum ptv_reactor_slot slot)
{
	return r->local[slot];
}

void ptv_reactor_set_local(struct ptv_reactor *r, enum ptv_reactor_slot slot, void *p)
{
	r->local[slot] = p;
}

uint64_t ptv_reactor_now_ms(const struct ptv_reactor *r)
{
	return r->now_ms;
}

unsigned ptv_reactor_index(const struct ptv_reactor *r)
{
	return r->index;
}

const struct ptv_reactor_features *ptv_reactor_features(const struct ptv_reactor *r)
{
	return &r->feat;
}

void ptv_reactor_post(struct ptv_reactor *r, void (*fn)(void *arg), void *arg)
{
	struct ptv_inbox_task *t = ptv_xmalloc(sizeof(*t));
	bool was_empty;

	t->next = NULL;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&r->inbox_lock);
	was_empty = r->inbox_head == NULL;
	*r->inbox_tail = t;
	r->inbox_tail = &t->next;
	pthread_mutex_unlock(&r->inbox_lock);
	/* A non-empty list already has a wake-up on its way. */
	if (was_empty && eventfd_write(r->efd, 1) < 0)
		ptv_error("reactor", "reactor %u: eventfd write: %s", r->index,
			  ptv_strerror(-errno));
}

static void reactor_noop(void *arg)
{
}

void ptv_reactor_stop(struct ptv_reactor *r)
{
	atomic_store(&r->stop, true);
	ptv_reactor_post(r, reactor_noop, NULL);
}

bool ptv_reactor_stopping(const struct ptv_reactor *r)
{
	return atomic_load_explicit(&r->stop, memory_order_relaxed);
}

void ptv_reactor_set_busy(struct ptv_reactor *r, bool (*busy)(void *ctx), void *ctx)
{
	r->busy = busy;
	r->busy_ctx = ctx;
}

/* Rounded up, so a timer never fires before its deadline (a tick is coarser than a ms). */
static void timer_insert(struct ptv_reactor *r, struct ptv_timer *t)
{
	uint64_t tick = (t->expires_ms + PTV_TIMER_TICK_MS - 1) / PTV_TIMER_TICK_MS;

	if (tick <= r->wheel_tick)
		tick = r->wheel_tick + 1;
	ptv_list_add_tail(&r->wheel[tick % PTV_WHEEL_SLOTS], &t->node);
}

void ptv_timer_arm(struct ptv_reactor *r, struct ptv_timer *t, uint64_t delay_ms)
{
	if (ptv_timer_armed(t))
		ptv_list_del(&t->node);
	t->expires_ms = r->now_ms + delay_ms;
	timer_insert(r, t);
}

void ptv_timer_cancel(struct ptv_timer *t)
{
	if (ptv_timer_armed(t))
		ptv_list_del(&t->node);
}

static void reactor_timers_run(struct ptv_reactor *r)
{
	uint64_t target = r->now_ms / PTV_TIMER_TICK_MS;

	if (target > r->wheel_tick + PTV_WHEEL_SLOTS)
		r->wheel_tick = target - PTV_WHEEL_SLOTS;
	while (r->wheel_tick < target) {
		struct ptv_list local, *slot;

		r->wheel_tick++;
		slot = &r->wheel[r->wheel_tick % PTV_WHEEL_SLOTS];
		if (ptv_list_empty(slot))
			continue;
		/* Move the slot aside so callbacks may arm or cancel any timer, this one included.
		 */
		local = *slot;
		local.next->prev = &local;
		local.prev->next = &local;
		ptv_list_init(slot);
		while (!ptv_list_empty(&local)) {
			struct ptv_timer *t = ptv_container_of(local.next, struct ptv_timer, node);

			ptv_list_del(&t->node);
			if (t->expires_ms > r->now_ms) {
				/* Not due yet: a later lap of the wheel, or later in this tick. */
				timer_insert(r, t);
				continue;
			}
			t->cb(t);
		}
	}
}

static unsigned reactor_reap(struct ptv_reactor *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe (&r->ring, head, cqe) {
		struct ptv_op *op = io_uring_cqe_get_data(cqe);

		n++;
		if (op)
			op->cb(r, op, cqe->res, cqe->flags);
	}
	io_uring_cq_advance(&r->ring, n);
	return n;
}

static void reactor_turn_account(struct ptv_reactor *r, uint64_t ns)
{
	ptv_metric_observe(r->m_turn, (double)ns / 1e9);
	if (ns > r->turn_max_ns) {
		r->turn_max_ns = ns;
		ptv_metric_set(r->m_turn_max, (double)ns / 1e9);
	}
}

static bool reactor_has_timers(struct ptv_reactor *r)
{
	for (unsigned i = 0; i < PTV_WHEEL_SLOTS; i++) {
		if (!ptv_list_empty(&r->wheel[i]))
			return true;
	}
	return false;
}

int ptv_reactor_run(struct ptv_reactor *r)
{
	struct __kernel_timespec tick = {.tv_sec = 0, .tv_nsec = PTV_TIMER_TICK_MS * 1000000L};
	struct io_uring_cqe *cqe;
	unsigned idle_turns = 0;
	uint64_t t0;
	int ret;

	for (;;) {
		bool stopping = ptv_reactor_stopping(r);
		bool timers;

		if (stopping && (!r->busy || !r->busy(r->busy_ctx)))
			break;
		/* Scanning 2048 list heads is cheap but not free: only do it after a quiet turn. */
		timers = stopping || idle_turns < 2 || reactor_has_timers(r);
		ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, timers ? &tick : NULL,
						       NULL);
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN) {
			ptv_error("reactor", "reactor %u: io_uring wait failed: %s", r->index,
				  ptv_strerror(ret));
			return ret;
		}
		t0 = ptv_now_ns();
		r->now_ms = t0 / 1000000u;
		idle_turns = reactor_reap(r) ? 0 : idle_turns + 1;
		reactor_timers_run(r);
		reactor_turn_account(r, ptv_now_ns() - t0);
	}
	io_uring_submit(&r->ring);
	return 0;
}
