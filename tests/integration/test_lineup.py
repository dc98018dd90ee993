# SPDX-License-Identifier: GPL-3.0-or-later
"""Lineup end to end: `plextv import m3u` into a running server, the HDHomeRun endpoints field by
field and type by type, identity across restarts and refreshes, virtual devices, failed imports.
"""

import ctypes
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

import ptvtest
from ptvtest import BIN, SHARED_DATA, Server, run_cli, wait_until

STORAGE_FIELDS = ("StorageID", "StorageURL", "TotalSpace", "FreeSpace")
SECRET = "s3cr3tPass"


def hdhr_validator():
    """libhdhomerun's own DeviceID check (Debian libhdhomerun4), or None."""
    for name in ("libhdhomerun.so.4", "libhdhomerun.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        fn = lib.hdhomerun_discover_validate_device_id
        fn.argtypes = [ctypes.c_uint32]
        fn.restype = ctypes.c_bool
        return fn
    return None


def playlist(entries, header='#EXTM3U'):
    """entries: dicts with name, url and optional tvg_id, chno, group, tvg_name."""
    lines = [header]
    for e in entries:
        attrs = ""
        for key, attr in (("tvg_id", "tvg-id"), ("tvg_name", "tvg-name"), ("chno", "tvg-chno"),
                          ("group", "group-title")):
            if key in e:
                attrs += f' {attr}="{e[key]}"'
        lines.append(f'#EXTINF:-1{attrs},{e["name"]}')
        lines.append(e["url"])
    return "\n".join(lines) + "\n"


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class LineupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ptv-lineup-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def import_m3u(self, srv_or_dir, path, *args, expect=0):
        data_dir = srv_or_dir if isinstance(srv_or_dir, str) else srv_or_dir.data_dir
        r = run_cli(["import", "m3u", path, "--data-dir", data_dir, "--demo-dir", ""] +
                    list(args))
        self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        return r

    def get_json(self, srv, path):
        r = srv.get(path)
        self.assertEqual(r.status, 200, path)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
        return json.loads(r.body)

    def wait_channels(self, srv, n, path="/lineup.json?show=all"):
        ok = wait_until(lambda: len(self.get_json(srv, path)) == n, timeout=10)
        self.assertTrue(ok, f"lineup never reached {n} channels: {srv.log_tail()}")

    def entries(self, n, prefix="ch", **extra):
        return [dict(name=f"{prefix} {i}", tvg_id=f"{prefix}{i}.us",
                     url=f"http://user:{SECRET}@127.0.0.1:9/live/{prefix}{i}.ts", **extra)
                for i in range(n)]

    # ------------------------------------------------------------------------------------------

    def test_demo_lineup_on_empty_store(self):
        with Server() as srv:
            lineup = self.get_json(srv, "/lineup.json")
            self.assertGreaterEqual(len(lineup), 1)
            for ch in lineup:
                self.assertEqual(ch["URL"], srv.url("/auto/v" + ch["GuideNumber"]))

    def test_discover_fields_and_types(self):
        with Server("--tuners", "3", "--demo-dir", "") as srv:
            d = self.get_json(srv, "/discover.json")
            for key in ("FriendlyName", "ModelNumber", "FirmwareName", "FirmwareVersion",
                        "DeviceID", "DeviceAuth", "BaseURL", "LineupURL"):
                self.assertIsInstance(d[key], str, key)
            self.assertIs(type(d["TunerCount"]), int)
            self.assertEqual(d["TunerCount"], 3)
            for key in STORAGE_FIELDS:
                self.assertNotIn(key, d)
            self.assertRegex(d["DeviceID"], r"^[0-9A-F]{8}$")
            self.assertEqual(d["BaseURL"], srv.url("").rstrip("/"))
            self.assertEqual(d["LineupURL"], d["BaseURL"] + "/lineup.json")
            self.assertEqual(len(d["DeviceAuth"]), 24)
            validate = hdhr_validator()
            if validate is None:
                self.fail("libhdhomerun is not installed (tools/install-deps.sh installs it)")
            self.assertTrue(validate(int(d["DeviceID"], 16)), d["DeviceID"])
            # device.xml carries the same identity and a real RFC 4122 UUID.
            r = srv.get("/device.xml")
            self.assertEqual(r.status, 200)
            root = ET.fromstring(r.body)
            ns = {"u": "urn:schemas-upnp-org:device-1-0"}
            self.assertEqual(root.find("u:device/u:serialNumber", ns).text, d["DeviceID"])
            udn = root.find("u:device/u:UDN", ns).text
            self.assertRegex(udn, r"^uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                                  r"-[0-9a-f]{12}$")
            self.assertEqual(root.find("u:URLBase", ns).text, d["BaseURL"])

    def test_import_while_serving_and_documents(self):
        m3u = os.path.join(self.tmp, "p.m3u")
        entries = self.entries(5, group="News")
        entries[2]["chno"] = "42.1"
        entries.append(dict(name='Quote "and", comma', url="http://127.0.0.1:9/x.ts",
                            group="Misc"))
        write(m3u, playlist(entries))
        with Server("--demo-dir", "") as srv:
            self.assertEqual(self.get_json(srv, "/lineup.json"), [])
            self.import_m3u(srv, m3u, "--name", "prov", "--exclude-group", "misc")
            self.wait_channels(srv, 6)
            found = self.get_json(srv, "/lineup.json")
            every = self.get_json(srv, "/lineup.json?show=all")
            self.assertEqual(len(found), 5)  # Misc is filtered out
            off = [c for c in every if c.get("Enabled") == 0]
            self.assertEqual([c["GuideName"] for c in off], ['Quote "and", comma'])
            for ch in every:
                self.assertIsInstance(ch["GuideNumber"], str)
                self.assertIsInstance(ch["GuideName"], str)
                self.assertEqual(ch["URL"], srv.url("/auto/v" + ch["GuideNumber"]))
            self.assertIn("42.1", [c["GuideNumber"] for c in found])
            # Numbers are unique.
            self.assertEqual(len({c["GuideNumber"] for c in every}), len(every))
            # lineup.xml and lineup.m3u list the same channels.
            xml = ET.fromstring(srv.get("/lineup.xml").body)
            self.assertEqual([p.find("GuideNumber").text for p in xml.findall("Program")],
                             [c["GuideNumber"] for c in found])
            m3u_out = srv.get("/lineup.m3u")
            self.assertEqual(m3u_out.status, 200)
            text = m3u_out.body.decode()
            self.assertTrue(text.startswith("#EXTM3U"))
            self.assertIn(srv.url("/xmltv.xml"), text.splitlines()[0])
            self.assertEqual(text.count("#EXTINF"), 5)
            # Provider URLs carry credentials: they never leave the server.
            for path in ("/lineup.json?show=all", "/lineup.m3u", "/lineup.xml",
                         "/discover.json", "/device.xml", "/status.json"):
                body = srv.get(path).body.decode()
                self.assertNotIn(SECRET, body, path)
                self.assertNotIn(":9/live", body, path)
            listing = run_cli(["channels", "list", "--json", "--data-dir", srv.data_dir])
            self.assertEqual(listing.returncode, 0)
            self.assertNotIn(SECRET, listing.stdout)
            self.assertEqual(len([c for c in json.loads(listing.stdout)]), 6)
            self.assertNotIn(SECRET, srv.log())

    def test_status_and_scan(self):
        m3u = os.path.join(self.tmp, "p.m3u")
        write(m3u, playlist(self.entries(3)))
        with Server("--demo-dir", "", "--tuners", "2") as srv:
            self.import_m3u(srv, m3u)
            st = self.get_json(srv, "/lineup_status.json")
            self.assertEqual(st["ScanInProgress"], 0)
            self.assertIs(type(st["ScanPossible"]), int)
            self.assertEqual(self.get_json(srv, "/status.json"),
                             [{"Resource": "tuner0"}, {"Resource": "tuner1"}])
            c = srv.connect()
            c.send(ptvtest.build_request("POST", "/lineup.post?scan=start", body=b""))
            r = c.read_response()
            c.close()
            self.assertEqual(r.status, 200)
            self.assertTrue(srv.wait_log("refreshed", timeout=10))
            r = srv.get("/lineup.post")
            self.assertEqual(r.status, 405)

    def test_identity_stable_across_restart_and_refresh(self):
        data = os.path.join(self.tmp, "data")
        m3u = os.path.join(self.tmp, "p.m3u")
        entries = self.entries(8)
        write(m3u, playlist(entries))
        self.import_m3u(data, m3u, "--name", "prov")
        with Server("--demo-dir", "", data_dir=data) as srv:
            ident = self.get_json(srv, "/discover.json")
            udn = re.search(rb"<UDN>(.*?)</UDN>", srv.get("/device.xml").body).group(1)
            before = {c["GuideName"]: c["GuideNumber"] for c in self.get_json(srv, "/lineup.json")}
        # Provider reorders, renames one (same tvg-id), re-tokens another URL, drops one and
        # adds one: everything that still exists keeps its number.
        changed = list(reversed(entries))
        changed[0] = dict(changed[0], name="renamed ch 7")
        changed[1] = dict(changed[1], url="http://127.0.0.1:9/live/new-token-6.ts")
        gone = changed.pop(3)
        changed.append(dict(name="newcomer", tvg_id="new.us", url="http://127.0.0.1:9/n.ts"))
        write(m3u, playlist(changed))
        self.import_m3u(data, m3u, "--name", "prov")
        with Server("--demo-dir", "", data_dir=data) as srv:
            again = self.get_json(srv, "/discover.json")
            for key in ("DeviceID", "DeviceAuth", "FriendlyName"):
                self.assertEqual(again[key], ident[key], key)
            self.assertEqual(re.search(rb"<UDN>(.*?)</UDN>", srv.get("/device.xml").body).group(1),
                             udn)
            after = {c["GuideName"]: c["GuideNumber"] for c in self.get_json(srv, "/lineup.json")}
        self.assertEqual(after["renamed ch 7"], before["ch 7"])
        for name in ("ch 0", "ch 1", "ch 2", "ch 3", "ch 5", "ch 6"):
            if name == gone["name"]:
                continue
            self.assertEqual(after[name], before[name], name)
        self.assertNotIn(gone["name"], after)
        self.assertNotIn(after["newcomer"], before.values())
        # The dropped channel comes back with its old number.
        write(m3u, playlist(entries))
        self.import_m3u(data, m3u, "--name", "prov")
        listing = json.loads(run_cli(["channels", "list", "--json", "--data-dir", data]).stdout)
        numbers = {c["name"]: c["number"] for c in listing}
        self.assertEqual(numbers[gone["name"]], before[gone["name"]])

    def test_duplicates_become_backups(self):
        m3u = os.path.join(self.tmp, "p.m3u")
        entries = self.entries(3)
        entries.append(dict(name="ch 1 backup", tvg_id="ch1.us", url="http://127.0.0.1:9/b.ts"))
        write(m3u, playlist(entries))
        data = os.path.join(self.tmp, "data")
        r = self.import_m3u(data, m3u)
        self.assertIn("1 duplicates merged", r.stdout)
        listing = json.loads(run_cli(["channels", "list", "--json", "--data-dir", data]).stdout)
        self.assertEqual(len(listing), 3)
        ch1 = [c for c in listing if c["tvg_id"] == "ch1.us"][0]
        self.assertEqual(len(ch1["urls"]), 2)
        # Credentials are redacted in the listing too.
        self.assertNotIn(SECRET, json.dumps(listing))

    def test_failed_import_keeps_lineup(self):
        data = os.path.join(self.tmp, "data")
        good = os.path.join(self.tmp, "good.m3u")
        write(good, playlist(self.entries(4)))
        self.import_m3u(data, good, "--name", "prov")
        before = run_cli(["channels", "list", "--json", "--data-dir", data]).stdout
        bad_cases = {
            "missing.m3u": None,
            "empty.m3u": "",
            "hls.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:1\n"
                        "#EXTINF:6,\nseg1.ts\n",
        }
        for name, text in bad_cases.items():
            path = os.path.join(self.tmp, name)
            if text is not None:
                write(path, text)
            r = run_cli(["import", "m3u", path, "--name", "prov", "--data-dir", data])
            self.assertNotEqual(r.returncode, 0, name)
            self.assertIn("unchanged", r.stderr, name)
            after = run_cli(["channels", "list", "--json", "--data-dir", data]).stdout
            self.assertEqual(after, before, name)
        r = run_cli(["import", "m3u", "http://127.0.0.1:1/none.m3u", "--name", "prov",
                     "--data-dir", data])
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(run_cli(["channels", "list", "--json", "--data-dir", data]).stdout,
                         before)

    def test_600_channels_make_two_devices(self):
        m3u = os.path.join(self.tmp, "p.m3u")
        write(m3u, playlist(self.entries(600)))
        with Server("--demo-dir", "") as srv:
            self.import_m3u(srv, m3u)
            ok = wait_until(lambda: srv.get("/devices/1/discover.json").status == 200,
                            timeout=10)
            self.assertTrue(ok, srv.log_tail())
            d0 = self.get_json(srv, "/discover.json")
            d1 = self.get_json(srv, "/devices/1/discover.json")
            self.assertNotEqual(d0["DeviceID"], d1["DeviceID"])
            self.assertNotEqual(d0["FriendlyName"], d1["FriendlyName"])
            self.assertEqual(d1["BaseURL"], srv.url("/devices/1"))
            self.assertEqual(d1["LineupURL"], srv.url("/devices/1/lineup.json"))
            validate = hdhr_validator()
            self.assertTrue(validate(int(d1["DeviceID"], 16)))
            l0 = self.get_json(srv, "/lineup.json")
            l1 = self.get_json(srv, "/devices/1/lineup.json")
            self.assertEqual(len(l0), 479)
            self.assertEqual(len(l1), 121)
            self.assertFalse({c["GuideNumber"] for c in l0} & {c["GuideNumber"] for c in l1})
            for ch in l1:
                self.assertTrue(ch["URL"].startswith(srv.url("/devices/1/auto/v")), ch)
            u0 = ET.fromstring(srv.get("/device.xml").body)
            u1 = ET.fromstring(srv.get("/devices/1/device.xml").body)
            ns = {"u": "urn:schemas-upnp-org:device-1-0"}
            self.assertNotEqual(u0.find("u:device/u:UDN", ns).text,
                                u1.find("u:device/u:UDN", ns).text)
            self.assertEqual(srv.get("/devices/2/discover.json").status, 404)
            # Unknown channel on the device path: 404 + 801.
            r = srv.get("/devices/1/auto/v99999")
            self.assertEqual(r.status, 404)
            self.assertEqual(r.headers.get("x-hdhomerun-error"), "801 Unknown Channel")

    def test_url_policy(self):
        # A playlist fetched over HTTP may not point channels at local files or odd schemes;
        # relative entries resolve against the playlist's own URL.
        import http.server
        import threading
        text = playlist([
            dict(name="ok", url="http://127.0.0.1:9/a.ts"),
            dict(name="relative", url="live/b.m3u8"),
            dict(name="local file", url="file:///etc/passwd"),
            dict(name="concat", url="concat:/etc/passwd|/etc/shadow"),
            dict(name="rtsp", url="rtsp://127.0.0.1:9/cam"),
        ])
        body = text.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        base = f"http://127.0.0.1:{httpd.server_port}/lists/p.m3u"
        data = os.path.join(self.tmp, "data")
        r = self.import_m3u(data, base, "--name", "remote")
        self.assertIn("bad_url=2", r.stdout)
        listing = json.loads(run_cli(["channels", "list", "--json", "--data-dir", data]).stdout)
        urls = {c["name"]: c["urls"][0] for c in listing}
        self.assertEqual(set(urls), {"ok", "relative", "rtsp"})
        self.assertEqual(urls["relative"],
                         f"http://127.0.0.1:{httpd.server_port}/lists/live/b.m3u8")
        # The operator's own local playlist may use local files (played in a loop).
        local = os.path.join(self.tmp, "local.m3u")
        write(local, playlist([dict(name="clip", url="file:///tmp/clip.ts")]))
        r = self.import_m3u(data, local, "--name", "local")
        listing = json.loads(run_cli(["channels", "list", "--json", "--data-dir", data]).stdout)
        clip = [c for c in listing if c["name"] == "clip"][0]
        self.assertEqual(clip["kind"], "file")

    def test_real_playlists_import(self):
        folder = os.path.join(SHARED_DATA, "m3u")
        if not os.path.isdir(folder):
            self.fail(f"shared data not found at {folder}")
        data = os.path.join(self.tmp, "data")
        for name in sorted(os.listdir(folder)):
            r = self.import_m3u(data, os.path.join(folder, name), "--name", name)
            m = re.search(r"(\d+) entries -> (\d+) channels", r.stdout)
            self.assertTrue(m, r.stdout)
            self.assertGreater(int(m.group(2)), 0, name)
        listing = json.loads(run_cli(["channels", "list", "--json", "--data-dir", data]).stdout)
        numbers = [c["number"] for c in listing]
        self.assertEqual(len(numbers), len(set(numbers)))


if __name__ == "__main__":
    ptvtest.main()
