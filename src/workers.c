/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <pthread.h>
#include <stdio.h>

#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"
#include "plextv/workers.h"

struct ptv_job {
	struct ptv_job *next;
	void (*work)(void *arg);
	void (*done)(void *arg);
	void *arg;
	struct ptv_reactor *home;
};

struct ptv_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ptv_job *head;
	struct ptv_job **tail;
	bool closing;
	unsigned nthreads;
	pthread_t *threads;
	struct ptv_metric *queued;
	struct ptv_metric *jobs;
};

static struct ptv_job *pool_take(struct ptv_pool *p)
{
	struct ptv_job *j;

	pthread_mutex_lock(&p->lock);
	while (!p->head && !p->closing)
		pthread_cond_wait(&p->cond, &p->lock);
	j = p->head;
	if (j) {
		p->head = j->next;
		if (!p->head)
			p->tail = &p->head;
	}
	pthread_mutex_unlock(&p->lock);
	return j;
}

static void *pool_main(void *arg)
{
	struct ptv_pool *p = arg;
	struct ptv_job *j;

	ptv_metrics_thread_init();
	/* Closing only ends the loop once the queue is empty: queued work always runs. */
	while ((j = pool_take(p))) {
		ptv_metric_sub(p->queued, 1);
		j->work(j->arg);
		ptv_metric_inc(p->jobs);
		if (j->done && j->home)
			ptv_reactor_post(j->home, j->done, j->arg);
		else if (j->done)
			j->done(j->arg);
		free(j);
	}
	ptv_metrics_thread_exit();
	return NULL;
}

int ptv_pool_new(unsigned threads, struct ptv_pool **out)
{
	struct ptv_pool *p = ptv_xcalloc(1, sizeof(*p));
	int ret = 0;

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->tail = &p->head;
	p->threads = ptv_xcalloc(threads ? threads : 1, sizeof(*p->threads));
	p->queued = ptv_metric_simple("plextv_pool_jobs_queued",
				      "Jobs waiting for a worker-pool thread", PTV_METRIC_GAUGE);
	p->jobs = ptv_metric_simple("plextv_pool_jobs_total", "Jobs run by the worker pool",
				    PTV_METRIC_COUNTER);
	for (unsigned i = 0; i < (threads ? threads : 1); i++) {
		ret = -pthread_create(&p->threads[i], NULL, pool_main, p);
		if (ret)
			break;
		p->nthreads++;
	}
	if (ret) {
		ptv_pool_free(p);
		return ret;
	}
	*out = p;
	return 0;
}

void ptv_pool_free(struct ptv_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->closing = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int ptv_pool_submit(struct ptv_pool *p, struct ptv_reactor *home, void (*work)(void *arg),
		    void (*done)(void *arg), void *arg)
{
	struct ptv_job *j = ptv_xmalloc(sizeof(*j));
	int ret = 0;

	j->next = NULL;
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->home = home;
	pthread_mutex_lock(&p->lock);
	if (p->closing) {
		ret = -ESHUTDOWN;
	} else {
		*p->tail = j;
		p->tail = &j->next;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	if (ret)
		free(j);
	else
		ptv_metric_add(p->queued, 1);
	return ret;
}
