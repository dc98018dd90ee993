/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * A string -> uint32 hash map (open addressing, linear probing). Keys are borrowed: the caller
 * keeps them alive as long as the map. Used for the importer's identity matching and indexes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ptv_strmap {
	const char **keys;
	uint32_t *vals;
	size_t cap, n;
};

void ptv_strmap_init(struct ptv_strmap *m);
void ptv_strmap_free(struct ptv_strmap *m);
/** Inserts @key unless present. Returns true if inserted, false if the key already existed. */
bool ptv_strmap_add(struct ptv_strmap *m, const char *key, uint32_t val);
/** Sets @key to @val, inserting or replacing. */
void ptv_strmap_set(struct ptv_strmap *m, const char *key, uint32_t val);
/** Looks @key up; returns true and sets *@val when found. */
bool ptv_strmap_get(const struct ptv_strmap *m, const char *key, uint32_t *val);
uint64_t ptv_str_hash(const char *s);
