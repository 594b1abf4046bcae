#!/bin/sh
# Builds the benchmark programs (Release) and runs the whole suite against
# hiventd, Redis and NATS, then writes docs/benchmarks.md.
#
#   bench/run.sh [--quick] [--runs N] [--only STEP,...] [--output FILE]
#
# --quick runs everything once with small counts (about 2 minutes) to check
# the harness; the full run takes about 20 minutes.  Build directory:
# $HIVENT_BENCH_BUILD_DIR, default build-bench/ at the repository root.
# Needs: cmake, a C compiler, the libhivent build dependencies, and for the
# reference systems Debian's redis-server, redis-tools, nats-server,
# libnats-dev, python3-websocket and python3-msgpack (missing ones are
# skipped with a note in the report).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=${HIVENT_BENCH_BUILD_DIR:-$REPO/build-bench}

# 10,000 idle connections need more descriptors than the usual soft limit
# of 1024, both here and in hiventd, which inherits the limit.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then
    hard=65536
fi
ulimit -n "$hard" 2>/dev/null || echo "bench: could not raise the open file limit to $hard" >&2

lua_opt=
if command -v swig >/dev/null 2>&1 && pkg-config --exists lua5.4 2>/dev/null; then
    lua_opt=-DHIVENT_BUILD_LUA=ON
fi
mkdir -p "$BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release $lua_opt >"$BUILD/bench-cmake.log" 2>&1 ||
    { cat "$BUILD/bench-cmake.log" >&2; exit 1; }
cmake --build "$BUILD" -j2 >"$BUILD/bench-build.log" 2>&1 ||
    { tail -n 40 "$BUILD/bench-build.log" >&2; exit 1; }

PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
exec "$PYTHON" "$HERE/runner.py" --build "$BUILD" "$@"
