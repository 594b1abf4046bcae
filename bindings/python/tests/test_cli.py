"""The python -m hivent command line against a real hiventd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from conftest import API_KEY


def cli_env(hiventd) -> dict:
    env = dict(os.environ)
    env.update(HIVENT_SERVER_HOST="127.0.0.1", HIVENT_SERVER_PORT=str(hiventd.port),
               HIVENT_SERVER_API_KEY=API_KEY, HIVENT_CLIENT_ID="py-cli")
    return env


def test_cli_emit_then_consume(hiventd, unique, tmp_path):
    env = cli_env(hiventd)
    topic = f"cli:{unique}"
    consume = subprocess.Popen(
        [sys.executable, "-m", "hivent", "consume", topic, f"svc-{unique}", "--count", "1",
         "--timeout", "20"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # let the consumer join before the event is emitted
        emitted = subprocess.run(
            [sys.executable, "-m", "hivent", "emit", topic, '{"id": 7, "tags": ["a"]}',
             "--version", "2", "--key", "k-7"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert emitted.returncode == 0, emitted.stderr
        out, err = consume.communicate(timeout=30)
    finally:
        if consume.poll() is None:
            consume.kill()
            consume.wait()
    assert consume.returncode == 0, err
    published = json.loads(emitted.stdout)
    received = json.loads(out.splitlines()[0])
    assert published["payload"] == {"id": 7, "tags": ["a"]}
    assert published["meta"]["producer"] == "py-cli"
    assert received["payload"] == published["payload"]
    assert received["meta"] == published["meta"]
    assert received["queue"] == f"svc-{unique}:0"


def test_cli_emit_reports_errors(hiventd, tmp_path):
    env = cli_env(hiventd)
    result = subprocess.run([sys.executable, "-m", "hivent", "emit", "", "{}"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "HIVENT_ERR_INVALID_ARG" in result.stderr


def test_cli_worker_stops_on_sigterm(hiventd, unique, tmp_path):
    (tmp_path / "app_consumers.py").write_text(textwrap.dedent(f"""
        import hivent
        class Audit(hivent.Consumer):
            topic = "worker:{unique}"
            name = "svc-{unique}"
            partition_count = 2
            def process(self, event):
                print("processed", event.payload["n"], flush=True)
    """))
    env = cli_env(hiventd)
    worker = subprocess.Popen([sys.executable, "-m", "hivent", "worker", "app_consumers:Audit"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    # readline() below blocks; the watchdog bounds it if the worker hangs.
    watchdog = threading.Timer(60, worker.kill)
    watchdog.start()
    try:
        time.sleep(1.0)
        for n in range(3):
            subprocess.run([sys.executable, "-m", "hivent", "emit", f"worker:{unique}",
                            json.dumps({"n": n})], cwd=tmp_path, env=env, check=True,
                           capture_output=True, timeout=30)
        lines = []
        deadline = time.monotonic() + 15
        while len(lines) < 3 and time.monotonic() < deadline:
            lines.append(worker.stdout.readline().strip())
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert sorted(lines) == ["processed 0", "processed 1", "processed 2"]
