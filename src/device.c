/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * HDHomeRun identities, one record per virtual device in PTV_DB_DEVICES:
 * u32 BE index -> {"device_id":"1054A3F7","uuid":"…","auth":"…"}.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>

#include "plextv/common.h"
#include "plextv/device.h"
#include "plextv/log.h"
#include "plextv/store.h"

#define MOD "device"

/* cabernet's prefix: the ID reads like a real HDHomeRun's (0x10xxxxxx). */
#define PTV_DEVICE_PREFIX 0x10500000u
/* Only 2^16 IDs share the prefix: a few redraws settle any collision between indexes. */
#define PTV_DEVICE_TRIES 64

static const char ptv_device_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* XOR over the nibbles n7..n0, odd ones through libhdhomerun's table (PROTOCOLS.md §2.4). */
static unsigned ptv_device_sum(uint32_t id)
{
	static const uint8_t table[16] = {0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB,
					  0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0};
	unsigned sum = 0;

	for (int shift = 28; shift > 0; shift -= 8) {
		sum ^= table[(id >> shift) & 0xf];
		sum ^= (id >> (shift - 4)) & 0xf;
	}
	return sum;
}

bool ptv_device_id_valid(uint32_t id)
{
	return ptv_device_sum(id) == 0;
}

uint32_t ptv_device_id_fix(uint32_t id)
{
	id &= ~0xfu;
	return id | ptv_device_sum(id);
}

static int ptv_device_random(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void ptv_device_set_id(struct ptv_device_identity *d, uint32_t id)
{
	d->device_id = id;
	snprintf(d->device_id_hex, sizeof(d->device_id_hex), "%08" PRIX32, id);
}

static int ptv_device_generate(struct ptv_device_identity *d)
{
	uint8_t rnd[2 + sizeof(d->auth) - 1];
	uuid_t u;
	int rc = ptv_device_random(rnd, sizeof(rnd));

	if (rc)
		return rc;
	/* "105" + four random nibbles + the checksum nibble. */
	ptv_device_set_id(d, ptv_device_id_fix(PTV_DEVICE_PREFIX | (uint32_t)rnd[0] << 12 |
					       (uint32_t)rnd[1] << 4));
	uuid_generate_random(u);
	uuid_unparse_lower(u, d->uuid);
	/* 64 divides 256: masking a byte picks each character without bias. */
	for (size_t i = 0; i < sizeof(d->auth) - 1; i++)
		d->auth[i] = ptv_device_b64[rnd[2 + i] & 63];
	d->auth[sizeof(d->auth) - 1] = '\0';
	return 0;
}

static int ptv_device_parse_id(const char *hex, uint32_t *out)
{
	uint32_t v;

	if (strlen(hex) != 8 || strspn(hex, "0123456789abcdefABCDEF") != 8)
		return -PTV_ERR_PARSE;
	v = (uint32_t)strtoul(hex, NULL, 16);
	if (!ptv_device_id_valid(v))
		return -PTV_ERR_PARSE;
	*out = v;
	return 0;
}

/* A stored record is trusted only when every field is well formed. */
static int ptv_device_decode(const json_t *rec, struct ptv_device_identity *d)
{
	const char *id, *uuid, *auth;
	uint32_t v;
	uuid_t u;

	if (json_unpack((json_t *)rec, "{s:s, s:s, s:s}", "device_id", &id, "uuid", &uuid, "auth",
			&auth))
		return -PTV_ERR_PARSE;
	if (ptv_device_parse_id(id, &v) || strlen(uuid) != 36 || uuid_parse(uuid, u) ||
	    strlen(auth) != sizeof(d->auth) - 1 || strspn(auth, ptv_device_b64) != strlen(auth))
		return -PTV_ERR_PARSE;
	ptv_device_set_id(d, v);
	uuid_unparse_lower(u, d->uuid);
	memcpy(d->auth, auth, sizeof(d->auth));
	return 0;
}

struct ptv_device_ctx {
	const struct ptv_store *s;
	uint32_t key; /* big-endian index */
	struct ptv_device_identity *out;
	bool created;
};

static int ptv_device_load(MDB_txn *txn, struct ptv_device_ctx *c)
{
	json_t *rec;
	int rc = ptv_store_get_json(txn, ptv_store_dbi(c->s, PTV_DB_DEVICES), &c->key,
				    sizeof(c->key), &rec);

	if (rc)
		return rc;
	rc = ptv_device_decode(rec, c->out);
	json_decref(rec);
	if (rc)
		ptv_error(MOD,
			  "virtual device %" PRIu32 ": stored identity damaged; restore a backup "
			  "(a new identity would look like a new tuner to Plex)",
			  be32toh(c->key));
	return rc;
}

static int ptv_device_get_txn(MDB_txn *txn, void *arg)
{
	return ptv_device_load(txn, arg);
}

/* 1 when another device already uses @d's DeviceID or UUID, 0 when not, or an error. */
static int ptv_device_taken(MDB_txn *txn, MDB_dbi dbi, const struct ptv_device_identity *d)
{
	struct ptv_device_identity other;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, ret;

	ret = ptv_store_err(mdb_cursor_open(txn, dbi, &cur));
	if (ret)
		return ret;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *rec = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		bool bad = !rec || ptv_device_decode(rec, &other);

		json_decref(rec);
		if (bad) {
			ret = -PTV_ERR_PARSE;
			goto out;
		}
		if (other.device_id == d->device_id || !strcmp(other.uuid, d->uuid)) {
			ret = 1;
			goto out;
		}
	}
	ret = rc == MDB_NOTFOUND ? 0 : ptv_store_err(rc);
out:
	mdb_cursor_close(cur);
	return ret;
}

static int ptv_device_put(MDB_txn *txn, MDB_dbi dbi, uint32_t key,
			  const struct ptv_device_identity *d)
{
	json_t *rec = json_pack("{s:s, s:s, s:s}", "device_id", d->device_id_hex, "uuid", d->uuid,
				"auth", d->auth);
	int rc;

	if (!rec)
		return -ENOMEM;
	rc = ptv_store_put_json(txn, dbi, &key, sizeof(key), rec);
	json_decref(rec);
	return rc;
}

/* Check and create in one write transaction: racing processes end with one identity. */
static int ptv_device_create_txn(MDB_txn *txn, void *arg)
{
	struct ptv_device_ctx *c = arg;
	MDB_dbi dbi = ptv_store_dbi(c->s, PTV_DB_DEVICES);
	int rc = ptv_device_load(txn, c);

	c->created = false;
	if (rc != -ENOENT)
		return rc;
	for (int i = 0; i < PTV_DEVICE_TRIES; i++) {
		rc = ptv_device_generate(c->out);
		if (!rc)
			rc = ptv_device_taken(txn, dbi, c->out);
		if (rc <= 0)
			break;
	}
	if (rc)
		return rc > 0 ? -EAGAIN : rc;
	rc = ptv_device_put(txn, dbi, c->key, c->out);
	c->created = !rc;
	return rc;
}

int ptv_device_identity(struct ptv_store *s, unsigned index, struct ptv_device_identity *out)
{
	struct ptv_device_ctx c = {s, htobe32((uint32_t)index), out, false};
	int rc;

	rc = ptv_store_read(s, ptv_device_get_txn, &c);
	if (rc != -ENOENT)
		return rc;
	rc = ptv_store_write(s, ptv_device_create_txn, &c);
	if (!rc && c.created)
		ptv_info(MOD, "virtual device %u: new identity DeviceID %s", index,
			 out->device_id_hex);
	return rc;
}

struct ptv_devices_ctx {
	const struct ptv_store *s;
	unsigned n;
	struct ptv_device_identity *out;
	bool *have;
	unsigned created;
};

static int ptv_devices_get_txn(MDB_txn *txn, void *arg)
{
	struct ptv_devices_ctx *b = arg;

	for (unsigned i = 0; i < b->n; i++) {
		struct ptv_device_ctx c = {b->s, htobe32(i), &b->out[i], false};
		int rc = ptv_device_load(txn, &c);

		if (rc && rc != -ENOENT)
			return rc;
		b->have[i] = !rc;
	}
	return 0;
}

static int ptv_devices_create_txn(MDB_txn *txn, void *arg)
{
	struct ptv_devices_ctx *b = arg;

	b->created = 0;
	for (unsigned i = 0; i < b->n; i++) {
		struct ptv_device_ctx c = {b->s, htobe32(i), &b->out[i], false};
		int rc;

		if (b->have[i])
			continue;
		rc = ptv_device_create_txn(txn, &c);
		if (rc)
			return rc;
		b->created += c.created;
	}
	return 0;
}

int ptv_device_identities(struct ptv_store *s, unsigned n, struct ptv_device_identity *out)
{
	struct ptv_devices_ctx b = {s, n, out, ptv_xcalloc(n ? n : 1, sizeof(bool)), 0};
	bool missing = false;
	int rc = ptv_store_read(s, ptv_devices_get_txn, &b);

	for (unsigned i = 0; !rc && i < n; i++)
		missing |= !b.have[i];
	/* One transaction (one fsync) for all new devices: a big lineup may add hundreds. */
	if (!rc && missing)
		rc = ptv_store_write(s, ptv_devices_create_txn, &b);
	if (!rc && b.created)
		ptv_info(MOD, "%u new virtual device identities (%u devices)", b.created, n);
	free(b.have);
	return rc;
}
