# SPDX-License-Identifier: GPL-3.0-or-later
"""Process lifecycle: SIGTERM (G2), SIGHUP reload (G1), connection limit (H9)."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import Server, build_request  # noqa: E402

SHUTDOWN_TIMEOUT = 5.0  # default shutdown_timeout_ms / 1000


def big_header_request(n=4096):
    return build_request("GET", "/health", [("X-Big", "v" * n)])


class Sigterm(ptvtest.TestCase):
    def test_sigterm_idle_connections(self):
        with Server() as srv:
            idle = []
            for _ in range(3):
                c = srv.connect()
                self.addCleanup(c.close)
                self.assertEqual(c.request("GET", "/health").status, 200)
                idle.append(c)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            # Idle keep-alive connections are closed.
            for i, c in enumerate(idle):
                left = max(0.1, t0 + SHUTDOWN_TIMEOUT + 2 - time.monotonic())
                self.assertTrue(c.wait_closed(left), f"idle connection {i} not closed after "
                                "SIGTERM")
                self.assertNotIn(b"HTTP/1.", c.buf, f"idle connection {i} got bytes: {c._show()}")
            # New connections are refused or closed without a response.
            refused_at = None
            for _ in range(200):
                try:
                    with ptvtest.Conn(srv.port, timeout=1.0) as n:
                        n.try_send(build_request("GET", "/health"))
                        if n.wait_closed(1.0) and b"HTTP/1." not in n.buf:
                            refused_at = time.monotonic()
                            break
                        if b"HTTP/1.1 200" in n.buf:
                            pass  # still serving a moment after the signal; retry
                except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
                    refused_at = time.monotonic()
                    break
                if time.monotonic() - t0 > SHUTDOWN_TIMEOUT + 2:
                    break
                time.sleep(0.05)
            self.assertIsNotNone(refused_at, "still accepting and answering new connections "
                                 "after SIGTERM")
            self.assertLess(refused_at - t0, 2.0, "took > 2 s to stop accepting")
            rc, took = srv.wait_exit(SHUTDOWN_TIMEOUT + 2, t0)
            self.assertEqual(rc, 0, srv.log_tail())
            self.assertLessEqual(took, SHUTDOWN_TIMEOUT + 2)

    def test_sigterm_no_connections_fast(self):
        with Server() as srv:
            rc, took = srv.terminate(SHUTDOWN_TIMEOUT + 2)
            self.assertEqual(rc, 0, srv.log_tail())
            self.assertLess(took, 2.0, "idle server took long to stop")

    def test_sigint_exits_0(self):
        with Server() as srv:
            t0 = time.monotonic()
            srv.signal(signal.SIGINT)
            rc, _ = srv.wait_exit(SHUTDOWN_TIMEOUT + 2, t0)
            self.assertEqual(rc, 0, srv.log_tail())

    def test_sigterm_answers_pipelined_batch(self):
        with Server() as srv:
            c = srv.connect()
            self.addCleanup(c.close)
            paths = ["/health" if i % 3 else "/nope" for i in range(50)]
            c.send(b"".join(build_request("GET", p) for p in paths))
            # Wait for the first response byte: the batch (one segment) was read.
            c._need(1, time.monotonic() + 5, "first response byte")
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            rs = c.read_responses(50, timeout=SHUTDOWN_TIMEOUT + 2)
            self.assertEqual([r.status for r in rs], [200 if p == "/health" else 404
                                                      for p in paths])
            self.assertTrue(c.wait_closed(SHUTDOWN_TIMEOUT + 2), "not closed after the batch")
            rc, _ = srv.wait_exit(SHUTDOWN_TIMEOUT + 2, t0)
            self.assertEqual(rc, 0)

    def test_sigterm_with_unread_large_responses(self):
        # Large responses pile up unread in the socket buffers when SIGTERM arrives; whatever
        # the server sends must be complete responses in order, then a clean end.
        with Server() as srv:
            c = srv.connect(rcvbuf=16384)
            self.addCleanup(c.close)
            n = 200
            c.try_send(b"".join(build_request("GET", "/metrics") for _ in range(n)))
            time.sleep(0.3)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            time.sleep(0.2)
            got = []
            for _ in range(n):
                try:
                    got.append(c.read_response(timeout=SHUTDOWN_TIMEOUT + 2))
                except ptvtest.Closed as e:
                    self.assertEqual(c.buf, b"", f"truncated response after {len(got)}: {e}")
                    break
            self.assertGreaterEqual(len(got), 1, "nothing answered")
            self.assertEqual([r.status for r in got], [200] * len(got))
            if len(got) == n:
                self.assertTrue(c.wait_closed(SHUTDOWN_TIMEOUT + 2))
            rc, took = srv.wait_exit(SHUTDOWN_TIMEOUT + 2, t0)
            self.assertEqual(rc, 0, srv.log_tail())

    def test_sigterm_stalled_reader_bounded(self):
        # A client that never reads cannot hold the shutdown past shutdown_timeout.
        with Server("--shutdown-timeout-ms", 1000) as srv:
            c = srv.connect(rcvbuf=4096)
            self.addCleanup(c.close)
            c.try_send(b"".join(build_request("GET", "/metrics") for _ in range(300)))
            time.sleep(0.5)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            rc, took = srv.wait_exit(1.0 + 2, t0)
            self.assertEqual(rc, 0, srv.log_tail())


class ConnectionLimit(ptvtest.TestCase):
    LIMIT = 50

    def test_max_connections(self):
        with Server("--max-connections", self.LIMIT, "--idle-timeout-ms", 60000) as srv:
            time.sleep(0.3)  # the start-up probe's connection is gone
            held = []
            self.addCleanup(lambda: [c.close() for c in held])
            for i in range(self.LIMIT):
                c = srv.connect()
                held.append(c)
                r = c.request("GET", "/health")
                self.assertEqual(r.status, 200, f"connection {i + 1} of {self.LIMIT}: {r}")
            self.check_refused(srv, f"connection {self.LIMIT + 1}")
            # Existing connections keep working at the limit.
            for i, c in enumerate(held):
                r = c.request("GET", "/health")
                self.assertEqual(r.status, 200, f"held connection {i} at the limit: {r}")
            # Close 10: new connections work again.
            for c in held[:10]:
                c.close()
            del held[:10]
            ok = ptvtest.wait_until(lambda: self.try_ok(srv), 3.0, 0.1)
            self.assertTrue(ok, "no new connection accepted 3 s after closing 10 of 50")
            # Refill to the limit (a just-closed probe may take a moment to be reaped).
            deadline = time.monotonic() + 3.0
            while len(held) < self.LIMIT and time.monotonic() < deadline:
                c = srv.connect()
                r = c.request("GET", "/health")
                if r.status == 200:
                    held.append(c)
                else:
                    c.close()
                    time.sleep(0.05)
            self.assertEqual(len(held), self.LIMIT, "could not refill to the limit")
            self.check_refused(srv, "after refilling to the limit")

    def test_many_idle_connections(self):
        # H9 at a size that fits CI: 1000 idle connections at the limit, gauge and refused
        # counter right, SIGTERM closes them all and exits 0 in time.
        limit = 1000
        if ptvtest.nofile_limit() < 2 * limit + 200:
            self.skipTest("RLIMIT_NOFILE too low")
        with Server("--max-connections", limit, "--idle-timeout-ms", 60000) as srv:
            time.sleep(0.3)
            scraper = srv.connect()
            self.addCleanup(scraper.close)
            _, m0 = ptvtest.scrape(scraper)
            ref0 = m0.value("plextv_http_connections_total", 0.0, result="refused")
            held = []
            self.addCleanup(lambda: [c.close() for c in held])
            batch = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            for i in range(limit - 1):
                c = srv.connect()
                c.send(batch)
                held.append(c)
            for i, c in enumerate(held):
                r = c.read_response(timeout=5.0)
                self.assertEqual(r.status, 200, f"idle connection {i}: {r}")
            self.check_refused(srv, f"connection {limit + 1} with {limit} open")
            _, m1 = ptvtest.scrape(scraper)
            self.assertEqual(m1.value("plextv_http_connections_open"), limit)
            self.assertEqual(m1.value("plextv_http_connections_total", 0.0,
                                      result="refused") - ref0, 1)
            # Every held connection still works.
            for i in range(0, limit - 1, 97):
                self.assertEqual(held[i].request("GET", "/health").status, 200)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            for i, c in enumerate(held):
                left = max(0.05, t0 + SHUTDOWN_TIMEOUT + 2 - time.monotonic())
                self.assertTrue(c.wait_closed(left), f"idle connection {i} open after SIGTERM")
            rc, took = srv.wait_exit(SHUTDOWN_TIMEOUT + 2, t0)
            self.assertEqual(rc, 0, srv.log_tail())
            sys.stderr.write(f"\n  1000 idle connections: exit {took:.2f} s after SIGTERM\n")

    def try_ok(self, srv):
        try:
            with srv.connect(timeout=1.0) as c:
                return c.request("GET", "/health", timeout=1.0).status == 200
        except (AssertionError, OSError):
            return False

    def check_refused(self, srv, what):
        c = srv.connect()
        self.addCleanup(c.close)
        c.try_send(build_request("GET", "/health"))
        try:
            r = c.read_response(timeout=3.0)
        except AssertionError as e:
            self.fail(f"{what}: expected 503, got {e}")
        self.assertEqual(r.status_line.split(" ")[:2], ["HTTP/1.1", "503"], f"{what}: {r}")
        self.assertCommonHeaders(r, what=what)
        self.assertIn("close", r.connection_tokens, f"{what}: {r}")
        self.assertTrue(c.wait_closed(2.0), f"{what}: refused connection not closed")


CONF_OK = "[log]\nlog_level = info\n\n[http]\nheader_max_bytes = 16384\n"
CONF_2K = "[log]\nlog_level = info\n\n[http]\nheader_max_bytes = 2048\n"


class Sighup(ptvtest.TestCase):
    def status_of(self, srv, data):
        c = srv.connect()
        try:
            c.try_send(data)
            return c.read_response(timeout=3.0).status
        finally:
            c.close()

    def reload(self, srv, text, expect):
        off = srv.log_size()
        srv.write_config(text)
        srv.signal(signal.SIGHUP)
        line = srv.wait_log(expect, off, timeout=5.0)
        self.assertIsNotNone(line, f"no log line containing {expect!r} within 5 s of SIGHUP\n"
                             + srv.log_tail())
        return off

    def test_reload(self):
        with Server("--idle-timeout-ms", 60000, config=CONF_OK) as srv:
            keep = srv.connect()
            self.addCleanup(keep.close)
            self.assertEqual(keep.request("GET", "/health").status, 200)
            self.assertEqual(self.status_of(srv, big_header_request()), 200,
                             "4 KiB header before the reload")

            # Valid: header_max_bytes 16384 -> 2048.
            self.reload(srv, CONF_2K, "configuration reloaded")
            self.assertEqual(self.status_of(srv, big_header_request()), 431,
                             "4 KiB header after lowering header_max_bytes to 2048")
            self.assertEqual(self.status_of(srv, build_request("GET", "/health")), 200)
            r = keep.request("GET", "/health")
            self.assertEqual(r.status, 200, "keep-alive connection did not survive the reload")

            # Invalid: unknown key. Rejected, old limits stay.
            self.reload(srv, CONF_OK + "no_such_key = 1\n", "reload rejected")
            self.assertEqual(self.status_of(srv, big_header_request()), 431,
                             "limits changed by a rejected reload (unknown key)")
            self.assertEqual(self.status_of(srv, build_request("GET", "/health")), 200)

            # Invalid: bad value.
            self.reload(srv, "[log]\nlog_level = info\n\n[http]\nheader_max_bytes = banana\n",
                        "reload rejected")
            self.assertEqual(self.status_of(srv, big_header_request()), 431,
                             "limits changed by a rejected reload (bad value)")
            self.assertEqual(keep.request("GET", "/health").status, 200)

            self.assertTrue(srv.alive())

    def test_reload_listen_change_needs_restart(self):
        # listen comes from the file here (a --listen flag would override the file anyway).
        conf = CONF_OK + "\n[server]\nlisten = 127.0.0.1:@PORT@\n"
        with Server("--idle-timeout-ms", 60000, config=conf, listen_flag=False) as srv:
            keep = srv.connect()
            self.addCleanup(keep.close)
            self.assertEqual(keep.request("GET", "/health").status, 200)
            other = ptvtest.free_port()
            self.reload(srv, CONF_2K + f"\n[server]\nlisten = 127.0.0.1:{other}\n", "restart")
            time.sleep(0.3)
            self.assertFalse(ptvtest.port_is_listening(other),
                             "the new listen address was applied on SIGHUP")
            self.assertEqual(self.status_of(srv, build_request("GET", "/health")), 200,
                             "server stopped answering on the old address")
            self.assertEqual(keep.request("GET", "/health").status, 200)
            # The other keys of that file still apply.
            self.assertEqual(self.status_of(srv, big_header_request()), 431,
                             "header_max_bytes from the same reload not applied")

    def test_reload_raises_limit(self):
        with Server(config=CONF_2K) as srv:
            self.assertEqual(self.status_of(srv, big_header_request()), 431)
            self.reload(srv, CONF_OK, "configuration reloaded")
            self.assertEqual(self.status_of(srv, big_header_request()), 200,
                             "raising header_max_bytes on SIGHUP did not apply")

    def test_reload_wrong_section_rejected(self):
        with Server(config=CONF_2K) as srv:
            self.reload(srv, "[log]\nlog_level = info\nheader_max_bytes = 16384\n",
                        "reload rejected")
            self.assertEqual(self.status_of(srv, big_header_request()), 431)

    def test_sighup_storm(self):
        # Many SIGHUPs in a row: the server stays up and ends with the last valid config.
        with Server(config=CONF_OK) as srv:
            for i in range(20):
                srv.write_config(CONF_2K if i % 2 else CONF_OK)
                srv.signal(signal.SIGHUP)
                time.sleep(0.01)
            srv.write_config(CONF_2K)
            off = srv.log_size()
            srv.signal(signal.SIGHUP)
            self.assertIsNotNone(srv.wait_log("configuration reloaded", off, 5.0))
            self.assertTrue(srv.alive())
            ok = ptvtest.wait_until(lambda: self.status_of(srv, big_header_request()) == 431,
                                    2.0, 0.1)
            self.assertTrue(ok, "last config not in force after a SIGHUP storm")


if __name__ == "__main__":
    ptvtest.main()
