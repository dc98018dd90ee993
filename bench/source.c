/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv-bench source`: the paced TS source every fan-out scenario feeds its relay from.
 *
 * A live channel: one timeline for everybody. Packets are produced at the target bitrate into a
 * ring on a fixed tick (default 20 ms) and each connection sends from its own cursor, starting at
 * the newest packet when it joins. HTTP mode answers any GET with a close-delimited 200; raw
 * mode (for GStreamer's tcpclientsrc) streams as soon as a connection is accepted.
 *
 * Fault injection for the smoke tests (times count from the first streaming connection, or from
 * the connection's own start for stall/drop):
 *   cc@T        skip one continuity counter value at T (every client sees one CC error)
 *   sync@T      break one sync byte at T (every client sees one sync error)
 *   stall@T+D:K stream K receives nothing between T and T+D
 *   drop@T:K    stream K is closed at T
 * Streams are numbered from 0 in the order they start: after the request in HTTP mode (so port
 * probes do not count), on accept in raw mode. In `fanout` stream 0 is the priming reader and
 * the swarm's clients are 1..N.
 *
 * A single epoll thread: the source serves one relay (or a few test clients), it is not what is
 * measured, and a plain loop keeps the pacing easy to reason about.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "tscheck.h"
#include "tsloop.h"

#define SRC_MAX_FAULTS 8

enum src_fault_kind {
	SRC_FAULT_CC = 1,
	SRC_FAULT_SYNC = 4,
	SRC_FAULT_STALL = 2,
	SRC_FAULT_DROP = 3,
};

struct src_fault {
	enum src_fault_kind kind;
	double at_s;
	double for_s;
	unsigned conn;
};

struct src_opts {
	uint16_t port;
	const char *file; /* path or "gen" */
	double bps;	  /* 0: the file's own rate */
	double duration_s;
	unsigned tick_ms;
	bool raw;
	unsigned max_clients;
	const char *stats_path;
	struct src_fault faults[SRC_MAX_FAULTS];
	unsigned nfaults;
};

struct src_client {
	int fd;
	unsigned id;
	bool streaming;
	uint64_t pos; /* stream offset of the next byte for this client */
	uint64_t start_ns;
	size_t hdr_off; /* bytes of the response header already sent */
	size_t req_len;
	char req[2048];
};

struct src_state {
	struct src_opts o;
	struct bench_ts_file file;
	struct bench_ts_loop loop;
	double bps;
	char path[PATH_MAX]; /* the default file's path (file.origin points here) */
	uint8_t *ring;
	size_t ring_size; /* a multiple of 188 */
	uint64_t head;	  /* bytes produced */
	uint64_t t0_ns;
	uint64_t first_stream_ns;
	int lfd, efd;
	struct src_client **clients;
	unsigned nclients;
	unsigned accepted;
	unsigned streams;
	unsigned dropped_lag;
	unsigned dropped_fault;
	uint64_t bytes_sent;
};

static const char src_http_hdr[] = "HTTP/1.0 200 OK\r\n"
				   "Content-Type: video/mp2t\r\n"
				   "Cache-Control: no-cache\r\n"
				   "Connection: close\r\n\r\n";

static void src_usage(FILE *f)
{
	fprintf(f, "usage: plextv-bench source --port P [--file TS|gen] [--bitrate MBITS]\n"
		   "       [--duration S] [--tick-ms MS] [--raw]\n"
		   "       [--fault cc@T|sync@T|stall@T+D:K|drop@T:K]\n"
		   "       [--stats FILE] [--max-clients N]\n");
}

static int src_parse_fault(const char *s, struct src_fault *f)
{
	unsigned conn = 0;
	int n = 0;

	memset(f, 0, sizeof(*f));
	if (sscanf(s, "cc@%lf%n", &f->at_s, &n) == 1 && !s[n]) {
		f->kind = SRC_FAULT_CC;
	} else if (sscanf(s, "sync@%lf%n", &f->at_s, &n) == 1 && !s[n]) {
		f->kind = SRC_FAULT_SYNC;
	} else if (sscanf(s, "stall@%lf+%lf%n", &f->at_s, &f->for_s, &n) == 2) {
		f->kind = SRC_FAULT_STALL;
	} else if (sscanf(s, "drop@%lf%n", &f->at_s, &n) == 1) {
		f->kind = SRC_FAULT_DROP;
	} else {
		return -EINVAL;
	}
	if (s[n] == ':' && sscanf(s + n + 1, "%u", &conn) != 1)
		return -EINVAL;
	f->conn = conn;
	return f->at_s >= 0 && f->for_s >= 0 ? 0 : -EINVAL;
}

static int src_parse(int argc, char **argv, struct src_opts *o)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"file", required_argument, NULL, 'f'},
		{"bitrate", required_argument, NULL, 'b'},
		{"duration", required_argument, NULL, 'd'},
		{"tick-ms", required_argument, NULL, 't'},
		{"raw", no_argument, NULL, 'r'},
		{"fault", required_argument, NULL, 'F'},
		{"stats", required_argument, NULL, 's'},
		{"max-clients", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned port = 0;
	double mbps = 0;
	int c, ret = 0;

	memset(o, 0, sizeof(*o));
	o->duration_s = 60;
	o->tick_ms = 20;
	o->max_clients = 20000;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1 && !ret) {
		switch (c) {
		case 'p':
			ret = bench_parse_uint(optarg, 1, 65535, &port);
			break;
		case 'f':
			o->file = optarg;
			break;
		case 'b':
			ret = bench_parse_double(optarg, 0.01, 10000, &mbps);
			break;
		case 'd':
			ret = bench_parse_double(optarg, 0.1, 86400, &o->duration_s);
			break;
		case 't':
			ret = bench_parse_uint(optarg, 1, 1000, &o->tick_ms);
			break;
		case 'r':
			o->raw = true;
			break;
		case 's':
			o->stats_path = optarg;
			break;
		case 'm':
			ret = bench_parse_uint(optarg, 1, 1000000, &o->max_clients);
			break;
		case 'F':
			if (o->nfaults == SRC_MAX_FAULTS)
				ret = -E2BIG;
			else
				ret = src_parse_fault(optarg, &o->faults[o->nfaults++]);
			break;
		case 'h':
			return -ECANCELED;
		default:
			ret = -EINVAL;
			break;
		}
	}
	o->port = (uint16_t)port;
	o->bps = mbps * 1e6;
	if (ret || !o->port || optind != argc)
		return -EINVAL;
	return 0;
}

static int src_listen(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 4096) == -1) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int src_load(struct src_state *s)
{
	const char *file = s->o.file;
	int ret;

	if (!file) {
		snprintf(s->path, sizeof(s->path), "%s/ts/tsduck-test_input_test-064.ts",
			 bench_shared_data());
		file = s->path;
	}
	if (!strcmp(file, "gen")) {
		if (s->o.bps <= 0)
			return -EINVAL;
		ret = bench_ts_file_generate(s->o.bps, &s->file);
	} else {
		ret = bench_ts_file_load(file, &s->file);
	}
	if (ret) {
		fprintf(stderr, "source: cannot load %s: %s\n", file, ptv_strerror(ret));
		return ret;
	}
	ret = bench_ts_loop_init(&s->loop, &s->file, s->o.bps);
	if (ret) {
		fprintf(stderr, "source: %s has no PCR: give --bitrate\n", file);
		return ret;
	}
	s->bps = s->o.bps > 0 ? s->o.bps : s->file.rate_bps;
	return 0;
}

/* The ring holds the longest stall a fault asks for plus two seconds, and at least 8 MiB. */
static void src_ring_alloc(struct src_state *s)
{
	double secs = 2;
	unsigned i;

	for (i = 0; i < s->o.nfaults; i++)
		secs = PTV_MAX(secs, s->o.faults[i].for_s + 2);
	s->ring_size = (size_t)(s->bps / 8 * secs);
	s->ring_size = PTV_MAX(s->ring_size, (size_t)8 << 20);
	s->ring_size -= s->ring_size % BENCH_TS_PKT;
	s->ring = ptv_xmalloc(s->ring_size);
}

static void src_produce(struct src_state *s, uint64_t now)
{
	uint64_t due = (uint64_t)((double)(now - s->t0_ns) / 1e9 * s->bps / (BENCH_TS_PKT * 8));
	uint64_t have = s->head / BENCH_TS_PKT;
	uint64_t cap = s->ring_size / BENCH_TS_PKT / 2;

	/* After a long scheduling gap, do not rewrite more than half the ring in one go. */
	if (due > have + cap)
		have = due - cap, s->head = have * BENCH_TS_PKT;
	for (; have < due; have++) {
		bench_ts_loop_next(&s->loop, s->ring + s->head % s->ring_size);
		s->head += BENCH_TS_PKT;
	}
}

static void src_close(struct src_state *s, unsigned i)
{
	struct src_client *c = s->clients[i];

	close(c->fd);
	free(c);
	s->clients[i] = s->clients[--s->nclients];
}

static void src_start_stream(struct src_state *s, struct src_client *c, uint64_t now)
{
	unsigned i;

	c->streaming = true;
	c->id = s->streams++;
	c->pos = s->head;
	c->start_ns = now;
	if (s->first_stream_ns)
		return;
	s->first_stream_ns = now;
	for (i = 0; i < s->o.nfaults; i++) {
		const struct src_fault *f = &s->o.faults[i];

		uint64_t at = s->loop.out_pkts + (uint64_t)(f->at_s * s->bps / 1504);

		if (f->kind == SRC_FAULT_CC)
			s->loop.cc_fault = at;
		else if (f->kind == SRC_FAULT_SYNC)
			s->loop.sync_fault = at;
	}
}

static void src_accept(struct src_state *s, uint64_t now)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	struct src_client *c;
	int fd;

	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (s->nclients == s->o.max_clients) {
			close(fd);
			continue;
		}
		c = ptv_xcalloc(1, sizeof(*c));
		c->fd = fd;
		s->accepted++;
		c->hdr_off = s->o.raw ? sizeof(src_http_hdr) - 1 : 0;
		ev.data.ptr = c;
		epoll_ctl(s->efd, EPOLL_CTL_ADD, fd, &ev);
		s->clients[s->nclients++] = c;
		if (s->o.raw)
			src_start_stream(s, c, now);
	}
}

/* Reads the request (HTTP mode) or notices the peer closing. Returns false to close. */
static bool src_read(struct src_state *s, struct src_client *c, uint64_t now)
{
	char sink[4096];
	ssize_t r;

	for (;;) {
		if (c->streaming || c->req_len >= sizeof(c->req) - 1)
			r = recv(c->fd, sink, sizeof(sink), 0);
		else
			r = recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
		if (r == 0)
			return false;
		if (r < 0)
			return errno == EAGAIN;
		if (c->streaming || c->req_len >= sizeof(c->req) - 1)
			continue;
		c->req_len += (size_t)r;
		c->req[c->req_len] = '\0';
		if (strstr(c->req, "\r\n\r\n")) {
			if (strncmp(c->req, "GET ", 4))
				return false;
			src_start_stream(s, c, now);
		}
	}
}

static bool src_fault_active(const struct src_state *s, const struct src_client *c,
			     enum src_fault_kind kind, uint64_t now)
{
	double t = (double)(now - c->start_ns) / 1e9;
	unsigned i;

	for (i = 0; i < s->o.nfaults; i++) {
		const struct src_fault *f = &s->o.faults[i];

		if (f->kind != kind || f->conn != c->id || t < f->at_s)
			continue;
		if (kind == SRC_FAULT_DROP || t < f->at_s + f->for_s)
			return true;
	}
	return false;
}

static int src_send_hdr(struct src_client *c)
{
	size_t len = sizeof(src_http_hdr) - 1;
	ssize_t w;

	while (c->hdr_off < len) {
		w = send(c->fd, src_http_hdr + c->hdr_off, len - c->hdr_off, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? -EAGAIN : -errno;
		c->hdr_off += (size_t)w;
	}
	return 0;
}

/* Sends what the client has not had yet. Returns 0, -EAGAIN (socket full) or -errno. */
static int src_send_data(struct src_state *s, struct src_client *c)
{
	struct iovec iov[2];
	struct msghdr msg = {.msg_iov = iov};
	size_t off, n, first;
	ssize_t w;

	while (c->pos < s->head) {
		off = c->pos % s->ring_size;
		n = PTV_MIN(s->head - c->pos, (uint64_t)1 << 20);
		first = PTV_MIN(n, s->ring_size - off);
		iov[0] = (struct iovec){s->ring + off, first};
		iov[1] = (struct iovec){s->ring, n - first};
		msg.msg_iovlen = n > first ? 2 : 1;
		w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? -EAGAIN : -errno;
		c->pos += (uint64_t)w;
		s->bytes_sent += (uint64_t)w;
	}
	return 0;
}

/* Returns false when the client must be closed. */
static bool src_serve(struct src_state *s, struct src_client *c, uint64_t now)
{
	int ret;

	if (!c->streaming)
		return true;
	if (src_fault_active(s, c, SRC_FAULT_DROP, now)) {
		s->dropped_fault++;
		return false;
	}
	if (s->head - c->pos > s->ring_size - (s->ring_size >> 3)) {
		s->dropped_lag++; /* too slow: its data is about to be overwritten */
		return false;
	}
	if (src_fault_active(s, c, SRC_FAULT_STALL, now))
		return true;
	ret = src_send_hdr(c);
	if (!ret)
		ret = src_send_data(s, c);
	return ret == 0 || ret == -EAGAIN;
}

static void src_tick(struct src_state *s, uint64_t now)
{
	unsigned i = 0;

	src_produce(s, now);
	while (i < s->nclients) {
		if (src_serve(s, s->clients[i], now))
			i++;
		else
			src_close(s, i);
	}
}

static void src_events(struct src_state *s, struct epoll_event *ev, int n, uint64_t now)
{
	unsigned j;
	int i;

	for (i = 0; i < n; i++) {
		struct src_client *c = ev[i].data.ptr;

		if (!c) {
			src_accept(s, now);
			continue;
		}
		if (src_read(s, c, now) && !(ev[i].events & (EPOLLHUP | EPOLLERR)))
			continue;
		for (j = 0; j < s->nclients; j++) {
			if (s->clients[j] == c) {
				src_close(s, j);
				break;
			}
		}
	}
}

static void src_loop(struct src_state *s)
{
	uint64_t tick = (uint64_t)s->o.tick_ms * 1000000u;
	uint64_t end = s->t0_ns + (uint64_t)(s->o.duration_s * 1e9);
	uint64_t next = s->t0_ns, now;
	struct epoll_event ev[256];
	int n, wait_ms;

	while (!bench_interrupted && (now = ptv_now_ns()) < end) {
		if (now >= next) {
			src_tick(s, now);
			next += tick;
			if (next < now)
				next = now + tick;
		}
		wait_ms = (int)((next > now ? next - now : 0) / 1000000u);
		n = epoll_wait(s->efd, ev, PTV_ARRAY_SIZE(ev), wait_ms);
		if (n > 0)
			src_events(s, ev, n, ptv_now_ns());
	}
}

static void src_write_stats(const struct src_state *s)
{
	json_error_t err;
	json_t *j;

	if (!s->o.stats_path)
		return;
	j = json_pack_ex(
		&err, 0, "{s:s, s:f, s:f, s:i, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:I, s:I}",
		"file", s->file.origin, "bitrate_bps", s->bps, "natural_rate_bps", s->file.rate_bps,
		"pcr_pid", s->file.pcr_pid, "bytes_produced", (json_int_t)s->head, "bytes_sent",
		(json_int_t)s->bytes_sent, "passes", (json_int_t)s->loop.pass, "clients_accepted",
		(int)s->accepted, "streams", (int)s->streams, "dropped_lag", (int)s->dropped_lag,
		"dropped_fault", (int)s->dropped_fault, "cc_faults", (json_int_t)s->loop.cc_faults,
		"sync_faults", (json_int_t)s->loop.sync_faults);
	if (!j)
		fprintf(stderr, "source: stats: %s\n", err.text);
	else if (bench_json_write(j, s->o.stats_path))
		fprintf(stderr, "source: cannot write %s\n", s->o.stats_path);
	json_decref(j);
}

static int src_setup(struct src_state *s)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int ret;

	ret = src_load(s);
	if (ret)
		return ret;
	src_ring_alloc(s);
	s->clients = ptv_xcalloc(s->o.max_clients, sizeof(*s->clients));
	s->lfd = src_listen(s->o.port);
	if (s->lfd < 0) {
		fprintf(stderr, "source: cannot listen on 127.0.0.1:%u: %s\n", s->o.port,
			ptv_strerror(s->lfd));
		return s->lfd;
	}
	s->efd = epoll_create1(EPOLL_CLOEXEC);
	if (s->efd == -1)
		return -errno;
	epoll_ctl(s->efd, EPOLL_CTL_ADD, s->lfd, &ev);
	return 0;
}

static void src_teardown(struct src_state *s)
{
	while (s->nclients)
		src_close(s, s->nclients - 1);
	if (s->lfd > 0)
		close(s->lfd);
	if (s->efd > 0)
		close(s->efd);
	free(s->clients);
	free(s->ring);
	bench_ts_file_free(&s->file);
}

int bench_cmd_source(int argc, char **argv)
{
	struct src_state *s = ptv_xcalloc(1, sizeof(*s));
	int ret;

	ret = src_parse(argc, argv, &s->o);
	if (ret) {
		src_usage(ret == -ECANCELED ? stdout : stderr);
		free(s);
		return ret == -ECANCELED ? BENCH_EX_OK : BENCH_EX_USAGE;
	}
	ret = src_setup(s);
	if (ret)
		goto out;
	printf("source: 127.0.0.1:%u %s %.3f Mbit/s (file rate %.3f, pcr pid %d)%s\n", s->o.port,
	       s->file.origin, s->bps / 1e6, s->file.rate_bps / 1e6, s->file.pcr_pid,
	       s->o.raw ? " raw" : "");
	fflush(stdout);
	s->t0_ns = ptv_now_ns();
	src_loop(s);
	src_write_stats(s);
out:
	src_teardown(s);
	free(s);
	return ret ? BENCH_EX_FAIL : BENCH_EX_OK;
}
