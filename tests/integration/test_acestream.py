# SPDX-License-Identifier: GPL-3.0-or-later
"""Acestream channels end to end, against a stand-in engine (fake_acestream.py).

The real engine cannot be installed here; fake_acestream.py implements its documented HTTP API
(PROTOCOLS.md §4), including what breaks proxies: one reader per pid (a second reader cuts the
first), a prebuffer delay, `error` answers, HTTP 500 and hangs.

  FakeEngineTests    the stand-in engine itself behaves as documented (the other tests
                     depend on it)
  ConfigTests        the [acestream] keys (engine session limit, timeouts, stat interval)
  RelayTests         `plextv serve` tuning acestream:// channels: three viewers -> one
                     getstream and one playback reader; prebuffering -> headers at once, TS
                     when it flows; engine down/erroring -> 503 + 806 in time; engine hang ->
                     no reactor stall; stop after the last viewer, the engine session limit
                     (805) and metrics from stat_url.
"""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import ptvtest
import sources
from ptvtest import HOST, Server, run_cli, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_acestream.py")
ID1 = "0123456789abcdef0123456789abcdef01234567"
ID2 = "1123456789abcdef0123456789abcdef01234567"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def relay_uses_engine_api():
    """True once the relay calls the engine client (acestream.h) instead of a bare URL."""
    for path in glob.glob(os.path.join(ptvtest.SOURCE_DIR, "src", "relay*.c")):
        with open(path, encoding="utf-8") as f:
            if "ptv_acestream_resolve" in f.read():
                return True
    return False


WIRED = relay_uses_engine_api()


class FakeEngine:
    """fake_acestream.py on a free 127.0.0.1 port, for the duration of a test."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--max-seconds", "300", "--stdin-lifeline"]
            + [str(a) for a in args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, PTV_SOURCE_DIR=ptvtest.SOURCE_DIR),
            preexec_fn=ptvtest._child_setup)
        line = b""
        deadline = time.monotonic() + 10
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            c = self.proc.stdout.read(1)
            if not c:
                break
            line += c
        m = re.match(rb"PORT (\d+)", line)
        if not m:
            self.close()
            raise AssertionError(f"fake engine did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"http://{HOST}:{self.port}"

    def get(self, path, timeout=5.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def counters(self):
        return self.get("/_test/counters")

    def mode(self, **kw):
        q = "&".join(f"{k}={v}" for k, v in kw.items())
        return self.get("/_test/mode?" + q)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def raw_get(port, path, timeout=5.0):
    """A GET on a raw socket: returns (status, headers dict, socket positioned at the body)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed before the head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, s, rest


def read_for(s, rest, seconds):
    """Reads the body for @seconds or to EOF; returns (bytes, hit_eof)."""
    body = bytearray(rest)
    end = time.monotonic() + seconds
    s.settimeout(0.2)
    while time.monotonic() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return bytes(body), True
        if not d:
            return bytes(body), True
        body += d
    return bytes(body), False


class Viewer(threading.Thread):
    """Reads /auto/vNNN for @seconds on a raw socket; records timing, status and body."""

    def __init__(self, port, path, seconds):
        super().__init__(daemon=True)
        self.port, self.path, self.seconds = port, path, seconds
        self.status, self.headers, self.body = None, {}, b""
        self.closed = False
        self.error = None
        self.t0 = self.t_head = self.t_first = self.t_end = None

    def run(self):
        self.t0 = time.monotonic()
        try:
            self.status, self.headers, s, rest = raw_get(self.port, self.path, timeout=30)
            self.t_head = time.monotonic()
            body = bytearray(rest)
            end = self.t0 + self.seconds
            s.settimeout(0.2)
            while time.monotonic() < end:
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    self.closed = True
                    break
                if self.t_first is None:
                    self.t_first = time.monotonic()
                body += d
            s.close()
            self.body = bytes(body)
            if body and self.t_first is None:
                self.t_first = self.t_head
        except Exception as e:  # shown by the test
            self.error = repr(e)
        self.t_end = time.monotonic()


# --------------------------------------------------------------------------------------------


class FakeEngineTests(unittest.TestCase):
    """The stand-in behaves like the documented engine (the relay tests rely on it)."""

    def setUp(self):
        self.eng = FakeEngine("--prebuffer", "0.5")

    def tearDown(self):
        self.eng.close()

    def getstream(self, cid=ID1, pid="p1"):
        j = self.eng.get(f"/ace/getstream?id={cid}&format=json&pid={pid}")
        self.assertIsNone(j["error"])
        return j["response"]

    def test_envelope_and_session_identity(self):
        r = self.getstream()
        for k in ("playback_url", "stat_url", "command_url", "infohash", "playback_session_id",
                  "is_live"):
            self.assertIn(k, r)
        # The same pid again: the same session; format=redirect (default) sends a 302.
        self.assertEqual(self.getstream()["playback_session_id"], r["playback_session_id"])
        status, hdrs, s, _ = raw_get(self.eng.port, f"/ace/getstream?id={ID1}&pid=p1")
        s.close()
        self.assertEqual(status, 302)
        self.assertEqual(hdrs["location"], r["playback_url"])
        v = self.eng.get("/webui/api/service?method=get_version&format=json")
        self.assertEqual(v["result"]["version"], "3.1.0-rc2")
        self.assertEqual(self.eng.counters()["getstream"], 3)

    def test_one_reader_per_pid(self):
        r = self.getstream()
        path = r["playback_url"][len(self.eng.url):]
        st = self.eng.get(r["stat_url"][len(self.eng.url):])["response"]
        self.assertEqual(st["status"], "prebuf")
        s1 = raw_get(self.eng.port, path)
        self.assertEqual(s1[0], 200)
        self.assertEqual(s1[1]["content-type"], "video/mp2t")
        body, eof = read_for(s1[2], s1[3], 1.5)
        self.assertFalse(eof)
        self.assertGreater(len(body), 0, "no TS after the prebuffer")
        self.assertEqual(body[0], 0x47)
        # A second reader of the same playback URL cuts the first: what breaks proxies.
        s2 = raw_get(self.eng.port, path)
        _, eof1 = read_for(s1[2], b"", 1.0)
        self.assertTrue(eof1, "the first reader was not cut")
        body2, eof2 = read_for(s2[2], s2[3], 0.5)
        self.assertFalse(eof2)
        self.assertGreater(len(body2), 0)
        st = self.eng.get(r["stat_url"][len(self.eng.url):])["response"]
        self.assertEqual(st["status"], "dl")
        self.assertGreater(st["peers"], 0)
        c = self.eng.counters()
        self.assertEqual((c["playback_readers"], c["cuts"]), (2, 1))
        # Stop ends the session and its reader; the engine then forgets it.
        stop = self.eng.get(r["command_url"][len(self.eng.url):] + "?method=stop")
        self.assertIsNone(stop["error"])
        _, eof2 = read_for(s2[2], b"", 1.0)
        self.assertTrue(eof2)
        st = self.eng.get(r["stat_url"][len(self.eng.url):])
        self.assertEqual(st["error"], "unknown playback session id")
        for s in (s1[2], s2[2]):
            s.close()

    def test_other_pid_ends_the_older_session(self):
        a = self.getstream(pid="a")
        b = self.getstream(pid="b")
        self.assertNotEqual(a["playback_session_id"], b["playback_session_id"])
        st = self.eng.get(a["stat_url"][len(self.eng.url):])
        self.assertEqual(st["error"], "unknown playback session id")
        self.assertEqual(self.eng.counters()["sessions_ended_by_other_pid"], 1)

    def test_fault_modes(self):
        self.eng.mode(getstream="error")
        j = self.eng.get(f"/ace/getstream?id={ID1}&format=json&pid=x")
        self.assertIsNone(j["response"])
        self.assertTrue(j["error"])
        self.eng.mode(getstream="http500")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.eng.get(f"/ace/getstream?id={ID1}&format=json&pid=x")
        self.assertEqual(cm.exception.code, 500)
        self.eng.mode(getstream="malformed")
        with self.assertRaises(json.JSONDecodeError):
            self.eng.get(f"/ace/getstream?id={ID1}&format=json&pid=x")
        self.eng.mode(getstream="hang")
        t = time.monotonic()
        with self.assertRaises((socket.timeout, TimeoutError, urllib.error.URLError)):
            self.eng.get(f"/ace/getstream?id={ID1}&format=json&pid=x", timeout=1.0)
        self.assertLess(time.monotonic() - t, 3.0)
        # The test hooks keep answering while the API hangs.
        self.assertEqual(self.eng.counters()["getstream"], 4)


class ConfigTests(unittest.TestCase):
    def test_acestream_keys(self):
        r = run_cli(["config", "show", "--data-dir", tempfile.gettempdir()],
                    env={"PLEXTV_ACESTREAM_MAX_SESSIONS": "2",
                         "PLEXTV_ACESTREAM_ENGINE": "http://u:secret@127.0.0.1:6878"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[acestream]", r.stdout)
        self.assertRegex(r.stdout, r"acestream_max_sessions = 2\s+; from env")
        self.assertRegex(r.stdout, r"acestream_timeout_ms = 5000")
        self.assertRegex(r.stdout, r"acestream_stop_timeout_ms = 3000")
        self.assertRegex(r.stdout, r"acestream_stat_interval_ms = 5000")
        self.assertRegex(r.stdout, r"acestream_prebuffer_ms = 20000")
        self.assertNotIn("secret", r.stdout)
        r = run_cli(["config", "check", "--data-dir", tempfile.gettempdir(),
                     "--acestream-timeout-ms", "5"])
        self.assertNotEqual(r.returncode, 0)


class RelayTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ptv-ace-")
        self.data = os.path.join(self.tmp, "data")
        os.mkdir(self.data)
        self.engines = []

    def tearDown(self):
        for e in self.engines:
            e.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def engine(self, *args):
        e = FakeEngine(*args)
        self.engines.append(e)
        return e

    def lineup(self, ids):
        path = os.path.join(self.tmp, "ace.m3u")
        lines = ["#EXTM3U"]
        for i, cid in enumerate(ids):
            lines.append(f'#EXTINF:-1 tvg-id="a{i}" tvg-chno="{101 + i}",Ace {i}')
            lines.append(f"acestream://{cid}")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        r = run_cli(["import", "m3u", path, "--name", "ace", "--data-dir", self.data,
                     "--demo-dir", ""])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def server(self, engine_url, *args):
        return Server("--demo-dir", "", "--acestream-engine", engine_url, *args,
                      data_dir=self.data)

    def assert_ts(self, v, min_seconds=1.0):
        info = f"status={v.status} error={v.error} bytes={len(v.body)}"
        self.assertEqual(v.status, 200, info)
        self.assertEqual(v.headers.get("content-type"), "video/mp2t", info)
        sources.assert_ts_ok(self, v.body, min_seconds=min_seconds)

    def assert_refused(self, v, code, within, srv):
        self.assertIsNone(v.error, srv.log_tail())
        self.assertEqual(v.status, 503, f"{v.headers} {srv.log_tail()}")
        self.assertTrue(v.headers.get("x-hdhomerun-error", "").startswith(code), v.headers)
        self.assertLess(v.t_head - v.t0, within)

    # -- real now --

    def test_three_viewers_one_engine_session(self):
        eng = self.engine("--prebuffer", "0.3")
        self.lineup([ID1])
        with self.server(eng.url, "--linger-ms", "500") as srv:
            first = Viewer(srv.port, "/auto/v101", 5)
            first.start()
            self.assertTrue(wait_until(lambda: first.t_first is not None or first.t_end, 15),
                            srv.log_tail())
            late = [Viewer(srv.port, "/auto/v101", 3) for _ in range(2)]
            for v in late:
                v.start()
                time.sleep(0.2)
            for v in [first] + late:
                v.join(20)
            for v in [first] + late:
                self.assert_ts(v, min_seconds=1.0)
            c = eng.counters()
            self.assertEqual(c["getstream"], 1, c)
            self.assertEqual(c["playback_readers"], 1, c)
            self.assertEqual(c["cuts"], 0, c)
            self.assertEqual(c["sessions_started"], 1, c)
            if WIRED:
                self.assertEqual(c["getstream_json"], 1, c)
                self.assertRegex(c["pids"][0], UUID4)

    def test_prebuffer_headers_at_once(self):
        eng = self.engine("--prebuffer", "3")
        self.lineup([ID1])
        with self.server(eng.url, "--tune-grace-ms", "1000", "--tune-deadline-ms", "15000",
                         "--ingest-stall-ms", "8000") as srv:
            v = Viewer(srv.port, "/auto/v101", 7)
            v.start()
            v.join(25)
            self.assertIsNone(v.error, srv.log_tail())
            self.assertEqual(v.status, 200, srv.log_tail())
            self.assertLess(v.t_head - v.t0, 2.0, "headers must not wait for the prebuffer")
            self.assertIsNotNone(v.t_first, srv.log_tail())
            self.assertGreater(v.t_first - v.t0, 2.5, "TS before the engine had any?")
            self.assert_ts(v, min_seconds=1.0)

    def test_engine_down_or_erroring_503_806(self):
        dead = f"http://{HOST}:{sources.free_port()}"
        self.lineup([ID1])
        args = ("--tune-grace-ms", "4000", "--tune-deadline-ms", "6000",
                "--ingest-stall-ms", "2000")
        with self.server(dead, *args) as srv:
            v = Viewer(srv.port, "/auto/v101", 8)
            v.start()
            v.join(20)
            self.assert_refused(v, "806", 4.5, srv)
        eng = self.engine()
        for mode in ("http500", "error"):
            eng.mode(getstream=mode)
            with self.server(eng.url, *args) as srv:
                v = Viewer(srv.port, "/auto/v101", 8)
                v.start()
                v.join(20)
                if not WIRED and mode == "error":
                    # A bare getstream URL makes ffmpeg read the error JSON as media: the
                    # answer is a 503, but it may say 807; the engine client says 806.
                    self.assertEqual(v.status, 503, srv.log_tail())
                    continue
                self.assert_refused(v, "806", 4.5, srv)
            self.assertEqual(eng.counters()["playback_readers"], 0)

    def test_engine_hang_no_reactor_stall(self):
        eng = self.engine()
        eng.mode(all="hang")
        self.lineup([ID1])
        with self.server(eng.url, "--tune-deadline-ms", "6000", "--ingest-stall-ms",
                         "3000", "--workers", "1") as srv:
            v = Viewer(srv.port, "/auto/v101", 12)
            v.start()
            time.sleep(0.3)
            worst = 0.0
            for _ in range(10):  # one reactor: a blocking engine call would stall these
                t = time.monotonic()
                r = srv.get("/health")
                worst = max(worst, time.monotonic() - t)
                self.assertEqual(r.status, 200)
                time.sleep(0.2)
            self.assertLess(worst, 1.0, f"/health took {worst:.2f} s during a hung tune")
            v.join(20)
            self.assertIsNone(v.error, srv.log_tail())
            # Either refused (503) or headers then closed empty, by the deadline.
            self.assertIn(v.status, (200, 503))
            if v.status == 200:
                self.assertTrue(v.closed)
                self.assertEqual(len(v.body), 0)
            self.assertLess(v.t_end - v.t0, 10.0)

    # -- the engine client's session lifecycle, limit and monitor --

    def test_stop_after_last_viewer(self):
        eng = self.engine("--prebuffer", "0.3")
        self.lineup([ID1])
        with self.server(eng.url, "--linger-ms", "500") as srv:
            viewers = [Viewer(srv.port, "/auto/v101", 3) for _ in range(3)]
            for v in viewers:
                v.start()
            for v in viewers:
                v.join(15)
            self.assertEqual(eng.counters()["stops"], 0, "stopped while viewers watched?")
            self.assertTrue(wait_until(lambda: eng.counters()["stops"] == 1, 8),
                            srv.log_tail())
            self.assertEqual(eng.counters()["active_sessions"], 0)
            self.assertEqual(eng.counters()["getstream"], 1)

    def test_engine_session_limit_805(self):
        eng = self.engine("--prebuffer", "0.3")
        self.lineup([ID1, ID2])
        with self.server(eng.url, "--acestream-max-sessions", "1") as srv:
            a = Viewer(srv.port, "/auto/v101", 4)
            a.start()
            self.assertTrue(wait_until(lambda: a.t_first is not None, 10), srv.log_tail())
            b = Viewer(srv.port, "/auto/v102", 4)
            b.start()
            b.join(10)
            self.assert_refused(b, "805", 2.0, srv)
            a.join(10)
            self.assertEqual(eng.counters()["getstream"], 1)

    def test_metrics_from_stat_url(self):
        eng = self.engine("--prebuffer", "0.3", "--peers", "9")
        self.lineup([ID1])
        with self.server(eng.url, "--acestream-stat-interval-ms", "200") as srv:
            v = Viewer(srv.port, "/auto/v101", 5)
            v.start()

            def peers():
                m = ptvtest.scrape(srv.port)[1]
                return m.value("plextv_acestream_peers", channel="101") == 9

            self.assertTrue(wait_until(peers, 8, interval=0.3), srv.log_tail())
            m = ptvtest.scrape(srv.port)[1]
            self.assertEqual(m.value("plextv_acestream_engine_up"), 1)
            self.assertEqual(m.value("plextv_acestream_sessions"), 1)
            self.assertEqual(m.value("plextv_acestream_status", channel="101", status="dl"), 1)
            self.assertGreater(
                m.value("plextv_acestream_download_speed_bytes_per_second", channel="101"), 0)
            v.join(15)
            self.assertGreater(eng.counters()["stat"], 0)


if __name__ == "__main__":
    ptvtest.main()
