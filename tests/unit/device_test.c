/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "plextv/device.h"
#include "plextv/log.h"
#include "plextv/store.h"

static void quiet_sink(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/ptv-device-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
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

static struct ptv_store *open_store(const char *dir)
{
	struct ptv_store *s = NULL;

	assert_int_equal(ptv_store_open(dir, NULL, &s), 0);
	return s;
}

static uint32_t random_u32(void)
{
	uint32_t v;

	assert_int_equal(getrandom(&v, sizeof(v), 0), (ssize_t)sizeof(v));
	return v;
}

/* libhdhomerun's own validator, loaded at run time: tests/CMakeLists.txt does not link it. */
typedef bool (*hdhr_validate_fn)(uint32_t);

static hdhr_validate_fn hdhr_validator(void)
{
	static const char *const names[] = {"libhdhomerun.so.4", "libhdhomerun.so"};
	void *h = NULL;

	for (size_t i = 0; !h && i < PTV_ARRAY_SIZE(names); i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return NULL;
	/* dlsym returns data and function pointers alike; POSIX guarantees the conversion. */
	return (hdhr_validate_fn)(uintptr_t)dlsym(h, "hdhomerun_discover_validate_device_id");
}

static void test_checksum_vectors(void **state)
{
	assert_true(ptv_device_id_valid(0x10439EFD));  /* PROTOCOLS.md §1.2 sample device */
	assert_false(ptv_device_id_valid(0x12345678)); /* telly/tvhProxy default */
	assert_true(ptv_device_id_valid(0x12345674));
	assert_int_equal(ptv_device_id_fix(0x12345678), 0x12345674);
	assert_int_equal(ptv_device_id_fix(0x10439EF0), 0x10439EFD);
	assert_int_equal(ptv_device_id_fix(0x10439EFD), 0x10439EFD);
	/* Exactly one last nibble makes an ID valid. */
	for (uint32_t n0 = 0; n0 < 16; n0++)
		assert_int_equal(ptv_device_id_valid(0x10439EF0 + n0), n0 == 0xD);
}

static void test_fix_random(void **state)
{
	for (int i = 0; i < 10000; i++) {
		uint32_t id = random_u32(), fixed = ptv_device_id_fix(id);

		assert_true(ptv_device_id_valid(fixed));
		assert_int_equal(fixed & ~0xfu, id & ~0xfu);
		assert_int_equal(ptv_device_id_fix(fixed), fixed);
	}
}

static void test_libhdhomerun_agrees(void **state)
{
	hdhr_validate_fn validate = hdhr_validator();

	if (!validate) {
		print_message("libhdhomerun not found (apt-get install libhdhomerun-dev): "
			      "cross-check skipped\n");
		skip();
	}
	assert_true(validate(0x10439EFD));
	assert_false(validate(0x12345678));
	for (int i = 0; i < 10000; i++)
		assert_true(validate(ptv_device_id_fix(random_u32())));
	/* Same verdict on arbitrary IDs, and on every ID with our "105" prefix. */
	for (int i = 0; i < 1000000; i++) {
		uint32_t id = random_u32();

		assert_int_equal(validate(id), ptv_device_id_valid(id));
	}
	for (uint32_t id = 0x10500000; id <= 0x105FFFFF; id++)
		if (validate(id) != ptv_device_id_valid(id))
			fail_msg("disagree on %08X", id);
}

static void check_identity(const struct ptv_device_identity *d)
{
	char hex[9];
	uuid_t u;

	assert_true(ptv_device_id_valid(d->device_id));
	snprintf(hex, sizeof(hex), "%08X", d->device_id);
	assert_string_equal(d->device_id_hex, hex);
	assert_memory_equal(d->device_id_hex, "105", 3);

	assert_int_equal(strlen(d->uuid), 36);
	assert_int_equal(uuid_parse(d->uuid, u), 0);
	assert_int_equal(uuid_type(u), UUID_TYPE_DCE_RANDOM); /* version 4 */
	assert_int_equal(uuid_variant(u), UUID_VARIANT_DCE);
	assert_int_equal(d->uuid[14], '4');
	for (const char *p = d->uuid; *p; p++)
		assert_false(isupper((unsigned char)*p));

	assert_int_equal(strlen(d->auth), 24);
	for (const char *p = d->auth; *p; p++)
		assert_true(isalnum((unsigned char)*p) || *p == '+' || *p == '/');
}

/* Field by field: the struct has padding that memcmp would compare. */
static void assert_same_identity(const struct ptv_device_identity *a,
				 const struct ptv_device_identity *b)
{
	assert_int_equal(a->device_id, b->device_id);
	assert_string_equal(a->device_id_hex, b->device_id_hex);
	assert_string_equal(a->uuid, b->uuid);
	assert_string_equal(a->auth, b->auth);
}

static void test_identity_stable(void **state)
{
	struct fixture *f = *state;
	struct ptv_store_opts ro = {.read_only = true};
	struct ptv_device_identity a, b;
	struct ptv_store *s = open_store(f->dir);

	assert_int_equal(ptv_device_identity(s, 0, &a), 0);
	check_identity(&a);
	assert_int_equal(ptv_device_identity(s, 0, &b), 0);
	assert_same_identity(&a, &b);
	ptv_store_close(s);

	s = open_store(f->dir);
	memset(&b, 0, sizeof(b));
	assert_int_equal(ptv_device_identity(s, 0, &b), 0);
	assert_same_identity(&a, &b);
	ptv_store_close(s);

	/* A read-only store serves what exists and cannot create more. */
	assert_int_equal(ptv_store_open(f->dir, &ro, &s), 0);
	memset(&b, 0, sizeof(b));
	assert_int_equal(ptv_device_identity(s, 0, &b), 0);
	assert_same_identity(&a, &b);
	assert_int_equal(ptv_device_identity(s, 1, &b), -EROFS);
	ptv_store_close(s);
}

static void test_indexes_distinct(void **state)
{
	struct fixture *f = *state;
	struct ptv_store *s = open_store(f->dir);
	static struct ptv_device_identity d[600];

	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(ptv_device_identity(s, i, &d[i]), 0);
		check_identity(&d[i]);
		for (unsigned j = 0; j < i; j++) {
			assert_int_not_equal(d[i].device_id, d[j].device_id);
			assert_string_not_equal(d[i].uuid, d[j].uuid);
			assert_string_not_equal(d[i].auth, d[j].auth);
		}
	}
	/*
	 * 600 draws from the 2^16 IDs behind "105" collide with probability ~94% (birthday):
	 * distinct results show the collision retry works.
	 */
	for (unsigned i = 4; i < PTV_ARRAY_SIZE(d); i++)
		assert_int_equal(ptv_device_identity(s, i, &d[i]), 0);
	for (unsigned i = 0; i < PTV_ARRAY_SIZE(d); i++)
		for (unsigned j = 0; j < i; j++)
			if (d[i].device_id == d[j].device_id)
				fail_msg("indexes %u and %u share %s", i, j, d[i].device_id_hex);
	ptv_store_close(s);
}

/* Processes racing to create the same identity all end up with one. */
static void test_identity_race(void **state)
{
	struct fixture *f = *state;
	struct ptv_device_identity first;
	int go[2], out[2];
	pid_t pids[4];
	char c;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(out), 0);
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ptv_device_identity d;
			struct ptv_store *s;

			signal(SIGABRT, SIG_DFL);
			close(go[1]);
			if (ptv_store_open(f->dir, NULL, &s))
				_exit(2);
			/* Wait for the start signal: the parent closes its end. */
			if (read(go[0], &c, 1) != 0)
				_exit(3);
			if (ptv_device_identity(s, 0, &d))
				_exit(4);
			if (write(out[1], &d, sizeof(d)) != sizeof(d))
				_exit(5);
			ptv_store_close(s);
			_exit(0);
		}
	}
	close(go[0]);
	close(out[1]);
	usleep(100000);
	close(go[1]);
	for (int i = 0; i < 4; i++) {
		struct ptv_device_identity d;

		assert_int_equal(read(out[0], &d, sizeof(d)), sizeof(d));
		if (i == 0)
			first = d;
		assert_same_identity(&d, &first);
	}
	for (int i = 0; i < 4; i++) {
		int st;

		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	close(out[0]);
}

struct bad_rec {
	struct ptv_store *s;
	const char *json;
};

static int put_bad_txn(MDB_txn *txn, void *arg)
{
	struct bad_rec *b = arg;
	uint32_t key = htobe32(0);
	MDB_val k = {sizeof(key), &key}, v = {strlen(b->json), (void *)b->json};

	return ptv_store_err(mdb_put(txn, ptv_store_dbi(b->s, PTV_DB_DEVICES), &k, &v, 0));
}

/* A damaged record is an error, never silently replaced (Plex would see a new tuner). */
static void test_damaged_record(void **state)
{
	static const char *const bad[] = {
		"{\"device_id\":\"12345678\",\"uuid\":\"0b5c5a8e-4f0e-4c57-9a43-1d2b3c4d5e6f\","
		"\"auth\":\"abcdefghijklmnopqrstuvwx\"}", /* checksum */
		"{\"device_id\":\"1054A3F\",\"uuid\":\"0b5c5a8e-4f0e-4c57-9a43-1d2b3c4d5e6f\","
		"\"auth\":\"abcdefghijklmnopqrstuvwx\"}", /* length */
		"{\"device_id\":\"10439EFD\",\"uuid\":\"not-a-uuid\","
		"\"auth\":\"abcdefghijklmnopqrstuvwx\"}",
		"{\"device_id\":\"10439EFD\",\"uuid\":\"0b5c5a8e-4f0e-4c57-9a43-1d2b3c4d5e6f\","
		"\"auth\":\"short\"}",
		"{\"device_id\":\"10439EFD\"}",
		"[]",
	};
	struct fixture *f = *state;
	struct ptv_store *s = open_store(f->dir);
	struct ptv_device_identity d;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(bad); i++) {
		struct bad_rec b = {s, bad[i]};

		assert_int_equal(ptv_store_write(s, put_bad_txn, &b), 0);
		assert_int_equal(ptv_device_identity(s, 0, &d), -PTV_ERR_PARSE);
	}
	/* A well-formed record written elsewhere (lowercase hex) is accepted as is. */
	{
		struct bad_rec b = {s, "{\"device_id\":\"10439efd\",\"uuid\":"
				       "\"0b5c5a8e-4f0e-4c57-9a43-1d2b3c4d5e6f\","
				       "\"auth\":\"abcdefghijklmnopqrstuvwx\"}"};

		assert_int_equal(ptv_store_write(s, put_bad_txn, &b), 0);
		assert_int_equal(ptv_device_identity(s, 0, &d), 0);
		assert_int_equal(d.device_id, 0x10439EFD);
		assert_string_equal(d.device_id_hex, "10439EFD");
		assert_string_equal(d.uuid, "0b5c5a8e-4f0e-4c57-9a43-1d2b3c4d5e6f");
	}
	ptv_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checksum_vectors),
		cmocka_unit_test(test_fix_random),
		cmocka_unit_test(test_libhdhomerun_agrees),
		cmocka_unit_test_setup_teardown(test_identity_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indexes_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_record, setup, teardown),
	};

	ptv_log_set_sink(quiet_sink, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
