"""Startup checks: each failure exits non-zero with one error naming the option and value."""

import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import unittest

import hvtest
from hvtest import Peer, run


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

    def test_read_only_database_rejected(self):
        # root writes any file, so hiventd runs as nobody on a root-owned
        # hivent.db of mode 444 in a directory that nobody owns.
        nobody = pwd.getpwnam("nobody")
        data_dir = os.path.join(self.tmp, "db")
        os.makedirs(data_dir)
        sqlite3.connect(os.path.join(data_dir, "hivent.db")).close()
        os.chmod(os.path.join(data_dir, "hivent.db"), 0o444)
        os.chmod(self.tmp, 0o755)
        os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
        proc = subprocess.run(["setpriv", "--reuid", str(nobody.pw_uid), "--regid",
                               str(nobody.pw_gid), "--clear-groups", hvtest.HIVENTD,
                               "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                               "--ready-file", os.path.join(data_dir, "ready")],
                              capture_output=True, timeout=10)
        stderr = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, stderr)
        self.assertIn("cannot write %s/hivent.db" % data_dir, stderr)
        self.assertNotIn("listening", stderr)
        self.assertFalse(os.path.exists(os.path.join(data_dir, "ready")))

    def test_foreign_schema_rejected(self):
        data_dir = os.path.join(self.tmp, "db")
        os.makedirs(data_dir)
        db_path = os.path.join(data_dir, "hivent.db")
        db = sqlite3.connect(db_path)
        db.execute("CREATE TABLE events(ts TEXT, kind TEXT, detail TEXT)")
        db.execute("INSERT INTO events VALUES('2024-01-01', 'login', 'alice')")
        db.commit()
        db.close()
        code, stderr = run_hiventd(["--data-dir", data_dir, "--listen", "127.0.0.1:0"])
        self.assertEqual(code, 1, stderr)
        self.assertIn("table events lacks hiventd's columns", stderr)
        self.assertIn(db_path, stderr)
        db = sqlite3.connect(db_path)
        columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
        db.close()
        self.assertEqual(columns, ["ts", "kind", "detail"])
        self.assertEqual(version, 0)
        self.assertEqual(tables, ["events"])

    def test_key_and_key_file_rejected(self):
        key_file = os.path.join(self.tmp, "key")
        with open(key_file, "w") as f:
            f.write("from-file\n")
        data_dir = os.path.join(self.tmp, "db")
        base = ["--data-dir", data_dir, "--listen", "127.0.0.1:0"]
        cases = [
            ("api", ["--api-key", "inline", "--api-key-file", key_file], {}),
            ("api", ["--api-key-file", key_file], {"HIVENTD_API_KEY": "inline"}),
            ("admin", ["--admin-key", "inline", "--admin-key-file", key_file], {}),
            ("admin", ["--admin-key", "inline"], {"HIVENTD_ADMIN_KEY_FILE": key_file}),
        ]
        for kind, args, env in cases:
            with self.subTest(args=args, env=env):
                proc = subprocess.run([hvtest.HIVENTD] + base + args, capture_output=True,
                                      timeout=10, env=dict(os.environ, **env))
                stderr = proc.stderr.decode("utf-8", "replace")
                self.assertEqual(proc.returncode, 2, stderr)
                self.assertIn("--%s-key and --%s-key-file" % (kind, kind), stderr)
                self.assertIn("give only one", stderr)
                self.assertNotIn("inline", stderr)
                self.assertNotIn("from-file", stderr)

    def test_unwritable_ready_file_fails(self):
        data_dir = os.path.join(self.tmp, "db")
        ready = os.path.join(self.tmp, "missing-dir", "ready")
        code, stderr = run_hiventd(["--data-dir", data_dir, "--listen", "127.0.0.1:0",
                                    "--ready-file", ready])
        self.assertEqual(code, 1, stderr)
        self.assertIn("cannot write --ready-file %s: no such file or directory" % ready, stderr)

    def test_sighup_stops_cleanly(self):
        server = hvtest.Server(data_dir=self.tmp).start()
        self.assertEqual(server.health()["status"], "ok")
        server.proc.send_signal(signal.SIGHUP)
        code = server.proc.wait(10)
        server.log.close()
        server.proc = None
        log = server.read_log()
        self.assertEqual(code, 0, log)
        self.assertIn("stopping: finishing", log)
        self.assertIn("stopped", log)

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

    def test_port_in_use_names_address(self):
        first = self.start_server()
        code, stderr = run_hiventd(["--data-dir", os.path.join(self.tmp, "other"),
                                    "--listen", "127.0.0.1:%d" % first.port])
        self.assertNotEqual(code, 0)
        self.assertIn("cannot listen on 127.0.0.1:%d: address already in use (--listen)"
                      % first.port, stderr)
        self.assert_no_lws_lines(stderr)

    def test_missing_tls_cert_named(self):
        cert = os.path.join(self.tmp, "missing-cert.pem")
        key = os.path.join(self.tmp, "missing-key.pem")
        code, stderr = run_hiventd(["--data-dir", os.path.join(self.tmp, "db"),
                                    "--listen", "127.0.0.1:0", "--tls-cert", cert,
                                    "--tls-key", key])
        self.assertNotEqual(code, 0)
        self.assertIn("--tls-cert %s: no such file" % cert, stderr)
        self.assert_no_lws_lines(stderr)

    def make_key_pair(self, name):
        cert = os.path.join(self.tmp, name + "-cert.pem")
        key = os.path.join(self.tmp, name + "-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        return cert, key

    def test_tls_key_mismatch_named(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl command not found")
        cert_a, _ = self.make_key_pair("a")
        _, key_b = self.make_key_pair("b")
        code, stderr = run_hiventd(["--data-dir", os.path.join(self.tmp, "db"),
                                    "--listen", "127.0.0.1:0", "--tls-cert", cert_a,
                                    "--tls-key", key_b])
        self.assertNotEqual(code, 0)
        self.assertIn("--tls-key does not match --tls-cert", stderr)
        self.assertIn(key_b, stderr)
        self.assert_no_lws_lines(stderr)

    def test_tls_cert_without_certificate_named(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl command not found")
        _, key = self.make_key_pair("c")
        code, stderr = run_hiventd(["--data-dir", os.path.join(self.tmp, "db"),
                                    "--listen", "127.0.0.1:0", "--tls-cert", key,
                                    "--tls-key", key])
        self.assertNotEqual(code, 0)
        self.assertIn("--tls-cert %s: no PEM certificate found" % key, stderr)
        self.assert_no_lws_lines(stderr)

    def test_max_partitions_range(self):
        data_dir = os.path.join(self.tmp, "db")
        for value in ("0", "4097", "65536"):
            with self.subTest(value=value):
                code, stderr = run_hiventd(["--data-dir", data_dir, "--max-partitions", value])
                self.assertEqual(code, 2)
                self.assertIn("invalid --max-partitions '%s'" % value, stderr)
                self.assertIn("from 1 to 4096", stderr)

    def test_default_allows_4096_partitions(self):
        server = self.start_server()

        async def body():
            peer = await Peer.consumer(server, "widest", join={"partition_count": 4096})
            await peer.close()
        run(body())
        self.assertEqual(server.service_health("widest")["partition_count"], 4096)


if __name__ == "__main__":
    unittest.main(verbosity=2)
