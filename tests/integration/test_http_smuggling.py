# SPDX-License-Identifier: GPL-3.0-or-later
"""Request smuggling (RELIABILITY.md §2.2, H3): every ambiguous framing gets 400 +
Connection: close + close, and a request pipelined behind it is never answered nor executed.
Valid bodies (Content-Length, chunked) are consumed exactly, keeping the connection usable."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import build_request  # noqa: E402

SMUGGLED = b"GET /health?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n"


def post(headers, body=b""):
    return b"POST /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


CASES = [
    ("CL + TE chunked",
     post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")),
    ("TE chunked + CL",
     post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n")),
    ("TE: chunked, chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n")),
    ("TE: gzip, chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")),
    ("TE header twice",
     post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")),
    ("duplicate CL, same value",
     post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
    ("duplicate CL, different values",
     post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")),
    ("CL list '5, 5'", post(b"Content-Length: 5, 5\r\n", b"hello")),
    ("CL +5", post(b"Content-Length: +5\r\n", b"hello")),
    ("CL -1", post(b"Content-Length: -1\r\n", b"hello")),
    ("CL '5 5'", post(b"Content-Length: 5 5\r\n", b"hello")),
    ("CL 0x5", post(b"Content-Length: 0x5\r\n", b"hello")),
    ("CL abc", post(b"Content-Length: abc\r\n", b"hello")),
    ("CL empty", post(b"Content-Length: \r\n", b"hello")),
    ("CL 2^64 overflow", post(b"Content-Length: 18446744073709551621\r\n", b"hello")),
    ("'Transfer-Encoding : chunked' (space before colon)",
     post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n")),
    ("'Content-Length : 5' (space before colon)",
     post(b"Content-Length : 5\r\n", b"hello")),
    ("tab before colon", post(b"Content-Length\t: 5\r\n", b"hello")),
    ("bare CR inside header line",
     post(b"X-A: b\rContent-Length: 5\r\n", b"hello")),
    ("bare CR in request line", b"GET /health HTTP/1.1\rHost: x\r\n\r\n"),
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: x\n\n"),
    ("bare LF after a header", b"GET /health HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"),
    ("bare LF ending the head", b"GET /health HTTP/1.1\r\nHost: x\r\n\n"),
    ("obs-fold (space)", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    ("obs-fold (tab)", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"),
    ("obs-fold of Content-Length",
     post(b"X-A: a\r\n Content-Length: 5\r\n", b"hello")),
    ("whitespace line right after the request line",
     b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n"),
    ("tab line right after the request line",
     b"GET /health HTTP/1.1\r\n\tHost: x\r\n\r\n"),
    ("duplicate Host, different values", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("duplicate Host, same value", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
    ("space before Content-Length right after the request line",
     b"POST /health HTTP/1.1\r\n Content-Length: 5\r\nHost: x\r\n\r\nhello"),
    ("bare CR in chunk extension",
     post(b"Transfer-Encoding: chunked\r\n", b"5;a=b\rX\r\nhello\r\n0\r\n\r\n")),
    ("bare LF after chunk size",
     post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n")),
    ("chunk size not hex",
     post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n")),
    ("chunk size with sign",
     post(b"Transfer-Encoding: chunked\r\n", b"+5\r\nhello\r\n0\r\n\r\n")),
    ("chunk without CRLF after data",
     post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n")),
    ("chunk size overflow",
     post(b"Transfer-Encoding: chunked\r\n", b"10000000000000005\r\nhello\r\n0\r\n\r\n")),
]


class Smuggling(ptvtest.SharedServerTestCase):
    def smuggle(self, name, data):
        c = self.conn()
        t0 = time.monotonic()
        c.try_send(data + SMUGGLED)
        try:
            r = c.read_response(timeout=3.0)
        except AssertionError as e:
            self.fail(f"{name}: expected 400, got no complete response: {e}")
        self.assertEqual(r.status, 400, f"{name}: {r}")
        self.assertCommonHeaders(r, what=name)
        self.assertIn("close", r.connection_tokens, f"{name}: no Connection: close: {r}")
        closed = c.wait_closed(max(0.05, t0 + 1.0 - time.monotonic()))
        self.assertTrue(closed, f"{name}: connection not closed within 1 s after the 400 "
                        f"(extra bytes {c._show()})")
        self.assertNotIn(b"HTTP/1.", c.buf,
                         f"{name}: the smuggled request was answered: {c._show()}")

    def health_200_count(self, conn):
        _, m = ptvtest.scrape(conn)
        return m.value("plextv_http_requests_total", default=0.0, handler="health", code="200")

    def test_smuggling_rejected(self):
        mc = self.conn()
        before = self.health_200_count(mc)
        for name, data in CASES:
            with self.subTest(name):
                self.smuggle(name, data)
        after = self.health_200_count(mc)
        self.assertEqual(after - before, 0,
                         "a smuggled GET /health was executed (health 200 counter moved)")
        self.assertEqual(self.srv.get("/health").status, 200)

    # -- valid bodies are consumed exactly --

    def expect_405_then(self, c, n_after, statuses_after):
        r = c.read_response()
        self.assertEqual(r.status, 405, r)
        self.assertNotIn("close", r.connection_tokens, r)
        rs = c.read_responses(n_after)
        self.assertEqual([x.status for x in rs], statuses_after)
        self.assertTrue(c.is_open(0.2), "connection closed after a valid body")

    def test_post_content_length_keepalive(self):
        c = self.conn()
        c.send(post(b"Content-Length: 5\r\n", b"hello") + build_request("GET", "/health"))
        self.expect_405_then(c, 1, [200])

    def test_post_content_length_zero_keepalive(self):
        c = self.conn()
        c.send(post(b"Content-Length: 0\r\n") + build_request("GET", "/health"))
        self.expect_405_then(c, 1, [200])

    def test_post_chunked_keepalive(self):
        c = self.conn()
        c.send(post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n")
               + build_request("GET", "/health"))
        self.expect_405_then(c, 1, [200])

    def test_post_chunked_with_trailer_keepalive(self):
        c = self.conn()
        c.send(post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
               + build_request("GET", "/health"))
        self.expect_405_then(c, 1, [200])

    def test_body_that_looks_like_a_request_is_not_one(self):
        inner = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        c = self.conn()
        c.send(post(b"Content-Length: %d\r\n" % len(inner), inner)
               + build_request("GET", "/nope"))
        self.expect_405_then(c, 1, [404])

    def test_body_split_across_sends(self):
        c = self.conn()
        c.send(post(b"Content-Length: 11\r\n", b"hel"))
        time.sleep(0.1)
        c.send(b"lo wo")
        time.sleep(0.1)
        c.send(b"rld" + build_request("GET", "/health"))
        self.expect_405_then(c, 1, [200])

    def test_chunked_split_across_sends(self):
        c = self.conn()
        data = post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        data += build_request("GET", "/health")
        for i in range(0, len(data), 5):
            c.send(data[i:i + 5])
            time.sleep(0.002)
        self.expect_405_then(c, 1, [200])


if __name__ == "__main__":
    ptvtest.main()
