/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Internals of the ingest child (see plextv/ingest.h for the contract), shared by ingest*.c
 * and tests/unit/ingest_test.c:
 *   ingest_cfg.c  the JSON config on fd 3
 *   ingest_ev.c   JSON event lines on fd 2 and the av_log callback
 *   ingest_out.c  the one mpegts muxer: stream mapping, timestamp continuity, AVCC/ADTS fixes
 *   ingest.c      process hygiene, sessions (open, read, stall detection), reconnect policy
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>

#define ING_MAX_URLS 16
#define ING_CFG_MAX  (64 * 1024)
#define ING_TB           \
	(AVRational)     \
	{                \
		1, 90000 \
	} /* the output time base: MPEG-TS ticks */

enum ing_kind {
	ING_KIND_URL = 0,
	ING_KIND_FILE = 1,
};

/* HLS variant choice: best/worst bandwidth, or the highest at most max_bps. */
enum ing_variant {
	ING_VARIANT_BEST = 0,
	ING_VARIANT_WORST,
	ING_VARIANT_MAX_BPS,
};

struct ing_cfg {
	char *channel;
	enum ing_kind kind;
	char *urls[ING_MAX_URLS];
	int n_urls;
	char *user_agent; /* "User-Agent" of headers, or NULL */
	char *referer;	  /* "Referer" of headers, or NULL */
	char *headers;	  /* the other headers as "Name: value\r\n"..., or NULL */
	bool loop;
	bool realtime;
	int64_t probesize;
	int64_t analyzeduration_us;
	int rw_timeout_ms;
	int stall_timeout_ms;
	int video_stall_ms;
	int max_reconnects;
	int backoff_initial_ms;
	int backoff_max_ms;
	char *protocol_whitelist; /* NULL: per kind */
	enum ing_variant variant;
	int64_t variant_max_bps;
	long ppid;	  /* 0: not given */
	int rlimit_as_mb; /* 0: no cap */
};

/**
 * Parses the config JSON in @buf (@len bytes). On error returns -EINVAL and writes a reason
 * (no secrets: never the URLs) into @err. ing_cfg_free() is needed after success or failure.
 */
int ing_cfg_parse(struct ing_cfg *cfg, const char *buf, size_t len, char *err, size_t errlen);
void ing_cfg_free(struct ing_cfg *cfg);
/** The protocol whitelist in force for @cfg. */
const char *ing_cfg_protocols(const struct ing_cfg *cfg);
/** 0 when @url's scheme may be opened at top level under @cfg, else -EPERM. */
int ing_cfg_check_scheme(const struct ing_cfg *cfg, const char *url);

/**
 * Returns a copy of @url (free() it) without the query parameter @name, whose value goes to
 * @val ("" when absent).
 */
char *ing_url_take_param(const char *url, const char *name, char *val, size_t vlen);

/* ---- events (fd 2) ---- */

/** Starts events on @fd and routes av_log there. @t0_ns: the child's start (ptv_now_ns()). */
void ing_ev_init(int fd, uint64_t t0_ns);
/**
 * Writes one event line. @fmt is a jansson json_pack() format for the object's members after
 * "ev" (e.g. "s:i, s:s"), NULL for none. Strings in "msg" must have been redacted.
 */
void ing_ev(const char *ev, const char *fmt, ...);
/** Writes {"ev":"log","level":…,"msg":…} with @msg redacted; not rate-limited. */
void ing_ev_log(const char *level, const char *msg);
/** Copies the newest FFmpeg error line (redacted, "" if none) into @out; @clear forgets it. */
void ing_ev_last_error(char *out, size_t len, bool clear);
/** Milliseconds since ing_ev_init()'s t0. */
int64_t ing_ev_elapsed_ms(void);

/* ---- output ---- */

enum ing_slot {
	ING_SLOT_VIDEO = 0,
	ING_SLOT_AUDIO,
	ING_SLOT_SUB,
	ING_SLOT_N,
};

/* One output stream's timeline, in 90 kHz ticks. */
struct ing_track {
	AVStream *st; /* NULL: this slot has no output stream */
	enum AVCodecID codec;
	int64_t last_dts; /* AV_NOPTS_VALUE before the first packet */
	int64_t last_dur; /* duration of the last packet, or the last DTS step */
};

struct ing_out {
	AVFormatContext *oc;
	struct ing_track trk[ING_SLOT_N];
	bool header_written;
	bool epipe; /* fd 1 reported EPIPE: the parent is gone */
	int fd;
	int64_t offset;	     /* input 90 kHz ticks + offset = output ticks (this session) */
	bool anchored;	     /* offset is valid for this session */
	const char *service; /* SDT service name (the channel label), or NULL */
	int64_t pace_dts0;   /* realtime pacing: first output DTS and its wall time */
	uint64_t pace_ns0;
	uint64_t packets; /* written */
	uint64_t dropped; /* not written: before the keyframe, duplicates, layout changes */
};

/* What a session maps: input stream index per slot (-1 none) and its fix-ups. */
struct ing_map {
	int in_idx[ING_SLOT_N];
	AVRational in_tb[ING_SLOT_N];
	int64_t def_dur[ING_SLOT_N];   /* frame duration to assume, 90 kHz */
	AVBSFContext *bsf[ING_SLOT_N]; /* AVCC -> Annex B, or NULL */
	bool adts[ING_SLOT_N];	       /* raw AAC: prepend ADTS headers */
	uint8_t adts_tmpl[ING_SLOT_N][7];
	bool drop[ING_SLOT_N]; /* codec differs from the output stream */
	bool wait_key;	       /* drop until the first video keyframe */
	int64_t wait_since;    /* input DTS when waiting for the keyframe began */
	int64_t anchor_out;    /* output DTS of the splice point; older packets drop */
};

/** Prepares the muxer writing to @fd (not yet its streams). Returns 0 or a negative errno. */
int ing_out_init(struct ing_out *o, int fd);
void ing_out_deinit(struct ing_out *o);

/**
 * Maps the streams chosen in @m (in_idx filled) of @ic onto the output: the first call creates
 * the output streams and writes the header; later calls compare codecs and mark changed slots
 * dropped (with a "layout" event). Sets up the per-session fix-ups. Returns 0 or AVERROR.
 */
int ing_out_map(struct ing_out *o, AVFormatContext *ic, struct ing_map *m);
/** Frees the session's fix-ups and forgets its offset (before the next session). */
void ing_out_unmap(struct ing_out *o, struct ing_map *m);

/**
 * Writes input packet @pkt (consumed) of a mapped stream. Returns 1 when written, 0 when
 * dropped, AVERROR on a muxer error (o->epipe tells EPIPE apart).
 */
int ing_out_write(struct ing_out *o, struct ing_map *m, AVPacket *pkt, bool realtime);
/** Writes the trailer (end of a non-looping file). */
void ing_out_finish(struct ing_out *o);

/** Newest output DTS of @slot (AV_NOPTS_VALUE if none). */
static inline int64_t ing_out_last_dts(const struct ing_out *o, enum ing_slot slot)
{
	return o->trk[slot].st ? o->trk[slot].last_dts : AV_NOPTS_VALUE;
}

/**
 * Fills the ADTS header (7 bytes) of a raw AAC frame of @payload bytes, from a 2-byte
 * AudioSpecificConfig. Returns 0, or -EINVAL when ADTS cannot express the config.
 */
int ing_adts_header(uint8_t hdr[7], const uint8_t asc[2], int payload);
