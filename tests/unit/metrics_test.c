/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for the metrics registry, its sharded hot path and the text exposition. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plextv/metrics.h"

static const char *const no_labels[] = {NULL};

/* ---- helpers ----------------------------------------------------------------------------- */

static char *render(void)
{
	struct ptv_buf b = {0};
	char *s;

	assert_int_equal(ptv_metrics_render(&b), 0);
	s = ptv_buf_steal(&b, NULL);
	assert_non_null(s);
	return s;
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The line of @text that starts with @prefix (a whole-line prefix), or NULL. */
static const char *line_starting(const char *text, const char *prefix)
{
	size_t k = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, k) == 0)
			return p;
	return NULL;
}

static bool has_line(const char *text, const char *line)
{
	const char *p = line_starting(text, line);

	return p && p[strlen(line)] == '\n';
}

#define assert_line(text, line)                                                \
	do {                                                                   \
		if (!has_line((text), (line)))                                 \
			fail_msg("missing line '%s' in:\n%s", (line), (text)); \
	} while (0)

/* The value of the sample whose text before the value is exactly @series. */
static double sample_value(const char *text, const char *series)
{
	char prefix[512];
	const char *p;

	snprintf(prefix, sizeof(prefix), "%s ", series);
	p = line_starting(text, prefix);
	if (!p)
		fail_msg("no sample '%s' in:\n%s", series, text);
	return strtod(p + strlen(prefix), NULL);
}

static int setup(void **state)
{
	ptv_metrics_reset_for_tests();
	return 0;
}

static int teardown(void **state)
{
	ptv_metrics_reset_for_tests();
	return 0;
}

/* ---- values ------------------------------------------------------------------------------ */

static void test_counter(void **state)
{
	struct ptv_metric *m =
		ptv_metric_simple("t_requests_total", "Requests.", PTV_METRIC_COUNTER);
	char *s;

	ptv_metric_inc(m);
	ptv_metric_inc(m);
	ptv_metric_add(m, 10);
	assert_true(ptv_metric_value(m) == 12);
	assert_ptr_equal(ptv_metric_simple("t_requests_total", "Requests.", PTV_METRIC_COUNTER), m);
	assert_ptr_equal(
		ptv_metric_get(ptv_metrics_family("t_requests_total", "Requests.",
						  PTV_METRIC_COUNTER, no_labels, NULL, 0, 1),
			       no_labels),
		m);
	s = render();
	assert_line(s, "t_requests_total 12");
	free(s);
}

static void test_counter_large_is_exact(void **state)
{
	struct ptv_metric *m = ptv_metric_simple("t_bytes_total", "Bytes.", PTV_METRIC_COUNTER);
	char *s;

	ptv_metric_add(m, UINT64_C(18014398509481985)); /* 2^54 + 1: not a double */
	s = render();
	assert_line(s, "t_bytes_total 18014398509481985");
	free(s);
}

static void test_gauge(void **state)
{
	struct ptv_metric *g = ptv_metric_simple("t_queue_depth", "Depth.", PTV_METRIC_GAUGE);
	char *s;

	ptv_metric_add(g, 5);
	ptv_metric_sub(g, 7);
	assert_true(ptv_metric_value(g) == -2);
	s = render();
	assert_line(s, "t_queue_depth -2");
	free(s);

	ptv_metric_set(g, 0.5); /* absolute part plus the shard sum */
	assert_true(ptv_metric_value(g) == -1.5);
	s = render();
	assert_line(s, "t_queue_depth -1.5");
	free(s);
}

static void test_counter_set_by_collector(void **state)
{
	struct ptv_metric *m = ptv_metric_simple("t_cpu_seconds_total", "CPU.", PTV_METRIC_COUNTER);
	char *s;

	ptv_metric_set(m, 2.25);
	s = render();
	assert_line(s, "# TYPE t_cpu_seconds_total counter");
	assert_line(s, "t_cpu_seconds_total 2.25");
	free(s);
}

static void test_value_format(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{0.1, "0.1"},
		{3.0, "3"},
		{-0.0, "0"},
		{123456789.125, "123456789.125"},
		{1e20, "1e+20"},
		{-4611686018427387904.0, "-4611686018427387904"},
		{1.0 / 3.0, "0.3333333333333333"},
		{NAN, "NaN"},
		{INFINITY, "+Inf"},
		{-INFINITY, "-Inf"},
	};
	struct ptv_metric *g = ptv_metric_simple("t_value", "Value.", PTV_METRIC_GAUGE);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[64], *s;

		ptv_metric_set(g, cases[i].v);
		s = render();
		snprintf(line, sizeof(line), "t_value %s", cases[i].text);
		assert_line(s, line);
		free(s);
	}
}

static const double lat_buckets[] = {0.005, 0.1, 1};

static void test_histogram(void **state)
{
	static const char *const names[] = {"handler", NULL};
	static const char *const lineup[] = {"lineup", NULL};
	static const double obs[] = {0.00390625, 0.0625, 0.1, 0.5, 1, 4};
	struct ptv_metric_family *f;
	struct ptv_metric *h;
	double sum = 0;
	char *s;

	f = ptv_metrics_family("t_latency_seconds", "Latency.", PTV_METRIC_HISTOGRAM, names,
			       lat_buckets, 3, 4);
	h = ptv_metric_get(f, lineup);
	assert_non_null(h);
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
		ptv_metric_observe(h, obs[i]);
		sum += obs[i];
	}
	assert_true(ptv_metric_value(h) == 6);
	s = render();
	/* le is inclusive: 0.1 and 1 fall in their own buckets; counts are cumulative. */
	assert_line(s, "t_latency_seconds_bucket{handler=\"lineup\",le=\"0.005\"} 1");
	assert_line(s, "t_latency_seconds_bucket{handler=\"lineup\",le=\"0.1\"} 3");
	assert_line(s, "t_latency_seconds_bucket{handler=\"lineup\",le=\"1\"} 5");
	assert_line(s, "t_latency_seconds_bucket{handler=\"lineup\",le=\"+Inf\"} 6");
	assert_line(s, "t_latency_seconds_count{handler=\"lineup\"} 6");
	assert_true(sample_value(s, "t_latency_seconds_sum{handler=\"lineup\"}") == sum);
	free(s);
}

static void test_histogram_default_buckets(void **state)
{
	struct ptv_metric *h = ptv_metric_simple("t_wait_seconds", "Wait.", PTV_METRIC_HISTOGRAM);
	char *s;

	s = render();
	assert_int_equal(count_of(s, "t_wait_seconds_bucket{"), 12);
	assert_line(s, "t_wait_seconds_bucket{le=\"0.005\"} 0");
	assert_line(s, "t_wait_seconds_bucket{le=\"2.5\"} 0");
	assert_line(s, "t_wait_seconds_bucket{le=\"10\"} 0");
	assert_line(s, "t_wait_seconds_bucket{le=\"+Inf\"} 0");
	assert_line(s, "t_wait_seconds_sum 0");
	assert_line(s, "t_wait_seconds_count 0");
	free(s);

	ptv_metric_observe(h, 100);
	ptv_metric_observe(h, NAN); /* goes to +Inf, like client_golang */
	s = render();
	assert_line(s, "t_wait_seconds_bucket{le=\"10\"} 0");
	assert_line(s, "t_wait_seconds_bucket{le=\"+Inf\"} 2");
	assert_line(s, "t_wait_seconds_sum NaN");
	free(s);
}

/* ---- labels ------------------------------------------------------------------------------ */

static void test_labels_and_escaping(void **state)
{
	static const char *const names[] = {"name", "kind", NULL};
	static const char *const v1[] = {"a\\b\"c\nd", "x", NULL};
	static const char *const v2[] = {"Sport 1 \xe2\x80\x93 HD", "y", NULL};
	struct ptv_metric_family *f;
	char *s;

	f = ptv_metrics_family("t_things_total", "Line one\nback\\slash \"quoted\"",
			       PTV_METRIC_COUNTER, names, NULL, 0, 8);
	ptv_metric_inc(ptv_metric_get(f, v1));
	ptv_metric_add(ptv_metric_get(f, v2), 2);
	s = render();
	/* HELP escapes only \\ and \n; label values also escape ". */
	assert_line(s, "# HELP t_things_total Line one\\nback\\\\slash \"quoted\"");
	assert_line(s, "t_things_total{name=\"a\\\\b\\\"c\\nd\",kind=\"x\"} 1");
	assert_line(s, "t_things_total{name=\"Sport 1 \xe2\x80\x93 HD\",kind=\"y\"} 2");
	free(s);
}

static void test_invalid_utf8_label(void **state)
{
	static const char *const names[] = {"channel", NULL};
	static const char *const bad1[] = {"bad\xff", NULL};
	static const char *const bad2[] = {"bad\xfe", NULL};
	static const char *const overlong[] = {"\xc0\xaf", NULL};
	struct ptv_metric_family *f;
	struct ptv_metric *m1, *m2;
	char *s;

	f = ptv_metrics_family("t_viewers", "Viewers.", PTV_METRIC_GAUGE, names, NULL, 0, 8);
	m1 = ptv_metric_get(f, bad1);
	m2 = ptv_metric_get(f, bad2);
	/* Both render as "bad\uFFFD": one series, so no label set is repeated. */
	assert_ptr_equal(m1, m2);
	ptv_metric_add(m1, 1);
	ptv_metric_add(ptv_metric_get(f, overlong), 1);
	s = render();
	assert_line(s, "t_viewers{channel=\"bad\xef\xbf\xbd\"} 1");
	assert_line(s, "t_viewers{channel=\"\xef\xbf\xbd\xef\xbf\xbd\"} 1");
	free(s);
}

static void test_same_series_and_family(void **state)
{
	static const char *const names[] = {"code", NULL};
	static const char *const ok[] = {"200", NULL};
	static const char *const nf[] = {"404", NULL};
	struct ptv_metric_family *f, *f2;
	struct ptv_metric *a, *b;

	f = ptv_metrics_family("t_http_total", "HTTP.", PTV_METRIC_COUNTER, names, NULL, 0, 8);
	f2 = ptv_metrics_family("t_http_total", "Other help.", PTV_METRIC_COUNTER, names, NULL, 0,
				99);
	assert_ptr_equal(f, f2);
	a = ptv_metric_get(f, ok);
	b = ptv_metric_get(f, nf);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(ptv_metric_get(f, ok), a);
	assert_ptr_equal(ptv_metric_get(f, nf), b);
}

static void test_max_series(void **state)
{
	static const char *const names[] = {"k", NULL};
	static const char *const va[] = {"a", NULL}, *const vb[] = {"b", NULL};
	static const char *const vc[] = {"c", NULL}, *const vd[] = {"d", NULL};
	struct ptv_metric_family *f;
	struct ptv_metric *a;
	char *s;

	f = ptv_metrics_family("t_bounded_total", "Bounded.", PTV_METRIC_COUNTER, names, NULL, 0,
			       2);
	a = ptv_metric_get(f, va);
	assert_non_null(a);
	assert_non_null(ptv_metric_get(f, vb));
	assert_null(ptv_metric_get(f, vc));
	assert_null(ptv_metric_get(f, vd));
	assert_ptr_equal(ptv_metric_get(f, va), a); /* existing series still found */
	assert_null(ptv_metric_get(NULL, va));

	/* Every update accepts NULL. */
	ptv_metric_inc(NULL);
	ptv_metric_add(NULL, 3);
	ptv_metric_sub(NULL, 3);
	ptv_metric_set(NULL, 3);
	ptv_metric_observe(NULL, 3);
	assert_true(ptv_metric_value(NULL) == 0);

	s = render();
	assert_line(s, "plextv_metrics_series_dropped_total 2");
	assert_int_equal(count_of(s, "\nt_bounded_total{"), 2);
	free(s);
}

/* ---- render format ----------------------------------------------------------------------- */

static void test_empty_families(void **state)
{
	static const char *const names[] = {"reason", NULL};
	char *s;

	ptv_metrics_family("t_rejections_total", "Rejections.", PTV_METRIC_COUNTER, names, NULL, 0,
			   4);
	ptv_metric_simple("t_failovers_total", "Failovers.", PTV_METRIC_COUNTER);
	s = render();
	assert_line(s, "# HELP t_rejections_total Rejections.");
	assert_line(s, "# TYPE t_rejections_total counter");
	assert_null(line_starting(s, "t_rejections_total"));
	/* An unlabeled counter that never fired still shows up. */
	assert_line(s, "t_failovers_total 0");
	free(s);
}

static void check_family_block(const char *s, const char *name)
{
	char help[128], type[128];
	const char *h, *t, *sample;

	snprintf(help, sizeof(help), "# HELP %s ", name);
	snprintf(type, sizeof(type), "# TYPE %s ", name);
	assert_int_equal(count_of(s, help), 1);
	assert_int_equal(count_of(s, type), 1);
	h = strstr(s, help);
	t = strstr(s, type);
	sample = line_starting(s, name);
	assert_true(h < t);
	assert_non_null(sample);
	assert_true(t < sample);
}

static void test_render_format(void **state)
{
	static const char *const names[] = {"proto", NULL};
	static const char *const http[] = {"http", NULL}, *const hls[] = {"hls", NULL};
	struct ptv_metric_family *hf;
	struct ptv_metric *c;
	char *s;
	size_t len;

	c = ptv_metric_simple("t_events_total", "Events.", PTV_METRIC_COUNTER);
	ptv_metric_inc(c);
	hf = ptv_metrics_family("t_start_seconds", "Start.", PTV_METRIC_HISTOGRAM, names,
				lat_buckets, 3, 4);
	ptv_metric_observe(ptv_metric_get(hf, http), 0.05);
	ptv_metric_observe(ptv_metric_get(hf, hls), 2);
	ptv_metric_observe(ptv_metric_get(hf, hls), 0.5);
	ptv_metric_simple("t_streams", "Streams.", PTV_METRIC_GAUGE);
	s = render();
	len = strlen(s);
	assert_true(len > 0 && s[len - 1] == '\n');
	assert_null(strstr(s, "\n\n"));
	check_family_block(s, "plextv_metrics_series_dropped_total");
	check_family_block(s, "t_events_total");
	check_family_block(s, "t_start_seconds");
	check_family_block(s, "t_streams");
	/* Registration order, the core family first. */
	assert_true(strstr(s, "# HELP plextv_metrics_series_dropped_total") <
		    strstr(s, "# HELP t_events_total"));
	assert_true(strstr(s, "# HELP t_events_total") < strstr(s, "# HELP t_start_seconds"));
	assert_true(strstr(s, "# HELP t_start_seconds") < strstr(s, "# HELP t_streams"));
	/* +Inf equals _count per series. */
	assert_true(sample_value(s, "t_start_seconds_bucket{proto=\"hls\",le=\"+Inf\"}") ==
		    sample_value(s, "t_start_seconds_count{proto=\"hls\"}"));
	assert_line(s, "t_start_seconds_bucket{proto=\"hls\",le=\"1\"} 1");
	assert_line(s, "t_start_seconds_count{proto=\"hls\"} 2");
	assert_line(s, "t_start_seconds_bucket{proto=\"http\",le=\"0.1\"} 1");
	free(s);
}

/* ---- threads ----------------------------------------------------------------------------- */

#define N_INC 1000000
#define N_OBS 100000

struct worker {
	pthread_t tid;
	bool sharded;
	bool explicit_exit;
	struct ptv_metric *c, *g, *h;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	if (w->sharded)
		ptv_metrics_thread_init();
	for (int i = 0; i < N_INC; i++) {
		ptv_metric_inc(w->c);
		ptv_metric_add(w->g, 3);
		ptv_metric_sub(w->g, 2);
	}
	for (int i = 0; i < N_OBS; i++)
		ptv_metric_observe(w->h, 0.5);
	if (w->sharded && w->explicit_exit)
		ptv_metrics_thread_exit();
	return NULL;
}

static atomic_bool render_stop;
static atomic_bool render_failed; /* cmocka asserts belong to the test's own thread */

/* Scrapes while the workers run: totals never go backwards (folds are not double counted). */
static void *render_run(void *arg)
{
	struct ptv_metric *c = arg;
	double last = 0;

	while (!atomic_load(&render_stop)) {
		struct ptv_buf b = {0};
		double v;

		if (ptv_metrics_render(&b) != 0)
			atomic_store(&render_failed, true);
		ptv_buf_free(&b);
		v = ptv_metric_value(c);
		if (v < last)
			atomic_store(&render_failed, true);
		last = v;
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	struct worker w[6] = {0};
	pthread_t r;
	char *s;
	struct ptv_metric *c = ptv_metric_simple("t_ops_total", "Ops.", PTV_METRIC_COUNTER);
	struct ptv_metric *g = ptv_metric_simple("t_level", "Level.", PTV_METRIC_GAUGE);
	struct ptv_metric *h = ptv_metric_simple("t_size_seconds", "Sizes.", PTV_METRIC_HISTOGRAM);

	atomic_store(&render_stop, false);
	atomic_store(&render_failed, false);
	assert_int_equal(pthread_create(&r, NULL, render_run, c), 0);
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){
			.sharded = i < 4, .explicit_exit = i != 3, .c = c, .g = g, .h = h};
		assert_int_equal(pthread_create(&w[i].tid, NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(w[i].tid, NULL);
	atomic_store(&render_stop, true);
	pthread_join(r, NULL);
	assert_false(atomic_load(&render_failed));

	/* Worker 3 never called thread_exit: its shard was folded at pthread exit. */
	assert_true(ptv_metric_value(c) == 6.0 * N_INC);
	assert_true(ptv_metric_value(g) == 6.0 * N_INC);
	assert_true(ptv_metric_value(h) == 6.0 * N_OBS);
	s = render();
	assert_line(s, "t_ops_total 6000000");
	assert_line(s, "t_level 6000000");
	assert_line(s, "t_size_seconds_count 600000");
	assert_line(s, "t_size_seconds_bucket{le=\"0.5\"} 600000");
	assert_line(s, "t_size_seconds_sum 300000");
	free(s);
}

struct creator {
	pthread_t tid;
	struct ptv_metric_family *f;
	unsigned seed;
	struct ptv_metric *got[32];
};

static void *creator_run(void *arg)
{
	struct creator *c = arg;

	ptv_metrics_thread_init();
	for (unsigned i = 0; i < 32; i++) {
		unsigned k = (i * 7 + c->seed) % 32; /* each thread walks the values in its order */
		char v[16];
		const char *vals[] = {v, NULL};

		snprintf(v, sizeof(v), "v%u", k);
		c->got[k] = ptv_metric_get(c->f, vals);
		ptv_metric_inc(c->got[k]);
	}
	ptv_metrics_thread_exit();
	return NULL;
}

static void test_concurrent_series_creation(void **state)
{
	static const char *const names[] = {"id", NULL};
	struct creator c[4] = {0};
	struct ptv_metric_family *f;
	char *s;

	f = ptv_metrics_family("t_created_total", "Created.", PTV_METRIC_COUNTER, names, NULL, 0,
			       32);
	for (unsigned i = 0; i < 4; i++) {
		c[i].f = f;
		c[i].seed = i * 5;
		assert_int_equal(pthread_create(&c[i].tid, NULL, creator_run, &c[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(c[i].tid, NULL);
	for (unsigned k = 0; k < 32; k++) {
		assert_non_null(c[0].got[k]);
		for (unsigned i = 1; i < 4; i++)
			assert_ptr_equal(c[i].got[k], c[0].got[k]);
		assert_true(ptv_metric_value(c[0].got[k]) == 4);
	}
	s = render();
	assert_int_equal(count_of(s, "\nt_created_total{"), 32);
	assert_line(s, "plextv_metrics_series_dropped_total 0");
	free(s);
}

static void *exit_run(void *arg)
{
	struct ptv_metric **m = arg;

	ptv_metrics_thread_init();
	ptv_metrics_thread_init(); /* idempotent */
	ptv_metric_add(m[0], 5);
	ptv_metric_add(m[1], 3);
	ptv_metric_observe(m[2], 0.25);
	ptv_metrics_thread_exit();
	ptv_metrics_thread_exit(); /* no-op */
	ptv_metric_inc(m[0]);	   /* after exit: the shared shard */
	return NULL;
}

static void test_thread_exit_preserves(void **state)
{
	struct ptv_metric *m[3] = {
		ptv_metric_simple("t_kept_total", "Kept.", PTV_METRIC_COUNTER),
		ptv_metric_simple("t_kept", "Kept.", PTV_METRIC_GAUGE),
		ptv_metric_simple("t_kept_seconds", "Kept.", PTV_METRIC_HISTOGRAM),
	};
	pthread_t t;
	char *s;

	assert_int_equal(pthread_create(&t, NULL, exit_run, m), 0);
	pthread_join(t, NULL);
	assert_true(ptv_metric_value(m[0]) == 6);
	assert_true(ptv_metric_value(m[1]) == 3);
	assert_true(ptv_metric_value(m[2]) == 1);
	s = render();
	assert_line(s, "t_kept_seconds_sum 0.25");
	assert_line(s, "t_kept_seconds_bucket{le=\"0.25\"} 1");
	free(s);
}

static void test_main_thread_shard_reset(void **state)
{
	struct ptv_metric *m = ptv_metric_simple("t_main_total", "Main.", PTV_METRIC_COUNTER);

	ptv_metrics_thread_init();
	ptv_metric_add(m, 7);
	assert_true(ptv_metric_value(m) == 7);
	/* Reset keeps the live shard but zeroes it: a new family reusing slot numbers starts at 0.
	 */
	ptv_metrics_reset_for_tests();
	m = ptv_metric_simple("t_main_total", "Main.", PTV_METRIC_COUNTER);
	assert_true(ptv_metric_value(m) == 0);
	ptv_metric_inc(m);
	assert_true(ptv_metric_value(m) == 1);
	ptv_metrics_thread_exit();
	assert_true(ptv_metric_value(m) == 1);
}

/* ---- collectors and process metrics ------------------------------------------------------ */

static void bump_collector(void *ctx)
{
	ptv_metric_inc(ctx);
}

static void test_collectors(void **state)
{
	struct ptv_metric *m = ptv_metric_simple("t_scrapes_total", "Scrapes.", PTV_METRIC_COUNTER);
	char *s;

	ptv_metrics_collector_add(bump_collector, m);
	ptv_metrics_collector_add(bump_collector, m); /* same fn and ctx: once */
	free(render());
	s = render();
	assert_line(s, "t_scrapes_total 2");
	free(s);
}

static void test_process_metrics(void **state)
{
	char *s;
	double start, now = (double)time(NULL);

	ptv_metrics_process_register();
	ptv_metrics_process_register(); /* idempotent */
	s = render();
	assert_line(s, "# TYPE process_cpu_seconds_total counter");
	assert_line(s, "# TYPE process_resident_memory_bytes gauge");
	assert_int_equal(count_of(s, "\nprocess_open_fds "), 1);
	assert_true(sample_value(s, "process_cpu_seconds_total") >= 0);
	assert_true(sample_value(s, "process_resident_memory_bytes") >= 64 * 1024);
	assert_true(sample_value(s, "process_virtual_memory_bytes") >
		    sample_value(s, "process_resident_memory_bytes"));
	assert_true(sample_value(s, "process_open_fds") >= 3);
	assert_true(sample_value(s, "process_max_fds") >= sample_value(s, "process_open_fds"));
	assert_true(sample_value(s, "process_threads") >= 1);
	start = sample_value(s, "process_start_time_seconds");
	assert_true(start <= now + 2 && start > now - 3600);
	free(s);
}

/* ---- promtool ---------------------------------------------------------------------------- */

static bool find_in_path(const char *prog, char *out, size_t cap)
{
	const char *path = getenv("PATH");
	char *dup, *save = NULL;
	bool found = false;

	dup = strdup(path ? path : "/usr/bin:/bin");
	assert_non_null(dup);
	for (char *d = strtok_r(dup, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, cap, "%s/%s", d, prog);
		found = access(out, X_OK) == 0;
	}
	free(dup);
	return found;
}

static void fill_everything(void)
{
	static const char *const names[] = {"handler", "code", NULL};
	static const char *const v1[] = {"lineup", "200", NULL};
	static const char *const v2[] = {"a \"quoted\"\\path\nx\xff", "404", NULL};
	static const char *const pnames[] = {"protocol", NULL};
	static const char *const hls[] = {"hls", NULL};
	struct ptv_metric_family *f, *h;

	f = ptv_metrics_family("t_http_requests_total", "HTTP requests.\nBy handler \\ code.",
			       PTV_METRIC_COUNTER, names, NULL, 0, 16);
	ptv_metric_add(ptv_metric_get(f, v1), 41);
	ptv_metric_inc(ptv_metric_get(f, v2));
	h = ptv_metrics_family("t_stream_startup_seconds", "Startup.", PTV_METRIC_HISTOGRAM, pnames,
			       lat_buckets, 3, 8);
	ptv_metric_observe(ptv_metric_get(h, hls), 0.3);
	ptv_metrics_family("t_upstream_errors_total", "Errors.", PTV_METRIC_COUNTER, pnames, NULL,
			   0, 8);
	ptv_metric_set(ptv_metric_simple("t_tuners_in_use", "Tuners.", PTV_METRIC_GAUGE), 0.75);
	ptv_metric_set(ptv_metric_simple("t_weird", "NaN gauge.", PTV_METRIC_GAUGE), NAN);
	ptv_metric_simple("t_failovers_total", "Failovers.", PTV_METRIC_COUNTER);
	ptv_metric_simple("t_refresh_duration_seconds", "Refresh.", PTV_METRIC_HISTOGRAM);
	ptv_metrics_process_register();
}

static void test_promtool(void **state)
{
	char promtool[512], path[] = "/tmp/ptv-metrics-XXXXXX", cmd[1200], out[4096];
	size_t n;
	FILE *p;
	char *s;
	int fd, status;

	if (!find_in_path("promtool", promtool, sizeof(promtool))) {
		print_message("promtool not installed (Debian package prometheus): skipping\n");
		skip();
	}
	fill_everything();
	s = render();
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
	snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' 2>&1", promtool, path);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	status = pclose(p);
	unlink(path);
	if (status != 0 || n != 0)
		fail_msg("promtool check metrics: status %d, output:\n%s\ninput:\n%s", status, out,
			 s);
	free(s);
}

/* ---- programming errors abort ------------------------------------------------------------ */

static void clash_type(void)
{
	ptv_metric_simple("t_clash", "A.", PTV_METRIC_GAUGE);
	ptv_metric_simple("t_clash", "A.", PTV_METRIC_HISTOGRAM);
}

static void clash_labels(void)
{
	static const char *const a[] = {"a", NULL}, *const b[] = {"b", NULL};

	ptv_metrics_family("t_clash_total", "A.", PTV_METRIC_COUNTER, a, NULL, 0, 2);
	ptv_metrics_family("t_clash_total", "A.", PTV_METRIC_COUNTER, b, NULL, 0, 2);
}

static void counter_without_total(void)
{
	ptv_metric_simple("t_requests", "A.", PTV_METRIC_COUNTER);
}

static void gauge_with_total(void)
{
	ptv_metric_simple("t_requests_total", "A.", PTV_METRIC_GAUGE);
}

static void camel_case(void)
{
	ptv_metric_simple("t_fooBar", "A.", PTV_METRIC_GAUGE);
}

static void bad_first_char(void)
{
	ptv_metric_simple("1abc", "A.", PTV_METRIC_GAUGE);
}

static void colon_name(void)
{
	ptv_metric_simple("t:rule", "A.", PTV_METRIC_GAUGE);
}

static void non_base_unit(void)
{
	ptv_metric_simple("t_latency_milliseconds", "A.", PTV_METRIC_GAUGE);
}

static void abbreviated_unit(void)
{
	ptv_metric_simple("t_latency_ms", "A.", PTV_METRIC_GAUGE);
}

static void reserved_suffix(void)
{
	ptv_metric_simple("t_items_count", "A.", PTV_METRIC_GAUGE);
}

static void empty_help(void)
{
	ptv_metric_simple("t_x", "", PTV_METRIC_GAUGE);
}

static void label_le(void)
{
	static const char *const n[] = {"le", NULL};

	ptv_metrics_family("t_hist_seconds", "A.", PTV_METRIC_HISTOGRAM, n, NULL, 0, 2);
}

static void label_reserved(void)
{
	static const char *const n[] = {"__name", NULL};

	ptv_metrics_family("t_x", "A.", PTV_METRIC_GAUGE, n, NULL, 0, 2);
}

static void label_duplicate(void)
{
	static const char *const n[] = {"a", "a", NULL};

	ptv_metrics_family("t_x", "A.", PTV_METRIC_GAUGE, n, NULL, 0, 2);
}

static void buckets_unsorted(void)
{
	static const double b[] = {1, 0.5};

	ptv_metrics_family("t_hist_seconds", "A.", PTV_METRIC_HISTOGRAM, NULL, b, 2, 1);
}

static void buckets_on_gauge(void)
{
	ptv_metrics_family("t_x", "A.", PTV_METRIC_GAUGE, NULL, lat_buckets, 3, 1);
}

static void wrong_value_count(void)
{
	static const char *const n[] = {"a", "b", NULL}, *const v[] = {"x", NULL};

	ptv_metric_get(ptv_metrics_family("t_x", "A.", PTV_METRIC_GAUGE, n, NULL, 0, 2), v);
}

static void sub_on_counter(void)
{
	ptv_metric_sub(ptv_metric_simple("t_x_total", "A.", PTV_METRIC_COUNTER), 1);
}

static void observe_on_gauge(void)
{
	ptv_metric_observe(ptv_metric_simple("t_x", "A.", PTV_METRIC_GAUGE), 1);
}

static void too_many_slots(void)
{
	static const char *const n[] = {"a", NULL};

	ptv_metrics_family("t_huge_total", "A.", PTV_METRIC_COUNTER, n, NULL, 0, 40000);
	ptv_metrics_family("t_huge2_total", "A.", PTV_METRIC_COUNTER, n, NULL, 0, 40000);
}

static void expect_abort(void (*fn)(void), const char *what)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDERR_FILENO);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("%s did not abort (status %d)", what, status);
}

#define EXPECT_ABORT(fn) expect_abort(fn, #fn)

static void test_programming_errors_abort(void **state)
{
	EXPECT_ABORT(clash_type);
	EXPECT_ABORT(clash_labels);
	EXPECT_ABORT(counter_without_total);
	EXPECT_ABORT(gauge_with_total);
	EXPECT_ABORT(camel_case);
	EXPECT_ABORT(bad_first_char);
	EXPECT_ABORT(colon_name);
	EXPECT_ABORT(non_base_unit);
	EXPECT_ABORT(abbreviated_unit);
	EXPECT_ABORT(reserved_suffix);
	EXPECT_ABORT(empty_help);
	EXPECT_ABORT(label_le);
	EXPECT_ABORT(label_reserved);
	EXPECT_ABORT(label_duplicate);
	EXPECT_ABORT(buckets_unsorted);
	EXPECT_ABORT(buckets_on_gauge);
	EXPECT_ABORT(wrong_value_count);
	EXPECT_ABORT(sub_on_counter);
	EXPECT_ABORT(observe_on_gauge);
	EXPECT_ABORT(too_many_slots);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_large_is_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gauge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_set_by_collector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_histogram_default_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels_and_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8_label, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_series_and_family, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_series, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_families, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_series_creation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_exit_preserves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_main_thread_shard_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_process_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promtool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_programming_errors_abort, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
