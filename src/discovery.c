/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Discovery lifecycle: configuration, BPF, responders, port 80 (see discovery.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "plextv/bpf_loader.h"
#include "plextv/discovery.h"
#include "plextv/hdhr_disc.h"
#include "plextv/http.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/netfilter.h"
#include "plextv/reactor.h"
#include "plextv/ssdp.h"

struct ptv_discovery {
	struct ptv_discovery_deps deps;
	bool ssdp_on, hdhr_on;
	unsigned notify_interval;
	struct ptv_disc_reach reach;
	struct ptv_netfilter *nf;
	struct ptv_bpf_filter *bpf;
	bool accounting;

	struct ptv_reactor *r;
	struct ptv_ssdp *ssdp;
	struct ptv_hdhr_disc *hdhr;
	int port80_fd;
	struct ptv_http_server *http80;
	bool started, stopped;

	struct ptv_metric_family *f_egress, *f_ingress;
};

static int parse_onoff(const char *key, const char *v, bool *out)
{
	if (!strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcmp(v, "1")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
	    !strcmp(v, "0")) {
		*out = false;
		return 0;
	}
	ptv_error("config", "%s: '%s' is not on or off", key, v);
	return -PTV_ERR_CONFIG;
}

/* Where the HTTP server listens decides what discovery may advertise. */
static int parse_reach(struct ptv_discovery *d, const struct ptv_config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (ptv_config_parse_listen(cfg->listen, &ss, &len))
		return -PTV_ERR_CONFIG;
	d->reach.base_url_configured = cfg->base_url[0] != '\0';
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

		d->reach.listen_addr = sin->sin_addr.s_addr;
		d->reach.http_port = ntohs(sin->sin_port);
		return 0;
	}
	d->reach.http_port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
	d->reach.listen_addr = htonl(INADDR_ANY);
	if (!IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&ss)->sin6_addr) &&
	    !d->reach.base_url_configured) {
		/* SSDP and 65001 here are IPv4: an IPv6-only server has no URL to give. */
		ptv_warn("discovery", "listening on a specific IPv6 address: SSDP and HDHomeRun "
				      "discovery are off (set --base-url to advertise one)");
		d->ssdp_on = d->hdhr_on = false;
	}
	return 0;
}

static int parse_config(struct ptv_discovery *d, const struct ptv_config *cfg, bool *port80,
			enum ptv_bpf_mode *bpf)
{
	if (parse_onoff("ssdp", cfg->ssdp, &d->ssdp_on) ||
	    parse_onoff("hdhr_discovery", cfg->hdhr_discovery, &d->hdhr_on) ||
	    parse_onoff("http_port80", cfg->http_port80, port80))
		return -PTV_ERR_CONFIG;
	if (ptv_bpf_mode_parse(cfg->bpf, bpf)) {
		ptv_error("config", "bpf: '%s' is not auto, on or off", cfg->bpf);
		return -PTV_ERR_CONFIG;
	}
	d->notify_interval = cfg->ssdp_notify_interval;
	return parse_reach(d, cfg);
}

/* ---- BPF ---- */

static void bpf_metrics(struct ptv_discovery *d)
{
	static const char *const info_labels[] = {"filter", "accounting", NULL};
	const char *values[] = {d->bpf ? "bpf" : "userspace", d->accounting ? "bpf" : "off", NULL};
	struct ptv_metric_family *f;

	ptv_metric_set(ptv_metric_simple("plextv_bpf_enabled",
					 "1 when the eBPF programs are loaded, 0 on the fallback",
					 PTV_METRIC_GAUGE),
		       d->bpf || d->accounting ? 1 : 0);
	f = ptv_metrics_family("plextv_bpf_info",
			       "Which path filters discovery traffic and counts channel bytes",
			       PTV_METRIC_GAUGE, info_labels, NULL, 0, 4);
	ptv_metric_set(ptv_metric_get(f, values), 1);
}

static int bpf_load(struct ptv_discovery *d, enum ptv_bpf_mode mode)
{
	int ret;

	if (mode == PTV_BPF_MODE_OFF) {
		ptv_info("bpf", "off by configuration: user-space discovery filter, no kernel "
				"accounting");
		return 0;
	}
	/* With both responders off there is nothing to filter, but accounting still counts. */
	ret = d->ssdp_on || d->hdhr_on ? ptv_bpf_filter_open(&d->bpf) : 0;
	if (!ret) {
		ret = ptv_bpf_account_start(NULL);
		d->accounting = !ret;
	}
	if (ret && mode == PTV_BPF_MODE_ON) {
		ptv_error("bpf", "bpf = on but unavailable: %s", ptv_bpf_explain(ret));
		return ret;
	}
	/* The one line E1 asks for: whichever step failed, say what we fall back to. */
	if (!d->bpf)
		ptv_warn("bpf",
			 "eBPF unavailable (%s): user-space discovery filter, no kernel "
			 "accounting",
			 ptv_bpf_explain(ret));
	else if (!d->accounting)
		ptv_warn("bpf",
			 "eBPF accounting unavailable (%s: %s): kernel discovery filter only",
			 ptv_bpf_explain(ret), ptv_strerror(ret));
	else
		ptv_info("bpf", "eBPF loaded: kernel discovery filter and per-channel accounting");
	return 0;
}

static int collect_channel(uint32_t channel, const struct ptv_bpf_account_counts *c, void *arg)
{
	struct ptv_discovery *d = arg;
	char id[16];
	const char *values[] = {id, "bpf", NULL};

	snprintf(id, sizeof(id), "%u", channel);
	ptv_metric_set(ptv_metric_get(d->f_egress, values), (double)c->egress_bytes);
	ptv_metric_set(ptv_metric_get(d->f_ingress, values), (double)c->ingress_bytes);
	return 0;
}

/* Runs on the thread rendering /metrics: kernel counters are read here, not on a reactor. */
static void collect(void *arg)
{
	struct ptv_discovery *d = arg;

	ptv_netfilter_collect_bpf(d->nf);
	if (d->accounting)
		ptv_bpf_account_foreach(collect_channel, d);
}

static void metrics_init(struct ptv_discovery *d)
{
	static const char *const labels[] = {"channel", "source", NULL};

	/* Channels are bounded by the lineup and only those watched appear. */
	d->f_egress = ptv_metrics_family(PTV_CHANNEL_EGRESS_METRIC,
					 "Payload bytes sent to viewers per channel "
					 "(source: bpf = kernel, user = relay)",
					 PTV_METRIC_COUNTER, labels, NULL, 0, 8192);
	d->f_ingress = ptv_metrics_family(PTV_CHANNEL_INGRESS_METRIC,
					  "Payload bytes received from upstreams per channel "
					  "(source: bpf = kernel, user = relay)",
					  PTV_METRIC_COUNTER, labels, NULL, 0, 8192);
	bpf_metrics(d);
	ptv_metrics_collector_add(collect, d);
}

/* ---- port 80 ---- */

static void port80_open(struct ptv_discovery *d)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(80),
		.sin_addr.s_addr = d->reach.listen_addr,
	};
	int fd;

	if (d->reach.http_port == 80) {
		ptv_info("discovery", "http_port80: the server already listens on port 80");
		return;
	}
	fd = ptv_http_listen((struct sockaddr *)&sa, sizeof(sa));
	if (fd < 0) {
		/* Optional: say why Jellyfin's auto-discovery will not work and go on. */
		ptv_error("discovery",
			  "http_port80: cannot listen on port 80 (%s); Jellyfin "
			  "must be given the URL by hand",
			  ptv_strerror(fd));
		return;
	}
	d->port80_fd = fd;
}

int ptv_discovery_new(const struct ptv_discovery_deps *deps, struct ptv_discovery **out)
{
	struct ptv_discovery *d = ptv_xcalloc(1, sizeof(*d));
	struct ptv_netfilter_opts nfo = {0};
	enum ptv_bpf_mode mode;
	bool port80 = false;
	int ret;

	d->deps = *deps;
	d->port80_fd = -1;
	ret = parse_config(d, deps->cfg, &port80, &mode);
	if (ret)
		goto fail;
	nfo.allow_prefixes = deps->cfg->allow_prefixes;
	nfo.listen_addr = d->reach.listen_addr;
	ret = ptv_netfilter_new(&nfo, &d->nf);
	if (ret) {
		ptv_error("config",
			  "allow_prefixes: '%s' is not a list of IPv4 prefixes "
			  "(a.b.c.d/n, comma separated, at most %d)",
			  deps->cfg->allow_prefixes, PTV_DISC_MAX_PREFIX);
		ret = -PTV_ERR_CONFIG;
		goto fail;
	}
	ret = bpf_load(d, mode);
	if (ret)
		goto fail;
	if (d->bpf)
		ptv_netfilter_set_bpf(d->nf, d->bpf);
	if (port80)
		port80_open(d);
	metrics_init(d);
	*out = d;
	return 0;
fail:
	ptv_discovery_free(d);
	return ret;
}

/* ---- on the reactor ---- */

static void ifaces_changed(void *arg)
{
	struct ptv_discovery *d = arg;

	if (d->ssdp)
		ptv_ssdp_ifaces_changed(d->ssdp);
}

static void attach_filter(struct ptv_discovery *d, int fd, unsigned proto)
{
	int ret;

	if (!d->bpf)
		return;
	ret = ptv_bpf_filter_attach(d->bpf, fd, proto);
	if (ret)
		ptv_warn("bpf", "cannot attach the %s socket filter (%s): user-space check only",
			 ptv_disc_proto_name(proto), ptv_strerror(ret));
}

static void start_hdhr(struct ptv_discovery *d)
{
	int ret = ptv_hdhr_disc_start(d->r, d->nf, &d->reach, PTV_HDHR_PORT, &d->hdhr);

	if (ret) {
		ptv_warn("discovery", "HDHomeRun discovery off: cannot bind UDP %u: %s",
			 PTV_HDHR_PORT, ptv_strerror(ret));
		return;
	}
	attach_filter(d, ptv_hdhr_disc_fd(d->hdhr), PTV_DISC_HDHR);
}

static void start_ssdp(struct ptv_discovery *d)
{
	struct ptv_ssdp_opts o = {
		.reach = &d->reach,
		.port = PTV_SSDP_PORT,
		.notify_interval = d->notify_interval,
	};
	int ret = ptv_ssdp_start(d->r, d->nf, &o, &d->ssdp);

	if (ret) {
		ptv_warn("discovery", "SSDP off: cannot bind UDP %u: %s", PTV_SSDP_PORT,
			 ptv_strerror(ret));
		return;
	}
	attach_filter(d, ptv_ssdp_fd(d->ssdp), PTV_DISC_SSDP);
}

static void start_port80(struct ptv_discovery *d)
{
	int ret;

	if (d->port80_fd < 0)
		return;
	ret = ptv_http_server_new(d->r, d->deps.router, d->deps.http_shared, d->deps.http_limits,
				  d->port80_fd, &d->http80);
	if (!ret) {
		d->port80_fd = -1; /* the server owns it */
		ret = ptv_http_server_start(d->http80);
	}
	if (ret)
		ptv_error("discovery", "http_port80: %s", ptv_strerror(ret));
	else
		ptv_info("discovery", "also serving HTTP on port 80 (Jellyfin discovery)");
}

int ptv_discovery_start(struct ptv_discovery *d, struct ptv_reactor *r)
{
	int ret;

	d->r = r;
	d->started = true;
	start_port80(d);
	if (!d->ssdp_on && !d->hdhr_on)
		return 0;
	ret = ptv_netfilter_rescan(d->nf);
	if (ret)
		ptv_warn("discovery", "cannot list interfaces: %s", ptv_strerror(ret));
	ret = ptv_netfilter_watch(d->nf, r, ifaces_changed, d);
	if (ret)
		ptv_warn("discovery", "cannot watch interfaces (%s): the list read at start stays",
			 ptv_strerror(ret));
	if (d->hdhr_on)
		start_hdhr(d);
	if (d->ssdp_on)
		start_ssdp(d);
	ptv_info("discovery", "SSDP %s, HDHomeRun UDP %s, filter: %s",
		 d->ssdp ? "on (UDP 1900)" : "off", d->hdhr ? "on (65001)" : "off",
		 d->bpf ? "kernel (eBPF) + user space" : "user space");
	return 0;
}

void ptv_discovery_stop(struct ptv_discovery *d)
{
	if (!d || !d->started || d->stopped)
		return;
	d->stopped = true;
	ptv_ssdp_stop(d->ssdp);
	ptv_hdhr_disc_stop(d->hdhr);
	ptv_netfilter_unwatch(d->nf);
	if (d->http80)
		ptv_http_server_drain(d->http80);
}

void ptv_discovery_free(struct ptv_discovery *d)
{
	if (!d)
		return;
	ptv_ssdp_free(d->ssdp);
	ptv_hdhr_disc_free(d->hdhr);
	ptv_http_server_free(d->http80);
	if (d->port80_fd >= 0)
		close(d->port80_fd);
	ptv_netfilter_free(d->nf);
	ptv_bpf_filter_free(d->bpf);
	if (d->accounting)
		ptv_bpf_account_stop();
	free(d);
}
