"""Startup checks: each failure exits non-zero with one error naming the option and value."""

import os
import shutil
import subprocess
import tempfile
import unittest

import hvtest


def run_hiventd(args, timeout=10):
    """Runs hiventd, which is expected to exit on its own; returns (code, stderr)."""
    proc = subprocess.run([hvtest.HIVENTD] + args, capture_output=True, timeout=timeout)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


class StartupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hiventd-startup-")
        self.servers = []

    def tearDown(self):
        for server in self.servers:
            code = server.stop()
            log = server.read_log()
            server.cleanup()
            self.assertEqual(code, 0, log)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_server(self, args=(), data_dir=None):
        server = hvtest.Server(args=list(args), data_dir=data_dir).start()
        self.servers.append(server)
        return server

    def assert_no_lws_lines(self, stderr):
        self.assertNotIn("lws:", stderr)

    def test_second_server_on_data_dir_rejected(self):
        first = self.start_server(data_dir=self.tmp)
        data_dir = os.path.join(self.tmp, "db")
        code, stderr = run_hiventd(["--data-dir", data_dir, "--listen", "127.0.0.1:0"])
        self.assertNotEqual(code, 0)
        self.assertIn("data directory %s is in use" % data_dir, stderr)
        self.assertIn("PID %d" % first.proc.pid, stderr)
        self.assertEqual(first.health()["status"], "ok")

    def test_lock_released_at_exit(self):
        first = hvtest.Server(data_dir=self.tmp).start()
        self.assertEqual(first.stop(), 0)
        self.start_server(data_dir=self.tmp)


if __name__ == "__main__":
    unittest.main(verbosity=2)
