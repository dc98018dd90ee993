/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <string.h>

#include "plextv/common.h"
#include "plextv/strmap.h"

uint64_t ptv_str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a: short keys, no adversary worth SipHash */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

void ptv_strmap_init(struct ptv_strmap *m)
{
	memset(m, 0, sizeof(*m));
}

void ptv_strmap_free(struct ptv_strmap *m)
{
	free(m->keys);
	free(m->vals);
	ptv_strmap_init(m);
}

static size_t slot_find(const struct ptv_strmap *m, const char *key)
{
	size_t h = ptv_str_hash(key) & (m->cap - 1);

	while (m->keys[h] && strcmp(m->keys[h], key))
		h = (h + 1) & (m->cap - 1);
	return h;
}

static void grow(struct ptv_strmap *m)
{
	struct ptv_strmap old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->keys = ptv_xcalloc(m->cap, sizeof(*m->keys));
	m->vals = ptv_xcalloc(m->cap, sizeof(*m->vals));
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.keys[i]) {
			size_t h = slot_find(m, old.keys[i]);

			m->keys[h] = old.keys[i];
			m->vals[h] = old.vals[i];
			m->n++;
		}
	}
	free(old.keys);
	free(old.vals);
}

bool ptv_strmap_add(struct ptv_strmap *m, const char *key, uint32_t val)
{
	size_t h;

	/* Keep the load factor under one half so probes stay short. */
	if ((m->n + 1) * 2 > m->cap)
		grow(m);
	h = slot_find(m, key);
	if (m->keys[h])
		return false;
	m->keys[h] = key;
	m->vals[h] = val;
	m->n++;
	return true;
}

void ptv_strmap_set(struct ptv_strmap *m, const char *key, uint32_t val)
{
	size_t h;

	if (ptv_strmap_add(m, key, val))
		return;
	h = slot_find(m, key);
	m->vals[h] = val;
}

bool ptv_strmap_get(const struct ptv_strmap *m, const char *key, uint32_t *val)
{
	size_t h;

	if (!m->cap)
		return false;
	h = slot_find(m, key);
	if (!m->keys[h])
		return false;
	*val = m->vals[h];
	return true;
}
