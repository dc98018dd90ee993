/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "swarm.h"
#include "tscheck.h"

enum swarm_op {
	OP_CONNECT = 0,
	OP_SEND = 1,
	OP_RECV = 2,
};

enum swarm_state {
	ST_IDLE = 0,
	ST_CONNECTING,
	ST_HEADERS,
	ST_BODY,
	ST_CLOSING, /* shut down; waiting for the last completions before close() */
	ST_DONE,
};

struct swarm_client {
	struct bench_client_stats st;
	int fd;
	uint8_t state;
	uint8_t inflight;
	uint16_t hdr_len;
	uint64_t t_connect, t_first, t_last;
	uint64_t w_first, w_max_gap; /* first receive in the window, longest gap after it */
	double reg_n, reg_sx, reg_sy, reg_sxx, reg_sxy; /* regression of bytes over time */
	struct bench_ts_check ts;
	char hdr[2048];
} __attribute__((aligned(8)));

struct swarm_thread {
	struct bench_swarm *sw;
	unsigned index;
	struct io_uring ring;
	bool ring_ok;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	unsigned br_added; /* buffers given back since the last advance */
	struct swarm_client *clients;
	unsigned n, next, connecting;
	uint64_t now;
	double cpu_s;
	bool single_issuer, defer_taskrun;
	int err;
	pthread_t tid;
	bool started;
};

struct bench_swarm {
	struct bench_swarm_opts o;
	uint64_t start_ns, window_ns, end_ns;
	struct swarm_thread *th;
	unsigned nth;
};

void bench_swarm_opts_default(struct bench_swarm_opts *o)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	o->clients = 1;
	o->threads = ncpu > 0 ? (unsigned)ncpu : 1;
	o->duration_s = 10;
	o->warmup_s = -1; /* resolved at start: a quarter of the run, at most 2 s */
	o->stall_ms = 1000;
	o->buf_size = 32768;
	o->buf_count = 512;
	o->connect_inflight = 128;
	o->connect_rate = 1000;
}

int bench_swarm_target(struct bench_swarm_opts *o, const char *host, uint16_t port,
		       const char *path, bool raw)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&o->addr;
	int n;

	memset(&o->addr, 0, sizeof(o->addr));
	if (!strcmp(host, "[::1]") || !strcmp(host, "::1")) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		a6->sin6_addr = in6addr_loopback;
		o->addrlen = sizeof(*a6);
	} else if (!strcmp(host, "127.0.0.1") || !strcmp(host, "localhost")) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		o->addrlen = sizeof(*a4);
	} else {
		return -EPERM;
	}
	o->request[0] = '\0';
	if (raw)
		return 0;
	n = snprintf(o->request, sizeof(o->request),
		     "GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: plextv-bench\r\n"
		     "Accept: */*\r\n\r\n",
		     path, host, port);
	return n < (int)sizeof(o->request) ? 0 : -ENAMETOOLONG;
}

static uint64_t swarm_ud(struct swarm_client *c, enum swarm_op op)
{
	return (uint64_t)(uintptr_t)c | (uint64_t)op;
}

static struct io_uring_sqe *swarm_sqe(struct swarm_thread *t, struct swarm_client *c,
				      enum swarm_op op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	if (!sqe) {
		io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
		PTV_BUG_ON(!sqe);
	}
	io_uring_sqe_set_data64(sqe, swarm_ud(c, op));
	c->inflight++;
	return sqe;
}

/* Ends a client; the socket is closed once no operation references it any more. */
static void swarm_end(struct swarm_thread *t, struct swarm_client *c, enum bench_client_end end,
		      int err)
{
	if (c->state >= ST_CLOSING)
		return;
	c->st.end = end;
	c->st.error = err;
	if (c->state == ST_CONNECTING)
		t->connecting--;
	c->state = ST_CLOSING;
	/* Completes a still-armed multishot receive with 0, so the inflight count drains. */
	shutdown(c->fd, SHUT_RDWR);
}

static void swarm_maybe_close(struct swarm_client *c)
{
	if (c->state == ST_CLOSING && !c->inflight) {
		close(c->fd);
		c->fd = -1;
		c->state = ST_DONE;
	}
}

static void swarm_arm_recv(struct swarm_thread *t, struct swarm_client *c)
{
	struct io_uring_sqe *sqe = swarm_sqe(t, c, OP_RECV);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
}

static void swarm_connect(struct swarm_thread *t, struct swarm_client *c)
{
	const struct bench_swarm_opts *o = &t->sw->o;
	struct io_uring_sqe *sqe;
	int fd, rb = (int)o->rcvbuf;

	c->t_connect = t->now;
	fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		c->st.end = BENCH_CLIENT_REFUSED;
		c->st.error = -errno;
		c->state = ST_DONE;
		return;
	}
	if (rb)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
	c->fd = fd;
	c->state = ST_CONNECTING;
	t->connecting++;
	sqe = swarm_sqe(t, c, OP_CONNECT);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&o->addr, o->addrlen);
}

static void swarm_on_connect(struct swarm_thread *t, struct swarm_client *c, int res)
{
	const char *req = t->sw->o.request;
	struct io_uring_sqe *sqe;

	if (c->state != ST_CONNECTING)
		return;
	t->connecting--;
	if (res < 0) {
		c->state = ST_HEADERS; /* so swarm_end does not count it twice */
		swarm_end(t, c, BENCH_CLIENT_REFUSED, res);
		return;
	}
	c->state = req[0] ? ST_HEADERS : ST_BODY;
	if (req[0]) {
		sqe = swarm_sqe(t, c, OP_SEND);
		io_uring_prep_send(sqe, c->fd, req, strlen(req), MSG_NOSIGNAL);
	}
	swarm_arm_recv(t, c);
}

/* Parses the response header. Returns the number of body bytes at the end of @p, or -1. */
static long swarm_headers(struct swarm_thread *t, struct swarm_client *c, const uint8_t *p,
			  size_t n)
{
	size_t old = c->hdr_len, take = PTV_MIN(n, sizeof(c->hdr) - 1 - old);
	char *end;
	int major, minor, status = 0;

	memcpy(c->hdr + old, p, take);
	c->hdr_len = (uint16_t)(old + take);
	c->hdr[c->hdr_len] = '\0';
	end = strstr(c->hdr, "\r\n\r\n");
	if (!end) {
		if (c->hdr_len == sizeof(c->hdr) - 1)
			swarm_end(t, c, BENCH_CLIENT_HTTP, -EMSGSIZE);
		return c->hdr_len == sizeof(c->hdr) - 1 ? -1 : 0;
	}
	*end = '\0';
	if (sscanf(c->hdr, "HTTP/%d.%d %d", &major, &minor, &status) == 3)
		c->st.http_status = status;
	/* Close-delimited bodies only: the GET is HTTP/1.0 so a server must not chunk it. */
	if (status != 200 || strcasestr(c->hdr, "\ntransfer-encoding:")) {
		swarm_end(t, c, BENCH_CLIENT_HTTP, -EPROTO);
		return -1;
	}
	c->state = ST_BODY;
	return (long)(n - ((size_t)(end - c->hdr) + 4 - old));
}

/*
 * Data arrives in bursts (the relay's send period), so bytes counted between two instants are off
 * by up to one burst. The rate is instead the least-squares slope of the cumulative byte count
 * over the receive times in the window: a staircase of equal steps has exactly the slope of its
 * line, whatever the phase of the window.
 */
static void swarm_window(const struct swarm_thread *t, struct swarm_client *c, uint64_t now,
			 size_t n)
{
	double x = (double)(now - t->sw->window_ns) / 1e9, y;

	if (!c->w_first)
		c->w_first = now;
	else if (now != c->t_last)
		c->w_max_gap = PTV_MAX(c->w_max_gap, now - c->t_last);
	c->st.window_bytes += n;
	y = (double)c->st.window_bytes;
	c->reg_n += 1;
	c->reg_sx += x;
	c->reg_sy += y;
	c->reg_sxx += x * x;
	c->reg_sxy += x * y;
}

static void swarm_body(struct swarm_thread *t, struct swarm_client *c, const uint8_t *p, size_t n)
{
	uint64_t now = t->now, gap;

	if (!c->t_first) {
		c->t_first = now;
		c->st.ttfb_ns = (int64_t)(now - c->t_connect);
	} else {
		gap = now - c->t_last;
		c->st.max_gap_ns = PTV_MAX(c->st.max_gap_ns, gap);
		if (gap > (uint64_t)t->sw->o.stall_ms * 1000000u)
			c->st.stalls++;
	}
	c->st.body_bytes += n;
	if (now >= t->sw->window_ns)
		swarm_window(t, c, now, n);
	c->t_last = now;
	bench_ts_check_feed(&c->ts, p, n);
}

static void swarm_data(struct swarm_thread *t, struct swarm_client *c, const uint8_t *p, size_t n)
{
	long body;

	if (c->state == ST_HEADERS) {
		body = swarm_headers(t, c, p, n);
		if (body <= 0)
			return;
		p += n - (size_t)body;
		n = (size_t)body;
	}
	if (c->state == ST_BODY)
		swarm_body(t, c, p, n);
}

static void swarm_buf_recycle(struct swarm_thread *t, unsigned bid)
{
	const struct bench_swarm_opts *o = &t->sw->o;

	io_uring_buf_ring_add(t->br, t->bufs + (size_t)bid * o->buf_size, o->buf_size,
			      (unsigned short)bid, io_uring_buf_ring_mask(o->buf_count),
			      (int)t->br_added++);
}

static void swarm_on_recv(struct swarm_thread *t, struct swarm_client *c, int res, unsigned flags)
{
	if (flags & IORING_CQE_F_BUFFER) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

		if (res > 0)
			swarm_data(t, c, t->bufs + (size_t)bid * t->sw->o.buf_size, (size_t)res);
		swarm_buf_recycle(t, bid);
	}
	if (flags & IORING_CQE_F_MORE)
		return;
	c->inflight--;
	if (c->state >= ST_CLOSING)
		return;
	if (res == 0)
		swarm_end(t, c, BENCH_CLIENT_EOF, 0);
	else if (res < 0 && res != -ENOBUFS)
		swarm_end(t, c, BENCH_CLIENT_ERROR, res);
	else
		swarm_arm_recv(t,
			       c); /* out of buffers or CQ overflow: the data waits in the socket */
}

static void swarm_cqe(struct swarm_thread *t, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct swarm_client *c = (struct swarm_client *)(uintptr_t)(ud & ~(uint64_t)7);

	switch ((enum swarm_op)(ud & 7)) {
	case OP_CONNECT:
		c->inflight--;
		swarm_on_connect(t, c, cqe->res);
		break;
	case OP_SEND:
		c->inflight--;
		if (cqe->res != (int)strlen(t->sw->o.request))
			swarm_end(t, c, BENCH_CLIENT_ERROR, cqe->res < 0 ? cqe->res : -EIO);
		break;
	case OP_RECV:
		swarm_on_recv(t, c, cqe->res, cqe->flags);
		break;
	}
	swarm_maybe_close(c);
}

static int swarm_ring_init(struct swarm_thread *t)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	unsigned i;
	int ret = -EINVAL;

	/* Probe the best flags this kernel accepts; older kernels reject unknown ones. */
	for (i = 0; i < PTV_ARRAY_SIZE(tries); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = 16384;
		ret = io_uring_queue_init_params(1024, &t->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret)
		return ret;
	t->ring_ok = true;
	t->single_issuer = tries[i] & IORING_SETUP_SINGLE_ISSUER;
	t->defer_taskrun = tries[i] & IORING_SETUP_DEFER_TASKRUN;
	return 0;
}

static int swarm_bufs_init(struct swarm_thread *t)
{
	const struct bench_swarm_opts *o = &t->sw->o;
	struct io_uring_buf_reg reg = {0};
	unsigned i;
	int ret;

	ret = posix_memalign((void **)&t->br, 4096, o->buf_count * sizeof(struct io_uring_buf));
	if (ret)
		return -ret;
	t->bufs = malloc((size_t)o->buf_count * o->buf_size);
	if (!t->bufs)
		return -ENOMEM;
	reg.ring_addr = (unsigned long)t->br;
	reg.ring_entries = o->buf_count;
	reg.bgid = 0;
	ret = io_uring_register_buf_ring(&t->ring, &reg, 0);
	if (ret)
		return ret;
	io_uring_buf_ring_init(t->br);
	for (i = 0; i < o->buf_count; i++)
		swarm_buf_recycle(t, i);
	io_uring_buf_ring_advance(t->br, (int)t->br_added);
	t->br_added = 0;
	return 0;
}

static void swarm_start_connects(struct swarm_thread *t)
{
	const struct bench_swarm *sw = t->sw;
	double allowed = t->n;

	if (sw->o.connect_rate) /* this thread's share of the ramp, first one at once */
		allowed = 1 + (double)(t->now - sw->start_ns) / 1e9 * sw->o.connect_rate / sw->nth;
	while (t->next < t->n && t->next < allowed && t->connecting < sw->o.connect_inflight)
		swarm_connect(t, &t->clients[t->next++]);
}

static int swarm_turn(struct swarm_thread *t)
{
	uint64_t left = t->sw->end_ns - t->now;
	/* 50 ms bounds the deadline check; 5 ms while the connect ramp is still running. */
	uint64_t wait = t->next < t->n ? 5000000u : 50000000u;
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)PTV_MIN(left, wait)};
	struct io_uring_cqe *cqe;
	unsigned head, count = 0;
	int ret;

	ret = io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR)
		return ret;
	t->now = ptv_now_ns();
	io_uring_for_each_cqe (&t->ring, head, cqe) {
		swarm_cqe(t, cqe);
		count++;
	}
	io_uring_cq_advance(&t->ring, count);
	if (t->br_added) {
		io_uring_buf_ring_advance(t->br, (int)t->br_added);
		t->br_added = 0;
	}
	return 0;
}

/* Gaps still open at the end count as stalls too: a client that stopped getting data. */
static void swarm_close_books(struct swarm_thread *t)
{
	uint64_t stall = (uint64_t)t->sw->o.stall_ms * 1000000u, end = t->sw->end_ns, gap;
	unsigned i;

	for (i = 0; i < t->n; i++) {
		struct swarm_client *c = &t->clients[i];

		if (c->state == ST_IDLE || c->state == ST_CONNECTING) {
			c->st.end = c->state == ST_IDLE ? BENCH_CLIENT_NOSTART
							: BENCH_CLIENT_CONNECTING;
			continue;
		}
		if (c->st.end == BENCH_CLIENT_REFUSED || c->st.end == BENCH_CLIENT_HTTP)
			continue;
		if (c->st.end != BENCH_CLIENT_OPEN)
			continue; /* closed early: reported as dropped, not as a stall */
		/* The last loop turn may stamp receives a little after the end: no gap then. */
		gap = c->t_first ? c->t_last : c->t_connect;
		gap = end > gap ? end - gap : 0;
		if (c->t_first)
			c->st.max_gap_ns = PTV_MAX(c->st.max_gap_ns, gap);
		if (gap > stall)
			c->st.stalls++;
	}
}

static void swarm_teardown(struct swarm_thread *t)
{
	unsigned i;

	/* Exiting the ring cancels every armed operation before the sockets go away. */
	if (t->ring_ok)
		io_uring_queue_exit(&t->ring);
	t->ring_ok = false;
	for (i = 0; i < t->n; i++) {
		struct swarm_client *c = &t->clients[i];

		if (c->fd >= 0 && c->state != ST_IDLE && c->state != ST_DONE)
			close(c->fd);
		c->st.packets = c->ts.packets;
		c->st.cc_errors = c->ts.cc_errors;
		c->st.sync_errors = c->ts.sync_errors;
		c->st.initial_skip = c->ts.initial_skip;
		c->st.resync_skip = c->ts.resync_skip;
	}
	free(t->br);
	free(t->bufs);
	t->br = NULL;
	t->bufs = NULL;
}

static void *swarm_thread_main(void *arg)
{
	struct swarm_thread *t = arg;
	struct rusage ru;

	t->err = swarm_ring_init(t);
	if (!t->err)
		t->err = swarm_bufs_init(t);
	t->now = ptv_now_ns();
	while (!t->err && !bench_interrupted && t->now < t->sw->end_ns) {
		swarm_start_connects(t);
		t->err = swarm_turn(t);
	}
	swarm_close_books(t);
	swarm_teardown(t);
	if (getrusage(RUSAGE_THREAD, &ru) == 0)
		t->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	return NULL;
}

static void swarm_split(struct bench_swarm *sw)
{
	unsigned i, j, base = sw->o.clients / sw->nth, extra = sw->o.clients % sw->nth;

	for (i = 0; i < sw->nth; i++) {
		struct swarm_thread *t = &sw->th[i];

		t->sw = sw;
		t->index = i;
		t->n = base + (i < extra);
		t->clients = ptv_xcalloc(t->n ? t->n : 1, sizeof(*t->clients));
		for (j = 0; j < t->n; j++) {
			t->clients[j].fd = -1;
			t->clients[j].st.ttfb_ns = -1;
			bench_ts_check_init(&t->clients[j].ts);
		}
	}
}

int bench_swarm_start(const struct bench_swarm_opts *o, struct bench_swarm **out)
{
	struct bench_swarm *sw;
	unsigned i;
	int ret;

	if (!o->clients || !o->addrlen || (o->buf_count & (o->buf_count - 1)) ||
	    o->buf_count > 32768 || o->buf_size < 4096)
		return -EINVAL;
	sw = ptv_xcalloc(1, sizeof(*sw));
	sw->o = *o;
	if (sw->o.warmup_s < 0) {
		sw->o.warmup_s = PTV_MIN(2.0, o->duration_s / 4);
		if (o->connect_rate)
			sw->o.warmup_s =
				PTV_MAX(sw->o.warmup_s, (double)o->clients / o->connect_rate + 1);
	}
	if (sw->o.warmup_s > 0 && sw->o.warmup_s >= o->duration_s - 0.5)
		fprintf(stderr,
			"swarm: warm-up %.1f s leaves under 0.5 s to measure: raise "
			"--duration\n",
			sw->o.warmup_s);
	sw->nth = PTV_MAX(1u, PTV_MIN(o->threads, o->clients));
	sw->th = ptv_xcalloc(sw->nth, sizeof(*sw->th));
	swarm_split(sw);
	sw->start_ns = ptv_now_ns();
	sw->window_ns = sw->start_ns + (uint64_t)(sw->o.warmup_s * 1e9);
	sw->end_ns = sw->start_ns + (uint64_t)(o->duration_s * 1e9);
	for (i = 0; i < sw->nth; i++) {
		ret = -pthread_create(&sw->th[i].tid, NULL, swarm_thread_main, &sw->th[i]);
		if (ret) {
			/* The started threads end by themselves at end_ns: make that now. */
			sw->end_ns = ptv_now_ns();
			break;
		}
		sw->th[i].started = true;
	}
	*out = sw;
	return 0;
}

uint64_t bench_swarm_window_start(const struct bench_swarm *sw)
{
	return sw->window_ns;
}

uint64_t bench_swarm_end(const struct bench_swarm *sw)
{
	return sw->end_ns;
}

/*
 * The slope covers the time the client was receiving. If it stopped early (closed, or silent at
 * the end for longer than any gap it had before), the silent time counts as nothing delivered.
 */
static double swarm_client_mbps(const struct bench_swarm *sw, const struct swarm_client *c)
{
	double den = c->reg_n * c->reg_sxx - c->reg_sx * c->reg_sx, bps, active;
	uint64_t from = c->w_first, end = sw->end_ns;

	if (!c->w_first || c->t_last <= c->w_first)
		return 0;
	if (c->reg_n >= 3 && den > 0)
		bps = (c->reg_n * c->reg_sxy - c->reg_sx * c->reg_sy) / den;
	else
		bps = (double)c->st.window_bytes / ((double)(c->t_last - from) / 1e9);
	if (c->st.end != BENCH_CLIENT_OPEN || (end > c->t_last && end - c->t_last > c->w_max_gap)) {
		active = (double)(c->t_last - from) / (double)(end - from);
		bps *= active;
	}
	return bps * 8 / 1e6;
}

static void swarm_rates(struct bench_swarm *sw, struct bench_swarm_result *res)
{
	unsigned i, j, k = 0;

	res->window_s = (double)(sw->end_ns - sw->window_ns) / 1e9;
	for (i = 0; i < sw->nth; i++) {
		struct swarm_thread *t = &sw->th[i];

		for (j = 0; j < t->n; j++, k++) {
			struct swarm_client *c = &t->clients[j];

			res->clients[k] = c->st;
			res->clients[k].delivered_mbps = swarm_client_mbps(sw, c);
		}
	}
}

int bench_swarm_finish(struct bench_swarm *sw, struct bench_swarm_result *res)
{
	unsigned i;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	for (i = 0; i < sw->nth; i++) {
		struct swarm_thread *t = &sw->th[i];

		if (!t->started)
			ret = ret ? ret : -EAGAIN;
		else
			pthread_join(t->tid, NULL);
		if (t->err && !ret)
			ret = t->err;
		res->cpu_s += t->cpu_s;
		res->single_issuer = t->single_issuer;
		res->defer_taskrun = t->defer_taskrun;
	}
	res->n = sw->o.clients;
	res->clients = ptv_xcalloc(res->n, sizeof(*res->clients));
	swarm_rates(sw, res);
	for (i = 0; i < sw->nth; i++)
		free(sw->th[i].clients);
	free(sw->th);
	free(sw);
	return ret;
}

void bench_swarm_result_free(struct bench_swarm_result *res)
{
	ptv_freep(&res->clients);
	res->n = 0;
}

const char *bench_client_end_name(enum bench_client_end e)
{
	static const char *const names[] = {"open", "eof",     "error",	    "refused",
					    "http", "nostart", "connecting"};

	return (unsigned)e < PTV_ARRAY_SIZE(names) ? names[e] : "?";
}

static void swarm_count(const struct bench_client_stats *c, struct bench_swarm_summary *s)
{
	s->stalls += c->stalls;
	s->cc_errors += c->cc_errors;
	s->sync_errors += c->sync_errors;
	s->packets += c->packets;
	s->max_gap_ms = PTV_MAX(s->max_gap_ms, (double)c->max_gap_ns / 1e6);
	s->gbps_total += c->delivered_mbps / 1e3;
	if (c->end == BENCH_CLIENT_EOF || c->end == BENCH_CLIENT_ERROR)
		s->dropped++;
	if (c->end == BENCH_CLIENT_REFUSED || c->end == BENCH_CLIENT_NOSTART)
		s->refused++;
	if (c->end == BENCH_CLIENT_CONNECTING)
		s->connect_pending++;
	if (c->end == BENCH_CLIENT_HTTP)
		s->http_errors++;
	if (c->ttfb_ns < 0 && c->end != BENCH_CLIENT_REFUSED && c->end != BENCH_CLIENT_NOSTART &&
	    c->end != BENCH_CLIENT_CONNECTING)
		s->no_data++;
	if (s->expected_mbps > 0 && c->delivered_mbps < s->expected_mbps * 0.999)
		s->below_999++;
}

void bench_swarm_summarize(const struct bench_swarm_result *res, double expected_mbps,
			   struct bench_swarm_summary *s)
{
	double *rate = ptv_xcalloc(res->n ? res->n : 1, sizeof(double));
	double *ttfb = ptv_xcalloc(res->n ? res->n : 1, sizeof(double));
	size_t nt = 0;
	unsigned i;

	memset(s, 0, sizeof(*s));
	s->clients = res->n;
	s->expected_mbps = expected_mbps;
	s->cpu_s = res->cpu_s;
	s->window_s = res->window_s;
	for (i = 0; i < res->n; i++) {
		const struct bench_client_stats *c = &res->clients[i];

		swarm_count(c, s);
		rate[i] = c->delivered_mbps;
		if (c->ttfb_ns >= 0)
			ttfb[nt++] = (double)c->ttfb_ns / 1e6;
	}
	s->mbps_min = bench_quantile(rate, res->n, 0);
	s->mbps_p1 = bench_quantile(rate, res->n, 0.01);
	s->mbps_p50 = bench_quantile(rate, res->n, 0.5);
	s->ttfb_ms_p50 = bench_quantile(ttfb, nt, 0.5);
	s->ttfb_ms_p95 = bench_quantile(ttfb, nt, 0.95);
	free(rate);
	free(ttfb);
}

void bench_swarm_summary_json(const struct bench_swarm_summary *s, json_t *obj)
{
	bench_json_num(obj, "delivered_mbps_min", s->mbps_min);
	bench_json_num(obj, "delivered_mbps_p1", s->mbps_p1);
	bench_json_num(obj, "delivered_mbps_p50", s->mbps_p50);
	bench_json_num(obj, "delivered_gbps_total", s->gbps_total);
	bench_json_num(obj, "ttfb_ms_p50", s->ttfb_ms_p50);
	bench_json_num(obj, "ttfb_ms_p95", s->ttfb_ms_p95);
	bench_json_num(obj, "max_gap_ms", s->max_gap_ms);
	bench_json_num(obj, "client_cpu_seconds", s->cpu_s);
	bench_json_num(obj, "window_s", s->window_s);
	json_object_set_new(obj, "stalls", json_integer((json_int_t)s->stalls));
	json_object_set_new(obj, "cc_errors", json_integer((json_int_t)s->cc_errors));
	json_object_set_new(obj, "sync_errors", json_integer((json_int_t)s->sync_errors));
	json_object_set_new(obj, "ts_packets", json_integer((json_int_t)s->packets));
	json_object_set_new(obj, "dropped", json_integer(s->dropped));
	json_object_set_new(obj, "refused", json_integer(s->refused));
	json_object_set_new(obj, "connect_pending", json_integer(s->connect_pending));
	json_object_set_new(obj, "http_errors", json_integer(s->http_errors));
	json_object_set_new(obj, "no_data", json_integer(s->no_data));
	json_object_set_new(obj, "clients_below_99_9pct", json_integer(s->below_999));
}

json_t *bench_swarm_clients_json(const struct bench_swarm_result *res)
{
	json_t *a = json_array();
	unsigned i;

	for (i = 0; i < res->n; i++) {
		const struct bench_client_stats *c = &res->clients[i];

		json_array_append_new(
			a,
			json_pack("{s:f, s:f, s:f, s:i, s:I, s:I, s:I, s:s, s:i, s:i, s:I}", "mbps",
				  c->delivered_mbps, "ttfb_ms",
				  c->ttfb_ns < 0 ? -1.0 : (double)c->ttfb_ns / 1e6, "max_gap_ms",
				  (double)c->max_gap_ns / 1e6, "stalls", (int)c->stalls,
				  "cc_errors", (json_int_t)c->cc_errors, "sync_errors",
				  (json_int_t)c->sync_errors, "initial_skip",
				  (json_int_t)c->initial_skip, "end", bench_client_end_name(c->end),
				  "error", c->error, "http_status", c->http_status, "body_bytes",
				  (json_int_t)c->body_bytes));
	}
	return a;
}
