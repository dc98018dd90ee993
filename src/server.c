/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "plextv/build-config.h"
#include "plextv/epg.h"
#include "plextv/acestream.h"
#include "plextv/discovery.h"
#include "plextv/hdhr.h"
#include "plextv/http.h"
#include "plextv/lineup_svc.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/ops.h"
#include "plextv/reactor.h"
#include "plextv/relay.h"
#include "plextv/server.h"
#include "plextv/store.h"
#include "plextv/workers.h"

struct server;

struct server_thread {
	struct server *srv;
	pthread_t tid;
	bool joined;
	unsigned index;
	int listen_fd;
	struct ptv_reactor *r;
	struct ptv_http_server *http;
};

struct server {
	struct ptv_config cfg;
	const char *config_file;
	const struct ptv_config_override *ov;
	size_t n_ov;
	struct ptv_router *router;
	struct ptv_pool *pool;
	struct ptv_store *store;
	struct ptv_lineup_svc *lineup;
	struct ptv_hdhr *hdhr;
	struct ptv_epg_svc *epg; /* EPG (issue 6): /xmltv.xml, guide refreshes */
	struct ptv_relay *relay;
	struct ptv_acestream *ace;  /* the Acestream engine client the relay tunes through */
	struct ptv_discovery *disc; /* SSDP, UDP 65001, eBPF: runs on reactor 0 */
	struct ptv_http_shared shared;
	struct ptv_http_limits limits;
	char server_header[64];
	unsigned n;
	struct server_thread *threads;
	/* Start-up barrier: each reactor reports once, with its error if it failed. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned reported;
	int start_err;
};

static void server_report(struct server *srv, int err)
{
	pthread_mutex_lock(&srv->lock);
	srv->reported++;
	if (err && !srv->start_err)
		srv->start_err = err;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

/* The loop ends when neither HTTP connections nor relay work (children, messages) remain. */
static bool thread_busy(void *arg)
{
	struct server_thread *t = arg;

	return ptv_http_server_busy(t->http) || ptv_relay_busy(t->r);
}

static int thread_setup(struct server_thread *t)
{
	struct server *srv = t->srv;
	struct ptv_reactor_opts opts = {.index = t->index};
	int ret;

	ret = ptv_reactor_new(&opts, &t->r);
	if (ret)
		return ret;
	ret = ptv_http_server_new(t->r, srv->router, &srv->shared, &srv->limits, t->listen_fd,
				  &t->http);
	if (ret)
		return ret;
	t->listen_fd = -1; /* owned by the HTTP server now */
	ptv_reactor_set_local(t->r, PTV_SLOT_HTTP, t->http);
	ptv_lineup_svc_attach(srv->lineup, t->r);
	ret = ptv_relay_attach(srv->relay, t->r);
	if (ret)
		return ret;
	ptv_reactor_set_busy(t->r, thread_busy, t);
	ret = ptv_http_server_start(t->http);
	if (!ret && t->index == 0)
		ret = ptv_discovery_start(srv->disc, t->r);
	return ret;
}

static void *thread_main(void *arg)
{
	struct server_thread *t = arg;
	int ret;

	ptv_metrics_thread_init();
	ret = thread_setup(t);
	server_report(t->srv, ret);
	if (!ret) {
		ret = ptv_reactor_run(t->r);
		if (ret)
			ptv_error("server", "reactor %u stopped: %s", t->index, ptv_strerror(ret));
	}
	if (t->r) {
		/* Stop publication first, then run what was already posted, then let go. */
		ptv_relay_detach(t->r);
		ptv_lineup_svc_detach(t->srv->lineup, t->r);
		ptv_reactor_run_inbox(t->r);
		ptv_lineup_svc_release(t->r);
	}
	ptv_metrics_thread_exit();
	return NULL;
}

static void explain_uring_error(int err)
{
	if (err == -EPERM || err == -ENOSYS || err == -EACCES) {
		ptv_error("server",
			  "io_uring is not available (io_uring_setup: %s). PlexTV needs it. In "
			  "Docker, run with --security-opt seccomp=contrib/seccomp-io_uring.json "
			  "(Docker >= 25 blocks io_uring by default); on a host, set sysctl "
			  "kernel.io_uring_disabled=0. See README, section Containers.",
			  ptv_strerror(err));
	} else if (err == -PTV_ERR_UNSUPPORTED) {
		ptv_error("server", "this kernel's io_uring lacks multishot accept/receive: PlexTV "
				    "needs Linux 6.0 or later");
	} else if (err) {
		ptv_error("server", "could not start a reactor: %s", ptv_strerror(err));
	}
}

static int server_listen_all(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int ret;

	ret = ptv_config_parse_listen(srv->cfg.listen, &ss, &len);
	if (ret) {
		ptv_error("server", "bad listen address '%s'", srv->cfg.listen);
		return -PTV_ERR_CONFIG;
	}
	ret = ptv_http_check_addr_free((struct sockaddr *)&ss, len);
	for (unsigned i = 0; i < srv->n && !ret; i++) {
		int fd = ptv_http_listen((struct sockaddr *)&ss, len);

		if (fd < 0) {
			ret = fd;
			break;
		}
		srv->threads[i].listen_fd = fd;
		if (i == 0) {
			/* Port 0 picks a port: the other reactors must join the same one. */
			len = sizeof(ss);
			getsockname(fd, (struct sockaddr *)&ss, &len);
		}
	}
	if (ret)
		ptv_error("server", "cannot listen on %s: %s", srv->cfg.listen, ptv_strerror(ret));
	return ret;
}

static void thread_drain_task(void *arg)
{
	struct server_thread *t = arg;

	ptv_relay_drain(t->r);
	ptv_http_server_drain(t->http);
	if (t->index == 0)
		ptv_discovery_stop(t->srv->disc); /* ssdp:byebye while the reactor still runs */
}

static void thread_close_all_task(void *arg)
{
	struct server_thread *t = arg;

	ptv_http_server_close_all(t->http);
}

struct limits_task {
	struct server_thread *t;
	struct ptv_http_limits limits;
};

static void thread_limits_task(void *arg)
{
	struct limits_task *lt = arg;

	ptv_http_server_set_limits(lt->t->http, &lt->limits);
	free(lt);
}

static bool thread_join_by(struct server_thread *t, const struct timespec *deadline)
{
	if (t->joined)
		return true;
	if (pthread_timedjoin_np(t->tid, NULL, deadline))
		return false;
	t->joined = true;
	return true;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Stops the reactors: drain, then force after the shutdown timeout. False if one hangs. */
static bool server_stop_threads(struct server *srv, unsigned running, bool drain)
{
	struct timespec deadline;
	bool all = true;

	for (unsigned i = 0; i < running; i++) {
		/* A reactor that failed to start has no loop: its thread ends by itself. */
		if (!srv->threads[i].r)
			continue;
		if (drain)
			ptv_reactor_post(srv->threads[i].r, thread_drain_task, &srv->threads[i]);
		ptv_reactor_stop(srv->threads[i].r);
	}
	deadline_in(&deadline, srv->cfg.shutdown_timeout_ms);
	for (unsigned i = 0; i < running; i++) {
		if (!thread_join_by(&srv->threads[i], &deadline) && srv->threads[i].r) {
			ptv_warn("server", "reactor %u: shutdown timeout, closing its connections",
				 i);
			ptv_reactor_post(srv->threads[i].r, thread_close_all_task,
					 &srv->threads[i]);
		}
	}
	deadline_in(&deadline, 2000);
	for (unsigned i = 0; i < running; i++)
		all &= thread_join_by(&srv->threads[i], &deadline);
	return all;
}

static void server_free_threads(struct server *srv)
{
	for (unsigned i = 0; i < srv->n; i++) {
		struct server_thread *t = &srv->threads[i];

		/* Ring first: it cancels what is in flight before the memory goes. */
		ptv_reactor_free(t->r);
		ptv_http_server_free(t->http);
		if (t->listen_fd >= 0)
			close(t->listen_fd);
	}
	free(srv->threads);
}

/* Keys the running process is built around: a reload logs them and keeps the old values. */
#define RESTART_STR(f)                                                                  \
	{                                                                               \
#f, offsetof(struct ptv_config, f), sizeof(((struct ptv_config *)0)->f) \
	}
static const struct {
	const char *name;
	size_t off, size;
} restart_keys[] = {
	RESTART_STR(listen),	   RESTART_STR(data_dir), RESTART_STR(workers),
	RESTART_STR(pool_threads), RESTART_STR(ssdp),	  RESTART_STR(hdhr_discovery),
	RESTART_STR(http_port80),  RESTART_STR(bpf),	  RESTART_STR(allow_prefixes),
};

/* Logs every restart-only key that changed and puts its running value back into @next. */
static void restart_keys_keep(const struct ptv_config *cur, struct ptv_config *next)
{
	for (size_t i = 0; i < PTV_ARRAY_SIZE(restart_keys); i++) {
		const char *a = (const char *)cur + restart_keys[i].off;
		char *b = (char *)next + restart_keys[i].off;

		if (!memcmp(a, b, restart_keys[i].size))
			continue;
		ptv_warn("config", "%s changed: takes effect after a restart, not applied now",
			 restart_keys[i].name);
		memcpy(b, a, restart_keys[i].size);
	}
}

static void server_ace_reconfigure(struct server *srv, const struct ptv_config *cfg)
{
	struct ptv_acestream_opts ao;

	ptv_acestream_opts_from_config(cfg, &ao);
	if (ptv_acestream_reconfigure(srv->ace, &ao))
		ptv_warn("server", "acestream: invalid engine URL, keeping the previous one");
}

static void server_reload(struct server *srv)
{
	struct ptv_config next;
	char err[512];

	if (ptv_config_load(&next, srv->config_file, srv->ov, srv->n_ov, err, sizeof(err))) {
		ptv_error("config", "reload rejected, keeping the running configuration: %s", err);
		return;
	}
	restart_keys_keep(&srv->cfg, &next);
	srv->cfg = next;
	ptv_log_set_level(next.log_level);
	ptv_log_set_format(next.log_format);
	atomic_store(&srv->shared.max_open, next.max_connections);
	ptv_http_limits_from_config(&srv->limits, &next);
	ptv_relay_reconfigure(srv->relay, &next);
	server_ace_reconfigure(srv, &next);
	ptv_epg_svc_reconfigure(srv->epg, &next); /* EPG: [guide] settings */
	for (unsigned i = 0; i < srv->n; i++) {
		struct limits_task *lt = ptv_xmalloc(sizeof(*lt));

		lt->t = &srv->threads[i];
		lt->limits = srv->limits;
		ptv_reactor_post(srv->threads[i].r, thread_limits_task, lt);
	}
	ptv_info("config", "configuration reloaded (%s)",
		 srv->config_file ? srv->config_file
				  : (next.config_file[0] ? next.config_file : "no file"));
}

static int server_start_threads(struct server *srv, unsigned *started)
{
	int ret = 0;

	for (unsigned i = 0; i < srv->n; i++) {
		ret = -pthread_create(&srv->threads[i].tid, NULL, thread_main, &srv->threads[i]);
		if (ret)
			break;
		(*started)++;
	}
	pthread_mutex_lock(&srv->lock);
	while (srv->reported < *started)
		pthread_cond_wait(&srv->cond, &srv->lock);
	if (!ret)
		ret = srv->start_err;
	pthread_mutex_unlock(&srv->lock);
	return ret;
}

static void server_wait_signals(struct server *srv, const sigset_t *set)
{
	/* The main thread is also the supervisor: about once a second it looks for lineup
	 * changes (other processes' imports) and due source refreshes. */
	struct timespec tick = {.tv_sec = 1};

	for (;;) {
		int sig = sigtimedwait(set, NULL, &tick);

		if (sig < 0) {
			ptv_lineup_svc_tick(srv->lineup);
			ptv_epg_svc_tick(srv->epg); /* EPG: due guide refreshes, pruning */
			continue;
		}
		if (sig == SIGHUP) {
			server_reload(srv);
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			ptv_info("server", "%s: shutting down", strsignal(sig));
			return;
		}
	}
}

static void server_raise_nofile(void)
{
	struct rlimit rl;

	/* Every client is a descriptor; the soft default of 1024 is far too low for a relay. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int server_open_store(struct server *srv)
{
	struct ptv_store_opts so = {0};
	int ret = ptv_store_open(srv->cfg.data_dir, &so, &srv->store);

	if (ret)
		ptv_error("server", "cannot open the store in %s: %s", srv->cfg.data_dir,
			  ptv_strerror(ret));
	return ret;
}

/* The engine client: its calls block, so the relay makes them on the pool (acestream.h). */
static int server_ace_start(struct server *srv, const struct ptv_config *cfg)
{
	struct ptv_acestream_opts ao;
	int ret;

	ptv_acestream_opts_from_config(cfg, &ao);
	ret = ptv_acestream_new(&ao, &srv->ace);
	if (!ret)
		ret = ptv_acestream_monitor_start(srv->ace);
	if (ret)
		ptv_error("server", "cannot start the Acestream engine client: %s",
			  ptv_strerror(ret));
	return ret;
}

static int server_init(struct server *srv, const struct ptv_config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int ret;

	srv->cfg = *cfg;
	srv->n = cfg->workers ? cfg->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
	srv->threads = ptv_xcalloc(srv->n, sizeof(*srv->threads));
	for (unsigned i = 0; i < srv->n; i++) {
		srv->threads[i].srv = srv;
		srv->threads[i].index = i;
		srv->threads[i].listen_fd = -1;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	snprintf(srv->server_header, sizeof(srv->server_header), "PlexTV/%s", PTV_VERSION);
	srv->shared.server_header = srv->server_header;
	atomic_init(&srv->shared.open, 0);
	atomic_init(&srv->shared.max_open, cfg->max_connections);
	ptv_http_limits_from_config(&srv->limits, cfg);
	ptv_metrics_process_register();
	ptv_ops_build_info("io_uring");
	ret = ptv_pool_new(cfg->pool_threads, &srv->pool);
	if (!ret)
		ret = server_open_store(srv);
	if (!ret)
		ret = ptv_lineup_svc_new(cfg, srv->store, srv->pool, &srv->lineup);
	if (!ret)
		ret = ptv_router_new(&srv->router);
	if (!ret)
		ret = ptv_ops_routes_register(srv->router, srv->pool);
	if (!ret)
		ret = server_ace_start(srv, cfg);
	if (!ret)
		ret = ptv_relay_new(cfg, srv->pool, srv->n, &srv->relay);
	if (!ret)
		ptv_relay_set_acestream(srv->relay, srv->ace);
	if (!ret)
		ret = ptv_relay_routes_register(srv->relay, srv->router);
	if (!ret) {
		struct ptv_hdhr_hooks hooks = {ptv_relay_hook_tune, ptv_relay_hook_status,
					       srv->relay};

		ret = ptv_hdhr_routes_register(srv->router, srv->lineup, &hooks, &srv->hdhr);
	}
	if (!ret) {
		struct ptv_discovery_deps dd = {&srv->cfg, srv->lineup, srv->router, &srv->shared,
						&srv->limits};

		ret = ptv_discovery_new(&dd, &srv->disc);
	}
	/* EPG (issue 6): the guide service and /xmltv.xml(.gz). */
	if (!ret)
		ret = ptv_epg_svc_new(cfg, srv->store, srv->pool, &srv->epg);
	if (!ret)
		ret = ptv_epg_routes_register(srv->router, srv->epg);
	return ret;
}

static void server_deinit(struct server *srv)
{
	/* The pool first: its jobs may post answers to reactors, which still exist. */
	ptv_pool_free(srv->pool);
	server_free_threads(srv);
	ptv_discovery_free(srv->disc); /* after the rings: its receives pointed into it */
	ptv_relay_free(srv->relay);    /* after the rings: no read may land in a freed chunk */
	ptv_acestream_free(srv->ace);  /* after the relay: stops sessions it did not release */
	ptv_router_free(srv->router);
	ptv_hdhr_free(srv->hdhr);
	ptv_lineup_svc_free(srv->lineup);
	ptv_epg_svc_free(srv->epg); /* EPG: after the pool, whose jobs use it */
	ptv_store_close(srv->store);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
}

int ptv_server_run(const struct ptv_config *cfg, const char *config_file,
		   const struct ptv_config_override *ov, size_t n_ov)
{
	struct server srv = {.config_file = config_file, .ov = ov, .n_ov = n_ov};
	unsigned started = 0;
	sigset_t set;
	int ret;

	/* Blocked before any thread exists so that only the main thread receives them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	server_raise_nofile();
	ptv_log_set_level(cfg->log_level);
	ptv_log_set_format(cfg->log_format);
	ptv_log_async_start(8192);

	ret = server_init(&srv, cfg);
	if (!ret)
		ret = server_listen_all(&srv);
	if (!ret)
		ret = server_start_threads(&srv, &started);
	if (ret) {
		explain_uring_error(ret == -EADDRINUSE || ret == -PTV_ERR_CONFIG ? 0 : ret);
		server_stop_threads(&srv, started, false);
		goto out;
	}
	ptv_info("server", "listening on http://%s (%u reactors, %u pool threads, PlexTV %s)",
		 srv.cfg.listen, srv.n, srv.cfg.pool_threads, PTV_VERSION);
	server_wait_signals(&srv, &set);
	if (!server_stop_threads(&srv, srv.n, true)) {
		ptv_error("server", "a reactor did not stop; exiting without cleanup");
		ptv_log_async_stop();
		_exit(0);
	}
	ptv_info("server", "stopped");
out:
	server_deinit(&srv);
	ptv_log_async_stop();
	return ret;
}
