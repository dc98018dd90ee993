/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HTTP/1.1 request parsing (llhttp glue plus our own framing checks) and responses.
 */
#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_int.h"
#include "plextv/log.h"

static struct http_conn *parser_conn(llhttp_t *p)
{
	return p->data;
}

static int parse_fail(struct http_conn *c, int status, const char *reason)
{
	c->err_status = status;
	c->err_reason = reason;
	return -1;
}

/* ---- llhttp callbacks ---- */

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);

	if (c->req.url.len + len > c->srv->limits.url_max_bytes)
		return parse_fail(c, 414, "uri_too_long");
	return ptv_buf_append(&c->req.url, at, len) ? parse_fail(c, 500, "oom") : 0;
}

static struct http_hdr *req_cur_hdr(struct ptv_http_req *req)
{
	return &req->hdrs[req->nhdrs];
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);
	struct ptv_http_req *req = &c->req;

	if (!req->in_field) {
		if (req->nhdrs >= c->srv->limits.header_max_count)
			return parse_fail(c, 431, "too_many_headers");
		if (req->nhdrs == req->hdrs_cap) {
			req->hdrs_cap = req->hdrs_cap ? req->hdrs_cap * 2 : 16;
			req->hdrs = ptv_xrealloc(req->hdrs, req->hdrs_cap * sizeof(*req->hdrs));
		}
		memset(req_cur_hdr(req), 0, sizeof(struct http_hdr));
		req_cur_hdr(req)->name_off = (uint32_t)req->hbuf.len;
		req->in_field = true;
	}
	req_cur_hdr(req)->name_len += (uint32_t)len;
	return ptv_buf_append(&req->hbuf, at, len) ? parse_fail(c, 500, "oom") : 0;
}

static void hdr_start_value(struct ptv_http_req *req)
{
	/* NUL after the name so both can be used as C strings. */
	ptv_buf_putc(&req->hbuf, '\0');
	req_cur_hdr(req)->val_off = (uint32_t)req->hbuf.len;
	req->in_field = false;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);
	struct ptv_http_req *req = &c->req;

	if (req->in_field)
		hdr_start_value(req);
	req_cur_hdr(req)->val_len += (uint32_t)len;
	return ptv_buf_append(&req->hbuf, at, len) ? parse_fail(c, 500, "oom") : 0;
}

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch);
}

static int hdr_check_syntax(const char *name, size_t nlen, const char *val, size_t vlen)
{
	if (!nlen)
		return -1;
	for (size_t i = 0; i < nlen; i++) {
		if (!is_tchar((unsigned char)name[i]))
			return -1;
	}
	for (size_t i = 0; i < vlen; i++) {
		unsigned char ch = (unsigned char)val[i];

		/* CR, LF and NUL inside a value are how requests get smuggled past proxies. */
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	return 0;
}

static int parse_content_length(const char *v, size_t len, uint64_t *out)
{
	uint64_t n = 0;

	/* Digits only: no sign, no spaces, no list ("5, 5"), no hex (CVE-2024-27982). */
	if (!len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (__builtin_mul_overflow(n, 10, &n) ||
		    __builtin_add_overflow(n, (uint64_t)(v[i] - '0'), &n))
			return -1;
	}
	*out = n;
	return 0;
}

static int hdr_framing(struct http_conn *c, const char *name, const char *val, size_t vlen)
{
	struct ptv_http_req *req = &c->req;

	if (!strcasecmp(name, "content-length")) {
		if (req->has_cl || req->has_te || parse_content_length(val, vlen, &req->cl))
			return parse_fail(c, 400, "bad_content_length");
		req->has_cl = true;
	} else if (!strcasecmp(name, "transfer-encoding")) {
		/* Only a single "chunked": lists and other codings are the TE.TE desync vectors. */
		if (req->has_te || req->has_cl || vlen != 7 || strncasecmp(val, "chunked", 7))
			return parse_fail(c, 400, "bad_transfer_encoding");
		req->has_te = true;
	} else if (!strcasecmp(name, "host")) {
		if (req->has_host)
			return parse_fail(c, 400, "duplicate_host");
		req->has_host = true;
	}
	return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct http_conn *c = parser_conn(p);
	struct ptv_http_req *req = &c->req;
	struct http_hdr *h;
	const char *name, *val;

	if (req->in_field)
		hdr_start_value(req); /* empty value: llhttp sent no value span */
	h = req_cur_hdr(req);
	/* Trailing whitespace is not part of the value (RFC 9110 5.5). */
	while (h->val_len && (req->hbuf.data[h->val_off + h->val_len - 1] == ' ' ||
			      req->hbuf.data[h->val_off + h->val_len - 1] == '\t')) {
		h->val_len--;
		req->hbuf.len--;
	}
	if (ptv_buf_putc(&req->hbuf, '\0'))
		return parse_fail(c, 500, "oom");
	name = req->hbuf.data + h->name_off;
	val = req->hbuf.data + h->val_off;
	if (hdr_check_syntax(name, h->name_len, val, h->val_len))
		return parse_fail(c, 400, "bad_header");
	if (hdr_framing(c, name, val, h->val_len))
		return -1;
	req->nhdrs++;
	return 0;
}

static unsigned method_bit(uint8_t m)
{
	switch (m) {
	case HTTP_GET:
		return PTV_HTTP_GET;
	case HTTP_HEAD:
		return PTV_HTTP_HEAD;
	case HTTP_POST:
		return PTV_HTTP_POST;
	case HTTP_PUT:
		return PTV_HTTP_PUT;
	case HTTP_DELETE:
		return PTV_HTTP_DELETE;
	case HTTP_OPTIONS:
		return PTV_HTTP_OPTIONS;
	case HTTP_PATCH:
		return PTV_HTTP_PATCH;
	default:
		return 0;
	}
}

static int on_headers_complete(llhttp_t *p)
{
	struct http_conn *c = parser_conn(p);
	struct ptv_http_req *req = &c->req;

	req->major = p->http_major;
	req->minor = p->http_minor;
	req->method = method_bit(p->method);
	c->in_head = false;
	if (req->major != 1 || req->minor > 1)
		return parse_fail(c, 400, "bad_version");
	if (req->minor == 1 && !req->has_host)
		return parse_fail(c, 400, "missing_host");
	if (req->has_cl && req->cl > c->srv->limits.body_max_bytes)
		return parse_fail(c, 413, "body_too_large");
	req->start_ns = ptv_now_ns();
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);

	if (c->req.body.len + len > c->srv->limits.body_max_bytes)
		return parse_fail(c, 413, "body_too_large");
	return ptv_buf_append(&c->req.body, at, len) ? parse_fail(c, 500, "oom") : 0;
}

static int on_message_complete(llhttp_t *p)
{
	/* Stop here so the request is answered before the next pipelined one is parsed. */
	return HPE_PAUSED;
}

void http_parser_init(struct ptv_http_server *s)
{
	llhttp_settings_init(&s->settings);
	s->settings.on_url = on_url;
	s->settings.on_header_field = on_header_field;
	s->settings.on_header_value = on_header_value;
	s->settings.on_header_value_complete = on_header_value_complete;
	s->settings.on_headers_complete = on_headers_complete;
	s->settings.on_body = on_body;
	s->settings.on_message_complete = on_message_complete;
}

static void scan_reset(struct http_conn *c)
{
	c->in_head = true;
	c->head_started = false;
	c->sc_prev_cr = false;
	c->sc_line_start = true;
	c->sc_line_empty = true;
	c->sc_seen_line = false;
	c->head_bytes = 0;
}

void http_conn_parser_reset(struct http_conn *c)
{
	llhttp_init(&c->parser, HTTP_REQUEST, &c->srv->settings);
	c->parser.data = c;
	c->req.conn = c;
	c->parser_paused = false;
	scan_reset(c);
}

/* ---- request head pre-scan ---- */

static void head_first_byte(struct http_conn *c)
{
	c->head_started = true;
	/* The header deadline counts from the first byte, so trickling cannot extend it. */
	if (!c->sending)
		http_conn_timer(c, HTTP_T_HEADER, c->srv->limits.header_timeout_ms);
}

static int scan_byte(struct http_conn *c, unsigned char ch, bool *end)
{
	if (c->sc_prev_cr) {
		if (ch != '\n')
			return parse_fail(c, 400, "bare_cr");
		c->sc_prev_cr = false;
		if (c->sc_line_empty && c->sc_seen_line) {
			*end = true;
			return 0;
		}
		c->sc_line_start = c->sc_line_empty = true;
		return 0;
	}
	if (ch == '\r') {
		c->sc_prev_cr = true;
		return 0;
	}
	if (ch == '\n')
		return parse_fail(c, 400, "bare_lf");
	if (ch == '\0')
		return parse_fail(c, 400, "nul");
	/* A line starting with whitespace is obs-fold (or space before the first header). */
	if (c->sc_line_start && (ch == ' ' || ch == '\t') && c->sc_seen_line)
		return parse_fail(c, 400, "obs_fold");
	c->sc_line_start = false;
	c->sc_line_empty = false;
	c->sc_seen_line = true;
	return 0;
}

/* Scans up to @len bytes of request head. Sets *@n to the bytes that belong to the head and
 * *@end when its last byte was seen. Returns 0 or -1 with err_status set. */
static int head_scan(struct http_conn *c, const char *data, size_t len, size_t *n, bool *end)
{
	size_t i;

	*end = false;
	if (len && !c->head_started)
		head_first_byte(c);
	for (i = 0; i < len && !*end; i++) {
		if (++c->head_bytes > c->srv->limits.header_max_bytes)
			return parse_fail(c, 431, "headers_too_large");
		if (scan_byte(c, (unsigned char)data[i], end))
			return -1;
	}
	*n = i;
	return 0;
}

/* ---- dispatch ---- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)tolower((unsigned char)ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes @len bytes into @out. Rejects bad escapes and NUL. */
static int url_decode(const char *s, size_t len, struct ptv_buf *out, bool plus_space)
{
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			ch = (char)(hi * 16 + lo);
			i += 2;
		} else if (ch == '+' && plus_space) {
			ch = ' ';
		}
		ptv_buf_putc(out, ch);
	}
	return out->oom ? -ENOMEM : 0;
}

static int req_split_target(struct ptv_http_req *req)
{
	const char *t = req->url.data ? req->url.data : "";
	size_t len = req->url.len, plen;
	const char *q;

	/* absolute-form (RFC 9112 3.2.2): keep only the path. */
	if (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8)) {
		const char *slash = strchr(strstr(t, "//") + 2, '/');

		if (!slash)
			return -EINVAL;
		len -= (size_t)(slash - t);
		t = slash;
	}
	if (t[0] != '/')
		return -EINVAL;
	q = memchr(t, '?', len);
	plen = q ? (size_t)(q - t) : len;
	ptv_buf_reset(&req->path);
	if (url_decode(t, plen, &req->path, false) || ptv_buf_putc(&req->path, '\0'))
		return -EINVAL;
	req->path.len--;
	return 0;
}

static void req_account(struct ptv_http_req *req)
{
	struct ptv_route_entry *e =
		req->route ? req->route : ptv_router_unmatched(req->conn->srv->router);
	uint64_t now = ptv_now_ns();

	ptv_metric_inc(ptv_route_entry_requests(e, req->status));
	if (req->start_ns)
		ptv_metric_observe(ptv_route_entry_duration(e),
				   (double)(now - req->start_ns) / 1e9);
}

static void req_reset(struct ptv_http_req *req)
{
	struct ptv_buf *bufs[] = {&req->url, &req->path, &req->hbuf, &req->body, &req->extra};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(bufs); i++) {
		/* Keep small buffers for the next request; give big ones back (idle memory). */
		if (bufs[i]->cap > 16384)
			ptv_buf_free(bufs[i]);
		else
			ptv_buf_reset(bufs[i]);
	}
	req->nhdrs = 0;
	req->in_field = false;
	req->has_cl = req->has_te = req->has_host = req->keep_alive = false;
	req->cl = 0;
	req->route = NULL;
	req->start_ns = 0;
	req->responded = req->deferred = req->streaming = req->stream_ended = false;
	req->status = 0;
	req->on_drain = NULL;
	req->on_close = NULL;
	req->stream_ctx = NULL;
	req->method = 0;
}

void http_req_release(struct ptv_http_req *req)
{
	ptv_buf_free(&req->url);
	ptv_buf_free(&req->path);
	ptv_buf_free(&req->hbuf);
	ptv_buf_free(&req->body);
	ptv_buf_free(&req->extra);
	ptv_freep(&req->hdrs);
	req->hdrs_cap = req->nhdrs = 0;
}

/* The response is fully queued: get ready for the next request. */
static void req_done(struct http_conn *c)
{
	if (!c->req.keep_alive)
		c->want_close = true;
	req_reset(&c->req);
	scan_reset(c);
}

static void dispatch(struct http_conn *c)
{
	struct ptv_http_req *req = &c->req;
	const struct ptv_route *route;
	unsigned allow = 0, answered;
	int status = 0, ret;

	req->keep_alive = llhttp_should_keep_alive(&c->parser) && !c->srv->draining;
	if (req_split_target(req)) {
		http_error_count(c->srv, "bad_target");
		http_respond_simple_close(c, 400);
		return;
	}
	req->route = req->method ? ptv_router_match(c->srv->router, req->method, req->path.data,
						    &status, &allow)
				 : NULL;
	if (!req->method)
		status = 501;
	if (status) {
		char methods[64];

		if (status == 405) {
			ptv_http_methods_format(allow, methods, sizeof(methods));
			ptv_http_add_header(req, "Allow", methods);
		}
		ptv_http_respond_error(req, status);
		return;
	}
	route = ptv_route_entry_route(req->route);
	answered = c->answered;
	ret = route->fn(req, route->ctx);
	/* The request may already be reset for the next one: count answers, not flags. */
	if (c->answered != answered || req->deferred || req->streaming)
		return;
	if (ret >= 0)
		ptv_error("http", "handler %s returned without answering", route->name);
	else
		ptv_warn("http", "handler %s failed: %s", route->name, ptv_strerror(ret));
	ptv_http_respond_error(req, 500);
}

static bool parse_blocked(const struct http_conn *c)
{
	return c->closing || c->want_close || c->req.deferred || c->req.streaming ||
	       c->out_bytes > HTTP_OUT_HIGH;
}

/* Runs the parser over @data; returns how many bytes were consumed. */
static size_t conn_parse(struct http_conn *c, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len && !parse_blocked(c)) {
		size_t n = len - off;
		bool end = false;
		enum llhttp_errno e;

		if (c->parser_paused) {
			llhttp_resume(&c->parser);
			c->parser_paused = false;
		}
		if (c->in_head && head_scan(c, data + off, n, &n, &end))
			goto fail;
		e = llhttp_execute(&c->parser, data + off, n);
		if (e == HPE_PAUSED) {
			off = (size_t)(llhttp_get_error_pos(&c->parser) - data);
			c->parser_paused = true;
			dispatch(c);
			continue;
		}
		if (e != HPE_OK)
			goto fail;
		off += n;
	}
	return off;
fail:
	if (!c->err_status) {
		c->err_status = 400;
		c->err_reason = "bad_request";
	}
	http_error_count(c->srv, c->err_reason);
	http_respond_simple_close(c, c->err_status);
	return len;
}

static void conn_parse_inbuf(struct http_conn *c)
{
	size_t used;

	if (!c->inbuf.len)
		return;
	used = conn_parse(c, c->inbuf.data, c->inbuf.len);
	ptv_buf_consume(&c->inbuf, used);
}

bool http_conn_input(struct http_conn *c, const char *data, size_t len)
{
	size_t used;

	if (c->inbuf.len || parse_blocked(c)) {
		if (ptv_buf_append(&c->inbuf, data, len)) {
			http_conn_close(c, true);
			return false;
		}
		conn_parse_inbuf(c);
	} else {
		used = conn_parse(c, data, len);
		if (used < len && !c->closing && !c->want_close &&
		    ptv_buf_append(&c->inbuf, data + used, len - used)) {
			http_conn_close(c, true);
			return false;
		}
	}
	return !c->closing;
}

static void stream_finish(struct http_conn *c)
{
	void (*on_close)(void *ctx) = c->req.on_close;
	void *ctx = c->req.stream_ctx;

	c->req.on_close = NULL;
	req_done(c);
	if (on_close)
		on_close(ctx);
}

void http_conn_drained(struct http_conn *c)
{
	if (c->req.streaming) {
		int ret;

		if (c->req.stream_ended) {
			stream_finish(c);
		} else {
			ret = c->req.on_drain(&c->req, c->req.stream_ctx);
			if (ret < 0)
				http_conn_close(c, true);
			return;
		}
	}
	if (c->want_close) {
		http_conn_linger(c);
		return;
	}
	conn_parse_inbuf(c);
	if (c->closing || c->sending || c->req.deferred || c->req.streaming)
		return;
	if (c->out_bytes) {
		http_conn_flush(c);
		return;
	}
	if (c->want_close) {
		http_conn_linger(c);
		return;
	}
	if (c->peer_eof) {
		http_conn_close(c, false);
		return;
	}
	if (c->head_started)
		http_conn_timer(c, HTTP_T_HEADER, c->srv->limits.header_timeout_ms);
	else
		http_conn_timer(c, HTTP_T_IDLE, c->srv->limits.idle_timeout_ms);
	http_conn_read_resume(c);
}

/* ---- responses ---- */

const char *ptv_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

const char *http_date(struct ptv_http_server *s)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != s->date_sec) {
		gmtime_r(&now, &tm);
		strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		s->date_sec = now;
	}
	return s->date;
}

int ptv_http_add_header(struct ptv_http_req *req, const char *name, const char *value)
{
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -EINVAL;
	return ptv_buf_printf(&req->extra, "%s: %s\r\n", name, value);
}

/* Queues the status line and headers. @length < 0: no Content-Length. */
static int resp_head(struct ptv_http_req *req, int status, const char *ctype, int64_t length,
		     const char *framing)
{
	struct http_conn *c = req->conn;
	struct ptv_buf h = {0};
	char *p;
	size_t n;

	PTV_BUG_ON(req->responded);
	req->responded = true;
	c->answered++;
	req->status = status;
	ptv_buf_printf(&h, "HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n", status,
		       ptv_http_reason(status), c->srv->shared->server_header, http_date(c->srv));
	if (ctype)
		ptv_buf_printf(&h, "Content-Type: %s\r\n", ctype);
	if (length >= 0)
		ptv_buf_printf(&h, "Content-Length: %lld\r\n", (long long)length);
	if (framing)
		ptv_buf_puts(&h, framing);
	if (req->extra.len)
		ptv_buf_append(&h, req->extra.data, req->extra.len);
	if (!req->keep_alive)
		ptv_buf_puts(&h, "Connection: close\r\n");
	else if (req->minor == 0)
		ptv_buf_puts(&h, "Connection: keep-alive\r\n");
	ptv_buf_puts(&h, "\r\n");
	p = ptv_buf_steal(&h, &n);
	if (!p)
		return -ENOMEM;
	req_account(req);
	return http_conn_queue_owned(c, p, n);
}

/*
 * Deferred answers may arrive after the client left, or after the deadline answered for the
 * handler (defer_orphan). Returns true when the answer must be dropped; the connection may be
 * freed then, so the caller must not touch @req afterwards.
 */
static bool resp_late(struct ptv_http_req *req)
{
	struct http_conn *c = req->conn;

	if (c->defer_orphan) {
		c->defer_orphan = false;
		http_conn_maybe_free(c);
		return true;
	}
	if (!req->deferred)
		return false;
	req->deferred = false;
	if (c->closing) {
		http_conn_maybe_free(c);
		return true;
	}
	http_conn_timer(c, HTTP_T_NONE, 0);
	return false;
}

static int resp_finish(struct ptv_http_req *req, int ret)
{
	struct http_conn *c = req->conn;

	if (ret)
		http_conn_close(c, true);
	req_done(c);
	http_conn_flush(c);
	return ret;
}

int ptv_http_respond(struct ptv_http_req *req, int status, const char *ctype, const void *body,
		     size_t len)
{
	int ret;

	if (resp_late(req))
		return -ECANCELED;
	ret = resp_head(req, status, ctype, (int64_t)len, NULL);
	if (!ret && req->method != PTV_HTTP_HEAD)
		ret = http_conn_queue(req->conn, body, len);
	return resp_finish(req, ret);
}

int ptv_http_respond_blob(struct ptv_http_req *req, int status, const char *ctype,
			  struct ptv_blob *blob)
{
	int ret;

	if (resp_late(req))
		return -ECANCELED;
	ret = resp_head(req, status, ctype, (int64_t)blob->len, NULL);
	if (!ret && req->method != PTV_HTTP_HEAD)
		ret = http_conn_queue_blob(req->conn, blob, 0, blob->len);
	return resp_finish(req, ret);
}

int ptv_http_respond_error(struct ptv_http_req *req, int status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", ptv_http_reason(status));

	return ptv_http_respond(req, status, "text/plain; charset=utf-8", body, (size_t)n);
}

void http_respond_simple_close(struct http_conn *c, int status)
{
	struct ptv_http_req *req = &c->req;

	/* Framing is unknown after a protocol error: answer, then close. */
	c->want_close = true;
	if (req->responded) {
		http_conn_flush(c);
		return;
	}
	req->keep_alive = false;
	if (req->deferred) {
		req->deferred = false;
		ptv_http_respond_error(req, status);
		/* The handler still owes an answer: it will be dropped when it comes. */
		c->defer_orphan = true;
		return;
	}
	ptv_http_respond_error(req, status);
}

void ptv_http_defer(struct ptv_http_req *req)
{
	req->deferred = true;
	http_conn_timer(req->conn, HTTP_T_DEFER, req->conn->srv->limits.write_timeout_ms);
}

/* ---- streams ---- */

int ptv_http_stream_begin(struct ptv_http_req *req, int status, const char *ctype,
			  enum ptv_http_stream_mode mode,
			  int (*on_drain)(struct ptv_http_req *req, void *ctx),
			  void (*on_close)(void *ctx), void *ctx)
{
	int ret;

	if (resp_late(req))
		return -ECANCELED;
	/* HTTP/1.0 has no chunked encoding: fall back to close-delimited. */
	if (mode == PTV_HTTP_STREAM_CHUNKED && req->minor == 0)
		mode = PTV_HTTP_STREAM_CLOSE;
	if (mode == PTV_HTTP_STREAM_CLOSE)
		req->keep_alive = false;
	ret = resp_head(req, status, ctype, -1,
			mode == PTV_HTTP_STREAM_CHUNKED ? "Transfer-Encoding: chunked\r\n" : NULL);
	if (ret)
		return resp_finish(req, ret);
	req->streaming = true;
	req->stream_mode = mode;
	req->on_drain = on_drain;
	req->on_close = on_close;
	req->stream_ctx = ctx;
	if (req->method == PTV_HTTP_HEAD) {
		/* Headers only: the body ends before it starts. */
		req->stream_ended = true;
	}
	http_conn_flush(req->conn);
	return 0;
}

static int stream_check(struct ptv_http_req *req)
{
	if (!req->streaming || req->stream_ended || req->conn->closing)
		return -EPIPE;
	return req->method == PTV_HTTP_HEAD ? 1 : 0;
}

int ptv_http_stream_write(struct ptv_http_req *req, const void *p, size_t n)
{
	struct http_conn *c = req->conn;
	int ret = stream_check(req);
	char *chunk;
	int hl;

	if (ret || !n)
		return ret < 0 ? ret : 0;
	if (req->stream_mode == PTV_HTTP_STREAM_CLOSE) {
		ret = http_conn_queue(c, p, n);
	} else {
		/* One allocation holds size line, data and CRLF: one iovec per chunk. */
		chunk = malloc(n + 24);
		if (!chunk)
			return -ENOMEM;
		hl = snprintf(chunk, 24, "%zx\r\n", n);
		memcpy(chunk + hl, p, n);
		memcpy(chunk + hl + n, "\r\n", 2);
		ret = http_conn_queue_owned(c, chunk, (size_t)hl + n + 2);
	}
	if (!ret)
		http_conn_flush(c);
	return ret;
}

int ptv_http_stream_write_blob(struct ptv_http_req *req, struct ptv_blob *blob, size_t off,
			       size_t len)
{
	struct http_conn *c = req->conn;
	int ret = stream_check(req);
	char line[24];
	int hl;

	if (ret || !len)
		return ret < 0 ? ret : 0;
	if (req->stream_mode == PTV_HTTP_STREAM_CHUNKED) {
		hl = snprintf(line, sizeof(line), "%zx\r\n", len);
		ret = http_conn_queue(c, line, (size_t)hl);
	}
	if (!ret)
		ret = http_conn_queue_blob(c, blob, off, len);
	if (!ret && req->stream_mode == PTV_HTTP_STREAM_CHUNKED)
		ret = http_conn_queue_static(c, "\r\n", 2);
	if (!ret)
		http_conn_flush(c);
	return ret;
}

int ptv_http_stream_end(struct ptv_http_req *req)
{
	struct http_conn *c = req->conn;
	int ret = stream_check(req);

	if (ret < 0)
		return ret;
	req->stream_ended = true;
	if (req->stream_mode == PTV_HTTP_STREAM_CHUNKED && !ret)
		http_conn_queue_static(c, "0\r\n\r\n", 5);
	http_conn_flush(c);
	return 0;
}

int ptv_http_req_fd(const struct ptv_http_req *req)
{
	return req->conn->fd;
}

void ptv_http_set_close(struct ptv_http_req *req)
{
	req->keep_alive = false;
}

void ptv_http_stream_abort(struct ptv_http_req *req)
{
	http_conn_close(req->conn, true);
}

int ptv_http_stream_set_zerocopy(struct ptv_http_req *req, bool on)
{
	if (on && !ptv_reactor_features(req->conn->srv->r)->sendmsg_zc)
		return -EOPNOTSUPP;
	req->conn->zc = on;
	return 0;
}

int ptv_http_stream_set_splice(struct ptv_http_req *req, bool on)
{
	struct http_conn *c = req->conn;
	int fl = fcntl(c->fd, F_GETFL);

	/* sendfile() has no MSG_NOSIGNAL: a viewer that reset would kill the process with
	 * SIGPIPE. plextv serve ignores it at start; any other user of splice mode must too. */
	if (on)
		signal(SIGPIPE, SIG_IGN);
	/* sendfile() runs on the reactor thread: it must never wait for the peer. io_uring's
	 * own socket operations poll as before on a non-blocking socket. */
	if (fl < 0 || fcntl(c->fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		return -errno;
	c->splice = on;
	return 0;
}

size_t ptv_http_stream_queued(const struct ptv_http_req *req)
{
	return req->conn->out_bytes;
}

/* ---- accessors ---- */

unsigned ptv_http_req_method(const struct ptv_http_req *req)
{
	return req->method;
}

const char *ptv_http_req_path(const struct ptv_http_req *req)
{
	return req->path.data ? req->path.data : "/";
}

const char *ptv_http_req_query(const struct ptv_http_req *req)
{
	const char *q = req->url.data ? strchr(req->url.data, '?') : NULL;

	return q ? q + 1 : "";
}

const char *ptv_http_req_header(const struct ptv_http_req *req, const char *name)
{
	for (unsigned i = 0; i < req->nhdrs; i++) {
		if (!strcasecmp(req->hbuf.data + req->hdrs[i].name_off, name))
			return req->hbuf.data + req->hdrs[i].val_off;
	}
	return NULL;
}

int ptv_http_req_query_param(const struct ptv_http_req *req, const char *name, char *buf,
			     size_t len)
{
	const char *q = ptv_http_req_query(req);
	size_t nlen = strlen(name);

	while (*q) {
		const char *amp = strchrnul(q, '&');
		const char *eq = memchr(q, '=', (size_t)(amp - q));
		size_t klen = eq ? (size_t)(eq - q) : (size_t)(amp - q);

		if (klen == nlen && !strncmp(q, name, nlen)) {
			struct ptv_buf v = {0};
			int ret = eq ? url_decode(eq + 1, (size_t)(amp - eq - 1), &v, true) : 0;

			if (!ret)
				ret = (int)v.len;
			if (ret >= 0 && len)
				snprintf(buf, len, "%.*s", (int)v.len, v.data ? v.data : "");
			ptv_buf_free(&v);
			return ret;
		}
		q = *amp ? amp + 1 : amp;
	}
	return -ENOENT;
}

const struct ptv_buf *ptv_http_req_body(const struct ptv_http_req *req)
{
	return &req->body;
}

const struct sockaddr_storage *ptv_http_req_peer(const struct ptv_http_req *req)
{
	return &req->conn->peer;
}

const struct sockaddr_storage *ptv_http_req_local(const struct ptv_http_req *req)
{
	return &req->conn->local;
}

struct ptv_reactor *ptv_http_req_reactor(const struct ptv_http_req *req)
{
	return req->conn->srv->r;
}

void ptv_http_limits_from_config(struct ptv_http_limits *l, const struct ptv_config *c)
{
	l->header_max_bytes = c->header_max_bytes;
	l->header_max_count = c->header_max_count;
	l->url_max_bytes = c->url_max_bytes;
	l->body_max_bytes = c->body_max_bytes;
	l->header_timeout_ms = c->header_timeout_ms;
	l->idle_timeout_ms = c->idle_timeout_ms;
	l->write_timeout_ms = c->write_timeout_ms;
}
