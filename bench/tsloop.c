/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plextv/common.h"
#include "tscheck.h"
#include "tsloop.h"

#define PTS_WRAP    (1ull << 33)
#define GEN_PMT_PID 0x1000u
#define GEN_ES_PID  0x100u

static unsigned ts_pid(const uint8_t *p)
{
	return ((p[1] & 0x1fu) << 8) | p[2];
}

static bool ts_has_pcr(const uint8_t *p)
{
	return (p[3] & 0x20u) && p[4] >= 7 && (p[5] & 0x10u);
}

static uint64_t ts_pcr_get(const uint8_t *p)
{
	const uint8_t *b = p + 6;
	uint64_t base = ((uint64_t)b[0] << 25) | ((uint64_t)b[1] << 17) | ((uint64_t)b[2] << 9) |
			((uint64_t)b[3] << 1) | (b[4] >> 7);

	return base * 300u + (((b[4] & 1u) << 8) | b[5]);
}

static void ts_pcr_set(uint8_t *p, uint64_t pcr)
{
	uint64_t base = (pcr / 300u) % PTS_WRAP;
	unsigned ext = (unsigned)(pcr % 300u);
	uint8_t *b = p + 6;

	b[0] = (uint8_t)(base >> 25);
	b[1] = (uint8_t)(base >> 17);
	b[2] = (uint8_t)(base >> 9);
	b[3] = (uint8_t)(base >> 1);
	b[4] = (uint8_t)(((base & 1u) << 7) | 0x7eu | (ext >> 8));
	b[5] = (uint8_t)ext;
}

static uint64_t ts_pts_get(const uint8_t *b)
{
	return ((uint64_t)(b[0] & 0x0eu) << 29) | ((uint64_t)b[1] << 22) |
	       ((uint64_t)(b[2] & 0xfeu) << 14) | ((uint64_t)b[3] << 7) | (b[4] >> 1);
}

/* Keeps the 4-bit prefix and the marker bits of the field. */
static void ts_pts_set(uint8_t *b, uint64_t v)
{
	v %= PTS_WRAP;
	b[0] = (uint8_t)((b[0] & 0xf0u) | ((v >> 29) & 0x0eu) | 1u);
	b[1] = (uint8_t)(v >> 22);
	b[2] = (uint8_t)(((v >> 14) & 0xfeu) | 1u);
	b[3] = (uint8_t)(v >> 7);
	b[4] = (uint8_t)(((v << 1) & 0xfeu) | 1u);
}

/* Wrap-aware signed distance a - b for 33-bit counters. */
static int64_t ts_diff33(uint64_t a, uint64_t b)
{
	int64_t d = (int64_t)((a - b) % PTS_WRAP);

	if (d >= (int64_t)(PTS_WRAP / 2))
		d -= (int64_t)PTS_WRAP;
	return d;
}

/*
 * Offset of a PES header that starts in this packet; *@flags gets PTS_DTS_flags (0 when there
 * is no such header or it has no optional fields).
 */
static size_t ts_pes_header(const uint8_t *p, unsigned *flags)
{
	unsigned afc = (p[3] >> 4) & 3u, sid;
	size_t o = 4;

	*flags = 0;
	if (!(p[1] & 0x40u) || !(afc & 1u))
		return 0;
	if (afc & 2u)
		o += 1u + p[4];
	if (o + 14 > BENCH_TS_PKT || p[o] || p[o + 1] || p[o + 2] != 1)
		return 0;
	sid = p[o + 3];
	/* These stream ids have no optional PES header (13818-1 Table 2-21). */
	if (sid < 0xbd || sid == 0xbe || sid == 0xbf || (sid >= 0xf0 && sid <= 0xf2) ||
	    sid == 0xf8 || sid == 0xff)
		return 0;
	*flags = p[o + 7] >> 6;
	return o;
}

struct ts_pts_span {
	int64_t min, max; /* relative to the PID's first PTS, 90 kHz */
	uint64_t first;
	unsigned n;
};

/*
 * The loop period must cover every PID's PTS range plus one frame, or the next pass would
 * start below the previous one's last PTS (a cut capture's audio often leads its PCR). The
 * PCR then moves forward a little at the seam, which is harmless; going back is not.
 */
static double ts_file_pts_period(const struct bench_ts_file *f)
{
	static struct ts_pts_span span[8192];
	double period = 0;
	unsigned flags, pid;
	size_t i, o;

	memset(span, 0, sizeof(span));
	for (i = 0; i < f->npkt; i++) {
		const uint8_t *p = f->data + i * BENCH_TS_PKT;
		struct ts_pts_span *sp = &span[ts_pid(p)];
		int64_t v;

		o = ts_pes_header(p, &flags);
		if (!(flags & 2u))
			continue;
		if (!sp->n++)
			sp->first = ts_pts_get(p + o + 9);
		v = ts_diff33(ts_pts_get(p + o + 9), sp->first);
		sp->min = PTV_MIN(sp->min, v);
		sp->max = PTV_MAX(sp->max, v);
	}
	for (pid = 0; pid < 8192; pid++) {
		const struct ts_pts_span *sp = &span[pid];
		double range = (double)(sp->max - sp->min);

		if (sp->n >= 2)
			period = PTV_MAX(period, (range + range / (sp->n - 1)) * 300);
	}
	return period;
}

/*
 * Natural rate from the first and last PCR of the first PCR PID. Files whose PCR jumps
 * (discontinuities, corrupt captures) give an implausible rate and are treated as PCR-less.
 */
static void ts_file_probe_pcr(struct bench_ts_file *f)
{
	size_t i, first_i = 0, last_i = 0;
	uint64_t first = 0, last = 0;
	double secs;
	int pid = -1;

	for (i = 0; i < f->npkt; i++) {
		const uint8_t *p = f->data + i * BENCH_TS_PKT;

		if (!ts_has_pcr(p) || (pid >= 0 && (int)ts_pid(p) != pid))
			continue;
		if (pid < 0) {
			pid = (int)ts_pid(p);
			first_i = i;
			first = ts_pcr_get(p);
		}
		last_i = i;
		last = ts_pcr_get(p);
	}
	f->pcr_pid = -1;
	if (pid < 0 || last_i <= first_i)
		return;
	secs = (double)ts_diff33(last / 300u, first / 300u) / 90000.0;
	if (secs <= 0.01)
		return;
	f->rate_bps = (double)(last_i - first_i) * BENCH_TS_PKT * 8 / secs;
	if (f->rate_bps < 10e3 || f->rate_bps > 10e9) {
		f->rate_bps = 0;
		return;
	}
	f->pcr_pid = pid;
	f->t0_27m = (double)first - (double)first_i * BENCH_TS_PKT * 8 / f->rate_bps * 27e6;
	f->dur_27m = (double)f->npkt * BENCH_TS_PKT * 8 / f->rate_bps * 27e6;
	f->dur_27m = PTV_MAX(f->dur_27m, ts_file_pts_period(f));
}

static int ts_file_read(int fd, struct bench_ts_file *f)
{
	struct stat st;
	size_t want, got = 0;
	ssize_t r;

	if (fstat(fd, &st) == -1)
		return -errno;
	f->npkt = (size_t)st.st_size / BENCH_TS_PKT;
	if (f->npkt < 2)
		return -PTV_ERR_PARSE;
	want = f->npkt * BENCH_TS_PKT;
	f->data = malloc(want);
	if (!f->data)
		return -ENOMEM;
	while (got < want) {
		r = read(fd, f->data + got, want - got);
		if (r <= 0)
			return r == 0 ? -EIO : -errno;
		got += (size_t)r;
	}
	return 0;
}

int bench_ts_file_load(const char *path, struct bench_ts_file *f)
{
	int fd, ret;
	size_t i;

	memset(f, 0, sizeof(*f));
	f->origin = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	ret = ts_file_read(fd, f);
	close(fd);
	if (ret)
		goto err;
	for (i = 0; i < f->npkt; i++) {
		if (f->data[i * BENCH_TS_PKT] != 0x47) {
			ret = -PTV_ERR_PARSE;
			goto err;
		}
	}
	ts_file_probe_pcr(f);
	return 0;
err:
	bench_ts_file_free(f);
	return ret;
}

void bench_ts_file_free(struct bench_ts_file *f)
{
	ptv_freep(&f->data);
	f->npkt = 0;
}

/* MPEG-2 CRC-32 (poly 0x04C11DB7, no reflection) for PSI sections. */
static uint32_t ts_crc32(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;
	int k;

	while (n--) {
		crc ^= (uint32_t)*p++ << 24;
		for (k = 0; k < 8; k++)
			crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04c11db7u : crc << 1;
	}
	return crc;
}

static void ts_gen_header(uint8_t *p, unsigned pid, bool pusi, bool af, unsigned cc)
{
	memset(p, 0xff, BENCH_TS_PKT);
	p[0] = 0x47;
	p[1] = (uint8_t)((pusi ? 0x40u : 0) | (pid >> 8));
	p[2] = (uint8_t)pid;
	p[3] = (uint8_t)((af ? 0x30u : 0x10u) | (cc & 0x0fu));
}

/* One PSI section in one packet: pointer_field, @sec (without CRC), CRC. */
static void ts_gen_psi(uint8_t *p, unsigned pid, unsigned cc, const uint8_t *sec, size_t n)
{
	uint32_t crc = ts_crc32(sec, n);

	ts_gen_header(p, pid, true, false, cc);
	p[4] = 0;
	memcpy(p + 5, sec, n);
	p[5 + n] = (uint8_t)(crc >> 24);
	p[6 + n] = (uint8_t)(crc >> 16);
	p[7 + n] = (uint8_t)(crc >> 8);
	p[8 + n] = (uint8_t)crc;
}

static void ts_gen_pat(uint8_t *p, unsigned cc)
{
	const uint8_t sec[] = {0x00,
			       0xb0,
			       13,
			       0x00,
			       0x01,
			       0xc1,
			       0x00,
			       0x00,
			       0x00,
			       0x01,
			       0xe0 | (GEN_PMT_PID >> 8),
			       GEN_PMT_PID & 0xff};

	ts_gen_psi(p, 0, cc, sec, sizeof(sec));
}

static void ts_gen_pmt(uint8_t *p, unsigned cc)
{
	/* One private-data PES stream (stream_type 0x06), which is also the PCR PID. */
	const uint8_t sec[] = {0x02,
			       0xb0,
			       18,
			       0x00,
			       0x01,
			       0xc1,
			       0x00,
			       0x00,
			       0xe0 | (GEN_ES_PID >> 8),
			       GEN_ES_PID & 0xff,
			       0xf0,
			       0x00,
			       0x06,
			       0xe0 | (GEN_ES_PID >> 8),
			       GEN_ES_PID & 0xff,
			       0xf0,
			       0x00};

	ts_gen_psi(p, GEN_PMT_PID, cc, sec, sizeof(sec));
}

/* An ES packet; every 40 ms it starts a PES (with PTS) and carries the PCR. */
static void ts_gen_es(uint8_t *p, unsigned cc, size_t i, bool start, uint64_t t27)
{
	size_t off = 4;

	ts_gen_header(p, GEN_ES_PID, start, start, cc);
	if (start) {
		p[4] = 7;
		p[5] = 0x10;
		ts_pcr_set(p, t27);
		off = 12;
		memcpy(p + off, (const uint8_t[]){0, 0, 1, 0xbd, 0, 0, 0x80, 0x80, 5}, 9);
		off += 9;
		p[off] = 0x20;
		ts_pts_set(p + off, t27 / 300u + 9000u); /* presented 100 ms after arrival */
		off += 5;
	}
	for (; off < BENCH_TS_PKT; off++)
		p[off] = (uint8_t)(i + off);
}

int bench_ts_file_generate(double bps, struct bench_ts_file *f)
{
	size_t i, n = (size_t)(bps / (BENCH_TS_PKT * 8));
	double pkt_27m = BENCH_TS_PKT * 8 / bps * 27e6;
	unsigned cc_pat = 0, cc_pmt = 0, cc_es = 0;
	uint64_t next_psi = 0, next_pes = 0, t;

	memset(f, 0, sizeof(*f));
	if (n < 50)
		return -EINVAL;
	f->data = malloc(n * BENCH_TS_PKT);
	if (!f->data)
		return -ENOMEM;
	f->npkt = n;
	f->origin = "gen";
	for (i = 0; i < n; i++) {
		uint8_t *p = f->data + i * BENCH_TS_PKT;

		t = (uint64_t)((double)i * pkt_27m) + 27000000u;
		if (t >= next_psi && i + 1 < n) {
			ts_gen_pat(p, cc_pat++);
			ts_gen_pmt(p + BENCH_TS_PKT, cc_pmt++);
			next_psi = t + 2700000u;
			i++;
			continue;
		}
		ts_gen_es(p, cc_es++, i, t >= next_pes, t);
		if (t >= next_pes)
			next_pes = t + 1080000u;
	}
	ts_file_probe_pcr(f);
	return f->pcr_pid >= 0 ? 0 : -PTV_ERR_PARSE;
}

int bench_ts_loop_init(struct bench_ts_loop *l, const struct bench_ts_file *f, double out_bps)
{
	memset(l, 0, sizeof(*l));
	l->f = f;
	l->cc_fault = UINT64_MAX;
	l->sync_fault = UINT64_MAX;
	l->scale = 1.0;
	if (f->pcr_pid < 0)
		return out_bps > 0 ? 0 : -EINVAL;
	l->rewrite = true;
	if (out_bps > 0)
		l->scale = f->rate_bps / out_bps;
	return 0;
}

#define PCR_WRAP (PTS_WRAP * 300u)

/* Maps a 27 MHz time of pass l->pass to the output timeline (mod the PCR wrap). */
static uint64_t ts_loop_map27(const struct bench_ts_loop *l, uint64_t v)
{
	double t0 = fmod(l->f->t0_27m, (double)PCR_WRAP);
	uint64_t base = (uint64_t)(t0 < 0 ? t0 + (double)PCR_WRAP : t0);
	int64_t rel = (int64_t)((v + PCR_WRAP - base % PCR_WRAP) % PCR_WRAP);
	double out;

	if (rel >= (int64_t)(PCR_WRAP / 2))
		rel -= (int64_t)PCR_WRAP;
	out = ((double)rel + (double)l->pass * l->f->dur_27m) * l->scale;
	return (base + (uint64_t)llround(out)) % PCR_WRAP;
}

static uint64_t ts_loop_map90(const struct bench_ts_loop *l, uint64_t v)
{
	return ts_loop_map27(l, v * 300u) / 300u;
}

/* Rewrites PTS and DTS of a PES header starting in this packet. */
static void ts_loop_pes(const struct bench_ts_loop *l, uint8_t *p)
{
	unsigned flags;
	size_t o = ts_pes_header(p, &flags);

	if (flags & 2u)
		ts_pts_set(p + o + 9, ts_loop_map90(l, ts_pts_get(p + o + 9)));
	if (flags == 3u && o + 19 <= BENCH_TS_PKT)
		ts_pts_set(p + o + 14, ts_loop_map90(l, ts_pts_get(p + o + 14)));
}

/* Renumbers continuity counters per PID; injects the deliberate error when it is due. */
static void ts_loop_cc(struct bench_ts_loop *l, uint8_t *p)
{
	unsigned pid = ts_pid(p);
	unsigned afc = (p[3] >> 4) & 3u;
	unsigned st = l->cc[pid];
	unsigned cc = p[3] & 0x0fu;

	if (pid == BENCH_TS_NULL_PID || afc == 0)
		return;
	if (st & 0x10u) {
		cc = st & 0x0fu;
		if (afc & 1u)
			cc = (cc + 1u) & 0x0fu;
	}
	if ((afc & 1u) && (st & 0x10u) && l->out_pkts >= l->cc_fault) {
		cc = (cc + 1u) & 0x0fu; /* one counter value skipped: a lost packet */
		l->cc_fault = UINT64_MAX;
		l->cc_faults++;
	}
	l->cc[pid] = (uint8_t)(0x10u | cc);
	p[3] = (uint8_t)((p[3] & 0xf0u) | cc);
}

void bench_ts_loop_next(struct bench_ts_loop *l, uint8_t *out)
{
	memcpy(out, l->f->data + l->idx * BENCH_TS_PKT, BENCH_TS_PKT);
	if (l->rewrite) {
		if (ts_has_pcr(out))
			ts_pcr_set(out, ts_loop_map27(l, ts_pcr_get(out)));
		ts_loop_pes(l, out);
	}
	ts_loop_cc(l, out);
	if (l->out_pkts >= l->sync_fault) {
		out[0] = 0x00; /* a receiver must lose lock here and find it again */
		l->sync_fault = UINT64_MAX;
		l->sync_faults++;
	}
	l->out_pkts++;
	if (++l->idx == l->f->npkt) {
		l->idx = 0;
		l->pass++;
	}
}
