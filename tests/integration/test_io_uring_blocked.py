# SPDX-License-Identifier: GPL-3.0-or-later
"""When io_uring is blocked (Docker's default seccomp profile since 25), `plextv serve` exits
with EX_OSERR and a message naming the cause and the fix, instead of hanging or crashing."""

import os
import subprocess
import tempfile
import unittest

import ptvtest
from ptvtest import BIN, BUILD_DIR, free_port


class IoUringBlockedTest(unittest.TestCase):
    def test_clear_error_when_seccomp_blocks_io_uring(self):
        wrapper = os.path.join(BUILD_DIR, "tests", "no_uring")
        self.assertTrue(os.access(wrapper, os.X_OK), f"{wrapper} not built")
        with tempfile.TemporaryDirectory() as tmp:
            cp = subprocess.run([wrapper, BIN, "serve", "--data-dir", tmp, "--demo-dir", "",
                                 "--listen", f"127.0.0.1:{free_port()}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        err = cp.stderr.decode("utf-8", "replace")
        self.assertEqual(cp.returncode, 71, err)
        self.assertIn("io_uring", err)
        self.assertIn("Operation not permitted", err)
        self.assertIn("seccomp", err)
        self.assertIn("io_uring_disabled", err)
        self.assertEqual(ptvtest.sanitizer_lines(err), [])


if __name__ == "__main__":
    ptvtest.main()
