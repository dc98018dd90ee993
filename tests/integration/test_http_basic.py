# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP/1.1 basics: status line, Server/Date/Content-Length, /health, HEAD, 404, 405,
keep-alive and close rules for 1.0 and 1.1, pipelining (RELIABILITY.md H4)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import build_request  # noqa: E402

METRICS_CT = "text/plain; version=0.0.4; charset=utf-8"


def media_type(ct):
    return (ct or "").split(";", 1)[0].strip().lower()


class HttpBasic(ptvtest.SharedServerTestCase):
    def check_common(self, r, streamed=False):
        self.assertCommonHeaders(r, streamed)

    # -- /health --

    def test_get_health(self):
        c = self.conn()
        r = c.request("GET", "/health")
        self.assertEqual(r.status_line, "HTTP/1.1 200 OK")
        self.check_common(r)
        self.assertEqual(media_type(r.headers.get("content-type")), "text/plain", r)
        self.assertEqual(r.body, b"ok\n")
        self.assertEqual(r.headers.get("content-length"), "3")

    def test_head_health(self):
        c = self.conn()
        g = c.request("GET", "/health")
        c.send(build_request("HEAD", "/health"))
        h = c.read_response(method="HEAD")
        self.assertEqual(h.status_line, "HTTP/1.1 200 OK")
        self.check_common(h)
        self.assertEqual(h.headers.get("content-length"), "3", "HEAD keeps Content-Length 3")
        self.assertEqual(h.headers.get("content-type"), g.headers.get("content-type"))
        # No body may follow: nothing arrives, then the next response starts cleanly.
        self.assertTrue(c.is_open(0.3), f"connection closed after HEAD: {c._show()}")
        self.assertEqual(c.buf, b"", "HEAD response carried body bytes")
        r = c.request("GET", "/health")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))

    def test_unknown_path_404(self):
        c = self.conn()
        r = c.request("GET", "/no/such/path")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.status_line, "HTTP/1.1 404 Not Found")
        self.check_common(r)
        self.assertEqual(int(r.headers.get("content-length")), len(r.body))
        # 404 keeps the connection.
        self.assertEqual(c.request("GET", "/health").status, 200)

    def test_post_health_405(self):
        c = self.conn()
        r = c.request("POST", "/health", body=b"")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.status_line, "HTTP/1.1 405 Method Not Allowed")
        self.check_common(r)
        self.assertIn("allow", r.headers, f"405 without Allow: {r}")
        self.assertIn("get", r.headers.tokens("allow"), r)

    def test_metrics_content_type(self):
        c = self.conn()
        r = c.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.check_common(r, streamed="transfer-encoding" in r.headers)
        self.assertEqual(r.headers.get("content-type"), METRICS_CT)

    def test_server_header_version_matches_cli(self):
        cp = ptvtest.run_cli(["--version"])
        m = re.match(r"^plextv (\S+)", cp.stdout)
        if not m:
            self.skipTest(f"--version printed {cp.stdout!r} (checked in test_cli)")
        r = self.conn().request("GET", "/health")
        self.assertEqual(r.headers.get("server"), f"PlexTV/{m.group(1)}")

    # -- keep-alive and close --

    def test_keepalive_default_http11(self):
        c = self.conn()
        for i in range(5):
            r = c.request("GET", "/health")
            self.assertEqual(r.status, 200)
            self.assertNotIn("close", r.connection_tokens, f"request {i}: {r}")
        self.assertTrue(c.is_open(0.3), "HTTP/1.1 connection closed without Connection: close")

    def test_connection_close_http11(self):
        c = self.conn()
        c.send(build_request("GET", "/health", close=True))
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertIn("close", r.connection_tokens, r)
        self.assertClosedWithin(c, 1.0, "after Connection: close")

    def test_http10_closes(self):
        c = self.conn()
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status_line, "HTTP/1.1 200 OK")
        self.assertEqual(r.body, b"ok\n")
        self.assertClosedWithin(c, 1.0, "after an HTTP/1.0 request without keep-alive")

    def test_http10_keepalive(self):
        c = self.conn()
        c.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertIn("keep-alive", r.connection_tokens, r)
        self.assertIn("content-length", r.headers)
        self.assertTrue(c.is_open(0.3), "HTTP/1.0 keep-alive connection was closed")
        c.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r2 = c.read_response()
        self.assertEqual(r2.status, 200, r2)

    def test_http11_without_host_400(self):
        c = self.conn()
        c.send(b"GET /health HTTP/1.1\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400, r)
        self.check_common(r)

    # -- pipelining --

    @staticmethod
    def pipeline_paths(n):
        # Irregular pattern so a reordering or a dropped response shows up.
        return ["/health" if (i * 7) % 5 < 3 else f"/nope{i}" for i in range(n)]

    def check_pipelined(self, rs, paths):
        got = [r.status for r in rs]
        want = [200 if p == "/health" else 404 for p in paths]
        self.assertEqual(got, want, "pipelined responses out of order or wrong")
        for r in rs:
            if r.status == 200:
                self.assertEqual(r.body, b"ok\n")

    def test_pipeline_100(self):
        c = self.conn()
        paths = self.pipeline_paths(100)
        c.send(b"".join(build_request("GET", p) for p in paths))
        rs = c.read_responses(100, timeout=10)
        self.check_pipelined(rs, paths)
        self.assertEqual(c.buf, b"", "bytes beyond the 100th response")
        self.assertTrue(c.is_open(0.3), "connection closed after a pipelined batch")
        r = c.request("GET", "/health")
        self.assertEqual(r.status, 200)

    def test_pipeline_100_then_shutdown_write(self):
        c = self.conn()
        paths = self.pipeline_paths(100)
        c.send(b"".join(build_request("GET", p) for p in paths))
        c.shutdown_write()
        t0 = time.monotonic()
        rs = c.read_responses(100, timeout=10)
        self.check_pipelined(rs, paths)
        self.assertClosedWithin(c, 3.0, "after SHUT_WR and all responses (hang)")
        self.assertEqual(c.buf, b"", "bytes after the last response")
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_pipeline_split_across_sends(self):
        # A request split at every awkward place is still one request.
        c = self.conn()
        data = b"".join(build_request("GET", p) for p in ("/health", "/nope", "/health"))
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
            time.sleep(0.002)
        rs = c.read_responses(3)
        self.assertEqual([r.status for r in rs], [200, 404, 200])


if __name__ == "__main__":
    ptvtest.main()
