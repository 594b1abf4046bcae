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


class Interrupted(Exception):
    """Raised by the SIGALRM handler of the emit interruption tests."""


@pytest.mark.parametrize("dispatch", ["thread", "manual"])
def test_sync_emit_interrupted_by_signal(own_hiventd, dispatch):
    options = own_hiventd.options(max_reconnect_tries=-1, flush_timeout=0)
    own_hiventd.stop()

    def handler(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, handler)
    client = hivent.Client(options, env=False, dispatch=dispatch)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            client.emit("interrupt:sync", {"n": 1}, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        client.close(timeout=0)
    assert elapsed < 1.0
    assert client.outstanding == 0


EMIT_SCRIPT = textwrap.dedent(
    """
    import sys, time, hivent
    client = hivent.Client(server={"host": "127.0.0.1", "port": int(sys.argv[1])},
                           max_reconnect_tries=-1, reconnect_backoff_time=100,
                           flush_timeout=0, env=False)
    print("ready", flush=True)
    started = time.monotonic()
    try:
        client.emit("interrupt:ctrl-c", {}, timeout=20)
        print("returned", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted {time.monotonic() - started:.3f}", flush=True)
    client.close(timeout=0)
    """
)


def test_sync_emit_interrupted_by_sigint(own_hiventd, tmp_path):
    port = own_hiventd.port
    own_hiventd.stop()
    process = subprocess.Popen([sys.executable, "-c", EMIT_SCRIPT, str(port)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=40)
        elapsed = time.monotonic() - sent
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.startswith("interrupted"), out + err
    assert elapsed < 2.0


def test_sync_emit_timed_out_is_published_once(own_hiventd, unique):
    topic = f"timed-out:{unique}"
    options = own_hiventd.options()
    consumer = consumer_class(topic, f"svc-{unique}")(options, env=False, expected=2)
    run_until_connected(consumer)
    with hivent.Client(options, env=False) as client:
        own_hiventd.stop()
        started = time.monotonic()
        with pytest.raises(hivent.TimedOut, match="within 500 ms"):
            client.emit(topic, {"n": 1}, timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert client.outstanding == 0
        own_hiventd.start()
        # The queued event goes out after the reconnect; nobody waits for it.
        assert client.flush(10) == 0
        later = client.emit(topic, {"n": 2}, timeout=20)
    consumer.run(timeout=10)
    payloads = [event.payload for event in consumer.events]
    assert payloads == [{"n": 1}, {"n": 2}]
    assert consumer.events[1].uuid == later.uuid


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
