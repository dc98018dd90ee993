/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The lineup service in `plextv serve` (see lineup_svc.h). Snapshots are built on the pool and
 * handed to each reactor through its inbox, so reactors read their own pointer without locks.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lineup_int.h"
#include "plextv/epg.h"
#include "plextv/log.h"
#include "plextv/lineup_svc.h"
#include "plextv/metrics.h"
#include "plextv/reactor.h"
#include "plextv/sources.h"
#include "plextv/store.h"
#include "plextv/workers.h"

#define LINEUP_MAX_REACTORS 256

struct ptv_lineup_svc {
	struct ptv_store *store;
	struct ptv_pool *pool;
	char base_url[512];
	char friendly_name[64];
	char demo_dir[4096];
	struct lineup_build_opts opts;

	pthread_mutex_t lock; /* current, reactors */
	struct ptv_lineup *current;
	struct ptv_reactor *reactors[LINEUP_MAX_REACTORS];
	unsigned n_reactors;

	atomic_bool rebuilding;
	atomic_bool scanning;
	atomic_uint scan_progress;
	atomic_uint scan_found;
	atomic_bool refreshing;
	uint64_t last_refresh_check_ms;

	struct ptv_metric *m_channels, *m_devices, *m_builds;
	struct ptv_metric_family *m_refresh;
};

/* ---- base URL ---- */

static bool default_route_iface(char *ifname, size_t len)
{
	FILE *f = fopen("/proc/net/route", "re");
	char line[256], name[IF_NAMESIZE + 1];
	unsigned long dest, flags;
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%16s %lx %*x %lx", name, &dest, &flags) == 3 && dest == 0 &&
		    (flags & 1 /* RTF_UP */)) {
			snprintf(ifname, len, "%s", name);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool iface_ipv4(const char *want, char *out, size_t len)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa))
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		struct sockaddr_in *sin = (struct sockaddr_in *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (want && strcmp(i->ifa_name, want))
			continue;
		inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len);
		found = true;
	}
	freeifaddrs(ifa);
	return found;
}

void ptv_lineup_base_url(const char *configured, const char *listen, char *out, size_t len)
{
	char host[128] = "", ifname[IF_NAMESIZE + 1];
	const char *colon = strrchr(listen, ':');
	const char *port = colon ? colon + 1 : "8080";
	size_t hlen = colon ? (size_t)(colon - listen) : 0;

	if (configured && configured[0]) {
		snprintf(out, len, "%s", configured);
		/* No trailing slash: paths are appended to it. */
		while (strlen(out) > 1 && out[strlen(out) - 1] == '/')
			out[strlen(out) - 1] = '\0';
		return;
	}
	if (hlen && hlen < sizeof(host)) {
		snprintf(host, sizeof(host), "%.*s", (int)hlen, listen);
		/* A specific listen address is the only one clients can reach. */
		if (strcmp(host, "0.0.0.0") && strcmp(host, "[::]") && strcmp(host, "::")) {
			snprintf(out, len, "http://%s:%s", host, port);
			return;
		}
	}
	if ((default_route_iface(ifname, sizeof(ifname)) &&
	     iface_ipv4(ifname, host, sizeof(host))) ||
	    iface_ipv4(NULL, host, sizeof(host))) {
		snprintf(out, len, "http://%s:%s", host, port);
		return;
	}
	ptv_warn("lineup", "no LAN address found: advertising 127.0.0.1; set --base-url");
	snprintf(out, len, "http://127.0.0.1:%s", port);
}

/* ---- publication ---- */

struct publish_task {
	struct ptv_reactor *r;
	struct ptv_lineup *l;
};

static void publish_on_reactor(void *arg)
{
	struct publish_task *t = arg;
	struct ptv_lineup *old = ptv_reactor_local(t->r, PTV_SLOT_LINEUP);

	ptv_reactor_set_local(t->r, PTV_SLOT_LINEUP, t->l);
	ptv_lineup_unref(old);
	free(t);
}

static void svc_publish(struct ptv_lineup_svc *svc, struct ptv_lineup *l)
{
	struct ptv_lineup *old;

	pthread_mutex_lock(&svc->lock);
	old = svc->current;
	svc->current = l;
	for (unsigned i = 0; i < svc->n_reactors; i++) {
		struct publish_task *t = ptv_xmalloc(sizeof(*t));

		t->r = svc->reactors[i];
		t->l = ptv_lineup_ref(l);
		ptv_reactor_post(t->r, publish_on_reactor, t);
	}
	pthread_mutex_unlock(&svc->lock);
	ptv_lineup_unref(old);
	ptv_metric_set(svc->m_channels, (double)l->n_channels);
	ptv_metric_set(svc->m_devices, (double)l->n_devices);
	ptv_metric_inc(svc->m_builds);
}

struct ptv_lineup *ptv_lineup_current(struct ptv_reactor *r)
{
	return ptv_reactor_local(r, PTV_SLOT_LINEUP);
}

void ptv_lineup_svc_attach(struct ptv_lineup_svc *svc, struct ptv_reactor *r)
{
	pthread_mutex_lock(&svc->lock);
	PTV_BUG_ON(svc->n_reactors == LINEUP_MAX_REACTORS);
	svc->reactors[svc->n_reactors++] = r;
	ptv_reactor_set_local(r, PTV_SLOT_LINEUP, ptv_lineup_ref(svc->current));
	pthread_mutex_unlock(&svc->lock);
}

void ptv_lineup_svc_detach(struct ptv_lineup_svc *svc, struct ptv_reactor *r)
{
	if (!svc)
		return;
	pthread_mutex_lock(&svc->lock);
	for (unsigned i = 0; i < svc->n_reactors; i++) {
		if (svc->reactors[i] == r) {
			svc->reactors[i] = svc->reactors[--svc->n_reactors];
			break;
		}
	}
	pthread_mutex_unlock(&svc->lock);
}

void ptv_lineup_svc_release(struct ptv_reactor *r)
{
	ptv_lineup_unref(ptv_reactor_local(r, PTV_SLOT_LINEUP));
	ptv_reactor_set_local(r, PTV_SLOT_LINEUP, NULL);
}

struct ptv_lineup *ptv_lineup_svc_get(struct ptv_lineup_svc *svc)
{
	struct ptv_lineup *l;

	pthread_mutex_lock(&svc->lock);
	l = ptv_lineup_ref(svc->current);
	pthread_mutex_unlock(&svc->lock);
	return l;
}

const char *ptv_lineup_svc_base_url(const struct ptv_lineup_svc *svc)
{
	return svc->base_url;
}

/* ---- rebuilding ---- */

static int svc_build(struct ptv_lineup_svc *svc)
{
	struct ptv_lineup *l;
	int ret = ptv_lineup_build(&svc->opts, &l);

	if (ret) {
		ptv_error("lineup", "could not build the lineup: %s (keeping the previous one)",
			  ptv_strerror(ret));
		return ret;
	}
	ptv_info("lineup", "lineup version %llu: %zu channels on %u device(s)",
		 (unsigned long long)l->version, l->n_channels, l->n_devices);
	svc_publish(svc, l);
	return 0;
}

static void rebuild_work(void *arg)
{
	struct ptv_lineup_svc *svc = arg;

	svc_build(svc);
	atomic_store(&svc->rebuilding, false);
}

static void refresh_one(uint32_t id, void *ctx)
{
	struct ptv_lineup_svc *svc = ctx;
	struct ptv_import_report rep;
	const char *labels[] = {NULL, NULL};
	char line[512], sid[16];
	int ret;

	/* EPG (issue 6): guide sources are refreshed by the guide service (epg_svc.c). */
	if (ptv_epg_is_guide_source(svc->store, id))
		return;
	ret = ptv_sources_refresh(svc->store, id, &rep);

	snprintf(sid, sizeof(sid), "%u", id);
	ptv_import_report_format(&rep, line, sizeof(line));
	if (ret)
		ptv_error("lineup", "source %u: refresh failed: %s; the previous lineup stays", id,
			  rep.error[0] ? rep.error : ptv_strerror(ret));
	else
		ptv_info("lineup", "source %u refreshed: %s", id, line);
	labels[0] = ret ? "error" : "ok";
	ptv_metric_inc(ptv_metric_get(svc->m_refresh, labels));
	atomic_fetch_add(&svc->scan_found, (unsigned)rep.channels);
	atomic_fetch_add(&svc->scan_progress, 1);
}

static void refresh_work(void *arg)
{
	struct ptv_lineup_svc *svc = arg;

	ptv_sources_each(svc->store, !atomic_load(&svc->scanning), ptv_wall_seconds(), refresh_one,
			 svc);
	atomic_store(&svc->scanning, false);
	atomic_store(&svc->refreshing, false);
}

void ptv_lineup_svc_tick(struct ptv_lineup_svc *svc)
{
	uint64_t v = ptv_store_version(svc->store, "lineup_version");
	struct ptv_lineup *cur = ptv_lineup_svc_get(svc);
	uint64_t now = ptv_now_ms();

	if (cur && v != cur->version && !atomic_exchange(&svc->rebuilding, true) &&
	    ptv_pool_submit(svc->pool, NULL, rebuild_work, NULL, svc))
		atomic_store(&svc->rebuilding, false);
	ptv_lineup_unref(cur);
	/* Scheduled refreshes: look once a minute which sources are due. */
	if (now - svc->last_refresh_check_ms >= 60000) {
		svc->last_refresh_check_ms = now;
		if (!atomic_exchange(&svc->refreshing, true) &&
		    ptv_pool_submit(svc->pool, NULL, refresh_work, NULL, svc))
			atomic_store(&svc->refreshing, false);
	}
}

bool ptv_lineup_svc_scan(struct ptv_lineup_svc *svc)
{
	if (atomic_exchange(&svc->refreshing, true))
		return false;
	atomic_store(&svc->scan_progress, 0);
	atomic_store(&svc->scan_found, 0);
	atomic_store(&svc->scanning, true);
	if (ptv_pool_submit(svc->pool, NULL, refresh_work, NULL, svc)) {
		atomic_store(&svc->scanning, false);
		atomic_store(&svc->refreshing, false);
		return false;
	}
	return true;
}

void ptv_lineup_svc_scan_state(struct ptv_lineup_svc *svc, bool *running, unsigned *progress,
			       unsigned *found)
{
	*running = atomic_load(&svc->scanning);
	*progress = atomic_load(&svc->scan_progress);
	*found = atomic_load(&svc->scan_found);
}

/* ---- lifecycle ---- */

int ptv_lineup_svc_new(const struct ptv_config *cfg, struct ptv_store *store, struct ptv_pool *pool,
		       struct ptv_lineup_svc **out)
{
	static const char *const res_labels[] = {"result", NULL};
	struct ptv_lineup_svc *svc = ptv_xcalloc(1, sizeof(*svc));
	int ret;

	pthread_mutex_init(&svc->lock, NULL);
	svc->store = store;
	svc->pool = pool;
	ptv_lineup_base_url(cfg->base_url, cfg->listen, svc->base_url, sizeof(svc->base_url));
	snprintf(svc->friendly_name, sizeof(svc->friendly_name), "%s", cfg->friendly_name);
	snprintf(svc->demo_dir, sizeof(svc->demo_dir), "%s", cfg->demo_dir);
	svc->opts.store = store;
	svc->opts.base_url = svc->base_url;
	svc->opts.friendly_name = svc->friendly_name;
	svc->opts.tuners = cfg->tuners;
	svc->opts.device_max = cfg->device_channels;
	svc->last_refresh_check_ms = ptv_now_ms();
	svc->m_channels = ptv_metric_simple("plextv_lineup_channels",
					    "Channels in the published lineup", PTV_METRIC_GAUGE);
	svc->m_devices = ptv_metric_simple("plextv_lineup_devices",
					   "Virtual HDHomeRun devices in the published lineup",
					   PTV_METRIC_GAUGE);
	svc->m_builds =
		ptv_metric_simple("plextv_lineup_builds_total",
				  "Lineup snapshots built and published", PTV_METRIC_COUNTER);
	svc->m_refresh = ptv_metrics_family("plextv_source_refresh_total",
					    "Scheduled or requested source refreshes, by result",
					    PTV_METRIC_COUNTER, res_labels, NULL, 0, 4);
	if (cfg->demo_dir[0])
		ptv_sources_seed_demo(store, cfg->demo_dir);
	ret = svc_build(svc);
	if (ret) {
		ptv_lineup_svc_free(svc);
		return ret;
	}
	ptv_info("lineup", "advertising %s (set --base-url to change)", svc->base_url);
	*out = svc;
	return 0;
}

void ptv_lineup_svc_free(struct ptv_lineup_svc *svc)
{
	if (!svc)
		return;
	ptv_lineup_unref(svc->current);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}
