# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line: version/help, sysexits codes, config check/show and layering, healthcheck,
listen address in use (PRODUCT.md §2)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptvtest  # noqa: E402
from ptvtest import EX_CONFIG, EX_UNAVAILABLE, EX_USAGE, Server, run_cli  # noqa: E402

VERSION_RE = re.compile(r"^plextv (\d+\.\d+\.\d+\S*)(?:\s|$)", re.M)


class Cli(ptvtest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ptv-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def cli(self, *args, env=None, timeout=20.0):
        try:
            return run_cli(list(args), env=env, timeout=timeout, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            self.fail(f"`plextv {' '.join(args)}` still running after {timeout} s (killed)")

    def conf(self, text, name="plextv.conf"):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def show(self, cp):
        return f"exit {cp.returncode}\nstdout: {cp.stdout[:1500]!r}\nstderr: {cp.stderr[:1500]!r}"

    # -- version and help --

    def test_version(self):
        a = self.cli("--version")
        b = self.cli("version")
        for cp in (a, b):
            self.assertEqual(cp.returncode, 0, self.show(cp))
            self.assertRegex(cp.stdout.splitlines()[0] if cp.stdout else "", VERSION_RE,
                             self.show(cp))
        self.assertEqual(VERSION_RE.search(a.stdout).group(1),
                         VERSION_RE.search(b.stdout).group(1))

    def test_help(self):
        cp = self.cli("--help")
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertIn("serve", cp.stdout, "--help must go to stdout and list the commands")
        self.assertRegex(cp.stdout.lower(), r"usage", self.show(cp))
        for cmd in ("config", "healthcheck", "version"):
            self.assertIn(cmd, cp.stdout, f"--help does not mention {cmd}")

    def test_unknown_command_64(self):
        cp = self.cli("bogus")
        self.assertEqual(cp.returncode, EX_USAGE, self.show(cp))
        self.assertTrue(cp.stderr.strip(), "no message on stderr")
        self.assertIn("bogus", cp.stderr)

    def test_unknown_flag_64(self):
        cp = self.cli("serve", "--no-such-flag", "--data-dir", self.tmp,
                      "--listen", f"127.0.0.1:{ptvtest.free_port()}", timeout=10)
        self.assertEqual(cp.returncode, EX_USAGE, self.show(cp))
        self.assertIn("no-such-flag", cp.stderr)

    def test_serve_bad_workers(self):
        cp = self.cli("serve", "--workers", "banana", "--data-dir", self.tmp,
                      "--listen", f"127.0.0.1:{ptvtest.free_port()}", timeout=10)
        self.assertIn(cp.returncode, (EX_CONFIG, EX_USAGE), self.show(cp))
        self.assertIn("workers", cp.stderr, f"message should name the flag: {self.show(cp)}")

    # -- config check --

    VALID = ("[server]\nworkers = 2\n\n[http]\nheader_max_bytes = 8192\n\n"
             "[log]\nlog_level = info\n")

    def test_config_check_valid(self):
        p = self.conf(self.VALID)
        cp = self.cli("config", "check", "--config", p)
        self.assertEqual(cp.returncode, 0, self.show(cp))

    def test_config_check_unknown_key(self):
        p = self.conf(self.VALID + "frobnicate_level = 3\n")
        cp = self.cli("config", "check", "--config", p)
        self.assertEqual(cp.returncode, EX_CONFIG, self.show(cp))
        self.assertIn("frobnicate_level", cp.stderr + cp.stdout)

    def test_config_check_bad_value(self):
        p = self.conf("[http]\nheader_max_bytes = banana\n")
        cp = self.cli("config", "check", "--config", p)
        self.assertEqual(cp.returncode, EX_CONFIG, self.show(cp))
        self.assertIn("header_max_bytes", cp.stderr + cp.stdout)

    def test_config_check_bad_values(self):
        cases = [
            ("[http]\nheader_max_bytes = -5\n", "header_max_bytes"),
            ("[http]\nheader_max_bytes = 99999999999999999999\n", "header_max_bytes"),
            ("[log]\nlog_level = shouty\n", "log_level"),
            ("[log]\nlog_format = xml\n", "log_format"),
            ("[server]\nlisten = not-an-address\n", "listen"),
            ("[server]\nworkers = 2x\n", "workers"),
        ]
        for text, key in cases:
            with self.subTest(text=text):
                cp = self.cli("config", "check", "--config", self.conf(text, "c.conf"))
                self.assertEqual(cp.returncode, EX_CONFIG, self.show(cp))
                self.assertIn(key, cp.stderr + cp.stdout)

    def test_config_check_wrong_section(self):
        p = self.conf("[log]\nheader_max_bytes = 2048\n")
        cp = self.cli("config", "check", "--config", p)
        self.assertEqual(cp.returncode, EX_CONFIG, self.show(cp))
        self.assertIn("header_max_bytes", cp.stderr + cp.stdout)

    def test_config_check_unknown_section(self):
        p = self.conf("[nonsense]\nlog_level = info\n")
        cp = self.cli("config", "check", "--config", p)
        self.assertEqual(cp.returncode, EX_CONFIG, self.show(cp))

    def test_config_check_missing_file(self):
        cp = self.cli("config", "check", "--config", os.path.join(self.tmp, "absent.conf"))
        self.assertNotEqual(cp.returncode, 0, self.show(cp))
        self.assertIn("absent.conf", cp.stderr + cp.stdout)

    # -- config show and layering --

    def show_value(self, out, key):
        # INI style: "key = value", optionally followed by an inline "; comment".
        m = re.search(r"^\s*" + re.escape(key) + r"\s*=(.*)$", out, re.M)
        if not m:
            return None
        return re.split(r"(?:^|\s)[;#]", m.group(1), maxsplit=1)[0].strip()

    def test_config_show_lists_keys(self):
        cp = self.cli("config", "show")
        self.assertEqual(cp.returncode, 0, self.show(cp))
        for key in ("listen", "data_dir", "workers", "max_connections", "header_max_bytes",
                    "header_max_count", "url_max_bytes", "body_max_bytes", "header_timeout_ms",
                    "idle_timeout_ms", "log_level"):
            with self.subTest(key):
                self.assertIsNotNone(self.show_value(cp.stdout, key), f"{key} missing:\n{cp.stdout}")
        self.assertEqual(self.show_value(cp.stdout, "header_max_bytes"), "16384")
        self.assertEqual(self.show_value(cp.stdout, "header_max_count"), "100")
        self.assertEqual(self.show_value(cp.stdout, "url_max_bytes"), "8192")
        self.assertEqual(self.show_value(cp.stdout, "body_max_bytes"), "1048576")
        self.assertEqual(self.show_value(cp.stdout, "listen"), "0.0.0.0:8080")

    def test_config_show_redacts_credentials(self):
        env = {"PLEXTV_ACESTREAM_ENGINE": "http://user:secret@127.0.0.1:6878"}
        cp = self.cli("config", "show", env=env)
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertNotIn("secret", cp.stdout + cp.stderr, self.show(cp))
        v = self.show_value(cp.stdout, "acestream_engine")
        self.assertIsNotNone(v, "acestream_engine not shown")
        self.assertIn("127.0.0.1:6878", v, "the non-secret part should stay visible")
        # Also via a file and a flag.
        p = self.conf("[sources]\nacestream_engine = http://bob:hunter2@127.0.0.1:6878/\n")
        cp = self.cli("config", "show", "--config", p)
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertNotIn("hunter2", cp.stdout + cp.stderr)

    def test_config_layering(self):
        p = self.conf("[http]\nheader_max_bytes = 4096\n\n[log]\nlog_level = warn\n")
        cp = self.cli("config", "show", "--config", p)
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertEqual(self.show_value(cp.stdout, "header_max_bytes"), "4096", "file < defaults")
        env = {"PLEXTV_HEADER_MAX_BYTES": "8192", "PLEXTV_LOG_LEVEL": "debug"}
        cp = self.cli("config", "show", "--config", p, env=env)
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertEqual(self.show_value(cp.stdout, "header_max_bytes"), "8192",
                         "environment must override the file")
        self.assertEqual(self.show_value(cp.stdout, "log_level"), "debug")
        cp = self.cli("config", "show", "--config", p, "--header-max-bytes", "12288",
                      "--log-level", "error", env=env)
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertEqual(self.show_value(cp.stdout, "header_max_bytes"), "12288",
                         "a flag must override the environment")
        self.assertEqual(self.show_value(cp.stdout, "log_level"), "error")

    def test_config_env_bad_value(self):
        cp = self.cli("config", "check", env={"PLEXTV_HEADER_MAX_BYTES": "banana"})
        self.assertEqual(cp.returncode, EX_CONFIG, self.show(cp))
        self.assertIn("HEADER_MAX_BYTES", (cp.stderr + cp.stdout).upper())

    def test_default_config_from_data_dir(self):
        d = os.path.join(self.tmp, "dd")
        os.mkdir(d)
        with open(os.path.join(d, "plextv.conf"), "w") as f:
            f.write("[http]\nheader_max_bytes = 6000\n")
        cp = self.cli("config", "show", "--data-dir", d)
        self.assertEqual(cp.returncode, 0, self.show(cp))
        self.assertEqual(self.show_value(cp.stdout, "header_max_bytes"), "6000",
                         "DATA_DIR/plextv.conf not read by default")

    # -- healthcheck --

    def test_healthcheck(self):
        with Server() as srv:
            cp = self.cli("healthcheck", "--url", srv.url("/health"), timeout=15)
            self.assertEqual(cp.returncode, 0, self.show(cp))
        port = ptvtest.free_port()
        t0 = time.monotonic()
        cp = self.cli("healthcheck", "--url", f"http://127.0.0.1:{port}/health", timeout=15)
        self.assertEqual(cp.returncode, EX_UNAVAILABLE, self.show(cp))
        self.assertLess(time.monotonic() - t0, 10)

    def test_healthcheck_non_200(self):
        with Server() as srv:
            cp = self.cli("healthcheck", "--url", srv.url("/no-such-thing"), timeout=15)
            self.assertNotEqual(cp.returncode, 0, self.show(cp))

    # -- listen address in use --

    def serve_expect_fail(self, port, what):
        d = os.path.join(self.tmp, "data-" + what.replace(" ", "-"))
        os.makedirs(d, exist_ok=True)
        cp = self.cli("serve", "--data-dir", d, "--listen", f"127.0.0.1:{port}",
                      "--workers", "2", timeout=10)
        self.assertNotEqual(cp.returncode, 0, f"{what}: {self.show(cp)}")
        self.assertIn(f"127.0.0.1:{port}", cp.stderr + cp.stdout,
                      f"{what}: message should name the address: {self.show(cp)}")

    def test_listen_in_use_by_plain_socket(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind((ptvtest.HOST, 0))
        s.listen(8)
        self.serve_expect_fail(s.getsockname()[1], "plain listener")

    def test_listen_in_use_by_another_plextv(self):
        # SO_REUSEPORT must not let a second instance silently share the port.
        with Server() as srv:
            self.serve_expect_fail(srv.port, "second plextv")
            self.assertEqual(srv.get("/health").status, 200)


if __name__ == "__main__":
    ptvtest.main()
