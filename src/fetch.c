/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Blocking playlist/guide fetcher (fetch.h).
 *
 * Bytes flow transfer → body pipeline → sink. The pipeline holds back the first two bytes
 * until it knows whether the body is a gzip file (1f 8b); if so it inflates it in 64 KiB
 * steps, otherwise it passes data straight through. Either way every byte handed to the sink
 * is counted against max_bytes, which is what makes a gzip bomb (or a Content-Encoding bomb,
 * which libcurl has already inflated) end in -EFBIG instead of filling memory or the disk.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "plextv/build-config.h"
#include "plextv/common.h"
#include "plextv/fetch.h"
#include "plextv/log.h"
#include "plextv/redact.h"

#define MOD	   "fetch"
#define ZCHUNK	   (64u * 1024)
#define FILE_CHUNK (64u * 1024)

struct fetch_body {
	int (*sink)(const char *data, size_t len, void *ctx);
	void *ctx;
	uint64_t max_bytes;
	uint64_t bytes;
	int err;	       /* sink error, -EFBIG, -EBADMSG or -ENOMEM: stops the transfer */
	bool sink_failed;      /* err came from the sink: the caller\'s own decision */
	unsigned char head[2]; /* first bytes, held until the gzip magic is known */
	size_t n_head;
	bool decided;
	bool gzip;
	bool z_ready;
	bool z_end; /* the last gzip member ended */
	z_stream z;
	unsigned char *zout;
};

static void body_init(struct fetch_body *b, int (*sink)(const char *, size_t, void *), void *ctx,
		      uint64_t max_bytes)
{
	memset(b, 0, sizeof(*b));
	b->sink = sink;
	b->ctx = ctx;
	b->max_bytes = max_bytes;
}

static void body_deinit(struct fetch_body *b)
{
	if (b->z_ready)
		inflateEnd(&b->z);
	free(b->zout);
	b->zout = NULL;
	b->z_ready = false;
}

static int body_deliver(struct fetch_body *b, const void *data, size_t len)
{
	int rc;

	if (!len)
		return 0;
	if (len > b->max_bytes - b->bytes)
		return b->err = -EFBIG;
	b->bytes += len;
	rc = b->sink(data, len, b->ctx);
	if (rc < 0) {
		b->err = rc;
		b->sink_failed = true;
	}
	return b->err;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* After a member ends: another member follows, or zero padding (tar-style), or garbage. */
static int body_next_member(struct fetch_body *b)
{
	if (all_zero(b->z.next_in, b->z.avail_in)) {
		b->z.avail_in = 0;
		return 0;
	}
	if (inflateReset(&b->z) != Z_OK)
		return b->err = -EBADMSG;
	b->z_end = false;
	return 0;
}

static int body_inflate(struct fetch_body *b, const unsigned char *data, size_t len)
{
	b->z.next_in = (unsigned char *)data;
	b->z.avail_in = (uInt)len;
	while (b->z.avail_in && !b->err) {
		size_t out;
		int zr;

		if (b->z_end && body_next_member(b))
			break;
		if (!b->z.avail_in)
			break;
		b->z.next_out = b->zout;
		b->z.avail_out = ZCHUNK;
		zr = inflate(&b->z, Z_NO_FLUSH);
		out = ZCHUNK - b->z.avail_out;
		if (zr == Z_STREAM_END)
			b->z_end = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return b->err = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
		if (body_deliver(b, b->zout, out))
			break;
		if (zr == Z_BUF_ERROR && !out) /* no progress possible: wait for more input */
			break;
	}
	return b->err;
}

/* Feeds @len bytes, which inflate() may read in pieces larger than uInt on 64-bit: split. */
static int body_pass(struct fetch_body *b, const unsigned char *data, size_t len)
{
	if (!b->gzip)
		return body_deliver(b, data, len);
	while (len && !b->err) {
		size_t n = PTV_MIN(len, (size_t)1 << 30);

		body_inflate(b, data, n);
		data += n;
		len -= n;
	}
	return b->err;
}

static int body_decide(struct fetch_body *b)
{
	b->decided = true;
	b->gzip = b->n_head == 2 && b->head[0] == 0x1f && b->head[1] == 0x8b;
	if (b->gzip) {
		b->zout = malloc(ZCHUNK);
		if (!b->zout)
			return b->err = -ENOMEM;
		/* 15 + 32: zlib or gzip header, detected; full 32 KiB window */
		if (inflateInit2(&b->z, 15 + 32) != Z_OK)
			return b->err = -ENOMEM;
		b->z_ready = true;
	}
	return body_pass(b, b->head, b->n_head);
}

static int body_write(struct fetch_body *b, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (b->err)
		return b->err;
	while (!b->decided && len) {
		b->head[b->n_head++] = *p++;
		len--;
		if (b->n_head == 2 && body_decide(b))
			return b->err;
	}
	return len ? body_pass(b, p, len) : 0;
}

static int body_finish(struct fetch_body *b)
{
	if (b->err)
		return b->err;
	if (!b->decided && body_decide(b))
		return b->err;
	if (b->gzip && !b->z_end) /* truncated .gz */
		return b->err = -EBADMSG;
	return 0;
}

/* ---- local files ---- */

static bool is_file_url(const char *url)
{
	return !strncasecmp(url, "file:", 5) || !strstr(url, "://");
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "file:///p", "file://localhost/p" or a plain path → a malloc'd, percent-decoded path. */
static int file_path(const char *url, char **out)
{
	const char *p = url;
	bool decode = !strncasecmp(p, "file:", 5); /* a plain path may hold a literal '%' */
	char *path, *w;

	if (!strncasecmp(p, "file://", 7)) {
		p += 7;
		if (!strncasecmp(p, "localhost/", 10))
			p += 9;
		if (*p != '/')
			return -EINVAL; /* file://host/… names another machine */
	} else if (!strncasecmp(p, "file:", 5)) {
		p += 5;
	}
	if (!*p)
		return -EINVAL;
	path = w = strdup(p);
	if (!path)
		return -ENOMEM;
	for (const char *r = p; *r; r++) {
		int hi, lo;

		if (decode && *r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	if (strlen(path) != (size_t)(w - path)) { /* %00 */
		free(path);
		return -EINVAL;
	}
	*out = path;
	return 0;
}

static void http_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int file_read_all(int fd, struct fetch_body *b)
{
	char *buf = malloc(FILE_CHUNK);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf, FILE_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = body_finish(b);
			break;
		}
		rc = body_write(b, buf, (size_t)n);
		if (rc)
			break;
	}
	free(buf);
	return rc;
}

/*
 * Local files get the same pipeline (a guide may be epg.xml.gz on disk) and the same
 * conditional logic: the mtime stands in for Last-Modified, so a scheduled refresh of an
 * unchanged file is a no-op.
 */
static int fetch_file(const struct ptv_fetch_opts *o, struct fetch_body *b,
		      struct ptv_fetch_result *res)
{
	struct stat st;
	char *path = NULL;
	int fd = -1, rc;

	rc = file_path(o->url, &path);
	if (rc)
		goto out;
	res->final_url = strdup(path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto out;
	}
	if (S_ISREG(st.st_mode))
		http_date(st.st_mtime, res->last_modified, sizeof(res->last_modified));
	if (o->last_modified && res->last_modified[0] &&
	    !strcmp(o->last_modified, res->last_modified)) {
		res->not_modified = true;
		goto out;
	}
	rc = file_read_all(fd, b);
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/* ---- HTTP ---- */

struct fetch_http {
	CURL *curl;
	struct fetch_body *body;
	struct ptv_fetch_result *res;
	bool swallow; /* this response's body is not the payload (3xx, 304) */
	bool first_write;
	bool stalled;
	uint64_t stall_ms;
	uint64_t last_progress_ms; /* when the last body byte arrived (or the transfer began) */
	curl_off_t last_dlnow;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct fetch_http *h = ud;
	size_t len = size * nmemb;

	if (h->first_write) {
		long status = 0;

		h->first_write = false;
		curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
		h->swallow = status < 200 || status >= 300;
	}
	if (h->swallow)
		return len;
	return body_write(h->body, data, len) ? 0 : len;
}

/*
 * Stall timeout. libcurl's LOW_SPEED_* averages the rate over several seconds, so a server that
 * sends a few bytes and then goes quiet is caught late; this is called at least once a second
 * and measures the time since the last byte itself.
 */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct fetch_http *h = ud;
	uint64_t now = ptv_now_ms();

	if (dlnow != h->last_dlnow) {
		h->last_dlnow = dlnow;
		h->last_progress_ms = now;
		return 0;
	}
	if (now - h->last_progress_ms < h->stall_ms)
		return 0;
	h->stalled = true;
	return 1;
}

/* Copies a header's value (trimmed) into @dst if it fits, else leaves "". */
static void header_copy(const char *v, size_t len, char *dst, size_t cap)
{
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
		       v[len - 1] == '\t'))
		len--;
	dst[0] = '\0';
	if (len >= cap)
		return;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static bool header_is(const char *line, size_t len, const char *name, size_t *vpos)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
		return false;
	*vpos = n + 1;
	return true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
	struct fetch_http *h = ud;
	size_t len = size * nmemb, v;

	if (len >= 5 && !strncasecmp(line, "HTTP/", 5)) { /* a new response (redirect hop) */
		h->res->etag[0] = '\0';
		h->res->last_modified[0] = '\0';
		h->first_write = true;
	} else if (header_is(line, len, "etag", &v)) {
		header_copy(line + v, len - v, h->res->etag, sizeof(h->res->etag));
	} else if (header_is(line, len, "last-modified", &v)) {
		header_copy(line + v, len - v, h->res->last_modified,
			    sizeof(h->res->last_modified));
	}
	return len;
}

static bool header_line_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

/* Appends "@prefix@value" after checking it cannot split into two header lines. */
static int slist_add(struct curl_slist **l, const char *prefix, const char *value)
{
	char buf[1024];
	struct curl_slist *n;
	int len = snprintf(buf, sizeof(buf), "%s%s", prefix, value);

	if (len < 0 || (size_t)len >= sizeof(buf) || !header_line_ok(buf))
		return -EINVAL;
	n = curl_slist_append(*l, buf);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

static int build_headers(const struct ptv_fetch_opts *o, struct curl_slist **out)
{
	struct curl_slist *l = NULL;
	int rc = 0;

	for (size_t i = 0; i < o->n_headers && !rc; i++)
		rc = slist_add(&l, "", o->headers[i]);
	if (!rc && o->etag && o->etag[0])
		rc = slist_add(&l, "If-None-Match: ", o->etag);
	if (!rc && o->last_modified && o->last_modified[0])
		rc = slist_add(&l, "If-Modified-Since: ", o->last_modified);
	if (rc) {
		curl_slist_free_all(l);
		return rc;
	}
	*out = l;
	return 0;
}

static long ms_or(unsigned v, unsigned def)
{
	return (long)(v ? v : def);
}

static int setup_curl(CURL *c, const struct ptv_fetch_opts *o, struct fetch_http *h,
		      struct curl_slist *hdrs, char *errbuf)
{
	CURLcode e = CURLE_OK;

	h->stall_ms = (uint64_t)ms_or(o->stall_timeout_ms, PTV_FETCH_STALL_TIMEOUT_MS_DEFAULT);
	h->last_progress_ms = ptv_now_ms();

#define SET(opt, val) (e = e ? e : curl_easy_setopt(c, opt, val))
	SET(CURLOPT_URL, o->url);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS,
	    o->no_redirects ? 0L : ms_or(o->max_redirs, PTV_FETCH_MAX_REDIRS_DEFAULT));
	/* "" disables proxies even when http_proxy/https_proxy/ALL_PROXY are set. */
	SET(CURLOPT_PROXY, o->proxy ? o->proxy : "");
	SET(CURLOPT_CONNECTTIMEOUT_MS,
	    ms_or(o->connect_timeout_ms, PTV_FETCH_CONNECT_TIMEOUT_MS_DEFAULT));
	SET(CURLOPT_TIMEOUT_MS, ms_or(o->timeout_ms, PTV_FETCH_TIMEOUT_MS_DEFAULT));
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, h);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->body->max_bytes);
	SET(CURLOPT_ACCEPT_ENCODING, ""); /* every encoding this libcurl can undo */
	SET(CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "PlexTV/" PTV_VERSION);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_FAILONERROR, 1L);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, h);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, h);
#undef SET
	return e == CURLE_OK ? 0 : e == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

static int http_status_err(long status)
{
	if (status == 401 || status == 403)
		return -EACCES;
	if (status == 404 || status == 410)
		return -ENOENT;
	return -EIO;
}

static int curl_err(CURLcode e, const struct fetch_http *h)
{
	long os_errno = 0;

	switch (e) {
	case CURLE_OK:
		return 0;
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EPROTONOSUPPORT;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &os_errno);
		return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		return h->stalled ? -ETIMEDOUT : -ECANCELED;
	case CURLE_TOO_MANY_REDIRECTS:
		return -ELOOP;
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	case CURLE_HTTP_RETURNED_ERROR:
		return http_status_err(h->res->status);
	case CURLE_WRITE_ERROR:
		return h->body->err ? h->body->err : -EIO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return -ECONNRESET;
	case CURLE_BAD_CONTENT_ENCODING:
		return -EBADMSG;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* The transfer succeeded at the transport level: judge the final status. */
static int http_verdict(struct fetch_http *h)
{
	long status = h->res->status;

	if (status == 304) {
		h->res->not_modified = true;
		return 0;
	}
	if (status >= 200 && status < 300)
		return body_finish(h->body);
	return status >= 400 ? http_status_err(status) : -EIO; /* a 1xx/3xx we did not follow */
}

static void http_collect(struct fetch_http *h)
{
	char *url = NULL;

	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &h->res->status);
	if (curl_easy_getinfo(h->curl, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url)
		h->res->final_url = strdup(url);
}

static int fetch_http(const struct ptv_fetch_opts *o, struct fetch_body *b,
		      struct ptv_fetch_result *res, char *errbuf)
{
	struct fetch_http h = {.body = b, .res = res, .first_write = true};
	struct curl_slist *hdrs = NULL;
	CURLcode e;
	int rc;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
	rc = build_headers(o, &hdrs);
	if (rc)
		return rc;
	h.curl = curl_easy_init();
	if (!h.curl) {
		rc = -ENOMEM;
		goto out;
	}
	rc = setup_curl(h.curl, o, &h, hdrs, errbuf);
	if (rc)
		goto out;
	e = curl_easy_perform(h.curl);
	http_collect(&h);
	rc = e == CURLE_OK ? http_verdict(&h) : curl_err(e, &h);
	if (h.stalled)
		snprintf(errbuf, CURL_ERROR_SIZE, "no data for %llu ms",
			 (unsigned long long)h.stall_ms);
out:
	curl_easy_cleanup(h.curl);
	curl_slist_free_all(hdrs);
	return rc;
}

/* ---- entry point ---- */

void ptv_fetch_opts_init(struct ptv_fetch_opts *o)
{
	memset(o, 0, sizeof(*o));
}

void ptv_fetch_result_deinit(struct ptv_fetch_result *res)
{
	if (res)
		ptv_freep(&res->final_url);
}

static void fetch_report(const struct ptv_fetch_opts *o, const struct fetch_body *b,
			 struct ptv_fetch_result *res, int rc, const char *errbuf)
{
	char why[256];

	if (rc == -EFBIG)
		snprintf(why, sizeof(why), "body over the size limit");
	else if (res->status >= 300 && res->status != 304)
		snprintf(why, sizeof(why), "HTTP %ld", res->status);
	else if (b->err || !errbuf[0]) /* curl would only say "failure writing output" */
		snprintf(why, sizeof(why), "%s", ptv_strerror(rc));
	else
		snprintf(why, sizeof(why), "%s", errbuf);
	ptv_redact_text(why, res->error, sizeof(res->error));
	if (b->sink_failed || o->quiet) /* the caller stopped it, or reports it itself */
		return;
	/* ptv_log redacts the URL (user:pass@, password=, Xtream paths) on its way out. */
	ptv_warn(MOD, "%s: %s", o->url, res->error);
}

int ptv_fetch(const struct ptv_fetch_opts *o, int (*sink)(const char *data, size_t len, void *ctx),
	      void *ctx, struct ptv_fetch_result *res)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct fetch_body b;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!o || !o->url || !o->url[0] || !sink)
		return -EINVAL;
	body_init(&b, sink, ctx, o->max_bytes ? o->max_bytes : PTV_FETCH_MAX_BYTES_DEFAULT);
	if (is_file_url(o->url))
		rc = o->allow_file ? fetch_file(o, &b, res) : -EPERM;
	else
		rc = fetch_http(o, &b, res, errbuf);
	res->bytes = b.bytes;
	res->gunzipped = b.gzip;
	if (rc)
		fetch_report(o, &b, res, rc, errbuf);
	body_deinit(&b);
	return rc;
}
