/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Metrics registry and Prometheus text exposition (format 0.0.4).
 *
 * The registry is process-wide: one /metrics per process. Families are registered at start-up
 * (registering an existing name with the same type returns the existing family). A series is a
 * family plus label values; it is created on first use under a lock (cold path), and callers keep
 * the returned handle so the hot path is lock-free: counters, gauge adds and histogram
 * observations go to a per-thread shard with relaxed atomics, and a scrape sums the shards.
 * A thread that never called ptv_metrics_thread_init() uses a shared shard (atomic adds).
 *
 * Label sets are bounded: a family declares max_series; past it ptv_metric_get() returns NULL
 * and every update function accepts NULL as a no-op (the overflow is counted in
 * plextv_metrics_series_dropped_total). Never use URLs, credentials or client addresses as labels.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "plextv/buf.h"

enum ptv_metric_type {
	PTV_METRIC_COUNTER = 1,
	PTV_METRIC_GAUGE = 2,
	PTV_METRIC_HISTOGRAM = 3,
};

struct ptv_metric_family;
struct ptv_metric;

/**
 * Registers a family. @label_names is NULL-terminated (or NULL for none); @buckets are the
 * ascending upper bounds of a histogram (+Inf is implied) and must be NULL for other types.
 * Aborts on a programming error (bad name, type clash with an existing family).
 */
struct ptv_metric_family *ptv_metrics_family(const char *name, const char *help,
					     enum ptv_metric_type type,
					     const char *const *label_names, const double *buckets,
					     size_t n_buckets, unsigned max_series);

/** The series for @label_values (NULL-terminated, same count as the names). May return NULL. */
struct ptv_metric *ptv_metric_get(struct ptv_metric_family *f, const char *const *label_values);
/** Shortcut for families without labels. */
struct ptv_metric *ptv_metric_simple(const char *name, const char *help, enum ptv_metric_type type);

void ptv_metric_add(struct ptv_metric *m, uint64_t v);
static inline void ptv_metric_inc(struct ptv_metric *m)
{
	ptv_metric_add(m, 1);
}
/** Gauges only. */
void ptv_metric_sub(struct ptv_metric *m, uint64_t v);
/** Gauges, and counters mirrored by collectors: an absolute value, added to what the shards hold.
 */
void ptv_metric_set(struct ptv_metric *m, double v);
/** Histograms only. */
void ptv_metric_observe(struct ptv_metric *m, double v);

/** Current value summed over shards (counters and gauges; histograms: the count). For tests. */
double ptv_metric_value(struct ptv_metric *m);

/** Collectors run at the start of every render, e.g. to ptv_metric_set() gauges read from /proc. */
void ptv_metrics_collector_add(void (*fn)(void *ctx), void *ctx);

/** Gives the calling thread its own shard. Call once per long-lived thread. */
void ptv_metrics_thread_init(void);
/** Folds the calling thread's shard into the shared one (nothing is lost) before it exits. */
void ptv_metrics_thread_exit(void);

/** Appends the whole exposition (HELP, TYPE, samples; families in registration order). */
int ptv_metrics_render(struct ptv_buf *out);

/** Registers process_* metrics (cpu, rss, vsize, open/max fds, start time) read from /proc. */
void ptv_metrics_process_register(void);

/** Clears the registry. For unit tests only; no other thread may use metrics meanwhile. */
void ptv_metrics_reset_for_tests(void);
