# SPDX-License-Identifier: GPL-3.0-or-later
"""Malformed requests and size limits (RELIABILITY.md H1, H2): 400/414/431/413, each with
Connection: close and the connection closed; limits at their boundaries."""

import os
import selectors
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import build_request  # noqa: E402

URL_MAX = 8192
HEADER_MAX = 16384
HEADER_COUNT_MAX = 100
BODY_MAX = 1024 * 1024
CLOSE_WITHIN = 1.0  # seconds from the last byte sent to the server's close


class LimitsBase(ptvtest.SharedServerTestCase):
    def expect_error_close(self, data, status, what, follow=True, within=CLOSE_WITHIN):
        """Sends @data (plus a valid pipelined request behind it when @follow), expects one
        @status response with Connection: close, a short text body, then close within
        @within seconds, and no second response."""
        c = self.conn()
        payload = data + (build_request("GET", "/health") if follow else b"")
        t0 = time.monotonic()
        c.try_send(payload)
        try:
            r = c.read_response(timeout=within + 2.0)
        except AssertionError as e:
            self.fail(f"{what}: expected {status}, got no complete response: {e}")
        self.assertEqual(r.status, status, f"{what}: {r}")
        self.assertCommonHeaders(r, what=what)
        self.assertIn("close", r.connection_tokens, f"{what}: no Connection: close: {r}")
        self.assertLessEqual(len(r.body), 512, f"{what}: error body not short: {r}")
        try:
            r.body.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"{what}: error body is not text: {r.body!r}")
        ctype = (r.headers.get("content-type") or "").split(";")[0].strip()
        if r.body:
            self.assertEqual(ctype, "text/plain", f"{what}: {r}")
        closed = c.wait_closed(max(0.05, t0 + within - time.monotonic()))
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, f"{what}: connection not closed within {within} s "
                        f"(extra bytes {c._show()})")
        self.assertNotIn(b"HTTP/1.", c.buf, f"{what}: a request behind the bad one was "
                         f"answered: {c._show()}")
        return r, elapsed


class MalformedRequestLine(LimitsBase):
    CASES = [
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"),
        ("text garbage", b"HELLO THERE\r\n\r\n"),
        ("no version", b"GET /\r\n\r\n"),
        ("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("HTTP/1.10", b"GET / HTTP/1.10\r\nHost: x\r\n\r\n"),
        ("lowercase method", b"get / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("lowercase version", b"GET / http/1.1\r\nHost: x\r\n\r\n"),
        ("NUL in URL", b"GET /hea\x00lth HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("SOH in URL", b"GET /hea\x01lth HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("DEL in URL", b"GET /hea\x7flth HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("ESC in URL", b"GET /\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("TAB in URL", b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("FF in URL", b"GET /a\x0cb HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space in URL", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("empty request line", b"\r\n\r\nX\r\n\r\n"),
        ("NUL in header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
        ("control char in header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"),
        ("space in header name", b"GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n"),
        ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        ("empty header name", b"GET / HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n"),
        ("non-token method", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]

    def test_malformed_400(self):
        for name, data in self.CASES:
            with self.subTest(name):
                self.expect_error_close(data, 400, name)
        self.assertEqual(self.srv.get("/health").status, 200)


class SizeLimits(LimitsBase):
    def test_url_at_limit_ok(self):
        # Well under the 8192 cap (request line ~8 KiB, head under 16 KiB): not a 414.
        path = "/x" + "a" * (URL_MAX - 200)
        c = self.conn()
        r = c.request("GET", path)
        self.assertEqual(r.status, 404, f"URL of {len(path)} bytes: {r.status_line}")
        self.assertEqual(c.request("GET", "/health").status, 200)

    def test_url_too_long_414(self):
        for n in (URL_MAX + 1, URL_MAX + 100, 12000):
            with self.subTest(url_bytes=n):
                path = "/" + "a" * (n - 1)
                self.expect_error_close(build_request("GET", path), 414, f"URL of {n} bytes")

    def test_url_60k_rejected(self):
        # H2 allows either answer here (the head is also past header_max_bytes).
        path = "/" + "b" * (60 * 1024)
        c = self.conn()
        c.try_send(build_request("GET", path))
        r = c.read_response(timeout=3.0)
        self.assertIn(r.status, (414, 431), f"60 KiB URL: {r}")
        self.assertIn("close", r.connection_tokens, r)
        self.assertClosedWithin(c, CLOSE_WITHIN, "after a 60 KiB URL")

    def test_header_64k_single_431(self):
        data = build_request("GET", "/health", [("X-Big", "v" * (64 * 1024))])
        self.expect_error_close(data, 431, "one 64 KiB header", follow=False)

    def test_header_section_too_large_431(self):
        # 80 headers of ~250 bytes: ~20 KiB > 16384 while the count stays under 100.
        hs = [(f"X-H{i}", "v" * 240) for i in range(80)]
        self.expect_error_close(build_request("GET", "/health", hs), 431,
                                "20 KiB header section in 80 headers")

    def test_header_section_under_limit_ok(self):
        # 50 headers of ~250 bytes: ~12.5 KiB, under both caps.
        hs = [(f"X-H{i}", "v" * 240) for i in range(50)]
        c = self.conn()
        r = c.request("GET", "/health", hs)
        self.assertEqual(r.status, 200, r)

    def test_header_count_at_limit_ok(self):
        # Host + 99 = 100 headers: allowed.
        hs = [(f"X-N{i}", "1") for i in range(HEADER_COUNT_MAX - 1)]
        c = self.conn()
        r = c.request("GET", "/health", hs)
        self.assertEqual(r.status, 200, f"100 headers (the limit): {r}")

    def test_header_count_over_limit_431(self):
        # Host + 100 = 101 headers: one too many.
        hs = [(f"X-N{i}", "1") for i in range(HEADER_COUNT_MAX)]
        self.expect_error_close(build_request("GET", "/health", hs), 431, "101 headers")

    def test_header_count_1000_431(self):
        hs = [(f"X-N{i}", "1") for i in range(1000)]
        self.expect_error_close(build_request("GET", "/health", hs), 431, "1000 headers",
                                follow=False)

    def test_body_at_limit_consumed(self):
        # Exactly body_max_bytes: accepted, consumed, answered 405, connection kept.
        c = self.conn()
        body = b"z" * BODY_MAX
        c.send(build_request("POST", "/health", body=body))
        r = c.read_response(timeout=10)
        self.assertEqual(r.status, 405, f"POST of exactly {BODY_MAX} bytes: {r}")
        self.assertNotIn("close", r.connection_tokens, r)
        self.assertEqual(c.request("GET", "/health").status, 200)

    def test_body_content_length_too_large_413(self):
        # Only the head is sent: the server must decide from Content-Length.
        for n in (BODY_MAX + 1, 10 * BODY_MAX, 2**62):
            with self.subTest(content_length=n):
                data = build_request("POST", "/health", [("Content-Length", str(n))])
                self.expect_error_close(data, 413, f"Content-Length {n}", follow=False)

    def test_body_content_length_too_large_with_body_413(self):
        # Head plus the start of the body in one send.
        data = build_request("POST", "/health", [("Content-Length", str(BODY_MAX + 1))])
        self.expect_error_close(data + b"a" * 60000, 413, "Content-Length 1 MiB+1 with body",
                                follow=False)

    def test_body_chunked_too_large_413(self):
        c = self.conn()
        c.send(build_request("POST", "/health", [("Transfer-Encoding", "chunked")]))
        chunk = b"%x\r\n" % 65536 + b"c" * 65536 + b"\r\n"
        sel = selectors.DefaultSelector()
        sel.register(c.sock, selectors.EVENT_READ)
        self.addCleanup(sel.close)
        sent = 0
        t0 = time.monotonic()
        # Send up to 2 MiB in 64 KiB chunks; stop as soon as the server answers.
        for _ in range(32):
            if sel.select(0.01):
                break
            if not c.try_send(chunk):
                break
            sent += 65536
        try:
            r = c.read_response(timeout=3.0)
        except AssertionError as e:
            self.fail(f"chunked body of {sent} bytes sent: expected 413, got {e}")
        self.assertEqual(r.status, 413, f"chunked body past {BODY_MAX} ({sent} sent): {r}")
        self.assertGreater(sent, BODY_MAX - 65536, "413 before the body reached the cap")
        self.assertIn("close", r.connection_tokens, r)
        self.assertClosedWithin(c, 2.0, "after 413 on a chunked body")
        self.assertLess(time.monotonic() - t0, 10)

    def test_server_still_serves(self):
        self.assertEqual(self.srv.get("/health").status, 200)


if __name__ == "__main__":
    ptvtest.main()
