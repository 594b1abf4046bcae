#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test suite:
# C unit and integration tests, hiventd, CLI, sanitizers, fuzz smoke runs,
# the Python, Ruby and Lua bindings and the cross-language test.
#
# Usage: scripts/test.sh [--quick]
#   --quick  skips the sanitizer build, fuzz, valgrind, fault and benchmark runs.
# Environment: HIVENT_BUILD_DIR (default build/test), JOBS (default nproc).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

"$root/scripts/install-deps.sh" || { echo "test: installing dependencies failed"; exit 1; }

export HIVENT_BUILD_DIR=${HIVENT_BUILD_DIR:-$root/build/test}
jobs=${JOBS:-$(nproc)}
passed=0
failed=0
failures=()

run_suite() {
  local name=$1
  shift
  echo
  echo "=== $name ==="
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: passed in $((SECONDS - start)) s ==="
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED in $((SECONDS - start)) s ==="
  fi
}

build() {
  cmake -S "$root" -B "$HIVENT_BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHIVENT_BUILD_TESTS=ON >/dev/null &&
    cmake --build "$HIVENT_BUILD_DIR" -j "$jobs"
}

ctest_all() {
  (cd "$HIVENT_BUILD_DIR" && ctest --output-on-failure -j "$jobs" --timeout 300)
}

run_suite build build || { echo "0 passed, 1 failed"; exit 1; }
run_suite "C, hiventd and CLI tests (ctest)" ctest_all

if ((quick == 0)); then
  [[ -x tests/run-sanitize.sh ]] && run_suite "C tests under ASan and UBSan" tests/run-sanitize.sh
  [[ -x tests/fuzz/run.sh ]] && run_suite "fuzz smoke run" tests/fuzz/run.sh 20
  [[ -x tests/valgrind-cycles.sh ]] && run_suite "valgrind connect/emit/destroy cycles" \
    tests/valgrind-cycles.sh 50 "$HIVENT_BUILD_DIR"
fi

# Fault injection against a real hiventd: kill -9 during a stream, a
# consumer killed mid-stream, a frozen network, a slow consumer, used-up
# reconnects and destroy from another thread (short counts here).
if ((quick == 0)) && [[ -x tests/faults/run.sh ]]; then
  run_suite "fault injection (short)" tests/faults/run.sh --short "$HIVENT_BUILD_DIR"
fi

# The benchmark harness runs once with small counts so CI notices when it
# breaks; its figures are not checked (bench/run.sh writes the full report).
if ((quick == 0)) && [[ -x bench/run.sh ]]; then
  run_suite "benchmark smoke run" bench/run.sh --quick --output "$HIVENT_BUILD_DIR/benchmarks-quick.md"
fi

for lang in python ruby lua; do
  script=bindings/$lang/run-tests.sh
  [[ -x $script ]] && run_suite "$lang binding" "$script"
done
[[ -x tests/cross/run.sh ]] && run_suite "cross-language" tests/cross/run.sh

echo
if ((failed)); then
  printf 'failed suite: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
