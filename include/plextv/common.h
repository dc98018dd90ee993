/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Shared basics: error model, allocation policy, assertions, small helpers.
 *
 * Error model: functions return 0 (or a count) on success and a negative errno on failure.
 * PlexTV's own errors live in a disjoint range starting at PTV_ERR_BASE (as LMDB does from
 * -30799) so that ptv_strerror() can describe both.
 *
 * Allocation policy: small fixed-size objects use ptv_xmalloc()/ptv_xcalloc(), which abort on
 * out-of-memory (nothing sensible can continue); sizes that come from input use plain
 * malloc() and return -ENOMEM to the caller.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define PTV_ERR_BASE 4000

enum ptv_err {
	PTV_ERR_PARSE = PTV_ERR_BASE, /* input could not be parsed */
	PTV_ERR_CONFIG,		      /* configuration is invalid */
	PTV_ERR_LIMIT,		      /* a configured limit was reached */
	PTV_ERR_UNSUPPORTED,	      /* the kernel lacks a needed feature */
	PTV_ERR_MAX,
};

/** Describes a negative errno or a -PTV_ERR_* code. Never returns NULL. */
const char *ptv_strerror(int err);

#define PTV_ARRAY_SIZE(a)		    (sizeof(a) / sizeof((a)[0]))
#define PTV_MIN(a, b)			    ((a) < (b) ? (a) : (b))
#define PTV_MAX(a, b)			    ((a) > (b) ? (a) : (b))
#define PTV_UNUSED			    __attribute__((unused))
#define PTV_LIKELY(x)			    __builtin_expect(!!(x), 1)
#define PTV_UNLIKELY(x)			    __builtin_expect(!!(x), 0)
#define PTV_PRINTF(f, a)		    __attribute__((format(printf, f, a)))
#define ptv_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/** Aborts with file:line when an invariant breaks; kept in every build (cheap checks only). */
#define PTV_BUG_ON(cond)                                    \
	do {                                                \
		if (PTV_UNLIKELY(cond))                     \
			ptv_bug(__FILE__, __LINE__, #cond); \
	} while (0)
__attribute__((noreturn)) void ptv_bug(const char *file, int line, const char *what);

void *ptv_xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *ptv_xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *ptv_xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *ptv_xstrdup(const char *s) __attribute__((malloc, returns_nonnull));

/** Frees *pp and sets it to NULL (FFmpeg av_freep, HAProxy ha_free). */
#define ptv_freep(pp)         \
	do {                  \
		free(*(pp));  \
		*(pp) = NULL; \
	} while (0)

/** Monotonic clock in nanoseconds and milliseconds; wall clock in seconds. */
uint64_t ptv_now_ns(void);
static inline uint64_t ptv_now_ms(void)
{
	return ptv_now_ns() / 1000000u;
}
double ptv_wall_seconds(void);

/* Intrusive doubly linked list (circular, head is a sentinel). */
struct ptv_list {
	struct ptv_list *next, *prev;
};
static inline void ptv_list_init(struct ptv_list *h)
{
	h->next = h->prev = h;
}
static inline bool ptv_list_empty(const struct ptv_list *h)
{
	return h->next == h;
}
static inline void ptv_list_add_tail(struct ptv_list *h, struct ptv_list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}
static inline void ptv_list_del(struct ptv_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}
#define ptv_list_for_each_safe(pos, tmp, head)                           \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)
