/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Metrics registry and Prometheus text exposition.
 *
 * Storage. Every value lives in "slots" (uint64). A family reserves max_series * slots_per_series
 * consecutive slot indices when it is registered; series i of the family owns the run starting
 * at slot_base + i * slots_per_series. Counters and gauges use one slot; a histogram uses one per
 * bucket, one for +Inf and one for the sum (a double stored as its bits). There is no count slot:
 * the count is the sum of all buckets, so a scrape always shows le="+Inf" == _count even while
 * observations are in flight.
 *
 * Shards. Each thread that called ptv_metrics_thread_init() owns a shard: an array of
 * PTV_METRICS_SLOTS atomic slots. Only the owner writes it, so its updates are a relaxed load and
 * store (no locked instruction, no cache-line ping-pong); a render only reads it. Threads without
 * a shard add to the shared shard with atomic read-modify-write. A shard never grows, so the hot
 * path needs no lock and there is no resize to race with; the price is a fixed capacity (see
 * PTV_METRICS_SLOTS), checked when a family is registered so that an oversized set of families
 * fails at start-up rather than when the 500th label value appears.
 *
 * Series. A family holds a fixed array of max_series series. New series are built under the
 * registry lock and published by a release store of n_series; lookups scan the published prefix
 * after an acquire load, so they never take the lock.
 *
 * Locking. reg.lock guards the family list, slot allocation, the shard list and series creation;
 * renders take it to enumerate shards, and thread_exit takes it to fold a shard into the shared
 * one, so a render sees a thread's counts exactly once. reg.collect_lock guards collectors and is
 * always taken before reg.lock, never inside it.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "plextv/metrics.h"

/*
 * Slots per shard: 65536 * 8 bytes = 512 KiB of address space per thread. Shards are mmap()ed,
 * so pages that no series uses are never touched and cost no memory. Registering families that
 * together need more slots is a programming error (PTV_BUG_ON).
 */
#define PTV_METRICS_SLOTS 65536u

struct ptv_metrics_shard {
	struct ptv_list link; /* in reg.shards, under reg.lock */
	_Atomic uint64_t v[PTV_METRICS_SLOTS];
};

struct ptv_metric {
	struct ptv_metric_family *fam;
	enum ptv_metric_type type; /* copied from fam: the hot path avoids a pointer chase */
	uint32_t slot;		   /* first slot of this series in every shard */
	_Atomic uint64_t set_bits; /* bits of the double given to ptv_metric_set() */
	char **values;		   /* label values as the caller gave them (lookup key) */
	char *labels;		   /* rendered `a="x",b="y"` (UTF-8 fixed, escaped); NULL if none */
};

struct ptv_metric_family {
	char *name;
	char *help; /* escaped for a HELP line */
	enum ptv_metric_type type;
	unsigned n_labels;
	char **label_names;
	double *buckets; /* histograms: ascending upper bounds, +Inf implied */
	char **le;	 /* the bounds formatted for le="..." */
	size_t n_buckets;
	unsigned max_series;
	uint32_t slot_base;
	uint32_t slots_per_series;
	_Atomic unsigned n_series; /* published prefix of series[] (release/acquire) */
	struct ptv_metric *series; /* fixed array of max_series */
};

struct ptv_metrics_collector {
	void (*fn)(void *ctx);
	void *ctx;
};

/*
 * The registry is a file-scope global on purpose: there is one /metrics per process, and the
 * modules that count things (log, reactors, workers, ingest supervisors) share no context object
 * through which a registry could be passed. Everything in it is guarded by the locks below.
 */
static struct {
	pthread_mutex_t lock;
	bool ready; /* core families registered */
	struct ptv_metric_family **fams;
	size_t n_fams, cap_fams;
	uint32_t next_slot;
	struct ptv_list shards;
	struct ptv_metric *dropped;

	pthread_mutex_t collect_lock;
	struct ptv_metrics_collector *collectors;
	size_t n_collectors;
} reg = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.shards = {&reg.shards, &reg.shards},
	.collect_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* Updates from threads without a shard; also receives the shards of exiting threads. In .bss. */
static struct ptv_metrics_shard shared_shard;

/*
 * Thread-local because the point of a shard is that only one thread writes it: each thread finds
 * its own without a lookup or a lock. NULL means "use shared_shard".
 */
static _Thread_local struct ptv_metrics_shard *tls_shard;

/* Prometheus client_golang DefBuckets, used when a histogram is registered without buckets. */
static const double default_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

/* ---- hot path ---------------------------------------------------------------------------- */

static inline void slot_add(uint32_t slot, uint64_t v)
{
	struct ptv_metrics_shard *s = tls_shard;

	if (PTV_LIKELY(s)) {
		/* Sole writer: load + store is exact and cheaper than fetch_add. */
		_Atomic uint64_t *p = &s->v[slot];

		atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
				      memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&shared_shard.v[slot], v, memory_order_relaxed);
}

static inline uint64_t dbl_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static inline double bits_dbl(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* Adds @v to a slot that holds a double, in the shared shard (several writers). */
static void shared_dbl_add(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(p, &old, dbl_bits(bits_dbl(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static inline void slot_dbl_add(uint32_t slot, double v)
{
	struct ptv_metrics_shard *s = tls_shard;

	if (PTV_LIKELY(s)) {
		_Atomic uint64_t *p = &s->v[slot];
		double cur = bits_dbl(atomic_load_explicit(p, memory_order_relaxed));

		atomic_store_explicit(p, dbl_bits(cur + v), memory_order_relaxed);
		return;
	}
	shared_dbl_add(&shared_shard.v[slot], v);
}

void ptv_metric_add(struct ptv_metric *m, uint64_t v)
{
	if (!m)
		return;
	PTV_BUG_ON(m->type == PTV_METRIC_HISTOGRAM);
	slot_add(m->slot, v);
}

void ptv_metric_sub(struct ptv_metric *m, uint64_t v)
{
	if (!m)
		return;
	PTV_BUG_ON(m->type != PTV_METRIC_GAUGE);
	/* Gauge slots are read back as int64: modular arithmetic makes the sum come out right. */
	slot_add(m->slot, (uint64_t)0 - v);
}

void ptv_metric_set(struct ptv_metric *m, double v)
{
	if (!m)
		return;
	/* Counters accept set() too: collectors mirror monotonic values kept elsewhere (/proc). */
	PTV_BUG_ON(m->type == PTV_METRIC_HISTOGRAM);
	atomic_store_explicit(&m->set_bits, dbl_bits(v), memory_order_relaxed);
}

/* Index of the first bucket whose bound is >= @v (le is inclusive); n_buckets means +Inf. */
static size_t bucket_index(const struct ptv_metric_family *f, double v)
{
	size_t lo = 0, hi = f->n_buckets;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= f->buckets[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo; /* NaN compares false everywhere and lands in +Inf, as in client_golang */
}

void ptv_metric_observe(struct ptv_metric *m, double v)
{
	const struct ptv_metric_family *f;

	if (!m)
		return;
	PTV_BUG_ON(m->type != PTV_METRIC_HISTOGRAM);
	f = m->fam;
	slot_add(m->slot + (uint32_t)bucket_index(f, v), 1);
	slot_dbl_add(m->slot + (uint32_t)f->n_buckets + 1, v);
}

/* ---- names, escaping, number formatting -------------------------------------------------- */

static bool name_char_ok(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || c == '_')
		return true;
	return !first && c >= '0' && c <= '9';
}

/*
 * Prometheus allows [a-zA-Z_:][a-zA-Z0-9_:]* for metrics and [a-zA-Z_][a-zA-Z0-9_]* for labels,
 * with "__" reserved. We accept the stricter snake_case subset that promtool does not warn
 * about: no upper case ("camelCase") and no ':' (reserved for recording rules).
 */
static bool ident_ok(const char *s)
{
	if (!s || !*s || strncmp(s, "__", 2) == 0)
		return false;
	for (const char *p = s; *p; p++)
		if (!name_char_ok(*p, p == s))
			return false;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool part_is(const char *part, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(part, word, n) == 0;
}

static bool part_in(const char *part, size_t n, const char *const *words)
{
	for (; *words; words++)
		if (part_is(part, n, *words))
			return true;
	return false;
}

/* A name part such as "milliseconds": a unit prefix on a base unit (promtool: use base units). */
static bool part_prefixed_unit(const char *part, size_t n)
{
	static const char *const prefixes[] = {
		"pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi",
		"mega", "mibi", "giga",	 "gibi",  "tera",  "tebi", "peta", "pebi",  NULL};
	static const char *const units[] = {"amperes", "bytes",	 "celsius", "grams",
					    "joules",  "kelvin", "meters",  "metres",
					    "seconds", "volts",	 NULL};

	for (const char *const *p = prefixes; *p; p++) {
		size_t k = strlen(*p);

		if (n > k && memcmp(part, *p, k) == 0 && part_in(part + k, n - k, units))
			return true;
	}
	return false;
}

/* The naming rules promtool's linter checks, word by word ("_"-separated parts). */
static bool name_parts_ok(const char *name)
{
	static const char *const abbrev[] = {"s",  "ms", "us", "ns", "sec", "b", "kb", "mb",
					     "gb", "tb", "pb", "m",  "h",   "d", NULL};
	static const char *const types[] = {"counter", "gauge",	  "histogram",
					    "summary", "untyped", NULL};

	for (const char *p = name; *p;) {
		size_t n = strcspn(p, "_");

		if (part_in(p, n, abbrev) || part_in(p, n, types) || part_prefixed_unit(p, n))
			return false;
		p += n;
		p += *p == '_';
	}
	return true;
}

static bool metric_name_ok(const char *name, enum ptv_metric_type type)
{
	if (!ident_ok(name) || !name_parts_ok(name))
		return false;
	/* Counters end in _total and nothing else does; the histogram suffixes are reserved. */
	if (has_suffix(name, "_total") != (type == PTV_METRIC_COUNTER))
		return false;
	return !has_suffix(name, "_bucket") && !has_suffix(name, "_sum") &&
	       !has_suffix(name, "_count");
}

/* Length of the valid UTF-8 sequence at @s, or 0 (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s)
{
#define CONT(b) (((b)&0xC0) == 0x80)
	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xC2)
		return 0;
	if (s[0] < 0xE0)
		return CONT(s[1]) ? 2 : 0;
	if (s[0] < 0xF0) {
		if (!CONT(s[1]) || !CONT(s[2]) || (s[0] == 0xE0 && s[1] < 0xA0) ||
		    (s[0] == 0xED && s[1] >= 0xA0))
			return 0;
		return 3;
	}
	if (s[0] < 0xF5) {
		if (!CONT(s[1]) || !CONT(s[2]) || !CONT(s[3]) || (s[0] == 0xF0 && s[1] < 0x90) ||
		    (s[0] == 0xF4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
#undef CONT
}

/*
 * Escapes @s for a HELP text (\\ and \n) or, with @quote, a label value (also \"), replacing
 * invalid UTF-8 with U+FFFD (the format is UTF-8 and promtool rejects anything else).
 * Writes to @dst when it is not NULL; returns the length either way (call twice: size, fill).
 */
static size_t escape(char *dst, const char *s, bool quote)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		size_t k = utf8_len(p);
		const char *rep = NULL;

		if (!k)
			rep = "\xEF\xBF\xBD";
		else if (*p == '\\')
			rep = "\\\\";
		else if (*p == '\n')
			rep = "\\n";
		else if (*p == '"' && quote)
			rep = "\\\"";
		if (rep) {
			if (dst)
				memcpy(dst + n, rep, strlen(rep));
			n += strlen(rep);
			p += k ? k : 1;
			continue;
		}
		if (dst)
			memcpy(dst + n, p, k);
		n += k;
		p += k;
	}
	return n;
}

static char *escape_dup(const char *s, bool quote)
{
	size_t n = escape(NULL, s, quote);
	char *d = ptv_xmalloc(n + 1);

	escape(d, s, quote);
	d[n] = '\0';
	return d;
}

/*
 * Formats a sample value: integral values as integers (no exponent), others with the fewest
 * digits that read back as the same double, and NaN/+Inf/-Inf as Prometheus spells them.
 */
static void format_double(char *dst, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(dst, cap, "NaN");
	} else if (isinf(v)) {
		snprintf(dst, cap, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v == 0) {
		snprintf(dst, cap, "0"); /* also -0 */
	} else if (v == trunc(v) && fabs(v) < 0x1p63) {
		snprintf(dst, cap, "%" PRId64, (int64_t)v);
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(dst, cap, "%.*g", prec, v);
			if (strtod(dst, NULL) == v)
				break;
		}
	}
}

/* ---- registration ------------------------------------------------------------------------ */

static size_t strv_len(const char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static char **strv_dup(const char *const *v, size_t n)
{
	char **d = ptv_xcalloc(n ? n : 1, sizeof(*d));

	for (size_t i = 0; i < n; i++)
		d[i] = ptv_xstrdup(v[i]);
	return d;
}

static void strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void check_labels(const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		PTV_BUG_ON(!ident_ok(names[i]));
		/* le is the bucket label; it may not be a user label on any family. */
		PTV_BUG_ON(strcmp(names[i], "le") == 0);
		for (size_t j = 0; j < i; j++)
			PTV_BUG_ON(strcmp(names[i], names[j]) == 0);
	}
}

static void check_buckets(const double *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		PTV_BUG_ON(!isfinite(b[i]));
		PTV_BUG_ON(i > 0 && b[i] <= b[i - 1]);
	}
}

static struct ptv_metric_family *find_family_locked(const char *name)
{
	for (size_t i = 0; i < reg.n_fams; i++)
		if (strcmp(reg.fams[i]->name, name) == 0)
			return reg.fams[i];
	return NULL;
}

/* A second registration must describe the same family; anything else is a programming error. */
static void check_same_family(const struct ptv_metric_family *f, enum ptv_metric_type type,
			      const char *const *label_names, size_t n_labels,
			      const double *buckets, size_t n_buckets)
{
	PTV_BUG_ON(f->type != type);
	PTV_BUG_ON(f->n_labels != n_labels);
	for (size_t i = 0; i < n_labels; i++)
		PTV_BUG_ON(strcmp(f->label_names[i], label_names[i]) != 0);
	PTV_BUG_ON(f->n_buckets != n_buckets);
	for (size_t i = 0; i < n_buckets; i++)
		PTV_BUG_ON(f->buckets[i] != buckets[i]);
}

static void family_set_buckets(struct ptv_metric_family *f, const double *b, size_t n)
{
	f->n_buckets = n;
	f->buckets = ptv_xcalloc(n ? n : 1, sizeof(*f->buckets));
	f->le = ptv_xcalloc(n ? n : 1, sizeof(*f->le));
	for (size_t i = 0; i < n; i++) {
		char tmp[32];

		f->buckets[i] = b[i];
		format_double(tmp, sizeof(tmp), b[i]);
		f->le[i] = ptv_xstrdup(tmp);
	}
}

/* Reserves the family's slots in every shard (see PTV_METRICS_SLOTS). */
static void family_reserve_slots(struct ptv_metric_family *f)
{
	uint64_t need;

	f->slots_per_series = f->type == PTV_METRIC_HISTOGRAM ? (uint32_t)f->n_buckets + 2 : 1;
	need = (uint64_t)f->max_series * f->slots_per_series;
	PTV_BUG_ON(need > PTV_METRICS_SLOTS - reg.next_slot);
	f->slot_base = reg.next_slot;
	reg.next_slot += (uint32_t)need;
}

static void family_append_locked(struct ptv_metric_family *f)
{
	if (reg.n_fams == reg.cap_fams) {
		reg.cap_fams = reg.cap_fams ? 2 * reg.cap_fams : 32;
		reg.fams = ptv_xrealloc(reg.fams, reg.cap_fams * sizeof(*reg.fams));
	}
	reg.fams[reg.n_fams++] = f;
}

static struct ptv_metric *series_create_locked(struct ptv_metric_family *f,
					       const char *const *values);

static struct ptv_metric_family *family_new_locked(const char *name, const char *help,
						   enum ptv_metric_type type,
						   const char *const *label_names, size_t n_labels,
						   const double *buckets, size_t n_buckets,
						   unsigned max_series)
{
	struct ptv_metric_family *f = ptv_xcalloc(1, sizeof(*f));

	f->name = ptv_xstrdup(name);
	f->help = escape_dup(help, false);
	f->type = type;
	f->n_labels = (unsigned)n_labels;
	f->label_names = strv_dup(label_names, n_labels);
	family_set_buckets(f, buckets, n_buckets);
	/* An unlabeled family has exactly one series, created now so it renders before use. */
	f->max_series = n_labels ? max_series : 1;
	f->series = ptv_xcalloc(f->max_series, sizeof(*f->series));
	family_reserve_slots(f);
	family_append_locked(f);
	if (!n_labels)
		series_create_locked(f, NULL);
	return f;
}

static struct ptv_metric_family *family_register_locked(const char *name, const char *help,
							enum ptv_metric_type type,
							const char *const *label_names,
							const double *buckets, size_t n_buckets,
							unsigned max_series)
{
	size_t n_labels = strv_len(label_names);
	struct ptv_metric_family *f;

	PTV_BUG_ON(type != PTV_METRIC_COUNTER && type != PTV_METRIC_GAUGE &&
		   type != PTV_METRIC_HISTOGRAM);
	PTV_BUG_ON(!metric_name_ok(name, type));
	PTV_BUG_ON(!help || !*help);
	check_labels(label_names, n_labels);
	if (type == PTV_METRIC_HISTOGRAM && !buckets) {
		buckets = default_buckets;
		n_buckets = PTV_ARRAY_SIZE(default_buckets);
	}
	PTV_BUG_ON(type != PTV_METRIC_HISTOGRAM && (buckets || n_buckets));
	check_buckets(buckets, n_buckets);
	PTV_BUG_ON(n_labels && (max_series == 0 || max_series > PTV_METRICS_SLOTS));

	f = find_family_locked(name);
	if (f) {
		check_same_family(f, type, label_names, n_labels, buckets, n_buckets);
		return f;
	}
	return family_new_locked(name, help, type, label_names, n_labels, buckets, n_buckets,
				 max_series);
}

/* Core families, registered before any other so they lead the exposition. */
static void registry_ready_locked(void)
{
	struct ptv_metric_family *f;

	if (reg.ready)
		return;
	reg.ready = true;
	f = family_register_locked("plextv_metrics_series_dropped_total",
				   "Label sets not recorded because their family reached its "
				   "series limit.",
				   PTV_METRIC_COUNTER, NULL, NULL, 0, 1);
	reg.dropped = &f->series[0];
}

struct ptv_metric_family *ptv_metrics_family(const char *name, const char *help,
					     enum ptv_metric_type type,
					     const char *const *label_names, const double *buckets,
					     size_t n_buckets, unsigned max_series)
{
	struct ptv_metric_family *f;

	pthread_mutex_lock(&reg.lock);
	registry_ready_locked();
	f = family_register_locked(name, help, type, label_names, buckets, n_buckets, max_series);
	pthread_mutex_unlock(&reg.lock);
	return f;
}

/* ---- series ------------------------------------------------------------------------------ */

static bool values_equal(char *const *a, const char *const *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Lock-free: only the published prefix of series[] is read, after an acquire of its length. */
static struct ptv_metric *series_find(struct ptv_metric_family *f, const char *const *values)
{
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (values_equal(f->series[i].values, values, f->n_labels))
			return &f->series[i];
	return NULL;
}

/* `a="x",b="y"` for the HELP-free part of a sample line; NULL for an unlabeled family. */
static char *render_labels(const struct ptv_metric_family *f, const char *const *values)
{
	size_t len = 0, pos = 0;
	char *s;

	if (!f->n_labels)
		return NULL;
	for (unsigned i = 0; i < f->n_labels; i++)
		len += strlen(f->label_names[i]) + 4 + escape(NULL, values[i], true);
	s = ptv_xmalloc(len + 1);
	for (unsigned i = 0; i < f->n_labels; i++) {
		pos += (size_t)sprintf(s + pos, "%s%s=\"", i ? "," : "", f->label_names[i]);
		pos += escape(s + pos, values[i], true);
		s[pos++] = '"';
	}
	s[pos] = '\0';
	return s;
}

/*
 * Two different byte strings can render alike (invalid UTF-8 becomes U+FFFD); they share one
 * series so the exposition never repeats a label set.
 */
static struct ptv_metric *series_same_labels(struct ptv_metric_family *f, unsigned n,
					     const char *labels)
{
	for (unsigned i = 0; i < n && labels; i++)
		if (strcmp(f->series[i].labels, labels) == 0)
			return &f->series[i];
	return NULL;
}

static struct ptv_metric *series_create_locked(struct ptv_metric_family *f,
					       const char *const *values)
{
	/* Only this (locked) path writes n_series, so a relaxed read of it is current. */
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_relaxed);
	struct ptv_metric *m;
	char *labels;

	if (n == f->max_series) {
		ptv_metric_inc(reg.dropped);
		return NULL;
	}
	labels = render_labels(f, values);
	m = series_same_labels(f, n, labels);
	if (m) {
		free(labels);
		return m;
	}
	m = &f->series[n];
	m->fam = f;
	m->type = f->type;
	m->slot = f->slot_base + n * f->slots_per_series;
	atomic_init(&m->set_bits, dbl_bits(0));
	m->values = strv_dup(values, f->n_labels);
	m->labels = labels;
	atomic_store_explicit(&f->n_series, n + 1, memory_order_release);
	return m;
}

struct ptv_metric *ptv_metric_get(struct ptv_metric_family *f, const char *const *label_values)
{
	struct ptv_metric *m;

	if (!f)
		return NULL;
	PTV_BUG_ON(strv_len(label_values) != f->n_labels);
	m = series_find(f, label_values);
	if (m)
		return m;
	pthread_mutex_lock(&reg.lock);
	m = series_find(f, label_values);
	if (!m)
		m = series_create_locked(f, label_values);
	pthread_mutex_unlock(&reg.lock);
	return m;
}

struct ptv_metric *ptv_metric_simple(const char *name, const char *help, enum ptv_metric_type type)
{
	return ptv_metric_get(ptv_metrics_family(name, help, type, NULL, NULL, 0, 1), NULL);
}

/* ---- reading ----------------------------------------------------------------------------- */

static uint64_t slot_total_locked(uint32_t slot)
{
	uint64_t t = atomic_load_explicit(&shared_shard.v[slot], memory_order_relaxed);

	for (struct ptv_list *pos = reg.shards.next; pos != &reg.shards; pos = pos->next) {
		struct ptv_metrics_shard *s = ptv_container_of(pos, struct ptv_metrics_shard, link);

		t += atomic_load_explicit(&s->v[slot], memory_order_relaxed);
	}
	return t;
}

static double slot_dbl_total_locked(uint32_t slot)
{
	double t = bits_dbl(atomic_load_explicit(&shared_shard.v[slot], memory_order_relaxed));

	for (struct ptv_list *pos = reg.shards.next; pos != &reg.shards; pos = pos->next) {
		struct ptv_metrics_shard *s = ptv_container_of(pos, struct ptv_metrics_shard, link);

		t += bits_dbl(atomic_load_explicit(&s->v[slot], memory_order_relaxed));
	}
	return t;
}

static uint64_t hist_count_locked(const struct ptv_metric *m)
{
	uint64_t n = 0;

	for (size_t b = 0; b <= m->fam->n_buckets; b++)
		n += slot_total_locked(m->slot + (uint32_t)b);
	return n;
}

/* Counter or gauge value; @exact gets the integer text when no set() part is involved. */
static double scalar_value_locked(const struct ptv_metric *m, char *exact, size_t cap)
{
	double set = bits_dbl(atomic_load_explicit(&m->set_bits, memory_order_relaxed));
	uint64_t sum = slot_total_locked(m->slot);

	if (exact && set == 0) {
		if (m->type == PTV_METRIC_COUNTER)
			snprintf(exact, cap, "%" PRIu64, sum);
		else
			snprintf(exact, cap, "%" PRId64, (int64_t)sum);
	}
	if (m->type == PTV_METRIC_COUNTER)
		return set + (double)sum;
	return set + (double)(int64_t)sum;
}

double ptv_metric_value(struct ptv_metric *m)
{
	double v;

	if (!m)
		return 0;
	pthread_mutex_lock(&reg.lock);
	if (m->type == PTV_METRIC_HISTOGRAM)
		v = (double)hist_count_locked(m);
	else
		v = scalar_value_locked(m, NULL, 0);
	pthread_mutex_unlock(&reg.lock);
	return v;
}

/* ---- collectors and rendering ------------------------------------------------------------ */

void ptv_metrics_collector_add(void (*fn)(void *ctx), void *ctx)
{
	PTV_BUG_ON(!fn);
	pthread_mutex_lock(&reg.collect_lock);
	for (size_t i = 0; i < reg.n_collectors; i++)
		if (reg.collectors[i].fn == fn && reg.collectors[i].ctx == ctx)
			goto out; /* registering twice is harmless */
	reg.collectors =
		ptv_xrealloc(reg.collectors, (reg.n_collectors + 1) * sizeof(*reg.collectors));
	reg.collectors[reg.n_collectors++] = (struct ptv_metrics_collector){fn, ctx};
out:
	pthread_mutex_unlock(&reg.collect_lock);
}

/* Collectors may call ptv_metric_get()/set() (reg.lock is not held) but not collector_add(). */
static void run_collectors(void)
{
	pthread_mutex_lock(&reg.collect_lock);
	for (size_t i = 0; i < reg.n_collectors; i++)
		reg.collectors[i].fn(reg.collectors[i].ctx);
	pthread_mutex_unlock(&reg.collect_lock);
}

static void put_sample(struct ptv_buf *out, const struct ptv_metric *m, const char *suffix,
		       const char *le, const char *value)
{
	ptv_buf_puts(out, m->fam->name);
	ptv_buf_puts(out, suffix);
	if (m->labels || le) {
		ptv_buf_putc(out, '{');
		if (m->labels)
			ptv_buf_puts(out, m->labels);
		if (le)
			ptv_buf_printf(out, "%sle=\"%s\"", m->labels ? "," : "", le);
		ptv_buf_putc(out, '}');
	}
	ptv_buf_putc(out, ' ');
	ptv_buf_puts(out, value);
	ptv_buf_putc(out, '\n');
}

static void render_scalar_locked(struct ptv_buf *out, const struct ptv_metric *m)
{
	char exact[32] = "", val[32];
	double v = scalar_value_locked(m, exact, sizeof(exact));

	if (!exact[0])
		format_double(val, sizeof(val), v);
	put_sample(out, m, "", NULL, exact[0] ? exact : val);
}

/* Buckets are stored per bucket and rendered cumulative; _count is the +Inf bucket. */
static void render_histogram_locked(struct ptv_buf *out, const struct ptv_metric *m)
{
	const struct ptv_metric_family *f = m->fam;
	uint64_t cum = 0;
	char val[32];

	for (size_t b = 0; b <= f->n_buckets; b++) {
		cum += slot_total_locked(m->slot + (uint32_t)b);
		snprintf(val, sizeof(val), "%" PRIu64, cum);
		put_sample(out, m, "_bucket", b < f->n_buckets ? f->le[b] : "+Inf", val);
	}
	format_double(val, sizeof(val),
		      slot_dbl_total_locked(m->slot + (uint32_t)f->n_buckets + 1));
	put_sample(out, m, "_sum", NULL, val);
	snprintf(val, sizeof(val), "%" PRIu64, cum);
	put_sample(out, m, "_count", NULL, val);
}

static const char *type_name(enum ptv_metric_type type)
{
	switch (type) {
	case PTV_METRIC_COUNTER:
		return "counter";
	case PTV_METRIC_GAUGE:
		return "gauge";
	case PTV_METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static void render_family_locked(struct ptv_buf *out, const struct ptv_metric_family *f)
{
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_relaxed);

	ptv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
		       type_name(f->type));
	for (unsigned i = 0; i < n; i++) {
		if (f->type == PTV_METRIC_HISTOGRAM)
			render_histogram_locked(out, &f->series[i]);
		else
			render_scalar_locked(out, &f->series[i]);
	}
}

int ptv_metrics_render(struct ptv_buf *out)
{
	run_collectors();
	pthread_mutex_lock(&reg.lock);
	registry_ready_locked();
	for (size_t i = 0; i < reg.n_fams; i++)
		render_family_locked(out, reg.fams[i]);
	pthread_mutex_unlock(&reg.lock);
	return out->oom ? -ENOMEM : 0;
}

/* ---- threads ----------------------------------------------------------------------------- */

/*
 * A thread that ends without ptv_metrics_thread_exit() still has its shard folded: the key's
 * destructor runs at pthread exit. (Not at exit() of the process, where it no longer matters.)
 */
static pthread_once_t shard_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t shard_key;

static void shard_release(void *p);

static void shard_key_create(void)
{
	PTV_BUG_ON(pthread_key_create(&shard_key, shard_release) != 0);
}

void ptv_metrics_thread_init(void)
{
	struct ptv_metrics_shard *s;

	if (tls_shard)
		return;
	pthread_once(&shard_key_once, shard_key_create);
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return; /* the shared shard still counts everything, only slower */
	pthread_mutex_lock(&reg.lock);
	ptv_list_add_tail(&reg.shards, &s->link);
	pthread_mutex_unlock(&reg.lock);
	pthread_setspecific(shard_key, s);
	tls_shard = s;
}

/* Adds every slot of @s that belongs to a series into the shared shard. */
static void fold_shard_locked(struct ptv_metrics_shard *s)
{
	for (size_t i = 0; i < reg.n_fams; i++) {
		const struct ptv_metric_family *f = reg.fams[i];
		unsigned n = atomic_load_explicit(&f->n_series, memory_order_relaxed);
		uint32_t end = f->slot_base + n * f->slots_per_series;

		for (uint32_t slot = f->slot_base; slot < end; slot++) {
			uint64_t v = atomic_load_explicit(&s->v[slot], memory_order_relaxed);
			uint32_t k = (slot - f->slot_base) % f->slots_per_series;

			if (f->type == PTV_METRIC_HISTOGRAM && k == f->n_buckets + 1)
				shared_dbl_add(&shared_shard.v[slot], bits_dbl(v));
			else
				atomic_fetch_add_explicit(&shared_shard.v[slot], v,
							  memory_order_relaxed);
		}
	}
}

/* Runs on the owning thread: nobody else writes @p, and renders wait for reg.lock. */
static void shard_release(void *p)
{
	struct ptv_metrics_shard *s = p;

	pthread_mutex_lock(&reg.lock);
	ptv_list_del(&s->link);
	fold_shard_locked(s);
	pthread_mutex_unlock(&reg.lock);
	tls_shard = NULL;
	munmap(s, sizeof(*s));
}

void ptv_metrics_thread_exit(void)
{
	struct ptv_metrics_shard *s = tls_shard;

	if (!s)
		return;
	pthread_setspecific(shard_key, NULL);
	shard_release(s);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void family_free(struct ptv_metric_family *f)
{
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_relaxed);

	for (unsigned i = 0; i < n; i++) {
		strv_free(f->series[i].values, f->n_labels);
		free(f->series[i].labels);
	}
	free(f->series);
	strv_free(f->le, f->n_buckets);
	free(f->buckets);
	strv_free(f->label_names, f->n_labels);
	free(f->help);
	free(f->name);
	free(f);
}

static void shard_zero(struct ptv_metrics_shard *s, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		atomic_store_explicit(&s->v[i], 0, memory_order_relaxed);
}

/*
 * Live threads keep their shards (they still hold the pointer); the shards are zeroed because
 * slot numbers start again from 0.
 */
void ptv_metrics_reset_for_tests(void)
{
	pthread_mutex_lock(&reg.collect_lock);
	ptv_freep(&reg.collectors);
	reg.n_collectors = 0;
	pthread_mutex_unlock(&reg.collect_lock);

	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n_fams; i++)
		family_free(reg.fams[i]);
	ptv_freep(&reg.fams);
	reg.n_fams = reg.cap_fams = 0;
	shard_zero(&shared_shard, reg.next_slot);
	for (struct ptv_list *pos = reg.shards.next; pos != &reg.shards; pos = pos->next)
		shard_zero(ptv_container_of(pos, struct ptv_metrics_shard, link), reg.next_slot);
	reg.next_slot = 0;
	reg.dropped = NULL;
	reg.ready = false;
	pthread_mutex_unlock(&reg.lock);
}
