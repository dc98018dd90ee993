/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * MPEG-TS inspection and continuity rewrite (see ts.h).
 */
#include <string.h>

#include "plextv/common.h"
#include "plextv/ts.h"

/* A PCR further than this from the extrapolated one after a restart is a timebase jump. */
#define TS_PCR_JUMP (27000000ull / 2)
#define TS_PCR_WRAP ((1ull << 33) * 300ull)

size_t ptv_ts_payload(const uint8_t *p, size_t *off)
{
	size_t o = 4;

	if (ptv_ts_has_af(p))
		o += 1u + p[4];
	if (!ptv_ts_has_payload(p) || o >= PTV_TS_PKT)
		return 0;
	*off = o;
	return PTV_TS_PKT - o;
}

bool ptv_ts_pcr(const uint8_t *p, uint64_t *pcr)
{
	uint8_t f;
	uint64_t base;

	if (!ptv_ts_af_flags(p, &f) || !(f & 0x10) || p[4] < 7)
		return false;
	base = ((uint64_t)p[6] << 25) | ((uint64_t)p[7] << 17) | ((uint64_t)p[8] << 9) |
	       ((uint64_t)p[9] << 1) | (p[10] >> 7);
	*pcr = base * 300u + ((((unsigned)p[10] & 1u) << 8) | p[11]);
	return true;
}

void ptv_ts_state_init(struct ptv_ts_state *st)
{
	memset(st, 0, sizeof(*st));
	st->pmt_pid = st->program = st->video_pid = st->audio_pid = st->pcr_pid = -1;
}

void ptv_ts_state_restart(struct ptv_ts_state *st)
{
	/* A new muxer may renumber PIDs or change the program: learn it again. The cached
	 * PAT/PMT stay until replaced so a viewer joining meanwhile still gets a start. */
	st->pmt_pid = st->program = st->video_pid = st->audio_pid = st->pcr_pid = -1;
	st->video_codec = PTV_TS_CODEC_NONE;
	st->pat_n = 0;
	memset(st->in, 0, sizeof(st->in));
	st->restarted = true;
}

/* ---- PSI ---- */

/* The section starting in this PUSI packet, if it fits in the packet. */
static const uint8_t *psi_section(const uint8_t *p, unsigned table_id, size_t *len)
{
	size_t off, n = ptv_ts_payload(p, &off);
	const uint8_t *s;
	size_t slen;

	if (!n || !ptv_ts_pusi(p) || 1u + p[off] >= n)
		return NULL;
	s = p + off + 1 + p[off];
	n -= 1u + p[off];
	if (n < 3 || s[0] != table_id)
		return NULL;
	slen = 3u + ((((unsigned)s[1] & 0x0f) << 8) | s[2]);
	/* Sections spanning packets are rare for one-program streams: keep what we knew. */
	if (slen > n || slen < 12)
		return NULL;
	*len = slen;
	return s;
}

static bool psi_parse_pat(struct ptv_ts_state *st, const uint8_t *p)
{
	size_t len;
	const uint8_t *s = psi_section(p, 0x00, &len);
	bool kept = false;

	if (!s)
		return false;
	st->pat_n = 0;
	for (size_t i = 8; i + 4 <= len - 4 && st->pat_n < PTV_TS_PROGRAMS; i += 4) {
		int prog = (s[i] << 8) | s[i + 1];
		int pid = ((s[i + 2] & 0x1f) << 8) | s[i + 3];

		if (prog == 0)
			continue; /* network PID */
		st->pat_prog[st->pat_n] = (uint16_t)prog;
		st->pat_pmt[st->pat_n++] = (uint16_t)pid;
		kept |= pid == st->pmt_pid && prog == st->program;
	}
	if (!st->pat_n)
		return false;
	if (!kept) {
		/* Our program is gone (or none yet): wait for the PMT of a listed one. */
		st->pmt_pid = st->program = -1;
		st->video_pid = st->audio_pid = st->pcr_pid = -1;
		st->video_codec = PTV_TS_CODEC_NONE;
		st->have_pmt = false;
	}
	return true;
}

/* The program whose PMT travels on @pid, or -1 when the PAT lists none there. */
static int pat_program_of(const struct ptv_ts_state *st, unsigned pid)
{
	if (st->pmt_pid >= 0)
		return (int)pid == st->pmt_pid ? st->program : -1;
	for (unsigned i = 0; i < st->pat_n; i++) {
		if (st->pat_pmt[i] == pid)
			return st->pat_prog[i];
	}
	return -1;
}

static enum ptv_ts_codec video_codec(unsigned type)
{
	switch (type) {
	case 0x01:
	case 0x02:
		return PTV_TS_CODEC_MPEG2;
	case 0x1b:
		return PTV_TS_CODEC_H264;
	case 0x24:
		return PTV_TS_CODEC_HEVC;
	case 0x10: /* MPEG-4 part 2 */
	case 0x42: /* AVS */
	case 0xd1: /* Dirac */
	case 0xea: /* VC-1 */
		return PTV_TS_CODEC_OTHER;
	default:
		return PTV_TS_CODEC_NONE;
	}
}

/* Private PES (0x06) is audio when a DVB AC-3 / E-AC-3 / DTS descriptor says so. */
static bool private_is_audio(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i + 2 <= n; i += 2u + d[i + 1]) {
		if (d[i] == 0x6a || d[i] == 0x7a || d[i] == 0x7b)
			return true;
	}
	return false;
}

static bool audio_type(unsigned type, const uint8_t *d, size_t n)
{
	switch (type) {
	case 0x03: /* MPEG-1 audio */
	case 0x04: /* MPEG-2 audio */
	case 0x0f: /* AAC ADTS */
	case 0x11: /* AAC LATM */
	case 0x81: /* AC-3 (ATSC) */
	case 0x87: /* E-AC-3 (ATSC) */
		return true;
	case 0x06:
		return private_is_audio(d, n);
	default:
		return false;
	}
}

static bool psi_parse_pmt(struct ptv_ts_state *st, const uint8_t *p, unsigned pid)
{
	int prog = pat_program_of(st, pid);
	size_t len, i;
	const uint8_t *s = prog < 0 ? NULL : psi_section(p, 0x02, &len);

	if (!s || ((s[3] << 8) | s[4]) != prog)
		return false;
	st->pmt_pid = (int)pid;
	st->program = prog;
	st->pcr_pid = ((s[8] & 0x1f) << 8) | s[9];
	st->video_pid = st->audio_pid = -1;
	st->video_codec = PTV_TS_CODEC_NONE;
	i = 12u + ((((unsigned)s[10] & 0x0f) << 8) | s[11]);
	while (i + 5 <= len - 4) {
		unsigned type = s[i];
		int es_pid = ((s[i + 1] & 0x1f) << 8) | s[i + 2];
		size_t dlen = (((size_t)s[i + 3] & 0x0f) << 8) | s[i + 4];
		enum ptv_ts_codec codec = video_codec(type);

		if (i + 5 + dlen > len - 4)
			break;
		if (codec != PTV_TS_CODEC_NONE && st->video_pid < 0) {
			st->video_pid = es_pid;
			st->video_codec = codec;
		} else if (st->audio_pid < 0 && audio_type(type, s + i + 5, dlen)) {
			st->audio_pid = es_pid;
		}
		i += 5 + dlen;
	}
	return true;
}

/* ---- keyframes ---- */

static bool nal_is_key(enum ptv_ts_codec codec, uint8_t b)
{
	unsigned t;

	switch (codec) {
	case PTV_TS_CODEC_H264:
		t = b & 0x1f;
		/* IDR slice, or SPS: encoders send an SPS in front of each I picture, which is
		 * also where streams without IDRs (open GOP, recovery point SEI) can be joined. */
		return t == 5 || t == 7;
	case PTV_TS_CODEC_HEVC:
		t = (b >> 1) & 0x3f;
		return (t >= 16 && t <= 21) || t == 32 || t == 33; /* BLA/IDR/CRA, VPS, SPS */
	case PTV_TS_CODEC_MPEG2:
		return b == 0xb3; /* sequence header */
	default:
		return false;
	}
}

bool ptv_ts_pes_is_key(const uint8_t *p, enum ptv_ts_codec codec)
{
	size_t off, n = ptv_ts_payload(p, &off);
	const uint8_t *es;

	if (!ptv_ts_pusi(p) || n < 9)
		return false;
	es = p + off;
	if (es[0] != 0 || es[1] != 0 || es[2] != 1)
		return false;
	if (9u + es[8] >= n)
		return false;
	n -= 9u + es[8];
	es += 9u + es[8];
	for (size_t i = 0; i + 3 < n; i++) {
		if (es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1) {
			if (nal_is_key(codec, es[i + 3]))
				return true;
			i += 2;
		}
	}
	return false;
}

/* ---- continuity ---- */

/* Checks the input counter; returns the counter step to apply to the output (0 or more). */
static unsigned cc_input(struct ptv_ts_state *st, const uint8_t *p, unsigned pid, unsigned *flags)
{
	uint8_t s = st->in[pid];
	unsigned cc = ptv_ts_cc(p), last = s & 0x0f, step;
	bool payload = ptv_ts_has_payload(p), dup = false;

	if (!(s & 0x10)) {
		/* First packet since the input started: continue the output seamlessly. */
		step = payload ? 1 : 0;
	} else if (!payload) {
		step = 0;
		if (cc != last && !ptv_ts_discontinuity(p))
			*flags |= PTV_TS_F_CC_ERR;
	} else {
		step = (cc - last) & 0x0f;
		if (step == 0) {
			/* One duplicate is legal; a second in a row is not. */
			dup = true;
			if (s & 0x20)
				*flags |= PTV_TS_F_CC_ERR;
		} else if (step != 1 && !ptv_ts_discontinuity(p)) {
			/* Keep the gap visible to decoders: it is real loss upstream. */
			*flags |= PTV_TS_F_CC_ERR;
		}
	}
	st->in[pid] = (uint8_t)(0x10 | cc | (dup ? 0x20 : 0));
	return step;
}

static void cc_rewrite(struct ptv_ts_state *st, uint8_t *p, unsigned pid, unsigned step)
{
	uint8_t o = st->out[pid];
	unsigned out = (o & 0x10) ? ((o & 0x0f) + step) & 0x0f : ptv_ts_cc(p);

	p[3] = (uint8_t)((p[3] & 0xf0) | out);
	st->out[pid] = (uint8_t)(0x10 | out);
}

static uint64_t pcr_dist(uint64_t a, uint64_t b)
{
	uint64_t d = (a - b + TS_PCR_WRAP) % TS_PCR_WRAP;

	return PTV_MIN(d, TS_PCR_WRAP - d);
}

static void pcr_track(struct ptv_ts_state *st, uint8_t *p, unsigned pid, uint64_t now_ms,
		      unsigned *flags)
{
	uint64_t pcr, expect;

	if ((st->pcr_pid >= 0 && (int)pid != st->pcr_pid) || !ptv_ts_pcr(p, &pcr))
		return;
	if (st->restarted && st->have_pcr) {
		expect = (st->last_pcr + (now_ms - st->last_pcr_ms) * 27000u) % TS_PCR_WRAP;
		if (pcr_dist(pcr, expect) > TS_PCR_JUMP && !ptv_ts_discontinuity(p)) {
			p[5] |= 0x80;
			*flags |= PTV_TS_F_DISC;
		}
	}
	st->restarted = false;
	st->have_pcr = true;
	st->last_pcr = pcr;
	st->last_pcr_ms = now_ms;
}

static unsigned ts_psi(struct ptv_ts_state *st, const uint8_t *p, unsigned pid)
{
	if (pid == PTV_TS_PID_PAT && psi_parse_pat(st, p)) {
		memcpy(st->pat, p, PTV_TS_PKT);
		st->have_pat = true;
		return PTV_TS_F_PAT;
	}
	if (pid != PTV_TS_PID_PAT && psi_parse_pmt(st, p, pid)) {
		memcpy(st->pmt, p, PTV_TS_PKT);
		st->have_pmt = true;
		return PTV_TS_F_PMT;
	}
	return 0;
}

static bool ts_is_start(const struct ptv_ts_state *st, const uint8_t *p, unsigned pid)
{
	if (!st->have_pat || !st->have_pmt)
		return false;
	if (st->video_pid >= 0) {
		return (int)pid == st->video_pid &&
		       (ptv_ts_rai(p) || ptv_ts_pes_is_key(p, st->video_codec));
	}
	/* Audio-only: every audio frame decodes on its own. */
	return (int)pid == st->audio_pid;
}

unsigned ptv_ts_process(struct ptv_ts_state *st, uint8_t *p, uint64_t now_ms)
{
	unsigned pid = ptv_ts_pid(p), flags = 0, step;

	if (pid == PTV_TS_PID_NULL)
		return 0;
	step = cc_input(st, p, pid, &flags);
	cc_rewrite(st, p, pid, step);
	if (flags & PTV_TS_F_CC_ERR)
		st->cc_errors++;
	pcr_track(st, p, pid, now_ms, &flags);
	if (!ptv_ts_pusi(p))
		return flags;
	flags |= ts_psi(st, p, pid);
	if (ts_is_start(st, p, pid))
		flags |= PTV_TS_F_KEY;
	return flags;
}
