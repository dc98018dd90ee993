/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv-bench http` (issue 2's benchmark, B6 baseline): requests/s and latency with wrk for
 * GET /health ("ok\n") and a 1 KiB static body, PlexTV against nginx serving the same bytes, in
 * the same run with the same wrk settings.
 *
 *   plextv /health    the real `plextv serve --workers N`
 *   plextv /discover.json  the same `serve` (HDHomeRun document, ~300 B) when it has the
 *                     route; nginx serves a copy of the exact bytes serve answered
 *   plextv /bench/1k  PlexTV's HTTP stack with a bench route (plextv-httpd, see httpd.c),
 *                     because `serve` has no 1 KiB static route before discover.json
 *   nginx             worker_processes N, reuseport (one listener per worker, as PlexTV's
 *                     reactors), access_log off, keep-alive; /health is `return 200 "ok\n"`,
 *                     /bench/1k a static file with open_file_cache
 *
 * Server CPU is the /proc utime+stime of the server and its children over the measured wrk run.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

struct http_opts {
	unsigned workers;
	unsigned threads;
	unsigned connections;
	double duration_s;
	double warmup_s;
	const char *json_path;
	const char *plextv;
	bool keep_tmp;
};

struct http_server {
	const char *name; /* plextv or nginx */
	const char *impl; /* what exactly runs */
	uint16_t port;
	pid_t pid;
	char log[PATH_MAX + 64];
};

struct http_row {
	const char *server, *impl, *path;
	size_t body_bytes;
	struct wrk_result w;
	double cpu_s;
	bool ok;
};

#define HTTP_ROWS 8

struct http_run {
	struct http_opts o;
	char tmpdir[PATH_MAX];
	struct http_server serve, stack, nginx;
	struct http_row rows[HTTP_ROWS];
	unsigned nrows;
	struct ptv_buf discover; /* serve's /discover.json, served by nginx as the same bytes */
};

static void http_usage(FILE *f)
{
	fprintf(f,
		"usage: plextv-bench http [--workers N] [--threads T] [--connections C]\n"
		"       [--duration S] [--warmup S] [--json FILE] [--plextv PATH] [--keep-tmp]\n");
}

static int http_parse(int argc, char **argv, struct http_opts *o)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 't'},
		{"connections", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},
		{"json", required_argument, NULL, 'j'},
		{"plextv", required_argument, NULL, 'p'},
		{"keep-tmp", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, ret = 0;

	memset(o, 0, sizeof(*o));
	o->workers = 1;
	o->threads = 1;
	o->connections = 64;
	o->duration_s = 10;
	o->warmup_s = 1;
	while (!ret && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			ret = bench_parse_uint(optarg, 1, 64, &o->workers);
			break;
		case 't':
			ret = bench_parse_uint(optarg, 1, 64, &o->threads);
			break;
		case 'c':
			ret = bench_parse_uint(optarg, 1, 100000, &o->connections);
			break;
		case 'd':
			ret = bench_parse_double(optarg, 1, 600, &o->duration_s);
			break;
		case 'w':
			ret = bench_parse_double(optarg, 0, 60, &o->warmup_s);
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 'p':
			o->plextv = optarg;
			break;
		case 'k':
			o->keep_tmp = true;
			break;
		case 'h':
			return -ECANCELED;
		default:
			ret = -EINVAL;
			break;
		}
	}
	return ret || optind != argc ? -EINVAL : 0;
}

/* Waits until @path answers 200 with exactly @body (the same bytes on every server). */
static int http_wait_ready(uint16_t port, const char *path, const char *body, size_t len)
{
	uint64_t end = ptv_now_ns() + 15000000000ull;
	struct ptv_buf got = {0};
	int status = 0, ret = -ETIMEDOUT;

	while (!bench_interrupted && ptv_now_ns() < end) {
		ptv_buf_reset(&got);
		if (!bench_http_get(port, path, &status, &got, 1000) && status == 200) {
			ret = got.len == len && !memcmp(got.data, body, len) ? 0 : -EBADMSG;
			break;
		}
		usleep(50000);
	}
	ptv_buf_free(&got);
	return ret;
}

static int http_check_bodies(const struct http_server *s, bool has_1k)
{
	char body[BENCH_STATIC_BYTES];
	int ret;

	bench_static_body(body, sizeof(body));
	ret = http_wait_ready(s->port, "/health", "ok\n", 3);
	if (!ret && has_1k)
		ret = http_wait_ready(s->port, "/bench/1k", body, sizeof(body));
	if (ret) {
		fprintf(stderr, "http: %s (%s) on port %u: %s\n", s->name, s->impl, s->port,
			ret == -EBADMSG ? "unexpected body" : "not answering");
		bench_log_tail(s->log, 2000);
	}
	return ret;
}

static int http_spawn(struct http_run *r, struct http_server *s, const char *const *argv)
{
	struct bench_spawn_opts so = {.log_path = s->log};

	if (strlen(r->tmpdir) > PATH_MAX - 32)
		return -ENAMETOOLONG;
	snprintf(s->log, sizeof(s->log), "%s/%s-%s.log", r->tmpdir, s->name, s->impl);
	return bench_spawn(argv, &so, &s->pid);
}

/* Keeps serve's /discover.json if it has one (the relay's HDHomeRun identity document). */
static void http_fetch_discover(struct http_run *r)
{
	int status = 0;

	if (bench_http_get(r->serve.port, "/discover.json", &status, &r->discover, 2000) ||
	    status != 200)
		ptv_buf_free(&r->discover);
}

static int http_start_serve(struct http_run *r)
{
	char bin[PATH_MAX], data[PATH_MAX + 8], listen[32], workers[16];
	const char *argv[] = {bin,    "serve",	   "--data-dir", data, "--listen",
			      listen, "--workers", workers,	 NULL};
	int ret;

	if (r->o.plextv) {
		snprintf(bin, sizeof(bin), "%s", r->o.plextv);
	} else {
		ret = bench_self_dir(bin, sizeof(bin) - 8);
		if (ret)
			return ret;
		strcat(bin, "/plextv");
	}
	if (access(bin, X_OK)) {
		fprintf(stderr, "http: %s not found (build the plextv target)\n", bin);
		return -ENOENT;
	}
	snprintf(data, sizeof(data), "%s/data", r->tmpdir);
	mkdir(data, 0700);
	r->serve = (struct http_server){.name = "plextv", .impl = "serve"};
	ret = bench_free_port(&r->serve.port);
	if (ret)
		return ret;
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", r->serve.port);
	snprintf(workers, sizeof(workers), "%u", r->o.workers);
	ret = http_spawn(r, &r->serve, argv);
	if (!ret)
		ret = http_check_bodies(&r->serve, false);
	if (!ret)
		http_fetch_discover(r);
	return ret;
}

static int http_start_stack(struct http_run *r)
{
	char exe[PATH_MAX], port[16], workers[16];
	const char *argv[] = {exe, "plextv-httpd", port, workers, NULL};
	int ret;

	r->stack = (struct http_server){.name = "plextv", .impl = "http-stack"};
	ret = bench_self_exe(exe, sizeof(exe));
	if (!ret)
		ret = bench_free_port(&r->stack.port);
	if (ret)
		return ret;
	snprintf(port, sizeof(port), "%u", r->stack.port);
	snprintf(workers, sizeof(workers), "%u", r->o.workers);
	ret = http_spawn(r, &r->stack, argv);
	return ret ? ret : http_check_bodies(&r->stack, true);
}

static int http_nginx_conf(struct http_run *r, const char *conf)
{
	struct ptv_buf b = {0};
	char path[PATH_MAX + 32], body[BENCH_STATIC_BYTES];
	int ret;

	snprintf(path, sizeof(path), "%s/www", r->tmpdir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/www/bench", r->tmpdir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/www/bench/1k", r->tmpdir);
	bench_static_body(body, sizeof(body));
	ret = bench_write_file(path, body, sizeof(body));
	snprintf(path, sizeof(path), "%s/www/discover.json", r->tmpdir);
	if (!ret && r->discover.len)
		ret = bench_write_file(path, r->discover.data, r->discover.len);
	if (ret)
		return ret;
	ptv_buf_printf(
		&b,
		"worker_processes %u;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n"
		"events { worker_connections 16384; }\n"
		"http {\n  access_log off;\n  server_tokens off;\n"
		"  keepalive_timeout 75s;\n  keepalive_requests 100000000;\n"
		"  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n"
		"  open_file_cache max=64 inactive=600s;\n"
		"  client_body_temp_path %s/tmp;\n  proxy_temp_path %s/tmp;\n"
		"  fastcgi_temp_path %s/tmp;\n  uwsgi_temp_path %s/tmp;\n"
		"  scgi_temp_path %s/tmp;\n"
		"  server {\n    listen 127.0.0.1:%u reuseport;\n    root %s/www;\n"
		"    location = /health {\n      default_type \"text/plain; charset=utf-8\";\n"
		"      return 200 \"ok\\n\";\n    }\n"
		"    location = /bench/1k { default_type \"text/plain; charset=utf-8\"; }\n"
		"    location = /discover.json { default_type application/json; }\n"
		"  }\n}\n",
		r->o.workers, r->tmpdir, r->tmpdir, r->tmpdir, r->tmpdir, r->tmpdir, r->tmpdir,
		r->tmpdir, r->nginx.port, r->tmpdir);
	ret = b.oom ? -ENOMEM : bench_write_file(conf, b.data, b.len);
	ptv_buf_free(&b);
	return ret;
}

static int http_start_nginx(struct http_run *r)
{
	char conf[PATH_MAX + 16], errlog[PATH_MAX + 32], tmp[PATH_MAX + 8];
	const char *argv[] = {"nginx", "-e",	  errlog, "-c",		 conf,
			      "-p",    r->tmpdir, "-g",	  "daemon off;", NULL};
	int ret;

	if (!bench_have_program("nginx") && access("/usr/sbin/nginx", X_OK))
		return -ENOENT;
	if (!bench_have_program("nginx"))
		argv[0] = "/usr/sbin/nginx";
	r->nginx = (struct http_server){.name = "nginx", .impl = "nginx"};
	ret = bench_free_port(&r->nginx.port);
	if (ret)
		return ret;
	snprintf(conf, sizeof(conf), "%s/nginx.conf", r->tmpdir);
	snprintf(errlog, sizeof(errlog), "%s/nginx-error.log", r->tmpdir);
	snprintf(tmp, sizeof(tmp), "%s/tmp", r->tmpdir);
	mkdir(tmp, 0755);
	ret = http_nginx_conf(r, conf);
	if (!ret)
		ret = http_spawn(r, &r->nginx, argv);
	if (!ret)
		ret = http_check_bodies(&r->nginx, true);
	if (!ret && r->discover.len)
		ret = http_wait_ready(r->nginx.port, "/discover.json", r->discover.data,
				      r->discover.len);
	return ret;
}

static double wrk_unit(double v, const char *u)
{
	if (!strcmp(u, "us"))
		return v / 1000;
	if (!strcmp(u, "ms"))
		return v;
	if (!strcmp(u, "s"))
		return v * 1000;
	return NAN;
}

static double wrk_bytes(double v, const char *u)
{
	static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
	size_t i;

	for (i = 0; i < PTV_ARRAY_SIZE(units); i++, v *= 1024) {
		if (!strcmp(u, units[i]))
			return v;
	}
	return NAN;
}

/* Reads the latency percentile line "     50%  151.00us" from wrk --latency output. */
static double wrk_percentile(const char *out, const char *pct)
{
	const char *p = strstr(out, "Latency Distribution");
	char unit[8];
	double v;

	if (!p || !(p = strstr(p, pct)))
		return NAN;
	if (sscanf(p + strlen(pct), " %lf%7[a-z]", &v, unit) != 2)
		return NAN;
	return wrk_unit(v, unit);
}

int bench_wrk_parse(const char *out, struct wrk_result *w)
{
	unsigned long long a, b, c, d, n;
	const char *p;
	char unit[8];
	double v;

	memset(w, 0, sizeof(*w));
	p = strstr(out, "Requests/sec:");
	if (!p || sscanf(p, "Requests/sec: %lf", &w->rps) != 1)
		return -EPROTO;
	w->p50_ms = wrk_percentile(out, "50%");
	w->p99_ms = wrk_percentile(out, "99%");
	for (p = out; (p = strstr(p, " requests in ")); p++) {
		const char *line = p;

		while (line > out && line[-1] != '\n')
			line--;
		if (sscanf(line, " %llu requests in %*[^,], %lf%7[A-Z] read", &n, &v, unit) == 3) {
			w->requests = n;
			w->resp_bytes = n ? wrk_bytes(v, unit) / (double)n : NAN;
		}
		break;
	}
	p = strstr(out, "Socket errors:");
	if (p && sscanf(p, "Socket errors: connect %llu, read %llu, write %llu, timeout %llu", &a,
			&b, &c, &d) == 4)
		w->errors = a + b + c + d;
	p = strstr(out, "Non-2xx or 3xx responses:");
	if (p && sscanf(p, "Non-2xx or 3xx responses: %llu", &n) == 1)
		w->non2xx = n;
	return 0;
}

static int wrk_run(struct http_run *r, uint16_t port, const char *path, double secs,
		   struct wrk_result *w)
{
	char t[16], c[16], d[16], url[128], log[PATH_MAX + 16];
	const char *argv[] = {"wrk", "-t",	  t,	       "-c", c,	  "-d",
			      d,     "--latency", "--timeout", "5s", url, NULL};
	struct bench_spawn_opts so = {.log_path = log};
	struct ptv_buf out = {0};
	FILE *f;
	pid_t pid;
	int status, ret;

	snprintf(t, sizeof(t), "%u", r->o.threads);
	snprintf(c, sizeof(c), "%u", r->o.connections);
	snprintf(d, sizeof(d), "%.0fs", ceil(secs));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	snprintf(log, sizeof(log), "%s/wrk.out", r->tmpdir);
	unlink(log);
	ret = bench_spawn(argv, &so, &pid);
	if (ret)
		return ret;
	ret = bench_wait_exit(pid, (unsigned)(ceil(secs) * 1000) + 20000, &status);
	if (ret) {
		bench_stop(pid, 1000);
		return ret;
	}
	f = fopen(log, "re");
	if (!f)
		return -errno;
	ptv_buf_reserve(&out, 65536);
	out.len = fread(out.data, 1, out.cap - 1, f);
	out.data[out.len] = '\0';
	fclose(f);
	ret = out.oom ? -ENOMEM : bench_wrk_parse(out.data, w);
	if (ret)
		fprintf(stderr, "http: cannot parse wrk output:\n%s\n", out.data);
	ptv_buf_free(&out);
	return ret;
}

static void http_measure(struct http_run *r, const struct http_server *s, const char *path,
			 size_t body_bytes)
{
	struct http_row *row = &r->rows[r->nrows++];
	struct bench_tree_usage u0, u1;
	struct wrk_result warm;

	*row = (struct http_row){.server = s->name,
				 .impl = s->impl,
				 .path = path,
				 .body_bytes = body_bytes,
				 .cpu_s = NAN};
	if (r->o.warmup_s > 0 && wrk_run(r, s->port, path, r->o.warmup_s, &warm))
		return;
	if (bench_tree_usage(s->pid, &u0))
		return;
	if (wrk_run(r, s->port, path, r->o.duration_s, &row->w))
		return;
	if (!bench_tree_usage(s->pid, &u1))
		row->cpu_s = u1.cpu_s - u0.cpu_s;
	row->ok = true;
}

static const struct http_row *http_find(const struct http_run *r, const char *server,
					const char *path)
{
	unsigned i;

	for (i = 0; i < r->nrows; i++) {
		if (r->rows[i].ok && !strcmp(r->rows[i].server, server) &&
		    !strcmp(r->rows[i].path, path))
			return &r->rows[i];
	}
	return NULL;
}

static double http_ratio(const struct http_run *r, const char *path)
{
	const struct http_row *p = http_find(r, "plextv", path), *n = http_find(r, "nginx", path);

	return p && n && n->w.rps > 0 ? p->w.rps / n->w.rps : NAN;
}

static json_t *http_row_json(const struct http_row *row)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:b}", "server", row->server, "impl", row->impl,
			      "path", row->path, "body_bytes", (json_int_t)row->body_bytes, "ok",
			      row->ok);

	bench_json_num(j, "requests_per_s", row->ok ? row->w.rps : NAN);
	bench_json_num(j, "latency_ms_p50", row->ok ? row->w.p50_ms : NAN);
	bench_json_num(j, "latency_ms_p99", row->ok ? row->w.p99_ms : NAN);
	bench_json_num(j, "server_cpu_seconds", row->cpu_s);
	bench_json_num(j, "server_cpu_us_per_request",
		       row->ok ? row->cpu_s / (double)row->w.requests * 1e6 : NAN);
	bench_json_num(j, "response_bytes", row->ok ? row->w.resp_bytes : NAN);
	json_object_set_new(j, "requests", json_integer((json_int_t)row->w.requests));
	json_object_set_new(j, "socket_errors", json_integer((json_int_t)row->w.errors));
	json_object_set_new(j, "non_2xx", json_integer((json_int_t)row->w.non2xx));
	return j;
}

static int http_write_json(const struct http_run *r)
{
	json_t *j = bench_json_result("http", "plextv"), *rows = json_array();
	unsigned i;
	int ret;

	json_object_set_new(j, "peer", json_string("nginx"));
	json_object_set_new(j, "workers", json_integer(r->o.workers));
	json_object_set_new(j, "wrk",
			    json_pack("{s:i, s:i, s:f, s:f}", "threads", r->o.threads,
				      "connections", r->o.connections, "duration_s",
				      ceil(r->o.duration_s), "warmup_s", r->o.warmup_s));
	for (i = 0; i < r->nrows; i++)
		json_array_append_new(rows, http_row_json(&r->rows[i]));
	json_object_set_new(j, "results", rows);
	bench_json_num(j, "ratio_health_rps", http_ratio(r, "/health"));
	bench_json_num(j, "ratio_1k_rps", http_ratio(r, "/bench/1k"));
	bench_json_num(j, "ratio_discover_rps", http_ratio(r, "/discover.json"));
	json_object_set_new(
		j, "note",
		json_string("plextv /health and /discover.json: `plextv serve`; plextv "
			    "/bench/1k: PlexTV's HTTP stack with a bench route "
			    "(plextv-bench plextv-httpd); nginx serves the same bytes"));
	ret = bench_json_write(j, r->o.json_path);
	json_decref(j);
	return ret;
}

static void http_print(const struct http_run *r)
{
	unsigned i;

	printf("http: workers=%u, wrk -t%u -c%u -d%.0fs --latency (after a %.0f s warm-up)\n",
	       r->o.workers, r->o.threads, r->o.connections, ceil(r->o.duration_s), r->o.warmup_s);
	printf("%-7s %-11s %-14s %5s %10s %8s %8s %7s %8s %7s %6s\n", "server", "impl", "path",
	       "body", "req/s", "p50 ms", "p99 ms", "CPU s", "CPUus/rq", "resp B", "errors");
	for (i = 0; i < r->nrows; i++) {
		const struct http_row *w = &r->rows[i];

		if (!w->ok) {
			printf("%-7s %-11s %-14s %5zu  (failed)\n", w->server, w->impl, w->path,
			       w->body_bytes);
			continue;
		}
		printf("%-7s %-11s %-14s %5zu %10.0f %8.3f %8.3f %7.2f %8.2f %7.0f %6llu\n",
		       w->server, w->impl, w->path, w->body_bytes, w->w.rps, w->w.p50_ms,
		       w->w.p99_ms, w->cpu_s, w->cpu_s / (double)w->w.requests * 1e6,
		       w->w.resp_bytes, (unsigned long long)(w->w.errors + w->w.non2xx));
	}
	printf("ratio plextv/nginx (req/s): /health %.3f  /discover.json %.3f  /bench/1k %.3f\n",
	       http_ratio(r, "/health"), http_ratio(r, "/discover.json"),
	       http_ratio(r, "/bench/1k"));
}

static void http_stop_all(struct http_run *r)
{
	struct http_server *s[] = {&r->serve, &r->stack, &r->nginx};
	unsigned i;

	for (i = 0; i < PTV_ARRAY_SIZE(s); i++) {
		if (s[i]->pid > 0)
			bench_stop(s[i]->pid, 5000);
		s[i]->pid = 0;
	}
}

/* One server at a time, so the measured one has the machine to itself (with wrk). */
static int http_scenario(struct http_run *r)
{
	char body[BENCH_STATIC_BYTES];
	int ret;

	bench_static_body(body, sizeof(body));
	ret = http_start_serve(r);
	if (!ret)
		http_measure(r, &r->serve, "/health", 3);
	if (!ret && r->discover.len)
		http_measure(r, &r->serve, "/discover.json", r->discover.len);
	http_stop_all(r);
	if (!ret)
		ret = http_start_nginx(r);
	if (!ret) {
		http_measure(r, &r->nginx, "/health", 3);
		if (r->discover.len)
			http_measure(r, &r->nginx, "/discover.json", r->discover.len);
		http_measure(r, &r->nginx, "/bench/1k", sizeof(body));
	}
	http_stop_all(r);
	if (!ret)
		ret = http_start_stack(r);
	if (!ret)
		http_measure(r, &r->stack, "/bench/1k", sizeof(body));
	http_stop_all(r);
	return ret;
}

int bench_cmd_http(int argc, char **argv)
{
	struct http_run *r = ptv_xcalloc(1, sizeof(*r));
	int ret;

	ret = http_parse(argc, argv, &r->o);
	if (ret) {
		http_usage(ret == -ECANCELED ? stdout : stderr);
		free(r);
		return ret == -ECANCELED ? BENCH_EX_OK : BENCH_EX_USAGE;
	}
	if (!bench_have_program("wrk")) {
		fprintf(stderr, "http: wrk is not installed (apt-get install wrk)\n");
		free(r);
		return BENCH_EX_UNAVAILABLE;
	}
	ret = bench_tmpdir(r->tmpdir, sizeof(r->tmpdir));
	if (!ret)
		ret = http_scenario(r);
	if (r->nrows)
		http_print(r);
	if (!ret && r->o.json_path)
		ret = http_write_json(r);
	ptv_buf_free(&r->discover);
	if (r->o.keep_tmp)
		fprintf(stderr, "http: logs kept in %s\n", r->tmpdir);
	else
		bench_rmtree(r->tmpdir);
	free(r);
	return ret == -ENOENT ? BENCH_EX_UNAVAILABLE : ret ? BENCH_EX_FAIL : BENCH_EX_OK;
}
