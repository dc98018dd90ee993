/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Endless, continuity-clean TS from a file (or a generated stream) for the paced source.
 *
 * The file's natural bitrate R comes from its first PCR PID. To play it at another bitrate B the
 * loop rescales the whole timeline by R/B: PCR, PTS and DTS are rewritten with one affine map, so
 * they stay consistent with the byte rate (the content plays faster or slower than real time,
 * which no relay cares about). Each pass through the file adds the file's duration to every
 * timestamp, so PCR/PTS/DTS stay monotonic across the loop, and continuity counters are
 * renumbered per PID so the seam is invisible to a continuity check.
 *
 * A file without a usable PCR is sent at the given bitrate with its timestamps untouched (they
 * jump back at each loop; continuity counters are still renumbered).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_ts_file {
	uint8_t *data;
	size_t npkt;
	int pcr_pid;	    /* -1 when the file has no usable PCR */
	double rate_bps;    /* natural bitrate from the PCR, 0 without one */
	double t0_27m;	    /* PCR time of packet 0 (extrapolated), 27 MHz */
	double dur_27m;	    /* natural duration of one pass, 27 MHz */
	const char *origin; /* file path or "gen" */
};

/** Loads a TS file (whole packets only). Returns 0, -errno, or -PTV_ERR_PARSE. */
int bench_ts_file_load(const char *path, struct bench_ts_file *f);
/** Builds one second of a synthetic TS (PAT, PMT, one PES PID with PCR and PTS) at @bps. */
int bench_ts_file_generate(double bps, struct bench_ts_file *f);
void bench_ts_file_free(struct bench_ts_file *f);

struct bench_ts_loop {
	const struct bench_ts_file *f;
	double scale;	     /* output time per natural time: R / B */
	bool rewrite;	     /* timestamps are rewritten (file has a PCR) */
	uint64_t pass;	     /* how many times the file was sent completely */
	size_t idx;	     /* next packet of the file */
	uint64_t out_pkts;   /* packets produced */
	uint64_t cc_fault;   /* output packet index of a deliberate CC error; UINT64_MAX: none */
	uint64_t cc_faults;  /* faults actually injected */
	uint64_t sync_fault; /* output packet index whose sync byte is broken; UINT64_MAX: none */
	uint64_t sync_faults;
	uint8_t cc[8192]; /* per PID: bit 4 seen, low 4 bits last CC sent */
};

/** Prepares a loop at @out_bps (0: the file's own rate, which needs a PCR). */
int bench_ts_loop_init(struct bench_ts_loop *l, const struct bench_ts_file *f, double out_bps);
/** Writes the next 188-byte packet to @out. */
void bench_ts_loop_next(struct bench_ts_loop *l, uint8_t *out);
