/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * plextv-bench: benchmark scenarios for PlexTV and its peers on loopback. See bench/README.md.
 * Each subcommand is a scenario with a bounded duration that starts and stops what it needs.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

struct bench_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

static const struct bench_cmd bench_cmds[] = {
	{"http", bench_cmd_http, "req/s and latency of GET /health and a 1 KiB body vs nginx"},
	{"fanout", bench_cmd_fanout, "one channel to N clients through a relay (B1)"},
	{"source", bench_cmd_source, "the paced TS source on its own (used by fanout)"},
	{"tune", bench_cmd_tune, "warm and cold time to first byte and first decodable TS (B4)"},
	{"slow", bench_cmd_slow, "slow and stalled viewers beside healthy ones (B3)"},
	{"churn", bench_cmd_churn, "viewers joining and leaving at a rate; tuner release (B5)"},
	{"api", bench_cmd_api, "discover.json / lineup.json req/s vs nginx while streams run (B6)"},
	{"lineup", bench_cmd_lineup, "100k-entry M3U import and /lineup.json (B7)"},
	{"epg", bench_cmd_epg, "1,000 x 1,000 XMLTV import and /xmltv.xml output rate"},
	{"zerocopy", bench_cmd_zerocopy, "fan-out with --send-mode send vs zc vs splice (B8)"},
	{"bpf", bench_cmd_bpf, "fan-out with --bpf auto vs off (B9)"},
	{"all", bench_cmd_all, "every scenario (short), then the report"},
	{"report", bench_cmd_report, "Markdown table and gnuplot PNGs from a folder of results"},
	{"plextv-httpd", bench_cmd_plextv_httpd,
	 "(internal) PlexTV's HTTP stack with a 1 KiB route"},
};

static void bench_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: plextv-bench COMMAND [OPTIONS]   (COMMAND --help for its options)\n");
	for (i = 0; i < PTV_ARRAY_SIZE(bench_cmds); i++)
		fprintf(f, "  %-8s %s\n", bench_cmds[i].name, bench_cmds[i].help);
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		bench_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? BENCH_EX_USAGE : BENCH_EX_OK;
	}
	bench_signals_install();
	for (i = 0; i < PTV_ARRAY_SIZE(bench_cmds); i++) {
		if (!strcmp(argv[1], bench_cmds[i].name))
			return bench_cmds[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "plextv-bench: unknown command '%s'\n", argv[1]);
	bench_usage(stderr);
	return BENCH_EX_USAGE;
}
