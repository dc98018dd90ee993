/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv-bench report DIR [--out DIR]`: turns a folder of JSON results into a Markdown table
 * (report.md, also printed) and, when gnuplot is installed, PNG plots of delivered Gbit/s and
 * relay CPU against the client count, one line per relay and one plot per bitrate.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "bench.h"

#define REPORT_MAX 4096

struct report {
	const char *in;
	const char *out;
	json_t *fanout[REPORT_MAX];
	json_t *http[REPORT_MAX];
	json_t *other[REPORT_MAX]; /* tune, slow, churn, api, lineup, epg, zerocopy, bpf */
	size_t nf, nh, no;
};

static double jnum(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "?";
}

/* plextv rows differ by send mode and eBPF: "" for the default run, else "zc", "bpf=auto"... */
static const char *fanout_variant(const json_t *j)
{
	static __thread char buf[64];
	const char *m = json_string_value(json_object_get(j, "send_mode"));
	const char *b = json_string_value(json_object_get(j, "bpf"));

	snprintf(buf, sizeof(buf), "%s%s%s%s", m ? "mode=" : "", m ? m : "",
		 b ? (m ? " bpf=" : "bpf=") : "", b ? b : "");
	return buf;
}

static bool fanout_is_default(const json_t *j)
{
	return !json_string_value(json_object_get(j, "send_mode")) &&
	       !json_string_value(json_object_get(j, "bpf"));
}

static int cmp_fanout(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(jstr(x, "relay"), jstr(y, "relay"));

	if (c)
		return c;
	c = strcmp(fanout_variant(x), fanout_variant(y));
	if (c)
		return c;
	if (jnum(x, "bitrate_mbps") != jnum(y, "bitrate_mbps"))
		return jnum(x, "bitrate_mbps") < jnum(y, "bitrate_mbps") ? -1 : 1;
	return (jnum(x, "clients") > jnum(y, "clients")) -
	       (jnum(x, "clients") < jnum(y, "clients"));
}

static void report_load(struct report *r)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(r->in);
	json_t *j;
	size_t len;

	if (!d)
		return;
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", r->in, de->d_name);
		j = json_load_file(path, 0, NULL);
		if (!j)
			continue;
		if (!strcmp(jstr(j, "scenario"), "fanout") && r->nf < REPORT_MAX)
			r->fanout[r->nf++] = j;
		else if (!strcmp(jstr(j, "scenario"), "http") && r->nh < REPORT_MAX)
			r->http[r->nh++] = j;
		else if (r->no < REPORT_MAX)
			r->other[r->no++] = j;
		else
			json_decref(j);
	}
	closedir(d);
	qsort(r->fanout, r->nf, sizeof(json_t *), cmp_fanout);
}

static double jdate(const json_t *j)
{
	struct tm tm = {0};

	if (sscanf(jstr(j, "date"), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return NAN;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm);
}

/* Among rows of @relay at @p's clients and bitrate, the one measured closest in time to @p. */
static bool nearest_peer(const struct report *r, const json_t *p, const json_t *q)
{
	size_t k;

	for (k = 0; k < r->nf; k++) {
		const json_t *o = r->fanout[k];

		if (o != q && !strcmp(jstr(o, "relay"), jstr(q, "relay")) &&
		    jnum(o, "clients") == jnum(p, "clients") &&
		    jnum(o, "bitrate_mbps") == jnum(p, "bitrate_mbps") &&
		    fabs(jdate(o) - jdate(p)) < fabs(jdate(q) - jdate(p)))
			return false;
	}
	return true;
}

/* plextv (default run) vs each peer at the same clients and bitrate: Gbit/s per relay CPU. */
static void report_ratios_md(const struct report *r, struct ptv_buf *md)
{
	size_t i, k;
	bool head = false;

	for (i = 0; i < r->nf; i++) {
		const json_t *p = r->fanout[i];

		if (strcmp(jstr(p, "relay"), "plextv") || !fanout_is_default(p))
			continue;
		for (k = 0; k < r->nf; k++) {
			const json_t *q = r->fanout[k];

			if (!strcmp(jstr(q, "relay"), "plextv") ||
			    !strcmp(jstr(q, "relay"), "direct") ||
			    jnum(q, "clients") != jnum(p, "clients") ||
			    jnum(q, "bitrate_mbps") != jnum(p, "bitrate_mbps") ||
			    !nearest_peer(r, p, q))
				continue;
			if (!head)
				ptv_buf_puts(md,
					     "\n### plextv vs peers (same clients; each plextv row "
					     "against the peer row measured closest in time)\n\n"
					     "| clients | Mbit/s | plextv date | peer | plextv "
					     "Gbit/s per "
					     "relay CPU | peer's | ratio | relay CPU % plextv / "
					     "peer | min delivered Mbit/s plextv / peer |\n"
					     "|---:|---:|---|---|---:|---:|---:|---|---|\n");
			head = true;
			ptv_buf_printf(
				md,
				"| %.0f | %.1f | %s | %s | %.2f | %.2f | %.2f | %.1f / %.1f | "
				"%.3f / %.3f |\n",
				jnum(p, "clients"), jnum(p, "bitrate_mbps"), jstr(p, "date"),
				jstr(q, "relay"), jnum(p, "gbps_per_relay_cpu"),
				jnum(q, "gbps_per_relay_cpu"),
				jnum(p, "gbps_per_relay_cpu") / jnum(q, "gbps_per_relay_cpu"),
				jnum(p, "relay_cpu_pct"), jnum(q, "relay_cpu_pct"),
				jnum(p, "delivered_mbps_min"), jnum(q, "delivered_mbps_min"));
		}
	}
}

static const json_t *jobj(const json_t *o, const char *k)
{
	return json_object_get(o, k);
}

static void report_other_md(const struct report *r, struct ptv_buf *md)
{
	size_t i, k;

	for (i = 0; i < r->no; i++) {
		const json_t *j = r->other[i];
		const char *sc = jstr(j, "scenario");

		if (!strcmp(sc, "tune")) {
			const json_t *c = jobj(j, "cold"), *w = jobj(j, "warm");

			ptv_buf_printf(md,
				       "\n## Tune (B4), %s, load %.2f\n\n| | tunes | headers p50 "
				       "/ p95 ms | first byte p50 / p95 ms | first decodable "
				       "(PAT+PMT+keyframe) p50 / p95 / max ms | failures |\n"
				       "|---|---:|---|---|---|---:|\n",
				       jstr(j, "date"), jnum(j, "loadavg_1m"));
			for (k = 0; k < 2; k++) {
				const json_t *x = k ? w : c;

				ptv_buf_printf(md,
					       "| %s | %.0f | %.1f / %.1f | %.1f / %.1f | %.1f / "
					       "%.1f / %.1f | %.0f |\n",
					       k ? "warm" : "cold", jnum(x, "tunes"),
					       jnum(x, "headers_ms_p50"), jnum(x, "headers_ms_p95"),
					       jnum(x, "ttfb_ms_p50"), jnum(x, "ttfb_ms_p95"),
					       jnum(x, "decodable_ms_p50"),
					       jnum(x, "decodable_ms_p95"),
					       jnum(x, "decodable_ms_max"), jnum(x, "failures"));
			}
		} else if (!strcmp(sc, "slow")) {
			const json_t *h = jobj(j, "healthy"), *b = jobj(j, "bad_clients");

			ptv_buf_printf(md,
				       "\n## Slow viewers (B3), %s, load %.2f\n\n%.0f healthy "
				       "viewers at %.1f Mbit/s (upstream %.3f), write timeout %.0f "
				       "ms: healthy delivered min / p50 %.3f / %.3f Mbit/s, below "
				       "99.9 %% of upstream %.0f, stalls %.0f, CC errors %.0f, "
				       "dropped %.0f. Relay: resyncs %.0f (first after %.2f s), "
				       "evictions %.0f (first after %.2f s).\n\n| bad viewer | "
				       "closed seen by client after s | got Mbit/s |\n|---|---:|"
				       "---:|\n",
				       jstr(j, "date"), jnum(j, "loadavg_1m"), jnum(j, "clients"),
				       jnum(j, "bitrate_mbps"), jnum(j, "upstream_mbps"),
				       jnum(j, "write_timeout_ms"), jnum(h, "delivered_mbps_min"),
				       jnum(h, "delivered_mbps_p50"),
				       jnum(h, "clients_below_99_9pct_of_upstream"),
				       jnum(h, "stalls"), jnum(h, "cc_errors"), jnum(h, "dropped"),
				       jnum(j, "resyncs"), jnum(j, "first_resync_after_s"),
				       jnum(j, "evictions"), jnum(j, "first_eviction_after_s"));
			for (k = 0; k < json_array_size(b); k++)
				ptv_buf_printf(
					md, "| %s | %.2f | %.3f |\n",
					jstr(json_array_get(b, k), "kind"),
					jnum(json_array_get(b, k), "closed_by_relay_after_s"),
					jnum(json_array_get(b, k), "delivered_mbps"));
		} else if (!strcmp(sc, "churn")) {
			const json_t *s = jobj(j, "steady");

			ptv_buf_printf(
				md,
				"\n## Churn (B5), %s, load %.2f\n\n%.0f steady viewers + "
				"%.0f joins/s for %.0f s: joined %.0f, failed %.0f, no data "
				"%.0f; steady min %.3f Mbit/s (upstream %.3f), stalls %.0f, "
				"CC errors %.0f; relay fds %.0f -> %.0f (idle after %.0f), "
				"RSS %.1f -> %.1f MiB; viewers after %.0f; tuner released "
				"%.0f ms after the last viewer (linger %.0f ms).\n",
				jstr(j, "date"), jnum(j, "loadavg_1m"), jnum(j, "steady_clients"),
				jnum(j, "churn_rate_per_s"), jnum(j, "duration_s"),
				jnum(j, "churn_joined"), jnum(j, "churn_failed"),
				jnum(j, "churn_no_data"), jnum(s, "delivered_mbps_min"),
				jnum(j, "upstream_mbps"), jnum(s, "stalls"), jnum(s, "cc_errors"),
				jnum(j, "relay_fds_start"), jnum(j, "relay_fds_end_of_churn"),
				jnum(j, "relay_fds_idle_after"),
				jnum(j, "relay_rss_start") / 1048576,
				jnum(j, "relay_rss_end") / 1048576, jnum(j, "viewers_after"),
				jnum(j, "tuner_release_ms_after_last_viewer"),
				jnum(j, "linger_ms"));
		} else if (!strcmp(sc, "api")) {
			const json_t *rows = jobj(j, "results"), *s = jobj(j, "streams");

			ptv_buf_printf(md,
				       "\n## API (B6), %s, load %.2f, wrk -t1 -c%.0f, %.0f viewers "
				       "streaming meanwhile\n\n| server | path | bytes | req/s | "
				       "p50 ms | p99 ms | server CPU s |\n|---|---|---:|---:|---:|"
				       "---:|---:|\n",
				       jstr(j, "date"), jnum(j, "loadavg_1m"),
				       jnum(j, "connections"), jnum(j, "stream_clients"));
			for (k = 0; k < json_array_size(rows); k++) {
				const json_t *w = json_array_get(rows, k);

				ptv_buf_printf(
					md, "| %s | %s | %.0f | %.0f | %.3f | %.3f | %.2f |\n",
					jstr(w, "server"), jstr(w, "path"), jnum(w, "body_bytes"),
					jnum(w, "requests_per_s"), jnum(w, "latency_ms_p50"),
					jnum(w, "latency_ms_p99"), jnum(w, "server_cpu_seconds"));
			}
			ptv_buf_printf(md,
				       "\nRatio plextv/nginx req/s: /discover.json %.3f, "
				       "/lineup.json %.3f. Streams meanwhile: min %.3f Mbit/s "
				       "(upstream %.3f), below 99.9 %% %.0f, stalls %.0f.\n",
				       jnum(j, "ratio_discover_rps"), jnum(j, "ratio_lineup_rps"),
				       jnum(s, "delivered_mbps_min"), jnum(j, "upstream_mbps"),
				       jnum(s, "clients_below_99_9pct_of_upstream"),
				       jnum(s, "stalls"));
		} else if (!strcmp(sc, "lineup")) {
			const json_t *w = jobj(j, "wrk"), *s = jobj(j, "streams");

			ptv_buf_printf(
				md,
				"\n## 100k lineup (B7), %s, load %.2f\n\n%.0f entries: "
				"`plextv import m3u` %.3f s, peak RSS %.1f MiB. "
				"/lineup.json (%.0f bytes, one device): %.1f req/s, p50 %.2f "
				"ms, p99 %.2f ms. Longest reactor turn since start %.3f ms "
				"(%.3f ms before the load); turns > 5 ms during it: %.0f. "
				"Streams meanwhile: min %.3f Mbit/s (upstream %.3f), stalls "
				"%.0f.\n",
				jstr(j, "date"), jnum(j, "loadavg_1m"), jnum(j, "entries"),
				jnum(j, "import_s"), jnum(j, "import_peak_rss_bytes") / 1048576,
				jnum(j, "lineup_json_bytes"), jnum(w, "requests_per_s"),
				jnum(w, "latency_ms_p50"), jnum(w, "latency_ms_p99"),
				jnum(j, "reactor_turn_max_s_after") * 1e3,
				jnum(j, "reactor_turn_max_s_before") * 1e3,
				jnum(j, "reactor_turns_over_5ms_during"),
				jnum(s, "delivered_mbps_min"), jnum(j, "upstream_mbps"),
				jnum(s, "stalls"));
		} else if (!strcmp(sc, "epg")) {
			ptv_buf_printf(md,
				       "\n## Guide, %s, load %.2f\n\n%.0f channels x %.0f "
				       "programmes (%.0f MB XMLTV): `plextv import xmltv` %.2f s, "
				       "peak RSS %.1f MiB, %.0f programmes stored; /xmltv.xml %.1f "
				       "MB at %.1f MB/s (best of 3).\n",
				       jstr(j, "date"), jnum(j, "loadavg_1m"), jnum(j, "channels"),
				       jnum(j, "programmes_per_channel"),
				       jnum(j, "xmltv_input_bytes") / 1e6, jnum(j, "import_s"),
				       jnum(j, "import_peak_rss_bytes") / 1048576,
				       jnum(j, "programmes_stored"),
				       jnum(j, "xmltv_output_bytes") / 1e6,
				       jnum(j, "xmltv_output_mb_per_s_best"));
		}
	}
}

static void report_fanout_md(const struct report *r, struct ptv_buf *md)
{
	size_t i;

	ptv_buf_puts(
		md,
		"## Fan-out (B1)\n\nplextv's \"upstream\" is what its ingest child really "
		"outputs (plextv_relay_upstream_bytes_total, least-squares slope over the "
		"window): the remux drops the source's stuffing, so it sits below the nominal "
		"bitrate; clients are judged against it. That counter moves in ingest-sized "
		"steps and is scraped every 250 ms, so it is known to about +-0.15 %; the "
		"clients' own rates are exact, so \"min % of p50\" (every client against the "
		"median client, all on one timeline) is the sharper 99.9 % check.\n\n"
		"| relay | variant | clients | Mbit/s | upstream Mbit/s | delivered min / p1 / p50 "
		"Mbit/s | min % of upstream / of p50 | below 99.9 % (nominal / upstream) | total "
		"Gbit/s "
		"| relay CPU % | Gbit/s per relay CPU | relay RSS "
		"MiB | client CPU s | host CPU % | stalls | CC err | dropped | TTFB p50 / p95 "
		"ms | load 1m | date |\n"
		"|---|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		"---:|---|---:|---|\n");
	for (i = 0; i < r->nf; i++) {
		const json_t *j = r->fanout[i];

		ptv_buf_printf(
			md,
			"| %s | %s | %.0f | %.1f | %.3f | %.3f / %.3f / %.3f | %.2f / %.2f | %.0f "
			"/ %.0f | "
			"%.3f | %.1f | %.2f | %.1f | "
			"%.2f | %.0f | %.0f | %.0f | %.0f | %.1f / %.1f | %.2f | %s |\n",
			jstr(j, "relay"), fanout_variant(j), jnum(j, "clients"),
			jnum(j, "bitrate_mbps"), jnum(j, "upstream_mbps"),
			jnum(j, "delivered_mbps_min"), jnum(j, "delivered_mbps_p1"),
			jnum(j, "delivered_mbps_p50"), jnum(j, "delivered_min_pct_of_upstream"),
			jnum(j, "delivered_mbps_min") / jnum(j, "delivered_mbps_p50") * 100,
			jnum(j, "clients_below_99_9pct"),
			jnum(j, "clients_below_99_9pct_of_upstream"),
			jnum(j, "delivered_gbps_total"), jnum(j, "relay_cpu_pct"),
			jnum(j, "gbps_per_relay_cpu"), jnum(j, "rss_bytes") / 1048576,
			jnum(j, "client_cpu_seconds"), jnum(j, "host_cpu_pct"), jnum(j, "stalls"),
			jnum(j, "cc_errors"), jnum(j, "dropped"), jnum(j, "ttfb_ms_p50"),
			jnum(j, "ttfb_ms_p95"), jnum(j, "loadavg_1m"), jstr(j, "date"));
	}
	report_ratios_md(r, md);
}

static void report_http_md(const struct report *r, struct ptv_buf *md)
{
	size_t i, k;

	if (!r->nh)
		return;
	ptv_buf_puts(md, "\n## HTTP (wrk, PlexTV vs nginx)\n\n| date | server | impl | path | "
			 "req/s | p50 ms | p99 ms | server CPU us/req |\n"
			 "|---|---|---|---|---:|---:|---:|---:|\n");
	for (i = 0; i < r->nh; i++) {
		const json_t *rows = json_object_get(r->http[i], "results");

		for (k = 0; k < json_array_size(rows); k++) {
			const json_t *w = json_array_get(rows, k);

			ptv_buf_printf(md, "| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.2f |\n",
				       jstr(r->http[i], "date"), jstr(w, "server"), jstr(w, "impl"),
				       jstr(w, "path"), jnum(w, "requests_per_s"),
				       jnum(w, "latency_ms_p50"), jnum(w, "latency_ms_p99"),
				       jnum(w, "server_cpu_us_per_request"));
		}
		ptv_buf_printf(
			md,
			"| | ratio plextv/nginx (req/s) | | /health %.3f, /discover.json %.3f, "
			"/bench/1k %.3f | | | | |\n",
			jnum(r->http[i], "ratio_health_rps"),
			jnum(r->http[i], "ratio_discover_rps"), jnum(r->http[i], "ratio_1k_rps"));
	}
}

/* Writes one data file per (relay, bitrate); returns how many plots lines it made. */
static int report_plot_data(const struct report *r, double mbps, struct ptv_buf *plot_gbps,
			    struct ptv_buf *plot_cpu)
{
	char path[PATH_MAX];
	const char *relay = NULL;
	FILE *f = NULL;
	int lines = 0;
	size_t i;

	for (i = 0; i < r->nf; i++) {
		const json_t *j = r->fanout[i];

		if (jnum(j, "bitrate_mbps") != mbps || !fanout_is_default(j))
			continue;
		if (!relay || strcmp(relay, jstr(j, "relay"))) {
			if (f)
				fclose(f);
			relay = jstr(j, "relay");
			snprintf(path, sizeof(path), "%s/fanout-%s-%g.dat", r->out, relay, mbps);
			f = fopen(path, "we");
			if (!f)
				return -errno;
			ptv_buf_printf(plot_gbps, "%s'%s' using 1:2 with linespoints title '%s'",
				       lines ? ", " : "plot ", path, relay);
			ptv_buf_printf(plot_cpu, "%s'%s' using 1:3 with linespoints title '%s'",
				       lines ? ", " : "plot ", path, relay);
			lines++;
		}
		fprintf(f, "%g %g %g\n", jnum(j, "clients"), jnum(j, "delivered_gbps_total"),
			jnum(j, "relay_cpu_pct"));
	}
	if (f)
		fclose(f);
	return lines;
}

static int report_gnuplot(const char *script_path)
{
	const char *argv[] = {"gnuplot", script_path, NULL};
	pid_t pid;
	int status, ret;

	ret = bench_spawn(argv, NULL, &pid);
	if (!ret)
		ret = bench_wait_exit(pid, 30000, &status);
	if (ret == -ETIMEDOUT)
		bench_stop(pid, 1000);
	return ret ? ret : WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -EIO;
}

static int report_plots(const struct report *r, struct ptv_buf *md)
{
	struct ptv_buf gp = {0}, pg = {0}, pc = {0};
	char script[PATH_MAX];
	double done[64];
	size_t i, k, nd = 0;
	int ret = 0;

	ptv_buf_puts(&gp, "set terminal png size 900,540\nset logscale xy\nset grid\n"
			  "set key left top\nset xlabel 'clients'\n");
	for (i = 0; i < r->nf && nd < PTV_ARRAY_SIZE(done); i++) {
		double mbps = jnum(r->fanout[i], "bitrate_mbps");

		for (k = 0; k < nd && done[k] != mbps; k++)
			;
		if (k < nd)
			continue;
		done[nd++] = mbps;
		ptv_buf_reset(&pg);
		ptv_buf_reset(&pc);
		if (report_plot_data(r, mbps, &pg, &pc) <= 0)
			continue;
		ptv_buf_printf(&gp,
			       "set output '%s/fanout-gbps-%g.png'\nset ylabel 'delivered "
			       "Gbit/s (%g Mbit/s per client)'\n%s\n",
			       r->out, mbps, mbps, pg.data);
		ptv_buf_printf(&gp,
			       "set output '%s/fanout-cpu-%g.png'\nset ylabel 'relay CPU %% "
			       "(%g Mbit/s per client)'\n%s\n",
			       r->out, mbps, mbps, pc.data);
		ptv_buf_printf(md,
			       "\n![delivered %g](fanout-gbps-%g.png) "
			       "![relay CPU %g](fanout-cpu-%g.png)\n",
			       mbps, mbps, mbps, mbps);
	}
	snprintf(script, sizeof(script), "%s/plots.gp", r->out);
	if (nd && !gp.oom)
		ret = bench_write_file(script, gp.data, gp.len);
	if (nd && !ret)
		ret = report_gnuplot(script);
	ptv_buf_free(&gp);
	ptv_buf_free(&pg);
	ptv_buf_free(&pc);
	return ret;
}

int bench_cmd_report(int argc, char **argv)
{
	static struct report r;
	struct ptv_buf md = {0};
	char path[PATH_MAX];
	size_t i;
	int ret = 0;

	if (argc == 4 && !strcmp(argv[2], "--out"))
		r.out = argv[3];
	else if (argc != 2) {
		fprintf(stderr, "usage: plextv-bench report DIR [--out DIR]\n");
		return BENCH_EX_USAGE;
	}
	r.in = argv[1];
	if (!r.out)
		r.out = r.in;
	if (mkdir(r.out, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "report: cannot create %s: %s\n", r.out, strerror(errno));
		return BENCH_EX_FAIL;
	}
	report_load(&r);
	ptv_buf_printf(&md, "# plextv-bench results (%zu fan-out, %zu http)\n\n", r.nf, r.nh);
	report_fanout_md(&r, &md);
	report_http_md(&r, &md);
	report_other_md(&r, &md);
	if (bench_have_program("gnuplot"))
		ret = report_plots(&r, &md);
	if (ret)
		fprintf(stderr, "report: plots failed: %s\n", ptv_strerror(ret));
	snprintf(path, sizeof(path), "%s/report.md", r.out);
	if (!md.oom && bench_write_file(path, md.data, md.len) == 0)
		fwrite(md.data, 1, md.len, stdout);
	else
		ret = -EIO;
	for (i = 0; i < r.nf; i++)
		json_decref(r.fanout[i]);
	for (i = 0; i < r.nh; i++)
		json_decref(r.http[i]);
	for (i = 0; i < r.no; i++)
		json_decref(r.other[i]);
	ptv_buf_free(&md);
	return ret ? BENCH_EX_FAIL : BENCH_EX_OK;
}
