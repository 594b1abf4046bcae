"""Process-level behaviour: fork(), signals, the GIL while waiting, logging."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import hivent

from conftest import consumer_class, run_until_connected


def run_in_child(body) -> dict:
    """Fork, run @body() in the child, and return the dict it returned (as JSON)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            result = body()
            os.write(write_fd, json.dumps(result).encode())
            code = 0
        except BaseException as exc:  # report everything to the parent
            os.write(write_fd, json.dumps({"child_error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b"{}")
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


def test_fork_child_client_handling(hiventd, unique):
    parent_client = hivent.Client(hiventd.options(), env=False)
    parent_client.emit(f"fork:{unique}", {"from": "parent"})
    hivent.configure(hiventd.options(), env=False)
    hivent.emit(f"fork:{unique}", {"from": "parent default"})

    def child():
        result = {}
        try:
            parent_client.emit(f"fork:{unique}", {"from": "inherited"})
            result["inherited"] = "no error"
        except hivent.Forked as exc:
            result["inherited"] = "Forked"
            result["message"] = str(exc)
        with hivent.Client(hiventd.options(), env=False) as fresh:
            result["fresh"] = fresh.emit(f"fork:{unique}", {"from": "child"}).payload
        result["default"] = hivent.emit(f"fork:{unique}", {"from": "child default"}).payload
        parent_client.close()
        return result

    result = run_in_child(child)
    assert result["inherited"] == "Forked"
    assert "fork()" in result["message"]
    assert result["fresh"] == {"from": "child"}
    assert result["default"] == {"from": "child default"}
    # The parent's client keeps working after the fork.
    assert parent_client.emit(f"fork:{unique}", {"from": "parent again"}).payload
    parent_client.close()


def test_fork_inherited_consumer_fails(hiventd, unique):
    consumer = consumer_class(f"forkc:{unique}", f"svc-{unique}")(hiventd.options(), env=False)
    run_until_connected(consumer)

    def child():
        try:
            consumer.poll(0)
        except hivent.Forked:
            return {"poll": "Forked"}
        return {"poll": "no error"}

    assert run_in_child(child) == {"poll": "Forked"}
    consumer.close()


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import sys, hivent
    class Idle(hivent.Consumer):
        topic = "signal:test"
        name = "signal-svc"
        partition_count = 1
        def process(self, event):
            pass
    consumer = Idle(server={"host": "memory"}, env=False)
    consumer.start()
    print("ready", flush=True)
    consumer.run()
    print("stopped", consumer.closed, flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_cleanly_on_signal(signum, tmp_path):
    process = subprocess.Popen([sys.executable, "-c", CONSUMER_SCRIPT], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # readline() blocks; the watchdog bounds it if the child hangs.
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip() == "stopped True"
    assert elapsed < 2.0


def test_run_releases_gil_while_waiting():
    consumer = consumer_class("gil:test", "gil-svc")(server={"host": "memory"}, env=False)
    consumer.start()
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        consumer.run(timeout=0.5)
    finally:
        stop.set()
        thread.join()
        consumer.close()
    # A thread starved of the GIL would only run in the 5 ms switch slots.
    assert counter[0] > 100000


def test_core_logs_reach_logging(own_hiventd, caplog):
    port = own_hiventd.port
    own_hiventd.stop()
    options = {"server": {"host": "127.0.0.1", "port": port}, "max_reconnect_tries": 1,
               "reconnect_backoff_time": 50, "log_level": "debug"}
    with caplog.at_level(logging.DEBUG, logger="hivent"):
        client = hivent.Client(options, env=False)
        deadline = time.monotonic() + 10
        while client.state != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
        client.close(timeout=1)
    assert client.state == "closed"
    hivent_records = [r for r in caplog.records if r.name == "hivent"]
    assert any(r.levelno >= logging.WARNING for r in hivent_records), caplog.text
    assert any("state failed" in r.getMessage() for r in hivent_records), caplog.text
