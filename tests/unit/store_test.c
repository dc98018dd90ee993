/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plextv/log.h"
#include "plextv/store.h"

#define MiB ((size_t)1 << 20)

/* ---- log capture: every test can ask what the store said ---- */

static struct {
	pthread_mutex_t lock;
	char text[1 << 16];
	size_t len;
} cap = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void sink(const char *line, size_t len, void *ctx)
{
	pthread_mutex_lock(&cap.lock);
	if (cap.len + len < sizeof(cap.text)) {
		memcpy(cap.text + cap.len, line, len);
		cap.len += len;
		cap.text[cap.len] = '\0';
	}
	pthread_mutex_unlock(&cap.lock);
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

static void log_reset(void)
{
	pthread_mutex_lock(&cap.lock);
	cap.len = 0;
	cap.text[0] = '\0';
	pthread_mutex_unlock(&cap.lock);
}

static bool log_has(const char *needle)
{
	bool found;

	pthread_mutex_lock(&cap.lock);
	found = strstr(cap.text, needle) != NULL;
	pthread_mutex_unlock(&cap.lock);
	return found;
}

/* ---- fixture: a temporary directory; the data dir inside it does not exist yet ---- */

struct fixture {
	char dir[64];
	char data[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/ptv-store-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	log_reset();
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct ptv_store *open_ok(const char *dir, size_t map, size_t max)
{
	struct ptv_store_opts o = {.map_size = map, .map_max = max};
	struct ptv_store *s = NULL;

	assert_int_equal(ptv_store_open(dir, &o, &s), 0);
	assert_non_null(s);
	return s;
}

/* ---- small transactions used by many tests ---- */

struct kv {
	struct ptv_store *s;
	const char *key;
	const char *val; /* put: the value; get: filled in (static buffer below) */
	int fail;	 /* put: error to return after the put, to test rollback */
	char buf[256];
};

static int put_txn(MDB_txn *txn, void *arg)
{
	struct kv *c = arg;
	json_t *v = json_string(c->val);
	int rc = ptv_store_put_json(txn, ptv_store_dbi(c->s, PTV_DB_SOURCES), c->key,
				    strlen(c->key), v);

	json_decref(v);
	if (!rc)
		rc = ptv_store_bump_version(txn, c->s, "lineup_version");
	return rc ? rc : c->fail;
}

static int get_txn(MDB_txn *txn, void *arg)
{
	struct kv *c = arg;
	json_t *v;
	int rc = ptv_store_get_json(txn, ptv_store_dbi(c->s, PTV_DB_SOURCES), c->key,
				    strlen(c->key), &v);

	if (rc)
		return rc;
	snprintf(c->buf, sizeof(c->buf), "%s", json_is_string(v) ? json_string_value(v) : "?");
	json_decref(v);
	return 0;
}

static int put_str(struct ptv_store *s, const char *key, const char *val)
{
	struct kv c = {.s = s, .key = key, .val = val};

	return ptv_store_write(s, put_txn, &c);
}

/* Returns 0 and the value in @out (at least 256 bytes), or the error. */
static int get_str(struct ptv_store *s, const char *key, char *out)
{
	struct kv c = {.s = s, .key = key};
	int rc = ptv_store_read(s, get_txn, &c);

	if (!rc)
		strcpy(out, c.buf);
	return rc;
}

struct raw {
	struct ptv_store *s;
	enum ptv_store_db db;
	const char *key;
	const void *val;
	size_t len;
};

static int raw_put_txn(MDB_txn *txn, void *arg)
{
	struct raw *r = arg;
	MDB_val k = {strlen(r->key), (void *)r->key}, v = {r->len, (void *)r->val};

	return ptv_store_err(mdb_put(txn, ptv_store_dbi(r->s, r->db), &k, &v, 0));
}

static void raw_put(struct ptv_store *s, enum ptv_store_db db, const char *key, const void *val,
		    size_t len)
{
	struct raw r = {s, db, key, val, len};

	assert_int_equal(ptv_store_write(s, raw_put_txn, &r), 0);
}

/* ---- children: never cmocka asserts in a child, only exit codes ---- */

/* cmocka catches crashes to report them: a child must crash for real so the parent sees it. */
static pid_t fork_child(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		for (size_t i = 0; i < PTV_ARRAY_SIZE(sigs); i++)
			signal(sigs[i], SIG_DFL);
	return pid;
}

static int wait_child(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* Deterministic filler so a reader can check what a writer wrote. */
static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill(void *buf, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = xorshift(&x);

		memcpy((char *)buf + i, &v, PTV_MIN(8, n - i));
	}
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
	return h;
}

/* A batch: @count values of @size bytes under "<prefix>:<i>", then "sum" and "gen". */
struct batch {
	struct ptv_store *s;
	const char *prefix;
	unsigned count;
	size_t size;
	uint64_t gen;
};

static int batch_txn(MDB_txn *txn, void *arg)
{
	struct batch *b = arg;
	MDB_dbi dbi = ptv_store_dbi(b->s, PTV_DB_PROGRAMMES);
	uint64_t sum = 0xcbf29ce484222325ull;
	char key[64];
	int rc;

	for (unsigned i = 0; i < b->count; i++) {
		MDB_val k, v = {b->size, NULL};

		snprintf(key, sizeof(key), "%s:%05u", b->prefix, i);
		k = (MDB_val){strlen(key), key};
		rc = ptv_store_err(mdb_put(txn, dbi, &k, &v, MDB_RESERVE));
		if (rc)
			return rc;
		fill(v.mv_data, b->size, b->gen * 100000 + i);
		sum = fnv(sum, v.mv_data, b->size);
	}
	rc = ptv_store_put_u64(txn, dbi, "sum", sum);
	if (!rc)
		rc = ptv_store_put_u64(txn, dbi, "gen", b->gen);
	return rc;
}

/* Reads the batch back: checks the stored sum against the data and against @gen's filler. */
static int batch_check_txn(MDB_txn *txn, void *arg)
{
	struct batch *b = arg;
	MDB_dbi dbi = ptv_store_dbi(b->s, PTV_DB_PROGRAMMES);
	uint64_t sum = 0xcbf29ce484222325ull, want = sum, stored, gen;
	char key[64];
	void *buf = malloc(b->size);
	int rc;

	rc = ptv_store_get_u64(txn, dbi, "gen", &gen);
	if (!rc)
		rc = ptv_store_get_u64(txn, dbi, "sum", &stored);
	for (unsigned i = 0; !rc && i < b->count; i++) {
		MDB_val k, v;

		snprintf(key, sizeof(key), "%s:%05u", b->prefix, i);
		k = (MDB_val){strlen(key), key};
		rc = ptv_store_err(mdb_get(txn, dbi, &k, &v));
		if (rc)
			break;
		if (v.mv_size != b->size)
			rc = -EBADMSG;
		sum = fnv(sum, v.mv_data, v.mv_size);
		fill(buf, b->size, gen * 100000 + i);
		want = fnv(want, buf, b->size);
	}
	free(buf);
	if (!rc && (sum != stored || sum != want))
		rc = -EBADMSG;
	b->gen = gen;
	return rc;
}

/* ---- tests ---- */

static void test_open_close_reopen(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	char path[256], out[256];
	uint64_t map, used;
	struct stat st;

	/* Created with 0700: the store holds provider credentials. */
	assert_int_equal(stat(f->data, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/store", f->data);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_string_equal(ptv_store_path(s), path);
	assert_null(ptv_store_remote_fs(s));

	ptv_store_sizes(s, &map, &used);
	assert_int_equal(map, 256 * MiB);
	assert_true(used > 0 && used < map);

	assert_int_equal(put_str(s, "a", "one"), 0);
	assert_int_equal(put_str(s, "b", "two"), 0);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 2);
	ptv_store_close(s);

	s = open_ok(f->data, 0, 0);
	assert_int_equal(get_str(s, "a", out), 0);
	assert_string_equal(out, "one");
	assert_int_equal(get_str(s, "b", out), 0);
	assert_string_equal(out, "two");
	assert_int_equal(get_str(s, "c", out), -ENOENT);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 2);
	ptv_store_close(s);
	ptv_store_close(NULL);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	struct ptv_store_opts ro = {.read_only = true};
	struct ptv_store *s = NULL;
	char out[256];

	assert_int_equal(ptv_store_open(f->data, &ro, &s), -ENOENT);
	assert_null(s);
	s = open_ok(f->data, 0, 0);
	assert_int_equal(put_str(s, "a", "one"), 0);
	ptv_store_close(s);

	assert_int_equal(ptv_store_open(f->data, &ro, &s), 0);
	assert_int_equal(get_str(s, "a", out), 0);
	assert_string_equal(out, "one");
	assert_int_equal(put_str(s, "a", "two"), -EROFS);
	ptv_store_close(s);
}

struct json_ctx {
	struct ptv_store *s;
	json_t *in, *out;
	uint32_t key;
	MDB_val raw;
	char raw_copy[512];
};

static int json_put_txn(MDB_txn *txn, void *arg)
{
	struct json_ctx *c = arg;

	return ptv_store_put_json(txn, ptv_store_dbi(c->s, PTV_DB_CHANNELS), &c->key,
				  sizeof(c->key), c->in);
}

static int json_get_txn(MDB_txn *txn, void *arg)
{
	struct json_ctx *c = arg;
	MDB_val k = {sizeof(c->key), &c->key};
	int rc;

	rc = ptv_store_get_json(txn, ptv_store_dbi(c->s, PTV_DB_CHANNELS), &c->key, sizeof(c->key),
				&c->out);
	if (rc)
		return rc;
	rc = ptv_store_err(mdb_get(txn, ptv_store_dbi(c->s, PTV_DB_CHANNELS), &k, &c->raw));
	if (!rc)
		snprintf(c->raw_copy, sizeof(c->raw_copy), "%.*s",
			 (int)PTV_MIN(c->raw.mv_size, 500), (const char *)c->raw.mv_data);
	return rc;
}

static void test_json_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	struct json_ctx c = {.s = s, .key = htobe32(7)};
	char *big = malloc(200000);
	json_t *vals[4];

	c.in = json_pack("{s:s, s:i, s:[i, i, {s:n}], s:f, s:b}", "name", "Ünïcødé \"q\", x", "n",
			 123, "arr", 1, 2, "x", "f", 1.5, "t", 1);
	assert_int_equal(ptv_store_write(s, json_put_txn, &c), 0);
	assert_int_equal(ptv_store_read(s, json_get_txn, &c), 0);
	assert_true(json_equal(c.in, c.out));
	/* Compact: no spaces after separators (strings aside, none here contain ": "). */
	assert_null(strstr(c.raw_copy, ": "));
	assert_null(strstr(c.raw_copy, ", \""));
	assert_int_equal(c.raw_copy[0], '{');
	json_decref(c.in);
	json_decref(c.out);

	/* Non-objects, and a value larger than a page (overflow pages). */
	memset(big, 'z', 199999);
	big[199999] = '\0';
	vals[0] = json_string(big);
	vals[1] = json_pack("[s, i]", "a", 1);
	vals[2] = json_integer(-5);
	vals[3] = json_object();
	free(big);
	for (int i = 0; i < 4; i++) {
		c.in = vals[i];
		c.key = htobe32(100 + i);
		assert_int_equal(ptv_store_write(s, json_put_txn, &c), 0);
		assert_int_equal(ptv_store_read(s, json_get_txn, &c), 0);
		assert_true(json_equal(c.in, c.out));
		json_decref(c.in);
		json_decref(c.out);
	}

	c.key = htobe32(999);
	assert_int_equal(ptv_store_read(s, json_get_txn, &c), -ENOENT);
	/* Bytes that are not JSON. */
	raw_put(s, PTV_DB_SOURCES, "bad", "not json{", 9);
	{
		char out[256];

		assert_int_equal(get_str(s, "bad", out), -PTV_ERR_PARSE);
	}
	ptv_store_close(s);
}

struct seq_ctx {
	struct ptv_store *s;
	const char *name;
	uint32_t ids[3];
	int rc_u64_missing, rc_u64_short, rc_long;
};

static int seq_txn(MDB_txn *txn, void *arg)
{
	struct seq_ctx *c = arg;
	char longname[200];
	uint32_t dummy;
	uint64_t v;

	for (int i = 0; i < 3; i++) {
		int rc = ptv_store_next_id(txn, c->s, c->name, &c->ids[i]);

		if (rc)
			return rc;
	}
	c->rc_u64_missing = ptv_store_get_u64(txn, ptv_store_dbi(c->s, PTV_DB_META), "nope", &v);
	c->rc_u64_short = ptv_store_get_u64(txn, ptv_store_dbi(c->s, PTV_DB_META), "schema", &v);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	c->rc_long = ptv_store_next_id(txn, c->s, longname, &dummy);
	return 0;
}

static int seq_one_txn(MDB_txn *txn, void *arg)
{
	struct seq_ctx *c = arg;

	return ptv_store_next_id(txn, c->s, c->name, &c->ids[0]);
}

static void test_sequences(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	struct seq_ctx c = {.s = s, .name = "channel"};
	uint32_t max = htole32(UINT32_MAX);

	assert_int_equal(ptv_store_write(s, seq_txn, &c), 0);
	assert_int_equal(c.ids[0], 1);
	assert_int_equal(c.ids[1], 2);
	assert_int_equal(c.ids[2], 3);
	assert_int_equal(c.rc_u64_missing, -ENOENT);
	assert_int_equal(c.rc_u64_short, -PTV_ERR_PARSE); /* "schema" is a u32 */
	assert_int_equal(c.rc_long, -ENAMETOOLONG);

	c.name = "source"; /* independent counter */
	assert_int_equal(ptv_store_write(s, seq_one_txn, &c), 0);
	assert_int_equal(c.ids[0], 1);
	ptv_store_close(s);

	s = open_ok(f->data, 0, 0);
	c.s = s;
	c.name = "channel";
	assert_int_equal(ptv_store_write(s, seq_one_txn, &c), 0);
	assert_int_equal(c.ids[0], 4);

	assert_int_equal(ptv_store_version(s, "guide_version"), 0);
	assert_int_equal(put_str(s, "x", "y"), 0);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 1);

	/* Exhausted sequence: an error, not a wrap to 0. */
	raw_put(s, PTV_DB_META, "seq:full", &max, sizeof(max));
	c.name = "full";
	assert_int_equal(ptv_store_write(s, seq_one_txn, &c), -PTV_ERR_LIMIT);
	ptv_store_close(s);
}

static int bump_txn(MDB_txn *txn, void *arg)
{
	return ptv_store_bump_version(txn, arg, "lineup_version");
}

static void test_version_other_process(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	pid_t pid;

	assert_int_equal(ptv_store_version(s, "lineup_version"), 0);
	pid = fork_child();
	if (pid == 0) {
		struct ptv_store *c;
		int rc = ptv_store_open(f->data, NULL, &c);

		for (int i = 0; !rc && i < 3; i++)
			rc = ptv_store_write(c, bump_txn, c);
		if (!rc)
			ptv_store_close(c);
		_exit(rc ? 1 : 0);
	}
	assert_int_equal(wait_child(pid), 0);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 3);
	assert_int_equal(ptv_store_write(s, bump_txn, s), 0);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 4);
	ptv_store_close(s);
}

struct nest_ctx {
	struct ptv_store *s;
	int inner;
	uint64_t seen;
};

static int nested_write_txn(MDB_txn *txn, void *arg)
{
	struct nest_ctx *c = arg;
	struct kv kv = {.s = c->s, .key = "inner", .val = "v"};

	c->inner = ptv_store_write(c->s, put_txn, &kv);
	return c->inner;
}

static int read_inside_write_txn(MDB_txn *txn, void *arg)
{
	struct nest_ctx *c = arg;
	int rc = ptv_store_bump_version(txn, c->s, "lineup_version");

	/* A nested read sees the last commit, not this transaction's change. */
	c->seen = ptv_store_version(c->s, "lineup_version");
	return rc;
}

static void test_write_error_rolls_back(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	struct kv c = {.s = s, .key = "k", .val = "v", .fail = -EINVAL};
	struct nest_ctx n = {.s = s};
	char out[256];

	assert_int_equal(put_str(s, "keep", "old"), 0);
	assert_int_equal(ptv_store_write(s, put_txn, &c), -EINVAL);
	assert_int_equal(get_str(s, "k", out), -ENOENT);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 1);
	assert_int_equal(get_str(s, "keep", out), 0);
	assert_string_equal(out, "old");

	/* A write inside a write would deadlock on LMDB's writer lock: refused. */
	assert_int_equal(ptv_store_write(s, nested_write_txn, &n), -EDEADLK);
	assert_int_equal(n.inner, -EDEADLK);
	assert_int_equal(get_str(s, "inner", out), -ENOENT);

	assert_int_equal(ptv_store_write(s, read_inside_write_txn, &n), 0);
	assert_int_equal(n.seen, 1);
	assert_int_equal(ptv_store_version(s, "lineup_version"), 2);
	ptv_store_close(s);
}

static void test_map_full_limit(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, MiB, MiB);
	struct batch big = {.prefix = "big", .count = 400, .size = 4096, .gen = 1};
	uint64_t map, used;
	char out[256];

	big.s = s;
	assert_int_equal(put_str(s, "base", "intact"), 0);
	log_reset();
	assert_int_equal(ptv_store_write(s, batch_txn, &big), -PTV_ERR_LIMIT);
	assert_true(log_has("full"));
	assert_int_equal(get_str(s, "base", out), 0);
	assert_string_equal(out, "intact");
	assert_int_equal(ptv_store_version(s, "lineup_version"), 1);
	ptv_store_sizes(s, &map, &used);
	assert_int_equal(map, MiB);
	/* Still writable after the failure. */
	assert_int_equal(put_str(s, "after", "ok"), 0);
	ptv_store_close(s);
}

/* Readers loop while writers force the map to grow several times. */
struct grow_shared {
	struct ptv_store *s;
	atomic_bool stop;
	atomic_int errors;
	atomic_ulong reads;
};

static int grow_read_txn(MDB_txn *txn, void *arg)
{
	struct grow_shared *g = arg;
	MDB_dbi dbi = ptv_store_dbi(g->s, PTV_DB_PROGRAMMES);
	uint64_t gen = 0;
	char key[64];
	MDB_val k, v;
	int rc = ptv_store_get_u64(txn, dbi, "gen", &gen);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	/* The snapshot holds every value of generation @gen. */
	snprintf(key, sizeof(key), "g%" PRIu64 ":%05u", gen, 511u);
	k = (MDB_val){strlen(key), key};
	rc = ptv_store_err(mdb_get(txn, dbi, &k, &v));
	if (!rc && v.mv_size != 8192)
		rc = -EBADMSG;
	return rc;
}

static void *grow_reader(void *arg)
{
	struct grow_shared *g = arg;

	while (!atomic_load(&g->stop)) {
		if (ptv_store_read(g->s, grow_read_txn, g))
			atomic_fetch_add(&g->errors, 1);
		atomic_fetch_add(&g->reads, 1);
	}
	return NULL;
}

static void *grow_bumper(void *arg)
{
	struct grow_shared *g = arg;

	while (!atomic_load(&g->stop)) {
		if (ptv_store_write(g->s, bump_txn, g->s))
			atomic_fetch_add(&g->errors, 1);
		usleep(500);
	}
	return NULL;
}

static void test_map_grows_under_readers(void **state)
{
	struct fixture *f = *state;
	struct grow_shared g = {.s = open_ok(f->data, MiB, 256 * MiB)};
	pthread_t th[3];
	uint64_t map, used;
	char prefix[16];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, grow_reader, &g), 0);
	assert_int_equal(pthread_create(&th[2], NULL, grow_bumper, &g), 0);
	for (unsigned gen = 1; gen <= 4; gen++) {
		struct batch b = {g.s, prefix, 512, 8192, gen};

		snprintf(prefix, sizeof(prefix), "g%u", gen);
		assert_int_equal(ptv_store_write(g.s, batch_txn, &b), 0);
	}
	atomic_store(&g.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&g.errors), 0);
	assert_true(atomic_load(&g.reads) > 0);
	ptv_store_sizes(g.s, &map, &used);
	print_message("map grown to %" PRIu64 " MiB under %lu read transactions\n", map >> 20,
		      atomic_load(&g.reads));
	assert_true(map >= 16 * MiB);
	assert_true(used >= 16 * MiB && used <= map);
	assert_true(log_has("grown to"));
	ptv_store_close(g.s);
}

/* Another process grows the map past ours: our next transaction adopts its size. */
static void test_map_resized_by_other_process(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, MiB, MiB);
	struct batch b = {.prefix = "other", .count = 1024, .size = 8192, .gen = 9};
	uint64_t map, used;
	pid_t pid;

	assert_int_equal(put_str(s, "base", "x"), 0);
	pid = fork_child();
	if (pid == 0) {
		struct ptv_store_opts o = {.map_size = 64 * MiB};
		struct ptv_store *c;
		int rc = ptv_store_open(f->data, &o, &c);

		if (!rc) {
			b.s = c;
			rc = ptv_store_write(c, batch_txn, &b);
			ptv_store_close(c);
		}
		_exit(rc ? 1 : 0);
	}
	assert_int_equal(wait_child(pid), 0);
	b.s = s;
	b.gen = 0;
	assert_int_equal(ptv_store_read(s, batch_check_txn, &b), 0);
	assert_int_equal(b.gen, 9);
	ptv_store_sizes(s, &map, &used);
	assert_true(map >= 8 * MiB);
	assert_int_equal(put_str(s, "after", "y"), 0);
	ptv_store_close(s);
}

/*
 * kill -9 in the middle of write transactions, 20 times: the store opens every time and holds
 * the last committed generation, intact (RELIABILITY.md L2).
 */
static void kill_child(const char *dir, int fd, uint64_t gen)
{
	struct ptv_store_opts o = {.map_size = MiB, .map_max = 1024 * MiB};
	struct ptv_store *s;
	struct batch b = {.prefix = "k", .count = 128, .size = 8192};

	if (ptv_store_open(dir, &o, &s))
		_exit(2);
	b.s = s;
	for (;;) {
		b.gen = ++gen;
		if (ptv_store_write(s, batch_txn, &b))
			_exit(3);
		if (write(fd, &gen, sizeof(gen)) != sizeof(gen))
			_exit(4);
	}
}

static void test_kill9_during_write(void **state)
{
	struct fixture *f = *state;
	uint64_t last = 0;
	unsigned seed;

	assert_int_equal(getrandom(&seed, sizeof(seed), 0), (ssize_t)sizeof(seed));
	srand(seed);
	for (int iter = 0; iter < 20; iter++) {
		struct batch b = {.prefix = "k", .count = 128, .size = 8192};
		struct pollfd pfd;
		uint64_t g, reported = 0;
		int fds[2];
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork_child();
		if (pid == 0) {
			close(fds[0]);
			kill_child(f->data, fds[1], last);
		}
		close(fds[1]);
		pfd = (struct pollfd){fds[0], POLLIN, 0};
		assert_int_equal(poll(&pfd, 1, 30000), 1);
		assert_int_equal(read(fds[0], &reported, sizeof(reported)), sizeof(reported));
		/* Somewhere in the next transactions: puts, page writes, fsync or meta. */
		usleep((useconds_t)(rand() % 30000));
		kill(pid, SIGKILL);
		assert_int_equal(wait_child(pid), 128 + SIGKILL);
		while (read(fds[0], &g, sizeof(g)) == sizeof(g))
			reported = g;
		close(fds[0]);

		b.s = open_ok(f->data, MiB, 1024 * MiB);
		assert_int_equal(ptv_store_read(b.s, batch_check_txn, &b), 0);
		/* The child may have committed one more than it managed to report. */
		assert_true(b.gen == reported || b.gen == reported + 1);
		last = b.gen;
		ptv_store_close(b.s);
	}
	print_message("kill -9 x20: store intact each time, %" PRIu64 " generations committed\n",
		      last);
}

/* A reader killed inside its transaction leaves a slot that the next open clears (L3). */
static int hang_txn(MDB_txn *txn, void *arg)
{
	int fd = *(int *)arg;

	if (write(fd, "r", 1) != 1)
		return -EIO;
	for (;;)
		pause();
}

static void test_stale_reader_cleared(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	int fds[2];
	char c;
	pid_t pid;

	/* The parent keeps the environment open so the lock file is not simply reset. */
	assert_int_equal(pipe(fds), 0);
	pid = fork_child();
	if (pid == 0) {
		struct ptv_store *r;

		if (ptv_store_open(f->data, NULL, &r))
			_exit(2);
		ptv_store_read(r, hang_txn, &fds[1]);
		_exit(3);
	}
	assert_int_equal(read(fds[0], &c, 1), 1);
	kill(pid, SIGKILL);
	assert_int_equal(wait_child(pid), 128 + SIGKILL);
	close(fds[0]);
	close(fds[1]);

	pid = fork_child();
	if (pid == 0) {
		struct ptv_store *r;

		log_reset();
		if (ptv_store_open(f->data, NULL, &r))
			_exit(2);
		ptv_store_close(r);
		_exit(log_has("cleared 1 stale reader") ? 0 : 3);
	}
	assert_int_equal(wait_child(pid), 0);
	assert_int_equal(put_str(s, "still", "fine"), 0);
	ptv_store_close(s);

	/* With every process gone, LMDB resets the lock file: open still works. */
	s = open_ok(f->data, 0, 0);
	ptv_store_close(s);
}

/* Nested reads use one slot each: past 126 the store says -EAGAIN instead of failing hard. */
struct deep_ctx {
	struct ptv_store *s;
	int depth, max_depth, err;
};

static int deep_txn(MDB_txn *txn, void *arg)
{
	struct deep_ctx *c = arg;
	int rc;

	if (++c->depth > c->max_depth)
		c->max_depth = c->depth;
	rc = c->depth < 200 ? ptv_store_read(c->s, deep_txn, c) : 0;
	if (rc && !c->err)
		c->err = rc;
	c->depth--;
	return 0;
}

static void test_readers_full(void **state)
{
	struct fixture *f = *state;
	struct deep_ctx c = {.s = open_ok(f->data, 0, 0)};
	char out[256];

	assert_int_equal(ptv_store_read(c.s, deep_txn, &c), 0);
	assert_int_equal(c.err, -EAGAIN);
	assert_int_equal(c.max_depth, 126);
	assert_true(log_has("reader slots are in use"));
	assert_int_equal(put_str(c.s, "k", "v"), 0);
	assert_int_equal(get_str(c.s, "k", out), 0);
	ptv_store_close(c.s);
}

/* ---- damaged files: open fails cleanly in a child, which must not crash ---- */

enum damage {
	DAMAGE_ALL,	  /* garbage over the whole file */
	DAMAGE_META,	  /* garbage over the two meta pages */
	DAMAGE_SHORT,	  /* truncated inside the first meta page */
	DAMAGE_TRUNCATED, /* meta pages intact, data pages cut off */
	DAMAGE_PAGES,	  /* meta pages intact, garbage over every data page */
	DAMAGE_LOCK,	  /* garbage lock file: harmless, LMDB rebuilds it */
};

static void damage_file(const char *path, enum damage how)
{
	int fd = open(path, O_RDWR);
	struct stat st;
	char *junk;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	switch (how) {
	case DAMAGE_ALL:
	case DAMAGE_META:
	case DAMAGE_LOCK:
	case DAMAGE_PAGES: {
		size_t n = how == DAMAGE_META ? 8192 : (size_t)st.st_size;
		off_t off = how == DAMAGE_PAGES ? 8192 : 0;

		n -= (size_t)off;
		junk = malloc(n);
		fill(junk, n, 42);
		assert_int_equal(pwrite(fd, junk, n, off), (ssize_t)n);
		free(junk);
		break;
	}
	case DAMAGE_SHORT:
		assert_int_equal(ftruncate(fd, 100), 0);
		break;
	case DAMAGE_TRUNCATED:
		assert_int_equal(ftruncate(fd, 8192 + 4096), 0);
		break;
	}
	close(fd);
}

/* Exit codes: 0 opened and read, 1 -PTV_ERR_PARSE naming the file, 2 other error, 3 no path. */
static int open_in_child(const char *data, const char *file)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		struct ptv_store *s;
		char out[256];
		int rc;

		log_reset();
		rc = ptv_store_open(data, NULL, &s);
		if (!rc) {
			rc = get_str(s, "a", out);
			ptv_store_close(s);
			_exit(rc ? 2 : 0);
		}
		if (rc != -PTV_ERR_PARSE)
			_exit(2);
		_exit(log_has(file) ? 1 : 3);
	}
	return wait_child(pid);
}

static void test_corrupt_file(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	struct batch b = {.s = s, .prefix = "p", .count = 64, .size = 4096, .gen = 1};
	char cmd[1024], data[256], file[300];

	assert_int_equal(put_str(s, "a", "one"), 0);
	assert_int_equal(ptv_store_write(s, batch_txn, &b), 0);
	ptv_store_close(s);

	for (enum damage how = DAMAGE_ALL; how <= DAMAGE_LOCK; how++) {
		snprintf(data, sizeof(data), "%s/copy%d", f->dir, how);
		snprintf(cmd, sizeof(cmd), "cp -a %s %s", f->data, data);
		assert_int_equal(system(cmd), 0);
		snprintf(file, sizeof(file), "%s/store/%s", data,
			 how == DAMAGE_LOCK ? "lock.mdb" : "data.mdb");
		damage_file(file, how);
		snprintf(file, sizeof(file), "%s/store/data.mdb", data);
		assert_int_equal(open_in_child(data, file), how == DAMAGE_LOCK ? 0 : 1);
	}
}

/* Many small records (branch and leaf pages) and some large ones (overflow pages). */
struct many {
	struct ptv_store *s;
};

static int many_txn(MDB_txn *txn, void *arg)
{
	struct many *m = arg;
	char key[32], val[6000];
	int rc = 0;

	for (unsigned i = 0; !rc && i < 3000; i++) {
		size_t n = i % 100 == 0 ? sizeof(val) : 40 + i % 60;
		MDB_val k, v = {n, val};

		snprintf(key, sizeof(key), "key-%08u", i * 7919 % 3000);
		k = (MDB_val){strlen(key), key};
		fill(val, n, i);
		rc = ptv_store_err(mdb_put(txn, ptv_store_dbi(m->s, PTV_DB_GUIDE_MAP), &k, &v, 0));
	}
	return rc;
}

/* Exit codes: 0 opened and read everything, 1 refused as damaged, 2 faulted but caught. */
static int open_damaged_in_child(const char *data)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		struct ptv_store *s;
		char out[256];
		int rc;

		log_reset();
		rc = ptv_store_open(data, NULL, &s);
		if (rc == -PTV_ERR_PARSE)
			_exit(log_has("faulted") ? 2 : 1);
		if (rc)
			_exit(3);
		rc = get_str(s, "a", out);
		if (rc == 0 || rc == -PTV_ERR_PARSE)
			rc = put_str(s, "b", "two");
		ptv_store_close(s);
		if (rc)
			fprintf(stderr, "write: %d\n", rc);
		_exit(rc == 0 || rc == -PTV_ERR_PARSE ? 0 : 4);
	}
	return wait_child(pid);
}

/* Garbage over one page at a time, header kept or not: never a crash (checked in children). */
static void test_damaged_pages(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	struct many m = {s};
	unsigned tally[3] = {0};
	char cmd[1024], data[256], file[300];
	struct stat st;

	assert_int_equal(put_str(s, "a", "one"), 0);
	assert_int_equal(ptv_store_write(s, many_txn, &m), 0);
	ptv_store_close(s);
	snprintf(file, sizeof(file), "%s/store/data.mdb", f->data);
	assert_int_equal(stat(file, &st), 0);

	for (unsigned trial = 0; trial < 200; trial++) {
		off_t pages = st.st_size / 4096,
		      page = 2 + (off_t)(trial * 2654435761u % (pages - 2));
		size_t skip = trial % 2 ? 16 : 0; /* keep the page header: flags look valid */
		char junk[4096];
		int fd, rc;

		snprintf(data, sizeof(data), "%s/copy", f->dir);
		snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", data, f->data, data);
		assert_int_equal(system(cmd), 0);
		snprintf(file, sizeof(file), "%s/store/data.mdb", data);
		fd = open(file, O_WRONLY);
		assert_true(fd >= 0);
		fill(junk, sizeof(junk), trial);
		assert_int_equal(pwrite(fd, junk + skip, sizeof(junk) - skip, page * 4096 + skip),
				 (ssize_t)(sizeof(junk) - skip));
		close(fd);
		rc = open_damaged_in_child(data);
		if (rc > 2)
			print_message("trial %u (page %lld): exit %d\n", trial, (long long)page,
				      rc);
		assert_in_range(rc, 0, 2);
		tally[rc]++;
	}
	print_message("damaged pages: %u read fine, %u refused, %u faults caught\n", tally[0],
		      tally[1], tally[2]);
}

static void test_unwritable_dir(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = NULL;
	char path[256];
	pid_t pid;
	int fd, rc;

	/* A parent that is a regular file. */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file/data", f->dir);
	assert_int_equal(ptv_store_open(path, NULL, &s), -ENOTDIR);
	assert_null(s);
	assert_true(log_has(path));

	/* Permission denied: as root, drop to nobody in a child (root ignores modes). */
	snprintf(path, sizeof(path), "%s/locked", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	if (geteuid() != 0)
		assert_int_equal(chmod(path, 0500), 0);
	snprintf(path, sizeof(path), "%s/locked/data", f->dir);
	pid = fork_child();
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
			_exit(77);
		log_reset();
		rc = ptv_store_open(path, NULL, &s);
		_exit(rc == -EACCES ? (log_has("permission denied") ? 0 : 3) : 1);
	}
	rc = wait_child(pid);
	if (rc == 77)
		print_message("EACCES case skipped: cannot drop privileges here\n");
	else
		assert_int_equal(rc, 0);

	/* Read-only filesystem: a read-only bind mount in a private mount namespace. */
	s = open_ok(f->data, 0, 0);
	assert_int_equal(put_str(s, "a", "one"), 0);
	ptv_store_close(s);
	pid = fork_child();
	if (pid == 0) {
		struct ptv_store_opts ro = {.read_only = true};
		char out[256];

		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount(f->dir, f->dir, NULL, MS_BIND, NULL) ||
		    mount(NULL, f->dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL))
			_exit(77);
		log_reset();
		if (ptv_store_open(f->data, NULL, &s) != -EROFS || !log_has("read-only filesystem"))
			_exit(1);
		/* Read-only use still works there (LMDB then runs without its lock file). */
		if (ptv_store_open(f->data, &ro, &s))
			_exit(2);
		rc = get_str(s, "a", out);
		ptv_store_close(s);
		_exit(rc || strcmp(out, "one") ? 3 : 0);
	}
	rc = wait_child(pid);
	if (rc == 77)
		print_message("EROFS case skipped: cannot make a read-only mount here\n");
	else
		assert_int_equal(rc, 0);
}

static void test_schema(void **state)
{
	struct fixture *f = *state;
	struct ptv_store_opts ro = {.read_only = true};
	struct ptv_store *s = open_ok(f->data, 0, 0);
	uint32_t newer = htole32(PTV_STORE_SCHEMA + 1), zero = 0;

	raw_put(s, PTV_DB_META, "schema", &newer, sizeof(newer));
	ptv_store_close(s);
	s = NULL;
	log_reset();
	assert_int_equal(ptv_store_open(f->data, NULL, &s), -PTV_ERR_PARSE);
	assert_null(s);
	assert_true(log_has("newer plextv"));
	assert_int_equal(ptv_store_open(f->data, &ro, &s), -PTV_ERR_PARSE);

	/* Below the first schema there is no migration path. */
	snprintf(f->data, sizeof(f->data), "%s/data2", f->dir);
	s = open_ok(f->data, 0, 0);
	raw_put(s, PTV_DB_META, "schema", &zero, sizeof(zero));
	ptv_store_close(s);
	log_reset();
	assert_int_equal(ptv_store_open(f->data, NULL, &s), -PTV_ERR_PARSE);
	assert_true(log_has("schema 0 has no migration path"));
}

/* Disk full, simulated with RLIMIT_FSIZE: the write fails cleanly, old data stays (L4). */
static void test_disk_full(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_ok(f->data, 0, 0);
	char out[256];
	pid_t pid;

	assert_int_equal(put_str(s, "base", "kept"), 0);
	ptv_store_close(s);
	pid = fork_child();
	if (pid == 0) {
		struct batch b = {.prefix = "full", .count = 512, .size = 8192, .gen = 1};
		char file[300];
		struct stat st;
		struct rlimit rl;
		int rc;

		signal(SIGXFSZ, SIG_IGN);
		snprintf(file, sizeof(file), "%s/store/data.mdb", f->data);
		if (stat(file, &st))
			_exit(5);
		rl.rlim_cur = rl.rlim_max = (rlim_t)st.st_size + 256 * 1024;
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(77);
		if (ptv_store_open(f->data, NULL, &b.s))
			_exit(2);
		log_reset();
		rc = ptv_store_write(b.s, batch_txn, &b);
		/* A write cut short by the limit: LMDB says EIO; a refused one: EFBIG. */
		if (rc != -EIO && rc != -EFBIG)
			_exit(rc == 0 ? 3 : 4);
		_exit(log_has("commit failed") ? 0 : 6);
	}
	assert_int_equal(wait_child(pid), 0);
	s = open_ok(f->data, 0, 0);
	assert_int_equal(get_str(s, "base", out), 0);
	assert_string_equal(out, "kept");
	assert_int_equal(ptv_store_version(s, "lineup_version"), 1);
	assert_int_equal(put_str(s, "after", "ok"), 0);
	ptv_store_close(s);
}

static void test_err_mapping(void **state)
{
	assert_int_equal(ptv_store_err(MDB_SUCCESS), 0);
	assert_int_equal(ptv_store_err(MDB_NOTFOUND), -ENOENT);
	assert_int_equal(ptv_store_err(MDB_KEYEXIST), -EEXIST);
	assert_int_equal(ptv_store_err(MDB_MAP_FULL), -PTV_ERR_LIMIT);
	assert_int_equal(ptv_store_err(MDB_TXN_FULL), -E2BIG);
	assert_int_equal(ptv_store_err(MDB_READERS_FULL), -EAGAIN);
	assert_int_equal(ptv_store_err(MDB_MAP_RESIZED), -EAGAIN);
	assert_int_equal(ptv_store_err(MDB_CORRUPTED), -PTV_ERR_PARSE);
	assert_int_equal(ptv_store_err(MDB_INVALID), -PTV_ERR_PARSE);
	assert_int_equal(ptv_store_err(MDB_VERSION_MISMATCH), -PTV_ERR_PARSE);
	assert_int_equal(ptv_store_err(MDB_PANIC), -EIO);
	assert_int_equal(ptv_store_err(MDB_BAD_TXN), -EINVAL);
	assert_int_equal(ptv_store_err(ENOSPC), -ENOSPC);
	assert_int_equal(ptv_store_err(EACCES), -EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_close_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_other_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_grows_under_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_resized_by_other_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_during_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_reader_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test(test_err_mapping),
	};

	ptv_log_set_sink(sink, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
