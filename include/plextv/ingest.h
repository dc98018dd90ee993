/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Ingest child: one process per upstream. It demuxes one channel's upstream with libavformat
 * and writes one continuous MPEG-TS on its stdout. FFmpeg parses untrusted input, so a crash,
 * a hang or a memory blow-up stays inside this process; the parent restarts it with backoff.
 *
 * ---- Contract (parent <-> child) -------------------------------------------------------------
 *
 * Spawn: `/proc/self/exe ingest` with
 *   fd 0 = /dev/null,
 *   fd 1 = write end of the TS pipe,
 *   fd 2 = write end of the event pipe,
 *   fd 3 = read end of a pipe carrying ONE JSON config object; the parent writes it and closes
 *          its end (credentials never appear in argv or /proc/PID/cmdline).
 * Other fds are closed by the child at start (close_range(4, ~0U)). Environment: minimal
 * (libavformat honours http_proxy/no_proxy if the parent passes them).
 * The config must arrive within 5 s, at most 64 KiB, or the child exits 1.
 *
 * Config (unknown keys ignored; a key with the wrong JSON type or out of range -> exit 1):
 *   "channel"             string  label for logs                             default ""
 *   "kind"                "url" | "file"                                     default "url"
 *   "urls"                [string, ...]  primary first, then backups; 1..16  required
 *   "headers"             {"Name": "value", ...}  sent on HTTP(S) requests; "User-Agent"
 *                         and "Referer" also become the user_agent/referer options
 *   "loop"                bool    file kind: restart at EOF forever          default false
 *   "probesize"           int     bytes, 32..50000000                        default 1000000
 *   "analyzeduration_us"  int     0..60000000                                default 1000000
 *   "rw_timeout_ms"       int     one network read/connect, 100..600000      default 5000
 *   "stall_timeout_ms"    int     no packet written for this long, 500..600000 default 5000
 *                                 (also the budget from open to first packet)
 *   "video_stall_ms"      int     video behind audio by this much media time  default 5000
 *                                 while audio flows, 500..600000
 *   "max_reconnects_per_url" int  0..1000                                    default 3
 *   "backoff_initial_ms"  int     0..600000                                  default 500
 *   "backoff_max_ms"      int     0..600000                                  default 8000
 *   "protocol_whitelist"  string  override of the per-kind list below        default per kind
 *   "hls_variant"         "best" | "worst" | "<max bandwidth in bit/s>"     default "best"
 *  Extensions (not in the original contract; the parent may omit them):
 *   "realtime"            bool    pace output at the media clock (like ffmpeg -re); needed for
 *                                 files, harmful for live sources    default: true for "file"
 *   "ppid"                int     the parent's pid: the child exits 0 at once when its parent
 *                                 is already someone else (died before PR_SET_PDEATHSIG took)
 *   "rlimit_as_mb"        int     RLIMIT_AS cap, 0 = none, 256..65536        default 1024
 *
 * Per-kind security (FFmpeg 5.1 allows every protocol at top level unless told otherwise):
 *   url:  protocol_whitelist = PTV_INGEST_URL_PROTOCOLS, format_whitelist =
 *         PTV_INGEST_URL_FORMATS. Never file, concat, subfile, data, pipe: a remote HLS
 *         playlist cannot reach local files. The scheme of every configured URL is checked
 *         before libavformat sees it: http(s), rtsp(s), rtmp*, udp, rtp, srt, rist only (the
 *         nested tcp/tls/crypto/hls are whitelisted for libavformat's own use, not at top
 *         level, where tcp://…?listen would even make us a server).
 *   file: protocol_whitelist = "file", format_whitelist = PTV_INGEST_FILE_FORMATS (no hls or
 *         dash, so a local playlist cannot pull other files).
 *   HLS: extension_picky = 0 so IPTV segment URLs like seg.php?n=1 or x.ts?token=… play;
 *        file: segments stay blocked by the protocol whitelist.
 *   Per-protocol options: "timeout" (socket I/O) only for http(s), rtsp, udp, rtp and srt;
 *        for rtmp FFmpeg's "timeout" means LISTEN, so rtmp gets only the generic rw_timeout.
 *        http: no internal reconnect (ours has events, backoff and timestamp continuity).
 *        udp: overrun_nonfatal=1. srt: connect_timeout = rw_timeout_ms.
 *   URL query options worth knowing:
 *        udp://239.1.1.1:1234?localaddr=IFACE_IP&sources=SRC_IP (multicast interface and
 *        source-specific multicast; parsed by FFmpeg's udp protocol itself);
 *        rtsp://…?rtsp_transport=udp|tcp|udp_multicast|http: FFmpeg does not read this from
 *        the URL; the child takes it out of the query and sets the option. Without it: TCP,
 *        switching to UDP (and back) after each attempt that fails to start.
 *
 * Output on fd 1: MPEG-TS, 188-byte packets, codec copy (no transcoding). One mpegts muxer for
 *   the life of the process: PAT/PMT every 0.1 s and before every video keyframe, SDT every
 *   0.5 s, PCR from the muxer (VBR, derived from DTS), max_delay 0.2 s, every write(2) is a
 *   whole number of 188-byte packets (the avio buffer is 174 * 188 bytes and is flushed after
 *   every muxed packet). Output starts with SDT, PAT, PMT, then the first video keyframe
 *   (when the input has video: each session drops what comes before its first keyframe).
 *   Across reconnects, failovers and file loops the demuxer is reopened and timestamps are
 *   offset so output DTS/PTS/PCR keep increasing (contiguous: the next packet follows the
 *   last one by one frame, the outage itself is not represented); continuity counters are
 *   continuous because the muxer is the same. Streams: first video, first audio and first
 *   DVB subtitle/teletext of the chosen program (HLS: the chosen variant). H.264/HEVC in
 *   AVCC form (RTMP, MP4/DASH) is converted to Annex B; raw AAC gets ADTS headers, so a
 *   failover between source types stays valid. If a later input has another codec for a
 *   stream, a "layout" event says so and that stream's packets are dropped (a video codec
 *   change then ends in a video_stall reconnect; the parent's restart makes a new muxer).
 *   A write to fd 1 failing with EPIPE means the parent went away: exit 0 at once.
 *
 * Events on fd 2: one JSON object per line, each line one write(2) of at most 4096 bytes
 * (atomic on a pipe). URLs are never printed: "url" is an index into "urls"; free text passes
 * through ptv_redact_text().
 *   {"ev":"opening","url":I,"attempt":n}
 *   {"ev":"opened","url":I,"format":"hls","video":"h264","audio":"aac","w":640,"h":360,
 *    "open_ms":T}            (video/audio null when absent; open_ms: open + probe time)
 *   {"ev":"first_packet","ms":T}   first TS bytes written, T ms after the child started
 *   {"ev":"reconnect","url":I,"attempt":n,"reason":"eof|error|stall|video_stall",
 *    "delay_ms":d}           before sleeping d ms and retrying the same URL
 *   {"ev":"failover","url":I} now trying URL I (reason: the previous one failed)
 *   {"ev":"error","url":I,"reason":R,"msg":"…"}  R one of open_failed, http_4xx, http_5xx,
 *                            refused, timeout, no_data, no_streams, not_found,
 *                            protocol_not_allowed, format_not_allowed, invalid_data, read_error;
 *                            and {"ev":"error","reason":"bad_config","msg":…} (no "url") before
 *                            exit 1
 *   {"ev":"log","level":"warn"|"error","msg":"…"}  av_log at warning and above, redacted,
 *                            rate-limited (burst 20, then 1/s; "suppressed N" when resuming)
 *   Extensions: {"ev":"loop","n":k} (file kind restarted at EOF, k-th time),
 *               {"ev":"layout","stream":"video","from":"h264","to":"hevc"} (codec change),
 *               {"ev":"exit","code":c,"reason":"…"} (last line before a deliberate exit),
 *               {"ev":"stats","packets":p,"dropped":d,"corrupt":c} every 10 s while packets
 *               flow: totals since start of packets written, packets not written (before a
 *               keyframe, duplicates, codec changes) and input packets the demuxer flagged
 *               corrupt (continuity errors, bad PES: the "continuity errors upstream" metric).
 *
 * Exit codes (enum ptv_ingest_exit):
 *   0 parent gone (EPIPE on fd 1) or clean end of a non-looping file;
 *   1 bad config;
 *   2 every URL failed to open before any packet was written (parent: 503 + 806);
 *   3 nothing written before the first packet deadline (stall_timeout_ms): a URL opened or
 *     timed out but gave no packet (parent: 503 + 807). Before the first packet each URL is
 *     tried once, in order, no backoff (the parent's tune deadline is short), so the child
 *     decides within n_urls * stall_timeout_ms at most;
 *   4 mid-stream: in one outage every URL failed its failover try and max_reconnects_per_url
 *     reconnects (a file loop that yields no packet counts as a failed attempt);
 *   a signal: crash (the parent restarts with backoff).
 *
 * Reconnect policy (after the first packet): the failing URL is retried after a backoff of
 * backoff_initial_ms * 2^(attempt-1), capped at backoff_max_ms, with "equal jitter" (a random
 * value in [d/2, d]); after max_reconnects_per_url failed attempts the next URL is tried at
 * once (failover), cycling through the list. A session that delivers packets for 10 s resets
 * every URL's attempt count. Stall: no packet written for stall_timeout_ms (measured past the
 * media already delivered ahead of real time, so HLS bursts do not count as stalls).
 *
 * Child hygiene: PR_SET_PDEATHSIG(SIGKILL) (note: it fires when the parent THREAD that forked
 * exits, so spawn from a long-lived thread), PR_SET_NO_NEW_PRIVS, RLIMIT_CORE 0,
 * RLIMIT_FSIZE 0 when fds 1 and 2 are pipes (no file is ever written), RLIMIT_AS per
 * rlimit_as_mb (not in ASan/TSan builds), SIGPIPE ignored.
 */
#pragma once

/* Protocols and demuxers allowed per kind; "dash" needs FFmpeg built with libxml2 (Debian is). */
#define PTV_INGEST_URL_PROTOCOLS                                                               \
	"http,https,tcp,tls,crypto,hls,httpproxy,rtp,srtp,rtsp,rtsps,rtmp,rtmps,rtmpt,rtmpts," \
	"rtmpe,rtmpte,ffrtmphttp,ffrtmpcrypt,udp,srt,rist"
#define PTV_INGEST_URL_FORMATS \
	"mpegts,mpegtsraw,hls,dash,flv,live_flv,rtsp,rtp,mov,aac,mp3,ac3,eac3,webvtt"
#define PTV_INGEST_FILE_FORMATS "mpegts,flv,mov"

/** Exit statuses of the ingest child (see the contract above). */
enum ptv_ingest_exit {
	PTV_INGEST_EXIT_OK = 0,		 /* parent gone, or end of a non-looping file */
	PTV_INGEST_EXIT_CONFIG = 1,	 /* bad config */
	PTV_INGEST_EXIT_OPEN_FAILED = 2, /* no URL opened before the first packet: 806 */
	PTV_INGEST_EXIT_NO_DATA = 3,	 /* no packet before the first-packet deadline: 807 */
	PTV_INGEST_EXIT_GAVE_UP = 4,	 /* mid-stream, every URL used up its reconnects */
};

/**
 * Runs the ingest child on the fds of the contract (0, 1, 2, 3) and returns its exit status
 * (enum ptv_ingest_exit). Changes process-wide state (rlimits, prctl, signals, av_log): call
 * it only in a process made for it (the `ingest` command, or a forked test child).
 */
int ptv_ingest_main(void);

struct cli_ctx;
/** The hidden `plextv ingest` command (a row of cli.c's table); ignores its arguments. */
int ptv_ingest_cli(struct cli_ctx *x);
