"""Fixtures for the hivent Python tests: a real hiventd on 127.0.0.1 and helpers.

HIVENT_BUILD_DIR names the CMake build directory holding server/hiventd
(default build/ at the repository root).  Each hiventd gets a temporary data directory
and a free port chosen by the server (--listen 127.0.0.1:0 plus
--ready-file).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

import hivent

REPO = Path(__file__).resolve().parents[3]
BUILD_DIR = Path(os.environ.get("HIVENT_BUILD_DIR", str(REPO / "build")))
HIVENTD = BUILD_DIR / "server" / "hiventd"
API_KEY = "python-test-key"
ADMIN_KEY = "python-admin-key"
START_TIMEOUT = 15.0


class Hiventd:
    """A hiventd process on 127.0.0.1 with its own data directory."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = 0
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        """Start hiventd (on the previous port after a stop) and wait until it listens."""
        if not HIVENTD.exists():
            pytest.fail(f"hiventd not found at {HIVENTD}; build it with cmake or set "
                        "HIVENT_BUILD_DIR")
        ready = self.data_dir / "ready"
        if ready.exists():
            ready.unlink()
        command = [
            str(HIVENTD), "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}", "--ready-file", str(ready),
            "--api-key", API_KEY, "--admin-key", ADMIN_KEY,
            "--heartbeat-interval", "1000", "--log-level", "info",
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"hiventd exited with {self.process.returncode}; log:\n"
                            + self.log_path.read_text(errors="replace")[-4000:])
            text = ready.read_text() if ready.exists() else ""
            if text.endswith("\n"):
                self.port = int(text)
                return
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"hiventd did not write {ready} within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def options(self, **extra: Any) -> Dict[str, Any]:
        """Return client options for this server."""
        options: Dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": self.port, "api_key": API_KEY},
            "reconnect_backoff_time": 100,
            "reconnect_backoff_max": 500,
            "max_reconnect_tries": 20,
        }
        options.update(extra)
        return options

    def admin(self, method: str, path: str) -> Dict[str, Any]:
        """Call the admin HTTP interface and return the decoded JSON body."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def dead_letters(self, service: str) -> List[Dict[str, Any]]:
        return self.admin("GET", f"/admin/dlq?service={service}")["events"]


@pytest.fixture(scope="session")
def hiventd(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("hiventd")
    server = Hiventd(base / "data", base / "hiventd.log")
    server.data_dir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_hiventd(tmp_path: Path):
    """A hiventd for one test, which may stop and restart it."""
    server = Hiventd(tmp_path / "data", tmp_path / "hiventd.log")
    server.data_dir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for event and service names, so tests never share queues."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch):
    """Remove HIVENT_* variables of the calling shell and reset configure() and the default client."""
    def remove_hivent_variables() -> None:
        for name in list(os.environ):
            if name.startswith("HIVENT_") and name not in ("HIVENT_BUILD_DIR",):
                monkeypatch.delenv(name)

    remove_hivent_variables()
    yield
    hivent.close(timeout=2)
    # configure() reads the environment, so the test's variables go first.
    remove_hivent_variables()
    hivent.configure()


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll @condition until it returns a true value; fail after @timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


class Collector(hivent.Consumer):
    """Consumer base for tests: stores events and stops after ``expected`` of them."""

    topic = "*"
    name = "collector"
    partition_count = 1

    def __init__(self, *args: Any, expected: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: List[hivent.Event] = []
        self.expected = expected

    def process(self, event: hivent.Event) -> Any:
        self.events.append(event)
        if len(self.events) >= self.expected:
            self.stop()


def consumer_class(topic: str, service: str, partitions: int = 1,
                   base: type = Collector, **attrs: Any) -> type:
    """Return a Collector subclass for @topic and @service."""
    attrs.update(topic=topic, name=service, partition_count=partitions)
    return type(f"Consumer_{service}", (base,), attrs)


def run_until_connected(consumer: hivent.Consumer, timeout: float = 10.0) -> None:
    """Start @consumer and poll until it joined its channel."""
    consumer.start()
    deadline = time.monotonic() + timeout
    while consumer.state != "connected":
        if time.monotonic() > deadline:
            pytest.fail(f"consumer {consumer.name} did not connect: state {consumer.state}")
        consumer.poll(0.05)


def webhook_payloads() -> List[Dict[str, Any]]:
    """Return the GitHub webhook example payloads (329 real payloads).

    Looked up at HIVENT_WEBHOOKS_JSON, then in the data directory beside the
    repository; the tests that need them skip when neither exists.
    """
    candidates = [
        os.environ.get("HIVENT_WEBHOOKS_JSON", ""),
        str(REPO / "tests" / "data" / "github-webhooks" / "index.json"),
        str(REPO.parent / "shared" / "data" / "github-webhooks" / "index.json"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            index = json.loads(Path(candidate).read_text())
            return [payload for entry in index for payload in entry["examples"]]
    pytest.skip("GitHub webhook payloads not found; set HIVENT_WEBHOOKS_JSON to index.json")
