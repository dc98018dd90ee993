# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration test harness for PlexTV (Python 3 standard library only).

Every test file does `import ptvtest` and ends with `ptvtest.main()`. The harness:
  * starts the real binary (env PLEXTV_BIN) with `Server`, on a free loopback port, in a
    temporary data dir, and checks on exit that it stopped with status 0 and that its log has
    no sanitizer lines (the nginx-tests rule);
  * talks raw HTTP/1.1 over sockets with `Conn` (exact bytes in, parsed responses out), so
    tests can send malformed, pipelined and partial requests;
  * parses the Prometheus text format (`parse_metrics`) and runs promtool.

Rules: traffic goes only to 127.0.0.1; every loop is bounded in count and time.
Exit codes of main(): 0 pass, 1 fail, 77 skip (no binary).
"""

import ctypes
import faulthandler
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime, timezone

HOST = "127.0.0.1"
BIN = os.environ.get("PLEXTV_BIN", "")
SOURCE_DIR = os.environ.get("PTV_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("PTV_BUILD_DIR", "")
SHARED_DATA = os.environ.get("PTV_SHARED_DATA", "")
EX_USAGE, EX_UNAVAILABLE, EX_CONFIG = 64, 69, 78

# Log lines that fail any test (nginx-tests: no sanitizer errors, no alerts).
BAD_LOG_PATTERNS = ("Sanitizer", "runtime error", "BUG at", "LeakSanitizer")


def _raise_nofile():
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


_raise_nofile()


def nofile_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------------------------
# Ports and processes


def free_port():
    """A loopback TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _child_setup():
    # Die with the test runner, so a killed or crashed test never leaves a server behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


def clean_env(extra=None):
    """os.environ without PLEXTV_* (so the caller's shell cannot change results), plus @extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PLEXTV_") and not k.startswith("FILE__PLEXTV_")}
    if extra:
        env.update(extra)
    return env


def run_cli(args, env=None, timeout=20.0, cwd=None, input_bytes=None):
    """Runs `plextv ARGS` to completion. Returns a CompletedProcess with text stdout/stderr."""
    cp = subprocess.run([BIN] + list(args), env=clean_env(env), cwd=cwd, input=input_bytes,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                        preexec_fn=_child_setup)
    cp.stdout = cp.stdout.decode("utf-8", "replace")
    cp.stderr = cp.stderr.decode("utf-8", "replace")
    return cp


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(p in line for p in BAD_LOG_PATTERNS)]


class ServerStartError(AssertionError):
    pass


class Server:
    """Runs `PLEXTV_BIN serve` for the duration of a `with` block.

        with Server("--header-timeout-ms", "1500") as srv:
            c = srv.connect(); ...

    On exit: SIGTERM, bounded wait, then asserts exit status 0 and a log free of sanitizer
    lines. The temp dir (data dir, log, config) is removed when everything passed, else kept
    and its path printed.
    """

    def __init__(self, *args, env=None, workers=2, config=None, port=None,
                 startup_timeout=10.0, stop_timeout=10.0, wait_healthy=True, listen_flag=True,
                 data_dir=None):
        self.extra = [str(a) for a in args]
        self.env = dict(env or {})
        self.workers = workers
        self.config_text = config
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.wait_healthy = wait_healthy
        # False: no --listen flag; @config must set listen (write "@PORT@" for the port).
        self.listen_flag = listen_flag
        self.proc = None
        self.tmp = None
        # A data dir given by the test survives the server (restart tests); else a temp one.
        self.fixed_data_dir = data_dir
        self.data_dir = None
        self.log_path = None
        self.config_path = None
        self.returncode = None
        self._logf = None
        self._keep = False

    # -- lifecycle --

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="ptv-it-")
        self.data_dir = self.fixed_data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.tmp, "server.log")
        args = list(self.extra)
        if self.config_text is not None:
            self.config_path = os.path.join(self.tmp, "plextv.conf")
            args = ["--config", self.config_path] + args
        fixed_port = self.port is not None
        for attempt in range(3):
            if not fixed_port:
                self.port = free_port()
            if self.config_text is not None:
                self.write_config(self.config_text)
            self._spawn(args)
            if not self.wait_healthy:
                return self
            try:
                self._wait_health()
                return self
            except ServerStartError:
                log = self.log()
                in_use = "in use" in log.lower() or "eaddrinuse" in log.lower()
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(5)
                if fixed_port or not in_use or attempt == 2:
                    self._keep = True
                    raise
        return self

    def _spawn(self, args):
        cmd = [BIN, "serve", "--data-dir", self.data_dir]
        if self.listen_flag:
            cmd += ["--listen", f"{HOST}:{self.port}"]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        cmd += args
        if self._logf:
            self._logf.close()
        self._logf = open(self.log_path, "ab")
        self._logf.write(("### " + " ".join(cmd) + "\n").encode())
        self._logf.flush()
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=clean_env(self.env),
                                     cwd=self.tmp, preexec_fn=_child_setup)
        self.started_at = time.monotonic()

    def _wait_health(self):
        deadline = time.monotonic() + self.startup_timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerStartError(f"server exited with status {rc} during start-up\n"
                                       f"command: {' '.join(self.cmd)}\n{self.log_tail()}")
            try:
                r = http_request(self.port, "GET", "/health", timeout=1.0, close=True)
                if r.status == 200:
                    return
                last = f"status {r.status}"
            except (OSError, AssertionError) as e:
                last = repr(e)
            time.sleep(0.05)
        raise ServerStartError(f"GET /health did not answer 200 within {self.startup_timeout} s "
                               f"(last: {last})\ncommand: {' '.join(self.cmd)}\n{self.log_tail()}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def terminate(self, timeout=None):
        """SIGTERM and wait; returns (exit status, seconds). Kills and raises on timeout."""
        timeout = self.stop_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout, t0)

    def wait_exit(self, timeout, t0=None):
        t0 = time.monotonic() if t0 is None else t0
        try:
            rc = self.proc.wait(timeout=max(0.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self._keep = True
            raise AssertionError(f"server did not exit within {timeout:.1f} s of SIGTERM "
                                 f"(killed)\n{self.log_tail()}")
        self.returncode = rc
        return rc, time.monotonic() - t0

    def stop(self):
        """SIGTERM (if still running), then check exit status and log. Raises AssertionError."""
        problems = []
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                rc, _ = self.terminate()
            else:
                rc = self.proc.returncode
                self.returncode = rc
            if rc != 0:
                problems.append(f"server exit status {rc}, expected 0")
        except AssertionError as e:
            problems.append(str(e))
        bad = sanitizer_lines(self.log())
        if bad:
            problems.append("sanitizer/BUG lines in the server log:\n  " + "\n  ".join(bad[:20]))
        if self._logf:
            self._logf.close()
            self._logf = None
        if problems:
            self._keep = True
            raise AssertionError("; ".join(problems) + f"\n{self.log_tail()}")

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self._logf:
            self._logf.close()
            self._logf = None
        if self.tmp and os.path.isdir(self.tmp):
            if self._keep or os.environ.get("PTV_KEEP_TMP"):
                sys.stderr.write(f"[ptvtest] kept {self.tmp}\n")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        except AssertionError as e:
            if exc_type is None:
                raise
            sys.stderr.write(f"[ptvtest] also at server stop: {e}\n")
            self._keep = True
        finally:
            if exc_type is not None:
                self._keep = True
            self.cleanup()
        return False

    # -- helpers --

    @property
    def addr(self):
        return f"{HOST}:{self.port}"

    def url(self, path="/"):
        return f"http://{HOST}:{self.port}{path}"

    def connect(self, timeout=5.0, rcvbuf=None):
        return Conn(self.port, timeout=timeout, rcvbuf=rcvbuf)

    def get(self, path, **kw):
        return http_request(self.port, "GET", path, **kw)

    def write_config(self, text):
        """Atomically replaces the config file; "@PORT@" in @text becomes the server's port."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text.replace("@PORT@", str(self.port)))
        os.replace(tmp, self.config_path)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        lines = self.log().splitlines()
        return "---- server log (last %d of %d lines) ----\n%s\n----" % (
            min(n, len(lines)), len(lines), "\n".join(lines[-n:]))

    def wait_log(self, needle, offset=0, timeout=5.0):
        """Waits until the log after @offset contains @needle (str, case-insensitive, or a
        compiled regex). Returns the matching line or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_since(offset).splitlines():
                if isinstance(needle, re.Pattern):
                    if needle.search(line):
                        return line
                elif needle.lower() in line.lower():
                    return line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


# --------------------------------------------------------------------------------------------
# Raw HTTP over sockets


class Headers:
    """Response headers in order. Names compare case-insensitively; duplicates are kept."""

    def __init__(self, items):
        self.items = list(items)  # [(name as sent, value)]

    def getall(self, name):
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def get(self, name, default=None):
        vals = self.getall(name)
        return vals[0] if vals else default

    def count(self, name):
        return len(self.getall(name))

    def tokens(self, name):
        """Lower-cased comma-separated tokens over every occurrence (for Connection, Allow)."""
        out = []
        for v in self.getall(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __contains__(self, name):
        return bool(self.getall(name))

    def __getitem__(self, name):
        vals = self.getall(name)
        if not vals:
            raise KeyError(name)
        return vals[0]

    def as_dict(self):
        d = {}
        for k, v in self.items:
            d.setdefault(k.lower(), []).append(v)
        return d

    def __repr__(self):
        return repr(self.items)


class Response:
    def __init__(self, status_line, version, status, reason, headers, body, raw_head, elapsed):
        self.status_line = status_line
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head
        self.elapsed = elapsed
        self.method_had_body = True

    @property
    def connection_tokens(self):
        return self.headers.tokens("connection")

    def __repr__(self):
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"<Response {self.status_line!r} {self.headers!r} body={body!r}>"


class ProtocolError(AssertionError):
    pass


class Closed(AssertionError):
    """The peer closed (or reset) before a complete response arrived."""


class NoResponse(AssertionError):
    """Nothing complete arrived within the timeout."""


STATUS_RE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3}) ?(.*)$")
MAX_HEAD = 256 * 1024
MAX_BODY = 64 * 1024 * 1024


class Conn:
    """One client connection with its own receive buffer (so pipelined responses are kept)."""

    def __init__(self, port, timeout=5.0, host=HOST, sock=None, rcvbuf=None):
        if sock is None and rcvbuf:
            # Before connect: shrinking the buffer of an established connection makes the
            # kernel drop data already in flight, and retransmission backoff then stalls it.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((host, port))
        elif sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.reset = False
        self.port = port

    # -- sending --

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.settimeout(10.0)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
            # Keep what the server said before it closed, for the failure message.
            self.wait_closed(0.2)
            raise Closed(f"peer closed while we were sending ({e!r}); it sent "
                         f"{self._show()}") from e

    def try_send(self, data):
        """Sends; returns False instead of raising when the peer already closed or reset."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.settimeout(10.0)
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return False
        except socket.timeout:
            return False

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    # -- receiving --

    def _recv(self, deadline):
        """Reads once into buf. Returns True if bytes arrived, False on EOF/reset; raises
        socket.timeout when the deadline passes."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError):
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _need(self, n_or_pred, deadline, what):
        """Reads until len(buf) >= n (int) or pred(buf) is true."""
        check = (lambda b: len(b) >= n_or_pred) if isinstance(n_or_pred, int) else n_or_pred
        while not check(self.buf):
            try:
                if not self._recv(deadline):
                    raise Closed(f"connection {'reset' if self.reset else 'closed'} while "
                                 f"reading {what}; buffered {self._show()}")
            except socket.timeout:
                raise NoResponse(f"timeout while reading {what}; buffered {self._show()}")

    def _show(self, n=300):
        b = self.buf
        return repr(b if len(b) <= n else b[:n] + b"...") + f" ({len(b)} bytes)"

    def read_response(self, timeout=5.0, method="GET"):
        """Reads one response: head, then body by Content-Length, chunked, or until close."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._need(lambda b: b"\r\n\r\n" in b or len(b) > MAX_HEAD, deadline, "response head")
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            raise ProtocolError(f"response head larger than {MAX_HEAD} bytes")
        raw_head = self.buf[:end]
        self.buf = self.buf[end + 4:]
        lines = raw_head.split(b"\r\n")
        for ln in lines:
            if b"\n" in ln or b"\r" in ln or b"\0" in ln:
                raise ProtocolError(f"bare CR/LF or NUL in response head: {raw_head!r}")
        m = STATUS_RE.match(lines[0])
        if not m:
            raise ProtocolError(f"bad status line {lines[0]!r}")
        version = f"{m.group(1).decode()}.{m.group(2).decode()}"
        status = int(m.group(3))
        reason = m.group(4).decode("latin-1")
        items = []
        for ln in lines[1:]:
            if b":" not in ln or ln[:1] in (b" ", b"\t"):
                raise ProtocolError(f"bad response header line {ln!r} in {raw_head!r}")
            k, v = ln.split(b":", 1)
            if k != k.strip() or not k:
                raise ProtocolError(f"bad response header name {k!r}")
            items.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        headers = Headers(items)
        body = b""
        if method.upper() == "HEAD" or 100 <= status < 200 or status in (204, 304):
            pass
        elif "chunked" in headers.tokens("transfer-encoding"):
            body = self._read_chunked(deadline)
        elif "content-length" in headers:
            cls = headers.getall("content-length")
            if len(set(cls)) != 1 or not cls[0].isdigit():
                raise ProtocolError(f"bad Content-Length in response: {cls!r}")
            n = int(cls[0])
            if n > MAX_BODY:
                raise ProtocolError(f"response Content-Length {n} too large for the harness")
            self._need(n, deadline, f"body of {n} bytes")
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while True:
                try:
                    if not self._recv(deadline):
                        break
                except socket.timeout:
                    raise NoResponse("timeout reading a close-delimited body")
                if len(self.buf) > MAX_BODY:
                    raise ProtocolError("close-delimited body too large")
            body, self.buf = self.buf, b""
        resp = Response(lines[0].decode("latin-1"), version, status, reason, headers, body,
                        raw_head, time.monotonic() - t0)
        resp.method_had_body = not (method.upper() == "HEAD" or 100 <= status < 200
                                    or status in (204, 304))
        return resp

    def _read_chunked(self, deadline):
        body = b""
        for _ in range(1_000_000):
            self._need(lambda b: b"\r\n" in b, deadline, "chunk size line")
            line, self.buf = self.buf.split(b"\r\n", 1)
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {line!r}")
            if size == 0:
                for _ in range(1000):  # trailers, then the empty line
                    self._need(lambda b: b"\r\n" in b, deadline, "chunked trailer")
                    tl, self.buf = self.buf.split(b"\r\n", 1)
                    if tl == b"":
                        return body
                raise ProtocolError("too many trailer lines")
            self._need(size + 2, deadline, f"chunk of {size} bytes")
            if self.buf[size:size + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            body += self.buf[:size]
            self.buf = self.buf[size + 2:]
            if len(body) > MAX_BODY:
                raise ProtocolError("chunked body too large")
        raise ProtocolError("too many chunks")

    def read_responses(self, n, timeout=10.0, methods=None):
        deadline = time.monotonic() + timeout
        out = []
        for i in range(n):
            m = methods[i] if methods else "GET"
            try:
                out.append(self.read_response(timeout=max(0.01, deadline - time.monotonic()),
                                              method=m))
            except (Closed, NoResponse) as e:
                raise type(e)(f"after {i} of {n} responses: {e}")
        return out

    def wait_closed(self, timeout):
        """Waits up to @timeout for EOF or reset, buffering whatever arrives meanwhile.
        Returns True if the peer closed or reset."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if self.eof:
                return True
            try:
                self._recv(deadline)
            except socket.timeout:
                return self.eof
            except OSError:
                self.eof = True
                return True
        return self.eof

    def is_open(self, wait=0.2):
        """True when the peer has neither closed nor sent anything within @wait seconds."""
        return not self.wait_closed(wait)

    def request(self, method="GET", path="/health", headers=None, body=None, timeout=5.0,
                **kw):
        self.send(build_request(method, path, headers, body, **kw))
        return self.read_response(timeout=timeout, method=method)


def build_request(method="GET", path="/health", headers=None, body=None, version="HTTP/1.1",
                  host="127.0.0.1", close=False):
    """Request bytes. @headers: list of (name, value) or raw bytes lines appended after Host.
    A Content-Length is added for @body unless @headers already frame it."""
    out = [f"{method} {path} {version}".encode("latin-1")]
    if host is not None:
        out.append(b"Host: " + host.encode("latin-1"))
    names = set()
    for h in headers or []:
        if isinstance(h, (bytes, bytearray)):
            out.append(bytes(h))
        else:
            k, v = h
            names.add(k.lower())
            out.append(f"{k}: {v}".encode("latin-1"))
    if close:
        out.append(b"Connection: close")
    if body is not None:
        if isinstance(body, str):
            body = body.encode("latin-1")
        if "content-length" not in names and "transfer-encoding" not in names:
            out.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + (body or b"")


def http_request(port, method="GET", path="/health", headers=None, body=None, timeout=5.0,
                 close=True, **kw):
    """One request on a fresh connection; returns the Response."""
    with Conn(port, timeout=timeout) as c:
        c.send(build_request(method, path, headers, body, close=close, **kw))
        return c.read_response(timeout=timeout, method=method)


IMF_FIXDATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) "
                            r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
                            r"(\d{2}):(\d{2}):(\d{2}) GMT$")


def parse_imf_fixdate(s):
    """datetime (UTC) for an RFC 7231 IMF-fixdate, or None if @s is not one."""
    if not IMF_FIXDATE_RE.match(s or ""):
        return None
    try:
        dt = datetime.strptime(s, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    # strptime ignores a wrong weekday; check it.
    if dt.strftime("%a") != s[:3]:
        return None
    return dt


# --------------------------------------------------------------------------------------------
# Prometheus text format


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    return v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


class Metrics:
    def __init__(self, text):
        self.text = text
        self.types = {}
        self.helps = {}
        self.samples = []  # (name, {labels}, value)
        for ln in text.splitlines():
            if not ln.strip():
                continue
            if ln.startswith("#"):
                parts = ln.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3].strip() if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE_RE.match(ln)
            if not m:
                raise ProtocolError(f"unparsable metrics line {ln!r}")
            labels = {}
            if m.group(2):
                rest = m.group(2)
                pos = 0
                while pos < len(rest):
                    lm = _LABEL_RE.match(rest, pos)
                    if not lm:
                        raise ProtocolError(f"bad labels in {ln!r}")
                    labels[lm.group(1)] = _unescape(lm.group(2))
                    pos = lm.end()
            self.samples.append((m.group(1), labels, float(m.group(3))))

    def find(self, name, **labels):
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def value(self, name, default=None, **labels):
        """The value of the one sample of @name whose labels include @labels."""
        found = self.find(name, **labels)
        if not found:
            return default
        if len(found) > 1:
            raise AssertionError(f"{len(found)} samples of {name} match {labels}: {found}")
        return found[0][1]

    def sum(self, name, **labels):
        return sum(v for _, v in self.find(name, **labels))


def parse_metrics(text):
    return Metrics(text)


def scrape(port_or_conn, timeout=5.0):
    """GET /metrics; returns (Response, Metrics). Reuses a Conn when given one."""
    if isinstance(port_or_conn, Conn):
        r = port_or_conn.request("GET", "/metrics", timeout=timeout)
    else:
        r = http_request(port_or_conn, "GET", "/metrics", timeout=timeout)
    if r.status != 200:
        raise AssertionError(f"GET /metrics answered {r.status_line}: {r.body[:200]!r}")
    return r, Metrics(r.body.decode("utf-8"))


PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool")
                                        else None)


def promtool_check(body):
    """Pipes @body to `promtool check metrics`; returns (exit status, combined output)."""
    cp = subprocess.run([PROMTOOL, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=30)
    return cp.returncode, cp.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# Misc


def wait_until(pred, timeout, interval=0.05):
    """Polls @pred until true or @timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def port_is_listening(port):
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def have_binary():
    return bool(BIN) and os.path.isfile(BIN) and os.access(BIN, os.X_OK)


SERVER_HEADER_RE = re.compile(r"^PlexTV/\S+$")


class TestCase(unittest.TestCase):
    maxDiff = 4000

    def assertCommonHeaders(self, r, streamed=False, what=""):
        """What every response carries: `HTTP/1.1 <code> <reason>`, one Server: PlexTV/<v>,
        one Date in IMF-fixdate close to now, and (unless streamed) one Content-Length
        matching the body."""
        what = f"{what}: " if what else ""
        self.assertRegex(r.status_line, r"^HTTP/1\.1 \d{3} \S.*$", f"{what}status line")
        self.assertEqual(r.headers.count("server"), 1, f"{what}one Server header: {r}")
        self.assertRegex(r.headers.get("server"), SERVER_HEADER_RE,
                         f"{what}Server: PlexTV/<version>")
        self.assertEqual(r.headers.count("date"), 1, f"{what}one Date header: {r}")
        dt = parse_imf_fixdate(r.headers.get("date"))
        self.assertIsNotNone(dt, f"{what}Date is not an IMF-fixdate: {r.headers.get('date')!r}")
        skew = abs((datetime.now(timezone.utc) - dt).total_seconds())
        self.assertLess(skew, 5.0, f"{what}Date {r.headers.get('date')!r} is {skew:.0f} s off")
        if not streamed:
            self.assertEqual(r.headers.count("content-length"), 1,
                             f"{what}exactly one Content-Length on a non-streamed response: {r}")
            self.assertNotIn("transfer-encoding", r.headers, f"{what}{r}")
            if r.method_had_body:
                self.assertEqual(int(r.headers.get("content-length")), len(r.body),
                                 f"{what}Content-Length vs body")

    def assertClosedWithin(self, conn, timeout, msg=""):
        t0 = time.monotonic()
        closed = conn.wait_closed(timeout)
        if not closed:
            self.fail(f"connection still open {timeout} s later {msg}; extra bytes "
                      f"{conn._show()}")
        return time.monotonic() - t0


class SharedServerTestCase(TestCase):
    """A TestCase whose tests share one default `Server` (cls.srv), started once per class.
    Each test first checks that the server is still alive; conn() opens a connection that is
    closed at the end of the test."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def setUp(self):
        self.assertTrue(self.srv.alive(), "server died during an earlier test\n"
                        + self.srv.log_tail())

    def conn(self):
        c = self.srv.connect()
        self.addCleanup(c.close)
        return c


def main(watchdog=300):
    """unittest with verbosity 2; exit 0 pass, 1 fail, 77 skip (no binary or all skipped)."""
    if not have_binary():
        sys.stderr.write(f"SKIP: PLEXTV_BIN={BIN!r} is not an executable file\n")
        sys.exit(77)
    # A hung test prints every thread's stack and exits 1 (servers die with us: PDEATHSIG).
    faulthandler.dump_traceback_later(watchdog, exit=True)
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    faulthandler.cancel_dump_traceback_later()
    r = prog.result
    if not r.wasSuccessful():
        sys.exit(1)
    if r.testsRun == 0 or len(r.skipped) == r.testsRun:
        sys.exit(77)
    sys.exit(0)
