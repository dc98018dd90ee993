/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
