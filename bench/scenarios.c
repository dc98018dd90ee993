/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The PlexTV scenarios beyond B1 (bench/README.md): tune (B4), slow (B3), churn (B5), api (B6),
 * lineup (B7), epg (guide), zerocopy (B8), bpf (B9) and all. Each starts what it needs on
 * loopback (paced source, `plextv serve` on a temporary data dir, nginx, wrk, the swarm), is
 * bounded in time, stops everything by pid and writes one JSON result.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "peers.h"
#include "swarm.h"

/* ---- options shared by the scenarios ---- */
struct sc_opts {
	double mbps, duration_s, secs;
	unsigned clients, tunes, rate, connections, channels, programmes, entries;
	unsigned write_timeout_ms, linger_ms;
	const char *json_path, *out_dir, *send_mode, *bpf;
	const char *list; /* comma-separated client counts (zerocopy, bpf) */
	bool keep_tmp;
};

static void sc_defaults(struct sc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mbps = 8;
	o->duration_s = 15;
	o->secs = 5;
	o->clients = 100;
	o->tunes = 30;
	o->rate = 50;
	o->connections = 64;
	o->channels = 1000;
	o->programmes = 1000;
	o->entries = 100000;
	o->write_timeout_ms = 5000;
	o->linger_ms = 300;
	o->list = "100,1000";
}

static int sc_parse(int argc, char **argv, struct sc_opts *o, const char *usage)
{
	static const struct option opts[] = {
		{"bitrate", required_argument, NULL, 'b'},
		{"duration", required_argument, NULL, 'd'},
		{"secs", required_argument, NULL, 's'},
		{"clients", required_argument, NULL, 'c'},
		{"tunes", required_argument, NULL, 'n'},
		{"rate", required_argument, NULL, 'r'},
		{"connections", required_argument, NULL, 'C'},
		{"channels", required_argument, NULL, 'H'},
		{"programmes", required_argument, NULL, 'P'},
		{"entries", required_argument, NULL, 'E'},
		{"write-timeout-ms", required_argument, NULL, 'W'},
		{"linger-ms", required_argument, NULL, 'L'},
		{"json", required_argument, NULL, 'j'},
		{"out", required_argument, NULL, 'o'},
		{"send-mode", required_argument, NULL, 'm'},
		{"bpf", required_argument, NULL, 'B'},
		{"list", required_argument, NULL, 'l'},
		{"keep-tmp", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, ret = 0;

	sc_defaults(o);
	while (!ret && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			ret = bench_parse_double(optarg, 0.01, 1000, &o->mbps);
			break;
		case 'd':
			ret = bench_parse_double(optarg, 1, 3600, &o->duration_s);
			break;
		case 's':
			ret = bench_parse_double(optarg, 1, 3600, &o->secs);
			break;
		case 'c':
			ret = bench_parse_uint(optarg, 1, 100000, &o->clients);
			break;
		case 'n':
			ret = bench_parse_uint(optarg, 1, 100000, &o->tunes);
			break;
		case 'r':
			ret = bench_parse_uint(optarg, 1, 100000, &o->rate);
			break;
		case 'C':
			ret = bench_parse_uint(optarg, 1, 100000, &o->connections);
			break;
		case 'H':
			ret = bench_parse_uint(optarg, 1, 1000000, &o->channels);
			break;
		case 'P':
			ret = bench_parse_uint(optarg, 1, 1000000, &o->programmes);
			break;
		case 'E':
			ret = bench_parse_uint(optarg, 1, 10000000, &o->entries);
			break;
		case 'W':
			ret = bench_parse_uint(optarg, 100, 600000, &o->write_timeout_ms);
			break;
		case 'L':
			ret = bench_parse_uint(optarg, 0, 600000, &o->linger_ms);
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 'o':
			o->out_dir = optarg;
			break;
		case 'm':
			o->send_mode = optarg;
			break;
		case 'B':
			o->bpf = optarg;
			break;
		case 'l':
			o->list = optarg;
			break;
		case 'k':
			o->keep_tmp = true;
			break;
		case 'h':
			printf("%s", usage);
			return -ECANCELED;
		default:
			ret = -EINVAL;
		}
	}
	if (!ret && optind != argc)
		ret = -EINVAL;
	if (ret)
		fprintf(stderr, "%s", usage);
	return ret;
}

static int sc_exit(int ret)
{
	return ret == -ECANCELED ? BENCH_EX_OK
	       : ret == -EINVAL	 ? BENCH_EX_USAGE
	       : ret == -ENOENT	 ? BENCH_EX_UNAVAILABLE
	       : ret		 ? BENCH_EX_FAIL
				 : BENCH_EX_OK;
}

static double ms_since(uint64_t t0)
{
	return (double)(ptv_now_ns() - t0) / 1e6;
}

/* ---- fixture: paced source + plextv serve with a one-channel lineup ---- */
struct fixture {
	char tmpdir[PATH_MAX];
	uint16_t src_port;
	pid_t src_pid;
	struct bench_relay relay;
	const char *extra[24];
	unsigned nextra;
	char wt[32], lg[32];
};

static void fx_raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int fx_source(struct fixture *f, double mbps, double secs)
{
	char exe[PATH_MAX], port[16], rate[32], dur[32], log[PATH_MAX + 16];
	const char *argv[] = {exe,  "source",	  "--port", port, "--bitrate",
			      rate, "--duration", dur,	    NULL};
	struct bench_spawn_opts so = {.log_path = log};
	int ret = bench_self_exe(exe, sizeof(exe));

	if (!ret)
		ret = bench_free_port(&f->src_port);
	if (ret)
		return ret;
	snprintf(port, sizeof(port), "%u", f->src_port);
	snprintf(rate, sizeof(rate), "%.6f", mbps);
	snprintf(dur, sizeof(dur), "%.0f", secs + 120);
	snprintf(log, sizeof(log), "%s/source.log", f->tmpdir);
	ret = bench_spawn(argv, &so, &f->src_pid);
	return ret ? ret : bench_wait_port(f->src_port, 10000);
}

/* Starts source and relay; @o gives bitrate, send mode, bpf, write timeout and linger. */
static int fx_start(struct fixture *f, const struct sc_opts *o, double secs)
{
	int ret;

	fx_raise_nofile();
	ret = bench_tmpdir(f->tmpdir, sizeof(f->tmpdir));
	if (!ret)
		ret = fx_source(f, o->mbps, secs);
	if (ret)
		return ret;
	bench_relay_parse("plextv", &f->relay);
	snprintf(f->wt, sizeof(f->wt), "%u", o->write_timeout_ms);
	snprintf(f->lg, sizeof(f->lg), "%u", o->linger_ms);
	f->extra[f->nextra++] = "--write-timeout-ms";
	f->extra[f->nextra++] = f->wt;
	f->extra[f->nextra++] = "--linger-ms";
	f->extra[f->nextra++] = f->lg;
	f->extra[f->nextra] = NULL;
	f->relay.extra = f->extra;
	f->relay.send_mode = o->send_mode;
	f->relay.bpf = o->bpf;
	ret = bench_relay_start(&f->relay, f->tmpdir, f->src_port);
	if (ret)
		fprintf(stderr, "plextv did not start: %s\n", ptv_strerror(ret));
	return ret;
}

static void fx_stop(struct fixture *f, bool keep)
{
	bench_relay_stop(&f->relay);
	if (f->src_pid > 0)
		bench_stop(f->src_pid, 2000);
	f->src_pid = 0;
	if (!f->tmpdir[0])
		return;
	if (keep)
		fprintf(stderr, "files kept in %s\n", f->tmpdir);
	else
		bench_rmtree(f->tmpdir);
}

static double fx_metric(const struct fixture *f, const char *name, bool max)
{
	return bench_metric_get(f->relay.port, name, max);
}

/* A background swarm of @n healthy viewers on /auto/v1 for @secs. */
static int fx_swarm(const struct fixture *f, unsigned n, double secs, double warmup,
		    struct bench_swarm **sw)
{
	struct bench_swarm_opts so;

	bench_swarm_opts_default(&so);
	so.clients = n;
	so.duration_s = secs;
	if (warmup > 0)
		so.warmup_s = warmup;
	if (bench_swarm_target(&so, "127.0.0.1", f->relay.port, f->relay.path, false))
		return -EINVAL;
	return bench_swarm_start(&so, sw);
}

/* Finishes a swarm and adds its summary (judged against the measured upstream rate). */
static void fx_swarm_json(struct bench_swarm *sw, double mbps, json_t *obj, const char *key)
{
	struct bench_swarm_result res;
	struct bench_swarm_summary s;
	json_t *j = json_object();
	unsigned i, below = 0;

	bench_swarm_finish(sw, &res);
	bench_swarm_summarize(&res, mbps, &s);
	bench_swarm_summary_json(&s, j);
	for (i = 0; i < res.n; i++)
		below += res.clients[i].delivered_mbps < 0.999 * mbps;
	json_object_set_new(j, "judged_against_mbps", json_real(mbps));
	json_object_set_new(j, "clients_below_99_9pct_of_upstream", json_integer(below));
	json_object_set_new(obj, key, j);
	printf("  %s: %u clients, delivered min %.3f p50 %.3f Mbit/s (upstream %.3f), below "
	       "99.9%% %u, stalls %llu, cc_errors %llu, dropped %u\n",
	       key, s.clients, s.mbps_min, s.mbps_p50, mbps, below, (unsigned long long)s.stalls,
	       (unsigned long long)s.cc_errors, s.dropped);
	bench_swarm_result_free(&res);
}

/* Upstream rate (ingest output) over a swarm's measurement window, from a thread. */
struct upthread {
	pthread_t th;
	uint16_t port;
	uint64_t from, until;
	struct bench_upmeter *m;
	bool started;
};

static void *up_run(void *arg)
{
	struct upthread *u = arg;

	bench_sleep_until(u->from);
	bench_upmeter_run(u->m, u->port, u->until, 250);
	return NULL;
}

static void up_start(struct upthread *u, const struct fixture *f, struct bench_swarm *sw)
{
	memset(u, 0, sizeof(*u));
	if (!sw)
		return;
	u->m = ptv_xcalloc(1, sizeof(*u->m));
	u->port = f->relay.port;
	u->from = bench_swarm_window_start(sw);
	u->until = bench_swarm_end(sw) - 100000000u;
	u->started = !pthread_create(&u->th, NULL, up_run, u);
}

static double up_finish(struct upthread *u)
{
	double v = NAN;

	if (u->started) {
		pthread_join(u->th, NULL);
		v = bench_upmeter_mbps(u->m);
	}
	free(u->m);
	u->m = NULL;
	u->started = false;
	return v;
}

static int sc_write(json_t *j, const char *path)
{
	int ret = 0;

	if (path) {
		ret = bench_json_write(j, path);
		if (ret)
			fprintf(stderr, "cannot write %s: %s\n", path, ptv_strerror(ret));
	}
	json_decref(j);
	return ret;
}

/* ---- a plain blocking client ---- */
static int sc_connect(uint16_t port, int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static int sc_get(int fd, const char *path)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);

	return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -EIO;
}

/* ---- tune (B4) ---- */

/* Tracks PAT -> PMT -> video keyframe in a TS byte stream. */
struct tsdec {
	uint8_t pkt[188];
	size_t have;
	bool locked, pat, pmt, key;
	int pmt_pid, video_pid, video_type;
};

static bool ts_keyframe(const uint8_t *p, size_t n, int type)
{
	size_t i;

	for (i = 0; i + 3 < n; i++) {
		if (p[i] || p[i + 1] || p[i + 2] != 1)
			continue;
		if (type == 0x1b && ((p[i + 3] & 0x1f) == 5 || (p[i + 3] & 0x1f) == 7))
			return true;
		if (type == 0x24 && ((p[i + 3] >> 1) & 0x3f) >= 16 &&
		    ((p[i + 3] >> 1) & 0x3f) <= 21)
			return true;
		if ((type == 0x02 || type == 0x01) && p[i + 3] == 0xb3)
			return true;
	}
	return false;
}

static void ts_packet(struct tsdec *d, const uint8_t *p)
{
	int pid = ((p[1] & 0x1f) << 8) | p[2];
	bool pusi = p[1] & 0x40;
	int afc = (p[3] >> 4) & 3;
	size_t off = 4;
	const uint8_t *s;
	size_t i, len, end;

	if (afc & 2) {
		if (p[4] > 0 && (p[5] & 0x40) && d->pmt && pid == d->video_pid)
			d->key = true; /* random_access_indicator */
		off = 5 + p[4];
	}
	if (!(afc & 1) || off >= 188)
		return;
	if (pid == 0 && pusi && !d->pat) {
		s = p + off + 1 + p[off];
		if (s + 12 > p + 188 || s[0] != 0)
			return;
		len = (size_t)(((s[1] & 0x0f) << 8) | s[2]);
		end = 3 + len - 4;
		for (i = 8; i + 4 <= end && s + i + 4 <= p + 188; i += 4) {
			if ((s[i] << 8 | s[i + 1]) != 0) {
				d->pmt_pid = ((s[i + 2] & 0x1f) << 8) | s[i + 3];
				d->pat = true;
				break;
			}
		}
	} else if (d->pat && !d->pmt && pid == d->pmt_pid && pusi) {
		s = p + off + 1 + p[off];
		if (s + 12 > p + 188 || s[0] != 2)
			return;
		len = (size_t)(((s[1] & 0x0f) << 8) | s[2]);
		end = 3 + len - 4;
		i = 12 + (size_t)(((s[10] & 0x0f) << 8) | s[11]);
		for (; i + 5 <= end && s + i + 5 <= p + 188;
		     i += 5 + (size_t)(((s[i + 3] & 0x0f) << 8) | s[i + 4])) {
			int t = s[i];

			if (t == 0x1b || t == 0x24 || t == 0x02 || t == 0x01) {
				d->video_type = t;
				d->video_pid = ((s[i + 1] & 0x1f) << 8) | s[i + 2];
				d->pmt = true;
				break;
			}
		}
	} else if (d->pmt && pid == d->video_pid &&
		   ts_keyframe(p + off, 188 - off, d->video_type)) {
		d->key = true;
	}
}

static void ts_feed(struct tsdec *d, const uint8_t *b, size_t n)
{
	while (n && !d->key) {
		if (!d->locked) {
			if (*b != 0x47) {
				b++, n--;
				continue;
			}
			d->locked = true;
		}
		size_t take = 188 - d->have < n ? 188 - d->have : n;

		memcpy(d->pkt + d->have, b, take);
		d->have += take, b += take, n -= take;
		if (d->have == 188) {
			d->have = 0;
			if (d->pkt[0] != 0x47)
				d->locked = false;
			else
				ts_packet(d, d->pkt);
		}
	}
}

struct tune_one {
	double headers_ms, ttfb_ms, decodable_ms;
	int status;
};

/* One tune: GET /auto/v1, time to headers, first body byte, first PAT+PMT+keyframe. */
static int tune_once(uint16_t port, struct tune_one *t, unsigned timeout_ms)
{
	uint64_t t0 = ptv_now_ns(), end = t0 + (uint64_t)timeout_ms * 1000000u;
	uint8_t buf[65536];
	char head[4096];
	size_t hlen = 0;
	bool body = false;
	struct tsdec d = {0};
	int fd, ret = -ETIMEDOUT;
	ssize_t n;

	t->headers_ms = t->ttfb_ms = t->decodable_ms = NAN;
	t->status = 0;
	fd = sc_connect(port, 0);
	if (fd < 0)
		return fd;
	if (sc_get(fd, "/auto/v1")) {
		close(fd);
		return -EIO;
	}
	while (ptv_now_ns() < end && !bench_interrupted) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			ret = -EPIPE;
			break;
		}
		size_t off = 0;

		if (!body) {
			size_t take = (size_t)n < sizeof(head) - 1 - hlen ? (size_t)n
									  : sizeof(head) - 1 - hlen;
			char *e;

			memcpy(head + hlen, buf, take);
			hlen += take;
			head[hlen] = '\0';
			e = strstr(head, "\r\n\r\n");
			if (!e) {
				if (hlen == sizeof(head) - 1)
					break;
				continue;
			}
			t->headers_ms = ms_since(t0);
			sscanf(head, "HTTP/%*d.%*d %d", &t->status);
			if (t->status != 200) {
				ret = -EPROTO;
				break;
			}
			body = true;
			off = (size_t)(e + 4 - head) - (hlen - take);
		}
		if ((size_t)n > off) {
			if (isnan(t->ttfb_ms))
				t->ttfb_ms = ms_since(t0);
			ts_feed(&d, buf + off, (size_t)n - off);
			if (d.key) {
				t->decodable_ms = ms_since(t0);
				ret = 0;
				break;
			}
		}
	}
	close(fd);
	return ret;
}

struct bg_reader {
	pthread_t th;
	int fd;
	atomic_bool stop;
};

static void *bg_read(void *arg)
{
	struct bg_reader *b = arg;
	char buf[65536];

	while (!atomic_load(&b->stop)) {
		struct pollfd pfd = {.fd = b->fd, .events = POLLIN};

		if (poll(&pfd, 1, 100) > 0 && recv(b->fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	return NULL;
}

static json_t *tune_stats(const struct tune_one *t, unsigned n, unsigned fails)
{
	double *v = ptv_xcalloc(n + 1, sizeof(double));
	json_t *j = json_object();
	static const char *const keys[] = {"headers", "ttfb", "decodable"};
	unsigned k, i, m;

	for (k = 0; k < 3; k++) {
		char name[64];

		for (i = m = 0; i < n; i++) {
			double x = k == 0   ? t[i].headers_ms
				   : k == 1 ? t[i].ttfb_ms
					    : t[i].decodable_ms;

			if (!isnan(x))
				v[m++] = x;
		}
		snprintf(name, sizeof(name), "%s_ms_p50", keys[k]);
		bench_json_num(j, name, bench_quantile(v, m, 0.5));
		snprintf(name, sizeof(name), "%s_ms_p95", keys[k]);
		bench_json_num(j, name, bench_quantile(v, m, 0.95));
		snprintf(name, sizeof(name), "%s_ms_max", keys[k]);
		bench_json_num(j, name, m ? v[m - 1] : NAN);
	}
	json_object_set_new(j, "tunes", json_integer(n));
	json_object_set_new(j, "failures", json_integer(fails));
	free(v);
	return j;
}

static void tune_print(const char *kind, const json_t *j)
{
	printf("  %s: ttfb p50 %.1f p95 %.1f ms; first decodable (PAT+PMT+keyframe) p50 %.1f p95 "
	       "%.1f max %.1f ms; failures %lld\n",
	       kind, json_real_value(json_object_get(j, "ttfb_ms_p50")),
	       json_real_value(json_object_get(j, "ttfb_ms_p95")),
	       json_real_value(json_object_get(j, "decodable_ms_p50")),
	       json_real_value(json_object_get(j, "decodable_ms_p95")),
	       json_real_value(json_object_get(j, "decodable_ms_max")),
	       json_integer_value(json_object_get(j, "failures")));
}

int bench_cmd_tune(int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench tune [--tunes 30] [--bitrate 8] [--linger-ms 300] "
		"[--send-mode M] [--json FILE]\n"
		"  cold: each tune after the channel's upstream stopped (tuners in use 0);\n"
		"  warm: while one other viewer keeps the channel running\n";
	struct sc_opts o;
	struct fixture f = {0};
	struct tune_one *cold, *warm;
	struct bg_reader bg = {0};
	unsigned i, fc = 0, fw = 0;
	json_t *j;
	int ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	cold = ptv_xcalloc(o.tunes, sizeof(*cold));
	warm = ptv_xcalloc(o.tunes, sizeof(*warm));
	ret = fx_start(&f, &o, o.tunes * 4.0 + 60);
	/* Let the priming-free start settle: nothing runs until the first tune. */
	for (i = 0; !ret && i < o.tunes && !bench_interrupted; i++) {
		uint64_t end = ptv_now_ns() + 10000000000u;

		while (ptv_now_ns() < end && fx_metric(&f, "plextv_relay_tuners_in_use", false) > 0)
			usleep(20000);
		fc += tune_once(f.relay.port, &cold[i], 10000) != 0;
	}
	if (!ret) {
		bg.fd = sc_connect(f.relay.port, 0);
		if (bg.fd < 0 || sc_get(bg.fd, "/auto/v1"))
			ret = -EIO;
	}
	if (!ret) {
		pthread_create(&bg.th, NULL, bg_read, &bg);
		usleep(1500000);
		for (i = 0; i < o.tunes && !bench_interrupted; i++) {
			fw += tune_once(f.relay.port, &warm[i], 10000) != 0;
			usleep(50000);
		}
		atomic_store(&bg.stop, true);
		pthread_join(bg.th, NULL);
		close(bg.fd);
	}
	if (!ret) {
		j = bench_json_result("tune", "plextv");
		json_object_set_new(j, "bitrate_mbps", json_real(o.mbps));
		json_object_set_new(j, "linger_ms", json_integer(o.linger_ms));
		json_object_set_new(j, "cold", tune_stats(cold, o.tunes, fc));
		json_object_set_new(j, "warm", tune_stats(warm, o.tunes, fw));
		bench_json_num(
			j, "server_tune_cold_mean_s",
			fx_metric(&f, "plextv_relay_tune_seconds_sum{kind=\"cold\"}", false) /
				fx_metric(&f, "plextv_relay_tune_seconds_count{kind=\"cold\"}",
					  false));
		json_object_set_new(j, "relay_cmd", json_string(f.relay.cmdline));
		printf("tune relay=plextv tunes=%u bitrate=%.1f Mbit/s\n", o.tunes, o.mbps);
		tune_print("cold", json_object_get(j, "cold"));
		tune_print("warm", json_object_get(j, "warm"));
		ret = sc_write(j, o.json_path);
	}
	fx_stop(&f, o.keep_tmp);
	free(cold);
	free(warm);
	return sc_exit(ret);
}

/* ---- slow (B3) ---- */
struct bad_client {
	pthread_t th;
	const char *kind; /* stalled, half-rate, tiny-rcvbuf */
	uint16_t port;
	double mbps, secs;
	uint64_t bytes;
	double closed_after_s; /* NaN: still open at the end */
	double mbps_got;
};

static void *bad_run(void *arg)
{
	struct bad_client *b = arg;
	bool stalled = !strcmp(b->kind, "stalled"), half = !strcmp(b->kind, "half-rate");
	int fd = sc_connect(b->port, stalled ? 4096 : !strcmp(b->kind, "tiny-rcvbuf") ? 2048 : 0);
	uint64_t t0 = ptv_now_ns(), end = t0 + (uint64_t)(b->secs * 1e9);
	char buf[65536];

	b->closed_after_s = NAN;
	if (fd < 0 || sc_get(fd, "/auto/v1")) {
		b->closed_after_s = 0;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (ptv_now_ns() < end && !bench_interrupted) {
		struct pollfd pfd = {.fd = fd, .events = stalled ? POLLRDHUP : POLLIN | POLLRDHUP};
		double el = (double)(ptv_now_ns() - t0) / 1e9;
		ssize_t n;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (stalled) {
			if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) {
				b->closed_after_s = el;
				break;
			}
			continue;
		}
		/* half rate: read only while behind a B/2 budget */
		if (half && (double)b->bytes * 8 > el * b->mbps / 2 * 1e6) {
			if (pfd.revents & (POLLHUP | POLLERR)) {
				b->closed_after_s = el;
				break;
			}
			usleep(10000);
			continue;
		}
		n = recv(fd, buf, half ? 16384 : sizeof(buf), 0);
		if (n <= 0) {
			b->closed_after_s = el;
			break;
		}
		b->bytes += (uint64_t)n;
	}
	b->mbps_got = (double)b->bytes * 8 / ((double)(ptv_now_ns() - t0) / 1e9) / 1e6;
	close(fd);
	return NULL;
}

int bench_cmd_slow(int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench slow [--clients 100] [--bitrate 8] [--duration 15] "
		"[--write-timeout-ms 5000] [--json FILE]\n"
		"  healthy swarm + 1 stalled viewer (never reads, SO_RCVBUF 4 KiB), 1 reading at\n"
		"  half the bitrate, 1 with SO_RCVBUF 2 KiB reading normally\n";
	static const char *const kinds[] = {"stalled", "half-rate", "tiny-rcvbuf"};
	struct bad_client bad[3];
	struct sc_opts o;
	struct fixture f = {0};
	struct bench_swarm *sw = NULL;
	struct upthread upt = {0};
	double up = NAN, r0, r1, e0, e1, evict_s = NAN, resync_s = NAN;
	uint64_t t_bad = 0;
	json_t *j, *arr;
	unsigned i;
	int ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	ret = fx_start(&f, &o, o.duration_s + 30);
	if (ret) {
		fx_stop(&f, o.keep_tmp);
		return sc_exit(ret);
	}
	/* keep the channel up and measure the real rate first */
	{
		struct bg_reader keep = {0};

		keep.fd = sc_connect(f.relay.port, 0);
		sc_get(keep.fd, "/auto/v1");
		pthread_create(&keep.th, NULL, bg_read, &keep);
		usleep(1500000);
		r0 = fx_metric(&f, "plextv_relay_resyncs_total", false);
		e0 = fx_metric(&f, "plextv_relay_evictions_total", false);
		ret = fx_swarm(&f, o.clients, o.duration_s, 0, &sw);
		up_start(&upt, &f, sw);
		t_bad = ptv_now_ns();
		for (i = 0; !ret && i < 3; i++) {
			bad[i] = (struct bad_client){.kind = kinds[i],
						     .port = f.relay.port,
						     .mbps = o.mbps * 0.83,
						     .secs = o.duration_s};
			pthread_create(&bad[i].th, NULL, bad_run, &bad[i]);
		}
		atomic_store(&keep.stop, true);
		pthread_join(keep.th, NULL);
		close(keep.fd);
	}
	if (!ret) {
		/* when the relay counts each eviction / resync (a client cannot see a close queued
		 * behind data it never reads) */
		while (!bench_interrupted && ms_since(t_bad) < o.duration_s * 1000 - 200) {
			double e = fx_metric(&f, "plextv_relay_evictions_total", false);
			double rs = fx_metric(&f, "plextv_relay_resyncs_total", false);

			if (e > e0 && isnan(evict_s))
				evict_s = ms_since(t_bad) / 1000;
			if (rs > r0 && isnan(resync_s))
				resync_s = ms_since(t_bad) / 1000;
			usleep(200000);
		}
		for (i = 0; i < 3; i++)
			pthread_join(bad[i].th, NULL);
		up = up_finish(&upt);
		r1 = fx_metric(&f, "plextv_relay_resyncs_total", false);
		e1 = fx_metric(&f, "plextv_relay_evictions_total", false);
		j = bench_json_result("slow", "plextv");
		json_object_set_new(j, "clients", json_integer(o.clients));
		json_object_set_new(j, "bitrate_mbps", json_real(o.mbps));
		json_object_set_new(j, "duration_s", json_real(o.duration_s));
		json_object_set_new(j, "write_timeout_ms", json_integer(o.write_timeout_ms));
		bench_json_num(j, "upstream_mbps", up);
		printf("slow relay=plextv healthy=%u bitrate=%.1f (upstream %.3f Mbit/s) "
		       "write-timeout %u ms\n",
		       o.clients, o.mbps, up, o.write_timeout_ms);
		fx_swarm_json(sw, up, j, "healthy");
		arr = json_array();
		for (i = 0; i < 3; i++) {
			json_t *b = json_object();

			json_object_set_new(b, "kind", json_string(bad[i].kind));
			bench_json_num(b, "closed_by_relay_after_s", bad[i].closed_after_s);
			bench_json_num(b, "delivered_mbps", bad[i].mbps_got);
			json_array_append_new(arr, b);
			printf("  %-11s: closed after %.2f s, got %.3f Mbit/s\n", bad[i].kind,
			       bad[i].closed_after_s, bad[i].mbps_got);
		}
		json_object_set_new(j, "bad_clients", arr);
		bench_json_num(j, "resyncs", r1 - r0);
		bench_json_num(j, "evictions", e1 - e0);
		bench_json_num(j, "first_eviction_after_s", evict_s);
		bench_json_num(j, "first_resync_after_s", resync_s);
		printf("  relay counters over the run: resyncs %.0f (first after %.2f s) evictions "
		       "%.0f (first after %.2f s)\n",
		       r1 - r0, resync_s, e1 - e0, evict_s);
		json_object_set_new(j, "relay_cmd", json_string(f.relay.cmdline));
		ret = sc_write(j, o.json_path);
	} else if (sw) {
		struct bench_swarm_result res;

		up_finish(&upt);
		bench_swarm_finish(sw, &res);
		bench_swarm_result_free(&res);
	}
	fx_stop(&f, o.keep_tmp);
	return sc_exit(ret);
}

/* ---- churn (B5) ---- */
static unsigned proc_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	unsigned n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n > 2 ? n - 2 : 0;
}

int bench_cmd_churn(int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench churn [--clients 50] [--rate 50] [--duration 15] "
		"[--bitrate 8] [--linger-ms 300] [--json FILE]\n"
		"  --clients steady viewers, plus --rate viewers/s joining, each leaving after\n"
		"  0.2-1.2 s; then every viewer leaves and the tuner must be released\n";
	enum {
		MAXOPEN = 4096
	};
	struct sc_opts o;
	struct fixture f = {0};
	struct bench_swarm *sw = NULL;
	struct upthread upt = {0};
	struct bench_tree_usage u0 = {0}, u1 = {0};
	int fds[MAXOPEN];
	uint64_t until[MAXOPEN], t0, end, next;
	bool got[MAXOPEN];
	unsigned nopen = 0, joined = 0, failed = 0, nodata = 0, fd0, fd1, fd_end, i;
	double up, release_ms = NAN, viewers_after, tuners_after;
	char buf[65536];
	json_t *j;
	int ret;

	ret = sc_parse(argc, argv, &o, usage);
	if (ret)
		return sc_exit(ret);
	if (o.clients == 100) /* the shared default; churn's own is 50 */
		o.clients = 50;
	ret = fx_start(&f, &o, o.duration_s + 30);
	if (ret) {
		fx_stop(&f, o.keep_tmp);
		return sc_exit(ret);
	}
	ret = fx_swarm(&f, o.clients, o.duration_s, 1, &sw);
	up_start(&upt, &f, sw);
	usleep(1500000);
	bench_tree_usage(f.relay.pid, &u0);
	fd0 = proc_fds(f.relay.pid);
	t0 = ptv_now_ns();
	end = t0 + (uint64_t)((o.duration_s - 4) * 1e9);
	next = t0;
	srand(7);
	while (!ret && !bench_interrupted && (ptv_now_ns() < end || nopen)) {
		uint64_t now = ptv_now_ns();
		struct pollfd pfd[MAXOPEN];

		while (now < end && now >= next && nopen < MAXOPEN) {
			int fd = sc_connect(f.relay.port, 0);

			next += 1000000000u / o.rate;
			if (fd < 0 || sc_get(fd, "/auto/v1")) {
				failed++;
				if (fd >= 0)
					close(fd);
				continue;
			}
			fds[nopen] = fd;
			got[nopen] = false;
			until[nopen++] = now + 200000000u + (uint64_t)(rand() % 1000) * 1000000u;
		}
		for (i = 0; i < nopen; i++)
			pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		poll(pfd, nopen, 5);
		now = ptv_now_ns();
		for (i = 0; i < nopen; i++) {
			bool done = now >= until[i];

			if (pfd[i].revents & POLLIN) {
				ssize_t n = recv(fds[i], buf, sizeof(buf), 0);

				if (n > 0)
					got[i] = true;
				else
					done = true;
			}
			if (!done)
				continue;
			joined += got[i];
			nodata += !got[i];
			close(fds[i]);
			fds[i] = fds[nopen - 1], until[i] = until[nopen - 1],
			got[i] = got[nopen - 1];
			pfd[i] = pfd[nopen - 1];
			nopen--, i--;
		}
	}
	bench_tree_usage(f.relay.pid, &u1);
	fd1 = proc_fds(f.relay.pid);
	up = up_finish(&upt);
	j = bench_json_result("churn", "plextv");
	json_object_set_new(j, "steady_clients", json_integer(o.clients));
	json_object_set_new(j, "churn_rate_per_s", json_integer(o.rate));
	json_object_set_new(j, "bitrate_mbps", json_real(o.mbps));
	json_object_set_new(j, "duration_s", json_real(o.duration_s));
	bench_json_num(j, "upstream_mbps", up);
	printf("churn relay=plextv steady=%u rate=%u/s (upstream %.3f Mbit/s)\n", o.clients, o.rate,
	       up);
	if (sw)
		fx_swarm_json(sw, up, j, "steady");
	/* everybody left: viewers to 0, the tuner released after the linger */
	t0 = ptv_now_ns();
	while (ms_since(t0) < o.linger_ms + 10000.0) {
		if (fx_metric(&f, "plextv_relay_tuners_in_use", false) == 0) {
			release_ms = ms_since(t0);
			break;
		}
		usleep(20000);
	}
	viewers_after = fx_metric(&f, "plextv_relay_viewers", false);
	tuners_after = fx_metric(&f, "plextv_relay_tuners_in_use", false);
	usleep(500000);
	fd_end = proc_fds(f.relay.pid);
	json_object_set_new(j, "churn_joined", json_integer(joined));
	json_object_set_new(j, "churn_failed", json_integer(failed));
	json_object_set_new(j, "churn_no_data", json_integer(nodata));
	json_object_set_new(j, "relay_fds_start", json_integer(fd0));
	json_object_set_new(j, "relay_fds_end_of_churn", json_integer(fd1));
	json_object_set_new(j, "relay_fds_idle_after", json_integer(fd_end));
	json_object_set_new(j, "relay_rss_start", json_integer((json_int_t)u0.rss_bytes));
	json_object_set_new(j, "relay_rss_end", json_integer((json_int_t)u1.rss_bytes));
	bench_json_num(j, "relay_cpu_seconds", u1.cpu_s - u0.cpu_s);
	bench_json_num(j, "viewers_after", viewers_after);
	bench_json_num(j, "tuners_in_use_after", tuners_after);
	bench_json_num(j, "tuner_release_ms_after_last_viewer", release_ms);
	json_object_set_new(j, "linger_ms", json_integer(o.linger_ms));
	json_object_set_new(j, "relay_cmd", json_string(f.relay.cmdline));
	printf("  churn: joined %u failed %u no-data %u; relay fds %u -> %u (idle %u); RSS %.1f -> "
	       "%.1f MiB; tuner released %.0f ms after the last viewer (linger %u ms)\n",
	       joined, failed, nodata, fd0, fd1, fd_end, (double)u0.rss_bytes / 1048576,
	       (double)u1.rss_bytes / 1048576, release_ms, o.linger_ms);
	ret = sc_write(j, o.json_path);
	fx_stop(&f, o.keep_tmp);
	return sc_exit(ret);
}

/* ---- wrk, nginx, /usr/bin/time ---- */
static int sc_wrk(const char *tmpdir, uint16_t port, const char *path, unsigned conns, double secs,
		  struct wrk_result *w)
{
	char c[16], d[16], url[256], log[PATH_MAX + 16];
	const char *argv[] = {"wrk",	   "-t1",	"-c",  c,   "-d", d,
			      "--latency", "--timeout", "10s", url, NULL};
	struct bench_spawn_opts so = {.log_path = log};
	struct ptv_buf out = {0};
	FILE *fp;
	pid_t pid;
	int status, ret;

	if (!bench_have_program("wrk"))
		return -ENOENT;
	snprintf(c, sizeof(c), "%u", conns);
	snprintf(d, sizeof(d), "%.0fs", ceil(secs));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	snprintf(log, sizeof(log), "%s/wrk.out", tmpdir);
	unlink(log);
	ret = bench_spawn(argv, &so, &pid);
	if (ret)
		return ret;
	ret = bench_wait_exit(pid, (unsigned)(ceil(secs) * 1000) + 30000, &status);
	if (ret) {
		bench_stop(pid, 1000);
		return ret;
	}
	fp = fopen(log, "re");
	if (!fp)
		return -errno;
	ptv_buf_reserve(&out, 65536);
	out.len = fread(out.data, 1, out.cap - 1, fp);
	out.data[out.len] = '\0';
	fclose(fp);
	ret = out.oom ? -ENOMEM : bench_wrk_parse(out.data, w);
	ptv_buf_free(&out);
	return ret;
}

/* nginx serving @names (files already in TMP/www) with the same settings as `http`. */
static int sc_nginx(const char *tmpdir, uint16_t *port, pid_t *pid)
{
	struct ptv_buf b = {0};
	char conf[PATH_MAX + 16], errlog[PATH_MAX + 32], tmp[PATH_MAX + 8];
	const char *argv[] = {"nginx", "-e",   errlog, "-c",	      conf,
			      "-p",    tmpdir, "-g",   "daemon off;", NULL};
	struct bench_spawn_opts so = {0};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int ret;

	if (!bench_have_program("nginx") && access("/usr/sbin/nginx", X_OK))
		return -ENOENT;
	if (!bench_have_program("nginx"))
		argv[0] = "/usr/sbin/nginx";
	ret = bench_free_port(port);
	if (ret)
		return ret;
	snprintf(conf, sizeof(conf), "%s/nginx.conf", tmpdir);
	snprintf(errlog, sizeof(errlog), "%s/nginx-error.log", tmpdir);
	snprintf(tmp, sizeof(tmp), "%s/tmp", tmpdir);
	mkdir(tmp, 0755);
	ptv_buf_printf(&b,
		       "worker_processes %ld;\npid %s/nginx.pid;\nerror_log %s warn;\n"
		       "events { worker_connections 16384; }\n"
		       "http {\n  access_log off;\n  server_tokens off;\n  keepalive_requests "
		       "100000000;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n"
		       "  open_file_cache max=64 inactive=600s;\n  client_body_temp_path %s;\n"
		       "  proxy_temp_path %s;\n  fastcgi_temp_path %s;\n  uwsgi_temp_path %s;\n"
		       "  scgi_temp_path %s;\n  types { application/json json; }\n"
		       "  server {\n    listen 127.0.0.1:%u reuseport;\n    root %s/www;\n  }\n}\n",
		       ncpu, tmpdir, errlog, tmp, tmp, tmp, tmp, tmp, *port, tmpdir);
	ret = b.oom ? -ENOMEM : bench_write_file(conf, b.data, b.len);
	ptv_buf_free(&b);
	if (!ret)
		ret = bench_spawn(argv, &so, pid);
	return ret ? ret : bench_wait_port(*port, 10000);
}

/* Runs plextv ARGS under /usr/bin/time -v: wall seconds and peak RSS (bytes). */
static int sc_timed(const char *bin, const char *const *args, const char *tmpdir, double *wall_s,
		    double *rss)
{
	char tf[PATH_MAX + 16], log[PATH_MAX + 16], line[512];
	const char *argv[32] = {"-v", "-o", tf, bin};
	unsigned n = 4;
	uint64_t t0;
	FILE *fp;
	int ret;

	snprintf(tf, sizeof(tf), "%s/time.out", tmpdir);
	snprintf(log, sizeof(log), "%s/timed.log", tmpdir);
	while (*args && n < PTV_ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	*rss = NAN;
	t0 = ptv_now_ns();
	ret = bench_plextv_run("/usr/bin/time", argv, log, 600000);
	*wall_s = (double)(ptv_now_ns() - t0) / 1e9;
	fp = fopen(tf, "re");
	while (fp && fgets(line, sizeof(line), fp)) {
		unsigned long long kb;

		if (sscanf(line, " Maximum resident set size (kbytes): %llu", &kb) == 1)
			*rss = (double)kb * 1024;
	}
	if (fp)
		fclose(fp);
	if (ret)
		bench_log_tail(log, 2000);
	return ret;
}

static json_t *wrk_json(const struct wrk_result *w, const char *server, const char *path,
			size_t bytes, double cpu)
{
	json_t *j = json_object();

	json_object_set_new(j, "server", json_string(server));
	json_object_set_new(j, "path", json_string(path));
	json_object_set_new(j, "body_bytes", json_integer((json_int_t)bytes));
	bench_json_num(j, "requests_per_s", w->rps);
	bench_json_num(j, "latency_ms_p50", w->p50_ms);
	bench_json_num(j, "latency_ms_p99", w->p99_ms);
	json_object_set_new(j, "errors", json_integer((json_int_t)w->errors));
	json_object_set_new(j, "non_2xx", json_integer((json_int_t)w->non2xx));
	bench_json_num(j, "server_cpu_seconds", cpu);
	printf("  %-6s %-14s %8zu B: %9.0f req/s  p50 %.3f ms  p99 %.3f ms  errors %llu non-2xx "
	       "%llu  server CPU %.2f s\n",
	       server, path, bytes, w->rps, w->p50_ms, w->p99_ms, (unsigned long long)w->errors,
	       (unsigned long long)w->non2xx, cpu);
	return j;
}

static double tree_cpu(pid_t pid)
{
	struct bench_tree_usage u;

	return bench_tree_usage(pid, &u) ? NAN : u.cpu_s;
}

/* ---- api (B6) ---- */
int bench_cmd_api(int argc, char **argv)
{
	static const char usage[] = "usage: plextv-bench api [--secs 5] [--connections 64] "
				    "[--clients 10] [--bitrate 8] "
				    "[--json FILE]\n"
				    "  wrk on /discover.json and /lineup.json, plextv vs nginx "
				    "serving the same bytes,\n"
				    "  while --clients viewers stream the channel from plextv\n";
	static const char *const paths[] = {"/discover.json", "/lineup.json"};
	struct sc_opts o;
	struct fixture f = {0};
	struct bench_swarm *sw = NULL;
	struct ptv_buf body[2] = {{0}};
	uint16_t nport = 0;
	pid_t npid = 0;
	struct upthread upt = {0};
	double up, c0, ratio[2] = {NAN, NAN};
	json_t *j, *rows;
	unsigned i, k;
	char www[PATH_MAX + 8], file[PATH_MAX + 40];
	int status, ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	if (!bench_have_program("wrk")) {
		fprintf(stderr, "api: wrk is not installed (package wrk)\n");
		return BENCH_EX_UNAVAILABLE;
	}
	if (o.clients == 100)
		o.clients = 10;
	ret = fx_start(&f, &o, 4 * (o.secs + 2) + 40);
	snprintf(www, sizeof(www), "%s/www", f.tmpdir);
	mkdir(www, 0755);
	for (i = 0; !ret && i < 2; i++) {
		ret = bench_http_get(f.relay.port, paths[i], &status, &body[i], 5000);
		if (!ret && status != 200)
			ret = -EPROTO;
		snprintf(file, sizeof(file), "%s%s", www, paths[i]);
		if (!ret)
			ret = bench_write_file(file, body[i].data, body[i].len);
	}
	if (!ret)
		ret = sc_nginx(f.tmpdir, &nport, &npid);
	if (ret) {
		fprintf(stderr, "api: setup failed: %s\n", ptv_strerror(ret));
		goto out;
	}
	ret = fx_swarm(&f, o.clients, 4 * (o.secs + 2) + 4, 2, &sw);
	up_start(&upt, &f, sw);
	usleep(2000000);
	j = bench_json_result("api", "plextv");
	rows = json_array();
	printf("api: wrk -t1 -c%u, %.0f s per row, %u viewers streaming from plextv\n",
	       o.connections, o.secs, o.clients);
	for (i = 0; !ret && i < 2; i++) {
		double rps[2] = {NAN, NAN};

		for (k = 0; k < 2; k++) {
			struct wrk_result w;
			uint16_t port = k ? nport : f.relay.port;
			pid_t pid = k ? npid : f.relay.pid;
			struct wrk_result warm;

			sc_wrk(f.tmpdir, port, paths[i], o.connections, 1, &warm);
			c0 = tree_cpu(pid);
			if (sc_wrk(f.tmpdir, port, paths[i], o.connections, o.secs, &w))
				continue;
			json_array_append_new(rows, wrk_json(&w, k ? "nginx" : "plextv", paths[i],
							     body[i].len, tree_cpu(pid) - c0));
			rps[k] = w.rps;
		}
		ratio[i] = rps[0] / rps[1];
	}
	up = up_finish(&upt);
	json_object_set_new(j, "results", rows);
	bench_json_num(j, "ratio_discover_rps", ratio[0]);
	bench_json_num(j, "ratio_lineup_rps", ratio[1]);
	bench_json_num(j, "upstream_mbps", up);
	json_object_set_new(j, "connections", json_integer(o.connections));
	json_object_set_new(j, "stream_clients", json_integer(o.clients));
	json_object_set_new(j, "relay_cmd", json_string(f.relay.cmdline));
	printf("  ratio plextv/nginx req/s: /discover.json %.3f  /lineup.json %.3f\n", ratio[0],
	       ratio[1]);
	if (sw)
		fx_swarm_json(sw, up, j, "streams");
	sw = NULL;
	ret = sc_write(j, o.json_path);
out:
	if (sw) {
		struct bench_swarm_result res;

		bench_swarm_finish(sw, &res);
		bench_swarm_result_free(&res);
	}
	if (npid > 0)
		bench_stop(npid, 2000);
	ptv_buf_free(&body[0]);
	ptv_buf_free(&body[1]);
	fx_stop(&f, o.keep_tmp);
	return sc_exit(ret);
}

/* ---- lineup (B7) ---- */
static int gen_m3u(const char *path, unsigned n, uint16_t src_port, bool tvg_ids)
{
	FILE *fp = fopen(path, "we");
	unsigned i;

	if (!fp)
		return -errno;
	fprintf(fp, "#EXTM3U\n");
	for (i = 1; i <= n; i++) {
		fprintf(fp,
			"#EXTINF:-1 tvg-id=\"c%u.bench\" tvg-name=\"Channel %u\" tvg-chno=\"%u\" "
			"tvg-logo=\"http://logo.example/%u.png\" group-title=\"Group %u\",Channel "
			"%u\n",
			i, i, i, i, i % 50, i);
		if (i == 1)
			fprintf(fp, "http://127.0.0.1:%u/stream\n", src_port);
		else
			fprintf(fp, "http://provider.example:8080/live/user/pass/%u.ts\n", i);
	}
	(void)tvg_ids;
	return fclose(fp) ? -errno : 0;
}

static double reactor_slow_turns(const char *text, const char *bound)
{
	/* turns longer than @bound: _count minus the bucket le=bound, summed over reactors */
	char le[64];
	double total = bench_metric(text, "plextv_reactor_turn_seconds_count", false), below = 0;
	const char *p = text;

	snprintf(le, sizeof(le), "le=\"%s\"}", bound);
	while ((p = strstr(p, "plextv_reactor_turn_seconds_bucket{"))) {
		const char *eol = strchr(p, '\n'), *q = strstr(p, le);

		if (q && (!eol || q < eol))
			below += strtod(q + strlen(le), NULL);
		p = eol ? eol : p + 1;
	}
	return total - below;
}

static void metrics_text(uint16_t port, struct ptv_buf *b)
{
	int status;

	ptv_buf_reset(b);
	if (bench_http_get(port, "/metrics", &status, b, 5000) || ptv_buf_putc(b, '\0'))
		ptv_buf_reset(b);
}

int bench_cmd_lineup(int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench lineup [--entries 100000] [--secs 5] [--connections 8] "
		"[--clients 10] [--json FILE]\n"
		"  generates an M3U, times `plextv import m3u` (/usr/bin/time -v), then wrk on\n"
		"  /lineup.json while viewers stream; longest reactor turn from /metrics\n";
	struct sc_opts o;
	struct fixture f = {0};
	struct bench_swarm *sw = NULL;
	struct ptv_buf m = {0}, body = {0};
	char m3u[PATH_MAX + 16], data[PATH_MAX + 16], bin[PATH_MAX], listen[64], log[PATH_MAX + 16];
	char devch[16];
	const char *imp[] = {"import", "m3u", m3u, "--data-dir", data, "--name", "big", NULL};
	double wall = NAN, rss = NAN, max0, max1, slow0, slow1, up, c0;
	struct wrk_result w = {0};
	struct bench_spawn_opts so = {.log_path = log};
	struct upthread upt = {0};
	uint16_t port;
	json_t *j;
	int status, ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	if (o.connections == 64)
		o.connections = 8;
	if (o.clients == 100)
		o.clients = 10;
	fx_raise_nofile();
	ret = bench_plextv_bin(bin, sizeof(bin));
	if (!ret)
		ret = bench_tmpdir(f.tmpdir, sizeof(f.tmpdir));
	if (!ret)
		ret = fx_source(&f, o.mbps, o.secs * 3 + 60);
	snprintf(m3u, sizeof(m3u), "%s/big.m3u", f.tmpdir);
	snprintf(data, sizeof(data), "%s/data", f.tmpdir);
	mkdir(data, 0700);
	if (!ret)
		ret = gen_m3u(m3u, o.entries, f.src_port, true);
	if (!ret)
		ret = sc_timed(bin, imp, f.tmpdir, &wall, &rss);
	if (ret) {
		fprintf(stderr, "lineup: import failed: %s\n", ptv_strerror(ret));
		goto out;
	}
	printf("lineup: %u entries imported in %.3f s, peak RSS %.1f MiB\n", o.entries, wall,
	       rss / 1048576);
	/* serve that store; channel 1 points at the paced source */
	ret = bench_free_port(&port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(log, sizeof(log), "%s/serve.log", f.tmpdir);
	{
		/* one device holding every channel: /lineup.json is the whole 100k document */
		const char *argv2[24];
		size_t n = bench_serve_argv(argv2, bin, data, listen, "off");

		argv2[n++] = "--device-channels";
		argv2[n++] = devch;
		argv2[n] = NULL;

		snprintf(devch, sizeof(devch), "%u", o.entries < 100000 ? o.entries : 100000);
		f.relay.kind = BENCH_RELAY_PLEXTV;
		f.relay.port = port;
		snprintf(f.relay.path, sizeof(f.relay.path), "/auto/v1");
		if (!ret)
			ret = bench_spawn(argv2, &so, &f.relay.pid);
	}
	if (!ret)
		ret = bench_wait_port(port, 20000);
	if (!ret)
		ret = bench_wait_body(port, "/lineup.json", "\"GuideNumber\":\"1\"", 30000);
	if (!ret)
		ret = bench_http_get(port, "/lineup.json", &status, &body, 30000);
	if (ret) {
		fprintf(stderr, "lineup: serve failed: %s\n", ptv_strerror(ret));
		bench_log_tail(log, 2000);
		goto out;
	}
	ret = fx_swarm(&f, o.clients, o.secs + 8, 2, &sw);
	up_start(&upt, &f, sw);
	usleep(2000000);
	metrics_text(port, &m);
	max0 = bench_metric(m.data ? m.data : "", "plextv_reactor_turn_max_seconds", true);
	slow0 = reactor_slow_turns(m.data ? m.data : "", "0.005");
	c0 = tree_cpu(f.relay.pid);
	if (!ret)
		ret = sc_wrk(f.tmpdir, port, "/lineup.json", o.connections, o.secs, &w);
	metrics_text(port, &m);
	max1 = bench_metric(m.data ? m.data : "", "plextv_reactor_turn_max_seconds", true);
	slow1 = reactor_slow_turns(m.data ? m.data : "", "0.005");
	up = up_finish(&upt);
	j = bench_json_result("lineup", "plextv");
	json_object_set_new(j, "entries", json_integer(o.entries));
	bench_json_num(j, "import_s", wall);
	bench_json_num(j, "import_peak_rss_bytes", rss);
	json_object_set_new(j, "lineup_json_bytes", json_integer((json_int_t)body.len));
	json_object_set_new(j, "device_channels", json_string(devch));
	json_object_set_new(
		j, "wrk",
		wrk_json(&w, "plextv", "/lineup.json", body.len, tree_cpu(f.relay.pid) - c0));
	bench_json_num(j, "reactor_turn_max_s_before", max0);
	bench_json_num(j, "reactor_turn_max_s_after", max1);
	bench_json_num(j, "reactor_turns_over_5ms_during", slow1 - slow0);
	bench_json_num(j, "upstream_mbps", up);
	printf("  /lineup.json %zu bytes; reactor turn max %.3f ms before wrk, %.3f ms after; "
	       "turns > 5 ms during wrk: %.0f\n",
	       body.len, max0 * 1e3, max1 * 1e3, slow1 - slow0);
	if (sw)
		fx_swarm_json(sw, up, j, "streams");
	sw = NULL;
	ret = sc_write(j, o.json_path);
out:
	if (sw) {
		struct bench_swarm_result res;

		bench_swarm_finish(sw, &res);
		bench_swarm_result_free(&res);
	}
	ptv_buf_free(&m);
	ptv_buf_free(&body);
	fx_stop(&f, o.keep_tmp);
	return sc_exit(ret);
}

/* ---- epg ---- */
static int gen_xmltv(const char *path, unsigned chans, unsigned progs, time_t start)
{
	FILE *fp = fopen(path, "we");
	unsigned c, p;
	char a[32], b[32];

	if (!fp)
		return -errno;
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tv generator-info-name=\"plextv-"
		    "bench\">\n");
	for (c = 1; c <= chans; c++)
		fprintf(fp,
			"  <channel id=\"c%u.bench\"><display-name>Channel %u</display-name></chann"
			"el>\n",
			c, c);
	for (c = 1; c <= chans; c++) {
		for (p = 0; p < progs; p++) {
			time_t t = start + (time_t)p * 1800;
			struct tm tm;

			gmtime_r(&t, &tm);
			strftime(a, sizeof(a), "%Y%m%d%H%M%S +0000", &tm);
			t += 1800;
			gmtime_r(&t, &tm);
			strftime(b, sizeof(b), "%Y%m%d%H%M%S +0000", &tm);
			fprintf(fp,
				"  <programme start=\"%s\" stop=\"%s\" channel=\"c%u.bench\">"
				"<title lang=\"en\">Show %u on %u</title><desc lang=\"en\">Episode "
				"%u of a generated programme for the benchmark.</desc>"
				"<category lang=\"en\">News</category>"
				"<episode-num "
				"system=\"xmltv_ns\">0.%u.</episode-num></programme>\n",
				a, b, c, p, c, p, p);
		}
	}
	fprintf(fp, "</tv>\n");
	return fclose(fp) ? -errno : 0;
}

/* Reads a whole response, counting body bytes; returns seconds from connect to EOF. */
static double sc_download(uint16_t port, const char *path, uint64_t *bytes)
{
	static char buf[1 << 20];
	uint64_t t0 = ptv_now_ns();
	int fd = sc_connect(port, 0);
	ssize_t n;

	*bytes = 0;
	if (fd < 0 || sc_get(fd, path)) {
		if (fd >= 0)
			close(fd);
		return NAN;
	}
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		*bytes += (uint64_t)n;
	close(fd);
	return (double)(ptv_now_ns() - t0) / 1e9;
}

int bench_cmd_epg(int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench epg [--channels 1000] [--programmes 1000] [--json FILE]\n"
		"  generates a lineup and an XMLTV guide, times `plextv import xmltv`\n"
		"  (/usr/bin/time -v), then GET /xmltv.xml three times (MB/s)\n";
	struct sc_opts o;
	struct fixture f = {0};
	char m3u[PATH_MAX + 16], xml[PATH_MAX + 16], data[PATH_MAX + 16], bin[PATH_MAX];
	char listen[64], log[PATH_MAX + 16];
	const char *imp_m3u[] = {"import", "m3u", m3u, "--data-dir", data, NULL};
	const char *imp_xml[] = {"import", "xmltv", xml, "--data-dir", data, NULL};
	struct bench_spawn_opts so = {.log_path = log};
	double wall = NAN, rss = NAN, best = 0, secs[3], stored;
	uint64_t bytes[3] = {0};
	struct stat st;
	uint16_t port = 0;
	json_t *j, *runs;
	unsigned i;
	int ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	ret = bench_plextv_bin(bin, sizeof(bin));
	if (!ret)
		ret = bench_tmpdir(f.tmpdir, sizeof(f.tmpdir));
	snprintf(m3u, sizeof(m3u), "%s/epg.m3u", f.tmpdir);
	snprintf(xml, sizeof(xml), "%s/guide.xml", f.tmpdir);
	snprintf(data, sizeof(data), "%s/data", f.tmpdir);
	snprintf(log, sizeof(log), "%s/epg.log", f.tmpdir);
	mkdir(data, 0700);
	if (!ret)
		ret = gen_m3u(m3u, o.channels, 9, true);
	if (!ret)
		ret = gen_xmltv(xml, o.channels, o.programmes, time(NULL) / 3600 * 3600 - 3600);
	if (!ret)
		ret = bench_plextv_run(bin, imp_m3u, log, 120000);
	if (!ret)
		ret = sc_timed(bin, imp_xml, f.tmpdir, &wall, &rss);
	if (ret) {
		fprintf(stderr, "epg: generate/import failed: %s\n", ptv_strerror(ret));
		bench_log_tail(log, 2000);
		goto out;
	}
	stat(xml, &st);
	printf("epg: %u channels x %u programmes (%.1f MB XMLTV) imported in %.3f s, peak RSS "
	       "%.1f MiB\n",
	       o.channels, o.programmes, (double)st.st_size / 1e6, wall, rss / 1048576);
	ret = bench_free_port(&port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	{
		const char *argv2[24];

		argv2[bench_serve_argv(argv2, bin, data, listen, "off")] = NULL;

		f.relay.kind = BENCH_RELAY_PLEXTV;
		f.relay.port = port;
		if (!ret)
			ret = bench_spawn(argv2, &so, &f.relay.pid);
	}
	if (!ret)
		ret = bench_wait_port(port, 20000);
	if (ret)
		goto out;
	stored = bench_metric_get(port, "plextv_guide_programmes", false);
	runs = json_array();
	for (i = 0; i < 3; i++) {
		secs[i] = sc_download(port, "/xmltv.xml", &bytes[i]);
		if (bytes[i] / secs[i] > best)
			best = (double)bytes[i] / secs[i];
		json_array_append_new(runs, json_pack("{s:I, s:f}", "bytes", (json_int_t)bytes[i],
						      "seconds", secs[i]));
	}
	j = bench_json_result("epg", "plextv");
	json_object_set_new(j, "channels", json_integer(o.channels));
	json_object_set_new(j, "programmes_per_channel", json_integer(o.programmes));
	json_object_set_new(j, "xmltv_input_bytes", json_integer((json_int_t)st.st_size));
	bench_json_num(j, "import_s", wall);
	bench_json_num(j, "import_peak_rss_bytes", rss);
	bench_json_num(j, "programmes_stored", stored);
	json_object_set_new(j, "xmltv_output_runs", runs);
	bench_json_num(j, "xmltv_output_mb_per_s_best", best / 1e6);
	bench_json_num(j, "xmltv_output_bytes", (double)bytes[0]);
	bench_json_num(j, "serve_rss_bytes",
		       bench_metric_get(port, "process_resident_memory_bytes", false));
	printf("  programmes stored %.0f; /xmltv.xml %.1f MB in %.3f / %.3f / %.3f s: best %.1f "
	       "MB/s\n",
	       stored, (double)bytes[0] / 1e6, secs[0], secs[1], secs[2], best / 1e6);
	ret = sc_write(j, o.json_path);
out:
	fx_stop(&f, o.keep_tmp);
	return sc_exit(ret);
}

/* ---- zerocopy (B8) and bpf (B9): fan-out matrices through `fanout` runs ---- */
static int run_self(const char *const *args, unsigned timeout_s)
{
	char exe[PATH_MAX];
	const char *argv[48];
	unsigned n = 0;
	pid_t pid;
	int status, ret = bench_self_exe(exe, sizeof(exe));

	if (ret)
		return ret;
	argv[n++] = exe;
	while (*args && n < PTV_ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	/* the child's summary goes to our stdout (bench_spawn would log it to a file) */
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	ret = bench_wait_exit(pid, timeout_s * 1000, &status);
	if (ret) {
		bench_stop(pid, 2000);
		return ret;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

static int matrix(const char *name, int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench zerocopy|bpf [--list 100,1000] [--bitrate 8] [--duration 12] "
		"[--out DIR]\n"
		"  fanout --relay plextv for each client count, send vs zc vs splice (zerocopy) "
		"or\n"
		"  --bpf auto vs off (bpf); one fanout JSON per point in DIR and a summary JSON\n";
	static const char *const zc[] = {"send", "zc", "splice", NULL}, *const bpf[] = {"off",
											"auto",
											NULL};
	bool is_zc = !strcmp(name, "zerocopy");
	struct sc_opts o;
	char list[256], *tok, *save = NULL, path[PATH_MAX + 64], nb[16], rate[32], dur[32];
	json_t *j, *pts;
	unsigned k;
	int ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	if (o.duration_s == 15)
		o.duration_s = 12;
	if (!o.out_dir)
		o.out_dir = ".";
	mkdir(o.out_dir, 0755);
	snprintf(list, sizeof(list), "%s", o.list);
	snprintf(rate, sizeof(rate), "%g", o.mbps);
	snprintf(dur, sizeof(dur), "%g", o.duration_s);
	j = bench_json_result(name, "plextv");
	pts = json_array();
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (k = 0; (is_zc ? zc : bpf)[k] && !bench_interrupted; k++) {
			const char *v = (is_zc ? zc : bpf)[k];
			const char *args[] = {"fanout", "--relay",
					      "plextv", "--clients",
					      nb,	"--bitrate",
					      rate,	"--duration",
					      dur,	is_zc ? "--send-mode" : "--bpf",
					      v,	"--json",
					      path,	NULL};
			json_t *r;

			snprintf(nb, sizeof(nb), "%s", tok);
			snprintf(path, sizeof(path), "%s/fanout-plextv-%s-%s-%sc-%sm.json",
				 o.out_dir, is_zc ? "mode" : "bpf", v, tok, rate);
			run_self(args, (unsigned)o.duration_s + 120);
			r = json_load_file(path, 0, NULL);
			if (!r)
				continue;
			json_array_append_new(
				pts,
				json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:s}",
					  is_zc ? "send_mode" : "bpf", v, "clients",
					  json_object_get(r, "clients"), "delivered_gbps_total",
					  json_object_get(r, "delivered_gbps_total"),
					  "relay_cpu_pct", json_object_get(r, "relay_cpu_pct"),
					  "gbps_per_relay_cpu",
					  json_object_get(r, "gbps_per_relay_cpu"),
					  "clients_below_99_9pct_of_upstream",
					  json_object_get(r, "clients_below_99_9pct_of_upstream"),
					  "bpf_enabled", json_object_get(r, "bpf_enabled"), "file",
					  path));
			json_decref(r);
		}
	}
	json_object_set_new(j, "bitrate_mbps", json_real(o.mbps));
	json_object_set_new(j, "points", pts);
	snprintf(path, sizeof(path), "%s/%s.json", o.out_dir, name);
	ret = sc_write(j, o.json_path ? o.json_path : path);
	return sc_exit(ret);
}

int bench_cmd_zerocopy(int argc, char **argv)
{
	return matrix("zerocopy", argc, argv);
}

int bench_cmd_bpf(int argc, char **argv)
{
	return matrix("bpf", argc, argv);
}

/* ---- all ---- */
int bench_cmd_all(int argc, char **argv)
{
	static const char usage[] =
		"usage: plextv-bench all [--out bench/results] [--duration 12]\n"
		"  every scenario with short settings, one at a time, then the "
		"report\n";
	struct sc_opts o;
	char p[PATH_MAX + 64], dur[32];
	static const char *const relays[] = {"plextv", "vlc", "gstreamer"};
	static const unsigned nclients[] = {1, 10, 100, 1000};
	static const char *const rates[] = {"3", "8", "20"};
	unsigned r, c, b;
	int ret = sc_parse(argc, argv, &o, usage);

	if (ret)
		return sc_exit(ret);
	if (!o.out_dir)
		o.out_dir = "bench/results";
	if (o.duration_s == 15)
		o.duration_s = 12;
	mkdir(o.out_dir, 0755);
	snprintf(dur, sizeof(dur), "%g", o.duration_s);
	for (r = 0; r < 3 && !bench_interrupted; r++) {
		for (b = 0; b < 3; b++) {
			for (c = 0; c < 4 && !bench_interrupted; c++) {
				char nb[16];
				const char *a[] = {"fanout", "--relay",	  relays[r], "--clients",
						   nb,	     "--bitrate", rates[b],  "--duration",
						   dur,	     "--json",	  p,	     NULL};

				/* peers: 8 Mbit/s only */
				if (r && strcmp(rates[b], "8"))
					continue;
				snprintf(nb, sizeof(nb), "%u", nclients[c]);
				snprintf(p, sizeof(p), "%s/fanout-%s-%uc-%sm.json", o.out_dir,
					 relays[r], nclients[c], rates[b]);
				run_self(a, (unsigned)o.duration_s + 120);
			}
		}
	}
	{
		static const char *const sc[] = {"tune", "slow", "churn", "api", "lineup", "epg"};

		for (r = 0; r < PTV_ARRAY_SIZE(sc) && !bench_interrupted; r++) {
			const char *a[] = {sc[r], "--json", p, NULL};

			snprintf(p, sizeof(p), "%s/%s.json", o.out_dir, sc[r]);
			run_self(a, 900);
		}
	}
	{
		const char *z[] = {"zerocopy", "--out", o.out_dir, "--duration", dur, NULL};
		const char *bp[] = {"bpf", "--out", o.out_dir, "--duration", dur, NULL};
		const char *rep[] = {"report", o.out_dir, NULL};

		run_self(z, 3600);
		run_self(bp, 3600);
		ret = run_self(rep, 120);
	}
	return ret ? BENCH_EX_FAIL : BENCH_EX_OK;
}
