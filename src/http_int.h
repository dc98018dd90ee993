/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Internals shared by http_conn.c (sockets, io_uring operations, deadlines, send queue) and
 * http.c (parser glue, requests, responses). Not a public header.
 */
#pragma once

#include <llhttp.h>
#include <sys/uio.h>

#include "plextv/http.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"

#define HTTP_IOV_MAX	64
#define HTTP_OUT_HIGH	(256u * 1024) /* stop parsing further requests above this much queued */
#define HTTP_STREAM_LOW (64u * 1024)  /* a stream producer is asked for more below this */
#define HTTP_LINGER_MS	2000u
#define HTTP_REFUSE_MAX 256u /* refused connections allowed to linger while their 503 goes out */

/* One queued piece of output: owned bytes or a blob reference. */
struct http_seg {
	const char *p;
	size_t len;
	char *owned;
	struct ptv_blob *blob;
};

/* Segments a zero-copy send took: kept until the kernel's notification says it is done with
 * their pages. One batch per zero-copy send; notifications arrive in send order. */
struct http_zc_batch {
	struct http_zc_batch *next;
	unsigned n, cap;
	struct http_seg *segs;
};

struct http_hdr {
	uint32_t name_off, name_len;
	uint32_t val_off, val_len;
};

enum http_timer_kind {
	HTTP_T_NONE = 0,
	HTTP_T_HEADER, /* request head must complete */
	HTTP_T_IDLE,   /* keep-alive, waiting for the next request */
	HTTP_T_WRITE,  /* a send is in flight */
	HTTP_T_DEFER,  /* a deferred handler owes an answer */
	HTTP_T_LINGER, /* response sent, draining input before close */
};

struct ptv_http_req {
	struct http_conn *conn;
	unsigned method;
	uint8_t major, minor;
	struct ptv_buf url;  /* raw request target */
	struct ptv_buf path; /* percent-decoded path */
	struct ptv_buf hbuf; /* header names and values, NUL-separated */
	struct http_hdr *hdrs;
	unsigned nhdrs, hdrs_cap;
	bool in_field; /* llhttp is delivering a header name (vs a value) */
	struct ptv_buf body;
	bool has_cl, has_te, has_host, keep_alive;
	uint64_t cl;
	struct ptv_route_entry *route;
	struct ptv_buf extra; /* headers added by the handler */
	uint64_t start_ns;
	bool responded, deferred, streaming;
	int status;
	/* streaming */
	enum ptv_http_stream_mode stream_mode;
	int (*on_drain)(struct ptv_http_req *req, void *ctx);
	void (*on_close)(void *ctx);
	void *stream_ctx;
	bool stream_ended;
};

struct http_conn {
	struct ptv_list node;
	struct ptv_http_server *srv;
	int fd;
	unsigned inflight;
	struct ptv_op recv_op, send_op, cancel_op;
	bool recv_armed, sending, closing, lingering, abort, peer_eof, want_close;
	bool read_paused, refused, counted;
	bool defer_orphan; /* a deferred handler will answer a request already answered */
	struct ptv_timer timer;
	enum http_timer_kind tkind;

	llhttp_t parser;
	bool parser_paused;   /* llhttp returned HPE_PAUSED at a message end */
	struct ptv_buf inbuf; /* received, not yet parsed */
	/* Pre-scan of the request head (see http.h). */
	bool in_head, head_started, sc_prev_cr, sc_line_start, sc_line_empty, sc_seen_line;
	size_t head_bytes;
	int err_status; /* set by a callback before it fails the parse */
	const char *err_reason;

	struct ptv_http_req req;
	unsigned answered; /* responses started on this connection */

	struct http_seg *segs;
	unsigned seg_head, seg_n, seg_cap;
	size_t out_bytes;
	struct msghdr msg;
	struct iovec iov[HTTP_IOV_MAX];
	bool zc;	  /* sends use IORING_OP_SENDMSG_ZC */
	bool splice;	  /* file-backed blobs go out with sendfile() (socket O_NONBLOCK) */
	bool send_poll;	  /* send_op is a POLLOUT wait (or a NOP), not a send */
	bool send_failed; /* sendfile() failed: close when send_op completes */
	struct http_zc_batch *zc_head, **zc_tail; /* waiting for notifications */

	struct sockaddr_storage peer, local;
};

struct ptv_http_server {
	struct ptv_reactor *r;
	struct ptv_router *router;
	struct ptv_http_shared *shared;
	struct ptv_http_limits limits;
	int listen_fd;
	struct ptv_op accept_op, accept_cancel_op;
	bool accept_armed, draining;
	unsigned accept_inflight;
	struct ptv_timer accept_retry;
	struct ptv_list conns;
	unsigned nconns, nrefused;
	llhttp_settings_t settings;
	char date[40];
	int64_t date_sec;
	struct ptv_metric *m_open, *m_accepted, *m_refused, *m_sendfile;
	struct ptv_metric_family *m_errors;
};

/* http_conn.c */
void http_conn_close(struct http_conn *c, bool abort);
void http_conn_flush(struct http_conn *c);
void http_conn_timer(struct http_conn *c, enum http_timer_kind kind, unsigned ms);
int http_conn_queue(struct http_conn *c, const void *p, size_t n);
int http_conn_queue_owned(struct http_conn *c, char *p, size_t n);
/** Queues bytes that live forever (string literals). */
int http_conn_queue_static(struct http_conn *c, const char *p, size_t n);
/** Frees the connection if it is closing and nothing references it; true if freed. */
bool http_conn_maybe_free(struct http_conn *c);
int http_conn_queue_blob(struct http_conn *c, struct ptv_blob *b, size_t off, size_t n);
void http_conn_read_resume(struct http_conn *c);
/** FIN after the last response, drain input briefly, then close (avoids RST). */
void http_conn_linger(struct http_conn *c);
void http_error_count(struct ptv_http_server *s, const char *reason);

/* http.c */
void http_parser_init(struct ptv_http_server *s);
void http_conn_parser_reset(struct http_conn *c);
/** Feeds received bytes; returns false once the connection is closing. */
bool http_conn_input(struct http_conn *c, const char *data, size_t len);
/** Everything queued was sent: continue the stream, close, or parse the next request. */
void http_conn_drained(struct http_conn *c);
void http_req_release(struct ptv_http_req *req);
void http_respond_simple_close(struct http_conn *c, int status);
const char *http_date(struct ptv_http_server *s);
