#!/bin/sh
# Runs COUNT connect, emit and destroy cycles of a client against a fresh
# hiventd under valgrind and fails on any memory error or definite or
# indirect leak.  The full run is 1000 cycles, about an hour on two cores
# because each client context loads the system CA store; CI runs 50.
#   tests/valgrind-cycles.sh [COUNT] [BUILD_DIR]
set -eu
count=${1:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build}
hiventd=$build/server/hiventd
cycles=$build/tests/hivent_cycles
for f in "$hiventd" "$cycles"; do
  if [ ! -x "$f" ]; then
    echo "missing $f: build the project in $build first" >&2
    exit 1
  fi
done

work=$(mktemp -d /tmp/hivent-valgrind-XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$hiventd" --data-dir "$work" --listen 127.0.0.1:0 --ready-file "$work/ready" \
  --log-level warning 2>"$work/hiventd.log" &
pid=$!
i=0
while [ ! -s "$work/ready" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then
    echo "hiventd did not start; its log:" >&2
    cat "$work/hiventd.log" >&2
    exit 1
  fi
  sleep 0.1
done
port=$(cat "$work/ready")

echo "running $count cycles against hiventd on 127.0.0.1:$port under valgrind"
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --error-exitcode=1 --num-callers=30 \
  "$cycles" "$port" "$count"
