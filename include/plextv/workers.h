/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Pool of threads for blocking work (file and LMDB writes, libcurl, rendering big documents).
 * Reactor threads never block: they hand a job here and get the result back on their own thread.
 */
#pragma once

struct ptv_pool;
struct ptv_reactor;

int ptv_pool_new(unsigned threads, struct ptv_pool **out);
/** Runs the queued jobs to completion, then joins the threads. NULL is fine. */
void ptv_pool_free(struct ptv_pool *p);

/**
 * Queues @work(@arg) on a pool thread; when it returns, @done(@arg) runs on @home's thread
 * (posted to its inbox), or on the pool thread when @home is NULL. @done may be NULL.
 * Returns 0, or -ESHUTDOWN once the pool is being freed (then neither callback runs).
 */
int ptv_pool_submit(struct ptv_pool *p, struct ptv_reactor *home, void (*work)(void *arg),
		    void (*done)(void *arg), void *arg);
