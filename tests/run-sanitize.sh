#!/bin/sh
# Builds the project with AddressSanitizer and UndefinedBehaviorSanitizer
# in its own build directory and runs the C test suite there.
#   tests/run-sanitize.sh [BUILD_DIR]     (default: build-sanitize)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-sanitize}
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$root" -B "$build" -DHIVENT_SANITIZE=ON -DHIVENT_BUILD_TESTS=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "$jobs"

# Leak checking stays on; a forked child that exits with _exit() skips it.
# tests/lsan.supp lists the one known leak inside libwebsockets.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure -j "$jobs" -LE fuzz
