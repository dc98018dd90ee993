# SPDX-License-Identifier: GPL-3.0-or-later
"""Discovery end to end: HDHomeRun UDP 65001 (libhdhomerun's own hdhomerun_config, Jellyfin's
probe), SSDP (raw M-SEARCH and gssdp-discover), NOTIFY alive/byebye, the subnet-only policy
with the eBPF filter and without it (S1), amplification (S2), a 10k-packet flood (S3),
malformed searches (S4), interfaces coming and going, port 80 for Jellyfin, and the relay
without CAP_BPF (E1).

Topology, made by this test and deleted after it (traffic never leaves these namespaces):

    [srv] s0 10.77.1.1/24 ---- c0 10.77.1.2/24 [cli] c1 10.77.2.1/24 ---- f0 10.77.2.2/24 [far]

srv runs the relay; cli is a LAN host (and the router); far sits on another subnet, routed in
through cli, so it reaches the relay but is not on any subnet attached to it. The test process
enters a namespace with setns(2) for the moment it starts a program or opens a socket there (a
socket stays in the namespace it was made in); `ip netns exec` is not used for the relay
because it remounts /sys, which hides the cgroup2 hierarchy BPF accounting attaches to.

Needs root (namespaces, BPF). Skips (77) without it.
"""

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import Server, wait_until  # noqa: E402

TAG = f"ptvd{os.getpid() % 100000}"
NS_SRV, NS_CLI, NS_FAR = f"{TAG}-srv", f"{TAG}-cli", f"{TAG}-far"
SRV_IP, CLI_IP, CLI_IP2, FAR_IP = "10.77.1.1", "10.77.1.2", "10.77.2.1", "10.77.2.2"
GROUP = ("239.255.255.250", 1900)
MEDIASERVER = "urn:schemas-upnp-org:device:MediaServer:1"
SRC_BURST, SRC_RATE = 10, 5  # PTV_DISC_SRC_BURST, PTV_DISC_SRC_RATE (netfilter.h)

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def ip(*args, check=True):
    cp = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=20)
    if check and cp.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {cp.stderr.decode().strip()}")
    return cp


@contextlib.contextmanager
def netns(name):
    """Runs the block with this thread in network namespace @name."""
    orig = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns {name}")
        yield
    finally:
        _libc.setns(orig, CLONE_NEWNET)
        os.close(orig)
        os.close(target)


def lab_down():
    for ns in (NS_SRV, NS_CLI, NS_FAR):
        ip("netns", "del", ns, check=False)


def lab_up():
    lab_down()
    for ns in (NS_SRV, NS_CLI, NS_FAR):
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", NS_SRV, "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns", NS_CLI)
    ip("-n", NS_CLI, "link", "add", "c1", "type", "veth", "peer", "name", "f0", "netns", NS_FAR)
    for ns, dev, addr in ((NS_SRV, "s0", SRV_IP), (NS_CLI, "c0", CLI_IP),
                          (NS_CLI, "c1", CLI_IP2), (NS_FAR, "f0", FAR_IP)):
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
    # /proc/sys/net is per namespace: this is cli's forwarding switch.
    with netns(NS_CLI), open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")
    ip("-n", NS_SRV, "route", "add", "10.77.2.0/24", "via", CLI_IP)
    ip("-n", NS_FAR, "route", "add", "default", "via", CLI_IP2)
    wait_carrier([(NS_SRV, "s0"), (NS_CLI, "c0"), (NS_CLI, "c1"), (NS_FAR, "f0")])


def wait_carrier(links, timeout=10.0):
    """Waits until each veth reports carrier: clients such as libhdhomerun skip a link that
    is not running yet (linkwatch takes a moment after both ends are up)."""
    def up():
        return all("state UP" in ip("-n", ns, "-o", "link", "show", "dev", dev).stdout.decode()
                   for ns, dev in links)
    if not wait_until(up, timeout, interval=0.05):
        raise RuntimeError(f"links never got carrier: {links}")


def can_run():
    if os.geteuid() != 0:
        return "needs root (network namespaces, BPF)"
    if not shutil.which("ip"):
        return "needs iproute2"
    return None


def setUpModule():
    why = can_run()
    if why:
        raise unittest.SkipTest(why)
    lab_up()


def tearDownModule():
    lab_down()


# ---- clients ----


def udp_socket(ns, bind_ip, port=0, broadcast=False):
    with netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if broadcast:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.bind((bind_ip, port))
    return s


def msearch(st, mx=1, extra=b"", host=b"239.255.255.250:1900"):
    return (b"M-SEARCH * HTTP/1.1\r\nHOST: " + host + b"\r\nMAN: \"ssdp:discover\"\r\n" +
            (b"MX: %d\r\n" % mx if mx is not None else b"") + b"ST: " + st.encode() +
            b"\r\n" + extra + b"\r\n")


def parse_ssdp(data):
    lines = data.decode("latin-1").split("\r\n")
    head = {}
    for ln in lines[1:]:
        if not ln:
            break
        k, _, v = ln.partition(":")
        head[k.strip().upper()] = v.strip()
    return lines[0], head


def collect(sock, seconds, max_n=100000):
    """Datagrams arriving on @sock within @seconds: [(bytes, (addr, port))]."""
    out = []
    deadline = time.monotonic() + seconds
    while len(out) < max_n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            out.append(sock.recvfrom(65536))
        except socket.timeout:
            break
    return out


def ssdp_search(st, mx=1, wait=None, to=GROUP, ns=NS_CLI, bind_ip=CLI_IP, extra=b""):
    """Sends one M-SEARCH (multicast on the bound address's link by default); returns
    (request bytes, [(status line, headers, raw)])."""
    s = udp_socket(ns, bind_ip)
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_ip))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        req = msearch(st, mx, extra)
        s.sendto(req, to)
        got = collect(s, wait if wait is not None else (mx or 1) + 0.7)
    finally:
        s.close()
    return req, [parse_ssdp(d) + (d, a) for d, a in got]


def hdhr_probe(types=(0xFFFFFFFF,), device_id=0xFFFFFFFF):
    payload = b""
    if len(types) == 1:
        payload += b"\x01\x04" + struct.pack(">I", types[0])
    else:
        payload += b"\x2d" + bytes([4 * len(types)]) + b"".join(struct.pack(">I", t)
                                                                  for t in types)
    if device_id is not None:
        payload += b"\x02\x04" + struct.pack(">I", device_id)
    frame = struct.pack(">HH", 2, len(payload)) + payload
    return frame + struct.pack("<I", zlib.crc32(frame))


def parse_hdhr_reply(d):
    typ, plen = struct.unpack(">HH", d[:4])
    assert typ == 3, d
    assert struct.unpack("<I", d[4 + plen:8 + plen])[0] == zlib.crc32(d[:4 + plen]), "CRC"
    out, p = {}, 4
    while p < 4 + plen:
        tag, ln = d[p], d[p + 1]
        p += 2
        if ln & 0x80:
            ln = (ln & 0x7F) | (d[p] << 7)
            p += 1
        out[tag] = d[p:p + ln]
        p += ln
    return out


def hdhr_query(dest, ns=NS_CLI, bind_ip=CLI_IP, wait=1.0, probe=None):
    s = udp_socket(ns, bind_ip, broadcast=True)
    try:
        s.sendto(probe or hdhr_probe(), (dest, 65001))
        return collect(s, wait)
    finally:
        s.close()


def http_get(ns, host, port, path, timeout=5.0):
    with netns(ns):
        sock = socket.create_connection((host, port), timeout=timeout)
    with ptvtest.Conn(port, sock=sock) as c:
        c.send(ptvtest.build_request("GET", path, host=f"{host}:{port}", close=True))
        return c.read_response(timeout=timeout)


def metrics(srv):
    with netns(NS_SRV):
        return ptvtest.scrape(srv.port)[1]


class RelayServer(Server):
    """The relay inside the srv namespace, listening on every address (so it is reachable
    over the veth, as on a LAN)."""

    def __init__(self, *args, capsh=False, **kw):
        kw.setdefault("listen_flag", False)
        kw.setdefault("config", "[server]\nlisten = 0.0.0.0:@PORT@\n")
        super().__init__(*args, **kw)
        self.capsh = capsh
        self.wrapper = None

    def start(self):
        real = ptvtest.BIN
        if self.capsh:
            # Root without CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (RELIABILITY E1).
            fd, self.wrapper = tempfile.mkstemp(prefix="ptv-capsh-")
            with os.fdopen(fd, "w") as f:
                f.write("#!/bin/sh\nexec capsh --drop=cap_bpf,cap_net_admin,cap_sys_admin "
                        f"-- -c 'exec \"$0\" \"$@\"' '{real}' \"$@\"\n")
            os.chmod(self.wrapper, 0o755)
            ptvtest.BIN = self.wrapper
        try:
            with netns(NS_SRV):
                return super().start()
        finally:
            ptvtest.BIN = real

    def get(self, path, **kw):
        with netns(NS_SRV):
            return super().get(path, **kw)

    def stop(self):
        with netns(NS_SRV):
            super().stop()

    def cleanup(self):
        super().cleanup()
        if self.wrapper:
            os.unlink(self.wrapper)
            self.wrapper = None

    def discover(self, device=None):
        path = "/discover.json" if device is None else f"/devices/{device}/discover.json"
        r = self.get(path)
        assert r.status == 200, r
        return json.loads(r.body)

    def device_uuid(self, device=None):
        path = "/device.xml" if device is None else f"/devices/{device}/device.xml"
        r = self.get(path)
        m = re.search(rb"<UDN>uuid:([0-9a-f-]{36})</UDN>", r.body)
        assert m, r.body
        return m.group(1).decode()


# ---- HDHomeRun UDP 65001 ----


class HdhrDiscovery(ptvtest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 3 demo channels, one per virtual device: 3 devices, 3 replies per probe.
        cls.srv = RelayServer("--device-channels", "1")
        cls.srv.start()
        cls.ids = [cls.srv.discover(d)["DeviceID"] for d in range(3)]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def test_jellyfin_probe_reply_fields(self):
        probe = bytes.fromhex("0002000C0104FFFFFFFF0204FFFFFFFF73CC7D8F")
        self.assertEqual(probe, hdhr_probe())
        got = hdhr_query("10.77.1.255", probe=probe)
        self.assertEqual(len(got), 3, got)
        by_id = {}
        for data, (addr, _) in got:
            self.assertEqual(addr, SRV_IP)
            self.assertGreater(len(data), 13)  # Jellyfin's check, with byte[1] == 3
            self.assertEqual(data[1], 3)
            t = parse_hdhr_reply(data)
            by_id["%08X" % struct.unpack(">I", t[0x02])[0]] = t
        self.assertEqual(sorted(by_id), sorted(self.ids))
        for n, dev_id in enumerate(self.ids):
            t = by_id[dev_id]
            base = f"http://{SRV_IP}:{self.srv.port}" + (f"/devices/{n}" if n else "")
            self.assertEqual(struct.unpack(">I", t[0x01])[0], 1)  # tuner
            self.assertEqual(t[0x10][0], self.srv.discover(n)["TunerCount"])
            self.assertEqual(t[0x2A].decode(), base)
            self.assertEqual(t[0x27].decode(), base + "/lineup.json")
            self.assertEqual(t[0x2B].decode(), self.srv.discover(n)["DeviceAuth"])
            # The advertised BaseURL serves this device's discover.json.
            r = http_get(NS_CLI, SRV_IP, self.srv.port,
                         "/discover.json" if not n else f"/devices/{n}/discover.json")
            self.assertEqual(json.loads(r.body)["DeviceID"], dev_id)

    def test_specific_and_foreign_ids_and_types(self):
        got = hdhr_query(SRV_IP, probe=hdhr_probe((1,), int(self.ids[1], 16)))
        self.assertEqual(len(got), 1)
        self.assertEqual("%08X" % struct.unpack(">I", parse_hdhr_reply(got[0][0])[2])[0],
                         self.ids[1])
        self.assertEqual(hdhr_query(SRV_IP, probe=hdhr_probe((1,), 0x12345674), wait=0.5), [])
        self.assertEqual(hdhr_query(SRV_IP, probe=hdhr_probe((5,)), wait=0.5), [])  # storage
        self.assertEqual(len(hdhr_query(SRV_IP, probe=hdhr_probe((5, 1), None))), 3)


class HdhomerunConfig(ptvtest.TestCase):
    """libhdhomerun's own client. One device: the library keeps at most 28 bytes of BaseURL
    and merges replies from one IP whose BaseURL it could not keep (virtual devices past the
    first, ".../devices/N"), so its listing of several virtual devices is its own limit; the
    probe tests above check every device's reply byte by byte."""

    @classmethod
    def setUpClass(cls):
        cls.srv = RelayServer()
        cls.srv.start()
        cls.ids = [cls.srv.discover()["DeviceID"]]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def hdhomerun_config(self, ns, *args):
        if not shutil.which("hdhomerun_config"):
            self.skipTest("hdhomerun_config (Debian hdhomerun-config) not installed")
        with netns(ns):
            cp = subprocess.run(["hdhomerun_config", "discover"] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        return cp.stdout.decode()

    def test_hdhomerun_config_loopback(self):
        out = self.hdhomerun_config(NS_SRV, "127.0.0.1")
        found = re.findall(r"hdhomerun device ([0-9A-F]{8}) found at 127\.0\.0\.1", out)
        self.assertEqual(sorted(found), sorted(self.ids), out)

    def test_hdhomerun_config_broadcast(self):
        out = self.hdhomerun_config(NS_CLI)
        found = re.findall(r"hdhomerun device ([0-9A-F]{8}) found at " + re.escape(SRV_IP), out)
        self.assertEqual(sorted(set(found)), sorted(self.ids), out)


# ---- SSDP ----


class SsdpDiscovery(ptvtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = RelayServer("--device-channels", "1")
        cls.srv.start()
        cls.uuids = [cls.srv.device_uuid(d) for d in range(3)]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def location(self, n):
        return (f"http://{SRV_IP}:{self.srv.port}" + (f"/devices/{n}" if n else "") +
                "/device.xml")

    def check_response(self, status, h, st):
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(h.get("CACHE-CONTROL"), "max-age=1800")
        self.assertEqual(h.get("EXT"), "")
        self.assertRegex(h.get("SERVER", ""), r"^Linux/\d+\.\d+ UPnP/1\.1 PlexTV/\S+$")
        self.assertEqual(h.get("ST"), st)
        self.assertRegex(h.get("BOOTID.UPNP.ORG", ""), r"^\d+$")
        self.assertRegex(h.get("CONFIGID.UPNP.ORG", ""), r"^\d+$")
        n = [i for i, u in enumerate(self.uuids) if u in h.get("USN", "")]
        self.assertEqual(len(n), 1, h)
        self.assertEqual(h.get("LOCATION"), self.location(n[0]))
        return n[0], self.uuids[n[0]]

    def test_targets_and_usn(self):
        for st, usn in (("upnp:rootdevice", "uuid:{u}::upnp:rootdevice"),
                        (MEDIASERVER, "uuid:{u}::" + MEDIASERVER)):
            _, got = ssdp_search(st)
            self.assertEqual(len(got), 1, f"{st}: {got}")  # one reply per ST per request
            status, h, raw, addr = got[0]
            self.assertEqual(addr[0], SRV_IP)
            _, u = self.check_response(status, h, st)
            self.assertEqual(h["USN"], usn.format(u=u))
        for n, u in enumerate(self.uuids):
            _, got = ssdp_search("uuid:" + u)
            self.assertEqual(len(got), 1, got)
            self.assertEqual(self.check_response(got[0][0], got[0][1], "uuid:" + u)[0], n)
            self.assertEqual(got[0][1]["USN"], "uuid:" + u)
        # Targets we do not serve get nothing (no reply = no amplification).
        for st in ("urn:dial-multiscreen-org:service:dial:1", "uuid:" + "0" * 36):
            self.assertEqual(ssdp_search(st, wait=1.5)[1], [], st)

    def test_location_serves_device_xml_with_same_uuid(self):
        _, got = ssdp_search("upnp:rootdevice")
        loc = got[0][1]["LOCATION"]
        m = re.match(r"http://([\d.]+):(\d+)(/.*)$", loc)
        r = http_get(NS_CLI, m.group(1), int(m.group(2)), m.group(3))
        self.assertEqual(r.status, 200)
        self.assertIn(got[0][1]["USN"].split("::")[0].encode(), r.body)  # UDN == USN uuid

    def test_rotation_finds_every_device(self):
        seen = set()
        for _ in range(3):
            _, got = ssdp_search(MEDIASERVER)
            self.assertEqual(len(got), 1)
            seen.add(self.check_response(got[0][0], got[0][1], MEDIASERVER)[0])
        self.assertEqual(seen, {0, 1, 2})

    def test_ssdp_all_amplification(self):
        """S2: bytes out / bytes in, replies per ST. A typical search (with USER-AGENT)
        stays within 2; the smallest valid one still gets its first response."""
        ratios = []
        for extra in (b"USER-AGENT: Linux/6.1 UPnP/1.1 gssdp-test/1.6 DLNADOC/1.50\r\n", b""):
            req, got = ssdp_search("ssdp:all", extra=extra)
            sts = [h.get("ST") for _, h, _, _ in got]
            self.assertGreaterEqual(len(got), 1)
            self.assertEqual(len(sts), len(set(sts)), f"more than one reply per ST: {sts}")
            out = sum(len(raw) for _, _, raw, _ in got)
            first = len(got[0][2])
            self.assertLessEqual(out, max(2 * len(req), first), (len(req), out))
            ratios.append(out / len(req))
        self.assertLessEqual(ratios[0], 2.0, ratios)
        sys.stderr.write(f"[discovery] ssdp:all bytes out/in: {ratios[0]:.2f} with "
                         f"USER-AGENT, {ratios[1]:.2f} for a minimal search\n")

    def test_unicast_search_without_mx(self):
        _, got = ssdp_search("upnp:rootdevice", mx=None, to=(SRV_IP, 1900), wait=1.5)
        self.assertEqual(len(got), 1, got)

    def test_gssdp_discover(self):
        if not shutil.which("gssdp-discover"):
            self.skipTest("gssdp-discover (Debian gupnp-tools) not installed")
        with netns(NS_CLI):
            cp = subprocess.run(["gssdp-discover", "-i", "c0", "-t", "upnp:rootdevice",
                                 "-n", "4"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=30)
        out = cp.stdout.decode()
        usns = set(re.findall(r"USN:\s+uuid:([0-9a-f-]{36})::upnp:rootdevice", out))
        self.assertTrue(usns and usns <= set(self.uuids), out)
        locs = set(re.findall(r"Location:\s+(\S+)", out))
        self.assertTrue(locs and locs <= {self.location(n) for n in range(3)}, out)

    def test_malformed_searches(self):
        """S4: 64 KiB datagram, 1,000-colon ST, MX -1 and 999 (clamped), garbage."""
        before = metrics(self.srv).value("plextv_discovery_dropped_total", 0, proto="ssdp",
                                         reason="malformed")
        s = udp_socket(NS_CLI, CLI_IP)
        try:
            s.sendto(b"M-SEARCH * HTTP/1.1\r\n" + b"A" * 65000, (SRV_IP, 1900))
            s.sendto(msearch(":" * 1000), (SRV_IP, 1900))
            s.sendto(b"\x00\xffGARBAGE\r\n\r\n", (SRV_IP, 1900))
            s.sendto(msearch("upnp:rootdevice", mx=None), GROUP)  # multicast without MX
        finally:
            s.close()
        t0 = time.monotonic()
        _, got = ssdp_search("upnp:rootdevice", mx=-1, wait=2.5)
        self.assertEqual(len(got), 1, "MX -1 is clamped to 1, not ignored")
        _, got = ssdp_search("upnp:rootdevice", mx=999, wait=6.0)
        self.assertEqual(len(got), 1, "MX 999 is clamped to 5")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(self.srv.alive())
        after = metrics(self.srv).value("plextv_discovery_dropped_total", 0, proto="ssdp",
                                        reason="malformed")
        self.assertGreaterEqual(after - before, 4)


# ---- Subnet policy, with and without BPF (S1, E1) ----


class SubnetPolicy(ptvtest.TestCase):
    def run_policy(self, *args, capsh=False, bpf_expected):
        with RelayServer(*args, capsh=capsh) as srv:
            m = metrics(srv)
            want = "bpf" if bpf_expected else "userspace"
            self.assertEqual(m.value("plextv_bpf_info", filter=want), 1, m.text)
            self.assertEqual(m.value("plextv_bpf_enabled"), 1 if bpf_expected else 0)
            if bpf_expected:
                self.assertEqual(m.value("plextv_bpf_info", filter="bpf", accounting="bpf"), 1)
            # On-link host: answered.
            self.assertEqual(len(ssdp_search("upnp:rootdevice", to=(SRV_IP, 1900))[1]), 1)
            self.assertEqual(len(hdhr_query(SRV_IP)), 1)
            # Routed host on another subnet: reaches the relay, gets nothing.
            for _ in range(3):
                self.assertEqual(ssdp_search("upnp:rootdevice", to=(SRV_IP, 1900), ns=NS_FAR,
                                             bind_ip=FAR_IP, wait=1.2)[1], [])
                self.assertEqual(hdhr_query(SRV_IP, ns=NS_FAR, bind_ip=FAR_IP, wait=0.3), [])
            m = metrics(srv)
            for proto in ("ssdp", "hdhr"):
                self.assertGreaterEqual(m.value("plextv_discovery_dropped_total", proto=proto,
                                                reason="off_subnet"), 3, m.text)
                kernel = m.value("plextv_bpf_filter_dropped_total", proto=proto,
                                 reason="off_subnet")
                if bpf_expected:
                    self.assertGreaterEqual(kernel, 3)  # dropped before user space
                else:
                    self.assertEqual(kernel, 0)
            return srv.log()

    def test_off_subnet_dropped_with_bpf(self):
        try:
            self.run_policy("--bpf", "on", bpf_expected=True)
        except ptvtest.ServerStartError as e:
            if "bpf = on but unavailable" in str(e):
                self.skipTest(f"BPF unavailable here: {e}")
            raise

    def test_off_subnet_dropped_userspace(self):
        self.run_policy("--bpf", "off", bpf_expected=False)

    def test_without_cap_bpf(self):
        if not shutil.which("capsh"):
            self.skipTest("capsh (Debian libcap2-bin) not installed")
        log = self.run_policy(capsh=True, bpf_expected=False)
        lines = [ln for ln in log.splitlines() if " bpf: " in ln]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("CAP_BPF", lines[0])

    def test_allow_prefixes(self):
        with RelayServer("--allow-prefixes", "10.77.2.0/24") as srv:
            self.assertEqual(len(hdhr_query(SRV_IP, ns=NS_FAR, bind_ip=FAR_IP)), 1)
            self.assertEqual(len(ssdp_search("upnp:rootdevice", to=(SRV_IP, 1900),
                                             ns=NS_FAR, bind_ip=FAR_IP)[1]), 1)
            self.assertTrue(srv.alive())

    def test_off_switches(self):
        with RelayServer("--ssdp", "off", "--hdhr-discovery", "off") as srv:
            self.assertEqual(hdhr_query(SRV_IP, wait=0.5), [])
            self.assertEqual(ssdp_search("upnp:rootdevice", to=(SRV_IP, 1900), wait=1.2)[1],
                             [])
            self.assertTrue(srv.alive())

    def test_bad_values_refused(self):
        for args in (("--ssdp", "maybe"), ("--bpf", "sometimes"),
                     ("--allow-prefixes", "10.0.0.0/40")):
            cp = ptvtest.run_cli(["serve", "--data-dir", tempfile.gettempdir() + "/nonexist",
                                  "--listen", "127.0.0.1:1"] + list(args), timeout=20)
            self.assertNotEqual(cp.returncode, 0, args)
            self.assertIn(args[0].lstrip("-").replace("-", "_"), cp.stderr, cp.stderr)


# ---- Flood (S3) ----


class Flood(ptvtest.TestCase):
    def test_msearch_flood(self):
        n = 10000
        with RelayServer() as srv:
            s = udp_socket(NS_CLI, CLI_IP)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            req = msearch("upnp:rootdevice", mx=1)
            lat = []
            t0 = time.monotonic()
            for i in range(n):
                try:
                    s.sendto(req, (SRV_IP, 1900))
                except BlockingIOError:
                    pass
                if i % 1000 == 0:  # HTTP keeps answering while the flood goes on
                    t = time.monotonic()
                    r = http_get(NS_CLI, SRV_IP, srv.port, "/health")
                    self.assertEqual(r.status, 200)
                    lat.append(time.monotonic() - t)
            sent_for = time.monotonic() - t0
            replies = collect(s, 2.0)
            s.close()
            elapsed = time.monotonic() - t0
            m = metrics(srv)
            rate_drops = m.value("plextv_discovery_dropped_total", proto="ssdp", reason="rate")
            bound = SRC_BURST + SRC_RATE * (elapsed + 1)
            sys.stderr.write(f"[discovery] flood: {n} searches in {sent_for:.2f} s, "
                             f"{len(replies)} replies (bound {bound:.0f}), {rate_drops:.0f} "
                             f"rate drops, /health max {max(lat) * 1000:.1f} ms\n")
            self.assertGreaterEqual(len(replies), 1)
            self.assertLessEqual(len(replies), bound)
            self.assertGreater(rate_drops, n / 2)
            self.assertLess(max(lat), 1.0)  # generous: only "not starved"
            self.assertTrue(srv.alive())


# ---- NOTIFY, shutdown, interfaces ----


def group_listener(ns, bind_ip, ifname_ip):
    s = udp_socket(ns, "0.0.0.0", 1900)
    mreq = socket.inet_aton(GROUP[0]) + socket.inet_aton(ifname_ip)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return s


class Lifecycle(ptvtest.TestCase):
    def test_alive_at_start_and_byebye_at_sigterm(self):
        lst = group_listener(NS_CLI, "0.0.0.0", CLI_IP)
        try:
            with RelayServer("--device-channels", "1") as srv:
                uuids = {srv.device_uuid(d) for d in range(3)}
                alive = [parse_ssdp(d)[1] for d, _ in collect(lst, 2.5)]
                alive = [h for h in alive if h.get("NTS") == "ssdp:alive"]
                # 3 devices x 3 targets, sent 3 times (1 s apart) at start.
                nts = {(h["NT"], h["USN"]) for h in alive}
                self.assertEqual(len(nts), 9, nts)
                self.assertGreaterEqual(len(alive), 18)
                self.assertEqual({u.split("::")[0][5:] for _, u in nts}, uuids)
                for h in alive:
                    self.assertEqual(h["CACHE-CONTROL"], "max-age=1800")
                    self.assertTrue(h["LOCATION"].startswith(f"http://{SRV_IP}:{srv.port}/"))
                collect(lst, 0.1)
                srv.terminate()
                bye = [parse_ssdp(d)[1] for d, _ in collect(lst, 1.0)]
                bye = {(h["NT"], h["USN"]) for h in bye if h.get("NTS") == "ssdp:byebye"}
                self.assertEqual(bye, nts)
        finally:
            lst.close()

    def test_interfaces_coming_and_going(self):
        with RelayServer() as srv:
            ip("-n", NS_SRV, "link", "add", "s2", "type", "veth", "peer", "name", "c2",
               "netns", NS_CLI)
            try:
                ip("-n", NS_SRV, "addr", "add", "10.77.3.1/24", "dev", "s2")
                ip("-n", NS_CLI, "addr", "add", "10.77.3.2/24", "dev", "c2")
                ip("-n", NS_SRV, "link", "set", "s2", "up")
                ip("-n", NS_CLI, "link", "set", "c2", "up")
                wait_carrier([(NS_SRV, "s2"), (NS_CLI, "c2")])
                self.assertIsNotNone(srv.wait_log("joined 239.255.255.250 on s2", timeout=5),
                                     srv.log_tail())
                _, got = ssdp_search("upnp:rootdevice", bind_ip="10.77.3.2")
                self.assertEqual(len(got), 1, got)
                self.assertTrue(got[0][1]["LOCATION"].startswith(f"http://10.77.3.1:{srv.port}/"))
                # A host on the new link is on-link now: 65001 answers it too.
                self.assertEqual(len(hdhr_query("10.77.3.1", bind_ip="10.77.3.2")), 1)
            finally:
                ip("-n", NS_SRV, "link", "del", "s2", check=False)
            self.assertIsNotNone(srv.wait_log(re.compile(r"left 239\.255\.255\.250"), timeout=5),
                                 srv.log_tail())
            self.assertTrue(srv.alive())

    def test_port80_for_jellyfin(self):
        with RelayServer("--http-port80", "on") as srv:
            got = hdhr_query(SRV_IP)
            self.assertEqual(len(got), 1)
            # What Jellyfin does next: GET http://<replying ip>:80/discover.json.
            r = http_get(NS_CLI, got[0][1][0], 80, "/discover.json")
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.body)["DeviceID"], srv.discover()["DeviceID"])


if __name__ == "__main__":
    ptvtest.main(watchdog=400)
