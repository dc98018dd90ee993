/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv-bench fanout` (scenario B1): one channel, N clients, one relay.
 *
 * The bench starts the paced source and the relay on loopback, waits until the relay delivers
 * TS, then runs the swarm for the duration. Relay CPU and RSS are read from /proc for the relay
 * and all its children over the measurement window (after the swarm's warm-up), the same window
 * the delivered rates are computed on.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "peers.h"
#include "swarm.h"

#define FANOUT_MAX_FAULTS 8

struct fanout_opts {
	const char *relay_spec;
	unsigned clients;
	double mbps;
	double duration_s;
	const char *json_path;
	const char *send_mode;
	const char *bpf;
	const char *serve_args[FANOUT_MAX_FAULTS + 1];
	unsigned nserve_args;
	const char *source_file;
	unsigned relay_pid;
	bool keep_tmp;
	bool per_client;
	const char *faults[FANOUT_MAX_FAULTS];
	unsigned nfaults;
	struct bench_swarm_opts swarm;
};

struct fanout_run {
	struct fanout_opts o;
	struct bench_relay relay;
	char tmpdir[PATH_MAX];
	uint16_t src_port;
	pid_t src_pid;
	struct bench_tree_usage u0, u1;
	bool have_usage;
	double host0[2], host1[2]; /* busy, total */
	struct bench_swarm_result res;
	struct bench_swarm_summary sum;
	json_t *source_stats;
	double up0, up1; /* plextv_relay_upstream_bytes_total at the window's ends */
	uint64_t up_t0, up_t1;
	double resync0, resync1, evict0, evict1;
	double bpf_enabled;
	char bpf_info[128];
	struct bench_upmeter upm;
};

static void fanout_usage(FILE *f)
{
	fprintf(f, "usage: plextv-bench fanout --relay "
		   "plextv|vlc|gstreamer|direct|url:URL|raw:HOST:PORT\n"
		   "       --clients N [--bitrate MBITS] [--duration S] [--json FILE]\n"
		   "       [--send-mode M] [--source TS|gen] [--threads T] [--warmup S]\n"
		   "       [--stall-ms MS] [--rcvbuf BYTES] [--relay-pid PID] [--source-fault F]\n"
		   "       [--connect-rate N] [--keep-tmp] [--per-client]\n"
		   "       [--bpf auto|on|off] [--serve-arg ARG]...   (plextv only)\n"
		   "  direct: clients read the paced source itself (no relay; checks the harness)\n"
		   "  url:/raw: a server you started; --relay-pid PID measures its CPU\n");
}

static int fanout_parse_opt(struct fanout_opts *o, int c, const char *arg)
{
	struct bench_swarm_opts *s = &o->swarm;

	switch (c) {
	case 'r':
		o->relay_spec = arg;
		return 0;
	case 'c':
		return bench_parse_uint(arg, 1, 200000, &o->clients);
	case 'b':
		return bench_parse_double(arg, 0.01, 10000, &o->mbps);
	case 'd':
		return bench_parse_double(arg, 0.5, 3600, &o->duration_s);
	case 'j':
		o->json_path = arg;
		return 0;
	case 'm':
		o->send_mode = arg;
		return 0;
	case 's':
		o->source_file = arg;
		return 0;
	case 't':
		return bench_parse_uint(arg, 1, 256, &s->threads);
	case 'w':
		return bench_parse_double(arg, 0, 3600, &s->warmup_s);
	case 'S':
		return bench_parse_uint(arg, 1, 600000, &s->stall_ms);
	case 'R':
		return bench_parse_uint(arg, 0, 1 << 30, &s->rcvbuf);
	case 'p':
		return bench_parse_uint(arg, 1, 1 << 30, &o->relay_pid);
	case 'k':
		o->keep_tmp = true;
		return 0;
	case 'P':
		o->per_client = true;
		return 0;
	case 'C':
		return bench_parse_uint(arg, 0, 1000000, &s->connect_rate);
	case 'B':
		o->bpf = arg;
		return 0;
	case 'A':
		if (o->nserve_args == FANOUT_MAX_FAULTS)
			return -E2BIG;
		o->serve_args[o->nserve_args++] = arg;
		return 0;
	case 'h':
		return -ECANCELED;
	case 'F':
		if (o->nfaults == FANOUT_MAX_FAULTS)
			return -E2BIG;
		o->faults[o->nfaults++] = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

static int fanout_parse(int argc, char **argv, struct fanout_opts *o)
{
	static const struct option opts[] = {
		{"relay", required_argument, NULL, 'r'},
		{"clients", required_argument, NULL, 'c'},
		{"bitrate", required_argument, NULL, 'b'},
		{"duration", required_argument, NULL, 'd'},
		{"json", required_argument, NULL, 'j'},
		{"send-mode", required_argument, NULL, 'm'},
		{"source", required_argument, NULL, 's'},
		{"threads", required_argument, NULL, 't'},
		{"warmup", required_argument, NULL, 'w'},
		{"stall-ms", required_argument, NULL, 'S'},
		{"rcvbuf", required_argument, NULL, 'R'},
		{"relay-pid", required_argument, NULL, 'p'},
		{"source-fault", required_argument, NULL, 'F'},
		{"keep-tmp", no_argument, NULL, 'k'},
		{"per-client", no_argument, NULL, 'P'},
		{"connect-rate", required_argument, NULL, 'C'},
		{"bpf", required_argument, NULL, 'B'},
		{"serve-arg", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, ret = 0;

	memset(o, 0, sizeof(*o));
	bench_swarm_opts_default(&o->swarm);
	o->mbps = 8;
	o->duration_s = 10;
	while (!ret && (c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		ret = fanout_parse_opt(o, c, optarg);
	if (ret)
		return ret;
	if (!o->relay_spec || !o->clients || optind != argc)
		return -EINVAL;
	o->swarm.clients = o->clients;
	o->swarm.duration_s = o->duration_s;
	return 0;
}

/* Each client is a socket: make sure the descriptor limit is not what fails first. */
static void fanout_raise_nofile(unsigned clients)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)clients + 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_max < want)
		rl.rlim_max = want;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		fprintf(stderr, "fanout: cannot raise RLIMIT_NOFILE to %lu\n", (unsigned long)want);
}

static int fanout_source_start(struct fanout_run *r)
{
	char exe[PATH_MAX], port[16], rate[32], dur[32], stats[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	const char *argv[16 + 2 * FANOUT_MAX_FAULTS];
	struct bench_spawn_opts so = {.log_path = log};
	unsigned n = 0, i;
	int ret;

	ret = bench_self_exe(exe, sizeof(exe));
	if (!ret)
		ret = bench_free_port(&r->src_port);
	if (ret)
		return ret;
	snprintf(port, sizeof(port), "%u", r->src_port);
	snprintf(rate, sizeof(rate), "%.6f", r->o.mbps);
	snprintf(dur, sizeof(dur), "%.1f", r->o.duration_s + 120);
	snprintf(stats, sizeof(stats), "%s/source.json", r->tmpdir);
	snprintf(log, sizeof(log), "%s/source.log", r->tmpdir);
	argv[n++] = exe;
	argv[n++] = "source";
	argv[n++] = "--port", argv[n++] = port;
	argv[n++] = "--bitrate", argv[n++] = rate;
	argv[n++] = "--duration", argv[n++] = dur;
	argv[n++] = "--stats", argv[n++] = stats;
	if (r->o.source_file)
		argv[n++] = "--file", argv[n++] = r->o.source_file;
	if (r->relay.source_raw)
		argv[n++] = "--raw";
	for (i = 0; i < r->o.nfaults; i++)
		argv[n++] = "--fault", argv[n++] = r->o.faults[i];
	argv[n] = NULL;
	ret = bench_spawn(argv, &so, &r->src_pid);
	if (!ret)
		ret = bench_wait_port(r->src_port, 10000);
	if (ret) {
		fprintf(stderr, "fanout: paced source did not start: %s\n", ptv_strerror(ret));
		bench_log_tail(log, 2000);
	}
	return ret;
}

static void fanout_source_stop(struct fanout_run *r)
{
	char stats[PATH_MAX + 16];

	if (r->src_pid <= 0)
		return;
	bench_stop(r->src_pid, 3000);
	r->src_pid = 0;
	snprintf(stats, sizeof(stats), "%s/source.json", r->tmpdir);
	r->source_stats = json_load_file(stats, 0, NULL);
}

/*
 * Waits until one reader gets TS from the relay, so the relay's start-up (VLC opening its input
 * and mux) is not billed to the clients. Bounded by @timeout_ms.
 */
static int fanout_prime(const struct bench_relay *rl, unsigned timeout_ms)
{
	struct bench_swarm_opts o;
	struct bench_swarm *sw;
	struct bench_swarm_result res;
	uint64_t end = ptv_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int ret = -ETIMEDOUT;

	while (ret && !bench_interrupted && ptv_now_ns() < end) {
		bench_swarm_opts_default(&o);
		o.threads = 1;
		o.duration_s = 0.5;
		o.warmup_s = 0;
		if (bench_swarm_target(&o, rl->host, rl->port, rl->path, rl->raw) ||
		    bench_swarm_start(&o, &sw))
			return -EINVAL;
		bench_swarm_finish(sw, &res);
		if (res.clients[0].packets >= 10)
			ret = 0;
		bench_swarm_result_free(&res);
	}
	return ret;
}

/* The labels of plextv_bpf_info (which path filters discovery and counts channel bytes). */
static void fanout_bpf_info(struct fanout_run *r, const char *text)
{
	const char *p = strstr(text, "\nplextv_bpf_info{"), *e;

	if (!p || !(e = strchr(p, '}')))
		return;
	p += strlen("\nplextv_bpf_info{");
	snprintf(r->bpf_info, sizeof(r->bpf_info), "%.*s", (int)(e - p), p);
}

/* plextv's own counters (NaN for other relays). */
static void fanout_metrics(struct fanout_run *r, double *up, double *resync, double *evict,
			   uint64_t *t)
{
	struct ptv_buf body = {0};
	int status;

	*up = *resync = *evict = NAN;
	*t = ptv_now_ns();
	if (r->relay.kind != BENCH_RELAY_PLEXTV)
		return;
	if (!bench_http_get(r->relay.port, "/metrics", &status, &body, 3000) && status == 200 &&
	    !ptv_buf_putc(&body, '\0')) {
		*up = bench_metric(body.data, "plextv_relay_upstream_bytes_total", false);
		*resync = bench_metric(body.data, "plextv_relay_resyncs_total", false);
		*evict = bench_metric(body.data, "plextv_relay_evictions_total", false);
		r->bpf_enabled = bench_metric(body.data, "plextv_bpf_enabled", false);
		fanout_bpf_info(r, body.data);
	}
	ptv_buf_free(&body);
}

/* The rate the relay really receives from its ingest child (its remux can be below nominal). */
static double fanout_upstream_mbps(const struct fanout_run *r)
{
	return bench_upmeter_mbps(&r->upm);
}

static unsigned fanout_below(const struct fanout_run *r, double mbps)
{
	unsigned i, n = 0;

	for (i = 0; i < r->res.n; i++)
		n += r->res.clients[i].delivered_mbps < 0.999 * mbps;
	return n;
}

static void fanout_measure(struct fanout_run *r)
{
	struct bench_swarm *sw;
	pid_t pid = r->relay.pid;
	int ret;

	ret = bench_swarm_start(&r->o.swarm, &sw);
	if (ret) {
		fprintf(stderr, "fanout: swarm: %s\n", ptv_strerror(ret));
		return;
	}
	bench_sleep_until(bench_swarm_window_start(sw));
	r->have_usage = pid > 0 && bench_tree_usage(pid, &r->u0) == 0;
	bench_host_cpu(&r->host0[0], &r->host0[1]);
	fanout_metrics(r, &r->up0, &r->resync0, &r->evict0, &r->up_t0);
	/* the upstream rate over the same window, sampled like the clients' (every 250 ms) */
	if (r->relay.kind == BENCH_RELAY_PLEXTV)
		bench_upmeter_run(&r->upm, r->relay.port, bench_swarm_end(sw) - 100000000u, 250);
	fanout_metrics(r, &r->up1, &r->resync1, &r->evict1, &r->up_t1);
	bench_sleep_until(bench_swarm_end(sw));
	r->have_usage = r->have_usage && bench_tree_usage(pid, &r->u1) == 0;
	bench_host_cpu(&r->host1[0], &r->host1[1]);
	ret = bench_swarm_finish(sw, &r->res);
	if (ret)
		fprintf(stderr, "fanout: swarm ended with %s\n", ptv_strerror(ret));
	bench_swarm_summarize(&r->res, r->o.mbps, &r->sum);
}

static double fanout_relay_cpu(const struct fanout_run *r)
{
	return r->have_usage ? r->u1.cpu_s - r->u0.cpu_s : NAN;
}

/* The whole machine's busy share over the window (all CPUs = 100 %). */
static double fanout_host_pct(const struct fanout_run *r)
{
	double total = r->host1[1] - r->host0[1];

	return total > 0 ? (r->host1[0] - r->host0[0]) / total * 100 : NAN;
}

static json_t *fanout_json(const struct fanout_run *r)
{
	const struct bench_swarm_summary *s = &r->sum;
	double cpu = fanout_relay_cpu(r);
	json_t *j = bench_json_result("fanout", r->relay.name);

	json_object_set_new(j, "clients", json_integer(r->o.clients));
	json_object_set_new(j, "bitrate_mbps", json_real(r->o.mbps));
	json_object_set_new(j, "duration_s", json_real(r->o.duration_s));
	json_object_set_new(j, "send_mode",
			    r->o.send_mode ? json_string(r->o.send_mode) : json_null());
	json_object_set_new(j, "client_mode", json_string(r->relay.raw ? "raw" : "http"));
	json_object_set_new(j, "client_threads", json_integer(r->o.swarm.threads));
	json_object_set_new(j, "stall_ms", json_integer(r->o.swarm.stall_ms));
	json_object_set_new(j, "relay_cmd", json_string(r->relay.cmdline));
	bench_swarm_summary_json(s, j);
	bench_json_num(j, "relay_cpu_seconds", cpu);
	bench_json_num(j, "host_cpu_pct", fanout_host_pct(r));
	bench_json_num(j, "relay_cpu_pct", cpu / s->window_s * 100);
	bench_json_num(j, "gbps_per_relay_cpu", s->gbps_total / (cpu / s->window_s));
	if (r->have_usage)
		json_object_set_new(j, "rss_bytes", json_integer((json_int_t)r->u1.rss_bytes));
	else
		json_object_set_new(j, "rss_bytes", json_null());
	if (r->o.per_client)
		json_object_set_new(j, "per_client", bench_swarm_clients_json(&r->res));
	json_object_set_new(j, "source",
			    r->source_stats ? json_incref(r->source_stats) : json_null());
	if (r->relay.kind == BENCH_RELAY_PLEXTV) {
		double up = fanout_upstream_mbps(r);

		/* null: not passed (the bench then runs serve with --bpf off) */
		json_object_set_new(j, "bpf", r->o.bpf ? json_string(r->o.bpf) : json_null());
		bench_json_num(j, "upstream_mbps", up);
		bench_json_num(j, "delivered_min_pct_of_upstream", s->mbps_min / up * 100);
		json_object_set_new(j, "clients_below_99_9pct_of_upstream",
				    isnan(up) ? json_null() : json_integer(fanout_below(r, up)));
		bench_json_num(j, "resyncs", r->resync1 - r->resync0);
		bench_json_num(j, "evictions", r->evict1 - r->evict0);
		bench_json_num(j, "bpf_enabled", r->bpf_enabled);
		json_object_set_new(j, "bpf_info", json_string(r->bpf_info));
		json_object_set_new(j, "upstream_samples", json_integer(r->upm.n));
		bench_json_num(j, "upstream_mbps_two_point",
			       (r->up1 - r->up0) * 8 / ((double)(r->up_t1 - r->up_t0) / 1e9) / 1e6);
	}
	return j;
}

static void fanout_print(const struct fanout_run *r)
{
	const struct bench_swarm_summary *s = &r->sum;
	double cpu = fanout_relay_cpu(r);

	printf("fanout relay=%s clients=%u bitrate=%.2f Mbit/s duration=%.1f s (window %.1f s, "
	       "%s clients)\n",
	       r->relay.name, r->o.clients, r->o.mbps, r->o.duration_s, s->window_s,
	       r->relay.raw ? "raw TCP" : "HTTP");
	printf("  delivered Mbit/s: min %.3f  p1 %.3f  p50 %.3f  total %.3f Gbit/s\n", s->mbps_min,
	       s->mbps_p1, s->mbps_p50, s->gbps_total);
	printf("  relay: CPU %.3f s (%.1f %%)  %.2f Gbit/s per relay CPU  RSS %.1f MiB\n", cpu,
	       cpu / s->window_s * 100, s->gbps_total / (cpu / s->window_s),
	       r->have_usage ? (double)r->u1.rss_bytes / 1048576 : NAN);
	printf("  host: %.1f %% of all CPUs busy over the window\n", fanout_host_pct(r));
	printf("  clients: CPU %.3f s  ttfb p50 %.1f ms  p95 %.1f ms  max gap %.0f ms\n", s->cpu_s,
	       s->ttfb_ms_p50, s->ttfb_ms_p95, s->max_gap_ms);
	printf("  checks: stalls %llu  cc_errors %llu  sync_errors %llu  dropped %u  refused %u  "
	       "connect_pending %u  http_errors %u  no_data %u  below_99.9%% %u  (TS packets "
	       "%llu)\n",
	       (unsigned long long)s->stalls, (unsigned long long)s->cc_errors,
	       (unsigned long long)s->sync_errors, s->dropped, s->refused, s->connect_pending,
	       s->http_errors, s->no_data, s->below_999, (unsigned long long)s->packets);
	if (r->relay.kind == BENCH_RELAY_PLEXTV) {
		double up = fanout_upstream_mbps(r);

		printf("  plextv: upstream (ingest output) %.3f Mbit/s; min client %.2f %% of it; "
		       "%u clients below 99.9 %% of it; resyncs %.0f evictions %.0f\n",
		       up, s->mbps_min / up * 100, fanout_below(r, up), r->resync1 - r->resync0,
		       r->evict1 - r->evict0);
	}
}

static int fanout_prepare(struct fanout_run *r)
{
	int ret;

	if (r->relay.needs_source) {
		ret = fanout_source_start(r);
		if (ret)
			return ret;
	}
	ret = bench_relay_start(&r->relay, r->tmpdir, r->src_port);
	if (ret == -ENOENT) {
		fprintf(stderr, "fanout: %s is not installed\n", r->relay.name);
		return ret;
	}
	if (ret)
		return ret;
	if (r->relay.kind == BENCH_RELAY_DIRECT)
		r->relay.pid = r->src_pid;
	if (r->o.relay_pid)
		r->relay.pid = (pid_t)r->o.relay_pid;
	ret = bench_swarm_target(&r->o.swarm, r->relay.host, r->relay.port, r->relay.path,
				 r->relay.raw);
	if (ret)
		return ret;
	ret = fanout_prime(&r->relay, 20000);
	if (ret)
		fprintf(stderr, "fanout: %s delivered no TS within 20 s\n", r->relay.name);
	return ret;
}

static int fanout_finish(struct fanout_run *r)
{
	json_t *j;
	int ret = 0;

	fanout_print(r);
	if (!r->o.json_path)
		return 0;
	j = fanout_json(r);
	ret = bench_json_write(j, r->o.json_path);
	json_decref(j);
	if (ret)
		fprintf(stderr, "fanout: cannot write %s: %s\n", r->o.json_path, ptv_strerror(ret));
	return ret;
}

int bench_cmd_fanout(int argc, char **argv)
{
	struct fanout_run *r = ptv_xcalloc(1, sizeof(*r));
	int ret;

	ret = fanout_parse(argc, argv, &r->o);
	if (!ret)
		ret = bench_relay_parse(r->o.relay_spec, &r->relay);
	if (ret) {
		fanout_usage(ret == -ECANCELED ? stdout : stderr);
		free(r);
		return ret == -ECANCELED ? BENCH_EX_OK : BENCH_EX_USAGE;
	}
	r->relay.send_mode = r->o.send_mode;
	r->relay.bpf = r->o.bpf;
	r->o.serve_args[r->o.nserve_args] = NULL;
	r->relay.extra = r->o.serve_args;
	fanout_raise_nofile(r->o.clients);
	ret = bench_tmpdir(r->tmpdir, sizeof(r->tmpdir));
	if (!ret)
		ret = fanout_prepare(r);
	if (!ret && !bench_interrupted)
		fanout_measure(r);
	bench_relay_stop(&r->relay);
	fanout_source_stop(r);
	if (!ret && r->res.clients)
		ret = fanout_finish(r);
	bench_swarm_result_free(&r->res);
	json_decref(r->source_stats);
	if (r->o.keep_tmp)
		fprintf(stderr, "fanout: logs kept in %s\n", r->tmpdir);
	else
		bench_rmtree(r->tmpdir);
	ret = ret == -ENOENT ? BENCH_EX_UNAVAILABLE : ret ? BENCH_EX_FAIL : BENCH_EX_OK;
	free(r);
	return ret;
}
