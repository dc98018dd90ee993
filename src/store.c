/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The LMDB store: one environment in DATA_DIR/store, one named database per enum ptv_store_db.
 *
 * Locking. mdb_env_set_mapsize() remaps the file, so LMDB allows it only while this process
 * has no transaction open; it checks the write transaction itself but not readers. Every
 * transaction therefore holds s->lock shared and a resize holds it exclusive. The rwlock
 * prefers writers so that a steady stream of readers cannot starve a resize. A thread that
 * enters the store again while inside a transaction (a read inside a read) must not take the
 * lock a second time: behind a waiting resize that would deadlock. Thread-local state tracks
 * this, and a nested caller that would need a resize gets an error instead.
 *
 * Map size. Set explicitly at open (LMDB's default is 1 MiB), never shrunk below what the file
 * records (a size grown earlier persists in the meta page), doubled on MDB_MAP_FULL up to
 * map_max. MDB_MAP_RESIZED means another process grew the map past ours: adopt its size.
 * A write callback reports MDB_MAP_FULL as -PTV_ERR_LIMIT (ptv_store_err); LMDB has then marked
 * the transaction failed, which tells it apart from other limits.
 *
 * Damage. Garbage meta pages and truncation are caught at open from the file itself; damage
 * inside data pages by walking every page once at open (see ptv_store_verify()).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "plextv/common.h"
#include "plextv/log.h"
#include "plextv/store.h"

#define MOD "store"

#define PTV_STORE_DEF_MAP ((size_t)256 << 20)
/* 64 GiB of address space costs nothing on 64-bit hosts; a 32-bit host cannot map it. */
#define PTV_STORE_DEF_MAX (sizeof(size_t) > 4 ? (size_t)1 << 36 : (size_t)1 << 30)
/* LMDB's default, stated so it is visible: a slot per concurrent read transaction. */
#define PTV_STORE_MAX_READERS 126
/* Bounds the retry loops (map doublings from 1 MiB to 64 GiB need 16). */
#define PTV_STORE_RETRIES 64
#define PTV_STORE_KEY_MAX 128

struct ptv_store {
	MDB_env *env;
	MDB_dbi dbi[PTV_DB_COUNT];
	pthread_rwlock_t lock;
	size_t map_max;
	bool read_only;
	bool dead;	       /* a failed remap left the environment unusable */
	const char *remote_fs; /* filesystem type name when the directory is remote */
	char path[PATH_MAX];   /* DATA_DIR/store */
};

static const char *const ptv_store_db_names[PTV_DB_COUNT] = {
	[PTV_DB_META] = "meta",
	[PTV_DB_DEVICES] = "devices",
	[PTV_DB_SOURCES] = "sources",
	[PTV_DB_CHANNELS] = "channels",
	[PTV_DB_CHANKEYS] = "chankeys",
	[PTV_DB_NUMBERS] = "numbers",
	[PTV_DB_GUIDE_CHANNELS] = "guide_channels",
	[PTV_DB_PROGRAMMES] = "programmes",
	[PTV_DB_GUIDE_MAP] = "guide_map",
};

/* Which store this thread is inside, how deeply, and whether in a write transaction. */
static _Thread_local struct {
	const struct ptv_store *s;
	unsigned depth;
	bool writing;
} ptv_store_tls;

enum ptv_store_hold {
	PTV_HOLD_NESTED,  /* this thread already held the lock */
	PTV_HOLD_TRACKED, /* took the lock; tracked in ptv_store_tls */
	PTV_HOLD_OTHER,	  /* took the lock while inside another store: untracked */
};

int ptv_store_err(int mdb_rc)
{
	switch (mdb_rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return -PTV_ERR_LIMIT;
	case MDB_DBS_FULL:
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		/* Limits that a bigger map cannot fix: kept apart from MAP_FULL's LIMIT. */
		return -E2BIG;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		/* Transient: a reader slot frees up, the map gets adopted; the caller may retry. */
		return -EAGAIN;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_VERSION_MISMATCH:
		return -PTV_ERR_PARSE;
	case MDB_PANIC:
		return -EIO;
	case MDB_TLS_FULL:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_VALSIZE:
	case MDB_BAD_DBI:
		return -EINVAL;
	default:
		return mdb_rc > 0 ? -mdb_rc : -EIO;
	}
}

MDB_dbi ptv_store_dbi(const struct ptv_store *s, enum ptv_store_db db)
{
	PTV_BUG_ON((unsigned)db >= PTV_DB_COUNT);
	return s->dbi[db];
}

const char *ptv_store_remote_fs(const struct ptv_store *s)
{
	return s->remote_fs;
}

const char *ptv_store_path(const struct ptv_store *s)
{
	return s->path;
}

/* ---- locking ---- */

static enum ptv_store_hold ptv_store_enter(struct ptv_store *s)
{
	if (ptv_store_tls.depth && ptv_store_tls.s == s) {
		ptv_store_tls.depth++;
		return PTV_HOLD_NESTED;
	}
	PTV_BUG_ON(pthread_rwlock_rdlock(&s->lock));
	if (ptv_store_tls.depth)
		return PTV_HOLD_OTHER;
	ptv_store_tls.s = s;
	ptv_store_tls.depth = 1;
	return PTV_HOLD_TRACKED;
}

static void ptv_store_leave(struct ptv_store *s, enum ptv_store_hold hold)
{
	if (hold != PTV_HOLD_OTHER && --ptv_store_tls.depth == 0)
		ptv_store_tls.s = NULL;
	if (hold != PTV_HOLD_NESTED)
		pthread_rwlock_unlock(&s->lock);
}

/* A thread inside one of its own transactions cannot wait for every transaction to end. */
static bool ptv_store_can_resize(void)
{
	return ptv_store_tls.depth == 0;
}

static size_t ptv_store_map_size(struct ptv_store *s)
{
	MDB_envinfo info;

	mdb_env_info(s->env, &info);
	return info.me_mapsize;
}

/* Caller holds s->lock exclusive. A failed remap leaves LMDB without a map: try to restore. */
static int ptv_store_set_mapsize(struct ptv_store *s, size_t size, size_t old)
{
	int rc = mdb_env_set_mapsize(s->env, size);

	if (rc == MDB_SUCCESS)
		return 0;
	ptv_error(MOD, "%s: cannot map %zu MiB: %s", s->path, size >> 20, mdb_strerror(rc));
	if (mdb_env_set_mapsize(s->env, old) != MDB_SUCCESS) {
		ptv_error(MOD, "%s: cannot restore the previous map either; restart plextv",
			  s->path);
		s->dead = true;
	}
	return ptv_store_err(rc);
}

/* MDB_MAP_FULL at map size @full_at: double it (another thread may have done so already). */
static int ptv_store_grow(struct ptv_store *s, size_t full_at)
{
	size_t cur, next;
	int rc = 0;

	if (!ptv_store_can_resize()) {
		ptv_error(MOD, "map full inside a nested transaction: cannot grow it here");
		return -PTV_ERR_LIMIT;
	}
	PTV_BUG_ON(pthread_rwlock_wrlock(&s->lock));
	cur = ptv_store_map_size(s);
	if (cur > full_at)
		goto out;
	if (cur >= s->map_max) {
		ptv_error(MOD, "%s is full: the map reached its maximum of %zu MiB; raise map_max",
			  s->path, s->map_max >> 20);
		rc = -PTV_ERR_LIMIT;
		goto out;
	}
	next = cur > s->map_max / 2 ? s->map_max : cur * 2;
	rc = ptv_store_set_mapsize(s, next, cur);
	if (!rc)
		ptv_info(MOD, "map full at %zu MiB: grown to %zu MiB", cur >> 20, next >> 20);
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* MDB_MAP_RESIZED: another process grew the map beyond ours; take the size it recorded. */
static int ptv_store_adopt_size(struct ptv_store *s)
{
	size_t cur;
	int rc;

	if (!ptv_store_can_resize())
		return -EAGAIN;
	PTV_BUG_ON(pthread_rwlock_wrlock(&s->lock));
	cur = ptv_store_map_size(s);
	rc = ptv_store_set_mapsize(s, 0, cur);
	if (!rc)
		ptv_debug(MOD, "map grown by another process: %zu -> %zu MiB", cur >> 20,
			  ptv_store_map_size(s) >> 20);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* Full reader table: slots of crashed processes may be what fills it. */
static int ptv_store_readers_full(struct ptv_store *s, int attempt)
{
	int dead = 0;

	if (attempt == 0 && mdb_reader_check(s->env, &dead) == MDB_SUCCESS && dead > 0) {
		ptv_warn(MOD, "reader table full: cleared %d stale slot(s)", dead);
		return 0;
	}
	ptv_warn(MOD, "all %d LMDB reader slots are in use", PTV_STORE_MAX_READERS);
	return -EAGAIN;
}

/* Begins a transaction holding s->lock shared; on success the caller must leave @hold. */
static int ptv_store_begin(struct ptv_store *s, unsigned flags, MDB_txn **txn,
			   enum ptv_store_hold *hold)
{
	int rc;

	for (int i = 0; i < PTV_STORE_RETRIES; i++) {
		*hold = ptv_store_enter(s);
		rc = s->dead ? MDB_PANIC : mdb_txn_begin(s->env, NULL, flags, txn);
		if (rc == MDB_SUCCESS)
			return 0;
		ptv_store_leave(s, *hold);
		if (rc == MDB_MAP_RESIZED)
			rc = ptv_store_adopt_size(s);
		else if (rc == MDB_READERS_FULL)
			rc = ptv_store_readers_full(s, i);
		else
			return ptv_store_err(rc);
		if (rc)
			return rc;
	}
	return -EAGAIN;
}

/* ---- transactions ---- */

int ptv_store_read(struct ptv_store *s, int (*fn)(MDB_txn *txn, void *ctx), void *ctx)
{
	enum ptv_store_hold hold;
	MDB_txn *txn;
	int rc;

	rc = ptv_store_begin(s, MDB_RDONLY, &txn, &hold);
	if (rc)
		return rc;
	rc = fn(txn, ctx);
	mdb_txn_abort(txn);
	ptv_store_leave(s, hold);
	return rc;
}

/* After MDB_MAP_FULL LMDB marks the transaction failed: any further call says MDB_BAD_TXN. */
static bool ptv_store_txn_failed(MDB_txn *txn)
{
	MDB_val k = {1, "-"}, v;

	return mdb_get(txn, 1 /* MAIN_DBI */, &k, &v) == MDB_BAD_TXN;
}

/* One attempt; *full_at is the map size when it failed with MDB_MAP_FULL, else 0. */
static int ptv_store_write_once(struct ptv_store *s, int (*fn)(MDB_txn *txn, void *ctx), void *ctx,
				size_t *full_at)
{
	enum ptv_store_hold hold;
	MDB_txn *txn;
	int rc;

	*full_at = 0;
	rc = ptv_store_begin(s, 0, &txn, &hold);
	if (rc)
		return rc;
	ptv_store_tls.writing = true;
	rc = fn(txn, ctx);
	if (rc) {
		if (rc == -PTV_ERR_LIMIT && ptv_store_txn_failed(txn))
			*full_at = ptv_store_map_size(s);
		mdb_txn_abort(txn);
	} else {
		rc = mdb_txn_commit(txn);
		if (rc == MDB_MAP_FULL)
			*full_at = ptv_store_map_size(s);
		else if (rc)
			/* LMDB reports a short write (disk full, file size limit) as EIO. */
			ptv_error(MOD,
				  "%s: commit failed: %s (disk full?); the previous data stays",
				  s->path, mdb_strerror(rc));
		rc = ptv_store_err(rc);
	}
	ptv_store_tls.writing = false;
	ptv_store_leave(s, hold);
	return rc;
}

int ptv_store_write(struct ptv_store *s, int (*fn)(MDB_txn *txn, void *ctx), void *ctx)
{
	size_t full_at;
	int rc = -PTV_ERR_LIMIT;

	if (s->read_only)
		return -EROFS;
	if (ptv_store_tls.writing) {
		/* LMDB's writer mutex is not recursive: this would deadlock. */
		ptv_error(MOD, "BUG: nested write transaction refused");
		return -EDEADLK;
	}
	for (int i = 0; i < PTV_STORE_RETRIES; i++) {
		rc = ptv_store_write_once(s, fn, ctx, &full_at);
		if (!full_at)
			return rc;
		rc = ptv_store_grow(s, full_at);
		if (rc)
			return rc;
	}
	return rc;
}

/* ---- typed helpers ---- */

static MDB_val ptv_store_key(const char *key)
{
	return (MDB_val){strlen(key), (void *)key};
}

static int ptv_store_get_fixed(MDB_txn *txn, MDB_dbi dbi, const char *key, void *out, size_t n)
{
	MDB_val k = ptv_store_key(key), v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc)
		return ptv_store_err(rc);
	if (v.mv_size != n)
		return -PTV_ERR_PARSE;
	memcpy(out, v.mv_data, n);
	return 0;
}

static int ptv_store_put_fixed(MDB_txn *txn, MDB_dbi dbi, const char *key, void *val, size_t n)
{
	MDB_val k = ptv_store_key(key), v = {n, val};

	return ptv_store_err(mdb_put(txn, dbi, &k, &v, 0));
}

int ptv_store_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
	uint64_t le;
	int rc = ptv_store_get_fixed(txn, dbi, key, &le, sizeof(le));

	if (!rc)
		*out = le64toh(le);
	return rc;
}

int ptv_store_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
	uint64_t le = htole64(v);

	return ptv_store_put_fixed(txn, dbi, key, &le, sizeof(le));
}

static int ptv_store_get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out)
{
	uint32_t le;
	int rc = ptv_store_get_fixed(txn, dbi, key, &le, sizeof(le));

	if (!rc)
		*out = le32toh(le);
	return rc;
}

static int ptv_store_put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t v)
{
	uint32_t le = htole32(v);

	return ptv_store_put_fixed(txn, dbi, key, &le, sizeof(le));
}

int ptv_store_next_id(MDB_txn *txn, const struct ptv_store *s, const char *name, uint32_t *out)
{
	MDB_dbi meta = s->dbi[PTV_DB_META];
	char key[PTV_STORE_KEY_MAX];
	uint32_t v = 0;
	int rc;

	if ((size_t)snprintf(key, sizeof(key), "seq:%s", name) >= sizeof(key))
		return -ENAMETOOLONG;
	rc = ptv_store_get_u32(txn, meta, key, &v);
	if (rc && rc != -ENOENT)
		return rc;
	if (v == UINT32_MAX)
		return -PTV_ERR_LIMIT;
	rc = ptv_store_put_u32(txn, meta, key, ++v);
	if (!rc)
		*out = v;
	return rc;
}

int ptv_store_bump_version(MDB_txn *txn, const struct ptv_store *s, const char *name)
{
	MDB_dbi meta = s->dbi[PTV_DB_META];
	uint64_t v = 0;
	int rc = ptv_store_get_u64(txn, meta, name, &v);

	if (rc && rc != -ENOENT)
		return rc;
	return ptv_store_put_u64(txn, meta, name, v + 1);
}

struct ptv_store_version_ctx {
	const struct ptv_store *s;
	const char *name;
	uint64_t v;
};

static int ptv_store_version_txn(MDB_txn *txn, void *arg)
{
	struct ptv_store_version_ctx *c = arg;

	return ptv_store_get_u64(txn, c->s->dbi[PTV_DB_META], c->name, &c->v);
}

uint64_t ptv_store_version(struct ptv_store *s, const char *name)
{
	struct ptv_store_version_ctx c = {s, name, 0};

	if (ptv_store_read(s, ptv_store_version_txn, &c))
		return 0;
	return c.v;
}

int ptv_store_get_json(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, struct json_t **out)
{
	MDB_val k = {klen, (void *)key}, v;
	json_error_t err;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc)
		return ptv_store_err(rc);
	*out = json_loadb(v.mv_data, v.mv_size, JSON_DECODE_ANY, &err);
	if (!*out) {
		ptv_warn(MOD, "record is not valid JSON: %s", err.text);
		return -PTV_ERR_PARSE;
	}
	return 0;
}

int ptv_store_put_json(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
		       const struct json_t *v)
{
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
	MDB_val k = {klen, (void *)key}, d;
	size_t n = json_dumpb(v, NULL, 0, flags);
	int rc;

	if (!n)
		return -EINVAL;
	/* MDB_RESERVE hands out the value's space in the page: encode straight into it. */
	d.mv_size = n;
	rc = mdb_put(txn, dbi, &k, &d, MDB_RESERVE);
	if (rc)
		return ptv_store_err(rc);
	return json_dumpb(v, d.mv_data, n, flags) == n ? 0 : -EIO;
}

void ptv_store_sizes(struct ptv_store *s, uint64_t *map_size, uint64_t *used)
{
	enum ptv_store_hold hold = ptv_store_enter(s);
	MDB_envinfo info;
	MDB_stat st;

	/* Under the lock: both read the meta page through the map a resize replaces. */
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	*map_size = info.me_mapsize;
	*used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	ptv_store_leave(s, hold);
}

/* ---- open: directory ---- */

static int ptv_store_dir_error(const char *path, int err)
{
	switch (-err) {
	case EACCES:
	case EPERM:
		ptv_error(MOD,
			  "%s: permission denied for uid %u; make it writable (chown/chmod) or "
			  "point data_dir (--data-dir, PLEXTV_DATA_DIR) at a writable directory",
			  path, (unsigned)geteuid());
		break;
	case EROFS:
		ptv_error(MOD,
			  "%s: read-only filesystem; mount a writable volume there or point "
			  "data_dir (--data-dir, PLEXTV_DATA_DIR) at a writable directory",
			  path);
		break;
	case ENOTDIR:
		ptv_error(MOD, "%s: a component of the path is not a directory; fix data_dir",
			  path);
		break;
	default:
		ptv_error(MOD, "%s: %s", path, ptv_strerror(err));
	}
	return err;
}

/* mkdir -p with 0700 for what it creates; existing directories keep their mode. */
static int ptv_store_mkdirs(const char *dir)
{
	char tmp[PATH_MAX];
	struct stat st;
	size_t n = strlen(dir);

	if (!n || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return ptv_store_dir_error(tmp, -errno);
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return ptv_store_dir_error(tmp, -errno);
	if (stat(tmp, &st))
		return ptv_store_dir_error(tmp, -errno);
	if (!S_ISDIR(st.st_mode))
		return ptv_store_dir_error(tmp, -ENOTDIR);
	return 0;
}

/* LMDB's lock file relies on shared memory and POSIX locks that remote filesystems break. */
static const char *ptv_store_fs_name(long type)
{
	switch ((unsigned long)type & 0xffffffffu) {
	case NFS_SUPER_MAGIC:
		return "NFS";
	case CIFS_SUPER_MAGIC:
		return "CIFS";
	case SMB_SUPER_MAGIC:
		return "SMB";
	case SMB2_SUPER_MAGIC:
		return "SMB2";
	case FUSE_SUPER_MAGIC:
		return "FUSE";
	case V9FS_MAGIC:
		return "9p";
	case CEPH_SUPER_MAGIC:
		return "Ceph";
	case AFS_SUPER_MAGIC:
	case AFS_FS_MAGIC:
		return "AFS";
	default:
		return NULL;
	}
}

static void ptv_store_check_fs(struct ptv_store *s)
{
	struct statfs fs;

	if (statfs(s->path, &fs))
		return;
	s->remote_fs = ptv_store_fs_name((long)fs.f_type);
	if (s->remote_fs)
		ptv_warn(MOD,
			 "%s is on %s: LMDB needs a local filesystem (its locks and shared memory "
			 "do not work over the network); move data_dir to a local disk or volume",
			 s->path, s->remote_fs);
}

static int ptv_store_prepare_dir(struct ptv_store *s, const char *data_dir)
{
	int rc;

	if ((size_t)snprintf(s->path, sizeof(s->path), "%s/store", data_dir) >= sizeof(s->path))
		return ptv_store_dir_error(data_dir, -ENAMETOOLONG);
	if (s->read_only)
		return 0;
	rc = ptv_store_mkdirs(data_dir);
	if (!rc)
		rc = ptv_store_mkdirs(s->path);
	return rc;
}

/* ---- open: environment ---- */

static int ptv_store_corrupt(const struct ptv_store *s, const char *why)
{
	ptv_error(MOD,
		  "%s/data.mdb %s; stop plextv, move the store directory aside (or restore a "
		  "backup) and start again to create a new one",
		  s->path, why);
	return -PTV_ERR_PARSE;
}

static int ptv_store_env_error(const struct ptv_store *s, int rc)
{
	switch (rc) {
	case MDB_INVALID:
		return ptv_store_corrupt(s, "is not an LMDB file or is damaged");
	case MDB_VERSION_MISMATCH:
		return ptv_store_corrupt(s, "was written by an incompatible LMDB version");
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		return ptv_store_corrupt(s, "is corrupted");
	case ENOENT:
		if (s->read_only) {
			ptv_error(MOD, "%s: no store yet; run `plextv serve` or an import first",
				  s->path);
			return -ENOENT;
		}
		break;
	}
	return ptv_store_dir_error(s->path, ptv_store_err(rc));
}

/* A truncated file would map pages past its end: SIGBUS on first touch. Check first. */
static int ptv_store_check_file(const struct ptv_store *s)
{
	MDB_envinfo info;
	struct stat st;
	MDB_stat ms;
	int fd;

	if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &ms) || mdb_env_get_fd(s->env, &fd))
		return ptv_store_corrupt(s, "cannot be inspected");
	if (fstat(fd, &st))
		return ptv_store_dir_error(s->path, -errno);
	if ((uint64_t)st.st_size < ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize)
		return ptv_store_corrupt(s, "is truncated");
	return 0;
}

static void ptv_store_clear_readers(const struct ptv_store *s)
{
	int dead = 0;
	int rc = mdb_reader_check(s->env, &dead);

	if (rc)
		ptv_warn(MOD, "%s: reader check failed: %s", s->path, mdb_strerror(rc));
	else if (dead > 0)
		ptv_info(MOD, "cleared %d stale reader slot(s) left by crashed processes", dead);
}

static size_t ptv_store_round_page(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

/* Never below what the file records: a map grown in an earlier run stays grown. */
static int ptv_store_initial_map(struct ptv_store *s, const struct ptv_store_opts *opts)
{
	size_t want =
		ptv_store_round_page(opts && opts->map_size ? opts->map_size : PTV_STORE_DEF_MAP);
	size_t cur = ptv_store_map_size(s);
	int rc;

	s->map_max =
		ptv_store_round_page(opts && opts->map_max ? opts->map_max : PTV_STORE_DEF_MAX);
	if (cur < want) {
		rc = mdb_env_set_mapsize(s->env, want);
		if (rc)
			return ptv_store_dir_error(s->path, ptv_store_err(rc));
		cur = want;
	}
	s->map_max = PTV_MAX(s->map_max, cur);
	return 0;
}

/*
 * ---- open: walk every page ----
 *
 * LMDB trusts page numbers and offsets it reads: garbage inside a data page sends it past the
 * end of the file (SIGBUS) or the map (SIGSEGV), or into an assertion (abort). Meta-page damage
 * and truncation are caught above; this walk finds the rest at open, where a fault can still
 * become a clear error. It
 * visits every key of every database, touching each value's ends (overflow pages). The signal
 * handlers are ours only for the walk, and only this thread's faults are caught: a fault on
 * another thread puts the previous handler back and re-executes into it.
 */
static _Thread_local sigjmp_buf *ptv_store_fault_jmp;
static struct sigaction ptv_store_prev_bus, ptv_store_prev_segv;

static void ptv_store_fault(int sig, siginfo_t *si, void *uc)
{
	if (ptv_store_fault_jmp)
		siglongjmp(*ptv_store_fault_jmp, sig);
	sigaction(sig, sig == SIGBUS ? &ptv_store_prev_bus : &ptv_store_prev_segv, NULL);
}

/* LMDB checks some invariants with assertions that abort: same treatment as a fault. */
static void ptv_store_assert(MDB_env *env, const char *msg)
{
	const struct ptv_store *s = mdb_env_get_userctx(env);

	if (ptv_store_fault_jmp)
		siglongjmp(*ptv_store_fault_jmp, SIGABRT);
	ptv_error(MOD, "%s: LMDB assertion failed, the file is probably damaged: %s",
		  s ? s->path : "store", msg);
}

static int ptv_store_walk_dbi(MDB_txn *txn, MDB_dbi dbi)
{
	volatile unsigned char sink = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc)
		return rc;
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)))
		if (v.mv_size)
			sink ^= ((const unsigned char *)v.mv_data)[0] ^
				((const unsigned char *)v.mv_data)[v.mv_size - 1];
	mdb_cursor_close(cur);
	(void)sink;
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* The free list (0), the main database (1), then ours; returns an LMDB code. */
static int ptv_store_walk_all(struct ptv_store *s)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);

	if (rc)
		return rc;
	rc = ptv_store_walk_dbi(txn, 0);
	if (!rc)
		rc = ptv_store_walk_dbi(txn, 1);
	for (int i = 0; !rc && i < PTV_DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, ptv_store_db_names[i], 0, &dbi);
		if (!rc)
			rc = ptv_store_walk_dbi(txn, dbi);
		else if (rc == MDB_NOTFOUND)
			rc = MDB_SUCCESS;
	}
	mdb_txn_abort(txn);
	return rc;
}

static int ptv_store_verify(struct ptv_store *s)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct sigaction sa = {.sa_sigaction = ptv_store_fault, .sa_flags = SA_SIGINFO};
	sigjmp_buf jb;
	int rc, sig;

	sigemptyset(&sa.sa_mask);
	pthread_mutex_lock(&mu);
	sigaction(SIGBUS, &sa, &ptv_store_prev_bus);
	sigaction(SIGSEGV, &sa, &ptv_store_prev_segv);
	sig = sigsetjmp(jb, 1);
	if (sig == 0) {
		ptv_store_fault_jmp = &jb;
		rc = ptv_store_walk_all(s);
	} else {
		/* The transaction is left as it was: LMDB's state after a fault is unknown. */
		rc = MDB_CORRUPTED;
	}
	ptv_store_fault_jmp = NULL;
	sigaction(SIGBUS, &ptv_store_prev_bus, NULL);
	sigaction(SIGSEGV, &ptv_store_prev_segv, NULL);
	pthread_mutex_unlock(&mu);
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_CURSOR_FULL ||
	    rc == MDB_INVALID || rc == MDB_BAD_VALSIZE || rc == MDB_INCOMPATIBLE)
		return ptv_store_corrupt(s, sig ? "is damaged (reading it faulted)" : "is damaged");
	return ptv_store_err(rc);
}

static int ptv_store_env_open(struct ptv_store *s, const struct ptv_store_opts *opts)
{
	unsigned flags = MDB_NOTLS | (s->read_only ? MDB_RDONLY : 0);
	int rc;

	rc = mdb_env_create(&s->env);
	if (rc)
		return ptv_store_err(rc);
	mdb_env_set_maxdbs(s->env, PTV_DB_COUNT);
	mdb_env_set_maxreaders(s->env, PTV_STORE_MAX_READERS);
	mdb_env_set_userctx(s->env, s);
	mdb_env_set_assert(s->env, ptv_store_assert);
	/* No mapsize yet: LMDB then maps what the file records, which we only ever raise. */
	rc = mdb_env_open(s->env, s->path, flags, 0600);
	if (rc)
		return ptv_store_env_error(s, rc);
	rc = ptv_store_check_file(s);
	if (rc)
		return rc;
	ptv_store_clear_readers(s);
	rc = ptv_store_initial_map(s, opts);
	if (rc)
		return rc;
	return ptv_store_verify(s);
}

/* ---- open: schema ---- */

/*
 * Migrations, in order: fn upgrades schema @from to @from + 1 inside the open's write
 * transaction, so an upgrade is all or nothing. Like any write fn it may run more than once
 * (map growth) and must touch nothing outside the transaction.
 */
struct ptv_store_migration {
	uint32_t from;
	const char *what;
	int (*fn)(MDB_txn *txn, struct ptv_store *s);
};

static const struct ptv_store_migration ptv_store_migrations[] = {
	/* {1, "what changes", ptv_store_migrate_1}, */
	{0, NULL, NULL},
};

static const struct ptv_store_migration *ptv_store_migration_from(uint32_t from)
{
	for (const struct ptv_store_migration *m = ptv_store_migrations; m->fn; m++)
		if (m->from == from)
			return m;
	return NULL;
}

struct ptv_store_setup {
	struct ptv_store *s;
	uint32_t found; /* schema in the file before this open */
	bool present;	/* false: a new store */
};

static int ptv_store_open_dbis(MDB_txn *txn, struct ptv_store *s, unsigned flags)
{
	for (int i = 0; i < PTV_DB_COUNT; i++) {
		int rc = mdb_dbi_open(txn, ptv_store_db_names[i], flags, &s->dbi[i]);

		if (rc)
			return ptv_store_err(rc);
	}
	return 0;
}

static int ptv_store_migrate(MDB_txn *txn, struct ptv_store *s, uint32_t v)
{
	for (; v < PTV_STORE_SCHEMA; v++) {
		const struct ptv_store_migration *m = ptv_store_migration_from(v);
		int rc;

		if (!m)
			return -PTV_ERR_PARSE;
		rc = m->fn(txn, s);
		if (rc)
			return rc;
	}
	return ptv_store_put_u32(txn, s->dbi[PTV_DB_META], "schema", PTV_STORE_SCHEMA);
}

static int ptv_store_setup_txn(MDB_txn *txn, void *arg)
{
	struct ptv_store_setup *c = arg;
	struct ptv_store *s = c->s;
	int rc;

	rc = ptv_store_open_dbis(txn, s, MDB_CREATE);
	if (rc)
		return rc;
	c->found = 0;
	rc = ptv_store_get_u32(txn, s->dbi[PTV_DB_META], "schema", &c->found);
	c->present = rc == 0;
	if (rc == -ENOENT)
		return ptv_store_put_u32(txn, s->dbi[PTV_DB_META], "schema", PTV_STORE_SCHEMA);
	if (rc)
		return rc;
	if (c->found > PTV_STORE_SCHEMA)
		return -PTV_ERR_PARSE;
	if (c->found == PTV_STORE_SCHEMA)
		return 0;
	return ptv_store_migrate(txn, s, c->found);
}

/* Read-only: DBI handles survive only a committed transaction, even a read-only one. */
static int ptv_store_setup_ro(struct ptv_store_setup *c)
{
	struct ptv_store *s = c->s;
	enum ptv_store_hold hold;
	MDB_txn *txn;
	int rc;

	rc = ptv_store_begin(s, MDB_RDONLY, &txn, &hold);
	if (rc)
		return rc;
	rc = ptv_store_open_dbis(txn, s, 0);
	if (!rc)
		rc = ptv_store_get_u32(txn, s->dbi[PTV_DB_META], "schema", &c->found);
	c->present = rc == 0;
	if (!rc && c->found != PTV_STORE_SCHEMA)
		rc = -PTV_ERR_PARSE;
	if (rc)
		mdb_txn_abort(txn);
	else
		rc = ptv_store_err(mdb_txn_commit(txn));
	ptv_store_leave(s, hold);
	return rc;
}

static int ptv_store_setup(struct ptv_store *s)
{
	struct ptv_store_setup c = {.s = s};
	int rc;

	rc = s->read_only ? ptv_store_setup_ro(&c) : ptv_store_write(s, ptv_store_setup_txn, &c);
	if (rc == -ENOENT && s->read_only) {
		ptv_error(MOD, "%s: not initialised; run `plextv serve` or an import first",
			  s->path);
	} else if (rc == -PTV_ERR_PARSE && c.found > PTV_STORE_SCHEMA) {
		ptv_error(MOD,
			  "%s: schema %" PRIu32 " was written by a newer plextv (this build knows "
			  "%d); upgrade plextv or restore a backup made by this version",
			  s->path, c.found, PTV_STORE_SCHEMA);
	} else if (rc == -PTV_ERR_PARSE && c.present && c.found < PTV_STORE_SCHEMA) {
		ptv_error(MOD, "%s: schema %" PRIu32 " %s", s->path, c.found,
			  s->read_only ? "needs a migration: open it read-write once"
				       : "has no migration path to this version");
	} else if (rc == -PTV_ERR_PARSE) {
		ptv_store_corrupt(s, "holds damaged records");
	} else if (rc) {
		ptv_error(MOD, "%s: cannot set up the databases: %s", s->path, ptv_strerror(rc));
	} else if (c.present && c.found < PTV_STORE_SCHEMA) {
		ptv_info(MOD, "%s: migrated schema %" PRIu32 " to %d", s->path, c.found,
			 PTV_STORE_SCHEMA);
	}
	return rc;
}

int ptv_store_open(const char *data_dir, const struct ptv_store_opts *opts, struct ptv_store **out)
{
	pthread_rwlockattr_t attr;
	struct ptv_store *s;
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir)
		return -EINVAL;
	s = ptv_xcalloc(1, sizeof(*s));
	s->read_only = opts && opts->read_only;
	pthread_rwlockattr_init(&attr);
	/* Writer preference: a waiting resize must not be starved by overlapping readers. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);

	rc = ptv_store_prepare_dir(s, data_dir);
	if (!rc) {
		ptv_store_check_fs(s);
		rc = ptv_store_env_open(s, opts);
	}
	if (!rc)
		rc = ptv_store_setup(s);
	if (rc) {
		ptv_store_close(s);
		return rc;
	}
	ptv_debug(MOD, "opened %s (map %zu MiB, max %zu MiB)", s->path, ptv_store_map_size(s) >> 20,
		  s->map_max >> 20);
	*out = s;
	return 0;
}

void ptv_store_close(struct ptv_store *s)
{
	if (!s)
		return;
	/* LMDB requires this even after a failed mdb_env_open(). */
	if (s->env)
		mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}
