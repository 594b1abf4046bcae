#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for SECONDS
# (default 30) on its seed corpus in tests/fuzz/corpus/TARGET.  New inputs
# go to a scratch copy of the corpus; a crash input is written to
# BUILD_DIR/crashes and the script exits non-zero.
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
set -eu
seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build-fuzz}

CC=clang cmake -S "$root" -B "$build" -DHIVENT_FUZZ=ON -DHIVENT_BUILD_TESTS=ON \
  -DHIVENT_BUILD_SERVER=OFF -DHIVENT_BUILD_TOOLS=OFF -DHIVENT_BUILD_EXAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" \
  --target fuzz_frame fuzz_json_frame fuzz_event fuzz_conf fuzz_request >/dev/null

mkdir -p "$build/crashes"
status=0
for target in fuzz_frame fuzz_json_frame fuzz_event fuzz_conf fuzz_request; do
  work="$build/corpus-$target"
  rm -rf "$work"
  mkdir -p "$work"
  cp "$root/tests/fuzz/corpus/$target"/* "$work"/ 2>/dev/null || true
  echo "fuzzing $target for $seconds s"
  if ! "$build/tests/fuzz/$target" -max_total_time="$seconds" -max_len=65536 \
      -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$build/crashes/$target-" \
      -print_final_stats=1 "$work" 2>"$build/$target.log"; then
    echo "$target failed; see $build/$target.log and $build/crashes" >&2
    tail -40 "$build/$target.log" >&2
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/$target.log" || true
done
exit $status
