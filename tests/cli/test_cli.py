"""Tests of the hivent command-line client against a real hiventd.

Each test class starts its own hiventd on 127.0.0.1 port 0 with a
temporary data directory, and runs the CLI with a temporary HOME so that no
user configuration leaks in.  Paths come from the environment:
HIVENT_CLI, HIVENTD, HIVENT_REJECT_CONSUMER and HIVENT_WEBHOOKS_JSON.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HIVENT = os.environ.get("HIVENT_CLI", "")
HIVENTD = os.environ.get("HIVENTD", "")
REJECT_CONSUMER = os.environ.get("HIVENT_REJECT_CONSUMER", "")
WEBHOOKS_JSON = os.environ.get("HIVENT_WEBHOOKS_JSON", "")

API_KEY = "cli-test-api-key"
ADMIN_KEY = "cli-test-admin-key"
START_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_REJECTED = 4
EXIT_TIMED_OUT = 5


def closed_port():
    """Returns a port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_file(path, text, mode=0o600):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class Hiventd:
    """A hiventd process on 127.0.0.1 port 0 with its own data directory."""

    def __init__(self, workdir, api_key=None, admin_key=None, extra_args=()):
        self.workdir = workdir
        self.ready_file = os.path.join(workdir, "ready")
        self.log_path = os.path.join(workdir, "hiventd.log")
        args = [HIVENTD, "--data-dir", os.path.join(workdir, "data"),
                "--listen", "127.0.0.1:0", "--ready-file", self.ready_file]
        if api_key:
            args += ["--api-key-file",
                     write_file(os.path.join(workdir, "server-api-key"), api_key + "\n")]
        if admin_key:
            args += ["--admin-key-file",
                     write_file(os.path.join(workdir, "server-admin-key"), admin_key + "\n")]
        args += list(extra_args)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("hiventd exited with status %d; log:\n%s"
                                   % (self.proc.returncode, self.read_log()))
            try:
                with open(self.ready_file, encoding="ascii") as f:
                    text = f.read()
                if text.endswith("\n"):
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("hiventd did not write %s within %.0f s"
                           % (self.ready_file, START_TIMEOUT))

    def read_log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Background:
    """A CLI process whose output is read on threads, to wait for a line."""

    def __init__(self, args, env, stdout=subprocess.PIPE):
        """Starts @args; @stdout may be a file descriptor that the caller reads."""
        self.proc = subprocess.Popen(args, env=env, stdout=stdout,
                                     stderr=subprocess.PIPE, text=True)
        self.stdout_lines = []
        self.stderr_lines = []
        self.cond = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines),
                             daemon=True),
        ]
        if self.proc.stdout is not None:
            self.readers.append(
                threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines),
                                 daemon=True))
        for reader in self.readers:
            reader.start()

    def _read(self, stream, lines):
        for line in stream:
            with self.cond:
                lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for_stderr(self, text, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(text in line for line in self.stderr_lines):
                left = deadline - time.monotonic()
                if left <= 0 or not self.readers[0].is_alive():
                    return False
                self.cond.wait(min(left, 0.2))
        return True

    def finish(self, timeout=CLI_TIMEOUT):
        """Waits for the exit; returns (status, stdout, stderr)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        for reader in self.readers:
            reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc.stderr.close()
        with self.cond:
            return (self.proc.returncode, "".join(self.stdout_lines),
                    "".join(self.stderr_lines))


class CliTestCase(unittest.TestCase):
    """Starts one hiventd for the class and runs the CLI against it."""

    api_key = API_KEY
    admin_key = ADMIN_KEY

    @classmethod
    def server_args(cls):
        """Returns the extra hiventd options of the class."""
        return []

    @classmethod
    def setUpClass(cls):
        for name, path in (("HIVENT_CLI", HIVENT), ("HIVENTD", HIVENTD)):
            if not path or not os.access(path, os.X_OK):
                raise RuntimeError("%s must name an executable, found %r" % (name, path))
        cls.workdir = tempfile.mkdtemp(prefix="hivent-cli-test-")
        cls.home = os.path.join(cls.workdir, "home")
        os.makedirs(os.path.join(cls.home, ".config"))
        cls.server = Hiventd(cls.workdir, cls.api_key, cls.admin_key, cls.server_args())
        cls.api_key_file = write_file(os.path.join(cls.workdir, "api-key"), API_KEY + "\n")
        cls.admin_key_file = write_file(os.path.join(cls.workdir, "admin-key"),
                                        ADMIN_KEY + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def env(self, port=None, api_key=API_KEY, admin_key=None, **extra):
        """Returns a clean environment for the CLI pointed at the server."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HIVENT") and k != "XDG_CONFIG_HOME"}
        env["HOME"] = self.home
        env["HIVENT_SERVER_PORT"] = str(self.server.port if port is None else port)
        if api_key is not None:
            env["HIVENT_SERVER_API_KEY"] = api_key
        if admin_key is not None:
            env["HIVENT_ADMIN_KEY"] = admin_key
        env.update(extra)
        return env

    def run_cli(self, args, env=None, stdin=None, timeout=CLI_TIMEOUT):
        return subprocess.run([HIVENT] + args, env=env if env is not None else self.env(),
                              input=stdin, capture_output=True, text=True,
                              timeout=timeout)

    def assert_exit(self, result, status):
        self.assertEqual(result.returncode, status,
                         "exit status %d, expected %d\nstdout: %s\nstderr: %s"
                         % (result.returncode, status, result.stdout, result.stderr))

    def emit(self, name, payload, version=1, key=None, cid=None):
        args = ["emit", name, "--version", str(version), "--payload", json.dumps(payload)]
        if key is not None:
            args += ["--key", key]
        if cid is not None:
            args += ["--cid", cid]
        result = self.run_cli(args)
        self.assert_exit(result, EXIT_OK)
        return json.loads(result.stdout)

    def start_consumer(self, topic, service, partitions, *args, env=None,
                       stdout=subprocess.PIPE):
        """Starts 'hivent consume' and waits until it joined its channel."""
        consumer = Background([HIVENT, "consume", topic, "--name", service,
                               "--partitions", str(partitions), "-v"] + list(args),
                              env if env is not None else self.env(), stdout)
        if not consumer.wait_for_stderr("connected: consuming"):
            code, out, err = consumer.finish(10)
            self.fail("consumer did not join event:%s (exit %s)\nstderr: %s"
                      % (topic, code, err))
        return consumer

    def temp_path(self, name):
        return os.path.join(self.workdir, "%s-%s" % (self.id().rsplit(".", 1)[-1], name))


class HelpTest(CliTestCase):
    COMMANDS = {
        "emit": ["--version", "--key", "--cid", "--payload", "--format"],
        "replay": ["--window", "--failed-out", "--dry-run", "--no-progress"],
        "consume": ["--name", "--partitions", "--format", "--count", "--idle-timeout",
                    "--event-version", "--prefetch"],
        "dlq": ["list", "replay", "purge", "--partition", "--limit", "--format"],
        "status": ["--format", "--all"],
    }

    def test_every_command_has_help(self):
        for command, options in self.COMMANDS.items():
            with self.subTest(command=command):
                result = self.run_cli([command, "--help"])
                self.assert_exit(result, EXIT_OK)
                for option in options + ["--host", "--port", "--api-key-file", "--timeout"]:
                    self.assertIn(option, result.stdout)
                self.assertIn("default", result.stdout)

    def test_help_command_matches_flag(self):
        self.assertEqual(self.run_cli(["help", "replay"]).stdout,
                         self.run_cli(["replay", "--help"]).stdout)

    def test_top_level_help_lists_exit_codes(self):
        result = self.run_cli(["--help"])
        self.assert_exit(result, EXIT_OK)
        for command in self.COMMANDS:
            self.assertIn(command, result.stdout)
        self.assertIn("Exit status", result.stdout)

    def test_unknown_command_is_usage_error(self):
        result = self.run_cli(["publish"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("unknown command 'publish'", result.stderr)

    def test_unknown_option_is_usage_error(self):
        result = self.run_cli(["emit", "x", "--version", "1", "--bogus"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("hivent emit --help", result.stderr)

    def test_missing_command_is_usage_error(self):
        self.assert_exit(self.run_cli([]), EXIT_USAGE)


class EmitTest(CliTestCase):
    def test_emit_prints_published_event(self):
        event = self.emit("user.created", {"id": 7, "name": "Zoë", "big": 2 ** 62},
                          key="user-7", cid="corr-1")
        self.assertEqual(event["name"], "user.created")
        self.assertEqual(event["payload"], {"id": 7, "name": "Zoë", "big": 2 ** 62})
        self.assertEqual(event["meta"]["version"], 1)
        self.assertEqual(event["meta"]["key"], "user-7")
        self.assertEqual(event["meta"]["cid"], "corr-1")
        self.assertEqual(len(event["meta"]["uuid"]), 36)
        self.assertTrue(event["meta"]["created_at"].endswith("Z"))

    def test_emit_assigns_uuid_version_7(self):
        first = self.emit("user.created", {"id": 9})["meta"]["uuid"]
        second = self.emit("user.created", {"id": 10})["meta"]["uuid"]
        for value in (first, second):
            self.assertRegex(value, r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                    r"[0-9a-f]{12}$")
        # The first 48 bits are a millisecond timestamp, so ids sort by time.
        self.assertLessEqual(first[:13], second[:13])

    def test_emit_assigns_cid(self):
        event = self.emit("user.created", {"id": 8})
        self.assertTrue(event["meta"]["cid"])

    def test_emit_reads_payload_from_stdin(self):
        result = self.run_cli(["emit", "user.updated", "--version", "2"],
                              stdin='{\n  "id": 9,\n  "tags": ["a", "b"]\n}\n')
        self.assert_exit(result, EXIT_OK)
        event = json.loads(result.stdout)
        self.assertEqual(event["payload"], {"id": 9, "tags": ["a", "b"]})
        self.assertEqual(event["meta"]["version"], 2)

    def test_emit_pretty_format(self):
        result = self.run_cli(["emit", "user.deleted", "--version", "1", "--payload",
                               '{"id": 10}', "--format", "pretty"])
        self.assert_exit(result, EXIT_OK)
        self.assertIn("user.deleted  version 1", result.stdout)
        self.assertIn('"id": 10', result.stdout)

    def test_emit_counts_in_metrics(self):
        self.emit("metric.probe", {"n": 1})
        result = self.run_cli(["status", "--format", "json"])
        self.assert_exit(result, EXIT_OK)
        metrics = json.loads(result.stdout)["metrics"]
        self.assertGreaterEqual(metrics['hivent_emits_total{result="stored"}'], 1)


class ConsumeTest(CliTestCase):
    def test_emit_consume_round_trip(self):
        consumer = self.start_consumer("order.placed", "shipping", 4, "--count", "3")
        sent = [self.emit("order.placed", {"order": i}, key="customer-%d" % i)
                for i in range(3)]
        code, out, err = consumer.finish()
        self.assertEqual(code, EXIT_OK, err)
        received = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(sorted(e["meta"]["uuid"] for e in received),
                         sorted(e["meta"]["uuid"] for e in sent))
        self.assertEqual(sorted(e["payload"]["order"] for e in received), [0, 1, 2])

    def test_consume_pretty_format(self):
        consumer = self.start_consumer("invoice.sent", "mailer", 1, "--count", "1",
                                       "--format", "pretty")
        self.emit("invoice.sent", {"invoice": "A-1"}, key="k")
        code, out, err = consumer.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertIn("invoice.sent  version 1", out)
        self.assertIn("mailer:0", out)
        self.assertIn('"invoice": "A-1"', out)

    def test_count_acknowledges_only_printed_events(self):
        first = self.start_consumer("job.queued", "workers", 1, "--count", "1")
        for i in range(3):
            self.emit("job.queued", {"job": i}, key="same-key")
        code, out, err = first.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual([json.loads(l)["payload"]["job"] for l in out.splitlines()], [0])

        second = self.start_consumer("job.queued", "workers", 1, "--count", "2")
        code, out, err = second.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual([json.loads(l)["payload"]["job"] for l in out.splitlines()], [1, 2])

    def test_closed_pipe_stops_without_ack(self):
        # The reader takes one line and closes the pipe, as 'head -1' does.
        read_end, write_end = os.pipe()
        try:
            consumer = self.start_consumer("pipe.closed", "pipesvc", 1, stdout=write_end)
        finally:
            os.close(write_end)
        with os.fdopen(read_end, encoding="utf-8") as reader:
            self.emit("pipe.closed", {"n": 0}, key="same-key")
            first = json.loads(reader.readline())
        self.assertEqual(first["payload"], {"n": 0})

        # Each later event meets a closed pipe: the first write fails with
        # EPIPE and the client exits without acknowledging it or any other.
        for i in range(1, 4):
            self.emit("pipe.closed", {"n": i}, key="same-key")
        code, _, err = consumer.finish(20)
        self.assertEqual(code, EXIT_FAILED, err)
        self.assertIn("writing to standard output failed", err)
        self.assertIn("Broken pipe", err)
        self.assertIn("not acknowledged", err)

        second = self.start_consumer("pipe.closed", "pipesvc", 1, "--count", "3",
                                     "--idle-timeout", "10000")
        code, out, err = second.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual([json.loads(l)["payload"]["n"] for l in out.splitlines()], [1, 2, 3])

    def test_sigint_leaves_channel(self):
        consumer = self.start_consumer("audit.logged", "auditor", 2)
        started = time.monotonic()
        consumer.proc.send_signal(signal.SIGINT)
        code, out, err = consumer.finish(10)
        self.assertEqual(code, EXIT_OK, err)
        self.assertLess(time.monotonic() - started, 6.0)
        self.assertIn("leaving event:audit.logged", err)
        self.assertEqual(out, "")

    def test_sigterm_leaves_channel(self):
        consumer = self.start_consumer("audit.logged", "auditor-term", 2)
        consumer.proc.send_signal(signal.SIGTERM)
        code, out, err = consumer.finish(10)
        self.assertEqual(code, EXIT_OK, err)
        self.assertIn("leaving event:audit.logged", err)

    def test_idle_timeout_before_count(self):
        result = self.run_cli(["consume", "never.sent", "--name", "idle", "--partitions",
                               "1", "--count", "1", "--idle-timeout", "800"])
        self.assert_exit(result, EXIT_TIMED_OUT)
        self.assertEqual(result.stdout, "")

    def test_partition_count_mismatch(self):
        consumer = self.start_consumer("stock.changed", "inventory", 2)
        try:
            result = self.run_cli(["consume", "stock.changed", "--name", "inventory",
                                   "--partitions", "3"])
            self.assert_exit(result, EXIT_REJECTED)
            self.assertIn("partition", result.stderr)
            self.assertIn("--name", result.stderr)
        finally:
            consumer.proc.send_signal(signal.SIGINT)
            consumer.finish(10)

    def test_partitions_range_matches_libhivent(self):
        help_text = self.run_cli(["consume", "--help"]).stdout
        self.assertIn("1 to 4096", help_text)
        self.assertNotIn("65536", help_text)
        result = self.run_cli(["consume", "x", "--name", "s", "--partitions", "4097"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("--partitions", result.stderr)
        self.assertIn("4096", result.stderr)

    def test_partitions_over_server_limit(self):
        workdir = tempfile.mkdtemp(dir=self.workdir, prefix="max-partitions-")
        server = Hiventd(workdir, API_KEY, None, ["--max-partitions", "8"])
        try:
            result = self.run_cli(["consume", "wide", "--name", "wide-svc", "--partitions",
                                   "16", "--idle-timeout", "2000"],
                                  env=self.env(port=server.port))
        finally:
            server.stop()
        self.assert_exit(result, EXIT_REJECTED)
        self.assertIn("partition_count 16 exceeds the limit of 8", result.stderr)
        self.assertIn("raise hiventd's --max-partitions", result.stderr)
        self.assertNotIn("partition count the service already has", result.stderr)

    def test_consume_missing_options(self):
        self.assert_exit(self.run_cli(["consume", "x", "--partitions", "1"]), EXIT_USAGE)
        self.assert_exit(self.run_cli(["consume", "x", "--name", "s"]), EXIT_USAGE)
        self.assert_exit(self.run_cli(["consume", "--name", "s", "--partitions", "1"]),
                         EXIT_USAGE)
        result = self.run_cli(["consume", "x", "--name", "s", "--partitions", "0"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("--partitions", result.stderr)


def load_webhooks():
    """Returns the webhook examples as replay records, each with its index as cid."""
    with open(WEBHOOKS_JSON, encoding="utf-8") as f:
        groups = json.load(f)
    records = []
    for group in groups:
        for payload in group["examples"]:
            repository = payload.get("repository") or {}
            meta = {"version": 1, "cid": "webhook-%d" % len(records)}
            if repository.get("full_name"):
                meta["key"] = repository["full_name"]
            records.append({"name": "github." + group["name"], "payload": payload,
                            "meta": meta})
    return records


class ReplayTest(CliTestCase):
    def write_records(self, name, records, as_array=False):
        path = self.temp_path(name)
        with open(path, "w", encoding="utf-8") as f:
            if as_array:
                json.dump(records, f, indent=2, ensure_ascii=False)
            else:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path

    def assert_nothing_delivered(self, consumer):
        code, out, err = consumer.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual(out, "", "events were sent although the input was invalid")

    def test_replay_github_webhooks(self):
        self.assertTrue(os.path.exists(WEBHOOKS_JSON),
                        "webhook payloads not found at %r" % WEBHOOKS_JSON)
        records = load_webhooks()
        self.assertEqual(len(records), 329)
        path = self.write_records("webhooks.jsonl", records)
        consumer = self.start_consumer("*", "webhook-archive", 4, "--count",
                                       str(len(records)))
        result = self.run_cli(["replay", path, "--window", "64"], timeout=120)
        self.assert_exit(result, EXIT_OK)
        self.assertIn("329 events, 329 published, 0 failed, 0 not sent", result.stderr)
        self.assertNotIn("\r", result.stderr, "progress bar drawn although stderr is a pipe")

        code, out, err = consumer.finish(120)
        self.assertEqual(code, EXIT_OK, err)
        received = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(len(received), len(records))
        by_cid = {event["meta"]["cid"]: event for event in received}
        self.assertEqual(len(by_cid), len(records))
        for i, record in enumerate(records):
            event = by_cid[record["meta"]["cid"]]
            self.assertEqual(event["name"], record["name"])
            self.assertEqual(event["payload"], record["payload"], record["meta"]["cid"])
        # Events with the same key share a partition, so they keep their order.
        last_index = {}
        for event in received:
            key = event["meta"].get("key")
            index = int(event["meta"]["cid"].split("-")[1])
            if key is not None:
                self.assertGreater(index, last_index.get(key, -1), key)
                last_index[key] = index

    def test_replay_json_array_with_small_window(self):
        records = [{"name": "sample.array", "payload": {"n": i}, "meta": {"version": 1}}
                   for i in range(20)]
        path = self.write_records("array.json", records, as_array=True)
        result = self.run_cli(["replay", "--window", "2", path])
        self.assert_exit(result, EXIT_OK)
        self.assertIn("20 events, 20 published, 0 failed", result.stderr)

    def test_replay_from_stdin(self):
        lines = "".join(json.dumps({"name": "sample.stdin", "payload": {"n": i},
                                    "meta": {"version": 3, "key": "k"}}) + "\n"
                        for i in range(5))
        result = self.run_cli(["replay", "-"], stdin=lines)
        self.assert_exit(result, EXIT_OK)
        self.assertIn("5 events, 5 published", result.stderr)

    def test_replay_accepts_consume_output(self):
        consumer = self.start_consumer("sample.copy", "copier", 1, "--count", "2")
        self.emit("sample.copy", {"n": 1}, key="a")
        self.emit("sample.copy", {"n": 2}, key="a")
        code, out, err = consumer.finish()
        self.assertEqual(code, EXIT_OK, err)
        result = self.run_cli(["replay", "-"], stdin=out)
        self.assert_exit(result, EXIT_OK)
        self.assertIn("2 events, 2 published", result.stderr)

    def test_summary_rate_needs_measurable_time(self):
        lines = "".join(json.dumps({"name": "sample.rate", "payload": {"n": i},
                                    "meta": {"version": 1}}) + "\n" for i in range(3))
        result = self.run_cli(["replay", "-"], stdin=lines)
        self.assert_exit(result, EXIT_OK)
        match = re.search(r"3 published, 0 failed, 0 not sent in (\d+\.\d{3}) s"
                          r"( \((\d+) events/s\))?$", result.stderr, re.M)
        self.assertIsNotNone(match, result.stderr)
        seconds = float(match.group(1))
        # Below 100 ms the millisecond clock gives no usable rate.
        if seconds < 0.1:
            self.assertIsNone(match.group(2), result.stderr)
        else:
            expected = 3 / seconds
            self.assertLessEqual(abs(int(match.group(3)) - expected), expected * 0.02 + 1,
                                 result.stderr)

    def test_progress_bar_when_forced(self):
        records = [{"name": "sample.progress", "payload": {"n": i}, "meta": {"version": 1}}
                   for i in range(10)]
        path = self.write_records("progress.jsonl", records)
        result = self.run_cli(["replay", "--progress", path])
        self.assert_exit(result, EXIT_OK)
        self.assertIn("10/10 100%", result.stderr)
        self.assertIn("events/s", result.stderr)

    def test_bad_json_sends_nothing(self):
        consumer = self.start_consumer("sample.bad", "bad-json", 1, "--idle-timeout", "1500")
        path = self.temp_path("bad.jsonl")
        write_file(path, '{"name": "sample.bad", "payload": {}, "meta": {"version": 1}}\n'
                         '{"name": "sample.bad", "payload": {"a": }, "meta": {"version": 1}}\n')
        result = self.run_cli(["replay", path])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("line 2, column", result.stderr)
        self.assertIn("invalid JSON", result.stderr)
        self.assertIn("nothing was sent", result.stderr)
        self.assert_nothing_delivered(consumer)

    def test_invalid_version_names_value(self):
        cases = [("-3", "found -3"), ("0", "found 0"), ("1.5", "found 1.5"),
                 ('"2"', "found a string")]
        for version, expected in cases:
            with self.subTest(version=version):
                path = self.temp_path("version.jsonl")
                write_file(path, '{"name": "sample.v", "payload": {}, "meta": {"version": %s}}\n'
                           % version)
                result = self.run_cli(["replay", "--dry-run", path])
                self.assert_exit(result, EXIT_USAGE)
                self.assertIn("meta.version must be a positive integer, " + expected,
                              result.stderr)

    def test_unclosed_array(self):
        path = self.temp_path("unclosed.json")
        write_file(path, '[{"name": "a", "payload": {}, "meta": {"version": 1}},\n')
        result = self.run_cli(["replay", path])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("line 2", result.stderr)

    def test_missing_version_lists_records(self):
        consumer = self.start_consumer("sample.noversion", "no-version", 1,
                                       "--idle-timeout", "1500")
        records = [
            {"name": "sample.noversion", "payload": {}, "meta": {"version": 1}},
            {"name": "sample.noversion", "payload": {}, "meta": {"key": "k"}},
            {"name": "sample.noversion", "payload": {}, "meta": {"version": "2"}},
            {"name": "sample.noversion", "payload": {}},
            {"name": "sample.noversion", "payload": [], "meta": {"version": 1}},
            {"payload": {}, "meta": {"version": 1}},
        ]
        path = self.write_records("noversion.jsonl", records)
        result = self.run_cli(["replay", path])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("record 1 (line 2): missing meta.version", result.stderr)
        self.assertIn("record 2 (line 3): meta.version must be a positive integer",
                      result.stderr)
        self.assertIn("record 3 (line 4): missing meta.version", result.stderr)
        self.assertIn('record 4 (line 5): "payload" must be an object', result.stderr)
        self.assertIn('record 5 (line 6): missing "name"', result.stderr)
        self.assertIn("5 of 6 records are invalid", result.stderr)
        self.assert_nothing_delivered(consumer)

    def test_long_strings_rejected_before_sending(self):
        consumer = self.start_consumer("sample.long", "long-names", 1, "--idle-timeout", "1500")
        records = [
            {"name": "sample.long", "payload": {}, "meta": {"version": 1}},
            {"name": "n" * 256, "payload": {}, "meta": {"version": 1}},
            {"name": "\u00e9" * 128, "payload": {}, "meta": {"version": 1}},
            {"name": "sample.long", "payload": {}, "meta": {"version": 1, "cid": "c" * 256}},
            {"name": "sample.long", "payload": {}, "meta": {"version": 1, "key": "k" * 300}},
            {"name": "n" * 255, "payload": {}, "meta": {"version": 1, "key": "k" * 255}},
        ]
        path = self.write_records("long.jsonl", records)
        result = self.run_cli(["replay", path])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("record 1 (line 2): \"name\" is 256 bytes long; the maximum is 255",
                      result.stderr)
        self.assertIn("record 2 (line 3): \"name\" is 256 bytes long", result.stderr)
        self.assertIn("record 3 (line 4): meta.cid is 256 bytes long", result.stderr)
        self.assertIn("record 4 (line 5): meta.key is 300 bytes long", result.stderr)
        self.assertNotIn("record 5", result.stderr)
        self.assertIn("4 of 6 records are invalid", result.stderr)
        self.assert_nothing_delivered(consumer)

    def test_failed_emits_are_listed(self):
        # With --max-pending 1, the queue of full-svc is full after one
        # unacknowledged event, so hiventd rejects the next sample.full emit.
        workdir = tempfile.mkdtemp(dir=self.workdir, prefix="max-pending-")
        server = Hiventd(workdir, API_KEY, None, ["--max-pending", "1"])
        try:
            env = self.env(port=server.port)
            consumer = self.start_consumer("sample.full", "full-svc", 1, env=env)
            consumer.proc.send_signal(signal.SIGINT)
            code, _, err = consumer.finish(10)
            self.assertEqual(code, EXIT_OK, err)
            filler = self.run_cli(["emit", "sample.full", "--version", "1", "--payload", "{}"],
                                  env=env)
            self.assert_exit(filler, EXIT_OK)

            records = [
                {"name": "sample.partial", "payload": {"n": 0}, "meta": {"version": 1}},
                {"name": "sample.full", "payload": {"n": 1}, "meta": {"version": 1}},
                {"name": "sample.partial", "payload": {"n": 2}, "meta": {"version": 1}},
            ]
            path = self.write_records("partial.jsonl", records)
            failed_out = self.temp_path("failed.jsonl")
            result = self.run_cli(["replay", path, "--failed-out", failed_out], env=env)
        finally:
            server.stop()
        self.assert_exit(result, EXIT_FAILED)
        self.assertIn("3 events, 2 published, 1 failed, 0 not sent", result.stderr)
        self.assertIn("failed events (index, name, reason)", result.stderr)
        self.assertIn("  1  sample.full  ", result.stderr)
        with open(failed_out, encoding="utf-8") as f:
            written = [json.loads(line) for line in f]
        self.assertEqual(written, [records[1]])

    def test_dry_run(self):
        records = [{"name": "sample.dry", "payload": {}, "meta": {"version": 1}}] * 4
        path = self.write_records("dry.jsonl", records)
        result = self.run_cli(["replay", "--dry-run", path], env=self.env(port=closed_port()))
        self.assert_exit(result, EXIT_OK)
        self.assertEqual(result.stdout.strip(), "4 events")

    def test_unreachable_server_lists_not_sent(self):
        records = [{"name": "sample.down", "payload": {"n": i}, "meta": {"version": 1}}
                   for i in range(5)]
        path = self.write_records("down.jsonl", records)
        failed_out = self.temp_path("down-failed.jsonl")
        result = self.run_cli(["replay", path, "--failed-out", failed_out],
                              env=self.env(port=closed_port()))
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertIn("0 published", result.stderr)
        self.assertIn("hiventd is running", result.stderr)
        with open(failed_out, encoding="utf-8") as f:
            self.assertEqual(len(f.readlines()), 5)

    def test_sigint_stops_and_lists_unsent(self):
        records = [{"name": "sample.interrupt", "payload": {"n": i}, "meta": {"version": 1}}
                   for i in range(20000)]
        path = self.write_records("interrupt.jsonl", records)
        failed_out = self.temp_path("interrupt-rest.jsonl")
        replay = Background([HIVENT, "replay", "--window", "1", "--progress", "--failed-out",
                             failed_out, path], self.env())
        # The progress bar appears once sending started; text mode reads its
        # carriage returns as line ends.
        # Checking 20,000 records first takes a while under sanitizers on a
        # loaded machine, so the wait is the CLI's whole time limit.
        self.assertTrue(replay.wait_for_stderr("events/s", timeout=CLI_TIMEOUT),
                        "replay never drew progress")
        replay.proc.send_signal(signal.SIGINT)
        code, out, err = replay.finish(30)
        self.assertEqual(code, EXIT_FAILED, err)
        self.assertIn("interrupted by signal 2", err)
        summary = [line for line in err.splitlines() if "published" in line][0]
        published = int(summary.split(", ")[1].split()[0])
        not_sent = int(summary.split(", ")[3].split()[0])
        self.assertGreater(not_sent, 0)
        self.assertEqual(published + not_sent, len(records), summary)
        with open(failed_out, encoding="utf-8") as f:
            rest = [json.loads(line) for line in f]
        self.assertEqual(rest, records[published:])

    def test_missing_file(self):
        result = self.run_cli(["replay", self.temp_path("absent.jsonl")])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("cannot open", result.stderr)


class ErrorsTest(CliTestCase):
    def test_emit_bad_json(self):
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", '{"a": 1,}'])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("invalid JSON payload", result.stderr)
        self.assertIn("column", result.stderr)

    def test_emit_payload_not_object(self):
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "[1, 2]"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("expected a JSON object", result.stderr)

    def test_emit_invalid_utf8_payload(self):
        result = subprocess.run([HIVENT, "emit", "x.y", "--version", "1"],
                                env=self.env(), input=b'{"a": "\xff\xfe"}',
                                capture_output=True, timeout=CLI_TIMEOUT)
        self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)

    def test_emit_missing_version(self):
        result = self.run_cli(["emit", "x.y", "--payload", "{}"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("missing --version", result.stderr)

    def test_emit_invalid_version(self):
        for version in ("0", "-1", "abc", "1.5", "99999999999999999999"):
            with self.subTest(version=version):
                result = self.run_cli(["emit", "x.y", "--version", version,
                                       "--payload", "{}"])
                self.assert_exit(result, EXIT_USAGE)
                self.assertIn("invalid --version", result.stderr)

    def test_unreachable_server(self):
        env = self.env(port=closed_port())
        started = time.monotonic()
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}"], env=env)
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertLess(time.monotonic() - started, 15.0)
        self.assertIn("127.0.0.1:%s" % env["HIVENT_SERVER_PORT"], result.stderr)
        self.assertIn("check that hiventd is running", result.stderr)
        self.assertEqual(result.stdout, "")

    def test_unreachable_server_other_commands(self):
        env = self.env(port=closed_port(), admin_key=ADMIN_KEY)
        commands = [["consume", "x.y", "--name", "s", "--partitions", "1"],
                    ["status"], ["dlq", "list", "s"]]
        for args in commands:
            with self.subTest(command=args[0]):
                result = self.run_cli(args, env=env)
                self.assert_exit(result, EXIT_CONNECTION)
                self.assertIn("hiventd is running", result.stderr)

    def test_silent_server_times_out(self):
        # The kernel completes TCP handshakes for the backlog, but nothing
        # ever answers the WebSocket upgrade.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            env = self.env(port=silent.getsockname()[1])
            started = time.monotonic()
            result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}",
                                   "--timeout", "1500"], env=env)
        self.assert_exit(result, EXIT_TIMED_OUT)
        self.assertLess(time.monotonic() - started, 10.0)
        self.assertIn("no delivery report", result.stderr)
        self.assertIn("--timeout", result.stderr)

    def test_wrong_api_key(self):
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}"],
                              env=self.env(api_key="wrong-key"))
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertIn("rejected the API key", result.stderr)
        self.assertIn("--api-key-file", result.stderr)
        self.assertNotIn("wrong-key", result.stderr)

    def test_missing_api_key(self):
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}"],
                              env=self.env(api_key=None))
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertIn("rejected the API key", result.stderr)

    def test_wrong_api_key_consume(self):
        result = self.run_cli(["consume", "x.y", "--name", "s", "--partitions", "1"],
                              env=self.env(api_key="wrong-key"))
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertIn("rejected the API key", result.stderr)

    def test_wrong_admin_key(self):
        result = self.run_cli(["dlq", "list", "anything"], env=self.env(admin_key="wrong"))
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertIn("rejected the admin key (HTTP 401)", result.stderr)
        self.assertIn("--admin-key-file", result.stderr)

    def test_key_on_command_line_rejected(self):
        for key in ("server.api_key", "admin_key"):
            with self.subTest(key=key):
                result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}",
                                       "-X", key + "=secret"])
                self.assert_exit(result, EXIT_USAGE)
                self.assertIn("process listings", result.stderr)

    def test_invalid_set_value(self):
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}",
                               "-X", "server.port=70000"])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("server.port", result.stderr)
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}",
                               "-X", "no.such.key=1"])
        self.assert_exit(result, EXIT_USAGE)

    def test_missing_key_file(self):
        result = self.run_cli(["emit", "x.y", "--version", "1", "--payload", "{}",
                               "--api-key-file", self.temp_path("absent")])
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("cannot read the API key", result.stderr)


class ConfigTest(CliTestCase):
    def write_config(self, text, mode=0o600):
        xdg = self.temp_path("xdg")
        os.makedirs(os.path.join(xdg, "hivent"), exist_ok=True)
        write_file(os.path.join(xdg, "hivent", "config"), text, mode)
        return xdg

    def emit_with(self, env, *args):
        return self.run_cli(["emit", "cfg.test", "--version", "1", "--payload", "{}"]
                            + list(args), env=env)

    def test_api_key_file_flag(self):
        env = self.env(api_key=None)
        self.assert_exit(self.emit_with(env, "--api-key-file", self.api_key_file), EXIT_OK)

    def test_api_key_from_config_file(self):
        xdg = self.write_config("# test\nserver.api_key = %s\n" % API_KEY)
        env = self.env(api_key=None, XDG_CONFIG_HOME=xdg)
        result = self.emit_with(env)
        self.assert_exit(result, EXIT_OK)
        self.assertNotIn("warning", result.stderr)

    def test_default_config_path_under_home(self):
        path = os.path.join(self.home, ".config", "hivent")
        os.makedirs(path, exist_ok=True)
        write_file(os.path.join(path, "config"), 'server.api_key = "%s"\n' % API_KEY)
        try:
            self.assert_exit(self.emit_with(self.env(api_key=None)), EXIT_OK)
        finally:
            os.remove(os.path.join(path, "config"))

    def test_environment_overrides_config_file(self):
        xdg = self.write_config("server.port = %d\nserver.api_key = wrong\n" % closed_port())
        self.assert_exit(self.emit_with(self.env(XDG_CONFIG_HOME=xdg)), EXIT_OK)

    def test_flags_override_environment(self):
        env = self.env(port=closed_port(), api_key="wrong")
        result = self.emit_with(env, "--port", str(self.server.port),
                                "--api-key-file", self.api_key_file)
        self.assert_exit(result, EXIT_OK)

    def test_config_file_used_without_environment(self):
        xdg = self.write_config("server.port = %d\n" % closed_port())
        env = self.env(XDG_CONFIG_HOME=xdg)
        del env["HIVENT_SERVER_PORT"]
        self.assert_exit(self.emit_with(env), EXIT_CONNECTION)

    def test_explicit_config_flag(self):
        path = write_file(self.temp_path("explicit.conf"),
                          "server.port = %d\nserver.api_key = %s\n"
                          % (self.server.port, API_KEY))
        env = self.env(api_key=None)
        del env["HIVENT_SERVER_PORT"]
        self.assert_exit(self.emit_with(env, "--config", path), EXIT_OK)

    def test_missing_explicit_config(self):
        result = self.emit_with(self.env(), "--config", self.temp_path("absent.conf"))
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("cannot read config file", result.stderr)

    def test_bad_config_line(self):
        xdg = self.write_config("server.port = 4000\nthis line is wrong\n")
        result = self.emit_with(self.env(XDG_CONFIG_HOME=xdg))
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("config:2: expected 'key = value'", result.stderr)

    def test_unknown_key_names_installed_docs(self):
        cmake = os.environ.get("HIVENT_CMAKE")
        build_root = os.environ.get("HIVENT_BUILD_ROOT")
        if not cmake or not build_root:
            self.skipTest("HIVENT_CMAKE and HIVENT_BUILD_ROOT are set by ctest only")
        prefix = tempfile.mkdtemp(dir=self.workdir, prefix="install-")
        install = subprocess.run([cmake, "--install", build_root, "--prefix", prefix],
                                 capture_output=True, text=True, timeout=120)
        self.assertEqual(install.returncode, 0, install.stderr)
        docs = os.path.join(prefix, "share", "doc", "hivent", "configuration.md")
        self.assertTrue(os.path.isfile(docs), "cmake --install did not install " + docs)
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(docs), "cli.md")))

        result = subprocess.run([os.path.join(prefix, "bin", "hivent"), "emit", "cfg.test",
                                 "--version", "1", "--payload", "{}", "-X", "server.prot=1"],
                                env=self.env(), capture_output=True, text=True,
                                timeout=CLI_TIMEOUT)
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("server.prot", result.stderr)
        self.assertIn("described in %s" % os.path.realpath(docs), result.stderr)

    def test_unknown_config_key(self):
        xdg = self.write_config("server.prot = 4000\n")
        result = self.emit_with(self.env(XDG_CONFIG_HOME=xdg))
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("config:1", result.stderr)
        self.assertIn("server.prot", result.stderr)

    def test_readable_config_with_key_warns(self):
        xdg = self.write_config("server.api_key = %s\n" % API_KEY, mode=0o644)
        result = self.emit_with(self.env(api_key=None, XDG_CONFIG_HOME=xdg))
        self.assert_exit(result, EXIT_OK)
        self.assertIn("chmod 600", result.stderr)

    def test_admin_key_sources(self):
        xdg = self.write_config("admin_key = %s\n" % ADMIN_KEY)
        sources = {
            "config file": (self.env(XDG_CONFIG_HOME=xdg), []),
            "environment": (self.env(admin_key=ADMIN_KEY), []),
            "flag": (self.env(admin_key="wrong"), ["--admin-key-file", self.admin_key_file]),
        }
        # The service exists once a consumer joined it.
        consumer = self.start_consumer("cfg.admin", "cfg-admin", 1)
        try:
            for source, (env, args) in sources.items():
                with self.subTest(source=source):
                    result = self.run_cli(["dlq", "list", "cfg-admin"] + args, env=env)
                    self.assert_exit(result, EXIT_OK)
        finally:
            consumer.proc.send_signal(signal.SIGINT)
            consumer.finish(10)

    def test_key_not_in_process_arguments(self):
        env = self.env(api_key=None)
        proc = Background([HIVENT, "consume", "cfg.ps", "--name", "cfg-ps", "--partitions",
                           "1", "-v", "--api-key-file", self.api_key_file], env)
        try:
            self.assertTrue(proc.wait_for_stderr("connected: consuming"))
            with open("/proc/%d/cmdline" % proc.proc.pid, "rb") as f:
                cmdline = f.read()
            self.assertIn(b"--api-key-file", cmdline)
            self.assertNotIn(API_KEY.encode(), cmdline)
        finally:
            proc.proc.send_signal(signal.SIGINT)
            proc.finish(10)


class DlqTest(CliTestCase):
    def reject(self, topic, service, partitions, count, reason="rejected by test"):
        """Runs the helper that rejects @count events; returns it once joined."""
        helper = subprocess.Popen([REJECT_CONSUMER, str(self.server.port), topic, service,
                                   str(partitions), str(count), reason],
                                  env=self.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = helper.stdout.readline()
        if line.strip() != "ready":
            helper.kill()
            out, err = helper.communicate(timeout=10)
            self.fail("reject_consumer did not join event:%s: %s%s" % (topic, line, err))
        return helper

    def finish_helper(self, helper):
        out, err = helper.communicate(timeout=30)
        self.assertEqual(helper.returncode, 0, err)
        return out.split()

    def dlq(self, *args, env=None):
        return self.run_cli(["dlq"] + list(args),
                            env=env if env is not None else self.env(admin_key=ADMIN_KEY))

    def list_entries(self, service, *args):
        result = self.dlq("list", service, *args)
        self.assert_exit(result, EXIT_OK)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def wait_for_dead_letters(self, service, count, timeout=10.0):
        """Lists the dead letters of @service once there are @count of them.

        A rejection is stored after the consumer sent it, so the list may
        lag behind the consumer for a moment."""
        deadline = time.monotonic() + timeout
        entries = self.list_entries(service)
        while len(entries) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            entries = self.list_entries(service)
        return entries

    def make_dead_letters(self, topic, service, partitions, count):
        helper = self.reject(topic, service, partitions, count, "payment declined")
        sent = [self.emit(topic, {"n": i}, key="key-%d" % i) for i in range(count)]
        rejected = self.finish_helper(helper)
        self.assertEqual(sorted(rejected), sorted(e["meta"]["uuid"] for e in sent))
        self.assertEqual(len(self.wait_for_dead_letters(service, count)), count)
        return sent

    def test_list_replay_purge(self):
        sent = self.make_dead_letters("payment.failed", "billing", 2, 4)
        entries = self.list_entries("billing")
        self.assertEqual(len(entries), 4)
        self.assertEqual(sorted(e["event"]["meta"]["uuid"] for e in entries),
                         sorted(e["meta"]["uuid"] for e in sent))
        for entry in entries:
            self.assertRegex(entry["queue"], r"^billing:[01]:dead_letter$")
            self.assertEqual(entry["reason"], "payment declined")
            self.assertIsInstance(entry["id"], int)

        per_partition = [self.list_entries("billing", "--partition", str(p)) for p in (0, 1)]
        self.assertEqual(sum(len(p) for p in per_partition), 4)
        for p, part in enumerate(per_partition):
            for entry in part:
                self.assertEqual(entry["queue"], "billing:%d:dead_letter" % p)
        self.assertEqual(len(self.list_entries("billing", "--limit", "1")), 1)

        pretty = self.dlq("list", "billing", "--format", "pretty")
        self.assert_exit(pretty, EXIT_OK)
        self.assertIn("reason  payment declined", pretty.stdout)
        self.assertIn("4 dead letters of billing", pretty.stdout)

        consumer = self.start_consumer("payment.failed", "billing", 2, "--count", "4")
        replay = self.dlq("replay", "billing")
        self.assert_exit(replay, EXIT_OK)
        self.assertIn("replayed 4 dead letters of billing", replay.stdout)
        code, out, err = consumer.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual(sorted(json.loads(l)["meta"]["uuid"] for l in out.splitlines()),
                         sorted(e["meta"]["uuid"] for e in sent))
        self.assertEqual(self.list_entries("billing"), [])

        self.make_dead_letters("payment.failed", "billing", 2, 3)
        purge = self.dlq("purge", "billing", "--format", "json")
        self.assert_exit(purge, EXIT_OK)
        self.assertEqual(json.loads(purge.stdout), {"purged": 3})
        self.assertEqual(self.list_entries("billing"), [])

    def test_events_format_feeds_replay(self):
        sent = self.make_dead_letters("refund.failed", "refunds", 1, 2)
        result = self.dlq("list", "refunds", "--format", "events")
        self.assert_exit(result, EXIT_OK)
        events = [json.loads(line) for line in result.stdout.splitlines()]
        self.assertEqual([e["meta"]["uuid"] for e in events],
                         [e["meta"]["uuid"] for e in sent])
        consumer = self.start_consumer("refund.failed", "refund-audit", 1, "--count", "2")
        replay = self.run_cli(["replay", "-"], stdin=result.stdout)
        self.assert_exit(replay, EXIT_OK)
        code, out, err = consumer.finish()
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual([json.loads(l)["payload"] for l in out.splitlines()],
                         [{"n": 0}, {"n": 1}])

    def test_unknown_service(self):
        result = self.dlq("list", "no-such-service")
        self.assert_exit(result, EXIT_REJECTED)
        self.assertIn("HTTP 404", result.stderr)

    def test_partition_out_of_range(self):
        self.make_dead_letters("fee.failed", "fees", 2, 1)
        result = self.dlq("replay", "fees", "--partition", "5")
        self.assert_exit(result, EXIT_REJECTED)
        self.assertIn("HTTP 400", result.stderr)

    def test_limit_range_matches_server(self):
        result = self.dlq("list", "billing", "--limit", "10001")
        self.assert_exit(result, EXIT_USAGE)
        self.assertIn("invalid --limit '10001': expected an integer from 1 to 10000",
                      result.stderr)
        self.assertIn("1 to 10000", self.run_cli(["dlq", "--help"]).stdout)
        self.make_dead_letters("limit.failed", "limits", 1, 1)
        self.assertEqual(len(self.list_entries("limits", "--limit", "10000")), 1)

    def test_usage_errors(self):
        for args in (["list"], ["drop", "s"], ["replay", "s", "--limit", "3"],
                     ["list", "s", "--format", "xml"], ["list", "s", "--partition", "-1"]):
            with self.subTest(args=args):
                self.assert_exit(self.dlq(*args), EXIT_USAGE)


class StatusTest(CliTestCase):
    def test_status_pretty(self):
        result = self.run_cli(["status"])
        self.assert_exit(result, EXIT_OK)
        self.assertIn("status   ok", result.stdout)
        self.assertIn("server   http://127.0.0.1:%d" % self.server.port, result.stdout)
        self.assertIn("hivent_connections", result.stdout)

    def test_status_json(self):
        consumer = self.start_consumer("status.probe", "status-svc", 3)
        try:
            result = self.run_cli(["status", "--format", "json"])
        finally:
            consumer.proc.send_signal(signal.SIGINT)
            consumer.finish(10)
        self.assert_exit(result, EXIT_OK)
        status = json.loads(result.stdout)
        self.assertEqual(status["health"]["status"], "ok")
        services = {s["name"]: s for s in status["health"]["services"]}
        self.assertEqual(services["status-svc"]["partition_count"], 3)
        self.assertGreaterEqual(status["metrics"]['hivent_connections{kind="consumer"}'], 1)
        self.assertFalse(any(k.split("{")[0].endswith("_bucket") for k in status["metrics"]))

    def test_status_needs_no_key(self):
        result = self.run_cli(["status"], env=self.env(api_key=None))
        self.assert_exit(result, EXIT_OK)

    def test_status_rejects_arguments(self):
        self.assert_exit(self.run_cli(["status", "extra"]), EXIT_USAGE)
        self.assert_exit(self.run_cli(["status", "--format", "xml"]), EXIT_USAGE)


class TlsTest(CliTestCase):
    """Admin requests over https with a certificate made by openssl.

    curl and the CLI (libcurl) run with their default protocol settings, so
    they offer HTTP/2 in TLS ALPN and the server's choice decides."""

    @classmethod
    def server_args(cls):
        cls.cert = os.path.join(cls.workdir, "server.pem")
        cls.key = os.path.join(cls.workdir, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", cls.key, "-out", cls.cert],
                       check=True, capture_output=True, timeout=60)
        return ["--tls-cert", cls.cert, "--tls-key", cls.key]

    def env(self, *args, **kwargs):
        env = super().env(*args, **kwargs)
        env["HIVENT_SERVER_SECURE"] = "true"
        env["HIVENT_TLS_CA_FILE"] = self.cert
        return env

    def curl(self, *args):
        """Runs curl with its defaults; returns (HTTP status, HTTP version, body)."""
        result = subprocess.run(["curl", "-sS", "--cacert", self.cert,
                                 "-H", "Authorization: Bearer " + ADMIN_KEY,
                                 "-w", "\n%{http_code} %{http_version}"] + list(args),
                                capture_output=True, text=True, timeout=CLI_TIMEOUT)
        self.assertEqual(result.returncode, 0, result.stderr)
        body, _, status_line = result.stdout.rpartition("\n")
        status, version = status_line.split()
        return int(status), version, body

    def test_curl_admin_query(self):
        url = "https://127.0.0.1:%d/admin/dlq?service=no-such-service&limit=5" % self.server.port
        status, version, body = self.curl(url)
        self.assertEqual(version, "1.1", body)
        self.assertEqual(status, 404, body)
        self.assertIn("unknown service no-such-service", body)

    def test_cli_dlq_over_tls(self):
        consumer = self.start_consumer("tls.probe", "tls-billing", 2)
        try:
            listed = self.run_cli(["dlq", "list", "tls-billing", "--partition", "1"],
                                  env=self.env(admin_key=ADMIN_KEY))
            purged = self.run_cli(["dlq", "purge", "tls-billing", "--format", "json"],
                                  env=self.env(admin_key=ADMIN_KEY))
        finally:
            consumer.proc.send_signal(signal.SIGINT)
            consumer.finish(10)
        self.assert_exit(listed, EXIT_OK)
        self.assertEqual(listed.stdout, "")
        self.assert_exit(purged, EXIT_OK)
        self.assertEqual(json.loads(purged.stdout), {"purged": 0})

    def test_unknown_ca_names_tls_cause(self):
        env = self.env()
        env.pop("HIVENT_TLS_CA_FILE")
        env["HIVENT_MAX_RECONNECT_TRIES"] = "1"
        env["HIVENT_RECONNECT_BACKOFF_TIME"] = "50"
        result = self.run_cli(["emit", "tls:probe", "--version", "1", "--payload", "{}"],
                              env=env)
        self.assert_exit(result, EXIT_CONNECTION)
        self.assertIn("HIVENT_ERR_TLS", result.stderr)
        self.assertIn("tls.ca_file", result.stderr)
        self.assertNotIn("check that hiventd is running", result.stderr)


if __name__ == "__main__":
    unittest.main()
