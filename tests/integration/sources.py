# SPDX-License-Identifier: GPL-3.0-or-later
"""Real upstream peers for integration tests, and checks of the MPEG-TS they lead to.

Every peer is started on 127.0.0.1 (or inside a network namespace the helper creates and
deletes), has a bounded lifetime (killed on stop(), on context exit, and by PR_SET_PDEATHSIG if
the test runner dies) and writes its log to a temp file that failures can show.

Peers:
  HttpTsServer   ffmpeg -re -stream_loop -1 ... -listen 1 http://127.0.0.1:PORT/x.ts
  HlsServer      ffmpeg writing live HLS into a temp dir + an nginx we configure; segments are
                 also reachable as seg.php?n=N (rewrite), to prove .php segment URLs play
  DashServer     the same with live MPEG-DASH (fMP4 segments)
  PacedTsServer  a Python HTTP TS server that can stall or freeze video on cue
  RtmpServer     nginx with libnginx-mod-rtmp, fed by ffmpeg
  RtspServer     GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) in a child
  SrtServer      ffmpeg srt://127.0.0.1:PORT?mode=listener
  MulticastSender  ffmpeg to udp:// or rtp://239.x (MPEG-TS, RTP payload 33) inside a fresh
                 netns (loopback multicast route)
  SilentServer   accepts TCP connections and never sends a byte
  StaticHttp     answers every GET with fixed bytes (HTML 200, a hostile playlist, ...)

Checks:
  ts_check(bytes)   sync, continuity counters per PID, PAT/PMT at start and repeated,
                    PTS/DTS monotonic per stream, PCR present
  ffprobe_streams(path_or_bytes)  codec types that ffprobe finds

Standard library only, plus the Debian packages named in each class.
"""

import contextlib
import ctypes
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
SOURCE_DIR = os.environ.get("PTV_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DEMO_DIR = os.path.join(SOURCE_DIR, "share", "demo")
TS_PACKET = 188


class PeerUnavailable(Exception):
    """A peer cannot run here (package missing, no privileges); the message says why."""


# --------------------------------------------------------------------------------------------
# processes and ports


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _pdeathsig():
    # Peers die with the test runner, so a crashed test never leaves one behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover
        pass
    os.setsid()  # own process group: stop() kills the peer and its children


def need(*programs):
    for p in programs:
        if not shutil.which(p):
            raise PeerUnavailable(f"{p} is not installed")


def wait_port(port, timeout=10.0, host=HOST):
    """Waits until a TCP listener accepts on @port."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def wait_for(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Peer:
    """A process we started: stop() kills its whole process group and waits (bounded)."""

    name = "peer"

    def __init__(self):
        self.procs = []
        self._tmp = None
        self.logs = []

    @property
    def tmp(self):
        # Made on first use: a constructor that raises PeerUnavailable leaves nothing behind.
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix=f"ptv-{self.name}-")
        return self._tmp

    def spawn(self, argv, log_name=None, **kw):
        log_path = os.path.join(self.tmp, log_name or f"{os.path.basename(argv[0])}.log")
        log = open(log_path, "ab")
        self.logs.append(log_path)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             preexec_fn=_pdeathsig, **kw)
        log.close()
        self.procs.append(p)
        return p

    @staticmethod
    def kill(p, sig=signal.SIGKILL):
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)

    def log_tail(self, n=2000):
        out = []
        for path in self.logs:
            with contextlib.suppress(OSError), open(path, "rb") as f:
                data = f.read()[-n:]
                out.append(f"--- {os.path.basename(path)}\n{data.decode(errors='replace')}")
        return "\n".join(out)

    def stop(self):
        for p in reversed(self.procs):
            self.kill(p)
        self.procs = []

    def close(self):
        self.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def demo_file(n=1):
    path = os.path.join(DEMO_DIR, f"demo-{n}.ts")
    if not os.path.exists(path):
        raise PeerUnavailable(f"{path} missing (tools/make-demo-media.sh makes it)")
    return path


def ffmpeg_feed(src, extra_in=()):
    """ffmpeg argv reading @src in real time, forever, codec copy. -flush_packets 1: a live
    server sends as it goes (else ffmpeg holds 32 KiB, 0.4 s of the demo, before sending,
    and that would be counted as our cold-open time)."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
            "-stream_loop", "-1", *extra_in, "-i", src, "-c", "copy", "-flush_packets", "1"]


# --------------------------------------------------------------------------------------------
# peers


class HttpTsServer(Peer):
    """ffmpeg's one-connection HTTP server: `-listen 1` serves exactly one client, then exits
    (a good proof that the relay opens one upstream). restart() brings it back on the same
    port, for reconnect tests."""

    name = "httpts"

    def __init__(self, src=None, port=None, path="/live.ts"):
        super().__init__()
        need("ffmpeg")
        self.src = src or demo_file(1)
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}{path}"
        self.proc = None

    def start(self):
        self.proc = self.spawn(ffmpeg_feed(self.src) + [
            "-f", "mpegts", "-listen", "1", self.url])
        # ffmpeg binds the port before it reads its input; wait for the bind only: a probe
        # connection would be its one and only client.
        ok = wait_for(lambda: _port_listening(self.port) or self.proc.poll() is not None, 10)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"ffmpeg HTTP server did not start\n{self.log_tail()}")
        return self

    def kill_server(self):
        if self.proc:
            self.kill(self.proc)
            self.procs.remove(self.proc)
            self.proc = None

    def restart(self):
        self.kill_server()
        return self.start()


def _port_listening(port):
    """True when something listens on TCP @port of 127.0.0.1, without connecting to it."""
    want = f"{socket.htonl(0x7f000001):08X}:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1].upper() == want.upper() and parts[3] == "0A":  # LISTEN
                    return True
    except OSError:
        pass
    return False


NGINX_HLS_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen {host}:{port};
        root {root};
        # IPTV panels serve segments from scripts: seg.php?n=12 -> seg12.ts
        location = /hls/seg.php {{
            default_type video/mp2t;
            rewrite ^ /hls/seg$arg_n.ts last;
        }}
        location / {{ add_header Cache-Control no-cache; }}
    }}
}}
"""


def _nginx():
    for p in ("/usr/sbin/nginx", shutil.which("nginx") or ""):
        if p and os.access(p, os.X_OK):
            return p
    raise PeerUnavailable("nginx is not installed (nginx-light)")


class HlsServer(Peer):
    """Live HLS: ffmpeg writes 1 s segments (a sliding window of 6) into a temp dir that an
    nginx we start serves. With php=True a second playlist, php.m3u8, names every segment as
    seg.php?n=N (kept in sync by a thread), which nginx rewrites to segN.ts."""

    name = "hls"

    def __init__(self, src=None, php=False):
        super().__init__()
        need("ffmpeg")
        self.nginx = _nginx()
        self.src = src or demo_file(2)
        self.port = free_port()
        self.root = os.path.join(self.tmp, "www")
        self.dir = os.path.join(self.root, "hls")
        os.makedirs(self.dir)
        # nginx started by root serves from worker processes running as www-data/nobody.
        for d in (self.tmp, self.root, self.dir):
            os.chmod(d, 0o755)
        self.php = php
        self.url = f"http://{HOST}:{self.port}/hls/{'php' if php else 'live'}.m3u8"
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_HLS_CONF.format(tmp=self.tmp, host=HOST, port=self.port,
                                          root=self.root))
        self.spawn([self.nginx, "-c", conf, "-e", os.path.join(self.tmp, "nginx-error.log")],
                   log_name="nginx.log")
        self.spawn(ffmpeg_feed(self.src) + self.writer_args(), log_name="ffmpeg.log")
        if not wait_port(self.port, 10):
            raise RuntimeError(f"nginx did not start\n{self.log_tail()}")
        if not wait_for(self.ready, 15):
            raise RuntimeError(f"ffmpeg wrote no playlist\n{self.log_tail()}")
        if self.php:
            self._thread = threading.Thread(target=self._php_loop, daemon=True)
            self._thread.start()
            wait_for(lambda: os.path.exists(os.path.join(self.dir, "php.m3u8")), 5)
        return self

    def writer_args(self):
        return ["-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
                "-hls_flags", "delete_segments+omit_endlist",
                "-hls_segment_filename", os.path.join(self.dir, "seg%d.ts"),
                os.path.join(self.dir, "live.m3u8")]

    def ready(self):
        return _segments(os.path.join(self.dir, "live.m3u8")) >= 2

    def _php_loop(self):
        live = os.path.join(self.dir, "live.m3u8")
        out = os.path.join(self.dir, "php.m3u8")
        while not self._stop.wait(0.2):
            try:
                with open(live) as f:
                    text = f.read()
            except OSError:
                continue
            lines = []
            for line in text.splitlines():
                if line.startswith("seg") and line.endswith(".ts"):
                    line = f"seg.php?n={line[3:-3]}"
                lines.append(line)
            tmp = out + ".tmp"
            with open(tmp, "w") as f:
                f.write("\n".join(lines) + "\n")
            os.replace(tmp, out)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        super().stop()


class DashServer(HlsServer):
    """Live MPEG-DASH (fMP4 segments: AVCC H.264 and raw AAC, which the child must turn
    into Annex B and ADTS) written by ffmpeg, served by nginx."""

    name = "dash"

    def __init__(self, src=None):
        super().__init__(src=src or demo_file(1))
        self.url = f"http://{HOST}:{self.port}/hls/live.mpd"

    def writer_args(self):
        return ["-tag:v", "avc1", "-tag:a", "mp4a", "-f", "dash", "-seg_duration", "1",
                "-window_size", "6", "-extra_window_size", "2", "-use_template", "1",
                "-use_timeline", "1", os.path.join(self.dir, "live.mpd")]

    def ready(self):
        return (os.path.exists(os.path.join(self.dir, "live.mpd")) and
                os.path.exists(os.path.join(self.dir, "chunk-stream0-00002.m4s")))


def _segments(playlist):
    try:
        with open(playlist) as f:
            return sum(1 for line in f if line.strip().endswith(".ts"))
    except OSError:
        return 0


NGINX_RTMP_CONF = """
load_module {module};
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen {host}:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            allow publish 127.0.0.1;
            deny publish all;
            allow play all;
        }}
    }}
}}
"""


class RtmpServer(Peer):
    """nginx + libnginx-mod-rtmp; ffmpeg publishes the demo file to rtmp://…/live/demo."""

    name = "rtmp"
    MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

    def __init__(self, src=None):
        super().__init__()
        need("ffmpeg")
        self.nginx = _nginx()
        if not os.path.exists(self.MODULE):
            raise PeerUnavailable("libnginx-mod-rtmp is not installed")
        self.src = src or demo_file(3)
        self.port = free_port()
        self.url = f"rtmp://{HOST}:{self.port}/live/demo"

    def start(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_RTMP_CONF.format(module=self.MODULE, tmp=self.tmp, host=HOST,
                                           port=self.port))
        self.spawn([self.nginx, "-c", conf, "-e", os.path.join(self.tmp, "nginx-error.log")],
                   log_name="nginx.log")
        if not wait_port(self.port, 10):
            raise RuntimeError(f"nginx-rtmp did not start\n{self.log_tail()}")
        self.spawn(ffmpeg_feed(self.src) + ["-f", "flv", self.url], log_name="ffmpeg.log")
        # Wait until the publisher is live: a play before it gets nothing.
        time.sleep(1.5)
        return self


RTSP_SCRIPT = r"""
import sys, gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# A live test pattern with a tone (H.264 + AAC). Live, because a file source would be
# seekable and the server then fails PLAY (FFmpeg sends Range: npt=0-) when tsdemux cannot seek.
factory.set_launch(
    "( videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=180,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=300 threads=1 "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample "
    "! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=64000 "
    "! rtpmp4gpay name=pay1 pt=97 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/demo", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


class RtspServer(Peer):
    """GStreamer's RTSP server (gst-rtsp-server via python3-gi) serving a live test pattern
    (x264enc: gstreamer1.0-plugins-ugly, voaacenc: gstreamer1.0-plugins-bad)."""

    name = "rtsp"

    def __init__(self):
        super().__init__()
        need("gst-inspect-1.0")
        # GStreamer's Python bindings are Debian packages: use Debian's python3, not
        # whatever interpreter runs the tests.
        self.python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        probe = subprocess.run(
            [self.python, "-c",
             "import gi; gi.require_version('GstRtspServer','1.0');"
             "from gi.repository import GstRtspServer"],
            capture_output=True, timeout=30)
        if probe.returncode:
            raise PeerUnavailable("python3-gi + gir1.2-gst-rtsp-server-1.0 are not installed")
        for element in ("x264enc", "voaacenc", "rtph264pay", "rtpmp4gpay"):
            r = subprocess.run(["gst-inspect-1.0", element], capture_output=True, timeout=30)
            if r.returncode:
                raise PeerUnavailable(f"GStreamer element {element} is missing")
        self.port = free_port()
        self.url = f"rtsp://{HOST}:{self.port}/demo"

    def start(self):
        script = os.path.join(self.tmp, "rtsp_server.py")
        with open(script, "w") as f:
            f.write(RTSP_SCRIPT)
        self.spawn([self.python, script, str(self.port)], log_name="rtsp.log")
        if not wait_port(self.port, 15):
            raise RuntimeError(f"RTSP server did not start\n{self.log_tail()}")
        return self


class SrtServer(Peer):
    """ffmpeg as an SRT listener (Debian's ffmpeg is built with libsrt)."""

    name = "srt"

    def __init__(self, src=None):
        super().__init__()
        need("ffmpeg")
        protos = subprocess.run(["ffmpeg", "-hide_banner", "-protocols"], capture_output=True,
                                text=True, timeout=30).stdout
        if " srt" not in protos:
            raise PeerUnavailable("this ffmpeg has no SRT support")
        self.src = src or demo_file(2)
        self.port = free_port(socket.SOCK_DGRAM)
        self.url = f"srt://{HOST}:{self.port}?mode=caller&latency=200000"

    def start(self):
        self.spawn(ffmpeg_feed(self.src) + [
            "-f", "mpegts", f"srt://{HOST}:{self.port}?mode=listener&latency=200000"])
        time.sleep(0.5)  # UDP: nothing to poll; the listener is up once ffmpeg has read input
        return self


class MulticastSender(Peer):
    """ffmpeg sending MPEG-TS to a 239.x group inside a network namespace we create (with a
    multicast route on its loopback), so no multicast ever leaves the host. The child under
    test must run in the same namespace: wrap its argv with self.wrap(argv)."""

    name = "mcast"

    def __init__(self, src=None, group="239.255.42.42", port=5004, rtp=False):
        super().__init__()
        self.rtp = rtp
        need("ffmpeg", "ip")
        if os.geteuid() != 0:
            raise PeerUnavailable("creating a network namespace needs root")
        self.src = src or demo_file(1)
        self.ns = f"ptv-mc-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        self.group, self.port = group, port
        scheme = "rtp" if rtp else "udp"
        self.url = f"{scheme}://{group}:{port}?localaddr=127.0.0.1"
        self.created = False

    def _ip(self, *args):
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)

    def start(self):
        r = self._ip("netns", "add", self.ns)
        if r.returncode:
            raise PeerUnavailable(f"ip netns add failed: {r.stderr.strip()}")
        self.created = True
        for cmd in (("link", "set", "lo", "up"), ("link", "set", "lo", "multicast", "on"),
                    ("route", "add", "239.0.0.0/8", "dev", "lo")):
            r = self._ip("netns", "exec", self.ns, "ip", *cmd)
            if r.returncode:
                raise RuntimeError(f"netns setup {cmd}: {r.stderr.strip()}")
        fmt, scheme = ("rtp_mpegts", "rtp") if self.rtp else ("mpegts", "udp")
        self.spawn(self.wrap(ffmpeg_feed(self.src) + [
            "-f", fmt,
            f"{scheme}://{self.group}:{self.port}?pkt_size=1316&ttl=1&localaddr=127.0.0.1"]))
        time.sleep(0.5)
        return self

    def wrap(self, argv):
        return ["ip", "netns", "exec", self.ns, *argv]

    def close(self):
        super().close()
        if self.created:
            self._ip("netns", "delete", self.ns)
            self.created = False


class PacedTsServer(Peer):
    """HTTP server sending a TS file at its own byte rate (in Python, so a test can script
    faults): after @stall_after_s it stops sending but keeps the socket open (RELIABILITY
    U3); after @drop_video_after_s video packets become null packets while audio flows
    (a frozen picture). Each connection starts at the beginning of the file."""

    name = "paced"

    def __init__(self, src=None, stall_after_s=None, drop_video_after_s=None):
        super().__init__()
        self.src = src or demo_file(1)
        with open(self.src, "rb") as f:
            self.data = f.read()
        r = ts_check(self.data)
        self.video_pid = ts_video_pid(r)
        self.rate = len(self.data) / max(r.duration_s(), 1.0)  # bytes per second
        self.stall_after_s = stall_after_s
        self.drop_video_after_s = drop_video_after_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}/paced.ts"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _null(self):
        return b"\x47\x1f\xff\x10" + b"\xff" * 184

    def _serve(self, c):
        try:
            c.settimeout(5)
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
            t0 = time.monotonic()
            chunk = TS_PACKET * 7
            off = 0
            while not self._stop.is_set():
                elapsed = time.monotonic() - t0
                if self.stall_after_s is not None and elapsed >= self.stall_after_s:
                    self._stop.wait(60)  # socket open, nothing sent
                    break
                due = t0 + off / self.rate
                if due > time.monotonic():
                    time.sleep(min(due - time.monotonic(), 0.05))
                    continue
                part = self.data[off % len(self.data):][:chunk]
                if self.drop_video_after_s is not None and elapsed >= self.drop_video_after_s:
                    part = b"".join(
                        self._null() if ((part[i + 1] & 0x1f) << 8 | part[i + 2]) == self.video_pid
                        else part[i:i + TS_PACKET] for i in range(0, len(part), TS_PACKET))
                c.sendall(part)
                off += len(part)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        super().close()


class SilentServer(Peer):
    """Accepts TCP connections and never sends a byte (RELIABILITY U2)."""

    name = "silent"

    def __init__(self):
        super().__init__()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}/stall.ts"
        self.conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _loop(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()
        super().close()


class StaticHttp(Peer):
    """A threaded HTTP server answering fixed bodies per path: {"/x": (status, ctype, bytes)}.
    Records every requested path in self.requests (to prove a canary was never fetched)."""

    name = "static"

    def __init__(self, routes):
        super().__init__()
        self.routes = routes
        self.requests = []
        self.headers = []  # request headers, one dict per request
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                outer.headers.append(dict(self.headers))
                status, ctype, body = outer.routes.get(
                    self.path.split("?")[0], (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,),
                                        daemon=True)

    def url(self, path):
        return f"http://{HOST}:{self.port}{path}"

    def start(self):
        self._thread.start()
        return self

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        super().close()


# --------------------------------------------------------------------------------------------
# checks


class TsReport:
    def __init__(self):
        self.packets = 0
        self.sync_errors = 0
        self.cc_errors = 0
        self.pat_count = 0
        self.pmt_count = 0
        self.first_pid = None
        self.first_pat_at = None  # packet index of the first PAT
        self.first_es_at = None  # packet index of the first elementary-stream PES start
        self.pmt_pids = set()
        self.es_pids = {}  # pid -> stream_type
        self.pcr_pid = None
        self.pcr_count = 0
        self.pcr_backwards = 0
        self.pes = {}  # pid -> list of (dts, pts) in 90 kHz, unwrapped
        self.ts_backwards = {}  # pid -> count
        self.max_gap = {}  # pid -> largest DTS step (ticks)
        self.keyframe_first = None  # random_access_indicator on the first video PES?

    def duration_s(self, pid=None):
        pids = [pid] if pid else list(self.pes)
        best = 0.0
        for p in pids:
            v = self.pes.get(p) or []
            if len(v) >= 2:
                best = max(best, (v[-1][0] - v[0][0]) / 90000.0)
        return best

    def summary(self):
        return (f"packets={self.packets} sync_err={self.sync_errors} cc_err={self.cc_errors} "
                f"pat={self.pat_count} pmt={self.pmt_count} first_pid={self.first_pid} "
                f"es={self.es_pids} pcr={self.pcr_count} ts_back={self.ts_backwards} "
                f"max_gap={self.max_gap} dur={self.duration_s():.2f}s")


def _ts_field(b):
    return (((b[0] >> 1) & 7) << 30) | (b[1] << 22) | ((b[2] >> 1) << 15) | (b[3] << 7) | (b[4] >> 1)


class _Unwrap:
    """Undoes the 33-bit wrap of PTS/DTS/PCR bases."""

    def __init__(self):
        self.add = 0
        self.last = None

    def __call__(self, v):
        val = v + self.add
        if self.last is not None and val < self.last - (1 << 32):
            self.add += 1 << 33
            val += 1 << 33
        self.last = val
        return val


def ts_check(data):
    """Parses MPEG-TS @data (bytes) and returns a TsReport."""
    r = TsReport()
    cc = {}
    unwrap = {}
    n = len(data) // TS_PACKET
    for i in range(n):
        p = data[i * TS_PACKET:(i + 1) * TS_PACKET]
        r.packets += 1
        if p[0] != 0x47:
            r.sync_errors += 1
            continue
        pid = ((p[1] & 0x1f) << 8) | p[2]
        pusi = bool(p[1] & 0x40)
        afc = (p[3] >> 4) & 3
        if r.first_pid is None:
            r.first_pid = pid
        if pid == 0x1fff:
            continue
        off = 4
        disc = False
        if afc & 2:
            alen = p[4]
            if alen and 5 + alen <= TS_PACKET:
                flags = p[5]
                disc = bool(flags & 0x80)
                if flags & 0x10 and alen >= 7:  # PCR
                    base = (p[6] << 25) | (p[7] << 17) | (p[8] << 9) | (p[9] << 1) | (p[10] >> 7)
                    if pid == r.pcr_pid or r.pcr_pid is None:
                        u = unwrap.setdefault(("pcr", pid), _Unwrap())
                        last = u.last
                        val = u(base)
                        if last is not None and val < last:
                            r.pcr_backwards += 1
                        r.pcr_count += 1
            off = 5 + alen
        if afc & 1:
            if pid in cc and not disc:
                exp = (cc[pid] + 1) & 15
                if (p[3] & 15) not in (exp, cc[pid]):
                    r.cc_errors += 1
            cc[pid] = p[3] & 15
        if not (afc & 1) or off >= TS_PACKET:
            continue
        payload = p[off:]
        if pid == 0 and pusi:
            r.pat_count += 1
            if r.first_pat_at is None:
                r.first_pat_at = i
            sec = payload[1 + payload[0]:]
            length = ((sec[1] & 0x0f) << 8) | sec[2]
            body = sec[8:3 + length - 4]
            for j in range(0, len(body) - 3, 4):
                prog = (body[j] << 8) | body[j + 1]
                ppid = ((body[j + 2] & 0x1f) << 8) | body[j + 3]
                if prog:
                    r.pmt_pids.add(ppid)
        elif pid in r.pmt_pids and pusi:
            r.pmt_count += 1
            sec = payload[1 + payload[0]:]
            length = ((sec[1] & 0x0f) << 8) | sec[2]
            r.pcr_pid = ((sec[8] & 0x1f) << 8) | sec[9]
            pil = ((sec[10] & 0x0f) << 8) | sec[11]
            j = 12 + pil
            end = 3 + length - 4
            while j + 5 <= end:
                st, epid = sec[j], ((sec[j + 1] & 0x1f) << 8) | sec[j + 2]
                r.es_pids[epid] = st
                j += 5 + (((sec[j + 3] & 0x0f) << 8) | sec[j + 4])
        elif pid in r.es_pids and pusi and payload[:3] == b"\x00\x00\x01":
            if r.first_es_at is None:
                r.first_es_at = i
            flags = payload[7]
            if not flags & 0x80:
                continue
            pts = _ts_field(payload[9:14])
            dts = _ts_field(payload[14:19]) if flags & 0x40 else pts
            u = unwrap.setdefault(("pes", pid), _Unwrap())
            val = u(dts)
            add = val - dts
            lst = r.pes.setdefault(pid, [])
            if lst:
                step = val - lst[-1][0]
                if step <= 0:
                    r.ts_backwards[pid] = r.ts_backwards.get(pid, 0) + 1
                r.max_gap[pid] = max(r.max_gap.get(pid, 0), step)
            lst.append((val, pts + add))
    return r


# MPEG-TS stream types: video and audio families.
VIDEO_TYPES = {0x01, 0x02, 0x10, 0x1b, 0x24, 0x42, 0xea}
AUDIO_TYPES = {0x03, 0x04, 0x0f, 0x11, 0x81, 0x87}


def ts_video_pid(r):
    return next((p for p, t in r.es_pids.items() if t in VIDEO_TYPES), None)


def ts_audio_pid(r):
    return next((p for p, t in r.es_pids.items() if t in AUDIO_TYPES), None)


def assert_ts_ok(tc, data, min_seconds=1.0, want_video=True, want_audio=True):
    """The relay's promises on one captured TS: sync, zero CC errors, PAT then PMT first and
    repeated, DTS strictly increasing per stream, no gap over 1 s, PCR present."""
    r = ts_check(data)
    info = r.summary()
    tc.assertGreater(r.packets, 0, "no TS at all")
    tc.assertEqual(len(data) % TS_PACKET, 0, f"not a whole number of TS packets: {info}")
    tc.assertEqual(r.sync_errors, 0, info)
    tc.assertEqual(r.cc_errors, 0, info)
    # PAT first; the muxer may put its SDT (PID 17) before it.
    tc.assertIn(r.first_pid, (0, 17), f"the stream must start with a PAT: {info}")
    tc.assertLessEqual(r.first_pat_at, 2, info)
    tc.assertGreater(r.first_es_at, r.first_pat_at, f"ES before the first PAT: {info}")
    tc.assertGreater(r.pcr_count, 0, info)
    tc.assertEqual(r.pcr_backwards, 0, info)
    tc.assertFalse(r.ts_backwards, f"DTS went backwards: {info}")
    dur = r.duration_s()
    tc.assertGreaterEqual(dur, min_seconds, info)
    # PAT every 0.1 s by contract: at least 4 per second of media is a safe floor.
    tc.assertGreaterEqual(r.pat_count, int(dur * 4), info)
    tc.assertGreaterEqual(r.pmt_count, int(dur * 4), info)
    for pid, gap in r.max_gap.items():
        tc.assertLessEqual(gap, 90000, f"PID {pid} has a {gap / 90000:.2f} s gap: {info}")
    if want_video:
        tc.assertIsNotNone(ts_video_pid(r), info)
    if want_audio:
        tc.assertIsNotNone(ts_audio_pid(r), info)
    return r


def ffprobe_streams(data, timeout=30):
    """Codec types ffprobe finds in @data (bytes or a path): e.g. {'video': 'h264', ...}."""
    path = data
    tmp = None
    if isinstance(data, (bytes, bytearray)):
        fd, tmp = tempfile.mkstemp(suffix=".ts")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        path = tmp
    try:
        cp = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                             "stream=codec_type,codec_name", "-of", "json", path],
                            capture_output=True, text=True, timeout=timeout)
        streams = json.loads(cp.stdout or "{}").get("streams", [])
        out = {}
        for s in streams:
            out.setdefault(s.get("codec_type"), s.get("codec_name"))
        return out
    finally:
        if tmp:
            os.unlink(tmp)


# --------------------------------------------------------------------------------------------
# running the ingest child


def _to_fd3(fd):
    # dup2(3, 3) would keep close-on-exec: make it inheritable explicitly in that case.
    if fd == 3:
        os.set_inheritable(3, True)
    else:
        os.dup2(fd, 3)


class Ingest:
    """`$PLEXTV_BIN ingest` with its config on fd 3, as the parent runs it: stdout (TS) and
    stderr (events) are pipes read by threads; every wait is bounded."""

    def __init__(self, binary, config, wrap=None, env=None):
        self.config = config
        r, w = os.pipe()
        argv = [binary, "ingest"]
        if wrap:
            argv = wrap(argv)
        self.t_spawn = time.monotonic()
        # fd 3 = the config pipe. Not pass_fds: Popen closes fds *after* preexec_fn, which
        # would close the fd 3 made there. Python's own fds are close-on-exec (PEP 446), so
        # close_fds=False leaks nothing; dup2 makes fd 3 the one inheritable extra.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, close_fds=False,
                                     env=env if env is not None else {"PATH": "/usr/bin:/bin"},
                                     preexec_fn=lambda: (_to_fd3(r), _pdeathsig()))
        os.close(r)
        os.write(w, json.dumps(config).encode())
        os.close(w)
        self.ts = bytearray()
        self.t_first_byte = None
        self.events = []
        self.raw_err = bytearray()
        self.lock = threading.Lock()
        self._t1 = threading.Thread(target=self._read_ts, daemon=True)
        self._t2 = threading.Thread(target=self._read_ev, daemon=True)
        self._t1.start()
        self._t2.start()

    def _read_ts(self):
        fd = self.proc.stdout.fileno()
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            with self.lock:
                if self.t_first_byte is None:
                    self.t_first_byte = time.monotonic()
                self.ts += b

    def _read_ev(self):
        for line in self.proc.stderr:
            with self.lock:
                self.raw_err += line
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.events.append({"ev": "UNPARSEABLE", "line": line.decode(errors="replace")})

    @property
    def first_byte_ms(self):
        return None if self.t_first_byte is None else (self.t_first_byte - self.t_spawn) * 1000

    def evs(self, name):
        with self.lock:
            return [e for e in self.events if e.get("ev") == name]

    def wait_event(self, name, timeout, pred=lambda e: True):
        return wait_for(lambda: any(pred(e) for e in self.evs(name)), timeout)

    def wait_bytes(self, n, timeout):
        return wait_for(lambda: len(self.ts) >= n, timeout)

    def wait_media(self, seconds, timeout):
        """Waits until the TS holds @seconds of media on some stream."""
        def enough():
            with self.lock:
                data = bytes(self.ts[:len(self.ts) // TS_PACKET * TS_PACKET])
            return ts_check(data).duration_s() >= seconds
        return wait_for(enough, timeout, step=0.5)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._t1.join(5)
        self._t2.join(5)
        for f in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()
        return self.proc.returncode

    def data(self):
        with self.lock:
            return bytes(self.ts[:len(self.ts) // TS_PACKET * TS_PACKET])

    def describe(self):
        with self.lock:
            return (f"rc={self.proc.returncode} ts_bytes={len(self.ts)} "
                    f"events:\n" + self.raw_err.decode(errors="replace")[-4000:])
