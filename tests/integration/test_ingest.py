# SPDX-License-Identifier: GPL-3.0-or-later
"""The ingest child (`plextv ingest`, contract in include/plextv/ingest.h) against real
upstream peers on loopback or in a network namespace made for the test: HTTP TS (ffmpeg),
live HLS and DASH (ffmpeg + nginx; HLS also with .php segment URLs and a variant choice),
RTMP (nginx-rtmp), RTSP over TCP and UDP (GStreamer), SRT (ffmpeg), UDP and RTP multicast
(ffmpeg in a netns). For each: ffprobe finds video and audio, and our own TS check finds
zero continuity errors, PAT/PMT first and repeated, DTS increasing, no gap.
Faults: upstream killed and restarted mid-stream, failover to a backup URL (at tune time and
mid-stream), giving up (exit 4), dead upstream (exit 2), silent upstream (exit 3), stall and
frozen video mid-stream, HTML instead of TS, 404, hostile HLS playlists whose segments or
keys point at local files, credentials in URLs, headers, EPIPE and parent death.

Cold-open times (spawn to first TS byte) are printed per source type, not asserted.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
import sources  # noqa: E402
from sources import Ingest, PeerUnavailable  # noqa: E402

BIN = ptvtest.BIN
COLD_OPEN = {}  # source type -> first-byte ms, printed at the end


def config(urls, **kw):
    cfg = {"channel": "it", "kind": "url", "urls": urls, "stall_timeout_ms": 4000,
           "rw_timeout_ms": 3000, "backoff_initial_ms": 200, "backoff_max_ms": 1000}
    cfg.update(kw)
    return cfg


class IngestCase(unittest.TestCase):
    def setUp(self):
        self.peers = []
        self.children = []

    def tearDown(self):
        for c in self.children:
            c.stop()
        for p in reversed(self.peers):
            p.close()
        # Every stderr line is a JSON event: anything else is a sanitizer report or a
        # stray print, and fails the test (the nginx-tests rule).
        for c in self.children:
            self.assertFalse(c.evs("UNPARSEABLE"), c.describe())

    def peer(self, cls, *a, **kw):
        try:
            p = cls(*a, **kw)
        except PeerUnavailable as e:
            self.skipTest(str(e))
        self.peers.append(p)
        try:
            return p.start()
        except PeerUnavailable as e:
            self.skipTest(str(e))

    def ingest(self, cfg, **kw):
        c = Ingest(BIN, cfg, **kw)
        self.children.append(c)
        return c

    def play(self, kind, url, seconds=5.0, wrap=None, **cfg):
        """Runs the child on @url until it delivered @seconds of media, then checks it."""
        c = self.ingest(config([url], **cfg), wrap=wrap)
        ok = c.wait_media(seconds, timeout=seconds + 15)
        rc = c.stop()
        self.assertTrue(ok, f"{kind}: not {seconds} s of media; {c.describe()}")
        self.assertEqual(rc, -9, f"{kind}: the child exited by itself; {c.describe()}")
        COLD_OPEN[kind] = c.first_byte_ms
        data = c.data()
        sources.assert_ts_ok(self, data, min_seconds=seconds - 1)
        probed = sources.ffprobe_streams(data)
        self.assertIn("video", probed, f"{kind}: ffprobe found {probed}")
        self.assertIn("audio", probed, f"{kind}: ffprobe found {probed}")
        self.assertTrue(c.evs("opened") and c.evs("first_packet"), c.describe())
        self.assertFalse(c.evs("UNPARSEABLE"), c.describe())
        return c

    # -- one test per source type --

    def test_http_ts(self):
        srv = self.peer(sources.HttpTsServer)
        c = self.play("http-ts", srv.url)
        self.assertEqual(c.evs("opened")[0]["format"], "mpegts")

    def test_hls(self):
        srv = self.peer(sources.HlsServer)
        c = self.play("hls", srv.url)
        self.assertEqual(c.evs("opened")[0]["format"], "hls")

    def test_hls_php_segments(self):
        # Segment URLs like seg.php?n=12: refused by FFmpeg's picky extension check unless
        # the child relaxes it (Debian 5.1.9 backported extension_picky).
        srv = self.peer(sources.HlsServer, php=True)
        self.play("hls-php", srv.url)
        with open(os.path.join(srv.tmp, "nginx-access.log")) as f:
            self.assertIn("/hls/seg.php?n=", f.read(), "segments were not fetched as .php")

    def test_dash(self):
        srv = self.peer(sources.DashServer)
        c = self.play("dash", srv.url)
        self.assertEqual(c.evs("opened")[0]["format"], "dash")

    def test_hls_variant_choice(self):
        low = self.peer(sources.HlsServer, src=sources.demo_file(2))
        high = self.peer(sources.HlsServer, src=sources.demo_file(1))
        master = ("#EXTM3U\n"
                  "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\n"
                  f"{high.url}\n"
                  "#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=640x360\n"
                  f"{low.url}\n").encode()
        st = self.peer(sources.StaticHttp,
                       {"/master.m3u8": (200, "application/vnd.apple.mpegurl", master)})
        for choice, want, other in (("worst", low, high), ("500000", low, high),
                                    ("best", high, low)):
            marks = [_segment_fetches(want), _segment_fetches(other)]
            c = self.play(f"hls-variant-{choice}", st.url("/master.m3u8"), seconds=4,
                          hls_variant=choice)
            got = [_segment_fetches(want) - marks[0], _segment_fetches(other) - marks[1]]
            # At open FFmpeg probes the first segment of every variant; after that only
            # the chosen one is read.
            self.assertGreater(got[0], got[1] + 1, f"{choice}: fetches {got}; {c.describe()}")

    def test_rtmp(self):
        srv = self.peer(sources.RtmpServer)
        c = self.play("rtmp", srv.url)
        self.assertIn(c.evs("opened")[0]["format"], ("flv", "live_flv"))

    def test_rtsp_tcp(self):
        srv = self.peer(sources.RtspServer)
        c = self.play("rtsp-tcp", srv.url)
        self.assertEqual(c.evs("opened")[0]["format"], "rtsp")

    def test_rtsp_udp(self):
        srv = self.peer(sources.RtspServer)
        self.play("rtsp-udp", srv.url + "?rtsp_transport=udp")

    def test_srt(self):
        srv = self.peer(sources.SrtServer)
        self.play("srt", srv.url)

    def test_udp_multicast(self):
        snd = self.peer(sources.MulticastSender)
        self.play("udp-multicast", snd.url, wrap=snd.wrap)

    def test_rtp_multicast(self):
        snd = self.peer(sources.MulticastSender, rtp=True, port=5006)
        self.play("rtp-multicast", snd.url, wrap=snd.wrap)

    # -- faults --

    def test_upstream_restart_keeps_output_continuous(self):
        srv = self.peer(sources.HttpTsServer)
        c = self.ingest(config([srv.url], max_reconnects_per_url=10))
        self.assertTrue(c.wait_media(3, 15), c.describe())
        srv.kill_server()
        self.assertTrue(c.wait_event("reconnect", 10), c.describe())
        time.sleep(0.5)
        srv.start()
        self.assertTrue(c.wait_event("opened", 15, lambda e: True) and
                        wait_count(c, "opened", 2, 15), c.describe())
        before = sources.ts_check(c.data()).duration_s()
        self.assertTrue(c.wait_media(before + 3, 15), c.describe())
        self.assertEqual(c.stop(), -9, c.describe())
        rec = c.evs("reconnect")[0]
        self.assertEqual(rec["url"], 0)
        self.assertIn(rec["reason"], ("eof", "error"))
        self.assertGreater(rec["delay_ms"], 0)
        sources.assert_ts_ok(self, c.data(), min_seconds=5)

    def test_failover_when_primary_is_dead(self):
        srv = self.peer(sources.HttpTsServer)
        dead = f"http://127.0.0.1:{sources.free_port()}/dead.ts"
        c = self.ingest(config([dead, srv.url]))
        self.assertTrue(c.wait_media(3, 15), c.describe())
        c.stop()
        self.assertEqual(c.evs("error")[0]["reason"], "refused", c.describe())
        self.assertEqual([e["url"] for e in c.evs("failover")], [1], c.describe())
        self.assertEqual(c.evs("opened")[0]["url"], 1)
        sources.assert_ts_ok(self, c.data(), min_seconds=2)

    def test_failover_mid_stream(self):
        primary = self.peer(sources.HttpTsServer, src=sources.demo_file(1))
        backup = self.peer(sources.HttpTsServer, src=sources.demo_file(2))
        c = self.ingest(config([primary.url, backup.url], max_reconnects_per_url=1))
        self.assertTrue(c.wait_media(3, 15), c.describe())
        primary.kill_server()
        self.assertTrue(c.wait_event("failover", 10, lambda e: e["url"] == 1), c.describe())
        before = sources.ts_check(c.data()).duration_s()
        self.assertTrue(c.wait_media(before + 3, 15), c.describe())
        self.assertEqual(c.stop(), -9, c.describe())
        sources.assert_ts_ok(self, c.data(), min_seconds=5)

    def test_gives_up_exit_4(self):
        srv = self.peer(sources.HttpTsServer)
        c = self.ingest(config([srv.url], max_reconnects_per_url=2))
        self.assertTrue(c.wait_media(2, 15), c.describe())
        srv.kill_server()
        self.assertEqual(c.wait_exit(10), 4, c.describe())
        self.assertEqual([e["attempt"] for e in c.evs("reconnect")], [1, 2], c.describe())
        self.assertEqual(c.evs("exit")[-1]["code"], 4)
        sources.assert_ts_ok(self, c.data(), min_seconds=1)

    def test_dead_upstream_exit_2(self):
        url = f"http://127.0.0.1:{sources.free_port()}/x.ts"
        t0 = time.monotonic()
        c = self.ingest(config([url, url.replace(".ts", "2.ts")]))
        rc = c.wait_exit(10)
        self.assertEqual(rc, 2, c.describe())
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(len(c.data()), 0)

    def test_silent_upstream_exit_3(self):
        srv = self.peer(sources.SilentServer)
        t0 = time.monotonic()
        c = self.ingest(config([srv.url], stall_timeout_ms=2000))
        rc = c.wait_exit(10)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 3, c.describe())
        self.assertLess(elapsed, 2.0 + 1.5, c.describe())
        self.assertGreaterEqual(elapsed, 1.9)
        self.assertTrue(c.evs("error"), c.describe())

    def test_stall_mid_stream_reconnects(self):
        srv = self.peer(sources.PacedTsServer, stall_after_s=3)
        c = self.ingest(config([srv.url], stall_timeout_ms=1500))
        self.assertTrue(c.wait_event("reconnect", 12), c.describe())
        c.stop()
        self.assertEqual(c.evs("reconnect")[0]["reason"], "stall", c.describe())
        sources.assert_ts_ok(self, c.data(), min_seconds=2)

    def test_video_stall_reconnects(self):
        srv = self.peer(sources.PacedTsServer, drop_video_after_s=2.5)
        c = self.ingest(config([srv.url], video_stall_ms=1500))
        self.assertTrue(c.wait_event("reconnect", 12), c.describe())
        c.stop()
        self.assertEqual(c.evs("reconnect")[0]["reason"], "video_stall", c.describe())
        self.assertGreaterEqual(srv.connections, 1)

    def test_html_instead_of_ts(self):
        page = b"<!doctype html><html><body><h1>Subscription expired</h1>" + b"x" * 4000
        srv = self.peer(sources.StaticHttp, {"/live.ts": (200, "text/html", page)})
        c = self.ingest(config([srv.url("/live.ts")]))
        rc = c.wait_exit(10)
        self.assertEqual(rc, 2, c.describe())
        err = c.evs("error")[-1]
        self.assertIn(err["reason"], ("invalid_data", "format_not_allowed"), c.describe())
        self.assertEqual(len(c.data()), 0)

    def test_http_404(self):
        srv = self.peer(sources.StaticHttp, {})
        c = self.ingest(config([srv.url("/nope.ts")]))
        self.assertEqual(c.wait_exit(10), 2, c.describe())
        self.assertEqual(c.evs("error")[-1]["reason"], "http_4xx", c.describe())

    def test_hostile_hls_never_reads_local_files(self):
        # The canary is a FIFO: it can be seen being opened for reading, and nothing can
        # read it without us noticing (a regular file's atime is not reliable).
        d = tempfile.mkdtemp(prefix="ptv-canary-")
        canary = os.path.join(d, "canary.ts")
        os.mkfifo(canary, 0o600)
        try:
            playlists = {
                "/file.m3u8": f"file://{canary}",
                "/concat.m3u8": f"concat:{canary}|{canary}",
                "/data.m3u8": "data:video/mp2t;base64,R0AAEAAA",
                "/subfile.m3u8": f"subfile,,0,188,:{canary}",
                "/relative.m3u8": f"../../../../../../../..{canary}",
            }
            routes = {}
            for path, seg in playlists.items():
                body = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
                        "#EXT-X-MEDIA-SEQUENCE:0\n"
                        + "".join(f"#EXTINF:2.0,\n{seg}\n" for _ in range(3))
                        + "#EXT-X-ENDLIST\n").encode()
                routes[path] = (200, "application/vnd.apple.mpegurl", body)
            key = ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
                   f"#EXT-X-KEY:METHOD=AES-128,URI=\"file://{canary}\"\n"
                   "#EXTINF:2.0,\nseg.ts\n#EXT-X-ENDLIST\n").encode()
            routes["/key.m3u8"] = (200, "application/vnd.apple.mpegurl", key)
            srv = self.peer(sources.StaticHttp, routes)
            for path in list(playlists) + ["/key.m3u8"]:
                c = self.ingest(config([srv.url(path)], stall_timeout_ms=2000))
                opened = False
                end = time.monotonic() + 8
                while c.proc.poll() is None and time.monotonic() < end:
                    opened |= _fifo_has_reader(canary)
                    time.sleep(0.01)
                rc = c.wait_exit(2)
                self.assertFalse(opened, f"{path}: the local canary was opened")
                self.assertIn(rc, (2, 3), f"{path}: {c.describe()}")
                self.assertEqual(len(c.data()), 0, path)
        finally:
            os.unlink(canary)
            os.rmdir(d)

    def test_credentials_never_in_events(self):
        srv = self.peer(sources.StaticHttp, {})
        url = srv.url("/live/alice/s3cretpw/123.ts?token=t0psecret")
        c = self.ingest(config([url.replace("://", "://alice:s3cretpw@")]))
        c.wait_exit(10)
        text = c.describe()
        for secret in ("s3cretpw", "t0psecret"):
            self.assertNotIn(secret, text)

    def test_headers_reach_upstream(self):
        st = self.peer(sources.StaticHttp, {})
        c = self.ingest(config([st.url("/x.ts")], headers={
            "User-Agent": "PlexTV-test/1", "Referer": "http://ref.example/", "X-Token": "abc"}))
        c.wait_exit(10)
        self.assertTrue(st.headers, c.describe())
        self.assertEqual(st.headers[0].get("User-Agent"), "PlexTV-test/1")
        self.assertEqual(st.headers[0].get("Referer"), "http://ref.example/")
        self.assertEqual(st.headers[0].get("X-Token"), "abc")


class ParentGoneCase(unittest.TestCase):
    """The child must not outlive its parent (tuner slots are upstream connections)."""

    def demo_config(self):
        return json.dumps({"kind": "file", "urls": [sources.demo_file(1)], "loop": True})

    def test_epipe_exits_0(self):
        r, w = os.pipe()
        p = subprocess.Popen([BIN, "ingest"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, close_fds=False,
                             preexec_fn=lambda: sources._to_fd3(r))
        os.close(r)
        os.write(w, self.demo_config().encode())
        os.close(w)
        try:
            self.assertTrue(p.stdout.read(188 * 10))
            p.stdout.close()  # the parent goes away: the next write fails with EPIPE
            self.assertEqual(p.wait(timeout=5), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_parent_killed_kills_child(self):
        # A parent that spawns the child and is then SIGKILLed: PR_SET_PDEATHSIG must end
        # the child although its pipes are still open (the grandparent holds them).
        script = (
            "import os, subprocess, sys, time\n"
            "r, w = os.pipe()\n"
            "def fd3():\n"
            "    os.dup2(r, 3) if r != 3 else os.set_inheritable(3, True)\n"
            f"p = subprocess.Popen([{BIN!r}, 'ingest'], stdout=subprocess.DEVNULL,\n"
            "                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=fd3)\n"
            f"os.write(w, {self.demo_config()!r}.encode()); os.close(w)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n")
        parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                  text=True, preexec_fn=sources._pdeathsig)
        try:
            child = int(parent.stdout.readline())
            time.sleep(0.5)
            self.assertTrue(_alive(child), "the child did not start")
            parent.kill()
            parent.wait(5)
            self.assertTrue(sources.wait_for(lambda: not _alive(child), 5),
                            "the child outlived its parent")
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            parent.stdout.close()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _fifo_has_reader(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def _segment_fetches(srv):
    try:
        with open(os.path.join(srv.tmp, "nginx-access.log")) as f:
            return sum(1 for line in f if ".ts HTTP" in line)
    except OSError:
        return 0


def wait_count(c, name, n, timeout):
    return sources.wait_for(lambda: len(c.evs(name)) >= n, timeout)


def tearDownModule():
    if COLD_OPEN:
        sys.stderr.write("\ncold open, spawn to first TS byte (ms):\n")
        for kind, ms in sorted(COLD_OPEN.items()):
            sys.stderr.write(f"  {kind:16s} {ms:8.0f}\n" if ms is not None else
                             f"  {kind:16s}        -\n")


if __name__ == "__main__":
    ptvtest.main(watchdog=400)
