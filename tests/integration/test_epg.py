# SPDX-License-Identifier: GPL-3.0-or-later
"""Guide end to end: `plextv import m3u` + `plextv import xmltv` into a running server, then
/xmltv.xml(.gz) checked against the XMLTV DTD (xmllint, tv_validate_file) and programme by
programme against the input; every shared XMLTV file imports; hostile files (entity bombs,
XXE with a canary, gzip bomb, 10^5 nesting, truncation) are rejected within their caps with
the old guide still served and no file or socket touched; a big guide streams while /health
answers; manual mapping and `sources list`; a playlist change makes the server refresh the
guide by itself.
"""

import glob
import gzip
import http.server
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
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import SHARED_DATA, Conn, Server, build_request, run_cli, wait_until  # noqa: E402

EX_DATAERR = 65
DTD = "/usr/share/xmltv/xmltv.dtd"
XMLLINT = shutil.which("xmllint")
TV_VALIDATE = shutil.which("tv_validate_file")
STRACE = shutil.which("strace")
UNSHARE = shutil.which("unshare")
OLD = ["--guide-retention-days", "36500"]  # the shared files are from 2000 to 2026
XML_BLANKS = " \t\r\n"  # what XML calls white space (not U+00A0)


def xmltv_time(dt):
    return dt.strftime("%Y%m%d%H%M%S +0000")


def parse_time(s):
    """XMLTV time (with a numeric offset or none) -> UTC datetime."""
    s = s.strip()
    m = re.match(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?\s*([+-]\d{4})?$", s)
    if not m:
        raise ValueError(s)
    y, mo, d, h, mi, sec, off = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec or 0), tzinfo=timezone.utc)
    if off:
        sign = 1 if off[0] == "+" else -1
        dt -= sign * timedelta(hours=int(off[1:3]), minutes=int(off[3:5]))
    return dt


def playlist(entries):
    lines = ["#EXTM3U"]
    for e in entries:
        attrs = "".join(f' {k}="{v}"' for k, v in e.items() if k not in ("name", "url"))
        lines.append(f'#EXTINF:-1{attrs},{e["name"]}')
        lines.append(e.get("url", "http://127.0.0.1:9/x"))
    return "\n".join(lines) + "\n"


def gen_guide(path, channels, per_channel, start, step=1800, prefix="g"):
    """A generated guide: @channels x @per_channel programmes from @start, ids prefix<N>.tv."""
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<tv generator-info-name="test">\n')
        for c in range(channels):
            f.write(f'<channel id="{prefix}{c}.tv"><display-name>Gen {c}</display-name>'
                    "</channel>\n")
        for c in range(channels):
            t = start
            out = []
            for p in range(per_channel):
                out.append(f'<programme start="{xmltv_time(t)}" '
                           f'stop="{xmltv_time(t + timedelta(seconds=step))}" '
                           f'channel="{prefix}{c}.tv"><title lang="en">Show {p} &amp; co'
                           f'</title><desc lang="en">Programme {p} of channel {c}, a '
                           "description of ordinary length for the test.</desc>"
                           f'<episode-num system="onscreen">S01E{p + 1:02d}</episode-num>'
                           "</programme>\n")
                t += timedelta(seconds=step)
            f.write("".join(out))
        f.write("</tv>\n")


def chunked_body_gen(sock, buf=b""):
    """Yields the chunks of a chunked body read from @sock (after the head)."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            d = sock.recv(65536)
            if not d:
                raise ConnectionError("closed inside the body")
            buf += d

    while True:
        while b"\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                raise ConnectionError("closed inside the body")
            buf += d
        line, buf = buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        need(size + 2)
        chunk, buf = buf[:size], buf[size + 2:]
        if size == 0:
            return
        yield chunk


class Epg(ptvtest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ptv-epg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)

    # -- helpers --

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text, mode="w"):
        p = self.path(name)
        with open(p, mode) as f:
            f.write(text)
        return p

    def cli(self, data_dir, *args, expect=0, timeout=120):
        r = run_cli(list(args) + ["--data-dir", data_dir, "--demo-dir", ""], timeout=timeout)
        if expect is not None:
            self.assertEqual(r.returncode, expect,
                             f"plextv {' '.join(args)}\nstdout: {r.stdout[:2000]}\n"
                             f"stderr: {r.stderr[:2000]}")
        return r

    def get(self, srv, path, timeout=60):
        with Conn(srv.port, timeout=timeout) as c:
            c.send(build_request("GET", path, close=True))
            return c.read_response(timeout=timeout)

    def xmltv(self, srv, path="/xmltv.xml"):
        r = self.get(srv, path)
        self.assertEqual(r.status, 200, r)
        self.assertCommonHeaders(r, streamed=True)
        self.assertEqual(r.headers.get("transfer-encoding"), "chunked")
        self.assertEqual(r.headers.get("content-type"), "application/xml; charset=utf-8")
        return r.body

    def validate(self, body, allow_integer_ids=True):
        """xmllint against the local DTD; tv_validate_file may only object to integer channel
        ids (GuideNumbers, which Plex needs; its style rule wants a dot in ids)."""
        p = self.write("out.xml", body, "wb")
        if XMLLINT:
            r = subprocess.run([XMLLINT, "--noout", "--nonet", "--dtdvalid", DTD, p],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr[:3000])
        if TV_VALIDATE:
            r = subprocess.run([TV_VALIDATE, p], capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, XMLTV_SUPPLEMENT="/usr/share/xmltv"))
            other = [ln for ln in (r.stdout + r.stderr).splitlines()
                     if ln.strip() and not re.match(r"^Line \d+ Invalid channel-id '\d+'$", ln)
                     and not re.match(r"^(\d+ errors? found|Validated ok)\.$", ln)]
            self.assertEqual(other, [], "tv_validate_file:\n" + (r.stdout + r.stderr)[:3000])
            if not allow_integer_ids:
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def programmes(self, body):
        root = ET.fromstring(body)
        out = []
        for p in root.iter("programme"):
            out.append({
                "channel": p.get("channel"),
                "start": parse_time(p.get("start")),
                "stop": parse_time(p.get("stop")),
                "title": p.findtext("title"),
                "sub": p.findtext("sub-title"),
                "desc": p.findtext("desc"),
                "categories": [c.text for c in p.findall("category")],
                "episodes": sorted((e.get("system"), e.text) for e in p.findall("episode-num")),
            })
        return root, out

    def wait_lineup(self, srv, n):
        """Waits until the server published a lineup of @n channels (imports by another
        process are picked up by its once-a-second tick)."""
        def count():
            return ptvtest.scrape(srv.port)[1].value("plextv_lineup_channels") == n
        self.assertTrue(wait_until(count, timeout=20), f"lineup never had {n} channels")

    def lineup_numbers(self, data_dir):
        r = self.cli(data_dir, "channels", "list", "--json")
        return {c["tvg_id"]: c["number"] for c in json.loads(r.stdout)}

    def small_lineup(self, data_dir, n=3):
        m3u = self.write("small.m3u", playlist(
            [{"name": f"Gen {c}", "tvg-id": f"g{c}.tv", "tvg-chno": str(c + 1)}
             for c in range(n)]))
        self.cli(data_dir, "import", "m3u", m3u)

    # -- tests --

    def expected(self, xml, numbers):
        """The input's programmes as the output must show them: on GuideNumbers, in UTC,
        empty elements dropped (they are counted, not kept)."""
        def text(p, tag):
            return (p.findtext(tag) or "").strip(XML_BLANKS) or None

        out = []
        for p in ET.parse(xml).getroot().iter("programme"):
            out.append({
                "channel": numbers[p.get("channel")],
                "start": parse_time(p.get("start")),
                "stop": parse_time(p.get("stop")),
                "title": text(p, "title"),
                "sub": text(p, "sub-title"),
                "desc": text(p, "desc"),
                "categories": [c.text.strip(XML_BLANKS) for c in p.findall("category")
                               if (c.text or "").strip(XML_BLANKS)],
                "episodes": sorted((e.get("system", "onscreen"), e.text.strip(XML_BLANKS))
                                   for e in p.findall("episode-num")),
            })
        return out

    def test_shared_pair_round_trip(self):
        """The matching M3U + EPG pair: every input programme comes out on its GuideNumber,
        UTC times, same title/desc/categories; the document is DTD-valid; .gz is the same."""
        m3u = os.path.join(SHARED_DATA, "m3u", "cereslabx-us-tv-epg_playlist.m3u")
        xml = os.path.join(SHARED_DATA, "xmltv", "cereslabx-us-tv-epg_epg.xml")
        if not (os.path.exists(m3u) and os.path.exists(xml)):
            self.skipTest("shared data missing")
        data = self.path("data")
        self.cli(data, "import", "m3u", m3u)
        with Server(*OLD, "--demo-dir", "", data_dir=data) as srv:
            # The guide is imported while the server runs (another process, same store).
            r = self.cli(data, "import", "xmltv", xml, *OLD)
            self.assertIn("10848 programmes stored on 678 of 678 guide channels", r.stdout)
            self.wait_lineup(srv, 678)
            numbers = self.lineup_numbers(data)
            body = self.xmltv(srv)
            self.validate(body)
            root, got = self.programmes(body)
            chans = root.findall("channel")
            self.assertEqual(len(chans), 678)
            for ch in chans:
                names = [d.text for d in ch.findall("display-name")]
                self.assertEqual(names[-1], ch.get("id"))
            expect = self.expected(xml, numbers)
            key = lambda p: (p["channel"], p["start"])  # noqa: E731
            self.assertEqual(len(got), len(expect))
            self.assertEqual(sorted(got, key=key), sorted(expect, key=key))
            gz = self.get(srv, "/xmltv.xml.gz")
            self.assertEqual(gz.status, 200)
            self.assertEqual(gz.headers.get("content-type"), "application/gzip")
            self.assertEqual(gzip.decompress(gz.body), body)
            # HEAD: the headers of a GET, no body.
            with Conn(srv.port) as c:
                c.send(build_request("HEAD", "/xmltv.xml", close=True))
                h = c.read_response(method="HEAD")
            self.assertEqual(h.status, 200)
            self.assertEqual(h.body, b"")
            # `sources list` shows the guide source; /metrics has the guide gauges.
            r = self.cli(data, "sources", "list")
            self.assertRegex(r.stdout, r"cereslabx-us-tv-epg_epg\.xml\s+xmltv\s+678 channels")
            ok = wait_until(lambda: ptvtest.scrape(srv.port)[1].value(
                "plextv_guide_programmes") == 10848, timeout=70)
            self.assertTrue(ok, "plextv_guide_programmes never reached 10848")
            _, m = ptvtest.scrape(srv.port)
            self.assertGreater(m.value("plextv_guide_last_success_timestamp_seconds"), 0)
            self.assertGreater(m.value("plextv_guide_output_bytes_total"), len(body))

    def test_rakuten_round_trip(self):
        """A real 3.7 MB guide with sub-titles and categories, through a lineup built from
        its own channel ids."""
        xml = os.path.join(SHARED_DATA, "xmltv", "rakuten-fi-epg_epg.xml")
        if not os.path.exists(xml):
            self.skipTest("shared data missing")
        root = ET.parse(xml).getroot()
        m3u = self.write("rakuten.m3u", playlist(
            [{"name": c.findtext("display-name"), "tvg-id": c.get("id"), "tvg-chno": str(i + 1)}
             for i, c in enumerate(root.findall("channel"))]))
        data = self.path("data")
        self.cli(data, "import", "m3u", m3u)
        r = self.cli(data, "import", "xmltv", xml, *OLD)
        self.assertIn("9141 programmes stored on 141 of 141", r.stdout)
        with Server("--data-dir", data, "--demo-dir", "", *OLD) as srv:
            body = self.xmltv(srv)
        self.validate(body)
        _, got = self.programmes(body)
        expect = self.expected(xml, self.lineup_numbers(data))
        key = lambda p: (p["channel"], p["start"])  # noqa: E731
        self.assertEqual(len(got), len(expect))
        for g, e in zip(sorted(got, key=key), sorted(expect, key=key)):
            self.assertEqual(g, e)

    def test_every_shared_file_imports(self):
        files = sorted(glob.glob(os.path.join(SHARED_DATA, "xmltv", "*.xml")))
        if not files:
            self.skipTest("shared data missing")
        data = self.path("data")
        self.cli(data, "import", "m3u",
                 os.path.join(SHARED_DATA, "m3u", "cereslabx-us-tv-epg_playlist.m3u"))
        for f in files:
            r = self.cli(data, "import", "xmltv", f, *OLD, expect=None)
            self.assertEqual(r.returncode, 0, f"{os.path.basename(f)}: {r.stderr}")
            self.assertIn("programmes stored", r.stdout)

    def test_dotted_numbers_fully_valid(self):
        """With GuideNumbers like 2.1 even tv_validate_file's id style rule is met; offsets,
        a missing stop, entities and Unicode survive."""
        data = self.path("data")
        m3u = self.write("dots.m3u", playlist([
            {"name": "Ünïcode & Co", "tvg-id": "u.tv", "tvg-chno": "2.1"},
            {"name": "Plain", "tvg-id": "p.tv", "tvg-chno": "2.2"},
            {"name": "No Guide", "tvg-chno": "2.3"}]))
        self.cli(data, "import", "m3u", m3u)
        t = self.now
        local = (t + timedelta(hours=2)).strftime("%Y%m%d%H%M%S") + " +0200"
        xml = self.write("dots.xml", f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv><channel id="u.tv"><display-name>U</display-name></channel>
<channel id="p.tv"><display-name>P</display-name></channel>
<programme start="{local}" stop="{xmltv_time(t + timedelta(hours=1))}" channel="u.tv">
<title lang="ja">日本語 &amp; &lt;tags&gt; &#x263A;</title><desc>Ça va?</desc></programme>
<programme start="{xmltv_time(t + timedelta(hours=1))}" channel="u.tv"><title>no stop</title>
</programme>
<programme start="{xmltv_time(t + timedelta(hours=3))}" channel="u.tv"><title>last</title>
</programme>
<programme start="{xmltv_time(t)}" stop="{xmltv_time(t + timedelta(hours=1))}" channel="p.tv">
<title>P1</title></programme></tv>
""")
        self.cli(data, "import", "xmltv", xml)
        with Server("--data-dir", data, "--demo-dir", "") as srv:
            body = self.xmltv(srv)
        self.validate(body, allow_integer_ids=False)
        root, got = self.programmes(body)
        first = [p for p in got if p["channel"] == "2.1"]
        self.assertEqual(first[0]["start"], t)  # +0200 local time, stored as UTC
        self.assertEqual(first[0]["title"], "日本語 & <tags> \u263a")
        self.assertEqual(first[1]["stop"], t + timedelta(hours=3))  # missing stop: next start
        self.assertEqual(first[2]["stop"], t + timedelta(hours=4))  # the last: one hour
        names = [d.text for d in root.find("channel").findall("display-name")]
        self.assertEqual(names, ["Ünïcode & Co", "2.1"])
        dummy = [p for p in got if p["channel"] == "2.3"]
        self.assertTrue(dummy and all(p["title"] == "No Guide" for p in dummy))

    def hostile_files(self):
        canary = self.write("canary.txt", "CANARY-SECRET-1234\n")
        lol = ['<!ENTITY lol0 "lol">']
        for i in range(1, 10):
            lol.append(f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">')
        prog = f'<programme start="{xmltv_time(self.now)}" channel="g0.tv"><title>'
        files = {
            "billion_laughs.xml": "<?xml version=\"1.0\"?>\n<!DOCTYPE tv [\n" + "\n".join(lol)
            + "\n]>\n<tv>" + prog + "&lol9;</title></programme></tv>\n",
            "xxe_file.xml": f'<!DOCTYPE tv [<!ENTITY x SYSTEM "file://{canary}">]><tv>'
            + prog + "&x;</title></programme></tv>",
            "xxe_param.xml": f'<!DOCTYPE tv [<!ENTITY % p SYSTEM "file://{canary}"> %p;]>'
            "<tv></tv>",
            "xxe_http.xml": '<!DOCTYPE tv [<!ENTITY x SYSTEM "http://169.254.169.254/latest/">]>'
            "<tv>" + prog + "&x;</title></programme></tv>",
            "ext_dtd_entity.xml": f'<!DOCTYPE tv SYSTEM "file://{canary}"><tv>' + prog
            + "&defined_elsewhere;</title></programme></tv>",
            "quadratic.xml": '<!DOCTYPE tv [<!ENTITY a "' + "x" * 50000 + '">]><tv>' + prog
            + "&a;" * 20000 + "</title></programme></tv>",
            "deep.xml": "<tv>" + "<x>" * 100000 + "</x>" * 100000 + "</tv>",
            "truncated.xml": "<tv>" + (prog + "t</title></programme>") * 50 + prog + "t</ti",
            "html.xml": "<html><body><h1>502 Bad Gateway</h1></body></html>",
        }
        paths = {name: self.write(name, text) for name, text in files.items()}
        bomb = self.path("bomb.xml.gz")
        with gzip.open(bomb, "wb", compresslevel=9) as f:
            f.write(b"<tv>")
            blank = b" " * (1 << 20)
            for _ in range(64):
                f.write(blank)
            f.write(b"</tv>")
        paths["gzip_bomb.xml.gz"] = bomb
        return canary, paths

    def test_hostile_files_rejected_old_guide_kept(self):
        data = self.path("data")
        self.small_lineup(data)
        good = self.path("good.xml")
        gen_guide(good, 3, 10, self.now - timedelta(hours=1))
        self.cli(data, "import", "xmltv", good)
        canary, paths = self.hostile_files()
        with Server("--data-dir", data, "--demo-dir", "") as srv:
            before = self.xmltv(srv)
            self.assertIn(b"Show 9 &amp; co", before)
            for name, p in paths.items():
                args = ["import", "xmltv", p, "--name", "good.xml", "--guide-max-mb", "8"]
                cmd = [ptvtest.BIN] + args + ["--data-dir", data, "--demo-dir", ""]
                trace = self.path(f"{name}.strace")
                if STRACE and UNSHARE:
                    # No network at all, and every file and socket call recorded.
                    cmd = [UNSHARE, "-n", STRACE, "-f", "-qq", "-o", trace, "-e",
                           "trace=open,openat,socket,connect"] + cmd
                t0 = time.monotonic()
                # LeakSanitizer cannot run under ptrace: leaks are checked by the other tests.
                env = ptvtest.clean_env({"ASAN_OPTIONS": "detect_leaks=0"} if STRACE else None)
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
                took = time.monotonic() - t0
                self.assertEqual(r.returncode, EX_DATAERR, f"{name}: {r.stdout} {r.stderr}")
                self.assertIn("the guide is unchanged", r.stderr, name)
                self.assertLess(took, 60, name)
                if os.path.exists(trace):
                    with open(trace) as f:
                        calls = f.read()
                    self.assertNotIn("canary", calls, f"{name} opened the canary")
                    self.assertNotIn("socket(AF_INET", calls, f"{name} opened a socket")
                    self.assertNotIn("socket(AF_INET6", calls, f"{name} opened a socket")
                self.assertEqual(self.xmltv(srv), before, f"{name} changed the guide")
            srv_log = srv.log()
        self.assertNotIn("CANARY-SECRET", srv_log)

    def test_big_guide_streams_while_health_answers(self):
        """A slow reader of a ~30 MB guide; /health on another connection completes meanwhile,
        then the rest of the document arrives whole."""
        data = self.path("data")
        n_ch, n_prog = 200, 400
        m3u = self.write("big.m3u", playlist(
            [{"name": f"Gen {c}", "tvg-id": f"g{c}.tv", "tvg-chno": str(c + 1)}
             for c in range(n_ch)]))
        self.cli(data, "import", "m3u", m3u)
        big = self.path("big.xml")
        gen_guide(big, n_ch, n_prog, self.now - timedelta(hours=2))
        self.cli(data, "import", "xmltv", big)
        with Server("--data-dir", data, "--demo-dir", "", workers=1) as srv:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.settimeout(60)
            s.connect((ptvtest.HOST, srv.port))
            s.sendall(build_request("GET", "/xmltv.xml", close=True))
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            head, rest = head.split(b"\r\n\r\n", 1)
            self.assertIn(b"Transfer-Encoding: chunked", head)
            chunks = chunked_body_gen(s, rest)
            body = [next(chunks)]
            time.sleep(0.3)  # the server is now blocked on our full receive window
            h = self.get(srv, "/health", timeout=10)
            self.assertEqual(h.status, 200)
            self.assertEqual(h.body, b"ok\n")
            for c in chunks:
                body.append(c)
            s.close()
            body = b"".join(body)
        self.assertTrue(body.endswith(b"</tv>\n"))
        _, got = self.programmes(body)
        self.assertEqual(len(got), n_ch * n_prog)

    def test_import_from_url_gzip(self):
        """Over HTTP: gzip transfer encoding, and a .xml.gz body served as octet-stream."""
        data = self.path("data")
        self.small_lineup(data)
        plain = self.path("guide.xml")
        gen_guide(plain, 3, 4, self.now - timedelta(hours=1))
        with open(plain, "rb") as f:
            doc = f.read()
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Accept-Encoding", "")))
                body = gzip.compress(doc)
                self.send_response(200)
                if self.path == "/guide.xml":
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Encoding", "gzip")
                else:
                    self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.HTTPServer((ptvtest.HOST, 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        base = f"http://{ptvtest.HOST}:{httpd.server_port}"
        r = self.cli(data, "import", "xmltv", base + "/guide.xml", "--name", "web")
        self.assertIn("12 programmes stored on 3 of 3", r.stdout)
        self.assertIn("gzip", seen[0][1])
        r = self.cli(data, "import", "xmltv", base + "/epg.xml.gz", "--name", "web")
        self.assertIn("12 programmes stored on 3 of 3", r.stdout)
        r = self.cli(data, "sources", "list")
        self.assertRegex(r.stdout, r"web\s+xmltv\s+3 channels\s+every 43200s\s+http://")
        # An unreachable server keeps the guide and says why.
        r = self.cli(data, "import", "xmltv", base.replace(str(httpd.server_port), "9")
                     + "/gone.xml", "--name", "web", expect=None)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the guide is unchanged", r.stderr)

    def test_mapping_cli_and_refresh_on_lineup_change(self):
        data = self.path("data")
        self.small_lineup(data, n=2)
        guide = self.path("guide.xml")
        gen_guide(guide, 4, 5, self.now - timedelta(hours=1))
        r = self.cli(data, "import", "xmltv", guide, "--name", "tv", "--shift-hours", "1")
        self.assertIn("10 programmes stored on 2 of 4 guide channels", r.stdout)
        self.assertIn("10 for channels not in the lineup", r.stdout)
        r = self.cli(data, "guide", "list", "--json")
        rows = {c["number"]: c for c in json.loads(r.stdout)}
        self.assertEqual(rows["1"]["how"], "tvg-id")
        self.assertEqual(rows["1"]["guide_channel"], "g0.tv")
        self.cli(data, "guide", "map", "7", "g3.tv", expect=EX_DATAERR)
        self.cli(data, "guide", "map", "2", "-")
        r = self.cli(data, "guide", "list", "--json")
        self.assertEqual({c["number"]: c["how"] for c in json.loads(r.stdout)}["2"], "off")
        with Server("--data-dir", data, "--demo-dir", "") as srv:
            _, got = self.programmes(self.xmltv(srv))
            one = [p for p in got if p["channel"] == "1"]
            # --shift-hours 1 on the source.
            self.assertEqual(one[0]["start"], self.now)
            self.assertEqual([p["title"] for p in got if p["channel"] == "2"][:1], ["Gen 1"])
            # Pin channel 2 to g3.tv and add a channel for g2.tv: the server notices both
            # and re-imports the guide by itself.
            off = srv.log_size()
            self.cli(data, "guide", "map", "2", "g3.tv")
            m3u = self.write("more.m3u", playlist(
                [{"name": f"Gen {c}", "tvg-id": f"g{c}.tv", "tvg-chno": str(c + 1)}
                 for c in range(3)]))
            self.cli(data, "import", "m3u", m3u, "--name", "small.m3u")
            self.wait_lineup(srv, 3)
            line = srv.wait_log("refreshed: 15 programmes stored", offset=off, timeout=30)
            self.assertIsNotNone(line, srv.log_tail())

            def descs(n):
                _, got = self.programmes(self.xmltv(srv))
                return [p["desc"] for p in got if p["channel"] == n]
            ok = wait_until(lambda: descs("2")[:1] == ["Programme 0 of channel 3, a description "
                                                        "of ordinary length for the test."]
                            and len(descs("3")) == 5, timeout=10)
            self.assertTrue(ok, (descs("2"), descs("3")))


if __name__ == "__main__":
    ptvtest.main()
