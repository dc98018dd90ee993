/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Reactor timers, the cross-thread inbox and the worker pool's hand-back to the reactor. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "plextv/reactor.h"
#include "plextv/workers.h"

struct tctx {
	struct ptv_reactor *r;
	struct ptv_timer t[4];
	uint64_t fired_at[4];
	int order[4];
	int nfired;
	uint64_t start;
};

static struct tctx *g_ctx;

static void timer_cb(struct ptv_timer *t)
{
	struct tctx *c = g_ctx;
	int idx = (int)(t - c->t);

	c->fired_at[idx] = ptv_reactor_now_ms(c->r);
	c->order[c->nfired++] = idx;
	if (c->nfired == 3)
		ptv_reactor_stop(c->r);
}

static void test_timers_fire_in_order_not_early(void **state)
{
	struct ptv_reactor_opts opts = {0};
	struct tctx c = {0};

	g_ctx = &c;
	assert_int_equal(ptv_reactor_new(&opts, &c.r), 0);
	for (int i = 0; i < 4; i++)
		ptv_timer_init(&c.t[i], timer_cb);
	c.start = ptv_reactor_now_ms(c.r);
	ptv_timer_arm(c.r, &c.t[0], 300);
	ptv_timer_arm(c.r, &c.t[1], 100);
	ptv_timer_arm(c.r, &c.t[2], 200);
	ptv_timer_arm(c.r, &c.t[3], 150);
	ptv_timer_cancel(&c.t[3]);
	assert_false(ptv_timer_armed(&c.t[3]));
	assert_int_equal(ptv_reactor_run(c.r), 0);
	assert_int_equal(c.nfired, 3);
	assert_int_equal(c.order[0], 1);
	assert_int_equal(c.order[1], 2);
	assert_int_equal(c.order[2], 0);
	/* Correctness, not speed: a deadline never fires before it is due. */
	assert_true(c.fired_at[1] >= c.start + 100);
	assert_true(c.fired_at[2] >= c.start + 200);
	assert_true(c.fired_at[0] >= c.start + 300);
	ptv_reactor_free(c.r);
}

struct pctx {
	struct ptv_reactor *r;
	pthread_t reactor_tid;
	int posted;
	int done_on_reactor;
	int worked_off_reactor;
	int jobs;
};

static void posted_fn(void *arg)
{
	struct pctx *p = arg;

	p->posted++;
	if (p->posted >= 100 && p->jobs == 50)
		ptv_reactor_stop(p->r);
}

static void *poster(void *arg)
{
	struct pctx *p = arg;

	for (int i = 0; i < 100; i++)
		ptv_reactor_post(p->r, posted_fn, p);
	return NULL;
}

static void job_work(void *arg)
{
	struct pctx *p = arg;

	/* Runs on a pool thread: never the reactor's. */
	if (!pthread_equal(pthread_self(), p->reactor_tid))
		__atomic_fetch_add(&p->worked_off_reactor, 1, __ATOMIC_RELAXED);
}

static void job_done(void *arg)
{
	struct pctx *p = arg;

	if (pthread_equal(pthread_self(), p->reactor_tid))
		p->done_on_reactor++;
	p->jobs++;
	if (p->posted >= 100 && p->jobs == 50)
		ptv_reactor_stop(p->r);
}

static void test_post_and_pool_hand_back(void **state)
{
	struct ptv_reactor_opts opts = {0};
	struct pctx p = {0};
	struct ptv_pool *pool;
	pthread_t th[2];

	assert_int_equal(ptv_reactor_new(&opts, &p.r), 0);
	p.reactor_tid = pthread_self();
	assert_int_equal(ptv_pool_new(3, &pool), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, poster, &p);
	for (int i = 0; i < 50; i++)
		assert_int_equal(ptv_pool_submit(pool, p.r, job_work, job_done, &p), 0);
	/* posted counts to 200 with two posters; stop waits for 100 of them and all jobs. */
	assert_int_equal(ptv_reactor_run(p.r), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ptv_pool_free(pool);
	assert_int_equal(p.jobs, 50);
	assert_int_equal(p.done_on_reactor, 50);
	assert_int_equal(p.worked_off_reactor, 50);
	assert_true(p.posted >= 100);
	ptv_reactor_free(p.r);
}

static void count_work(void *arg)
{
	usleep(1000);
	__atomic_fetch_add((int *)arg, 1, __ATOMIC_RELAXED);
}

static void test_pool_free_runs_queued_jobs(void **state)
{
	struct ptv_pool *pool;
	int n = 0;

	assert_int_equal(ptv_pool_new(1, &pool), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(ptv_pool_submit(pool, NULL, count_work, NULL, &n), 0);
	ptv_pool_free(pool);
	assert_int_equal(n, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_fire_in_order_not_early),
		cmocka_unit_test(test_post_and_pool_hand_back),
		cmocka_unit_test(test_pool_free_runs_queued_jobs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
