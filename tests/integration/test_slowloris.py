# SPDX-License-Identifier: GPL-3.0-or-later
"""Header and idle timeouts, and slowloris (RELIABILITY.md §2.3, H5).

The header timeout counts from the first byte of a request, so trickling header lines does not
extend it. A partial head gets 408 + close; a connection that sent nothing is closed silently
at the header timeout; an idle keep-alive connection is closed silently at the idle timeout."""

import os
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import Server  # noqa: E402

SLACK = 2.0  # seconds the server may take past a deadline
EARLY = 0.2  # seconds before a deadline that still count as "about then"


class Timeouts(ptvtest.TestCase):
    """header_timeout 1500 ms, idle_timeout 4000 ms (different, to tell them apart)."""

    HEADER_MS = 1500
    IDLE_MS = 4000

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--header-timeout-ms", cls.HEADER_MS, "--idle-timeout-ms", cls.IDLE_MS)
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def conn(self):
        c = self.srv.connect()
        self.addCleanup(c.close)
        return c

    def test_partial_head_408(self):
        c = self.conn()
        t0 = time.monotonic()
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        r = c.read_response(timeout=self.HEADER_MS / 1000 + SLACK + 1)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 408, r)
        self.assertCommonHeaders(r)
        self.assertIn("close", r.connection_tokens, r)
        self.assertGreaterEqual(elapsed, self.HEADER_MS / 1000 - EARLY, "408 came too early")
        self.assertLessEqual(elapsed, self.HEADER_MS / 1000 + SLACK, "408 came too late")
        self.assertClosedWithin(c, 1.0, "after 408")

    def test_partial_request_line_408(self):
        c = self.conn()
        t0 = time.monotonic()
        c.send(b"GET /hea")
        r = c.read_response(timeout=self.HEADER_MS / 1000 + SLACK + 1)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 408, r)
        self.assertGreaterEqual(elapsed, self.HEADER_MS / 1000 - EARLY)
        self.assertLessEqual(elapsed, self.HEADER_MS / 1000 + SLACK)
        self.assertClosedWithin(c, 1.0, "after 408")

    def test_trickled_head_not_extended(self):
        # One more header line every 300 ms: the deadline still runs from the first byte.
        c = self.conn()
        t0 = time.monotonic()
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        limit = self.HEADER_MS / 1000 + SLACK
        got = None
        for i in range(40):
            if c.wait_closed(0.3) or c.buf:
                break
            if not c.try_send(b"X-T%d: v\r\n" % i):
                break
            if time.monotonic() - t0 > limit + 1:
                break
        elapsed = time.monotonic() - t0
        if c.buf:
            got = c.read_response(timeout=1.0)
        self.assertIsNotNone(got, f"no 408 for a trickled head ({elapsed:.1f} s)")
        self.assertEqual(got.status, 408, got)
        self.assertLessEqual(elapsed, limit, "trickling extended the header timeout")
        self.assertGreaterEqual(elapsed, self.HEADER_MS / 1000 - EARLY)
        self.assertClosedWithin(c, 1.0, "after 408")

    def test_silent_connection_closed_at_header_timeout(self):
        c = self.conn()
        t0 = time.monotonic()
        closed = c.wait_closed(self.HEADER_MS / 1000 + SLACK)
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, f"a connection that sent nothing was still open after "
                        f"{elapsed:.1f} s (header timeout {self.HEADER_MS} ms)")
        self.assertEqual(c.buf, b"", "a connection that sent nothing got bytes (no 408 due)")
        self.assertGreaterEqual(elapsed, self.HEADER_MS / 1000 - EARLY, "closed too early")

    def test_complete_request_before_timeout_ok(self):
        # A head that completes within the timeout is served normally.
        c = self.conn()
        c.send(b"GET /health HTTP/1.1\r\n")
        time.sleep(self.HEADER_MS / 2000)
        c.send(b"Host: x\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        # And the next request gets a fresh header deadline.
        time.sleep(self.HEADER_MS / 2000)
        c.send(b"GET /health HTTP/1.1\r\n")
        time.sleep(self.HEADER_MS / 2000)
        c.send(b"Host: x\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)


class IdleTimeout(ptvtest.TestCase):
    """idle_timeout 1500 ms, header_timeout 4000 ms."""

    IDLE_MS = 1500

    def test_idle_keepalive_closed_silently(self):
        with Server("--idle-timeout-ms", self.IDLE_MS, "--header-timeout-ms", 4000) as srv:
            c = srv.connect()
            self.addCleanup(c.close)
            r = c.request("GET", "/health")
            self.assertEqual(r.status, 200)
            self.assertNotIn("close", r.connection_tokens)
            t0 = time.monotonic()
            closed = c.wait_closed(self.IDLE_MS / 1000 + SLACK)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, f"idle keep-alive connection open after {elapsed:.1f} s")
            self.assertEqual(c.buf, b"", "idle close sent bytes (must be silent)")
            self.assertGreaterEqual(elapsed, self.IDLE_MS / 1000 - EARLY, "closed too early")
            # Activity resets the idle clock.
            c2 = srv.connect()
            self.addCleanup(c2.close)
            for _ in range(3):
                time.sleep(self.IDLE_MS / 2000)
                self.assertEqual(c2.request("GET", "/health").status, 200)


class Slowloris(ptvtest.TestCase):
    N = 1000
    HEADER_MS = 3000
    TRICKLE = 0.5

    def test_slowloris_1000(self):
        if ptvtest.nofile_limit() < 2 * self.N + 200:
            self.skipTest(f"RLIMIT_NOFILE {ptvtest.nofile_limit()} too low for {self.N} conns")
        with Server("--header-timeout-ms", self.HEADER_MS, "--idle-timeout-ms", 60000,
                    "--max-connections", 4 * self.N) as srv:
            self.run_slowloris(srv)

    def run_slowloris(self, srv):
        sel = selectors.DefaultSelector()
        conns = {}  # fd -> dict(sock, first, next, closed, data)
        self.addCleanup(sel.close)

        def close_all():
            for st in conns.values():
                try:
                    st["sock"].close()
                except OSError:
                    pass
        self.addCleanup(close_all)

        # Open the connections in batches; each sends a partial head at once.
        open_deadline = time.monotonic() + 20
        for i in range(self.N):
            if time.monotonic() > open_deadline:
                self.fail(f"opening slowloris connections took > 20 s ({i} open)")
            s = socket.create_connection((ptvtest.HOST, srv.port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            now = time.monotonic()
            s.setblocking(False)
            conns[s.fileno()] = {"sock": s, "first": now, "next": now + self.TRICKLE,
                                 "closed": None, "data": b"", "n": 0}
            sel.register(s, selectors.EVENT_READ)
            if i % 100 == 99:
                time.sleep(0.01)
        opened_at = time.monotonic()

        # A normal client, measured several times while the attack runs.
        latencies, errors = [], []

        def probe():
            for k in range(6):
                time.sleep(0.4)
                t = time.monotonic()
                try:
                    r = ptvtest.http_request(srv.port, "GET", "/health", timeout=5.0)
                    if r.status != 200:
                        errors.append(f"probe {k}: {r.status_line}")
                    latencies.append(time.monotonic() - t)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"probe {k}: {e!r} after {time.monotonic() - t:.2f} s")
        th = threading.Thread(target=probe, daemon=True)
        th.start()

        deadline_of = lambda st: st["first"] + self.HEADER_MS / 1000 + SLACK  # noqa: E731
        end = max(deadline_of(st) for st in conns.values()) + 0.5
        alive = len(conns)
        for _ in range(1_000_000):
            now = time.monotonic()
            if alive == 0 or now > end:
                break
            for key, _ev in sel.select(0.05):
                st = conns[key.fd]
                try:
                    d = st["sock"].recv(4096)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, ConnectionAbortedError):
                    d = b""
                if d:
                    st["data"] += d
                    continue
                st["closed"] = time.monotonic()
                sel.unregister(st["sock"])
                alive -= 1
            now = time.monotonic()
            for st in conns.values():
                if st["closed"] is None and now >= st["next"]:
                    st["next"] = now + self.TRICKLE
                    try:
                        st["sock"].send(b"X-Slow-%d: x\r\n" % st["n"])
                        st["n"] += 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        pass  # the server closed; the read side will see it
        th.join(10)

        # A normal client was answered promptly meanwhile.
        self.assertFalse(errors, f"health probes during slowloris failed: {errors}")
        self.assertGreaterEqual(len(latencies), 6, "probes did not finish")
        self.assertLess(max(latencies), 1.0,
                        f"GET /health latencies during slowloris: "
                        f"{[round(x, 3) for x in latencies]}")

        # Every slowloris connection was closed, at the header timeout, with a 408.
        never = [st for st in conns.values() if st["closed"] is None]
        late = [st for st in conns.values()
                if st["closed"] is not None and st["closed"] > deadline_of(st)]
        early = [st for st in conns.values() if st["closed"] is not None
                 and st["closed"] < st["first"] + self.HEADER_MS / 1000 - EARLY]
        no408 = [st for st in conns.values() if not st["data"].startswith(b"HTTP/1.1 408 ")]
        trickles = sorted(st["n"] for st in conns.values())
        detail = (f"{len(conns)} connections opened in {opened_at - min(st['first'] for st in conns.values()):.1f} s; "
                  f"trickled lines per conn min/median/max {trickles[0]}/{trickles[len(trickles)//2]}/{trickles[-1]}")
        sys.stderr.write(f"\n  slowloris: {detail}; probe latencies "
                         f"{[round(x, 3) for x in latencies]}; closed with 408: "
                         f"{len(conns) - len(no408)}/{len(conns)}\n")
        self.assertFalse(never, f"{len(never)} slowloris connections never closed by the server "
                         f"within header timeout + {SLACK} s; {detail}")
        self.assertFalse(late, f"{len(late)} closed late, e.g. "
                         f"{max(st['closed'] - st['first'] for st in late):.2f} s after the "
                         f"first byte; {detail}" if late else "")
        self.assertFalse(early, f"{len(early)} closed before the header timeout; {detail}")
        self.assertFalse(no408, f"{len(no408)} did not get a 408 first, e.g. "
                         f"{no408[0]['data'][:80]!r}; {detail}" if no408 else "")
        self.assertTrue(srv.alive())
        self.assertEqual(srv.get("/health").status, 200)


if __name__ == "__main__":
    ptvtest.main()
