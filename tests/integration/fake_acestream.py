#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in Ace Stream engine (PROTOCOLS.md §4) for tests: Python 3 standard library only.

The real engine cannot be installed here, so this one implements the documented HTTP API on
127.0.0.1, with the behaviour that breaks proxies:

  GET /ace/getstream?id=|content_id=|infohash=<40 hex>&format=json&pid=<pid>
      {"response": {"playback_url", "stat_url", "command_url", "infohash",
                    "playback_session_id", "client_session_id", "is_live": 1,
                    "is_encrypted": 0}, "error": null}
      Without format=json: 302 to the playback URL (format=redirect, the default).
      The same id and pid again: the same session. Another pid on a content id that is
      playing: the engine serves one player per stream, so the older session is ended (its
      reader is cut, its stat/command answer "unknown playback session id").
  GET /ace/r/<infohash>/<session>      the playback URL: MPEG-TS, a file looped at its own
      bit rate after --prebuffer seconds of silence (headers at once). ONE reader per
      session: a second reader of the same playback URL cuts the first.
  GET /ace/stat/<infohash>/<session>   {"response": {"status": "prebuf"|"dl", "peers",
      "speed_down", "speed_up" (KiB/s), "downloaded", "uploaded" (bytes), "progress"},
      "error": null}
  GET /ace/cmd/<infohash>/<session>?method=stop   ends the session: {"response": "ok", ...}
  GET /webui/api/service?method=get_version&format=json
      {"result": {"code": 3002300, "version": "3.1.0-rc2"}, "error": null}

Fault modes, per API (getstream, stop, stat, version; --mode sets all four, and
/_test/mode?getstream=hang&stat=ok changes them at run time):
  ok         as above
  error      HTTP 200 with {"response": null, "error": "…"} (offline id, engine not ready)
  http500    HTTP 500
  malformed  HTTP 200, a body that is not JSON
  hang       accepts the connection, reads the request, never answers
("refused" is simply no engine: a port where nothing listens.)

Test hooks: /_test/counters (JSON: getstream calls, playback readers, cuts, stops, …),
/_test/reset, /_test/mode?API=MODE&prebuffer=S.

Usage: fake_acestream.py [--port N] [--prebuffer S] [--mode M] [--ts FILE]
Prints "PORT <n>" on stdout when it listens (--port 0 picks a free one). Exits on SIGTERM,
on stdin EOF with --stdin-lifeline, or after --max-seconds.
"""

import argparse
import glob
import hashlib
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid

HOST = "127.0.0.1"
TS = 188
APIS = ("getstream", "stop", "stat", "version")
MODES = ("ok", "error", "http500", "malformed", "hang")


def find_ts():
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.environ.get("PTV_SOURCE_DIR", os.path.join(here, "..", ".."))
    cands = [os.path.join(src, "share", "demo", "demo-1.ts")]
    shared = os.environ.get("PTV_SHARED_DATA", "")
    if shared:
        cands += sorted(glob.glob(os.path.join(shared, "ts", "*.ts")))
    for c in cands:
        if os.path.isfile(c):
            return c
    return None


def pcr_seconds(data):
    """Duration between the first and last PCR of the first PCR PID (None if none)."""
    first = last = None
    pid0 = None
    for off in range(0, len(data) - TS + 1, TS):
        p = data[off:off + TS]
        if p[0] != 0x47 or not (p[3] & 0x20) or p[4] < 7 or not (p[5] & 0x10):
            continue
        pid = ((p[1] & 0x1f) << 8) | p[2]
        if pid0 is None:
            pid0 = pid
        if pid != pid0:
            continue
        base = (p[6] << 25) | (p[7] << 17) | (p[8] << 9) | (p[9] << 1) | (p[10] >> 7)
        t = base / 90000.0
        if first is None:
            first = t
        last = t
    if first is None or last <= first:
        return None
    return last - first


class Session:
    def __init__(self, engine, cid, pid):
        self.cid, self.pid = cid, pid
        self.infohash = hashlib.sha1(("ih" + cid).encode()).hexdigest()
        self.sid = uuid.uuid4().hex
        self.created = time.monotonic()
        self.reader = None  # threading.Event of the current reader: set = cut
        self.readers = 0
        self.ended = threading.Event()
        self.bytes_sent = 0
        self.engine = engine

    def urls(self, port):
        base = f"http://{HOST}:{port}"
        return {
            "playback_url": f"{base}/ace/r/{self.infohash}/{self.sid}",
            "stat_url": f"{base}/ace/stat/{self.infohash}/{self.sid}",
            "command_url": f"{base}/ace/cmd/{self.infohash}/{self.sid}",
            "infohash": self.infohash,
            "playback_session_id": self.sid,
            "client_session_id": 1,
            "is_live": 1,
            "is_encrypted": 0,
        }


class Engine:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.modes = {a: args.mode for a in APIS}
        for a in APIS:
            m = getattr(args, f"{a}_mode")
            if m:
                self.modes[a] = m
        self.prebuffer = args.prebuffer
        self.peers = args.peers
        self.ts = b""
        path = args.ts or find_ts()
        if path:
            with open(path, "rb") as f:
                self.ts = f.read()
            self.ts = self.ts[:len(self.ts) - len(self.ts) % TS]
        dur = pcr_seconds(self.ts) if self.ts else None
        self.rate = len(self.ts) / dur if dur else 250000.0  # bytes per second
        self.sessions = {}  # sid -> Session
        self.by_key = {}  # (cid, pid) -> sid
        self.stop_all = threading.Event()
        self.reset()

    def reset(self):
        with self.lock:
            self.c = {"getstream": 0, "getstream_json": 0, "getstream_redirect": 0,
                      "sessions_started": 0, "sessions_ended_by_other_pid": 0,
                      "playback_readers": 0, "active_readers": 0, "max_active_readers": 0,
                      "cuts": 0, "stops": 0, "stat": 0, "version": 0, "pids": [],
                      "selectors": []}

    def count(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def counters(self):
        with self.lock:
            out = dict(self.c)
            out["pids"] = list(self.c["pids"])
            out["selectors"] = list(self.c["selectors"])
            out["active_sessions"] = sum(1 for s in self.sessions.values()
                                         if not s.ended.is_set())
            out["modes"] = dict(self.modes)
            return out

    def session_for(self, cid, pid):
        with self.lock:
            sid = self.by_key.get((cid, pid))
            s = self.sessions.get(sid) if sid else None
            if s and not s.ended.is_set():
                return s
            # One player per stream: a new pid on a playing content id ends the older one.
            for other in self.sessions.values():
                if other.cid == cid and not other.ended.is_set():
                    self._end(other)
                    self.c["sessions_ended_by_other_pid"] += 1
            s = Session(self, cid, pid)
            self.sessions[s.sid] = s
            self.by_key[(cid, pid)] = s.sid
            self.c["sessions_started"] += 1
            self.c["pids"].append(pid)
            return s

    def _end(self, s):
        s.ended.set()
        if s.reader:
            s.reader.set()

    def end(self, sid):
        with self.lock:
            s = self.sessions.get(sid)
            if not s or s.ended.is_set():
                return False
            self._end(s)
            return True

    def live_session(self, sid):
        with self.lock:
            s = self.sessions.get(sid)
            return s if s and not s.ended.is_set() else None


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "AceStream/3.1.0-fake"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *a):  # quiet unless asked
        if self.server.verbose:
            sys.stderr.write("fake-ace: " + (fmt % a) + "\n")

    @property
    def eng(self):
        return self.server.engine

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fault(self, api, error_text):
        """Answers per the API's fault mode; returns True when it did (or hangs)."""
        mode = self.eng.modes.get(api, "ok")
        if mode == "ok":
            return False
        if mode == "hang":
            # Accepted and read; never answered. Bounded: ends with the server.
            self.eng.stop_all.wait(600)
            self.close_connection = True
            return True
        if mode == "http500":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "malformed":
            body = b"<html>not json"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_json({"response": None, "error": error_text})
        return True

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        parts = [p for p in u.path.split("/") if p]
        try:
            if u.path == "/ace/getstream":
                return self.api_getstream(q)
            if len(parts) == 4 and parts[:2] == ["ace", "r"]:
                return self.api_playback(parts[3])
            if len(parts) == 4 and parts[:2] == ["ace", "stat"]:
                return self.api_stat(parts[3])
            if len(parts) == 4 and parts[:2] == ["ace", "cmd"]:
                return self.api_command(parts[3], q)
            if u.path == "/webui/api/service" and q.get("method") == "get_version":
                return self.api_version()
            if u.path.startswith("/_test/"):
                return self.test_hook(u.path, q)
            self.send_json({"response": None, "error": "unknown method"}, 404)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- API --

    def api_getstream(self, q):
        self.eng.count("getstream")
        if self.fault("getstream", "failed to load content"):
            return
        cid, sel = None, None
        for key in ("content_id", "id", "infohash"):
            if key in q:
                cid, sel = q[key].lower(), key
                break
        if not cid or len(cid) != 40 or any(c not in "0123456789abcdef" for c in cid):
            return self.send_json({"response": None, "error": "missing content id"})
        pid = q.get("pid") or q.get("sid") or "default"
        with self.eng.lock:
            self.eng.c["selectors"].append(sel)
        s = self.eng.session_for(sel[0] + cid, pid)
        urls = s.urls(self.server.server_address[1])
        if q.get("format") == "json":
            self.eng.count("getstream_json")
            return self.send_json({"response": urls, "error": None})
        self.eng.count("getstream_redirect")
        self.send_response(302)
        self.send_header("Location", urls["playback_url"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def api_playback(self, sid):
        eng = self.eng
        s = eng.live_session(sid)
        if not s:
            return self.send_json({"response": None, "error": "unknown playback session id"},
                                  404)
        me = threading.Event()
        with eng.lock:
            if s.reader is not None:  # one reader per pid: the newcomer cuts the old one
                s.reader.set()
                eng.c["cuts"] += 1
            s.reader = me
            s.readers += 1
            eng.c["playback_readers"] += 1
            eng.c["active_readers"] += 1
            eng.c["max_active_readers"] = max(eng.c["max_active_readers"],
                                              eng.c["active_readers"])
        try:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            self.pump(s, me)
        finally:
            with eng.lock:
                eng.c["active_readers"] -= 1
                if s.reader is me:
                    s.reader = None

    def pump(self, s, me):
        eng = self.eng
        # Prebuffering: headers are out, no byte until the engine has enough pieces.
        end_pre = s.created + eng.prebuffer
        while time.monotonic() < end_pre:
            if me.wait(min(0.05, max(0.0, end_pre - time.monotonic()))) or \
                    eng.stop_all.is_set():
                return
        if not eng.ts:
            me.wait(self.server.max_seconds)
            return
        chunk = TS * 7
        t0, sent, off = time.monotonic(), 0, 0
        deadline = t0 + self.server.max_seconds
        while not me.is_set() and not eng.stop_all.is_set() and time.monotonic() < deadline:
            due = t0 + sent / eng.rate
            delay = due - time.monotonic()
            if delay > 0 and me.wait(min(delay, 0.05)):
                break
            if delay > 0.05:
                continue
            piece = eng.ts[off:off + chunk]
            off = (off + chunk) % len(eng.ts)
            self.wfile.write(piece)
            sent += len(piece)
            s.bytes_sent += len(piece)
        self.close_connection = True

    def api_stat(self, sid):
        self.eng.count("stat")
        if self.fault("stat", "stat failed"):
            return
        s = self.eng.live_session(sid)
        if not s:
            return self.send_json({"response": None, "error": "unknown playback session id"})
        age = time.monotonic() - s.created
        pre = age < self.eng.prebuffer
        progress = int(100 * age / self.eng.prebuffer) if pre else 100
        self.send_json({"response": {
            "status": "prebuf" if pre else "dl",
            "peers": self.eng.peers,
            "speed_down": 0 if pre else int(self.eng.rate / 1024) + 1,
            "speed_up": 12,
            "downloaded": s.bytes_sent,
            "uploaded": s.bytes_sent // 4,
            "progress": progress,
            "total_progress": progress,
        }, "error": None})

    def api_command(self, sid, q):
        if q.get("method") != "stop":
            return self.send_json({"response": None, "error": "unknown method"})
        self.eng.count("stops")
        if self.fault("stop", "stop failed"):
            return
        if not self.eng.end(sid):
            return self.send_json({"response": None, "error": "unknown playback session id"})
        self.send_json({"response": "ok", "error": None})

    def api_version(self):
        self.eng.count("version")
        if self.fault("version", "not ready"):
            return
        self.send_json({"result": {"code": 3002300, "platform": "linux",
                                   "version": "3.1.0-rc2"}, "error": None})

    # -- test hooks --

    def test_hook(self, path, q):
        eng = self.eng
        if path == "/_test/counters":
            return self.send_json(eng.counters())
        if path == "/_test/reset":
            eng.reset()
            return self.send_json({"ok": True})
        if path == "/_test/mode":
            for api in APIS:
                if api in q:
                    if q[api] not in MODES:
                        return self.send_json({"error": f"bad mode {q[api]}"}, 400)
                    eng.modes[api] = q[api]
            if "all" in q and q["all"] in MODES:
                for api in APIS:
                    eng.modes[api] = q["all"]
            if "prebuffer" in q:
                eng.prebuffer = float(q["prebuffer"])
            if "peers" in q:
                eng.peers = int(q["peers"])
            return self.send_json({"ok": True, "modes": eng.modes})
        self.send_json({"error": "unknown hook"}, 404)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--prebuffer", type=float, default=0.5, help="seconds before TS flows")
    ap.add_argument("--peers", type=int, default=7)
    ap.add_argument("--mode", choices=MODES, default="ok", help="fault mode of every API")
    for a in APIS:
        ap.add_argument(f"--{a}-mode", choices=MODES, default=None)
    ap.add_argument("--ts", default=None, help="TS file to loop (default: share/demo)")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="lifetime bound")
    ap.add_argument("--stdin-lifeline", action="store_true", help="exit on stdin EOF")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    srv = Server((HOST, args.port), Handler)
    srv.engine = Engine(args)
    srv.verbose = args.verbose
    srv.max_seconds = args.max_seconds

    def bye(*_):
        srv.engine.stop_all.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    if args.stdin_lifeline:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except OSError:
                pass
            bye()
        threading.Thread(target=watch, daemon=True).start()
    threading.Timer(args.max_seconds, bye).start()
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.engine.stop_all.set()
        srv.server_close()
    os._exit(0)  # hung handler threads (daemon) must not hold the exit


if __name__ == "__main__":
    main()
