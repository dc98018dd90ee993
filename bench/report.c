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

#include "bench.h"

#define REPORT_MAX 4096

struct report {
	const char *in;
	const char *out;
	json_t *fanout[REPORT_MAX];
	json_t *http[REPORT_MAX];
	size_t nf, nh;
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

static int cmp_fanout(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(jstr(x, "relay"), jstr(y, "relay"));

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
		else
			json_decref(j);
	}
	closedir(d);
	qsort(r->fanout, r->nf, sizeof(json_t *), cmp_fanout);
}

static void report_fanout_md(const struct report *r, struct ptv_buf *md)
{
	size_t i;

	ptv_buf_puts(md,
		     "## Fan-out (B1)\n\n| relay | clients | Mbit/s | delivered min / p1 / p50 "
		     "Mbit/s | total Gbit/s | relay CPU % | Gbit/s per relay CPU | relay RSS "
		     "MiB | client CPU s | host CPU % | stalls | CC err | dropped | TTFB p50 / p95 "
		     "ms | date |\n"
		     "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
	for (i = 0; i < r->nf; i++) {
		const json_t *j = r->fanout[i];

		ptv_buf_printf(
			md,
			"| %s | %.0f | %.1f | %.3f / %.3f / %.3f | %.3f | %.1f | %.2f | %.1f | "
			"%.2f | %.0f | %.0f | %.0f | %.0f | %.1f / %.1f | %s |\n",
			jstr(j, "relay"), jnum(j, "clients"), jnum(j, "bitrate_mbps"),
			jnum(j, "delivered_mbps_min"), jnum(j, "delivered_mbps_p1"),
			jnum(j, "delivered_mbps_p50"), jnum(j, "delivered_gbps_total"),
			jnum(j, "relay_cpu_pct"), jnum(j, "gbps_per_relay_cpu"),
			jnum(j, "rss_bytes") / 1048576, jnum(j, "client_cpu_seconds"),
			jnum(j, "host_cpu_pct"), jnum(j, "stalls"), jnum(j, "cc_errors"),
			jnum(j, "dropped"), jnum(j, "ttfb_ms_p50"), jnum(j, "ttfb_ms_p95"),
			jstr(j, "date"));
	}
}

static void report_http_md(const struct report *r, struct ptv_buf *md)
{
	size_t i, k;

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

		if (jnum(j, "bitrate_mbps") != mbps)
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
	ptv_buf_free(&md);
	return ret ? BENCH_EX_FAIL : BENCH_EX_OK;
}
