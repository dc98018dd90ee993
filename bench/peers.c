/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "peers.h"

#define BENCH_USER "plextv-bench"

int bench_relay_parse(const char *spec, struct bench_relay *r)
{
	struct bench_url u;
	unsigned port;
	const char *colon;
	int ret;

	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "127.0.0.1");
	snprintf(r->path, sizeof(r->path), "/stream");
	r->name = spec;
	if (!strcmp(spec, "plextv")) {
		r->kind = BENCH_RELAY_PLEXTV;
		r->needs_source = true;
		snprintf(r->path, sizeof(r->path), "/auto/v1");
	} else if (!strcmp(spec, "vlc")) {
		r->kind = BENCH_RELAY_VLC;
		r->needs_source = true;
	} else if (!strcmp(spec, "gstreamer")) {
		r->kind = BENCH_RELAY_GSTREAMER;
		r->needs_source = r->source_raw = r->raw = true;
	} else if (!strcmp(spec, "direct")) {
		r->kind = BENCH_RELAY_DIRECT;
		r->needs_source = true;
	} else if (!strncmp(spec, "url:", 4)) {
		ret = bench_url_parse(spec + 4, &u);
		if (ret)
			return ret;
		r->kind = BENCH_RELAY_URL;
		r->name = "url";
		r->port = u.port;
		snprintf(r->host, sizeof(r->host), "%s", u.host);
		snprintf(r->path, sizeof(r->path), "%s", u.path);
	} else if (!strncmp(spec, "raw:", 4)) {
		colon = strrchr(spec + 4, ':');
		if (!colon || (size_t)(colon - spec - 4) >= sizeof(r->host) ||
		    bench_parse_uint(colon + 1, 1, 65535, &port))
			return -EINVAL;
		r->kind = BENCH_RELAY_RAW;
		r->name = "raw";
		r->raw = true;
		r->port = (uint16_t)port;
		snprintf(r->host, sizeof(r->host), "%.*s", (int)(colon - spec - 4), spec + 4);
		if (strcmp(r->host, "127.0.0.1") && strcmp(r->host, "[::1]") &&
		    strcmp(r->host, "localhost"))
			return -EPERM;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int relay_vlc(struct bench_relay *r, const char *tmpdir, uint16_t src_port, const char *log)
{
	char home[PATH_MAX], env_home[PATH_MAX + 8], input[64], sout[640];
	const char *env[] = {env_home, NULL};
	const char *argv[] = {
		"cvlc", "--quiet", "--no-stats", "--ignore-config", "--network-caching=300",
		input,	"--sout",  sout,	 "--sout-keep",	    NULL};
	struct bench_spawn_opts o = {.log_path = log, .env = env};
	int ret;

	if (!bench_have_program("cvlc"))
		return -ENOENT;
	/* VLC refuses to run as root: use a system user of our own, HOME in our temp dir. */
	ret = bench_user_ensure(BENCH_USER, &o.uid, &o.gid);
	if (ret)
		return ret;
	snprintf(home, sizeof(home), "%s/vlc-home", tmpdir);
	mkdir(home, 0700);
	if (chown(home, o.uid, o.gid) == -1)
		return -errno;
	snprintf(env_home, sizeof(env_home), "HOME=%s", home);
	snprintf(input, sizeof(input), "http://127.0.0.1:%u/stream", src_port);
	snprintf(sout, sizeof(sout), "#std{access=http,mux=ts,dst=127.0.0.1:%u%s}", r->port,
		 r->path);
	snprintf(r->cmdline, sizeof(r->cmdline),
		 "cvlc --quiet --no-stats --ignore-config --network-caching=300 %s --sout '%s' "
		 "--sout-keep (as user " BENCH_USER ")",
		 input, sout);
	return bench_spawn(argv, &o, &r->pid);
}

static int relay_gstreamer(struct bench_relay *r, uint16_t src_port, const char *log)
{
	char src[32], sink[32];
	/* gst-launch takes each element property as its own word. */
	const char *argv[] = {"gst-launch-1.0",	 "-q", "tcpclientsrc",	"host=127.0.0.1", src,
			      "blocksize=65536", "!",  "tcpserversink", "host=127.0.0.1", sink,
			      "sync=false",	 NULL};
	struct bench_spawn_opts o = {.log_path = log};

	if (!bench_have_program("gst-launch-1.0"))
		return -ENOENT;
	snprintf(src, sizeof(src), "port=%u", src_port);
	snprintf(sink, sizeof(sink), "port=%u", r->port);
	snprintf(r->cmdline, sizeof(r->cmdline),
		 "gst-launch-1.0 -q tcpclientsrc host=127.0.0.1 port=%u blocksize=65536 ! "
		 "tcpserversink host=127.0.0.1 port=%u sync=false",
		 src_port, r->port);
	return bench_spawn(argv, &o, &r->pid);
}

size_t bench_serve_argv(const char **argv, const char *bin, const char *data_dir,
			const char *listen, const char *bpf)
{
	const char *fixed[] = {bin,
			       "serve",
			       "--data-dir",
			       data_dir,
			       "--listen",
			       listen,
			       "--demo-dir",
			       "",
			       "--ssdp",
			       "off",
			       "--hdhr-discovery",
			       "off",
			       "--http-port80",
			       "off",
			       "--log-level",
			       "warn",
			       "--bpf",
			       bpf};

	memcpy(argv, fixed, sizeof(fixed));
	return PTV_ARRAY_SIZE(fixed);
}

int bench_plextv_bin(char *out, size_t n)
{
	const char *env = getenv("PLEXTV_BIN");
	char dir[PATH_MAX];
	int ret;

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return access(out, X_OK) ? -ENOENT : 0;
	}
	ret = bench_self_dir(dir, sizeof(dir));
	if (ret)
		return ret;
	snprintf(out, n, "%s/plextv", dir);
	return access(out, X_OK) ? -ENOENT : 0;
}

int bench_plextv_run(const char *bin, const char *const *args, const char *log, unsigned timeout_ms)
{
	const char *argv[32];
	struct bench_spawn_opts so = {.log_path = log};
	unsigned n = 0;
	pid_t pid;
	int status, ret;

	argv[n++] = bin;
	while (*args && n < PTV_ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	ret = bench_spawn(argv, &so, &pid);
	if (ret)
		return ret;
	ret = bench_wait_exit(pid, timeout_ms, &status);
	if (ret) {
		bench_stop(pid, 1000);
		return ret;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int bench_wait_body(uint16_t port, const char *path, const char *needle, unsigned timeout_ms)
{
	uint64_t end = ptv_now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct ptv_buf body = {0};
	int status, ret = -ETIMEDOUT;

	while (!bench_interrupted && ptv_now_ns() < end) {
		ptv_buf_reset(&body);
		if (!bench_http_get(port, path, &status, &body, 2000) && status == 200 &&
		    !ptv_buf_putc(&body, '\0') && strstr(body.data, needle)) {
			ret = 0;
			break;
		}
		usleep(50000);
	}
	ptv_buf_free(&body);
	return ret;
}

double bench_metric(const char *text, const char *name, bool max)
{
	size_t len = strlen(name);
	const char *p = text, *v;
	double sum = 0, m = -INFINITY, x;
	bool any = false;

	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, name, len) || (p[len] != ' ' && p[len] != '{'))
			continue;
		v = p + len;
		if (*v == '{' && !(v = strchr(v, '}')))
			continue;
		x = strtod(v + 1, NULL);
		sum += x;
		m = x > m ? x : m;
		any = true;
	}
	return !any ? NAN : max ? m : sum;
}

double bench_metric_get(uint16_t port, const char *name, bool max)
{
	struct ptv_buf body = {0};
	int status;
	double v = NAN;

	if (!bench_http_get(port, "/metrics", &status, &body, 5000) && status == 200 &&
	    !ptv_buf_putc(&body, '\0'))
		v = bench_metric(body.data, name, max);
	ptv_buf_free(&body);
	return v;
}

/*
 * plextv: `serve` on a temporary data dir (no demo lineup, no discovery), a one-channel M3U
 * pointing at the paced source imported with `plextv import m3u`, then wait until
 * /lineup.json lists GuideNumber 1. Clients GET /auto/v1. The measured tree is serve and its
 * ingest child.
 */
static int relay_plextv(struct bench_relay *r, const char *tmpdir, uint16_t src_port,
			const char *log)
{
	char listen[64], m3u[PATH_MAX + 16], body[256], conf[PATH_MAX + 32];
	const char *argv[48];
	const char *imp[] = {"import",	  "m3u",    m3u,     "--data-dir",
			     r->data_dir, "--name", "bench", NULL};
	struct bench_spawn_opts so = {.log_path = log};
	size_t n = 0, off = 0, i;
	int ret;

	ret = bench_plextv_bin(r->bin, sizeof(r->bin));
	if (ret)
		return ret;
	r->source_port = src_port;
	snprintf(r->data_dir, sizeof(r->data_dir), "%s/plextv-data", tmpdir);
	mkdir(r->data_dir, 0700);
	snprintf(m3u, sizeof(m3u), "%s/bench.m3u", tmpdir);
	snprintf(body, sizeof(body),
		 "#EXTM3U\n#EXTINF:-1 tvg-id=\"bench.1\" tvg-chno=\"1\",Bench\n"
		 "http://127.0.0.1:%u/stream\n",
		 src_port);
	ret = bench_write_file(m3u, body, strlen(body));
	if (ret)
		return ret;
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", r->port);
	n = bench_serve_argv(argv, r->bin, r->data_dir, listen, r->bpf ? r->bpf : "off");
	if (r->send_mode)
		argv[n++] = "--send-mode", argv[n++] = r->send_mode;
	for (i = 0; r->extra && r->extra[i] && n < PTV_ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = r->extra[i];
	argv[n] = NULL;
	for (i = 0; i < n && off < sizeof(r->cmdline) - 1; i++)
		off += (size_t)snprintf(r->cmdline + off, sizeof(r->cmdline) - off, "%s%s",
					i ? " " : "", *argv[i] ? argv[i] : "''");
	ret = bench_spawn(argv, &so, &r->pid);
	if (!ret)
		ret = bench_wait_port(r->port, 20000);
	snprintf(conf, sizeof(conf), "%s/plextv-import.log", tmpdir);
	if (!ret)
		ret = bench_plextv_run(r->bin, imp, conf, 60000);
	if (ret) {
		fprintf(stderr, "plextv: import of the one-channel M3U failed\n");
		bench_log_tail(conf, 2000);
		return ret;
	}
	return bench_wait_body(r->port, "/lineup.json", "\"GuideNumber\":\"1\"", 20000);
}

int bench_relay_start(struct bench_relay *r, const char *tmpdir, uint16_t src_port)
{
	char log[PATH_MAX];
	int ret;

	snprintf(log, sizeof(log), "%s/relay-%s.log", tmpdir, r->name);
	if (r->kind == BENCH_RELAY_URL || r->kind == BENCH_RELAY_RAW) {
		snprintf(r->cmdline, sizeof(r->cmdline), "external server %s:%u", r->host, r->port);
		return 0;
	}
	if (r->kind == BENCH_RELAY_DIRECT) {
		r->port = src_port;
		snprintf(r->cmdline, sizeof(r->cmdline), "none: clients read the paced source");
		return 0;
	}
	ret = bench_free_port(&r->port);
	if (ret)
		return ret;
	if (r->kind == BENCH_RELAY_VLC)
		ret = relay_vlc(r, tmpdir, src_port, log);
	else if (r->kind == BENCH_RELAY_GSTREAMER)
		ret = relay_gstreamer(r, src_port, log);
	else if (r->kind == BENCH_RELAY_PLEXTV)
		ret = relay_plextv(r, tmpdir, src_port, log);
	else
		ret = -ENOSYS;
	if (ret)
		return ret;
	ret = bench_wait_port(r->port, 20000);
	if (ret) {
		fprintf(stderr, "fanout: %s did not open port %u\n", r->name, r->port);
		bench_log_tail(log, 2000);
		bench_relay_stop(r);
	}
	return ret;
}

void bench_relay_stop(struct bench_relay *r)
{
	if (r->pid > 0 && r->kind != BENCH_RELAY_DIRECT)
		bench_stop(r->pid, 3000);
	if (r->kind != BENCH_RELAY_DIRECT)
		r->pid = 0;
}

void bench_upmeter_sample(struct bench_upmeter *m, uint16_t port)
{
	uint64_t t = ptv_now_ns();
	double v = bench_metric_get(port, "plextv_relay_upstream_bytes_total", false);

	if (isnan(v) || m->n == BENCH_UPMETER_MAX)
		return;
	/* the scrape's midpoint is closest to when the counter was read */
	m->t[m->n] = ((double)t + (double)ptv_now_ns()) / 2e9;
	m->bytes[m->n++] = v;
}

void bench_upmeter_run(struct bench_upmeter *m, uint16_t port, uint64_t until_ns,
		       unsigned period_ms)
{
	uint64_t next = ptv_now_ns();

	while (!bench_interrupted && next < until_ns) {
		bench_upmeter_sample(m, port);
		next += (uint64_t)period_ms * 1000000u;
		bench_sleep_until(next < until_ns ? next : until_ns);
	}
	bench_upmeter_sample(m, port);
}

double bench_upmeter_mbps(const struct bench_upmeter *m)
{
	double st = 0, sb = 0, stt = 0, stb = 0, n = m->n, d;
	unsigned i;

	if (m->n < 3)
		return NAN;
	for (i = 0; i < m->n; i++) {
		double t = m->t[i] - m->t[0];

		st += t, sb += m->bytes[i], stt += t * t, stb += t * m->bytes[i];
	}
	d = n * stt - st * st;
	return d > 0 ? (n * stb - st * sb) / d * 8 / 1e6 : NAN;
}
