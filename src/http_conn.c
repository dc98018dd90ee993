/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HTTP connections on the reactor: listening sockets, multishot accept and receive, the send
 * queue, deadlines and the close sequence.
 *
 * Lifetime: a connection counts its in-flight SQEs (inflight). Closing cancels the receive,
 * and the memory is freed only when the count is back to zero, so no completion can arrive
 * for a freed connection.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "http_int.h"
#include "plextv/log.h"

int ptv_http_listen(const struct sockaddr *addr, socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, ret;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto fail;
	if (addr->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, addr, len) || listen(fd, 4096))
		goto fail;
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

int ptv_http_check_addr_free(const struct sockaddr *addr, socklen_t len)
{
	/* A socket without SO_REUSEPORT conflicts with any existing binding, including another
	 * process's reuseport group, which would otherwise silently share our port. */
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, ret = 0;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, addr, len))
		ret = -errno;
	close(fd);
	return ret;
}

void http_error_count(struct ptv_http_server *s, const char *reason)
{
	const char *values[] = {reason, NULL};

	ptv_metric_inc(ptv_metric_get(s->m_errors, values));
}

/* ---- send queue ---- */

static struct http_seg *conn_seg_push(struct http_conn *c)
{
	if (c->seg_head + c->seg_n == c->seg_cap) {
		if (c->seg_head) {
			memmove(c->segs, c->segs + c->seg_head, c->seg_n * sizeof(*c->segs));
			c->seg_head = 0;
		} else {
			c->seg_cap = c->seg_cap ? c->seg_cap * 2 : 8;
			c->segs = ptv_xrealloc(c->segs, c->seg_cap * sizeof(*c->segs));
		}
	}
	return &c->segs[c->seg_head + c->seg_n++];
}

int http_conn_queue_owned(struct http_conn *c, char *p, size_t n)
{
	struct http_seg *g;

	if (!n) {
		free(p);
		return 0;
	}
	g = conn_seg_push(c);
	memset(g, 0, sizeof(*g));
	g->p = p;
	g->len = n;
	g->owned = p;
	c->out_bytes += n;
	return 0;
}

int http_conn_queue_static(struct http_conn *c, const char *p, size_t n)
{
	struct http_seg *g = conn_seg_push(c);

	memset(g, 0, sizeof(*g));
	g->p = p;
	g->len = n;
	c->out_bytes += n;
	return 0;
}

int http_conn_queue(struct http_conn *c, const void *p, size_t n)
{
	char *copy;

	if (!n)
		return 0;
	copy = malloc(n);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, p, n);
	return http_conn_queue_owned(c, copy, n);
}

int http_conn_queue_blob(struct http_conn *c, struct ptv_blob *b, size_t off, size_t n)
{
	struct http_seg *g;

	if (off > b->len || n > b->len - off)
		return -EINVAL;
	if (!n)
		return 0;
	g = conn_seg_push(c);
	memset(g, 0, sizeof(*g));
	g->p = b->data + off;
	g->len = n;
	g->blob = ptv_blob_ref(b);
	c->out_bytes += n;
	return 0;
}

static void seg_release(struct http_seg *g)
{
	free(g->owned);
	ptv_blob_unref(g->blob);
	memset(g, 0, sizeof(*g));
}

/* Drops the first @n queued bytes. Fully sent segments are released, or handed to @hold when
 * a zero-copy send may still read their memory. */
static void conn_segs_consume(struct http_conn *c, size_t n, struct http_zc_batch *hold)
{
	c->out_bytes -= n;
	while (n && c->seg_n) {
		struct http_seg *g = &c->segs[c->seg_head];

		if (n < g->len) {
			g->p += n;
			g->len -= n;
			return;
		}
		n -= g->len;
		if (hold) {
			if (hold->n == hold->cap) {
				hold->cap = hold->cap ? hold->cap * 2 : 4;
				hold->segs =
					ptv_xrealloc(hold->segs, hold->cap * sizeof(*hold->segs));
			}
			hold->segs[hold->n++] = *g;
			memset(g, 0, sizeof(*g));
		} else {
			seg_release(g);
		}
		c->seg_head++;
		c->seg_n--;
	}
	if (!c->seg_n)
		c->seg_head = 0;
}

static void zc_batch_free(struct http_zc_batch *b)
{
	for (unsigned i = 0; i < b->n; i++)
		seg_release(&b->segs[i]);
	free(b->segs);
	free(b);
}

static void conn_segs_free(struct http_conn *c)
{
	struct http_zc_batch *b, *next;

	for (b = c->zc_head; b; b = next) {
		next = b->next;
		zc_batch_free(b);
	}
	c->zc_head = NULL;
	c->zc_tail = &c->zc_head;
	for (unsigned i = 0; i < c->seg_n; i++)
		seg_release(&c->segs[c->seg_head + i]);
	ptv_freep(&c->segs);
	c->seg_head = c->seg_n = c->seg_cap = 0;
	c->out_bytes = 0;
}

/* ---- lifetime ---- */

static void conn_free(struct http_conn *c)
{
	struct ptv_http_server *s = c->srv;

	PTV_BUG_ON(c->inflight);
	ptv_timer_cancel(&c->timer);
	http_req_release(&c->req);
	conn_segs_free(c);
	ptv_buf_free(&c->inbuf);
	if (c->fd >= 0)
		close(c->fd);
	ptv_list_del(&c->node);
	s->nconns--;
	if (c->refused)
		s->nrefused--;
	if (c->counted) {
		atomic_fetch_sub(&s->shared->open, 1);
		ptv_metric_sub(s->m_open, 1);
	}
	free(c);
}

bool http_conn_maybe_free(struct http_conn *c)
{
	/* A deferred handler still holds the request: it frees nothing until it answers. */
	if (!c->closing || c->inflight || c->req.deferred || c->defer_orphan)
		return false;
	conn_free(c);
	return true;
}

static void conn_recv_arm(struct http_conn *c);

/*
 * Completion handlers pin the connection: anything they call may close it, and the pin keeps
 * the memory until the handler is done with it. Returns true when unpinning freed it.
 */
static void conn_pin(struct http_conn *c)
{
	c->inflight++;
}

static bool conn_unpin(struct http_conn *c)
{
	c->inflight--;
	return http_conn_maybe_free(c);
}

static void conn_cancel_recv(struct http_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed)
		return;
	sqe = ptv_reactor_sqe(c->srv->r, &c->cancel_op);
	io_uring_prep_cancel(sqe, &c->recv_op, 0);
	c->inflight++;
}

void http_conn_close(struct http_conn *c, bool abort)
{
	if (c->closing)
		return;
	c->closing = true;
	c->abort = abort;
	ptv_timer_cancel(&c->timer);
	c->tkind = HTTP_T_NONE;
	if (c->req.streaming && c->req.on_close) {
		void (*on_close)(void *ctx) = c->req.on_close;

		c->req.on_close = NULL;
		on_close(c->req.stream_ctx);
	}
	conn_cancel_recv(c);
	/* An in-flight send completes on its own (the peer's buffer drains or the write timeout
	 * already fired); shutting the socket down makes it finish promptly. */
	if (c->sending)
		shutdown(c->fd, SHUT_RDWR);
	http_conn_maybe_free(c);
}

void http_conn_linger(struct http_conn *c)
{
	/* Closing with unread input makes the kernel send RST, which can destroy the response
	 * still in the peer's receive queue. Send FIN, keep reading (and discarding) input for a
	 * while so the receive queue stays empty, then close: the kernel still delivers what is
	 * queued for sending. */
	c->lingering = true;
	shutdown(c->fd, SHUT_WR);
	ptv_buf_free(&c->inbuf);
	if (c->peer_eof) {
		http_conn_close(c, false);
		return;
	}
	c->read_paused = false;
	conn_recv_arm(c);
	http_conn_timer(c, HTTP_T_LINGER, HTTP_LINGER_MS);
}

/* ---- deadlines ---- */

static void conn_timer_cb(struct ptv_timer *t)
{
	struct http_conn *c = ptv_container_of(t, struct http_conn, timer);
	enum http_timer_kind kind = c->tkind;

	c->tkind = HTTP_T_NONE;
	conn_pin(c);
	switch (kind) {
	case HTTP_T_HEADER:
		http_error_count(c->srv, "header_timeout");
		/* Nothing received: nobody to answer. */
		if (!c->head_started || c->sending)
			http_conn_close(c, false);
		else
			http_respond_simple_close(c, 408);
		break;
	case HTTP_T_DEFER:
		http_error_count(c->srv, "handler_timeout");
		http_respond_simple_close(c, 503);
		break;
	case HTTP_T_WRITE:
		http_error_count(c->srv, "write_timeout");
		http_conn_close(c, true);
		break;
	case HTTP_T_IDLE:
	case HTTP_T_LINGER:
		http_conn_close(c, false);
		break;
	case HTTP_T_NONE:
		break;
	}
	conn_unpin(c);
}

void http_conn_timer(struct http_conn *c, enum http_timer_kind kind, unsigned ms)
{
	c->tkind = kind;
	if (kind == HTTP_T_NONE)
		ptv_timer_cancel(&c->timer);
	else
		ptv_timer_arm(c->srv->r, &c->timer, ms);
}

/* ---- receive ---- */

static void conn_recv_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags);

static void conn_recv_arm(struct http_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || c->closing || c->peer_eof)
		return;
	sqe = ptv_reactor_sqe(c->srv->r, &c->recv_op);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = ptv_reactor_buf_group(c->srv->r);
	c->recv_armed = true;
	c->inflight++;
}

void http_conn_read_resume(struct http_conn *c)
{
	if (!c->read_paused)
		return;
	c->read_paused = false;
	conn_recv_arm(c);
}

static void conn_recv_data(struct http_conn *c, const char *data, size_t len)
{
	if (c->lingering)
		return;
	if (!http_conn_input(c, data, len))
		return;
	/* Input piles up only while a response is pending; stop reading past a bound. */
	if (c->inbuf.len > (size_t)c->srv->limits.header_max_bytes + 65536 && !c->read_paused) {
		c->read_paused = true;
		conn_cancel_recv(c);
	}
}

static void conn_recv_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct http_conn *c = ptv_container_of(op, struct http_conn, recv_op);

	conn_pin(c);
	if (!(flags & IORING_CQE_F_MORE)) {
		c->recv_armed = false;
		c->inflight--;
	}
	if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);

		if (!c->closing)
			conn_recv_data(c, ptv_reactor_buf_get(r, bid), (size_t)res);
		ptv_reactor_buf_put(r, bid);
	} else if (res == 0) {
		c->peer_eof = true;
		/* A viewer that hangs up on a close-delimited stream has left: end it now so the
		 * producer learns at once (a tuner is freed), not at its next write. */
		if (!c->closing &&
		    (c->lingering ||
		     (c->req.streaming && c->req.stream_mode == PTV_HTTP_STREAM_CLOSE) ||
		     (!c->sending && !c->req.deferred && !c->req.streaming && !c->out_bytes)))
			http_conn_close(c, false);
	} else if (res < 0 && res != -ENOBUFS && res != -ECANCELED && res != -EAGAIN) {
		/* -EAGAIN: a splice viewer's socket is O_NONBLOCK, and a receive io_uring had to
		 * hand to a worker thread then fails instead of waiting (liburing #364): re-arm. */
		if (res != -ECONNRESET)
			http_error_count(c->srv, "recv");
		http_conn_close(c, true);
	}
	/* A multishot receive ends on ENOBUFS (all buffers in use) or by itself: re-arm unless
	 * we stopped it on purpose. */
	if (!c->recv_armed && !c->closing && !c->read_paused && !c->peer_eof)
		conn_recv_arm(c);
	conn_unpin(c);
}

static void conn_cancel_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct http_conn *c = ptv_container_of(op, struct http_conn, cancel_op);

	c->inflight--;
	http_conn_maybe_free(c);
}

/* ---- send ---- */

/* A zero-copy notification: the kernel is done with the pages of the oldest batch. */
static void conn_zc_notif(struct http_conn *c)
{
	struct http_zc_batch *b = c->zc_head;

	if (b) {
		c->zc_head = b->next;
		if (!c->zc_head)
			c->zc_tail = &c->zc_head;
		zc_batch_free(b);
	}
	conn_unpin(c); /* the count the send kept for its notification */
}

static void conn_send_wait(struct http_conn *c, bool progress, bool failed);

/* The socket became writable (or failed) while sendfile() segments wait. */
static void conn_poll_done(struct http_conn *c, int res)
{
	c->send_poll = false;
	c->sending = false;
	if (!c->closing && (res < 0 || c->send_failed)) {
		if (res < 0)
			http_error_count(c->srv, "send");
		http_conn_close(c, true);
	} else if (!c->closing) {
		http_conn_flush(c);
	}
	conn_unpin(c);
}

static void conn_send_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct http_conn *c = ptv_container_of(op, struct http_conn, send_op);
	struct http_zc_batch *hold = NULL;

	if (c->send_poll) {
		conn_poll_done(c, res);
		return;
	}
	if (flags & IORING_CQE_F_NOTIF) {
		conn_zc_notif(c);
		return;
	}
	/* A zero-copy send whose notification is still to come keeps its in-flight count (the
	 * pin released by conn_zc_notif) and its segments. */
	if (flags & IORING_CQE_F_MORE) {
		hold = ptv_xcalloc(1, sizeof(*hold));
		*c->zc_tail = hold;
		c->zc_tail = &hold->next;
		c->inflight++;
	}
	/* The send's own in-flight count pins the connection until conn_unpin() below. */
	c->sending = false;
	if (!c->closing && res == -EAGAIN && c->splice) {
		/* O_NONBLOCK socket (see conn_recv_cb): nothing was sent; wait for room. */
		conn_send_wait(c, false, false);
	} else if (!c->closing && res < 0) {
		if (res != -EPIPE && res != -ECONNRESET)
			http_error_count(c->srv, "send");
		http_conn_close(c, true);
	} else if (!c->closing) {
		conn_segs_consume(c, (size_t)res, hold);
		http_conn_flush(c);
	}
	conn_unpin(c);
}

static bool seg_in_file(const struct http_seg *g)
{
	return g->blob && g->blob->fd >= 0;
}

/*
 * Parks the connection on send_op until the socket can take more (POLLOUT). Also used after
 * sendfile() emptied the queue, so that the drain callback (which queues the next batch and
 * flushes again) runs from a completion and never recurses into this function. @failed: a
 * sendfile() failed; a NOP completes at once and closes the connection then, like a failed
 * sendmsg would: closing runs the producer's on_close, and the producer may be in the middle
 * of queueing (sendfile runs inside ptv_http_stream_write_blob()).
 */
static void conn_send_wait(struct http_conn *c, bool progress, bool failed)
{
	struct io_uring_sqe *sqe = ptv_reactor_sqe(c->srv->r, &c->send_op);

	if (failed)
		io_uring_prep_nop(sqe);
	else
		io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
	c->send_poll = true;
	c->send_failed = failed;
	c->sending = true;
	c->inflight++;
	/* The write timeout runs from the last byte the socket took. */
	if (progress || c->tkind != HTTP_T_WRITE)
		http_conn_timer(c, HTTP_T_WRITE, c->srv->limits.write_timeout_ms);
}

/*
 * Sends the file-backed segments at the head of the queue with sendfile(): the socket takes
 * references to the file's pages, no copy (memring.h says why those pages never change). The
 * socket is non-blocking, so this never waits; what it cannot take now waits for POLLOUT.
 */
static void conn_sendfile(struct http_conn *c)
{
	bool progress = false;

	while (c->seg_n && seg_in_file(&c->segs[c->seg_head])) {
		const struct http_seg *g = &c->segs[c->seg_head];
		off_t off = (off_t)(g->blob->file_off + (uint64_t)(g->p - g->blob->data));
		size_t len = g->len;
		ssize_t n = sendfile(c->fd, g->blob->fd, &off, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		/* 0: the file ended before the segment did (it cannot; retrying would spin). */
		if (n <= 0) {
			if (n == 0 || (errno != EPIPE && errno != ECONNRESET))
				http_error_count(c->srv, "send");
			conn_send_wait(c, progress, true);
			return;
		}
		conn_segs_consume(c, (size_t)n, NULL);
		ptv_metric_add(c->srv->m_sendfile, (uint64_t)n);
		progress = true;
		if ((size_t)n < len)
			break;
	}
	conn_send_wait(c, progress, false);
}

void http_conn_flush(struct http_conn *c)
{
	struct io_uring_sqe *sqe;
	unsigned n = 0;

	if (c->sending || c->closing)
		return;
	if (!c->seg_n) {
		if (c->tkind == HTTP_T_WRITE)
			http_conn_timer(c, HTTP_T_NONE, 0);
		http_conn_drained(c);
		return;
	}
	if (c->splice) {
		/* A sendmsg batch stops at the first segment sendfile() can take. */
		while (n < c->seg_n && n < HTTP_IOV_MAX && !seg_in_file(&c->segs[c->seg_head + n]))
			n++;
		if (!n) {
			conn_sendfile(c);
			return;
		}
	} else {
		n = PTV_MIN(c->seg_n, HTTP_IOV_MAX);
	}
	for (unsigned i = 0; i < n; i++) {
		c->iov[i].iov_base = (void *)c->segs[c->seg_head + i].p;
		c->iov[i].iov_len = c->segs[c->seg_head + i].len;
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = n;
	sqe = ptv_reactor_sqe(c->srv->r, &c->send_op);
	if (c->zc)
		io_uring_prep_sendmsg_zc(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	else
		io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	c->sending = true;
	c->inflight++;
	/* The write timeout runs between two successful sends (nginx send_timeout). */
	http_conn_timer(c, HTTP_T_WRITE, c->srv->limits.write_timeout_ms);
}

/* ---- accept ---- */

static void server_accept_arm(struct ptv_http_server *s);

static void server_refuse(struct ptv_http_server *s, struct http_conn *c)
{
	c->refused = true;
	s->nrefused++;
	ptv_metric_inc(s->m_refused);
	http_respond_simple_close(c, 503);
}

static void server_new_conn(struct ptv_http_server *s, int fd)
{
	struct http_conn *c;
	socklen_t len;
	unsigned open, max;
	int one = 1;

	open = atomic_fetch_add(&s->shared->open, 1) + 1;
	max = atomic_load_explicit(&s->shared->max_open, memory_order_relaxed);
	if (open > max && s->nrefused >= HTTP_REFUSE_MAX) {
		/* Refusals themselves are bounded: past that, just hang up. */
		atomic_fetch_sub(&s->shared->open, 1);
		ptv_metric_inc(s->m_refused);
		close(fd);
		return;
	}
	c = ptv_xcalloc(1, sizeof(*c));
	c->srv = s;
	c->fd = fd;
	c->counted = open <= max;
	if (!c->counted)
		atomic_fetch_sub(&s->shared->open, 1);
	c->recv_op.cb = conn_recv_cb;
	c->send_op.cb = conn_send_cb;
	c->cancel_op.cb = conn_cancel_cb;
	c->zc_tail = &c->zc_head;
	ptv_timer_init(&c->timer, conn_timer_cb);
	len = sizeof(c->peer);
	getpeername(fd, (struct sockaddr *)&c->peer, &len);
	len = sizeof(c->local);
	getsockname(fd, (struct sockaddr *)&c->local, &len);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ptv_list_add_tail(&s->conns, &c->node);
	s->nconns++;
	http_conn_parser_reset(c);
	if (!c->counted) {
		server_refuse(s, c);
		conn_recv_arm(c);
		return;
	}
	ptv_metric_inc(s->m_accepted);
	ptv_metric_add(s->m_open, 1);
	http_conn_timer(c, HTTP_T_HEADER, s->limits.header_timeout_ms);
	conn_recv_arm(c);
}

static void server_accept_retry_cb(struct ptv_timer *t)
{
	struct ptv_http_server *s = ptv_container_of(t, struct ptv_http_server, accept_retry);

	server_accept_arm(s);
}

static void server_accept_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct ptv_http_server *s = ptv_container_of(op, struct ptv_http_server, accept_op);

	if (!(flags & IORING_CQE_F_MORE)) {
		s->accept_armed = false;
		s->accept_inflight--;
	}
	if (res >= 0) {
		if (s->draining)
			close(res);
		else
			server_new_conn(s, res);
	} else if (res != -ECANCELED) {
		http_error_count(s, "accept");
		if (res == -EMFILE || res == -ENFILE) {
			/* Out of descriptors: retrying at once would spin. */
			ptv_warn("http", "accept: %s; retrying shortly", ptv_strerror(res));
			ptv_timer_arm(s->r, &s->accept_retry, 100);
			return;
		}
	}
	if (!s->accept_armed && !s->draining && !ptv_timer_armed(&s->accept_retry))
		server_accept_arm(s);
}

static void server_accept_arm(struct ptv_http_server *s)
{
	struct io_uring_sqe *sqe;

	if (s->accept_armed || s->draining || s->listen_fd < 0)
		return;
	sqe = ptv_reactor_sqe(s->r, &s->accept_op);
	io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	s->accept_armed = true;
	s->accept_inflight++;
}

static void server_accept_cancel_cb(struct ptv_reactor *r, struct ptv_op *op, int res,
				    uint32_t flags)
{
	struct ptv_http_server *s = ptv_container_of(op, struct ptv_http_server, accept_cancel_op);

	s->accept_inflight--;
}

int ptv_http_server_new(struct ptv_reactor *r, struct ptv_router *router,
			struct ptv_http_shared *shared, const struct ptv_http_limits *limits,
			int listen_fd, struct ptv_http_server **out)
{
	static const char *const err_labels[] = {"reason", NULL};
	struct ptv_http_server *s = ptv_xcalloc(1, sizeof(*s));
	static const char *const res_accepted[] = {"accepted", NULL};
	static const char *const res_refused[] = {"refused", NULL};
	static const char *const res_labels[] = {"result", NULL};
	struct ptv_metric_family *conns;

	s->r = r;
	s->router = router;
	s->shared = shared;
	s->limits = *limits;
	s->listen_fd = listen_fd;
	s->accept_op.cb = server_accept_cb;
	s->accept_cancel_op.cb = server_accept_cancel_cb;
	ptv_timer_init(&s->accept_retry, server_accept_retry_cb);
	ptv_list_init(&s->conns);
	http_parser_init(s);
	s->m_open = ptv_metric_simple("plextv_http_connections_open",
				      "HTTP connections currently open", PTV_METRIC_GAUGE);
	conns = ptv_metrics_family("plextv_http_connections_total",
				   "HTTP connections accepted or refused at the connection limit",
				   PTV_METRIC_COUNTER, res_labels, NULL, 0, 4);
	s->m_accepted = ptv_metric_get(conns, res_accepted);
	s->m_refused = ptv_metric_get(conns, res_refused);
	s->m_sendfile = ptv_metric_simple("plextv_http_sendfile_bytes_total",
					  "Response bytes sent with sendfile() from memfd pages "
					  "(send_mode splice)",
					  PTV_METRIC_COUNTER);
	s->m_errors = ptv_metrics_family("plextv_http_errors_total",
					 "HTTP connections ended by an error, by reason",
					 PTV_METRIC_COUNTER, err_labels, NULL, 0, 32);
	*out = s;
	return 0;
}

int ptv_http_server_start(struct ptv_http_server *s)
{
	server_accept_arm(s);
	return 0;
}

void ptv_http_server_set_limits(struct ptv_http_server *s, const struct ptv_http_limits *limits)
{
	s->limits = *limits;
}

void ptv_http_server_drain(struct ptv_http_server *s)
{
	struct ptv_list *pos, *tmp;

	s->draining = true;
	ptv_timer_cancel(&s->accept_retry);
	if (s->accept_armed) {
		struct io_uring_sqe *sqe = ptv_reactor_sqe(s->r, &s->accept_cancel_op);

		io_uring_prep_cancel(sqe, &s->accept_op, 0);
		s->accept_inflight++;
	}
	/* Idle keep-alive connections go now; busy ones close after their response. */
	ptv_list_for_each_safe (pos, tmp, &s->conns) {
		struct http_conn *c = ptv_container_of(pos, struct http_conn, node);

		if (c->tkind == HTTP_T_IDLE || (c->tkind == HTTP_T_HEADER && !c->head_started))
			http_conn_close(c, false);
		else
			c->want_close = true;
	}
}

void ptv_http_server_close_all(struct ptv_http_server *s)
{
	struct ptv_list *pos, *tmp;

	ptv_list_for_each_safe (pos, tmp, &s->conns) {
		http_conn_close(ptv_container_of(pos, struct http_conn, node), true);
	}
}

bool ptv_http_server_busy(void *arg)
{
	struct ptv_http_server *s = arg;

	if (s->draining && !s->accept_armed && !s->accept_inflight && s->listen_fd >= 0) {
		/* The accept is gone: closing the socket now cannot race a completion. */
		close(s->listen_fd);
		s->listen_fd = -1;
	}
	return s->nconns || s->accept_inflight;
}

void ptv_http_server_free(struct ptv_http_server *s)
{
	struct ptv_list *pos, *tmp;

	if (!s)
		return;
	/* The ring is gone: whatever was in flight can no longer complete. */
	ptv_list_for_each_safe (pos, tmp, &s->conns) {
		struct http_conn *c = ptv_container_of(pos, struct http_conn, node);

		/* Timer neighbours may already be freed: detach without touching them. */
		ptv_list_init(&c->timer.node);
		c->inflight = 0;
		c->req.deferred = false;
		c->defer_orphan = false;
		c->req.on_close = NULL;
		conn_free(c);
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	free(s);
}
