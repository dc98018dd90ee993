/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The ingest child (contract in plextv/ingest.h): process hygiene, then "sessions". A session
 * opens one URL with libavformat, maps its streams onto the one output muxer and copies
 * packets until EOF, an error or a stall. The policy between sessions is here too: before the
 * first packet every URL is tried once (the parent's tune deadline is short); afterwards a
 * failing URL is retried with exponential backoff and jitter, then the next URL takes over.
 *
 * Every blocking libavformat call is bounded by one deadline checked in the interrupt
 * callback, so a silent upstream can never hang the child longer than the stall timeout.
 */
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/opt.h>

#include "plextv/common.h"
#include "plextv/ingest.h"
#include "ingest_int.h"

#define FD_TS		  1
#define FD_EV		  2
#define FD_CFG		  3
#define CFG_WAIT_MS	  5000
#define HEALTHY_NS	  (10 * 1000000000ull) /* a session this long resets the retry counts */
#define MEDIA_LEAD_MAX_NS (60 * 1000000000ull) /* media credit counted ahead of the clock */
#define STATS_NS	  (10 * 1000000000ull)

enum sess_end {
	SESS_EOF = 0,	  /* the input ended */
	SESS_ERROR,	  /* read error */
	SESS_STALL,	  /* no packet written for the stall timeout */
	SESS_VIDEO_STALL, /* audio flows, video does not */
	SESS_OPEN_FAILED, /* never opened */
	SESS_NO_DATA,	  /* opened (or timed out) but nothing written */
	SESS_PARENT_GONE, /* EPIPE on fd 1 */
};

static const char *const end_reason[] = {
	[SESS_EOF] = "eof",
	[SESS_ERROR] = "error",
	[SESS_STALL] = "stall",
	[SESS_VIDEO_STALL] = "video_stall",
	[SESS_OPEN_FAILED] = "error",
	[SESS_NO_DATA] = "stall",
	[SESS_PARENT_GONE] = "parent_gone",
};

struct ingest {
	struct ing_cfg cfg;
	struct ing_out out;
	struct ing_map map;
	AVFormatContext *ic;
	AVPacket *pkt;
	uint64_t t0_ns;
	uint64_t rng;
	/* interrupt callback */
	uint64_t deadline_ns;
	bool timed_out;
	/* process-wide */
	bool first_packet; /* any packet written */
	bool saw_no_data;  /* before the first packet: a URL opened or timed out */
	unsigned loops;
	uint64_t corrupt;  /* input packets the demuxer flagged corrupt (CC errors, bad PES) */
	uint64_t stats_ns; /* last "stats" event */
	/* the current session */
	uint64_t sess_start_ns;
	uint64_t sess_first_ns; /* first packet written, 0 before */
	int64_t sess_first_dts;
	uint64_t last_write_ns;
	int64_t sess_video_dts; /* newest video DTS written in this session */
	bool healthy;
	/* reconnect policy: since the last healthy session */
	int used[ING_MAX_URLS]; /* reconnects spent */
	bool tried[ING_MAX_URLS];
	bool rtsp_udp[ING_MAX_URLS]; /* next RTSP attempt without a transport in the URL: UDP */
};

/* ---- small helpers ---- */

static uint64_t rnd(struct ingest *g)
{
	/* xorshift64*: jitter only, no need for quality */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 2685821657736338717ull;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool parent_gone(const struct ingest *g)
{
	return g->cfg.ppid && getppid() != g->cfg.ppid;
}

static int interrupt_cb(void *opaque)
{
	struct ingest *g = opaque;

	if (g->deadline_ns && ptv_now_ns() > g->deadline_ns) {
		g->timed_out = true;
		return 1;
	}
	return parent_gone(g);
}

static void exit_event(int code, const char *reason)
{
	ing_ev("exit", "s:i, s:s", "code", code, "reason", reason);
}

/* ---- process set-up ---- */

static void set_limit(int res, rlim_t v)
{
	struct rlimit rl = {v, v};

	setrlimit(res, &rl); /* best effort: a lower hard limit already set is fine too */
}

static bool is_regular(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && S_ISREG(st.st_mode);
}

/*
 * Child hygiene: die with the parent, no privileges, no core files, bounded memory.
 * Returns -ESRCH when the parent is already gone; the rest is best effort (a sandbox that
 * refuses a prctl must not stop the channel), reported as a log event.
 */
static int harden(const struct ingest *g)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		ing_ev_log("warn", "prctl(PDEATHSIG/NO_NEW_PRIVS) failed");
	/* The parent may have died before PDEATHSIG was armed. */
	if (parent_gone(g))
		return -ESRCH;
	signal(SIGPIPE, SIG_IGN); /* EPIPE on fd 1 is how we learn the parent left */
	set_limit(RLIMIT_CORE, 0);
	/* Nothing is ever written to a file; when fd 1/2 are pipes (always, in production),
	 * RLIMIT_FSIZE 0 turns a would-be file write into a signal. */
	if (!is_regular(FD_TS) && !is_regular(FD_EV))
		set_limit(RLIMIT_FSIZE, 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* (sanitizers' shadow memory reserves terabytes of address space) */
	if (g->cfg.rlimit_as_mb)
		set_limit(RLIMIT_AS, (rlim_t)g->cfg.rlimit_as_mb << 20);
#endif
	return 0;
}

/* Reads the config JSON from fd 3 (EOF ends it) within CFG_WAIT_MS. */
static int read_config(char **out, size_t *len)
{
	uint64_t end = ptv_now_ms() + CFG_WAIT_MS;
	char *buf = ptv_xmalloc(ING_CFG_MAX);
	size_t n = 0;

	for (;;) {
		struct pollfd pfd = {.fd = FD_CFG, .events = POLLIN};
		uint64_t now = ptv_now_ms();
		ssize_t r;

		int pr;

		if (now >= end)
			goto fail;
		pr = poll(&pfd, 1, (int)(end - now));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			goto fail;
		r = read(FD_CFG, buf + n, ING_CFG_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == ING_CFG_MAX)
			goto fail;
	}
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	return -EINVAL;
}

/* ---- opening ---- */

static void set_opt_us(AVDictionary **d, const char *key, int ms)
{
	av_dict_set_int(d, key, (int64_t)ms * 1000, 0);
}

/* Does @url start with "@scheme:"? */
static bool has_scheme(const char *url, const char *scheme)
{
	size_t n = strlen(scheme);

	return !strncasecmp(url, scheme, n) && url[n] == ':';
}

/*
 * "timeout" means socket I/O timeout for http (passed down to tcp), rtsp, udp, rtp and srt,
 * but for rtmp it is a LISTEN timeout that turns the client into a server: set it only where
 * it means what we want. rw_timeout is generic (every URLContext) and always safe.
 */
static bool timeout_means_io(const char *url)
{
	static const char *const io[] = {"http", "https", "rtsp", "rtsps", "udp", "rtp", "srt"};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(io); i++) {
		if (has_scheme(url, io[i]))
			return true;
	}
	return false;
}

static void build_options(const struct ingest *g, AVDictionary **d, const char *url)
{
	const struct ing_cfg *c = &g->cfg;

	av_dict_set(d, "protocol_whitelist", ing_cfg_protocols(c), 0);
	av_dict_set(d, "format_whitelist",
		    c->kind == ING_KIND_FILE ? PTV_INGEST_FILE_FORMATS : PTV_INGEST_URL_FORMATS, 0);
	av_dict_set_int(d, "probesize", c->probesize, 0);
	av_dict_set_int(d, "analyzeduration", c->analyzeduration_us, 0);
	/* Do not wait for frames to estimate the frame rate: MPEG-TS does not need it. */
	av_dict_set_int(d, "fpsprobesize", 0, 0);
	/* Nor read the end of a seekable input (a static .ts over HTTP: one more request) to
	 * compute a duration a live relay never uses. */
	av_dict_set_int(d, "skip_estimate_duration_from_pts", 1, 0);
	if (c->kind == ING_KIND_FILE)
		return;
	set_opt_us(d, "rw_timeout", c->rw_timeout_ms);
	if (timeout_means_io(url))
		set_opt_us(d, "timeout", c->rw_timeout_ms);
	if (has_scheme(url, "srt"))
		av_dict_set_int(d, "connect_timeout", c->rw_timeout_ms, 0); /* ms */
	if (c->user_agent)
		av_dict_set(d, "user_agent", c->user_agent, 0);
	if (c->referer)
		av_dict_set(d, "referer", c->referer, 0);
	if (c->headers)
		av_dict_set(d, "headers", c->headers, 0);
	/* IPTV HLS segment URLs are .php?…, .ts?token=…: the picky check (Debian backport of
	 * FFmpeg 7.1's) would refuse them. file: segments stay out through the whitelist. */
	av_dict_set(d, "extension_picky", "0", 0);
	/* Reconnects are ours (events, backoff, continuity), not the http protocol's. */
	av_dict_set(d, "reconnect", "0", 0);
	if (has_scheme(url, "udp"))
		av_dict_set(d, "overrun_nonfatal", "1", 0); /* a late read drops, not fails */
}

/* Which libavformat error is which event reason. */
static const char *classify(int err, bool timed_out, const char *msg)
{
	if (timed_out || err == AVERROR(ETIMEDOUT))
		return "timeout";
	switch (err) {
	case AVERROR_HTTP_BAD_REQUEST:
	case AVERROR_HTTP_UNAUTHORIZED:
	case AVERROR_HTTP_FORBIDDEN:
	case AVERROR_HTTP_NOT_FOUND:
	case AVERROR_HTTP_OTHER_4XX:
		return "http_4xx";
	case AVERROR_HTTP_SERVER_ERROR:
		return "http_5xx";
	case AVERROR(ECONNREFUSED):
		return "refused";
	case AVERROR(ENOENT):
		return "not_found";
	case AVERROR_PROTOCOL_NOT_FOUND:
		return "protocol_not_allowed";
	case AVERROR_INVALIDDATA:
		return "invalid_data";
	default:
		break;
	}
	if (strstr(msg, "Format not on whitelist"))
		return "format_not_allowed";
	if (strstr(msg, "not on whitelist"))
		return "protocol_not_allowed";
	return "open_failed";
}

static void error_event(int u, const char *reason, int err)
{
	char msg[512], avmsg[256] = "";

	ing_ev_last_error(msg, sizeof(msg), true);
	if (!msg[0] && err < 0) {
		av_strerror(err, avmsg, sizeof(avmsg));
		snprintf(msg, sizeof(msg), "%s", avmsg);
	}
	ing_ev("error", "s:i, s:s, s:s", "url", u, "reason", reason, "msg", msg);
}

/* HLS: each variant is a program with a "variant_bitrate"; keep one, discard the rest. */
static AVProgram *pick_variant(const struct ingest *g, AVFormatContext *ic)
{
	AVProgram *best = NULL;
	int64_t best_bps = 0;

	if (ic->nb_programs < 2 || strcmp(ic->iformat->name, "hls"))
		return NULL;
	for (unsigned i = 0; i < ic->nb_programs; i++) {
		AVDictionaryEntry *e =
			av_dict_get(ic->programs[i]->metadata, "variant_bitrate", NULL, 0);
		int64_t bps = e ? strtoll(e->value, NULL, 10) : 0;
		bool better;

		if (!ic->programs[i]->nb_stream_indexes)
			continue;
		switch (g->cfg.variant) {
		case ING_VARIANT_WORST:
			better = !best || bps < best_bps;
			break;
		case ING_VARIANT_MAX_BPS:
			/* The highest at most the cap; when none fits, the lowest. */
			better = !best ||
				 (bps <= g->cfg.variant_max_bps
					  ? (best_bps > g->cfg.variant_max_bps || bps > best_bps)
					  : (best_bps > g->cfg.variant_max_bps && bps < best_bps));
			break;
		default:
			better = !best || bps > best_bps;
			break;
		}
		if (better) {
			best = ic->programs[i];
			best_bps = bps;
		}
	}
	if (!best)
		return NULL;
	for (unsigned s = 0; s < ic->nb_streams; s++) {
		bool keep = false;

		for (unsigned k = 0; k < best->nb_stream_indexes; k++)
			keep |= best->stream_index[k] == s;
		if (!keep)
			ic->streams[s]->discard = AVDISCARD_ALL;
	}
	return best;
}

static bool usable(const AVStream *st, enum AVMediaType type)
{
	const AVCodecParameters *par = st->codecpar;

	if (par->codec_type != type || par->codec_id == AV_CODEC_ID_NONE ||
	    st->discard == AVDISCARD_ALL || (st->disposition & AV_DISPOSITION_ATTACHED_PIC))
		return false;
	if (type == AVMEDIA_TYPE_SUBTITLE)
		return par->codec_id == AV_CODEC_ID_DVB_SUBTITLE ||
		       par->codec_id == AV_CODEC_ID_DVB_TELETEXT;
	return true;
}

/* av_find_best_stream() within @related's program, else the first usable stream. */
static int pick_stream(AVFormatContext *ic, enum AVMediaType type, int related)
{
	int idx = av_find_best_stream(ic, type, -1, related, NULL, 0);
	const AVProgram *p = related >= 0 ? av_find_program_from_stream(ic, NULL, related) : NULL;

	if (idx >= 0 && usable(ic->streams[idx], type))
		return idx;
	if (p) {
		for (unsigned k = 0; k < p->nb_stream_indexes; k++) {
			if (usable(ic->streams[p->stream_index[k]], type))
				return (int)p->stream_index[k];
		}
		return -1;
	}
	for (unsigned s = 0; s < ic->nb_streams; s++) {
		if (usable(ic->streams[s], type))
			return (int)s;
	}
	return -1;
}

static int pick_streams(AVFormatContext *ic, AVProgram *variant, struct ing_map *m)
{
	int related = variant ? (int)variant->stream_index[0] : -1;
	int v = pick_stream(ic, AVMEDIA_TYPE_VIDEO, related);
	int a = pick_stream(ic, AVMEDIA_TYPE_AUDIO, v >= 0 ? v : related);
	int s = pick_stream(ic, AVMEDIA_TYPE_SUBTITLE, v >= 0 ? v : a);

	m->in_idx[ING_SLOT_VIDEO] = v;
	m->in_idx[ING_SLOT_AUDIO] = a;
	m->in_idx[ING_SLOT_SUB] = s;
	if (v < 0 && a < 0)
		return AVERROR_STREAM_NOT_FOUND;
	/* Let the demuxer skip what we do not copy (other programs of a mux, other variants). */
	for (unsigned i = 0; i < ic->nb_streams; i++) {
		if ((int)i != v && (int)i != a && (int)i != s)
			ic->streams[i]->discard = AVDISCARD_ALL;
	}
	return 0;
}

static void opened_event(int u, AVFormatContext *ic, const struct ing_map *m, int64_t ms)
{
	const AVCodecParameters *v = m->in_idx[ING_SLOT_VIDEO] >= 0
					     ? ic->streams[m->in_idx[ING_SLOT_VIDEO]]->codecpar
					     : NULL;
	const AVCodecParameters *a = m->in_idx[ING_SLOT_AUDIO] >= 0
					     ? ic->streams[m->in_idx[ING_SLOT_AUDIO]]->codecpar
					     : NULL;
	char fmt[32];

	/* "mov,mp4,m4a,…" -> "mov" */
	snprintf(fmt, sizeof(fmt), "%.*s", (int)strcspn(ic->iformat->name, ","), ic->iformat->name);
	ing_ev("opened", "s:i, s:s, s:s?, s:s?, s:i, s:i, s:I", "url", u, "format", fmt, "video",
	       v ? avcodec_get_name(v->codec_id) : NULL, "audio",
	       a ? avcodec_get_name(a->codec_id) : NULL, "w", v ? v->width : 0, "h",
	       v ? v->height : 0, "open_ms", (json_int_t)ms);
}

/* Opens URL @u, probes it and maps its streams. Returns 0 or AVERROR (event written). */
static int open_session(struct ingest *g, int u, int attempt)
{
	const char *url = g->cfg.urls[u];
	char transport[32];
	AVDictionary *opts = NULL;
	AVProgram *variant;
	char *real_url = NULL;
	bool rtsp = has_scheme(url, "rtsp") || has_scheme(url, "rtsps");
	int ret;

	ing_ev("opening", "s:i, s:i", "url", u, "attempt", attempt);
	ing_ev_last_error(transport, sizeof(transport), true); /* forget older errors */
	if (ing_cfg_check_scheme(&g->cfg, url)) {
		ing_ev("error", "s:i, s:s, s:s", "url", u, "reason", "protocol_not_allowed", "msg",
		       "scheme not allowed for this source kind");
		return AVERROR(EPERM);
	}
	build_options(g, &opts, url);
	real_url = rtsp ? ing_url_take_param(url, "rtsp_transport", transport, sizeof(transport))
			: ptv_xstrdup(url);
	if (rtsp)
		av_dict_set(&opts, "rtsp_transport",
			    transport[0] ? transport : (g->rtsp_udp[u] ? "udp" : "tcp"), 0);
	g->ic = avformat_alloc_context();
	if (!g->ic) {
		ret = AVERROR(ENOMEM);
		goto out;
	}
	g->ic->interrupt_callback = (AVIOInterruptCB){interrupt_cb, g};
	ret = avformat_open_input(&g->ic, real_url, NULL, &opts);
	if (ret < 0) {
		error_event(u, classify(ret, g->timed_out, ""), ret);
		goto out;
	}
	variant = pick_variant(g, g->ic);
	ret = avformat_find_stream_info(g->ic, NULL);
	if (ret >= 0)
		ret = pick_streams(g->ic, variant, &g->map);
	if (ret < 0) {
		error_event(u, g->timed_out ? "timeout" : "no_streams", ret);
		goto out;
	}
	opened_event(u, g->ic, &g->map,
		     ing_ev_elapsed_ms() - (int64_t)((g->sess_start_ns - g->t0_ns) / 1000000u));
	ret = ing_out_map(&g->out, g->ic, &g->map);
	if (ret < 0)
		error_event(u, "open_failed", ret);
out:
	av_dict_free(&opts);
	free(real_url);
	return ret;
}

/* ---- reading ---- */

/* The stall deadline: past the newest write, and past the media already delivered ahead of
 * the clock (an HLS start delivers several segments at once, then nothing for a while). */
static uint64_t stall_deadline(const struct ingest *g)
{
	uint64_t stall = (uint64_t)g->cfg.stall_timeout_ms * 1000000u, base, lead = 0;
	int64_t newest = AV_NOPTS_VALUE;

	if (!g->sess_first_ns)
		return g->sess_start_ns + stall;
	for (int i = 0; i < ING_SLOT_SUB; i++) { /* audio and video: subtitles are sparse */
		int64_t d = ing_out_last_dts(&g->out, i);

		if (d != AV_NOPTS_VALUE && (newest == AV_NOPTS_VALUE || d > newest))
			newest = d;
	}
	base = g->last_write_ns;
	if (newest != AV_NOPTS_VALUE && newest > g->sess_first_dts)
		lead = (uint64_t)av_rescale(newest - g->sess_first_dts, 1000000000, 90000);
	if (g->sess_first_ns + PTV_MIN(lead, MEDIA_LEAD_MAX_NS) > base)
		base = g->sess_first_ns + PTV_MIN(lead, MEDIA_LEAD_MAX_NS);
	return base + stall;
}

static int slot_of(const struct ing_map *m, int idx)
{
	for (int s = 0; s < ING_SLOT_N; s++) {
		if (m->in_idx[s] == idx)
			return s;
	}
	return -1;
}

/* Book-keeping after a written packet; returns true on a video stall. */
static bool after_write(struct ingest *g, int slot)
{
	uint64_t now = ptv_now_ns();
	int64_t dts = ing_out_last_dts(&g->out, slot);

	if (!g->first_packet) {
		g->first_packet = true;
		ing_ev("first_packet", "s:I", "ms", (json_int_t)ing_ev_elapsed_ms());
	}
	if (!g->sess_first_ns) {
		g->sess_first_ns = now;
		g->sess_first_dts = dts;
		g->sess_video_dts = dts;
	}
	g->last_write_ns = now;
	if (now - g->sess_first_ns >= HEALTHY_NS)
		g->healthy = true;
	if (slot == ING_SLOT_VIDEO)
		g->sess_video_dts = dts;
	/* Video frozen while audio flows: audio runs ahead of the newest video in media time. */
	return slot == ING_SLOT_AUDIO && g->out.trk[ING_SLOT_VIDEO].st &&
	       dts - g->sess_video_dts > (int64_t)g->cfg.video_stall_ms * 90;
}

/* Counters for the parent's metrics, every STATS_NS while packets flow. */
static void stats_event(struct ingest *g)
{
	uint64_t now = ptv_now_ns();

	if (now - g->stats_ns < STATS_NS)
		return;
	g->stats_ns = now;
	ing_ev("stats", "s:I, s:I, s:I", "packets", (json_int_t)g->out.packets, "dropped",
	       (json_int_t)g->out.dropped, "corrupt", (json_int_t)g->corrupt);
}

static enum sess_end read_loop(struct ingest *g, int u)
{
	int ret, slot;

	for (;;) {
		g->deadline_ns = stall_deadline(g);
		/* Also checked here: a demuxer answering EAGAIN never calls the interrupt. */
		if (ptv_now_ns() > g->deadline_ns) {
			g->timed_out = true;
			return g->sess_first_ns ? SESS_STALL : SESS_NO_DATA;
		}
		ret = av_read_frame(g->ic, g->pkt);
		if (ret == AVERROR_EOF || (ret < 0 && !g->timed_out && avio_feof(g->ic->pb)))
			return g->sess_first_ns ? SESS_EOF : SESS_NO_DATA;
		if (ret < 0 && g->timed_out)
			return g->sess_first_ns ? SESS_STALL : SESS_NO_DATA;
		if (ret < 0) {
			if (ret != AVERROR(EAGAIN)) {
				error_event(u, "read_error", ret);
				return g->sess_first_ns ? SESS_ERROR : SESS_NO_DATA;
			}
			sleep_ms(10);
			continue;
		}
		slot = slot_of(&g->map, g->pkt->stream_index);
		if (slot >= 0 && (g->pkt->flags & AV_PKT_FLAG_CORRUPT))
			g->corrupt++;
		stats_event(g);
		ret = ing_out_write(&g->out, &g->map, g->pkt, g->cfg.realtime);
		if (ret < 0 && g->out.oc->pb->error < 0)
			return SESS_PARENT_GONE; /* fd 1 is broken: EPIPE or worse, nobody reads */
		if (ret == 1 && after_write(g, slot))
			return SESS_VIDEO_STALL;
	}
}

static enum sess_end session(struct ingest *g, int u, int attempt)
{
	enum sess_end end;

	g->sess_start_ns = ptv_now_ns();
	g->sess_first_ns = 0;
	g->healthy = false;
	g->timed_out = false;
	g->deadline_ns = g->sess_start_ns + (uint64_t)g->cfg.stall_timeout_ms * 1000000u;
	if (open_session(g, u, attempt) < 0) {
		end = g->timed_out ? SESS_NO_DATA : SESS_OPEN_FAILED;
		if (g->out.epipe)
			end = SESS_PARENT_GONE;
	} else {
		end = read_loop(g, u);
		if (end == SESS_NO_DATA && !g->timed_out)
			end = SESS_OPEN_FAILED; /* EOF or an error before the first packet */
		if (end == SESS_NO_DATA)
			error_event(u, "no_data", 0);
	}
	if (g->out.epipe || parent_gone(g))
		end = SESS_PARENT_GONE;
	/* RTSP without an explicit transport: TCP first, the other one after a failed start. */
	if (end == SESS_OPEN_FAILED || end == SESS_NO_DATA)
		g->rtsp_udp[u] = !g->rtsp_udp[u];
	g->deadline_ns = 0;
	ing_out_unmap(&g->out, &g->map);
	avformat_close_input(&g->ic);
	return end;
}

/* ---- policy ---- */

static int backoff_ms(struct ingest *g, int attempt)
{
	int64_t d = g->cfg.backoff_initial_ms;

	for (int i = 1; i < attempt && d < g->cfg.backoff_max_ms; i++)
		d *= 2;
	d = PTV_MIN(d, (int64_t)g->cfg.backoff_max_ms);
	/* Equal jitter: [d/2, d], so a fleet of children does not retry in lockstep. */
	if (d > 1)
		d = d / 2 + (int64_t)(rnd(g) % (uint64_t)(d / 2 + 1));
	return (int)d;
}

/* Before the first packet: each URL once, in order, no backoff. */
static int first_tune(struct ingest *g, int *url, enum sess_end *end)
{
	for (int u = 0; u < g->cfg.n_urls; u++) {
		if (u > 0)
			ing_ev("failover", "s:i", "url", u);
		*end = session(g, u, 0);
		g->tried[u] = true;
		if (*end == SESS_PARENT_GONE)
			return PTV_INGEST_EXIT_OK;
		if (g->first_packet) {
			*url = u;
			return -1;
		}
		g->saw_no_data |= *end == SESS_NO_DATA;
	}
	if (g->saw_no_data) {
		exit_event(PTV_INGEST_EXIT_NO_DATA, "no_data");
		return PTV_INGEST_EXIT_NO_DATA;
	}
	exit_event(PTV_INGEST_EXIT_OPEN_FAILED, "open_failed");
	return PTV_INGEST_EXIT_OPEN_FAILED;
}

/* The URL to fail over to after @u: the next one not tried in this outage, or -1. */
static int next_url(const struct ingest *g, int u)
{
	for (int i = 1; i < g->cfg.n_urls; i++) {
		int v = (u + i) % g->cfg.n_urls;

		if (!g->tried[v])
			return v;
	}
	return -1;
}

/* After the first packet: keep the output going until the parent leaves or we give up. */
static int keep_streaming(struct ingest *g, int u, enum sess_end end)
{
	for (;;) {
		bool file_eof = end == SESS_EOF && g->cfg.kind == ING_KIND_FILE;
		int attempt = 0;

		if (end == SESS_PARENT_GONE)
			return PTV_INGEST_EXIT_OK;
		if (file_eof && !g->cfg.loop) {
			ing_out_finish(&g->out);
			exit_event(PTV_INGEST_EXIT_OK, "eof");
			return PTV_INGEST_EXIT_OK;
		}
		if (g->healthy || file_eof) {
			/* A good run (or a file loop) starts a new outage count. */
			memset(g->used, 0, sizeof(g->used));
			memset(g->tried, 0, sizeof(g->tried));
			g->tried[u] = true;
		}
		if (file_eof) {
			ing_ev("loop", "s:i", "n", ++g->loops);
		} else if (g->used[u] < g->cfg.max_reconnects) {
			int delay = backoff_ms(g, ++g->used[u]);

			attempt = g->used[u];
			ing_ev("reconnect", "s:i, s:i, s:s, s:i", "url", u, "attempt", attempt,
			       "reason", end_reason[end], "delay_ms", delay);
			sleep_ms(delay);
		} else {
			u = next_url(g, u);
			if (u < 0) {
				exit_event(PTV_INGEST_EXIT_GAVE_UP, "gave_up");
				return PTV_INGEST_EXIT_GAVE_UP;
			}
			g->tried[u] = true;
			ing_ev("failover", "s:i", "url", u);
		}
		end = session(g, u, attempt);
	}
}

static int run(struct ingest *g)
{
	enum sess_end end;
	int u = 0, ret;

	ret = first_tune(g, &u, &end);
	if (ret >= 0)
		return ret;
	return keep_streaming(g, u, end);
}

/* ---- entry points ---- */

static int setup(struct ingest *g)
{
	char err[256], *buf = NULL;
	size_t len = 0;
	int ret;

	if (read_config(&buf, &len)) {
		ing_ev("error", "s:s, s:s", "reason", "bad_config", "msg",
		       "no config on fd 3 within 5 s (or larger than 64 KiB)");
		return PTV_INGEST_EXIT_CONFIG;
	}
	ret = ing_cfg_parse(&g->cfg, buf, len, err, sizeof(err));
	free(buf);
	if (ret) {
		ing_ev("error", "s:s, s:s", "reason", "bad_config", "msg", err);
		return PTV_INGEST_EXIT_CONFIG;
	}
	if (harden(g))
		return PTV_INGEST_EXIT_OK; /* the parent is already gone */
	if (getrandom(&g->rng, sizeof(g->rng), GRND_NONBLOCK) != sizeof(g->rng))
		g->rng = g->t0_ns ^ (uint64_t)getpid();
	g->rng |= 1;
	g->stats_ns = g->t0_ns;
	g->pkt = av_packet_alloc();
	if (!g->pkt || ing_out_init(&g->out, FD_TS))
		return PTV_INGEST_EXIT_CONFIG;
	g->out.service = g->cfg.channel;
	for (int i = 0; i < ING_SLOT_N; i++)
		g->map.in_idx[i] = -1;
	return -1;
}

int ptv_ingest_main(void)
{
	struct ingest *g = ptv_xcalloc(1, sizeof(*g));
	int ret;

	g->t0_ns = ptv_now_ns();
	/* Only fds 0-3 belong to us; anything else leaked in from the parent is closed. */
	close_range(FD_CFG + 1, ~0u, 0);
	ing_ev_init(FD_EV, g->t0_ns);
	ret = setup(g);
	close(FD_CFG);
	if (ret < 0) {
		avformat_network_init();
		ret = run(g);
		avformat_network_deinit();
	}
	av_packet_free(&g->pkt);
	avformat_close_input(&g->ic);
	ing_out_deinit(&g->out);
	ing_cfg_free(&g->cfg);
	free(g);
	return ret;
}

int ptv_ingest_cli(struct cli_ctx *x)
{
	return ptv_ingest_main();
}
