#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Smoke test of plextv-bench (issue 7): short runs with a few clients.

Checks that the tool runs its scenarios and that its checks catch faults injected by the paced
source: a continuity error, a broken sync byte, a stalled client and a dropped connection must
each be reported. No performance thresholds: only correctness of what the tool reports.

Exit 0 pass, 1 fail, 77 skip (only when a peer package is missing; the message names it).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("PTV_BUILD_DIR", "")
BENCH = os.path.join(BUILD, "plextv-bench")
PLEXTV = os.environ.get("PLEXTV_BIN", os.path.join(BUILD, "plextv"))

FANOUT_FIELDS = [
    "scenario", "relay", "clients", "bitrate_mbps", "duration_s", "delivered_mbps_min",
    "delivered_mbps_p1", "delivered_mbps_p50", "delivered_gbps_total", "relay_cpu_seconds",
    "gbps_per_relay_cpu", "client_cpu_seconds", "stalls", "cc_errors", "ttfb_ms_p50",
    "ttfb_ms_p95", "rss_bytes", "commit", "kernel", "cpu_model", "date",
]

failures = []
skipped = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def bench(args, tmp, name, timeout=90):
    """Runs plextv-bench with --json; returns (exit code, parsed result or None, output)."""
    out = os.path.join(tmp, name + ".json")
    cmd = [BENCH] + args + ["--json", out]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, None, "timeout: " + " ".join(cmd)
    text = p.stdout + p.stderr
    print("$ " + " ".join(cmd[1:]) + "\n" + text.rstrip(), flush=True)
    res = None
    if os.path.exists(out):
        with open(out) as f:
            res = json.load(f)
    return p.returncode, res, text


def fanout(tmp, name, relay, clients=3, duration=3, extra=()):
    return bench(["fanout", "--relay", relay, "--clients", str(clients), "--bitrate", "4",
                  "--duration", str(duration)] + list(extra), tmp, name)


def clean_run(tmp):
    rc, r, _ = fanout(tmp, "clean", "direct", clients=4)
    check(rc == 0 and r is not None, "fanout direct: runs and writes JSON")
    if not r:
        return
    missing = [k for k in FANOUT_FIELDS if k not in r]
    check(not missing, "fanout JSON has the issue 7 fields (missing: %s)" % missing)
    check(r["ts_packets"] > 0 and r["delivered_mbps_min"] > 0, "clients received TS")
    for k in ("cc_errors", "sync_errors", "stalls", "dropped", "refused", "http_errors",
              "no_data"):
        check(r[k] == 0, "clean run reports %s == 0 (got %s)" % (k, r[k]))
    check(r["relay_cpu_seconds"] is not None, "source CPU measured from /proc")


def fault_runs(tmp):
    rc, r, _ = fanout(tmp, "cc", "direct", extra=["--source-fault", "cc@1"])
    check(rc == 0 and r and r["cc_errors"] > 0, "continuity error is reported as cc_errors > 0")
    rc, r, _ = fanout(tmp, "sync", "direct", extra=["--source-fault", "sync@1"])
    check(rc == 0 and r and r["sync_errors"] > 0, "broken sync byte is reported")
    # Stream 0 is fanout's priming reader; swarm clients are streams 1..N.
    rc, r, _ = fanout(tmp, "stall_drop", "direct", duration=4,
                      extra=["--stall-ms", "400", "--source-fault", "stall@1+1.2:1",
                             "--source-fault", "drop@1.5:2", "--per-client"])
    check(rc == 0 and r and r["stalls"] >= 1, "stalled client is counted as a stall")
    check(rc == 0 and r and r["dropped"] >= 1, "dropped connection is reported")
    if r:
        check(r["source"]["dropped_fault"] == 1, "source confirms it dropped one stream")


def generated_source(tmp):
    rc, r, _ = fanout(tmp, "gen", "direct", extra=["--source", "gen"])
    check(rc == 0 and r and r["cc_errors"] == 0 and r["ts_packets"] > 0,
          "generated source streams clean TS")


def peer_runs(tmp):
    if shutil.which("gst-launch-1.0"):
        rc, r, _ = fanout(tmp, "gst", "gstreamer", clients=2)
        check(rc == 0 and r and r["client_mode"] == "raw" and r["ts_packets"] > 0
              and r["cc_errors"] == 0 and r["dropped"] == 0,
              "gstreamer peer: raw TCP clients get clean TS")
    else:
        skipped.append("gstreamer (packages gstreamer1.0-tools gstreamer1.0-plugins-base)")
    if shutil.which("cvlc"):
        rc, r, _ = fanout(tmp, "vlc", "vlc", clients=2, duration=4)
        check(rc == 0 and r and r["ts_packets"] > 0 and r["cc_errors"] == 0
              and r["dropped"] == 0 and r["rss_bytes"], "vlc peer: HTTP clients get clean TS")
    else:
        skipped.append("vlc (packages vlc-bin vlc-plugin-base)")


def plextv_run(tmp):
    """The real relay: serve + a one-channel M3U on the paced source, 3 clients on /auto/v1."""
    if not os.access(PLEXTV, os.X_OK):
        check(False, "plextv binary at %s" % PLEXTV)
        return
    rc, r, _ = fanout(tmp, "plextv", "plextv", clients=3, duration=4)
    check(rc == 0 and r is not None, "fanout --relay plextv: runs and writes JSON")
    if not r:
        return
    check(r["ts_packets"] > 0 and r["delivered_mbps_min"] > 0, "plextv clients received TS")
    for k in ("cc_errors", "sync_errors", "dropped", "http_errors", "no_data"):
        check(r[k] == 0, "plextv run reports %s == 0 (got %s)" % (k, r[k]))
    check(r.get("upstream_mbps") and r["upstream_mbps"] > 0,
          "plextv upstream rate read from /metrics (got %s)" % r.get("upstream_mbps"))
    check(r["relay_cpu_seconds"] is not None and r["rss_bytes"], "plextv tree CPU/RSS measured")


def plextv_scenarios(tmp):
    """Each PlexTV scenario once, tiny: runs, writes its JSON, no thresholds."""
    runs = [
        ("tune", ["tune", "--tunes", "2"], lambda r: r["cold"]["failures"] == 0
         and r["warm"]["failures"] == 0 and r["warm"]["decodable_ms_p50"] is not None),
        ("slow", ["slow", "--clients", "3", "--duration", "4", "--write-timeout-ms", "1000"],
         lambda r: r["healthy"]["cc_errors"] == 0 and len(r["bad_clients"]) == 3),
        ("churn", ["churn", "--clients", "2", "--rate", "10", "--duration", "6"],
         lambda r: r["churn_joined"] > 0 and r["steady"]["cc_errors"] == 0),
        ("lineup", ["lineup", "--entries", "2000", "--secs", "1", "--clients", "2"],
         lambda r: r["import_s"] > 0 and r["wrk"]["requests_per_s"] > 0),
        ("epg", ["epg", "--channels", "20", "--programmes", "20"],
         lambda r: r["programmes_stored"] == 400 and r["xmltv_output_mb_per_s_best"] > 0),
    ]
    for name, args, ok in runs:
        if name == "lineup" and not shutil.which("wrk"):
            skipped.append("lineup (package wrk)")
            continue
        rc, r, _ = bench(args, tmp, name, timeout=120)
        check(rc == 0 and r is not None and r["scenario"] == name and ok(r),
              "%s scenario runs and reports" % name)


def http_run(tmp):
    if not shutil.which("wrk") or not shutil.which("nginx") and not os.path.exists(
            "/usr/sbin/nginx"):
        skipped.append("http (packages wrk nginx-light)")
        return
    rc, r, _ = bench(["http", "--duration", "1", "--warmup", "0", "--connections", "8",
                      "--plextv", PLEXTV], tmp, "http", timeout=120)
    check(rc == 0 and r is not None, "http scenario runs against plextv and nginx")
    if not r:
        return
    rows = r["results"]
    paths = {(x["server"], x["path"]) for x in rows}
    need = {(srv, path) for srv in ("plextv", "nginx") for path in ("/health", "/bench/1k")}
    check(need <= paths and all(x["ok"] and x["requests_per_s"] > 0 for x in rows),
          "http: plextv and nginx rows for /health and /bench/1k, with req/s")
    check(all(x["non_2xx"] == 0 for x in rows), "http: every answer was 2xx")
    check(r["ratio_health_rps"] is not None and r["ratio_1k_rps"] is not None,
          "http: ratios written")


def main():
    if not os.access(BENCH, os.X_OK):
        print("FAIL: %s not built (target plextv-bench)" % BENCH)
        return 1
    tmp = tempfile.mkdtemp(prefix="ptv-bench-smoke.")
    try:
        clean_run(tmp)
        fault_runs(tmp)
        generated_source(tmp)
        plextv_run(tmp)
        plextv_scenarios(tmp)
        peer_runs(tmp)
        http_run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    if skipped:
        print("SKIP: peers not installed: " + "; ".join(skipped))
        return 77
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
