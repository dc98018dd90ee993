/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * MPEG-TS packet inspection for the relay (ISO/IEC 13818-1): header fields, PAT/PMT, keyframe
 * detection and the continuity-counter rewrite that keeps a channel's output continuous across
 * ingest-child restarts.
 *
 * The relay runs every packet from an ingest child through ptv_ts_process() once, on the
 * session's home reactor, as it enters the ring. It learns the program (first program of the
 * PAT, its PMT, video/audio/PCR PIDs), counts continuity errors as they came from the child,
 * renumbers the continuity counters in place so they stay continuous for viewers whatever the
 * child did, and flags the packets a new viewer can start at (PTV_TS_F_KEY).
 *
 * No allocation, no I/O: one struct ptv_ts_state per channel (about 17 KiB).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTV_TS_PKT	188u
#define PTV_TS_SYNC	0x47u
#define PTV_TS_PID_PAT	0x0000u
#define PTV_TS_PID_NULL 0x1fffu
#define PTV_TS_PIDS	8192u

static inline unsigned ptv_ts_pid(const uint8_t *p)
{
	return ((unsigned)(p[1] & 0x1f) << 8) | p[2];
}
static inline bool ptv_ts_pusi(const uint8_t *p)
{
	return p[1] & 0x40;
}
static inline unsigned ptv_ts_cc(const uint8_t *p)
{
	return p[3] & 0x0f;
}
static inline bool ptv_ts_has_payload(const uint8_t *p)
{
	return p[3] & 0x10;
}
static inline bool ptv_ts_has_af(const uint8_t *p)
{
	return p[3] & 0x20;
}
/** Adaptation field length byte (0 when there is no adaptation field). */
static inline unsigned ptv_ts_af_len(const uint8_t *p)
{
	return ptv_ts_has_af(p) ? p[4] : 0;
}
/** The adaptation field's flag byte exists (af length >= 1). */
static inline bool ptv_ts_af_flags(const uint8_t *p, uint8_t *flags)
{
	if (!ptv_ts_has_af(p) || p[4] < 1 || p[4] > 183)
		return false;
	*flags = p[5];
	return true;
}
static inline bool ptv_ts_rai(const uint8_t *p)
{
	uint8_t f;

	return ptv_ts_af_flags(p, &f) && (f & 0x40);
}
static inline bool ptv_ts_discontinuity(const uint8_t *p)
{
	uint8_t f;

	return ptv_ts_af_flags(p, &f) && (f & 0x80);
}

/**
 * Payload of packet @p: sets *@off to its first byte and returns its length, or 0 when the
 * packet has no payload or a malformed adaptation field.
 */
size_t ptv_ts_payload(const uint8_t *p, size_t *off);

/** PCR of @p in 27 MHz units, or false when the packet carries none. */
bool ptv_ts_pcr(const uint8_t *p, uint64_t *pcr);

enum ptv_ts_codec {
	PTV_TS_CODEC_NONE = 0,
	PTV_TS_CODEC_H264,
	PTV_TS_CODEC_HEVC,
	PTV_TS_CODEC_MPEG2, /* MPEG-1/2 video */
	PTV_TS_CODEC_OTHER, /* another video type: keyframes only from random_access_indicator */
};

/** What ptv_ts_process() found in a packet. */
enum ptv_ts_flags {
	PTV_TS_F_PAT = 1u << 0,	   /* PAT of the stream (cached in the state) */
	PTV_TS_F_PMT = 1u << 1,	   /* PMT of the chosen program (cached in the state) */
	PTV_TS_F_KEY = 1u << 2,	   /* a new viewer may start here (after PAT + PMT) */
	PTV_TS_F_CC_ERR = 1u << 3, /* continuity error in the input (before the rewrite) */
	PTV_TS_F_DISC = 1u << 4,   /* we set discontinuity_indicator (timebase jump) */
};

#define PTV_TS_PROGRAMS 16

struct ptv_ts_state {
	/* Programs listed by the last PAT (the ingest child writes one; captures may list
	 * programs whose PMT never comes, so the first PMT that does come wins). */
	uint16_t pat_prog[PTV_TS_PROGRAMS], pat_pmt[PTV_TS_PROGRAMS];
	unsigned pat_n;
	/* Program, learnt from the PAT and PMT. -1: not known yet. */
	int pmt_pid;
	int program;
	int video_pid;
	enum ptv_ts_codec video_codec;
	int audio_pid; /* first audio-like stream: start points of audio-only channels */
	int pcr_pid;

	/* Latest PAT and PMT packets as they left ptv_ts_process() (rewritten counters). */
	uint8_t pat[PTV_TS_PKT];
	uint8_t pmt[PTV_TS_PKT];
	bool have_pat, have_pmt;

	/*
	 * Continuity per PID. in[]: bit 4 = seen since the input (re)started, bits 0-3 = last
	 * input counter. out[]: bit 4 = seen ever, bits 0-3 = last counter written.
	 */
	uint8_t in[PTV_TS_PIDS];
	uint8_t out[PTV_TS_PIDS];

	/* Timebase continuity across an input restart. */
	bool have_pcr;
	bool restarted; /* input restarted: check the next PCR against the extrapolated one */
	uint64_t last_pcr;
	uint64_t last_pcr_ms;

	uint64_t cc_errors; /* input continuity errors seen (before the rewrite) */
};

void ptv_ts_state_init(struct ptv_ts_state *st);

/**
 * The input restarts (a new ingest child): input counters are forgotten (a new muxer starts
 * anywhere), output counters carry on, PSI is learnt again, and the next PCR is compared with
 * the one extrapolated from the last: a jump sets discontinuity_indicator on that packet.
 */
void ptv_ts_state_restart(struct ptv_ts_state *st);

/**
 * Inspects one 188-byte packet, rewrites its continuity counter (and possibly its
 * discontinuity_indicator) in place and returns PTV_TS_F_* flags. @now_ms is a monotonic
 * clock for the PCR extrapolation. The caller checked the sync byte.
 */
unsigned ptv_ts_process(struct ptv_ts_state *st, uint8_t *p, uint64_t now_ms);

/**
 * True when the PES payload starting in @p (a PUSI packet of a @codec stream) begins an
 * independently decodable picture: H.264 IDR or SPS, HEVC IRAP/VPS/SPS, MPEG-2 sequence
 * header. Only this packet's bytes are scanned.
 */
bool ptv_ts_pes_is_key(const uint8_t *p, enum ptv_ts_codec codec);
