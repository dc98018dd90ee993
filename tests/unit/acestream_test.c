/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ace Stream engine client against the stand-in engine (tests/integration/fake_acestream.py),
 * started per test on a free 127.0.0.1 port. Every wait is bounded: the engine is spawned
 * with a lifetime cap and a stdin lifeline (it exits when this process goes), reading its port
 * has a deadline, every engine call has a timeout, and ctest adds its own. Skips (77) only
 * when python3 is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plextv/acestream.h"
#include "plextv/buf.h"
#include "plextv/common.h"
#include "plextv/fetch.h"
#include "plextv/log.h"
#include "plextv/metrics.h"

#define ID	 "0123456789abcdef0123456789abcdef01234567"
#define ID_UPPER "0123456789ABCDEF0123456789ABCDEF01234567"

static char python[256];
static char script[4096];

struct fake {
	pid_t pid;
	int lifeline; /* write end of the engine's stdin: closing it ends the engine */
	int port;
	char url[64];
};

/* ---- the stand-in engine ---- */

static bool find_python(void)
{
	static const char *const dirs[] = {"/usr/bin", "/usr/local/bin", "/bin", NULL};
	const char *path = getenv("PATH");
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path ? path : "");
	for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(python, sizeof(python), "%s/python3", d);
		if (!access(python, X_OK))
			return true;
	}
	for (const char *const *d = dirs; *d; d++) {
		snprintf(python, sizeof(python), "%s/python3", *d);
		if (!access(python, X_OK))
			return true;
	}
	return false;
}

static void find_script(void)
{
	const char *src = getenv("PTV_SOURCE_DIR");

	/* ctest sets PTV_SOURCE_DIR; by hand, run it from the source tree. */
	snprintf(script, sizeof(script), "%s/tests/integration/fake_acestream.py", src ? src : ".");
}

static void fake_exec(int in_r, int out_w, char *const extra[])
{
	char *argv[32] = {python,	   script, "--port",	      "0",
			  "--max-seconds", "120",  "--stdin-lifeline"};
	size_t n = 7;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(in_r, 0);
	dup2(out_w, 1);
	for (size_t i = 0; extra && extra[i] && n < PTV_ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	execv(python, argv);
	_exit(127);
}

/* Reads "PORT n\n" from the engine within 10 s. */
static int fake_port(int fd)
{
	char line[64] = "";
	size_t n = 0;
	int port = 0;

	for (int tries = 0; tries < 100 && !strchr(line, '\n'); tries++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(fd, line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		line[n] = '\0';
	}
	if (sscanf(line, "PORT %d", &port) != 1)
		return -1;
	return port;
}

static void fake_start(struct fake *f, char *const extra[])
{
	int in[2], out[2];

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0)
		fake_exec(in[0], out[1], extra);
	close(in[0]);
	close(out[1]);
	f->lifeline = in[1];
	f->port = fake_port(out[0]);
	close(out[0]);
	assert_true(f->port > 0);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
}

static void fake_stop(struct fake *f)
{
	int st;

	if (f->pid <= 0)
		return;
	close(f->lifeline);
	kill(f->pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
			f->pid = 0;
			return;
		}
		usleep(100 * 1000);
	}
	kill(f->pid, SIGKILL);
	waitpid(f->pid, &st, 0);
	f->pid = 0;
}

struct membuf {
	char data[65536];
	size_t n;
};

static int mem_sink(const char *d, size_t len, void *ctx)
{
	struct membuf *m = ctx;

	if (len > sizeof(m->data) - 1 - m->n)
		return -EFBIG;
	memcpy(m->data + m->n, d, len);
	m->n += len;
	m->data[m->n] = '\0';
	return 0;
}

/* GET a test hook of the engine; returns the parsed JSON (caller decrefs). */
static json_t *fake_get(struct fake *f, const char *path)
{
	struct ptv_fetch_opts o;
	struct ptv_fetch_result res;
	struct membuf *m = calloc(1, sizeof(*m));
	char url[512];
	json_t *j;

	assert_non_null(m);
	snprintf(url, sizeof(url), "%s%s", f->url, path);
	ptv_fetch_opts_init(&o);
	o.url = url;
	o.timeout_ms = 5000;
	assert_int_equal(ptv_fetch(&o, mem_sink, m, &res), 0);
	ptv_fetch_result_deinit(&res);
	j = json_loads(m->data, 0, NULL);
	free(m);
	assert_non_null(j);
	return j;
}

static long long counter(struct fake *f, const char *name)
{
	json_t *j = fake_get(f, "/_test/counters");
	long long v = json_integer_value(json_object_get(j, name));

	json_decref(j);
	return v;
}

static void fake_mode(struct fake *f, const char *query)
{
	char path[256];

	snprintf(path, sizeof(path), "/_test/mode?%s", query);
	json_decref(fake_get(f, path));
}

/* A loopback port nothing listens on (bound, then closed). */
static int dead_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static char *render(void)
{
	struct ptv_buf b;

	ptv_buf_init(&b);
	assert_int_equal(ptv_metrics_render(&b), 0);
	assert_int_equal(ptv_buf_putc(&b, '\0'), 0);
	return b.data;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' not found in:\n%s", needle, hay);
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	fake_start(f, (char *const[]){"--prebuffer", "0.3", NULL});
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	fake_stop(f);
	free(f);
	return 0;
}

/* ---- tests ---- */

static void test_parse_id(void **state)
{
	enum ptv_acestream_selector sel;
	char id[PTV_ACESTREAM_ID_LEN + 1];

	(void)state;
	assert_int_equal(ptv_acestream_parse_id("acestream://" ID_UPPER, id, &sel), 0);
	assert_string_equal(id, ID);
	assert_int_equal(sel, PTV_ACESTREAM_CONTENT_ID);
	assert_int_equal(ptv_acestream_parse_id("ace://" ID "/", id, &sel), 0);
	assert_int_equal(ptv_acestream_parse_id(ID, id, &sel), 0);
	assert_int_equal(ptv_acestream_parse_id("acestream://infohash=" ID, id, &sel), 0);
	assert_int_equal(sel, PTV_ACESTREAM_INFOHASH);
	assert_int_equal(ptv_acestream_parse_id("infohash:" ID, id, &sel), 0);
	assert_int_equal(sel, PTV_ACESTREAM_INFOHASH);
	assert_int_equal(
		ptv_acestream_parse_id("http://h:6878/ace/getstream?pid=1&id=" ID, id, &sel), 0);
	assert_int_equal(sel, PTV_ACESTREAM_CONTENT_ID);
	assert_int_equal(
		ptv_acestream_parse_id("http://h:6878/ace/getstream?infohash=" ID "&x=1", id, &sel),
		0);
	assert_int_equal(sel, PTV_ACESTREAM_INFOHASH);
	/* Too short, too long, not hex, other schemes, other engine paths. */
	assert_int_equal(ptv_acestream_parse_id("acestream://0123", id, &sel), -EINVAL);
	assert_int_equal(ptv_acestream_parse_id(ID "0", id, &sel), -EINVAL);
	assert_int_equal(ptv_acestream_parse_id("acestream://" ID "%00", id, &sel), -EINVAL);
	assert_int_equal(ptv_acestream_parse_id(
				 "acestream://g123456789abcdef0123456789abcdef01234567", id, &sel),
			 -EINVAL);
	assert_int_equal(ptv_acestream_parse_id("http://h/live/" ID, id, &sel), -EINVAL);
	assert_int_equal(ptv_acestream_parse_id("", id, &sel), -EINVAL);
	assert_int_equal(ptv_acestream_parse_id(NULL, id, &sel), -EINVAL);
}

static bool is_uuid4(const char *s)
{
	static const char *const tmpl = "xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx";

	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		char c = s[i];

		if (tmpl[i] == '-' || tmpl[i] == '4') {
			if (c != tmpl[i])
				return false;
		} else if (tmpl[i] == 'V') {
			if (!strchr("89ab", c))
				return false;
		} else if (!strchr("0123456789abcdef", c)) {
			return false;
		}
	}
	return true;
}

static void test_start_stat_stop(void **state)
{
	struct fake *f = *state;
	struct ptv_acestream_session s, s2;
	struct ptv_acestream_stat st;
	char prefix[128];

	assert_int_equal(ptv_acestream_start(f->url, "acestream://" ID, 2000, &s), 0);
	assert_true(is_uuid4(s.pid));
	snprintf(prefix, sizeof(prefix), "%s/ace/r/", f->url);
	assert_memory_equal(s.playback_url, prefix, strlen(prefix));
	assert_true(s.stat_url[0] && s.command_url[0] && s.playback_session_id[0]);
	assert_int_equal(strlen(s.infohash), 40);
	assert_true(s.is_live);
	assert_int_equal(counter(f, "getstream_json"), 1);

	/* Prebuffering first, then playing. */
	assert_int_equal(ptv_acestream_stat(&s, 2000, &st), 0);
	assert_string_equal(st.status, "prebuf");
	assert_int_equal(st.peers, 7);
	assert_true(st.progress < 100);
	usleep(400 * 1000);
	assert_int_equal(ptv_acestream_stat(&s, 2000, &st), 0);
	assert_string_equal(st.status, "dl");
	assert_true(st.speed_down > 0 && st.speed_down % 1024 == 0);
	assert_int_equal(st.speed_up, 12 * 1024);

	/* A second upstream session gets its own pid. */
	assert_int_equal(ptv_acestream_start(f->url, "ace://" ID, 2000, &s2), 0);
	assert_string_not_equal(s.pid, s2.pid);
	assert_string_not_equal(s.playback_session_id, s2.playback_session_id);

	assert_int_equal(ptv_acestream_stop(&s2, 2000), 0);
	assert_int_equal(counter(f, "stops"), 1);
	assert_int_equal(counter(f, "active_sessions"), 0);
	/* The engine forgot the session: its stat_url says so, in the error field. */
	assert_int_equal(ptv_acestream_stat(&s2, 2000, &st), -EREMOTEIO);
	assert_non_null(strstr(s2.reason, "unknown playback session id"));
}

static void test_infohash_selector(void **state)
{
	struct fake *f = *state;
	struct ptv_acestream_session s;
	json_t *j;

	assert_int_equal(ptv_acestream_start(f->url, "infohash:" ID, 2000, &s), 0);
	assert_int_equal(s.sel, PTV_ACESTREAM_INFOHASH);
	j = fake_get(f, "/_test/counters");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "selectors"), 0)),
			    "infohash");
	json_decref(j);
	assert_int_equal(ptv_acestream_start(f->url, "acestream://" ID, 2000, &s), 0);
	j = fake_get(f, "/_test/counters");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "selectors"), 1)),
			    "id");
	json_decref(j);
}

static void test_version(void **state)
{
	struct fake *f = *state;
	char version[32], reason[160];
	long code = 0;

	assert_int_equal(ptv_acestream_version(f->url, 2000, version, sizeof(version), &code,
					       reason, sizeof(reason)),
			 0);
	assert_string_equal(version, "3.1.0-rc2");
	assert_int_equal(code, 3002300);
	/* A trailing slash on the configured engine URL is fine. */
	char url[80];

	snprintf(url, sizeof(url), "%s//", f->url);
	assert_int_equal(ptv_acestream_version(url, 2000, NULL, 0, NULL, NULL, 0), 0);
	fake_mode(f, "version=error");
	assert_int_equal(ptv_acestream_version(f->url, 2000, version, sizeof(version), &code,
					       reason, sizeof(reason)),
			 -EREMOTEIO);
	assert_non_null(strstr(reason, "not ready"));
}

static uint64_t elapsed_ms(uint64_t t0)
{
	return ptv_now_ms() - t0;
}

/* Each failure class: its own code, a reason, and the answer within the timeout. */
static void test_getstream_errors(void **state)
{
	static const struct {
		const char *mode;
		int rc;
		const char *reason;
	} cases[] = {
		{"error", -EREMOTEIO, "failed to load content"},
		{"http500", -EIO, "HTTP 500"},
		{"malformed", -EBADMSG, "not a JSON object"},
	};
	struct fake *f = *state;
	struct ptv_acestream_session s;
	char q[64];

	for (size_t i = 0; i < PTV_ARRAY_SIZE(cases); i++) {
		uint64_t t0 = ptv_now_ms();

		snprintf(q, sizeof(q), "getstream=%s", cases[i].mode);
		fake_mode(f, q);
		assert_int_equal(ptv_acestream_start(f->url, ID, 2000, &s), cases[i].rc);
		assert_non_null(strstr(s.reason, cases[i].reason));
		assert_true(elapsed_ms(t0) < 1500);
		assert_string_equal(ptv_acestream_err_reason(cases[i].rc), i == 0   ? "engine"
									   : i == 1 ? "http"
										    : "malformed");
	}
	/* Not an id: refused before any request. */
	assert_int_equal(ptv_acestream_start(f->url, "http://example.invalid/x.ts", 2000, &s),
			 -EINVAL);
	assert_int_equal(counter(f, "getstream"), 3);
}

static void test_refused_and_redacted(void **state)
{
	struct ptv_acestream_session s;
	char url[128], reason[160];
	uint64_t t0 = ptv_now_ms();

	(void)state;
	snprintf(url, sizeof(url), "http://admin:s3cret@127.0.0.1:%d", dead_port());
	assert_int_equal(ptv_acestream_start(url, ID, 2000, &s), -ECONNREFUSED);
	assert_true(elapsed_ms(t0) < 1000);
	assert_string_equal(ptv_acestream_err_reason(-ECONNREFUSED), "refused");
	assert_null(strstr(s.reason, "s3cret"));
	assert_int_equal(ptv_acestream_version(url, 2000, NULL, 0, NULL, reason, sizeof(reason)),
			 -ECONNREFUSED);
	assert_null(strstr(reason, "s3cret"));
	/* Not an http(s) engine URL. */
	assert_int_equal(ptv_acestream_start("ftp://127.0.0.1:1", ID, 2000, &s), -EINVAL);
	assert_int_equal(ptv_acestream_start("127.0.0.1:6878", ID, 2000, &s), -EINVAL);
}

/* A hung engine (accepts, never answers) costs exactly the timeout, on every call. */
static void test_hang_timeouts(void **state)
{
	struct fake *f = *state;
	struct ptv_acestream_session s;
	struct ptv_acestream_stat st;
	uint64_t t0;

	assert_int_equal(ptv_acestream_start(f->url, ID, 2000, &s), 0);
	fake_mode(f, "all=hang");

	t0 = ptv_now_ms();
	assert_int_equal(ptv_acestream_stat(&s, 600, &st), -ETIMEDOUT);
	assert_in_range(elapsed_ms(t0), 550, 1500);

	t0 = ptv_now_ms();
	assert_int_equal(ptv_acestream_stop(&s, 600), -ETIMEDOUT);
	assert_in_range(elapsed_ms(t0), 550, 1500);

	t0 = ptv_now_ms();
	assert_int_equal(ptv_acestream_version(f->url, 600, NULL, 0, NULL, NULL, 0), -ETIMEDOUT);
	assert_in_range(elapsed_ms(t0), 550, 1500);

	t0 = ptv_now_ms();
	assert_int_equal(ptv_acestream_start(f->url, ID, 800, &s), -ETIMEDOUT);
	assert_in_range(elapsed_ms(t0), 750, 1700);
	assert_string_equal(ptv_acestream_err_reason(-ETIMEDOUT), "timeout");
	assert_int_equal(ptv_acestream_hdhr_error(-ETIMEDOUT), 806);
}

static struct ptv_acestream *ace_new(struct fake *f, unsigned max)
{
	struct ptv_acestream_opts o = {
		.engine = f->url, .max_sessions = max, .timeout_ms = 1000, .stat_interval_ms = 1};
	struct ptv_acestream *a;

	assert_int_equal(ptv_acestream_new(&o, &a), 0);
	return a;
}

static void test_session_limit(void **state)
{
	struct fake *f = *state;
	struct ptv_acestream *a = ace_new(f, 2);
	struct ptv_acestream_session *s[3] = {0};
	char url[1024];
	uint64_t t0;

	assert_int_equal(
		ptv_acestream_resolve(a, "acestream://" ID, "101", &s[0], url, sizeof(url)), 0);
	assert_non_null(s[0]);
	assert_string_equal(url, s[0]->playback_url);
	assert_int_equal(
		ptv_acestream_resolve(a, "acestream://1" ID "", "102", &s[1], url, sizeof(url)),
		-EINVAL); /* 41 digits: refused, and the slot comes back */
	assert_null(s[1]);
	assert_int_equal(ptv_acestream_slots_used(a), 1);
	assert_int_equal(ptv_acestream_resolve(a,
					       "ace://"
					       "1123456789abcdef0123456789abcdef01234567",
					       "102", &s[1], url, sizeof(url)),
			 0);
	assert_int_equal(ptv_acestream_slots_used(a), 2);

	/* Full: refused at once, without asking the engine. */
	t0 = ptv_now_ms();
	assert_int_equal(ptv_acestream_resolve(a, "ace://2123456789abcdef0123456789abcdef01234567",
					       "103", &s[2], url, sizeof(url)),
			 -PTV_ERR_LIMIT);
	assert_true(elapsed_ms(t0) < 100);
	assert_null(s[2]);
	assert_int_equal(ptv_acestream_hdhr_error(-PTV_ERR_LIMIT), 805);
	assert_int_equal(counter(f, "getstream"), 2);
	assert_int_equal(ptv_acestream_slot_acquire(a), -PTV_ERR_LIMIT);

	/* Releasing stops the engine session and frees the slot. */
	ptv_acestream_release(a, s[0]);
	assert_int_equal(counter(f, "stops"), 1);
	assert_int_equal(ptv_acestream_slots_used(a), 1);
	assert_int_equal(ptv_acestream_slot_acquire(a), 0);
	ptv_acestream_slot_release(a);
	assert_int_equal(ptv_acestream_resolve(a, "ace://2123456789abcdef0123456789abcdef01234567",
					       "103", &s[2], url, sizeof(url)),
			 0);
	/* An engine error on getstream gives the slot back too. */
	ptv_acestream_release(a, s[2]);
	fake_mode(f, "getstream=error");
	assert_int_equal(ptv_acestream_resolve(a, "ace://" ID, "101", &s[0], url, sizeof(url)),
			 -EREMOTEIO);
	assert_int_equal(ptv_acestream_slots_used(a), 1);
	ptv_acestream_release(a, NULL);
	/* free() stops what the caller left running. */
	ptv_acestream_free(a);
	assert_int_equal(counter(f, "stops"), 3);
	assert_int_equal(counter(f, "active_sessions"), 0);
}

static void test_poll_metrics(void **state)
{
	struct fake *f = *state;
	struct ptv_acestream *a = ace_new(f, 0);
	struct ptv_acestream_session *s;
	struct ptv_acestream_stat st;
	char url[1024], *text;

	assert_int_equal(ptv_acestream_resolve(a, ID, "5.1", &s, url, sizeof(url)), 0);
	usleep(400 * 1000); /* past the fake's prebuffer */
	assert_int_equal(ptv_acestream_tick(a), 0);
	ptv_acestream_last_stat(s, &st);
	assert_string_equal(st.status, "dl");
	assert_int_equal(st.peers, 7);
	text = render();
	assert_contains(text, "plextv_acestream_engine_up 1\n");
	assert_contains(text, "plextv_acestream_engine_info{version=\"3.1.0-rc2\"} 1\n");
	assert_contains(text, "plextv_acestream_sessions 1\n");
	assert_contains(text, "plextv_acestream_peers{channel=\"5.1\"} 7\n");
	assert_contains(text, "plextv_acestream_status{channel=\"5.1\",status=\"dl\"} 1\n");
	assert_contains(text, "plextv_acestream_upload_speed_bytes_per_second{channel=\"5.1\"} "
			      "12288\n");
	assert_contains(text, "plextv_acestream_prebuffer_ratio{channel=\"5.1\"} 1\n");
	free(text);
	assert_true(counter(f, "stat") >= 1);
	assert_true(counter(f, "version") >= 1);

	/* A failing stat is counted by call and reason; the session stays. */
	fake_mode(f, "stat=http500");
	assert_int_equal(ptv_acestream_poll(a, s), -EIO);
	text = render();
	assert_contains(text, "plextv_acestream_errors_total{call=\"stat\",reason=\"http\"} 1\n");
	free(text);

	/* Released: the channel's gauges go back to 0. */
	ptv_acestream_release(a, s);
	text = render();
	assert_contains(text, "plextv_acestream_sessions 0\n");
	assert_contains(text, "plextv_acestream_peers{channel=\"5.1\"} 0\n");
	free(text);

	/* Engine down: engine_up drops. */
	fake_mode(f, "version=error");
	assert_int_equal(
		ptv_acestream_reconfigure(a, &(struct ptv_acestream_opts){.engine = f->url}), 0);
	assert_int_equal(ptv_acestream_tick(a), 0);
	text = render();
	assert_contains(text, "plextv_acestream_engine_up 0\n");
	free(text);
	ptv_acestream_free(a);
}

/* The monitor thread polls on its own and stops promptly. */
static void test_monitor(void **state)
{
	struct fake *f = *state;
	struct ptv_acestream *a = ace_new(f, 0);
	struct ptv_acestream_session *s;
	char url[1024];
	uint64_t t0;
	bool polled = false;

	assert_int_equal(ptv_acestream_resolve(a, ID, "7", &s, url, sizeof(url)), 0);
	assert_int_equal(ptv_acestream_monitor_start(a), 0);
	assert_int_equal(ptv_acestream_monitor_start(a), -EALREADY);
	for (int i = 0; i < 50 && !polled; i++) {
		usleep(100 * 1000);
		polled = counter(f, "stat") >= 1 && counter(f, "version") >= 1;
	}
	assert_true(polled);
	t0 = ptv_now_ms();
	ptv_acestream_free(a); /* also stops the session left running */
	assert_true(elapsed_ms(t0) < 3000);
	assert_int_equal(counter(f, "stops"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_id),
		cmocka_unit_test_setup_teardown(test_start_stat_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_infohash_selector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getstream_errors, setup, teardown),
		cmocka_unit_test(test_refused_and_redacted),
		cmocka_unit_test_setup_teardown(test_hang_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_monitor, setup, teardown),
	};

	if (!find_python()) {
		fprintf(stderr, "python3 not found: skipping\n");
		return 77;
	}
	find_script();
	signal(SIGPIPE, SIG_IGN);
	ptv_log_set_level(PTV_LOG_ERROR); /* the failures below are on purpose */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
