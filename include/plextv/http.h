/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HTTP/1.1 server on llhttp (strict mode) over the reactor.
 *
 * One struct ptv_http_server per reactor: its listening socket (SO_REUSEPORT, multishot
 * accept), its connections and their deadlines. Requests are parsed by llhttp; the header
 * section is also checked byte by byte before llhttp sees it (bare CR, bare LF, obs-fold, NUL)
 * because Debian's llhttp 8.1.0 predates the fixes for CVE-2023-30589 and CVE-2024-27982, and
 * Content-Length / Transfer-Encoding are validated in our callbacks for the same reason.
 *
 * Pipelined requests are answered in order: parsing pauses at the end of each request until
 * its response is queued. Responses go out with one sendmsg per batch of segments; a blob
 * (ptv_blob) is sent by reference, so a large pre-rendered document is never copied per client.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "plextv/buf.h"
#include "plextv/config.h"
#include "plextv/router.h"

struct ptv_reactor;
struct ptv_http_server;
struct ptv_http_req;

/** Limits and timeouts; copied into each server, replaceable at run time (SIGHUP). */
struct ptv_http_limits {
	unsigned header_max_bytes;
	unsigned header_max_count;
	unsigned url_max_bytes;
	unsigned body_max_bytes;
	unsigned header_timeout_ms;
	unsigned idle_timeout_ms;
	unsigned write_timeout_ms;
};

void ptv_http_limits_from_config(struct ptv_http_limits *l, const struct ptv_config *c);

/** State shared by every reactor's server: the connection count and its limit. */
struct ptv_http_shared {
	atomic_uint open;	   /* connections currently open, all reactors */
	atomic_uint max_open;	   /* refuse past this */
	const char *server_header; /* "PlexTV/0.1.0" */
};

/**
 * Opens a listening socket for @addr with SO_REUSEPORT so each reactor can have its own.
 * Returns the fd or a negative errno.
 */
int ptv_http_listen(const struct sockaddr *addr, socklen_t len);
/** Fails with -EADDRINUSE when anything (even a SO_REUSEPORT group of another process) holds @addr.
 */
int ptv_http_check_addr_free(const struct sockaddr *addr, socklen_t len);

/** Creates the server for reactor @r, taking ownership of @listen_fd. Call on @r's thread. */
int ptv_http_server_new(struct ptv_reactor *r, struct ptv_router *router,
			struct ptv_http_shared *shared, const struct ptv_http_limits *limits,
			int listen_fd, struct ptv_http_server **out);
/** Arms the multishot accept. */
int ptv_http_server_start(struct ptv_http_server *s);
void ptv_http_server_set_limits(struct ptv_http_server *s, const struct ptv_http_limits *limits);
/** Stops accepting, closes idle connections, lets in-flight responses finish. */
void ptv_http_server_drain(struct ptv_http_server *s);
/** Closes every connection now. */
void ptv_http_server_close_all(struct ptv_http_server *s);
/** True while connections (or operations) remain. */
bool ptv_http_server_busy(void *s);
/** Frees everything; the reactor's ring must already be gone or idle. */
void ptv_http_server_free(struct ptv_http_server *s);

/* ---- Request accessors (valid until the response is complete) ---- */

unsigned ptv_http_req_method(const struct ptv_http_req *req);	/* PTV_HTTP_* bit */
const char *ptv_http_req_path(const struct ptv_http_req *req);	/* decoded, no query */
const char *ptv_http_req_query(const struct ptv_http_req *req); /* raw, without '?'; "" if none */
/** Case-insensitive header lookup; NULL if absent. */
const char *ptv_http_req_header(const struct ptv_http_req *req, const char *name);
/** Decoded value of query parameter @name into @buf. Returns its length or -ENOENT. */
int ptv_http_req_query_param(const struct ptv_http_req *req, const char *name, char *buf,
			     size_t len);
const struct ptv_buf *ptv_http_req_body(const struct ptv_http_req *req);
const struct sockaddr_storage *ptv_http_req_peer(const struct ptv_http_req *req);
/** The local address the request came in on (for URLs that must be reachable by the client). */
const struct sockaddr_storage *ptv_http_req_local(const struct ptv_http_req *req);
struct ptv_reactor *ptv_http_req_reactor(const struct ptv_http_req *req);

/**
 * The connection's socket, for socket options only (SO_SNDBUF, TCP_NOTSENT_LOWAT, eBPF tagging):
 * all I/O on it goes through this module.
 */
int ptv_http_req_fd(const struct ptv_http_req *req);

/* ---- Responses ---- */

/** The response to @req ends the connection ("Connection: close"). Call before responding. */
void ptv_http_set_close(struct ptv_http_req *req);

/** Adds a response header (before responding). @name and @value must not contain CR/LF. */
int ptv_http_add_header(struct ptv_http_req *req, const char *name, const char *value);
/** Complete response; @body is copied. HEAD requests get the headers only. */
int ptv_http_respond(struct ptv_http_req *req, int status, const char *ctype, const void *body,
		     size_t len);
/** Complete response whose body is a blob, sent by reference (takes its own ref). */
int ptv_http_respond_blob(struct ptv_http_req *req, int status, const char *ctype,
			  struct ptv_blob *blob);
/** Short text/plain error body ("Not Found\n"). */
int ptv_http_respond_error(struct ptv_http_req *req, int status);

/**
 * Defers the answer: the handler returns 0 and some later code on the same reactor thread
 * (typically a ptv_pool_submit() done callback) calls a respond function. The connection is
 * kept alive meanwhile even if the client leaves (the answer is then dropped). If no answer
 * arrives within the write timeout the client gets 503.
 */
void ptv_http_defer(struct ptv_http_req *req);

/* ---- Streamed responses ---- */

enum ptv_http_stream_mode {
	PTV_HTTP_STREAM_CHUNKED = 1, /* Transfer-Encoding: chunked; keep-alive survives the end */
	PTV_HTTP_STREAM_CLOSE = 2, /* no length: the end of the body is the end of the connection */
};

/**
 * Starts a streamed response. @on_drain runs on the reactor thread each time everything queued
 * has been sent (and once right away) so the producer can queue more; it returns 0 to keep
 * going, 1 when it has called ptv_http_stream_end(), or a negative errno to abort the
 * connection. @on_close (may be NULL) runs once when the stream ends for any reason, including
 * the client leaving (for PTV_HTTP_STREAM_CLOSE, the client closing its side counts as leaving:
 * nothing more is read on such a connection); after it, @ctx is no longer used.
 */
int ptv_http_stream_begin(struct ptv_http_req *req, int status, const char *ctype,
			  enum ptv_http_stream_mode mode,
			  int (*on_drain)(struct ptv_http_req *req, void *ctx),
			  void (*on_close)(void *ctx), void *ctx);
/** Queues bytes (copied). */
int ptv_http_stream_write(struct ptv_http_req *req, const void *p, size_t n);
/** Queues @len bytes of @blob from @off by reference. */
int ptv_http_stream_write_blob(struct ptv_http_req *req, struct ptv_blob *blob, size_t off,
			       size_t len);
/** Ends the body (chunked terminator, or close once sent). */
int ptv_http_stream_end(struct ptv_http_req *req);
/**
 * Ends a stream at once: the connection is closed without sending what is queued (the
 * stream's on_close runs). For producers that evict a viewer on their own terms. Do not touch
 * @req afterwards.
 */
void ptv_http_stream_abort(struct ptv_http_req *req);

/** Bytes queued and not yet sent. */
size_t ptv_http_stream_queued(const struct ptv_http_req *req);

/**
 * Sends the rest of this connection's output with IORING_OP_SENDMSG_ZC: the kernel reads the
 * pages of the queued segments (a blob is never copied by us), and every segment is kept,
 * with its blob reference, until the kernel's notification says the pages are released, so a
 * ring chunk is never reused under a send. On loopback the kernel copies anyway and the
 * notification costs an extra completion (PERFORMANCE-ANCHORS §0.3). Returns 0, or
 * -EOPNOTSUPP when the kernel lacks zero-copy sendmsg (6.1+).
 */
int ptv_http_stream_set_zerocopy(struct ptv_http_req *req, bool on);

/**
 * Sends the rest of this connection's output that lives in a file (blobs from a memring,
 * memring.h) with sendfile(): the socket gets references to the pages instead of a copy; other
 * bytes still go with sendmsg. Makes the socket non-blocking (sendfile runs on the reactor
 * thread) and waits for POLLOUT when it is full. sendfile() cannot be told MSG_NOSIGNAL, so
 * this sets SIGPIPE to be ignored process-wide. Returns 0 or a negative errno.
 */
int ptv_http_stream_set_splice(struct ptv_http_req *req, bool on);

/** Reason phrase for @status ("OK", "Not Found", …). */
const char *ptv_http_reason(int status);
