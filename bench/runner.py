#!/usr/bin/env python3
"""Run the Hivent benchmark suite beside Redis and NATS and write the report.

Started by bench/run.sh, which builds the programs first.  Every server
(hiventd, redis-server, nats-server) is started here on 127.0.0.1 with a
free port and a temporary directory, and stopped at the end.  Benchmarks
report; a failing or missing part becomes a note in the report, and the
exit status is 0 unless the harness itself breaks.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN_PYTHON = "/usr/bin/python3"


def log(message):
    print("bench: " + message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc, timeout=30.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def command_text(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)


class Hiventd:
    """One hiventd with its own temporary data directory."""

    def __init__(self, build, work, extra=()):
        self.binary = os.path.join(build, "server", "hiventd")
        self.work = work
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.dir = None

    def argv(self, data_dir="DATA_DIR", ready="READY_FILE"):
        return [self.binary, "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                "--ready-file", ready, "--log-level", "warning"] + self.extra

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="hiventd-", dir=self.work)
        ready = os.path.join(self.dir, "port")
        logf = open(os.path.join(self.dir, "hiventd.log"), "w")
        self.proc = subprocess.Popen(self.argv(os.path.join(self.dir, "data"), ready),
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with open(ready) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.close()
        raise RuntimeError("hiventd did not start; log: %s" % self.log_tail())

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "hiventd.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def close(self):
        stop_process(self.proc)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __exit__(self, *exc):
        self.close()


class Redis:
    """redis-server with appendonly yes and appendfsync everysec."""

    def __init__(self, work):
        self.work = work
        self.proc = None
        self.port = None

    def argv(self, port="PORT", data_dir="DATA_DIR"):
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", data_dir,
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--protected-mode", "no", "--daemonize", "no"]

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=self.work)
        self.port = free_port()
        logf = open(os.path.join(self.dir, "redis.log"), "w")
        self.proc = subprocess.Popen(self.argv(self.port, self.dir), stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()
        if not wait_for_port(self.port, self.proc):
            self.__exit__()
            raise RuntimeError("redis-server did not start")
        return self

    def flush(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], capture_output=True,
                       timeout=60)

    def __exit__(self, *exc):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Nats:
    """nats-server with JetStream enabled (file storage in a temporary directory)."""

    def __init__(self, work):
        self.work = work
        self.proc = None
        self.port = None

    def argv(self, port="PORT", store="STORE_DIR"):
        return ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store]

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="nats-", dir=self.work)
        self.port = free_port()
        logf = open(os.path.join(self.dir, "nats.log"), "w")
        self.proc = subprocess.Popen(self.argv(self.port, self.dir), stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()
        if not wait_for_port(self.port, self.proc):
            self.__exit__()
            raise RuntimeError("nats-server did not start")
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_result(text):
    """Return the key=value pairs of the last RESULT line, numbers as floats."""
    found = None
    for line in text.splitlines():
        if line.startswith("RESULT "):
            found = line
    if found is None:
        return None
    out = {}
    for token in found.split()[1:]:
        key, _, value = token.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def parse_binding_rate(text):
    """Return R from a line '...= R events/s ...', as the binding scripts print."""
    match = None
    for m in re.finditer(r"=\s*([0-9.]+)\s*events/s", text):
        match = m
    return {"rate": float(match.group(1))} if match else None


def parse_redis_csv(text):
    """Return rps and latency percentiles from redis-benchmark --csv output."""
    rows = [line for line in text.splitlines() if line.startswith('"LPUSH"')]
    if not rows:
        return None
    fields = [f.strip('"') for f in rows[-1].split(",")]
    names = ["test", "rate", "avg_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    out = {}
    for name, value in zip(names[1:], fields[1:]):
        out[name] = float(value)
    out["p50_us"] = out["p50_ms"] * 1000
    out["p99_us"] = out["p99_ms"] * 1000
    return out


class Suite:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.bench_bin = os.path.join(self.build, "bench")
        self.work = tempfile.mkdtemp(prefix="hivent-bench-")
        self.work_created = self.work
        self.quick = args.quick
        self.runs = 1 if args.quick else args.runs
        self.results = {}      # key -> list of result dicts
        self.commands = {}     # key -> command text
        self.labels = {}       # key -> human label
        self.notes = []
        self.env = dict(os.environ)
        self.env.pop("HIVENT_SERVER_PORT", None)
        self.env["HIVENT_BUILD_DIR"] = self.build

    # ---- running ----

    def run(self, key, label, argv, parser=parse_result, timeout=300, env=None,
            command_shown=None, events=None):
        """Run one measurement and store its parsed result under @key.

        With @events, the result also gets cpu_us_per_event: the user plus
        system CPU time of the benchmark process (not of the server) per event.
        """
        self.labels[key] = label
        self.commands.setdefault(key, command_shown or command_text(argv))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  env=env or self.env)
        except subprocess.TimeoutExpired:
            self.note("%s: timed out after %d s" % (label, timeout))
            return None
        except OSError as e:
            self.note("%s: could not start %s: %s" % (label, argv[0], e))
            return None
        result = parser(proc.stdout)
        if result is None or proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            self.note("%s: exit status %d%s" % (label, proc.returncode,
                                                 ("; " + " | ".join(tail)) if tail else ""))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result is not None and events:
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            result["cpu_us_per_event"] = cpu * 1e6 / events
        if result is not None:
            self.results.setdefault(key, []).append(result)
            log("%s: %s" % (label, " ".join("%s=%s" % (k, v) for k, v in result.items()
                                             if k in ("rate", "p50_us", "p99_us",
                                                      "kib_per_handle", "kib_per_connection",
                                                      "cpu_us_per_event",
                                                      "processed"))))
        return result

    def note(self, text):
        log("note: " + text)
        self.notes.append(text)

    def stat(self, key, field):
        values = [r[field] for r in self.results.get(key, []) if isinstance(r.get(field), float)]
        if not values:
            return None
        return min(values), statistics.median(values), max(values), len(values)

    def median(self, key, field):
        s = self.stat(key, field)
        return s[1] if s else None

    # ---- hivent benchmarks ----

    def emit_counts(self, size):
        if self.quick:
            return 5000 if size < 4096 else 1000
        return 200000 if size < 4096 else 30000

    def bench_hivent_emit(self):
        prog = os.path.join(self.bench_bin, "hvbench_emit")
        configs = [("full", [])]
        if not self.quick:
            configs.append(("normal", ["--sync", "normal"]))
        for sync_name, extra in configs:
            for size in (64, 256, 4096):
                for producers in (1, 4):
                    if sync_name == "normal" and size != 256:
                        continue
                    count = self.emit_counts(size)
                    key = "hv_emit_%s_%d_%d" % (sync_name, size, producers)
                    label = "hiventd async emit, sync=%s, %d B, %d producer%s" % (
                        sync_name, size, producers, "s" if producers > 1 else "")
                    for _ in range(self.runs):
                        with Hiventd(self.build, self.work, extra) as hd:
                            argv = [prog, "--port", str(hd.port), "--mode", "async",
                                    "--producers", str(producers), "--size", str(size),
                                    "--count", str(count)]
                            shown = command_text(hd.argv()) + " &\n" + command_text(
                                argv[:2] + ["PORT"] + argv[3:])
                            self.run(key, label, argv, command_shown=shown)

    def bench_hivent_sync(self):
        prog = os.path.join(self.bench_bin, "hvbench_emit")
        count = 300 if self.quick else 5000
        configs = [("full", [])] + ([] if self.quick else [("normal", ["--sync", "normal"])])
        for sync_name, extra in configs:
            key = "hv_sync_%s" % sync_name
            for _ in range(self.runs):
                with Hiventd(self.build, self.work, extra) as hd:
                    argv = [prog, "--port", str(hd.port), "--mode", "sync", "--size", "256",
                            "--count", str(count)]
                    shown = command_text(hd.argv()) + " &\n" + command_text(
                        argv[:2] + ["PORT"] + argv[3:])
                    self.run(key, "hiventd sync emit, sync=%s, 256 B" % sync_name, argv,
                             command_shown=shown)

    def bench_hivent_consume(self):
        prog = os.path.join(self.bench_bin, "hvbench_consume")
        count = 3000 if self.quick else 100000
        for consumers in (1, 4):
            for ack in (True, False):
                key = "hv_consume_%d_%s" % (consumers, "ack" if ack else "noack")
                label = "hiventd consume, %d consumer%s, %s" % (
                    consumers, "s" if consumers > 1 else "",
                    "acknowledged" if ack else "consumer.ack = false")
                for _ in range(self.runs):
                    with Hiventd(self.build, self.work) as hd:
                        argv = [prog, "--port", str(hd.port), "--mode", "throughput",
                                "--consumers", str(consumers), "--count", str(count),
                                "--size", "256"] + ([] if ack else ["--no-ack"])
                        shown = command_text(argv[:2] + ["PORT"] + argv[3:])
                        self.run(key, label, argv, command_shown=shown)

    def bench_hivent_e2e(self):
        prog = os.path.join(self.bench_bin, "hvbench_consume")
        count = 500 if self.quick else 10000
        for _ in range(self.runs):
            with Hiventd(self.build, self.work) as hd:
                argv = [prog, "--port", str(hd.port), "--mode", "e2e", "--rate", "1000",
                        "--count", str(count), "--size", "256"]
                self.run("hv_e2e", "hiventd end-to-end latency at 1000 events/s", argv,
                         command_shown=command_text(argv[:2] + ["PORT"] + argv[3:]))

    def bench_memory(self):
        handles = os.path.join(self.bench_bin, "hvbench_handles")
        idle = os.path.join(self.bench_bin, "hvbench_idle")
        count = 20 if self.quick else 100
        conns = 1000 if self.quick else 10000
        for _ in range(self.runs):
            with Hiventd(self.build, self.work) as hd:
                argv = [handles, "--port", str(hd.port), "--handles", str(count)]
                self.run("mem_handle", "client memory per handle", argv,
                         command_shown=command_text(argv[:2] + ["PORT"] + argv[3:]))
        for _ in range(self.runs):
            with Hiventd(self.build, self.work) as hd:
                argv = [idle, "--port", str(hd.port), "--pid", str(hd.proc.pid),
                        "--connections", str(conns)]
                self.run("mem_idle", "hiventd memory per idle connection", argv,
                         timeout=600,
                         command_shown=command_text(argv[:2] + ["PORT", "--pid", "PID"]
                                                    + argv[5:]))

    # ---- reference systems ----

    def bench_redis(self):
        if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
            self.note("Redis skipped: redis-server or redis-benchmark not installed "
                      "(Debian packages redis-server, redis-tools)")
            return
        with Redis(self.work) as rd:
            self.commands["redis_server"] = command_text(rd.argv())
            for size in (64, 256, 4096):
                for clients in (1, 4):
                    if self.quick:
                        n = 20000 if size < 4096 else 5000
                    else:
                        n = 1000000 if size < 4096 else 200000
                    key = "redis_lpush_%d_%d" % (size, clients)
                    argv = ["redis-benchmark", "-p", str(rd.port), "-t", "lpush", "-n", str(n),
                            "-d", str(size), "-c", str(clients), "-P", "64", "--csv"]
                    for _ in range(self.runs):
                        rd.flush()
                        self.run(key, "Redis LPUSH pipelined (-P 64), %d B, %d client%s" % (
                            size, clients, "s" if clients > 1 else ""), argv,
                            parser=parse_redis_csv,
                            command_shown=command_text(argv[:2] + ["PORT"] + argv[3:]))
            n = 2000 if self.quick else 50000
            argv = ["redis-benchmark", "-p", str(rd.port), "-t", "lpush", "-n", str(n),
                    "-d", "256", "-c", "1", "-P", "1", "--csv"]
            for _ in range(self.runs):
                rd.flush()
                self.run("redis_sync", "Redis LPUSH not pipelined, 256 B, 1 client", argv,
                         parser=parse_redis_csv,
                         command_shown=command_text(argv[:2] + ["PORT"] + argv[3:]))

    def bench_nats(self):
        prog = os.path.join(self.bench_bin, "natsbench_pub")
        if not shutil.which("nats-server"):
            self.note("NATS skipped: nats-server not installed (Debian package nats-server)")
            return
        if not os.path.exists(prog):
            self.note("NATS skipped: natsbench_pub not built (Debian package libnats-dev)")
            return
        with Nats(self.work) as ns:
            self.commands["nats_server"] = command_text(ns.argv())
            url = "nats://127.0.0.1:%d" % ns.port
            for mode in ("core", "js"):
                for size in (64, 256, 4096):
                    for producers in (1, 4):
                        if mode == "core":
                            n = 20000 if self.quick else 1000000
                        elif size < 4096:
                            n = 3000 if self.quick else 200000
                        else:
                            n = 1000 if self.quick else 50000
                        key = "nats_%s_%d_%d" % (mode, size, producers)
                        argv = [prog, "--url", url, "--mode", mode, "--producers",
                                str(producers), "--size", str(size), "--count", str(n)]
                        for _ in range(self.runs):
                            self.run(key, "NATS %s publish, %d B, %d producer%s" % (
                                "core" if mode == "core" else "JetStream async",
                                size, producers, "s" if producers > 1 else ""), argv,
                                command_shown=command_text(
                                    argv[:2] + ["nats://127.0.0.1:PORT"] + argv[3:]))

    # ---- bindings ----

    def setup_python(self):
        """Return a Python interpreter that imports hivent, or None."""
        for python in (DEBIAN_PYTHON, sys.executable):
            if subprocess.run([python, "-c", "import hivent"], capture_output=True,
                              env=self.env).returncode == 0:
                return python
        venv = os.path.join(self.work, "venv")
        steps = [[DEBIAN_PYTHON, "-m", "venv", "--system-site-packages", venv],
                 [os.path.join(venv, "bin", "pip"), "install", "--quiet", "--no-index",
                  "--no-build-isolation", os.path.join(REPO, "bindings", "python")]]
        for argv in steps:
            proc = subprocess.run(argv, capture_output=True, text=True, env=self.env,
                                  timeout=600)
            if proc.returncode != 0:
                self.note("Python binding not installed: %s failed: %s" % (
                    argv[0], proc.stderr.strip().splitlines()[-1:] or ""))
                return None
        return os.path.join(venv, "bin", "python")

    def setup_ruby(self):
        """Return an environment in which `require "hivent"` works, or None."""
        if not shutil.which("gem"):
            self.note("Ruby binding skipped: ruby/gem not installed")
            return None
        here = os.path.join(REPO, "bindings", "ruby")
        gem_file = os.path.join(self.work, "hivent.gem")
        gems = os.path.join(self.work, "gems")
        steps = [(["gem", "build", "hivent.gemspec", "--output", gem_file], here),
                 (["gem", "install", "--local", "--no-document", "--install-dir", gems,
                   gem_file], self.work)]
        for argv, cwd in steps:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                                  env=self.env, timeout=600)
            if proc.returncode != 0:
                self.note("Ruby binding not installed: %s failed: %s" % (
                    " ".join(argv[:2]), (proc.stderr or proc.stdout).strip()[-300:]))
                return None
        gempath = subprocess.run(["gem", "env", "gempath"], capture_output=True,
                                 text=True).stdout.strip()
        env = dict(self.env, GEM_HOME=gems, GEM_PATH=gems + ":" + gempath)
        return env

    def setup_lua(self):
        module = os.path.join(self.build, "bindings", "lua", "hivent_core.so")
        if not os.path.exists(module) or not shutil.which("lua5.4"):
            self.note("Lua binding skipped: %s not built (configure with -DHIVENT_BUILD_LUA=ON; "
                      "needs swig and liblua5.4-dev) or lua5.4 missing" % module)
            return None
        lua_dir = os.path.join(REPO, "bindings", "lua")
        return dict(self.env,
                    LUA_PATH="%s/?.lua;%s/?/init.lua;;" % (lua_dir, lua_dir),
                    LUA_CPATH="%s/?.so;;" % os.path.dirname(module))

    def bench_bindings(self):
        count = 2000 if self.quick else 20000
        size_args = ["--payload-bytes", "240"]
        c_prog = os.path.join(self.bench_bin, "hvbench_emit")
        plain = os.path.join(REPO, "bench", "plain_python_client.py")
        scripts = {
            "python": os.path.join(REPO, "bench", "python_emit.py"),
            "ruby": os.path.join(REPO, "bench", "ruby_emit.rb"),
            "lua": os.path.join(REPO, "bench", "lua_emit.lua"),
        }
        runners = {}
        if os.path.exists(scripts["python"]):
            python = self.setup_python()
            if python:
                runners["python"] = ([python, scripts["python"]], self.env)
        else:
            self.note("Python binding benchmark skipped: bench/python_emit.py does not exist")
        if os.path.exists(scripts["ruby"]):
            env = self.setup_ruby()
            if env:
                runners["ruby"] = (["ruby", scripts["ruby"]], env)
        else:
            self.note("Ruby binding benchmark skipped: bench/ruby_emit.rb does not exist")
        if os.path.exists(scripts["lua"]):
            env = self.setup_lua()
            if env:
                runners["lua"] = (["lua5.4", scripts["lua"]], env)
        else:
            self.note("Lua binding benchmark skipped: bench/lua_emit.lua does not exist")
        have_plain = all(subprocess.run([DEBIAN_PYTHON, "-c", "import " + m],
                                        capture_output=True).returncode == 0
                         for m in ("websocket", "msgpack"))
        if not have_plain:
            self.note("plain Python client skipped: Debian packages python3-websocket and "
                      "python3-msgpack not installed")

        for _ in range(self.runs):
            with Hiventd(self.build, self.work) as hd:
                port = str(hd.port)
                argv = [c_prog, "--port", port, "--mode", "async", "--producers", "1",
                        "--size", "256", "--count", str(count * 5)]
                self.run("bind_c", "C (libhivent) async emit, 1 producer, 256 B", argv,
                         events=count * 5, command_shown=command_text(argv[:2] + ["PORT"] + argv[3:]))
                if have_plain:
                    argv = [DEBIAN_PYTHON, plain, "--port", port, "--count", str(count)] + size_args
                    self.run("bind_plain", "plain Python client (websocket-client, msgpack)",
                             argv, parser=parse_binding_rate, events=count,
                             command_shown=command_text(argv[:3] + ["PORT"] + argv[4:]))
                for lang, (prefix, env) in runners.items():
                    argv = prefix + ["--port", port, "--count", str(count)] + size_args
                    self.run("bind_" + lang, "%s binding async emit" % lang.capitalize(), argv,
                             parser=parse_binding_rate, env=env, events=count,
                             command_shown=command_text(
                                 [os.path.basename(prefix[0])] + prefix[1:] +
                                 ["--port", "PORT", "--count", str(count)] + size_args))

    # ---- the whole suite ----

    STEPS = ["bench_hivent_emit", "bench_hivent_sync", "bench_redis", "bench_nats",
             "bench_hivent_consume", "bench_hivent_e2e", "bench_bindings", "bench_memory"]

    def run_all(self, names=None):
        started = time.monotonic()
        for name in names or self.STEPS:
            log("running %s" % name)
            try:
                getattr(self, name)()
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                self.note("%s stopped: %s" % (name, e))
        self.elapsed = time.monotonic() - started
        shutil.rmtree(self.work, ignore_errors=True)


# ---- report ----

def tool_version(argv, pattern=None):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    text = (out.stdout + out.stderr).strip().splitlines()
    text = text[0] if text else "unknown"
    if pattern:
        m = re.search(pattern, text)
        return m.group(1) if m else text
    return text


def deb_version(package):
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "not installed"


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except OSError:
        mem_kib = 0
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": "%.1f GiB" % (mem_kib / 1048576),
        "kernel": platform.release(),
        "os": tool_version(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "commit": commit,
    }


def fmt_num(value, unit=""):
    if value is None:
        return "n/a"
    if value >= 1000:
        text = "{:,.0f}".format(value)
    elif value >= 10:
        text = "%.0f" % value
    else:
        text = "%.2f" % value
    return text + unit


def fmt_stat(suite, key, field):
    s = suite.stat(key, field)
    if not s:
        return "n/a", "n/a", "n/a"
    return fmt_num(s[0]), fmt_num(s[1]), fmt_num(s[2])


def write_report(suite, path):
    m = machine_info()
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w("Generated by `bench/run.sh%s` on %s in %.0f s. Every figure comes from the same run on "
      "the same machine: hiventd, Redis and NATS ran one after another, each started by the "
      "script on 127.0.0.1 with a temporary data directory on the local disk. Each row shows "
      "min / median / max over %d run%s; ratios use medians. The benchmarks report and never "
      "fail the build.%s" % (
          " --quick" if suite.quick else "",
          datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
          suite.elapsed, suite.runs, "s" if suite.runs > 1 else "",
          " **This is a --quick run (one run each, small counts): it checks the harness; "
          "its numbers are not representative.**" if suite.quick else ""))
    w("")
    w("## Machine and versions")
    w("")
    w("| item | value |")
    w("| --- | --- |")
    w("| CPUs (nproc) | %s |" % m["cpus"])
    w("| CPU model | %s |" % m["cpu"])
    w("| memory | %s |" % m["memory"])
    w("| kernel | %s |" % m["kernel"])
    w("| OS | %s |" % m["os"])
    w("| hivent commit | %s |" % m["commit"])
    w("| build | `CMAKE_BUILD_TYPE=Release`, %s |" % tool_version(["cc", "--version"]))
    w("| SQLite | %s |" % deb_version("libsqlite3-0"))
    w("| libwebsockets | %s |" % deb_version("libwebsockets17"))
    w("| redis-server | %s |" % tool_version(["redis-server", "--version"], r"v=(\S+)"))
    w("| nats-server | %s |" % tool_version(["nats-server", "--version"], r"\bv(\d\S*)"))
    w("| libnats | %s |" % deb_version("libnats-dev"))
    w("| python3-websocket / python3-msgpack | %s / %s |" % (
        deb_version("python3-websocket"), deb_version("python3-msgpack")))
    w("")

    w("## Targets")
    w("")
    w("| target | measured (medians) | ratio | verdict |")
    w("| --- | --- | --- | --- |")

    def target_row(name, measured, ratio, ok):
        if ratio is None:
            w("| %s | %s | n/a | not measured |" % (name, measured))
        else:
            w("| %s | %s | %.2f | %s |" % (name, measured, ratio, "met" if ok else "missed"))

    for sync_name in ("full", "normal"):
        hv = suite.median("hv_emit_%s_256_4" % sync_name, "rate")
        rd = suite.median("redis_lpush_256_4", "rate")
        if hv is None and sync_name == "normal":
            continue
        ratio = hv / rd if hv and rd else None
        target_row("durable async emit >= 0.5x Redis pipelined LPUSH (256 B, 4 producers, "
                   "hiventd --sync %s)" % sync_name,
                   "%s vs %s events/s" % (fmt_num(hv), fmt_num(rd)), ratio,
                   ratio is not None and ratio >= 0.5)
    for sync_name in ("full", "normal"):
        for pct in ("p50", "p99"):
            hv = suite.median("hv_sync_%s" % sync_name, pct + "_us")
            rd = suite.median("redis_sync", pct + "_us")
            if hv is None and sync_name == "normal":
                continue
            ratio = hv / rd if hv and rd else None
            target_row("sync emit %s latency <= 1.5x Redis LPUSH (hiventd --sync %s)" % (
                pct, sync_name), "%s vs %s µs" % (fmt_num(hv), fmt_num(rd)), ratio,
                ratio is not None and ratio <= 1.5)
    hv = suite.median("hv_emit_full_256_4", "rate")
    ratio = hv / 100000 if hv else None
    target_row("hiventd >= 100,000 acknowledged durable events/s, 256 B, 4 async producers "
               "(--sync full)", "%s events/s" % fmt_num(hv), ratio,
               ratio is not None and ratio >= 1.0)
    hv = suite.median("hv_emit_normal_256_4", "rate")
    if hv is not None:
        ratio = hv / 100000
        target_row("the same with --sync normal", "%s events/s" % fmt_num(hv), ratio,
                   ratio >= 1.0)
    mem = suite.median("mem_idle", "kib_per_connection")
    conns = suite.median("mem_idle", "open")
    ratio = mem / 16 if mem is not None else None
    target_row("hiventd memory per idle connection <= 16 KiB (%s connections)" % fmt_num(conns),
               "%s KiB" % fmt_num(mem), ratio, ratio is not None and ratio <= 1.0)
    py = suite.median("bind_python", "rate")
    plain = suite.median("bind_plain", "rate")
    ratio = py / plain if py and plain else None
    target_row("Python binding >= 10x plain Python client",
               "%s vs %s events/s" % (fmt_num(py), fmt_num(plain)), ratio,
               ratio is not None and ratio >= 10)
    py = suite.median("bind_python", "cpu_us_per_event")
    plain = suite.median("bind_plain", "cpu_us_per_event")
    ratio = plain / py if py and plain else None
    target_row("the same as client CPU per event (plain / binding; hiventd's ceiling does "
               "not cap it)", "%s vs %s µs" % (fmt_num(py), fmt_num(plain)), ratio,
               ratio is not None and ratio >= 10)
    c_rate = suite.median("bind_c", "rate")
    for lang in ("python", "ruby", "lua"):
        rate = suite.median("bind_" + lang, "rate")
        ratio = rate / c_rate if rate and c_rate else None
        target_row("%s binding >= 0.5x the C rate" % lang.capitalize(),
                   "%s vs %s events/s" % (fmt_num(rate), fmt_num(c_rate)), ratio,
                   ratio is not None and ratio >= 0.5)
    w("")

    def table(title, intro, keys, columns):
        present = [k for k in keys if k in suite.results]
        if not present:
            return
        w("## " + title)
        w("")
        if intro:
            w(intro)
            w("")
        header = "| benchmark | " + " | ".join("%s (min / median / max)" % c[0]
                                               for c in columns) + " |"
        w(header)
        w("|" + " --- |" * (len(columns) + 1))
        for k in present:
            cells = []
            for _, field in columns:
                lo, mid, hi = fmt_stat(suite, k, field)
                cells.append("%s / **%s** / %s" % (lo, mid, hi))
            w("| %s | %s |" % (suite.labels[k], " | ".join(cells)))
        w("")

    emit_keys = []
    for size in (64, 256, 4096):
        for producers in (1, 4):
            emit_keys += ["hv_emit_full_%d_%d" % (size, producers),
                          "hv_emit_normal_%d_%d" % (size, producers),
                          "redis_lpush_%d_%d" % (size, producers),
                          "nats_js_%d_%d" % (size, producers),
                          "nats_core_%d_%d" % (size, producers)]
    table("Asynchronous emit throughput",
          "Events per second. hiventd counts an emit when its ok reply arrives, which hiventd "
          "sends after the SQLite transaction holding the event committed (WAL mode; "
          "`--sync full` fsyncs every commit, `--sync normal` survives a crash of hiventd but "
          "not a power loss). Payloads are MessagePack maps of exactly the stated size; the "
          "frame adds the event name and metadata, and frames of 1024 bytes and more are "
          "gzipped by the client. Redis: LPUSH of a value of the stated size through "
          "redis-benchmark with 64 commands pipelined per client, AOF with `appendfsync "
          "everysec`. NATS core publishes are not acknowledged (rate to the final flush); "
          "JetStream publishes are acknowledged after the server stored them in a file-backed "
          "stream (nats-server 2.9 does not fsync each message).",
          emit_keys, [("events/s", "rate")])
    table("Synchronous emit round trip",
          "One client, one request at a time, 256-byte payloads. Latency in microseconds.",
          ["hv_sync_full", "hv_sync_normal", "redis_sync"],
          [("p50 µs", "p50_us"), ("p99 µs", "p99_us"), ("requests/s", "rate")])
    table("Consume throughput",
          "A fresh service with 8 partitions is filled with keyed 256-byte events, then N "
          "consumer handles (one thread each, prefetch 1000) drain it; the time runs from "
          "creating the consumers to the last processed event. With acknowledgements, "
          "consumers joining one after another move partitions, so a few events are "
          "redelivered and counted again (at-least-once).",
          ["hv_consume_1_ack", "hv_consume_1_noack", "hv_consume_4_ack", "hv_consume_4_noack"],
          [("events/s", "rate"), ("processed", "processed")])
    table("End-to-end latency",
          "One producer emits 256-byte events asynchronously at a fixed 1000 events/s to one "
          "acknowledging consumer in the same process; latency runs from the emit call to the "
          "consumer's process callback (same monotonic clock). hiventd default `--sync full`.",
          ["hv_e2e"], [("p50 µs", "p50_us"), ("p99 µs", "p99_us"), ("max µs", "max_us")])
    table("Bindings",
          "Asynchronous emit rate of each binding against the C rate, in the same hiventd. "
          "Binding scripts and the plain client send a payload map whose `data` string has "
          "240 bytes (plus a sequence number); the C program sends a 256-byte map.",
          ["bind_c", "bind_python", "bind_ruby", "bind_lua", "bind_plain"],
          [("events/s", "rate"), ("client CPU µs/event", "cpu_us_per_event")])
    table("Client memory",
          "Growth of the resident set size of one process per connected producer handle. Each "
          "handle has its own I/O thread and libwebsockets context.",
          ["mem_handle"], [("KiB per handle", "kib_per_handle")])
    table("Server memory",
          "Growth of hiventd's VmRSS (from /proc) after raw WebSocket connections upgraded and "
          "joined `ingress:all`, divided by the number of connections.",
          ["mem_idle"], [("KiB per connection", "kib_per_connection"),
                         ("connections open", "open")])

    w("## Command lines")
    w("")
    w("PORT, PID, DATA_DIR and READY_FILE stand for values chosen at run time. hiventd is "
      "started afresh, with an empty data directory, for every run.")
    w("")
    w("```")
    for key in ("redis_server", "nats_server"):
        if key in suite.commands:
            w(suite.commands[key].replace(suite.work, "TMP"))
    for key, text in suite.commands.items():
        if key in ("redis_server", "nats_server"):
            continue
        w("# " + suite.labels.get(key, key))
        w(text.replace(suite.work, "TMP").replace(REPO + "/", ""))
    w("```")
    w("")
    if suite.notes:
        w("## Notes from this run")
        w("")
        for n in suite.notes:
            w("- " + n.replace(suite.work, "TMP").replace(REPO + "/", ""))
        w("")
    analysis = os.path.join(REPO, "bench", "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            w(f.read().rstrip())
            w("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    log("wrote %s" % path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="CMake build directory (Release)")
    parser.add_argument("--quick", action="store_true",
                        help="one run of everything with small counts (harness check)")
    parser.add_argument("--runs", type=int, default=3, help="runs per benchmark (default 3)")
    parser.add_argument("--output", default=os.path.join(REPO, "docs", "benchmarks.md"))
    parser.add_argument("--from-results", metavar="FILE",
                        help="write the report from a results file of an earlier run "
                        "instead of running anything")
    parser.add_argument("--only", help="comma-separated step names, for example "
                        "bench_redis,bench_memory")
    args = parser.parse_args()
    if args.runs < 1 or args.runs > 20:
        parser.error("--runs must be 1 to 20")

    names = args.only.split(",") if args.only else None
    for name in names or []:
        if name not in Suite.STEPS:
            parser.error("unknown step %s (known: %s)" % (name, ", ".join(Suite.STEPS)))

    suite = Suite(args)
    saved = os.path.join(suite.build, "bench-results.json")
    if args.from_results:
        with open(args.from_results) as f:
            state = json.load(f)
        for field in ("results", "commands", "labels", "notes", "elapsed", "quick", "runs",
                      "work"):
            setattr(suite, field, state[field])
        shutil.rmtree(suite.work_created, ignore_errors=True)
    else:
        suite.run_all(names)
        with open(saved, "w") as f:
            json.dump({field: getattr(suite, field) for field in
                       ("results", "commands", "labels", "notes", "elapsed", "quick", "runs",
                        "work")}, f, indent=1)
        log("saved the raw results in %s (re-render with --from-results)" % saved)

    write_report(suite, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
