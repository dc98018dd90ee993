/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The ingest child's output: ONE mpegts muxer for the life of the process, writing to fd 1
 * through a custom AVIOContext. Inputs come and go (reconnects, failovers, file loops); each
 * one is a "session" whose streams are mapped by type onto the output streams made from the
 * first session, and whose timestamps are shifted by one offset so that output DTS/PTS keep
 * increasing with no backward jump and no gap. Because the muxer never changes, continuity
 * counters stay continuous by construction.
 *
 * Per-session fix-ups make inputs of different kinds interchangeable behind one muxer:
 * H.264/HEVC in AVCC form (FLV/RTMP, MP4) goes through *_mp4toannexb, and raw AAC gets an ADTS
 * header, so the output streams never depend on the first input's extradata.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/intreadwrite.h>
#include <libavutil/opt.h>

#include "plextv/common.h"
#include "ingest_int.h"

#define TS_PACKET      188
#define AVIO_BUF       (174 * TS_PACKET) /* ~32 KiB, a whole number of TS packets per write */
#define START_DTS      90000		 /* first output DTS: 1 s, room below for B-frame PTS */
#define DISCONT_BACK   90000		 /* a track going back more than 1 s: discontinuity */
#define DISCONT_FWD    (10 * 90000)	 /* jumping 10 s past the newest output: discontinuity */
#define KEY_WAIT_MAX   (4 * 90000)	 /* start without a keyframe after 4 s of media */
#define PACE_LEAD_NS   500000000ull	 /* realtime pacing runs this far ahead of the clock */
#define PACE_RESYNC_NS 2000000000ull	 /* further behind than this: re-anchor, no burst */

static const char *const slot_name[ING_SLOT_N] = {"video", "audio", "subtitle"};

/* fd 1 writer: full writes; EPIPE is how we learn the parent went away. */
static int write_cb(void *opaque, uint8_t *buf, int size)
{
	struct ing_out *o = opaque;
	int left = size;

	while (left > 0) {
		ssize_t n = write(o->fd, buf, (size_t)left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			o->epipe = errno == EPIPE;
			return AVERROR(errno);
		}
		buf += n;
		left -= (int)n;
	}
	return size;
}

int ing_out_init(struct ing_out *o, int fd)
{
	uint8_t *buf = NULL;
	int ret;

	memset(o, 0, sizeof(*o));
	o->fd = fd;
	for (int i = 0; i < ING_SLOT_N; i++)
		o->trk[i].last_dts = AV_NOPTS_VALUE;
	o->pace_dts0 = AV_NOPTS_VALUE;
	ret = avformat_alloc_output_context2(&o->oc, NULL, "mpegts", NULL);
	if (ret < 0)
		return ret;
	buf = av_malloc(AVIO_BUF);
	if (!buf)
		goto nomem;
	o->oc->pb = avio_alloc_context(buf, AVIO_BUF, 1, o, NULL, write_cb, NULL);
	if (!o->oc->pb)
		goto nomem;
	o->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
	/* Data must leave at once: flush after every packet, keep the mux delay short. */
	o->oc->flush_packets = 1;
	o->oc->max_delay = 200000;
	o->oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED; /* we never send negative ts */
	return 0;
nomem:
	av_free(buf);
	avformat_free_context(o->oc);
	o->oc = NULL;
	return AVERROR(ENOMEM);
}

void ing_out_deinit(struct ing_out *o)
{
	if (!o->oc)
		return;
	if (o->oc->pb)
		av_freep(&o->oc->pb->buffer);
	avio_context_free(&o->oc->pb);
	avformat_free_context(o->oc);
	o->oc = NULL;
}

/* ---- ADTS ---- */

struct bits {
	const uint8_t *p;
	int len, pos; /* in bits */
};

static unsigned get_bits(struct bits *b, int n)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++, b->pos++) {
		unsigned bit = b->pos < b->len ? (b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1 : 0;

		v = (v << 1) | bit;
	}
	return v;
}

/* Reads the AudioSpecificConfig into the fixed part of an ADTS header (frame length 0). */
static int adts_template(uint8_t hdr[7], const uint8_t *asc, int size)
{
	struct bits b = {asc, size * 8, 0};
	unsigned aot, sfi, chan;

	if (size < 2)
		return -EINVAL;
	aot = get_bits(&b, 5);
	sfi = get_bits(&b, 4);
	chan = get_bits(&b, 4);
	if (aot == 5 || aot == 29) {
		/* HE-AAC signalled explicitly: ADTS carries the core (AAC-LC) config. */
		get_bits(&b, 4); /* extension sampling frequency index */
		aot = get_bits(&b, 5);
	}
	/* ADTS has 2 bits of profile (AOT 1..4), no escape codes and no explicit rate. */
	if (aot < 1 || aot > 4 || sfi > 12 || chan < 1 || chan > 7 || b.pos > b.len)
		return -EINVAL;
	hdr[0] = 0xff;
	hdr[1] = 0xf1; /* MPEG-4, layer 0, no CRC */
	hdr[2] = (uint8_t)(((aot - 1) << 6) | (sfi << 2) | (chan >> 2));
	hdr[3] = (uint8_t)((chan & 3) << 6);
	hdr[4] = 0;
	hdr[5] = 0x1f; /* buffer fullness 0x7ff: VBR */
	hdr[6] = 0xfc;
	return 0;
}

static void adts_set_length(uint8_t hdr[7], int frame_len)
{
	hdr[3] = (uint8_t)((hdr[3] & 0xfc) | ((frame_len >> 11) & 3));
	hdr[4] = (uint8_t)(frame_len >> 3);
	hdr[5] = (uint8_t)(((frame_len & 7) << 5) | 0x1f);
}

int ing_adts_header(uint8_t hdr[7], const uint8_t asc[2], int payload)
{
	int ret = adts_template(hdr, asc, 2);

	if (ret)
		return ret;
	if (payload < 0 || payload + 7 > 0x1fff)
		return -EINVAL;
	adts_set_length(hdr, payload + 7);
	return 0;
}

/* Prepends the ADTS header unless the frame already has one. */
static int add_adts(AVPacket *pkt, const uint8_t tmpl[7])
{
	uint8_t hdr[7];
	int size = pkt->size, ret;

	if (size >= 2 && (AV_RB16(pkt->data) & 0xfff6) == 0xfff0)
		return 0;
	if (size + 7 > 0x1fff)
		return AVERROR_INVALIDDATA;
	memcpy(hdr, tmpl, 7);
	adts_set_length(hdr, size + 7);
	ret = av_packet_make_writable(pkt);
	if (ret >= 0)
		ret = av_grow_packet(pkt, 7);
	if (ret < 0)
		return ret;
	memmove(pkt->data + 7, pkt->data, (size_t)size);
	memcpy(pkt->data, hdr, 7);
	return 0;
}

/* ---- mapping ---- */

/* Extradata that is not Annex B (no start code) means AVCC/hvcC packets: convert them. */
static const char *annexb_filter(const AVCodecParameters *par)
{
	const uint8_t *e = par->extradata;

	if (par->extradata_size < 4 || !e)
		return NULL;
	if (!AV_RB24(e) && (e[2] == 1 || (!e[2] && e[3] == 1)))
		return NULL; /* 00 00 01 or 00 00 00 01 */
	if (par->codec_id == AV_CODEC_ID_H264)
		return "h264_mp4toannexb";
	if (par->codec_id == AV_CODEC_ID_HEVC)
		return "hevc_mp4toannexb";
	return NULL;
}

static int setup_bsf(struct ing_map *m, int slot, const AVStream *in)
{
	const char *name = annexb_filter(in->codecpar);
	const AVBitStreamFilter *f;
	int ret;

	if (!name)
		return 0;
	f = av_bsf_get_by_name(name);
	if (!f)
		return AVERROR_BSF_NOT_FOUND;
	ret = av_bsf_alloc(f, &m->bsf[slot]);
	if (ret < 0)
		return ret;
	ret = avcodec_parameters_copy(m->bsf[slot]->par_in, in->codecpar);
	if (ret < 0)
		return ret;
	m->bsf[slot]->time_base_in = in->time_base;
	return av_bsf_init(m->bsf[slot]);
}

static int setup_fixups(struct ing_map *m, int slot, const AVStream *in)
{
	const AVCodecParameters *par = in->codecpar;
	int ret;

	if (slot == ING_SLOT_VIDEO)
		return setup_bsf(m, slot, in);
	if (slot != ING_SLOT_AUDIO || par->codec_id != AV_CODEC_ID_AAC || !par->extradata_size)
		return 0;
	/* Raw AAC (FLV, MP4, RTP) comes with its AudioSpecificConfig as extradata. */
	ret = adts_template(m->adts_tmpl[slot], par->extradata, par->extradata_size);
	if (ret) {
		ing_ev_log("warn", "audio: AAC config not expressible as ADTS; audio dropped");
		m->drop[slot] = true;
		return 0;
	}
	m->adts[slot] = true;
	return 0;
}

/* A default frame duration in 90 kHz ticks, for packets that come without one. */
static int64_t default_duration(const AVStream *in)
{
	const AVCodecParameters *par = in->codecpar;

	if (par->codec_type == AVMEDIA_TYPE_VIDEO && in->avg_frame_rate.num > 0 &&
	    in->avg_frame_rate.den > 0)
		return av_rescale_q(1, av_inv_q(in->avg_frame_rate), ING_TB) ?: 1;
	if (par->codec_type == AVMEDIA_TYPE_AUDIO && par->frame_size > 0 && par->sample_rate > 0)
		return av_rescale(par->frame_size, 90000, par->sample_rate) ?: 1;
	return par->codec_type == AVMEDIA_TYPE_AUDIO ? 1920 : 3600;
}

static int new_output_stream(struct ing_out *o, struct ing_map *m, int slot, const AVStream *in)
{
	const AVCodecParameters *src = m->bsf[slot] ? m->bsf[slot]->par_out : in->codecpar;
	AVStream *st = avformat_new_stream(o->oc, NULL);
	int ret;

	if (!st)
		return AVERROR(ENOMEM);
	ret = avcodec_parameters_copy(st->codecpar, src);
	if (ret < 0)
		return ret;
	st->codecpar->codec_tag = 0;
	if (st->codecpar->codec_id == AV_CODEC_ID_AAC) {
		/* Output AAC is always ADTS: without extradata the muxer never wraps it again
		 * (its ADTS helper would fail on configs ADTS cannot express). */
		av_freep(&st->codecpar->extradata);
		st->codecpar->extradata_size = 0;
	}
	if (st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO && st->codecpar->sample_rate <= 0) {
		/* The probe ended before an audio frame was parsed. The muxer insists on a rate
		 * but MPEG-TS does not carry it (the decoder reads it from the frames). */
		st->codecpar->sample_rate = 48000;
	}
	st->time_base = ING_TB;
	av_dict_copy(&st->metadata, in->metadata, 0); /* language tags */
	o->trk[slot].st = st;
	o->trk[slot].codec = st->codecpar->codec_id;
	return 0;
}

static int write_header(struct ing_out *o, const char *service)
{
	AVDictionary *opts = NULL;
	int ret;

	av_dict_set(&opts, "pat_period", "0.1", 0);
	av_dict_set(&opts, "sdt_period", "0.5", 0);
	av_dict_set(&o->oc->metadata, "service_provider", "PlexTV", 0);
	if (service && *service)
		av_dict_set(&o->oc->metadata, "service_name", service, 0);
	ret = avformat_write_header(o->oc, &opts);
	av_dict_free(&opts);
	if (ret >= 0)
		o->header_written = true;
	return ret < 0 ? ret : 0;
}

/* A later session: same codec per slot, or that slot is dropped for the session. */
static void check_layout(struct ing_out *o, struct ing_map *m, int slot, const AVStream *in)
{
	enum AVCodecID id = in->codecpar->codec_id;

	if (!o->trk[slot].st) {
		m->in_idx[slot] = -1; /* the first input had no such stream */
		return;
	}
	if (id == o->trk[slot].codec)
		return;
	ing_ev("layout", "s:s, s:s, s:s", "stream", slot_name[slot], "from",
	       avcodec_get_name(o->trk[slot].codec), "to", avcodec_get_name(id));
	m->drop[slot] = true;
}

int ing_out_map(struct ing_out *o, AVFormatContext *ic, struct ing_map *m)
{
	bool first = !o->header_written;
	int ret;

	m->wait_key = false;
	m->wait_since = AV_NOPTS_VALUE;
	m->anchor_out = AV_NOPTS_VALUE;
	for (int slot = 0; slot < ING_SLOT_N; slot++) {
		const AVStream *in;

		if (m->in_idx[slot] < 0)
			continue;
		in = ic->streams[m->in_idx[slot]];
		m->in_tb[slot] = in->time_base;
		m->def_dur[slot] = default_duration(in);
		if (!first)
			check_layout(o, m, slot, in);
		if (m->in_idx[slot] < 0 || m->drop[slot])
			continue;
		ret = setup_fixups(m, slot, in);
		if (ret < 0)
			return ret;
		if (first && !m->drop[slot]) {
			ret = new_output_stream(o, m, slot, in);
			if (ret < 0)
				return ret;
		}
	}
	m->wait_key = m->in_idx[ING_SLOT_VIDEO] >= 0 && !m->drop[ING_SLOT_VIDEO];
	o->anchored = false;
	if (first)
		return write_header(o, o->service);
	return 0;
}

void ing_out_unmap(struct ing_out *o, struct ing_map *m)
{
	for (int slot = 0; slot < ING_SLOT_N; slot++) {
		av_bsf_free(&m->bsf[slot]);
		m->in_idx[slot] = -1;
		m->adts[slot] = false;
		m->drop[slot] = false;
	}
	o->anchored = false;
}

/* ---- timestamps ---- */

/*
 * Where the next packet of any track should land: just after the newest one written. The
 * timeline is audio and video: subtitle timestamps are sparse and often offset, and must
 * not push the splice point ahead.
 */
static int64_t next_out_dts(const struct ing_out *o)
{
	int64_t next = AV_NOPTS_VALUE;

	for (int i = 0; i < ING_SLOT_SUB; i++) {
		const struct ing_track *t = &o->trk[i];

		if (t->st && t->last_dts != AV_NOPTS_VALUE)
			next = PTV_MAX(next == AV_NOPTS_VALUE ? INT64_MIN : next,
				       t->last_dts + PTV_MAX(t->last_dur, 1));
	}
	return next == AV_NOPTS_VALUE ? START_DTS : next;
}

static int64_t newest_out_dts(const struct ing_out *o)
{
	int64_t newest = AV_NOPTS_VALUE;

	for (int i = 0; i < ING_SLOT_SUB; i++) {
		if (o->trk[i].st && o->trk[i].last_dts != AV_NOPTS_VALUE)
			newest = newest == AV_NOPTS_VALUE ? o->trk[i].last_dts
							  : PTV_MAX(newest, o->trk[i].last_dts);
	}
	return newest;
}

static void anchor(struct ing_out *o, struct ing_map *m, int64_t in_dts)
{
	int64_t base = next_out_dts(o);

	o->offset = base - in_dts;
	o->anchored = true;
	m->anchor_out = base;
}

/* Drops everything before the session's first video keyframe (a splice must start with one). */
static bool before_keyframe(struct ing_map *m, int slot, const AVPacket *pkt, int64_t dts)
{
	if (!m->wait_key)
		return false;
	if (slot == ING_SLOT_VIDEO && (pkt->flags & AV_PKT_FLAG_KEY)) {
		m->wait_key = false;
		return false;
	}
	if (m->wait_since == AV_NOPTS_VALUE)
		m->wait_since = dts;
	if (dts - m->wait_since > KEY_WAIT_MAX) {
		/* Some sources never flag keyframes (intra refresh): start anyway. */
		ing_ev_log("warn", "no video keyframe within 4 s of media: starting without one");
		m->wait_key = false;
		return false;
	}
	return true;
}

/*
 * Input ticks -> output ticks for a packet of @slot; returns false to drop it. Re-anchors on
 * discontinuities: a track going backwards (HLS #EXT-X-DISCONTINUITY, an encoder restart) or
 * the stream jumping far ahead of everything written so far.
 */
static bool map_dts(struct ing_out *o, struct ing_map *m, int slot, int64_t in_dts, int64_t *out)
{
	const struct ing_track *t = &o->trk[slot];
	int64_t dts, newest;

	if (!o->anchored)
		anchor(o, m, in_dts);
	dts = in_dts + o->offset;
	newest = newest_out_dts(o);
	if (slot != ING_SLOT_SUB &&
	    ((t->last_dts != AV_NOPTS_VALUE && dts < t->last_dts - DISCONT_BACK) ||
	     (newest != AV_NOPTS_VALUE && dts > newest + DISCONT_FWD))) {
		ing_ev_log("warn", "input timestamp discontinuity: re-anchored");
		anchor(o, m, in_dts);
		dts = in_dts + o->offset;
	}
	/* Older than the splice point, or not after this track's last packet: drop. */
	if (dts < m->anchor_out || (t->last_dts != AV_NOPTS_VALUE && dts <= t->last_dts))
		return false;
	*out = dts;
	return true;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Realtime pacing (files): the output runs at most PACE_LEAD_NS ahead of the wall clock. */
static void pace(struct ing_out *o, int64_t dts)
{
	uint64_t now = ptv_now_ns(), due;

	if (o->pace_dts0 == AV_NOPTS_VALUE || dts < o->pace_dts0) {
		o->pace_dts0 = dts;
		o->pace_ns0 = now;
	}
	due = o->pace_ns0 + (uint64_t)av_rescale(dts - o->pace_dts0, 1000000000, 90000);
	if (due > now + PACE_LEAD_NS) {
		sleep_ns(due - now - PACE_LEAD_NS);
	} else if (now > due + PACE_RESYNC_NS) {
		/* Far behind (the input was slow): follow from here instead of bursting. */
		o->pace_dts0 = dts;
		o->pace_ns0 = now;
	}
}

static int write_one(struct ing_out *o, struct ing_map *m, int slot, AVPacket *pkt, bool realtime)
{
	struct ing_track *t = &o->trk[slot];
	int64_t in_dts, in_pts, dts, dur;
	int ret;

	if (pkt->dts == AV_NOPTS_VALUE)
		pkt->dts = pkt->pts;
	if (pkt->dts == AV_NOPTS_VALUE || pkt->size <= 0)
		goto drop;
	in_dts = av_rescale_q(pkt->dts, m->in_tb[slot], ING_TB);
	in_pts = pkt->pts == AV_NOPTS_VALUE ? in_dts
					    : av_rescale_q(pkt->pts, m->in_tb[slot], ING_TB);
	if (before_keyframe(m, slot, pkt, in_dts) || !map_dts(o, m, slot, in_dts, &dts))
		goto drop;
	if (m->adts[slot] && add_adts(pkt, m->adts_tmpl[slot]) < 0)
		goto drop;
	dur = pkt->duration > 0 ? av_rescale_q(pkt->duration, m->in_tb[slot], ING_TB) : 0;
	pkt->dts = dts;
	pkt->pts = PTV_MAX(in_pts + o->offset, dts);
	pkt->duration = dur;
	pkt->stream_index = t->st->index;
	pkt->pos = -1;
	if (realtime)
		pace(o, dts);
	t->last_dur =
		dur > 0 ? dur
			: (t->last_dts != AV_NOPTS_VALUE ? dts - t->last_dts : m->def_dur[slot]);
	t->last_dts = dts;
	ret = av_write_frame(o->oc, pkt);
	av_packet_unref(pkt);
	if (ret < 0)
		return ret;
	o->packets++;
	return 1;
drop:
	av_packet_unref(pkt);
	o->dropped++;
	return 0;
}

static int slot_of(const struct ing_map *m, int stream_index)
{
	for (int slot = 0; slot < ING_SLOT_N; slot++) {
		if (m->in_idx[slot] == stream_index)
			return slot;
	}
	return -1;
}

int ing_out_write(struct ing_out *o, struct ing_map *m, AVPacket *pkt, bool realtime)
{
	int slot = slot_of(m, pkt->stream_index), ret, written = 0;

	if (slot < 0 || m->drop[slot] || !o->trk[slot].st) {
		av_packet_unref(pkt);
		return 0;
	}
	if (!m->bsf[slot])
		return write_one(o, m, slot, pkt, realtime);
	/* The *_mp4toannexb filters give one packet per packet; loop anyway. */
	ret = av_bsf_send_packet(m->bsf[slot], pkt);
	av_packet_unref(pkt);
	if (ret < 0)
		return 0; /* a malformed packet: drop it, the stream goes on */
	while ((ret = av_bsf_receive_packet(m->bsf[slot], pkt)) >= 0) {
		ret = write_one(o, m, slot, pkt, realtime);
		if (ret < 0)
			return ret;
		written |= ret;
	}
	return written;
}

void ing_out_finish(struct ing_out *o)
{
	if (o->header_written)
		av_write_trailer(o->oc);
	avio_flush(o->oc->pb);
}
