/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The ingest child: config parsing, ADTS headers, and whole runs of ptv_ingest_main() in a
 * forked child on the contract's fds, against local files (share/demo and the shared TS
 * samples, read-only). A small TS checker verifies what came out: sync bytes, continuity
 * counters per PID, PAT/PMT at the start and repeated, DTS increasing across file loops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plextv/common.h"
#include "plextv/ingest.h"
#include "ingest_int.h"

#define TS	 188
#define MAX_PIDS 8192

/* ---- a small MPEG-TS checker ---- */

struct ts_report {
	size_t packets, sync_errors, cc_errors, pat, pmt;
	int first_pid;
	size_t first_pat_at; /* packet index of the first PAT */
	size_t first_es_at;  /* packet index of the first elementary-stream packet */
	int pmt_pid;
	bool es[MAX_PIDS];
	size_t pes;		     /* PES headers with a timestamp */
	size_t dts_backwards;	     /* per PID, DTS not increasing */
	int64_t max_step;	     /* largest DTS step on any PID (90 kHz) */
	int64_t first_dts, last_dts; /* of the first ES PID seen */
	size_t pcr;
};

static int64_t ts33(const uint8_t *b)
{
	return ((int64_t)((b[0] >> 1) & 7) << 30) | ((int64_t)b[1] << 22) |
	       ((int64_t)(b[2] >> 1) << 15) | ((int64_t)b[3] << 7) | (b[4] >> 1);
}

static void parse_pat(struct ts_report *r, const uint8_t *sec)
{
	int len = ((sec[1] & 0x0f) << 8) | sec[2];

	for (int j = 8; j + 4 <= 3 + len - 4; j += 4) {
		if ((sec[j] << 8 | sec[j + 1]) != 0)
			r->pmt_pid = ((sec[j + 2] & 0x1f) << 8) | sec[j + 3];
	}
}

static void parse_pmt(struct ts_report *r, const uint8_t *sec)
{
	int len = ((sec[1] & 0x0f) << 8) | sec[2];
	int j = 12 + (((sec[10] & 0x0f) << 8) | sec[11]);

	while (j + 5 <= 3 + len - 4 && j + 5 <= TS) {
		r->es[((sec[j + 1] & 0x1f) << 8) | sec[j + 2]] = true;
		j += 5 + (((sec[j + 3] & 0x0f) << 8) | sec[j + 4]);
	}
}

static void check_pes(struct ts_report *r, int pid, const uint8_t *pl, int64_t *last)
{
	int64_t dts;

	if (pl[0] || pl[1] || pl[2] != 1 || !(pl[7] & 0x80))
		return;
	dts = ts33(pl + ((pl[7] & 0x40) ? 14 : 9));
	r->pes++;
	if (r->first_dts < 0)
		r->first_dts = dts;
	if (last[pid] >= 0) {
		if (dts <= last[pid])
			r->dts_backwards++;
		else if (dts - last[pid] > r->max_step)
			r->max_step = dts - last[pid];
	}
	last[pid] = dts;
	r->last_dts = PTV_MAX(r->last_dts, dts);
}

static void ts_check(const uint8_t *d, size_t len, struct ts_report *r)
{
	static int8_t cc[MAX_PIDS];
	static int64_t last[MAX_PIDS];

	memset(r, 0, sizeof(*r));
	r->first_pid = -1;
	r->pmt_pid = -1;
	r->first_pat_at = r->first_es_at = SIZE_MAX;
	r->first_dts = r->last_dts = -1;
	memset(cc, -1, sizeof(cc));
	for (int i = 0; i < MAX_PIDS; i++)
		last[i] = -1;
	for (size_t i = 0; i + TS <= len; i += TS) {
		const uint8_t *p = d + i;
		int pid = ((p[1] & 0x1f) << 8) | p[2], afc = (p[3] >> 4) & 3, off = 4;
		bool pusi = p[1] & 0x40, disc = false;

		r->packets++;
		if (p[0] != 0x47) {
			r->sync_errors++;
			continue;
		}
		if (r->first_pid < 0)
			r->first_pid = pid;
		if (pid == 0x1fff)
			continue;
		if (afc & 2) {
			disc = p[4] && (p[5] & 0x80);
			r->pcr += p[4] && (p[5] & 0x10);
			off = 5 + p[4];
		}
		if (afc & 1) {
			if (cc[pid] >= 0 && !disc && (p[3] & 15) != ((cc[pid] + 1) & 15) &&
			    (p[3] & 15) != cc[pid])
				r->cc_errors++;
			cc[pid] = p[3] & 15;
		}
		if (!(afc & 1) || off >= TS - 20 || !pusi)
			continue;
		if (pid == 0) {
			r->pat++;
			if (r->first_pat_at == SIZE_MAX)
				r->first_pat_at = r->packets - 1;
			parse_pat(r, p + off + 1 + p[off]);
		} else if (pid == r->pmt_pid) {
			r->pmt++;
			parse_pmt(r, p + off + 1 + p[off]);
		} else if (r->es[pid]) {
			if (r->first_es_at == SIZE_MAX)
				r->first_es_at = r->packets - 1;
			check_pes(r, pid, p + off, last);
		}
	}
}

/* The relay's promises on a captured TS lasting at least @min_s seconds of media. */
static void assert_ts_ok(const uint8_t *d, size_t len, double min_s)
{
	struct ts_report r;
	double dur;

	ts_check(d, len, &r);
	dur = (double)(r.last_dts - r.first_dts) / 90000.0;
	if (r.sync_errors || r.cc_errors || r.dts_backwards || r.first_pat_at > 2 ||
	    r.first_es_at < r.first_pat_at || dur < min_s || r.pat < dur * 4 || r.pmt < dur * 4 ||
	    !r.pcr || r.max_step > 90000)
		print_error("ts: packets=%zu sync=%zu cc=%zu back=%zu first_pid=%d pat@%zu es@%zu "
			    "pat=%zu pmt=%zu pcr=%zu dur=%.2f max_step=%lld\n",
			    r.packets, r.sync_errors, r.cc_errors, r.dts_backwards, r.first_pid,
			    r.first_pat_at, r.first_es_at, r.pat, r.pmt, r.pcr, dur,
			    (long long)r.max_step);
	assert_int_equal(len % TS, 0);
	assert_int_equal(r.sync_errors, 0);
	assert_int_equal(r.cc_errors, 0);
	assert_int_equal(r.dts_backwards, 0);
	/* PAT first (the muxer may put its SDT before it) and before any elementary stream. */
	assert_true(r.first_pat_at <= 2);
	assert_true(r.first_es_at > r.first_pat_at);
	assert_true(dur >= min_s);
	assert_true(r.pat >= dur * 4 && r.pmt >= dur * 4); /* 0.1 s period by contract */
	assert_true(r.pcr > 0);
	assert_true(r.max_step <= 90000); /* no gap over 1 s on any PID, loops included */
}

/* ---- running the child ---- */

struct run {
	uint8_t *ts;
	size_t ts_len;
	char ev[64 * 1024];
	size_t ev_len;
	int status; /* exit status, or 128 + signal */
	double secs;
};

/* Stop reading when this many "loop" events were seen (0: run to exit). */
struct run_opts {
	int loops;
	double timeout_s;
	const char *fifo_canary; /* a FIFO that must never be opened for reading */
	bool canary_opened;
};

static void child(int cfg_r, int ts_w, int ev_w)
{
	int null = open("/dev/null", O_RDONLY);

	if (null < 0 || dup2(null, 0) < 0 || dup2(ts_w, 1) < 0 || dup2(ev_w, 2) < 0 ||
	    dup2(cfg_r, 3) < 0)
		_exit(99);
	_exit(ptv_ingest_main());
}

static int count_loops(const struct run *r)
{
	int n = 0;

	for (const char *p = r->ev; (p = strstr(p, "\"ev\":\"loop\"")); p++)
		n++;
	return n;
}

static bool canary_open(const char *fifo)
{
	/* Opening a FIFO for writing without blocking succeeds only if someone reads it. */
	int fd = open(fifo, O_WRONLY | O_NONBLOCK);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void pump(struct run *r, struct run_opts *o, int ts_fd, int ev_fd, pid_t pid)
{
	size_t cap = 1 << 20;
	uint64_t end = ptv_now_ms() + (uint64_t)(o->timeout_s * 1000);
	bool stopping = false;

	r->ts = malloc(cap);
	while (ts_fd >= 0 || ev_fd >= 0) {
		struct pollfd pf[2] = {{ts_fd, POLLIN, 0}, {ev_fd, POLLIN, 0}};
		ssize_t n;

		if (o->fifo_canary && canary_open(o->fifo_canary))
			o->canary_opened = true;
		if (!stopping && (ptv_now_ms() > end || (o->loops && count_loops(r) >= o->loops))) {
			kill(pid, SIGKILL);
			stopping = true;
		}
		if (poll(pf, 2, 50) <= 0)
			continue;
		if (pf[0].revents) {
			if (r->ts_len + 65536 > cap)
				r->ts = realloc(r->ts, cap *= 2);
			n = read(ts_fd, r->ts + r->ts_len, 65536);
			if (n <= 0) {
				close(ts_fd);
				ts_fd = -1;
			} else {
				r->ts_len += (size_t)n;
			}
		}
		if (pf[1].revents) {
			n = read(ev_fd, r->ev + r->ev_len, sizeof(r->ev) - 1 - r->ev_len);
			if (n <= 0) {
				close(ev_fd);
				ev_fd = -1;
			} else {
				r->ev_len += (size_t)n;
				r->ev[r->ev_len] = '\0';
			}
		}
	}
}

static void run_ingest(const char *config, struct run_opts *o, struct run *r)
{
	int cfg[2], ts[2], ev[2], st;
	uint64_t t0 = ptv_now_ns();
	pid_t pid;

	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe(cfg), 0);
	assert_int_equal(pipe(ts), 0);
	assert_int_equal(pipe(ev), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child(cfg[0], ts[1], ev[1]);
	close(cfg[0]);
	close(ts[1]);
	close(ev[1]);
	assert_int_equal(write(cfg[1], config, strlen(config)), (ssize_t)strlen(config));
	close(cfg[1]);
	pump(r, o, ts[0], ev[0], pid);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->secs = (double)(ptv_now_ns() - t0) / 1e9;
}

static const char *source_dir(void)
{
	const char *s = getenv("PTV_SOURCE_DIR");

	return s ? s : ".";
}

/* Loops @path (file kind, no pacing) 3 times and checks the output. */
static void loop_file(const char *path, double min_s)
{
	struct run_opts o = {.loops = 3, .timeout_s = 60};
	struct run r;
	char cfg[1024];

	snprintf(cfg, sizeof(cfg),
		 "{\"channel\":\"t\",\"kind\":\"file\",\"urls\":[\"%s\"],\"loop\":true,"
		 "\"realtime\":false}",
		 path);
	run_ingest(cfg, &o, &r);
	if (count_loops(&r) < 3)
		print_error("%s: status %d after %.1f s, events:\n%s\n", path, r.status, r.secs,
			    r.ev);
	assert_true(count_loops(&r) >= 3);
	assert_int_equal(r.status, 128 + SIGKILL); /* still running when stopped */
	assert_non_null(strstr(r.ev, "\"ev\":\"first_packet\""));
	assert_ts_ok(r.ts, r.ts_len, min_s);
	free(r.ts);
}

/* A scrambled input: whatever comes out must still be valid TS, and the child must not die. */
static void loop_file_valid(const char *path, size_t min_packets)
{
	struct run_opts o = {.loops = 3, .timeout_s = 60};
	struct ts_report rep;
	struct run r;
	char cfg[1024];

	snprintf(cfg, sizeof(cfg),
		 "{\"kind\":\"file\",\"urls\":[\"%s\"],\"loop\":true,\"realtime\":false}", path);
	run_ingest(cfg, &o, &r);
	/* Still running, or gave up because later loops yield no packet at all (a loop that
	 * writes nothing counts as a failed attempt): either way, no crash. */
	assert_true(r.status == 128 + SIGKILL || r.status == PTV_INGEST_EXIT_GAVE_UP);
	ts_check(r.ts, r.ts_len, &rep);
	assert_int_equal(r.ts_len % TS, 0);
	assert_int_equal(rep.sync_errors, 0);
	assert_int_equal(rep.cc_errors, 0);
	assert_int_equal(rep.dts_backwards, 0);
	if (rep.packets < min_packets)
		print_error("%s: %zu TS packets, events:\n%s\n", path, rep.packets, r.ev);
	assert_true(rep.packets >= min_packets);
	free(r.ts);
}

/* ---- tests: config ---- */

static int parse(const char *json, struct ing_cfg *c, char *err, size_t len)
{
	return ing_cfg_parse(c, json, strlen(json), err, len);
}

static void test_cfg_defaults(void **state)
{
	struct ing_cfg c;
	char err[256] = "";

	assert_int_equal(parse("{\"urls\":[\"http://h/x.ts\"]}", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, ING_KIND_URL);
	assert_int_equal(c.n_urls, 1);
	assert_int_equal(c.probesize, 1000000);
	assert_int_equal(c.analyzeduration_us, 1000000);
	assert_int_equal(c.rw_timeout_ms, 5000);
	assert_int_equal(c.stall_timeout_ms, 5000);
	assert_int_equal(c.video_stall_ms, 5000);
	assert_int_equal(c.max_reconnects, 3);
	assert_int_equal(c.backoff_initial_ms, 500);
	assert_int_equal(c.backoff_max_ms, 8000);
	assert_int_equal(c.variant, ING_VARIANT_BEST);
	assert_false(c.loop);
	assert_false(c.realtime);
	assert_int_equal(c.rlimit_as_mb, 1024);
	assert_string_equal(ing_cfg_protocols(&c), PTV_INGEST_URL_PROTOCOLS);
	ing_cfg_free(&c);

	assert_int_equal(parse("{\"kind\":\"file\",\"urls\":[\"/a.ts\"],\"loop\":true,"
			       "\"hls_variant\":\"2000000\",\"unknown\":[1,2]}",
			       &c, err, sizeof(err)),
			 0);
	assert_true(c.realtime); /* files are paced by default */
	assert_true(c.loop);
	assert_int_equal(c.variant, ING_VARIANT_MAX_BPS);
	assert_int_equal(c.variant_max_bps, 2000000);
	assert_string_equal(ing_cfg_protocols(&c), "file");
	ing_cfg_free(&c);
}

static void test_cfg_errors(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{}",
		"{\"urls\":[]}",
		"{\"urls\":\"http://h/x\"}",
		"{\"urls\":[1]}",
		"{\"urls\":[\"http://h/\\u0000x\"]}",
		"{\"urls\":[\"http://h/x\\r\\nHost: y\"]}",
		"{\"urls\":[\"http://h/x\"],\"kind\":\"ftp\"}",
		"{\"urls\":[\"http://h/x\"],\"probesize\":\"big\"}",
		"{\"urls\":[\"http://h/x\"],\"stall_timeout_ms\":1}",
		"{\"urls\":[\"http://h/x\"],\"loop\":1}",
		"{\"urls\":[\"http://h/x\"],\"headers\":{\"X-A\":\"1\\r\\nX-B: 2\"}}",
		"{\"urls\":[\"http://h/x\"],\"headers\":{\"Bad Name\":\"1\"}}",
		"{\"urls\":[\"http://h/x\"],\"headers\":[\"a\"]}",
		"{\"urls\":[\"http://h/x\"],\"hls_variant\":\"fast\"}",
		"{\"urls\":[\"http://h/x\"],\"rlimit_as_mb\":12}",
		"{\"urls\":[\"http://h/x\"],\"probesize\":1,\"probesize\":2}",
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(bad); i++) {
		struct ing_cfg c;
		char err[256] = "";

		int ret = parse(bad[i], &c, err, sizeof(err));

		if (ret != -EINVAL)
			print_error("accepted: %s\n", bad[i]);
		assert_int_equal(ret, -EINVAL);
		assert_true(err[0]);
		/* Messages name keys, never values (URLs carry credentials). */
		assert_null(strstr(err, "http://"));
		ing_cfg_free(&c);
	}
}

static void test_cfg_headers(void **state)
{
	struct ing_cfg c;
	char err[256];

	assert_int_equal(parse("{\"urls\":[\"http://h/x\"],\"headers\":{\"User-Agent\":\"VLC/3\","
			       "\"referer\":\"http://r/\",\"X-Token\":\"abc\",\"Cookie\":\"a=b\"}}",
			       &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.user_agent, "VLC/3");
	assert_string_equal(c.referer, "http://r/");
	assert_string_equal(c.headers, "X-Token: abc\r\nCookie: a=b\r\n");
	ing_cfg_free(&c);
}

static void test_cfg_schemes(void **state)
{
	struct ing_cfg c;
	char err[256];

	assert_int_equal(parse("{\"urls\":[\"http://h/x\"]}", &c, err, sizeof(err)), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "http://h/x.ts"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "HTTPS://h/x.m3u8"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "rtsp://h/x"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "udp://239.1.1.1:1234"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "srt://h:9000"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "/etc/passwd"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "file:///etc/passwd"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "concat:/etc/passwd|/etc/group"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "data:text/plain,hello"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "subfile,,0,10,:/etc/passwd"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "pipe:0"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "tcp://h:1?listen=1"), -EPERM);
	ing_cfg_free(&c);

	/* A parent's override narrows what is allowed. */
	assert_int_equal(
		parse("{\"urls\":[\"http://h/x\"],\"protocol_whitelist\":\"https,tls,tcp\"}", &c,
		      err, sizeof(err)),
		0);
	assert_int_equal(ing_cfg_check_scheme(&c, "http://h/x.ts"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "https://h/x.ts"), 0);
	ing_cfg_free(&c);

	assert_int_equal(parse("{\"kind\":\"file\",\"urls\":[\"/a.ts\"]}", &c, err, sizeof(err)),
			 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "/srv/a.ts"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "file:/srv/a.ts"), 0);
	assert_int_equal(ing_cfg_check_scheme(&c, "http://h/x.ts"), -EPERM);
	assert_int_equal(ing_cfg_check_scheme(&c, "concat:/a.ts|/b.ts"), -EPERM);
	ing_cfg_free(&c);
}

static void test_url_take_param(void **state)
{
	static const struct {
		const char *in, *out, *val;
	} cases[] = {
		{"rtsp://h/s", "rtsp://h/s", ""},
		{"rtsp://h/s?rtsp_transport=udp", "rtsp://h/s", "udp"},
		{"rtsp://h/s?a=1&rtsp_transport=tcp&b=2", "rtsp://h/s?a=1&b=2", "tcp"},
		{"rtsp://h/s?rtsp_transport=http&b=2#frag", "rtsp://h/s?b=2#frag", "http"},
		{"rtsp://h/s?rtsp_transportx=1&a", "rtsp://h/s?rtsp_transportx=1&a", ""},
		{"rtsp://h/s?&&a=1", "rtsp://h/s?a=1", ""},
	};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++) {
		char val[32],
			*out = ing_url_take_param(cases[i].in, "rtsp_transport", val, sizeof(val));

		assert_string_equal(out, cases[i].out);
		assert_string_equal(val, cases[i].val);
		free(out);
	}
}

static void test_adts(void **state)
{
	/* AAC-LC 48 kHz stereo: ASC 0x11 0x90 */
	static const uint8_t asc[2] = {0x11, 0x90}, bad[2] = {0xf8, 0x00};
	static const uint8_t want[7] = {0xff, 0xf1, 0x4c, 0x80, 0x2e, 0xff, 0xfc};
	uint8_t hdr[7];

	assert_int_equal(ing_adts_header(hdr, asc, 368), 0); /* frame length 375 */
	assert_memory_equal(hdr, want, 7);
	assert_int_equal(ing_adts_header(hdr, bad, 100), -EINVAL); /* AOT escape */
	assert_int_equal(ing_adts_header(hdr, asc, 9000), -EINVAL);
}

/* ---- tests: whole runs ---- */

static void test_demo_loops(void **state)
{
	char path[4096];

	for (int i = 1; i <= 3; i++) {
		snprintf(path, sizeof(path), "%s/share/demo/demo-%d.ts", source_dir(), i);
		loop_file(path, 25.0);
	}
}

static void test_shared_samples_loop(void **state)
{
	const char *dir = getenv("PTV_SHARED_DATA");
	char path[4096];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/ts", dir ? dir : "../shared/data");
	d = opendir(path);
	if (!d)
		skip();
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".ts"))
			continue;
		snprintf(path, sizeof(path), "%s/ts/%s", dir ? dir : "../shared/data", de->d_name);
		/* Samples are 0.6-10 s long: three loops give at least ~1.5 s. test-143 is
		 * scrambled: no decodable audio or video comes out, only its subtitles. */
		if (strstr(de->d_name, "test-143"))
			loop_file_valid(path, 0);
		else
			loop_file(path, 1.0);
		n++;
	}
	closedir(d);
	assert_true(n > 0);
}

/* RELIABILITY U6: garbage inside a TS (lost sync, random packets, a torn packet) must not
 * crash the child, and what comes out stays valid TS. */
static void test_corrupted_input(void **state)
{
	char src[4096], path[] = "/tmp/ptv-ingest-corrupt-XXXXXX";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t *d;
	size_t len;
	FILE *f;
	int fd;

	snprintf(src, sizeof(src), "%s/share/demo/demo-2.ts", source_dir());
	f = fopen(src, "rb");
	assert_non_null(f);
	d = malloc(4 << 20);
	len = fread(d, 1, 4 << 20, f);
	fclose(f);
	for (size_t i = 0; i + TS <= len; i += TS) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (x % 40 == 0) /* a packet of noise, sync byte and all */
			for (size_t j = 0; j < TS; j++)
				d[i + j] = (uint8_t)(x >> (j % 56));
		else if (x % 40 == 1) /* a flipped bit in the payload */
			d[i + 4 + x % 184] ^= 0x10;
	}
	/* lost sync: 1000 random bytes in the middle */
	memmove(d + len / 2 + 1000, d + len / 2, len - len / 2);
	for (size_t j = 0; j < 1000; j++)
		d[len / 2 + j] = (uint8_t)(j * 131);
	len += 1000;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, d, len - 77), (ssize_t)(len - 77)); /* and a torn end */
	close(fd);
	loop_file_valid(path, 5000); /* the clean file gives ~3000 per loop */
	unlink(path);
	free(d);
}

static void test_realtime_pacing(void **state)
{
	struct run_opts o = {.loops = 0, .timeout_s = 3};
	struct run r;
	char cfg[1024];
	struct ts_report rep;
	double media;

	snprintf(cfg, sizeof(cfg),
		 "{\"kind\":\"file\",\"urls\":[\"%s/share/demo/demo-2.ts\"],\"loop\":true}",
		 source_dir());
	run_ingest(cfg, &o, &r);
	ts_check(r.ts, r.ts_len, &rep);
	media = (double)(rep.last_dts - rep.first_dts) / 90000.0;
	/* 3 s of wall time: about 3 s of media plus the 0.5 s lead, never a burst. */
	if (media < 2.0 || media > 4.2)
		print_error("paced output holds %.2f s of media after %.2f s\n", media, r.secs);
	assert_true(media >= 2.0 && media <= 4.2);
	free(r.ts);
}

static void test_end_of_file(void **state)
{
	struct run_opts o = {.timeout_s = 30};
	struct run r;
	char cfg[1024];

	snprintf(cfg, sizeof(cfg),
		 "{\"kind\":\"file\",\"urls\":[\"%s/share/demo/demo-1.ts\"],\"realtime\":false}",
		 source_dir());
	run_ingest(cfg, &o, &r);
	assert_int_equal(r.status, PTV_INGEST_EXIT_OK);
	assert_ts_ok(r.ts, r.ts_len, 9.0);
	assert_non_null(strstr(r.ev, "\"ev\":\"exit\",\"code\":0"));
	free(r.ts);
}

static void test_bad_config_exit_1(void **state)
{
	static const char *const cfgs[] = {"not json", "{\"urls\":[]}",
					   "{\"urls\":[\"http://x/\"],\"kind\":3}"};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cfgs); i++) {
		struct run_opts o = {.timeout_s = 10};
		struct run r;

		run_ingest(cfgs[i], &o, &r);
		assert_int_equal(r.status, PTV_INGEST_EXIT_CONFIG);
		assert_int_equal(r.ts_len, 0);
		assert_non_null(strstr(r.ev, "\"reason\":\"bad_config\""));
		free(r.ts);
	}
}

static void test_missing_file_exit_2(void **state)
{
	struct run_opts o = {.timeout_s = 10};
	struct run r;

	run_ingest("{\"kind\":\"file\",\"urls\":[\"/nonexistent/a.ts\",\"/nonexistent/b.ts\"]}", &o,
		   &r);
	assert_int_equal(r.status, PTV_INGEST_EXIT_OPEN_FAILED);
	assert_true(r.secs < 2.0);
	assert_int_equal(r.ts_len, 0);
	assert_non_null(strstr(r.ev, "\"reason\":\"not_found\""));
	assert_non_null(strstr(r.ev, "{\"ev\":\"failover\",\"url\":1}"));
	free(r.ts);
}

/* A FIFO canary in a temp dir, removed by the teardown even when an assertion fails. */
struct canary {
	char dir[64];
	char fifo[96];
};

static int canary_setup(void **state)
{
	struct canary *c = calloc(1, sizeof(*c));

	snprintf(c->dir, sizeof(c->dir), "/tmp/ptv-ingest-XXXXXX");
	if (!mkdtemp(c->dir))
		return -1;
	snprintf(c->fifo, sizeof(c->fifo), "%s/canary", c->dir);
	*state = c;
	return mkfifo(c->fifo, 0600);
}

static int canary_teardown(void **state)
{
	struct canary *c = *state;

	unlink(c->fifo);
	rmdir(c->dir);
	free(c);
	return 0;
}

/* A local path given as a URL is refused by the whitelist before anything opens it: the
 * canary is a FIFO, and a FIFO opened for reading is visible from the writing side. */
static void test_local_path_as_url_refused(void **state)
{
	const char *fifo = ((struct canary *)*state)->fifo;
	char forms[5][256], cfg[2048];

	snprintf(forms[0], sizeof(forms[0]), "%s", fifo);
	snprintf(forms[1], sizeof(forms[1]), "file://%s", fifo);
	snprintf(forms[2], sizeof(forms[2]), "concat:%s|%s", fifo, fifo);
	snprintf(forms[3], sizeof(forms[3]), "subfile,,0,10,:%s", fifo);
	snprintf(forms[4], sizeof(forms[4]), "data:text/plain,x");
	for (size_t i = 0; i < PTV_ARRAY_SIZE(forms); i++) {
		struct run_opts o = {.timeout_s = 10, .fifo_canary = fifo};
		struct run r;

		snprintf(cfg, sizeof(cfg), "{\"kind\":\"url\",\"urls\":[\"%s\"]}", forms[i]);
		run_ingest(cfg, &o, &r);
		assert_int_equal(r.status, PTV_INGEST_EXIT_OPEN_FAILED);
		assert_false(o.canary_opened);
		assert_non_null(strstr(r.ev, "\"reason\":\"protocol_not_allowed\""));
		assert_int_equal(r.ts_len, 0);
		free(r.ts);
	}
	/* /etc/passwd itself, as the brief's example. */
	{
		struct run_opts o = {.timeout_s = 10};
		struct run r;

		run_ingest("{\"kind\":\"url\",\"urls\":[\"/etc/passwd\"]}", &o, &r);
		assert_int_equal(r.status, PTV_INGEST_EXIT_OPEN_FAILED);
		assert_non_null(strstr(r.ev, "protocol_not_allowed"));
		free(r.ts);
	}
}

/* Events never carry the URL itself. */
static void test_events_hide_urls(void **state)
{
	struct run_opts o = {.timeout_s = 10};
	struct run r;

	run_ingest("{\"urls\":[\"http://user:secretpw@127.0.0.1:1/live/user/secretpw/1.ts\"]}", &o,
		   &r);
	assert_int_equal(r.status, PTV_INGEST_EXIT_OPEN_FAILED);
	assert_non_null(strstr(r.ev, "\"reason\":\"refused\""));
	assert_null(strstr(r.ev, "secretpw"));
	free(r.ts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cfg_defaults),
		cmocka_unit_test(test_cfg_errors),
		cmocka_unit_test(test_cfg_headers),
		cmocka_unit_test(test_cfg_schemes),
		cmocka_unit_test(test_url_take_param),
		cmocka_unit_test(test_adts),
		cmocka_unit_test(test_bad_config_exit_1),
		cmocka_unit_test(test_missing_file_exit_2),
		cmocka_unit_test_setup_teardown(test_local_path_as_url_refused, canary_setup,
						canary_teardown),
		cmocka_unit_test(test_events_hide_urls),
		cmocka_unit_test(test_end_of_file),
		cmocka_unit_test(test_demo_loops),
		cmocka_unit_test(test_shared_samples_loop),
		cmocka_unit_test(test_corrupted_input),
		cmocka_unit_test(test_realtime_pacing),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
