/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Persistent state in one LMDB environment under the data directory: device identity, sources,
 * channels and numbering, the guide. LMDB's lock serialises writers across processes, so
 * `plextv import` can write while `plextv serve` runs.
 *
 * Threads: every function here may block (disk, the writer lock). Call them from the main
 * thread, a pool thread or a CLI command, never from a reactor. Reactors serve in-memory
 * snapshots built from the store.
 *
 * Records are JSON objects (jansson) so `mdb_dump` shows them; keys are documented per database.
 *
 * Transactions: ptv_store_read() and ptv_store_write() scope one transaction to a callback. A
 * read may nest inside a read or a write on the same thread; a write must not nest inside a
 * write (-EDEADLK: LMDB's writer lock is not recursive). A write nested inside a read cannot
 * grow the map (MDB_MAP_FULL is then -PTV_ERR_LIMIT). Callbacks pass LMDB return codes through
 * ptv_store_err(): map growth recognises MDB_MAP_FULL as -PTV_ERR_LIMIT. A callback must not
 * wait for another thread that uses the store: a pending map resize waits for the callback's
 * transaction to end and holds back new transactions meanwhile.
 *
 * fork(): a child must neither use nor close a store its parent opened (LMDB forbids it; closing
 * would release the parent's reader slots). Open a new one in the child.
 */
#pragma once

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_STORE_SCHEMA 1

enum ptv_store_db {
	PTV_DB_META = 0,       /* "schema" -> u32 LE; "lineup_version", "guide_version" -> u64 LE;
				  "seq:<name>" -> u32 LE sequence counters */
	PTV_DB_DEVICES,	       /* u32 BE virtual device index -> {"device_id","uuid","auth"} */
	PTV_DB_SOURCES,	       /* u32 BE source id -> source record */
	PTV_DB_CHANNELS,       /* u32 BE channel id -> channel record */
	PTV_DB_CHANKEYS,       /* "<source id>:<identity key>" -> u32 BE channel id */
	PTV_DB_NUMBERS,	       /* GuideNumber string -> u32 BE channel id */
	PTV_DB_GUIDE_CHANNELS, /* guide data (EPG issue) */
	PTV_DB_PROGRAMMES,
	PTV_DB_GUIDE_MAP,
	PTV_DB_COUNT,
};

struct ptv_store;

struct ptv_store_opts {
	size_t map_size; /* initial map size; 0 = 256 MiB */
	size_t map_max;	 /* growth stops here (MDB_MAP_FULL is then an error); 0 = 64 GiB */
	bool read_only;
};

/**
 * Opens (creating the directory and the environment if needed) DATA_DIR/store. Clears stale
 * reader slots left by crashed processes (mdb_reader_check), applies schema migrations, warns
 * when the directory is on NFS/CIFS/FUSE (LMDB needs a local filesystem). Walks every page once
 * (about 50 ms per 100 MiB when cached) so that a damaged file is refused here instead of
 * crashing a later read; the walk briefly installs SIGBUS/SIGSEGV handlers, so open the store
 * before starting threads that install their own. Errors: -EACCES / -EROFS / -ENOTDIR
 * (unwritable dir), -PTV_ERR_PARSE (corrupt, truncated or newer schema), -ENOENT (read_only
 * and no store yet), other negative errnos; a log line names the path and the fix.
 */
int ptv_store_open(const char *data_dir, const struct ptv_store_opts *opts, struct ptv_store **out);
void ptv_store_close(struct ptv_store *s);
MDB_dbi ptv_store_dbi(const struct ptv_store *s, enum ptv_store_db db);

/**
 * Runs @fn inside one write transaction and commits it; on any error the transaction is
 * aborted, so the previous state stays intact. On MDB_MAP_FULL the map grows (doubling, up to
 * map_max) and @fn runs again from scratch, so @fn must not have side effects outside the
 * transaction. Returns 0, @fn's negative error, or a negative errno / -PTV_ERR_LIMIT (full).
 */
int ptv_store_write(struct ptv_store *s, int (*fn)(MDB_txn *txn, void *ctx), void *ctx);

/**
 * Runs @fn inside one read-only transaction and returns what @fn returns, or -EAGAIN when all
 * reader slots stay busy (after clearing slots of dead processes), or another negative errno.
 */
int ptv_store_read(struct ptv_store *s, int (*fn)(MDB_txn *txn, void *ctx), void *ctx);

/**
 * LMDB error (MDB_* or errno) to a negative errno-style code for our error model:
 * MDB_NOTFOUND -ENOENT, MDB_KEYEXIST -EEXIST, MDB_MAP_FULL -PTV_ERR_LIMIT (only it),
 * MDB_TXN_FULL/DBS_FULL/CURSOR_FULL/PAGE_FULL -E2BIG, MDB_READERS_FULL/MAP_RESIZED -EAGAIN
 * (transient), MDB_INVALID/CORRUPTED/PAGE_NOTFOUND/VERSION_MISMATCH -PTV_ERR_PARSE,
 * MDB_PANIC -EIO, misuse (MDB_BAD_*) -EINVAL, errno values negated.
 */
int ptv_store_err(int mdb_rc);

/* Helpers for use inside transactions. */
int ptv_store_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out); /* -ENOENT */
int ptv_store_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);
/** Next value of sequence @name (starts at 1). */
int ptv_store_next_id(MDB_txn *txn, const struct ptv_store *s, const char *name, uint32_t *out);
/** Increments "lineup_version"/"guide_version" so running servers notice the change. */
int ptv_store_bump_version(MDB_txn *txn, const struct ptv_store *s, const char *name);
/** Reads a version counter in its own read transaction (0 if never set). */
uint64_t ptv_store_version(struct ptv_store *s, const char *name);

/* JSON records (jansson). @out is a new reference. */
struct json_t;
int ptv_store_get_json(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
		       struct json_t **out);
int ptv_store_put_json(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
		       const struct json_t *v);

/** A big-endian u32 key or value, read without assuming alignment (LMDB gives none). */
static inline uint32_t ptv_store_be32(const void *p)
{
	const unsigned char *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/** Map size and used bytes, for metrics. */
void ptv_store_sizes(struct ptv_store *s, uint64_t *map_size, uint64_t *used);

/** "NFS", "CIFS", "SMB2", "FUSE", … when the store lives on a remote filesystem, else NULL (UI). */
const char *ptv_store_remote_fs(const struct ptv_store *s);
/** DATA_DIR/store, for log lines and backups. */
const char *ptv_store_path(const struct ptv_store *s);
