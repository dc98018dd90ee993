# SPDX-License-Identifier: GPL-3.0-or-later
"""GET /metrics: Prometheus text format 0.0.4 that promtool accepts, with the HTTP,
connection, build and process families, and counters that count exactly."""

import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import Server, build_request  # noqa: E402

CT = "text/plain; version=0.0.4; charset=utf-8"


class Metrics(ptvtest.SharedServerTestCase):
    def test_content_type_and_promtool(self):
        if not ptvtest.PROMTOOL:
            self.skipTest("promtool not installed")
        c = self.conn()
        c.request("GET", "/health")
        c.request("GET", "/nope")
        r, _ = ptvtest.scrape(c)
        self.assertEqual(r.headers.get("content-type"), CT)
        rc, out = ptvtest.promtool_check(r.body)
        self.assertEqual(rc, 0, f"promtool check metrics failed:\n{out}")

    def test_families_and_types(self):
        _, m = ptvtest.scrape(self.conn())
        want = {
            "plextv_build_info": "gauge",
            "plextv_http_requests_total": "counter",
            "plextv_http_request_duration_seconds": "histogram",
            "plextv_http_connections_open": "gauge",
            "plextv_http_connections_total": "counter",
            "process_resident_memory_bytes": "gauge",
            "process_open_fds": "gauge",
            "process_cpu_seconds_total": "counter",
        }
        # promtool/OpenMetrics allow the TYPE line for a counter to name it with or without _total.
        for name, typ in want.items():
            with self.subTest(name):
                got = m.types.get(name)
                if got is None and name.endswith("_total"):
                    got = m.types.get(name[:-len("_total")])
                self.assertEqual(got, typ, f"# TYPE of {name}")
                self.assertIn(name if name in m.types else name[:-6], m.helps, f"# HELP {name}")
        self.assertGreater(m.value("process_resident_memory_bytes"), 1e6)
        self.assertGreater(m.value("process_open_fds"), 3)
        self.assertGreaterEqual(m.value("process_cpu_seconds_total"), 0)

    def test_build_info(self):
        _, m = ptvtest.scrape(self.conn())
        found = m.find("plextv_build_info")
        self.assertEqual(len(found), 1, found)
        labels, value = found[0]
        self.assertEqual(value, 1.0)
        self.assertIn("version", labels)
        self.assertIn("commit", labels)
        self.assertTrue(labels["commit"], "empty commit label")
        cp = ptvtest.run_cli(["--version"])
        mv = re.match(r"^plextv (\S+)", cp.stdout)
        if mv:
            self.assertEqual(labels["version"], mv.group(1), "build_info version vs --version")
        r = self.conn().request("GET", "/health")
        self.assertEqual(r.headers.get("server"), f"PlexTV/{labels['version']}")

    def test_requests_counted_exactly(self):
        c = self.conn()
        _, before = ptvtest.scrape(c)
        b200 = before.value("plextv_http_requests_total", 0.0, handler="health", code="200")
        # The contract fixes the handler label only for 200s; a 405 is counted under some handler.
        b405 = before.sum("plextv_http_requests_total", code="405")
        n = 7
        for _ in range(n):
            self.assertEqual(c.request("GET", "/health").status, 200)
        # Pipelined ones and ones on other connections count too.
        c.send(b"".join(build_request("GET", "/health") for _ in range(5)))
        c.read_responses(5)
        for _ in range(3):
            self.assertEqual(self.srv.get("/health").status, 200)
        self.assertEqual(c.request("POST", "/health", body=b"x").status, 405)
        time.sleep(0.05)
        _, after = ptvtest.scrape(c)
        a200 = after.value("plextv_http_requests_total", 0.0, handler="health", code="200")
        a405 = after.sum("plextv_http_requests_total", code="405")
        self.assertEqual(a200 - b200, n + 5 + 3, "health 200 counter")
        self.assertEqual(a405 - b405, 1, "405 counter (any handler)")

    def test_duration_histogram(self):
        c = self.conn()
        for _ in range(3):
            c.request("GET", "/health")
        _, m = ptvtest.scrape(c)
        name = "plextv_http_request_duration_seconds"
        buckets = m.find(name + "_bucket")
        sums = m.find(name + "_sum")
        counts = m.find(name + "_count")
        self.assertTrue(buckets and sums and counts, "histogram series missing")
        # Group buckets by their other labels.
        series = {}
        for labels, v in buckets:
            self.assertIn("le", labels)
            key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            series.setdefault(key, []).append((float(labels["le"]), v))
        count_of = {tuple(sorted(l.items())): v for l, v in counts}
        sum_of = {tuple(sorted(l.items())): v for l, v in sums}
        for key, bs in series.items():
            with self.subTest(labels=key):
                bs.sort()
                self.assertTrue(math.isinf(bs[-1][0]), f"no +Inf bucket: {bs}")
                vals = [v for _, v in bs]
                self.assertEqual(vals, sorted(vals), f"buckets not cumulative: {bs}")
                self.assertIn(key, count_of)
                self.assertIn(key, sum_of)
                self.assertEqual(bs[-1][1], count_of[key], "+Inf bucket != _count")
                self.assertGreaterEqual(sum_of[key], 0)
        hc = m.sum(name + "_count", handler="health")
        self.assertGreaterEqual(hc, 3, "health requests not observed in the histogram")

    def test_connections_gauge_and_accepted(self):
        c = self.conn()
        _, before = ptvtest.scrape(c)
        acc0 = before.value("plextv_http_connections_total", 0.0, result="accepted")
        open0 = before.value("plextv_http_connections_open")
        self.assertIsNotNone(open0, "plextv_http_connections_open missing")
        self.assertGreaterEqual(open0, 1, "the scraping connection itself is open")
        extra = []
        self.addCleanup(lambda: [x.close() for x in extra])
        for _ in range(4):
            x = self.srv.connect()
            x.request("GET", "/health")
            extra.append(x)
        for _ in range(3):  # opened and closed
            self.srv.get("/health")
        ok = ptvtest.wait_until(
            lambda: ptvtest.scrape(c)[1].value("plextv_http_connections_open") == open0 + 4,
            2.0, 0.1)
        _, mid = ptvtest.scrape(c)
        self.assertTrue(ok, f"connections_open {mid.value('plextv_http_connections_open')}, "
                        f"expected {open0 + 4}")
        acc1 = mid.value("plextv_http_connections_total", 0.0, result="accepted")
        self.assertEqual(acc1 - acc0, 7, "accepted counter")
        for x in extra:
            x.close()
        ok = ptvtest.wait_until(
            lambda: ptvtest.scrape(c)[1].value("plextv_http_connections_open") == open0,
            2.0, 0.1)
        self.assertTrue(ok, "connections_open did not fall back after closing")

    def test_no_secrets_or_addresses_in_labels(self):
        _, m = ptvtest.scrape(self.conn())
        for name, labels, _ in m.samples:
            for k, v in labels.items():
                self.assertNotIn("127.0.0.1", v, f"client address in a label: {name}{labels}")
                self.assertNotRegex(v, r"://[^/]*@", f"URL credentials in {name}{labels}")


class RefusedCounter(ptvtest.TestCase):
    def test_refused_counted(self):
        limit = 5
        with Server("--max-connections", limit, "--idle-timeout-ms", 60000) as srv:
            time.sleep(0.3)
            c = srv.connect()
            self.addCleanup(c.close)
            _, before = ptvtest.scrape(c)
            ref0 = before.value("plextv_http_connections_total", None, result="refused")
            self.assertIsNotNone(ref0, "plextv_http_connections_total{result=\"refused\"} "
                                 "missing (should be exported at 0)")
            held = []
            self.addCleanup(lambda: [x.close() for x in held])
            for _ in range(limit - 1):
                x = srv.connect()
                self.assertEqual(x.request("GET", "/health").status, 200)
                held.append(x)
            for i in range(2):
                with srv.connect() as x:
                    x.try_send(build_request("GET", "/health"))
                    r = x.read_response(timeout=3.0)
                    self.assertEqual(r.status, 503, f"refused connection {i}: {r}")
            _, after = ptvtest.scrape(c)
            self.assertEqual(after.value("plextv_http_connections_total", 0.0,
                                         result="refused") - ref0, 2, "refused counter")
            self.assertEqual(after.value("plextv_http_connections_open"), limit,
                             "connections_open at the limit")


if __name__ == "__main__":
    ptvtest.main()
