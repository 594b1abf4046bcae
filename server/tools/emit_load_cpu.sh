#!/bin/bash
# Runs one hvd_emit_load measurement against a fresh hiventd and prints the
# emit rate, CPU time per event of each hiventd thread, of hiventd as a
# whole and of the load program, and the bytes hiventd wrote per event.
#
#   server/tools/emit_load_cpu.sh BUILD_DIR [COUNT]
#
# BUILD_DIR is a CMake build directory holding server/hiventd and
# server/hvd_emit_load; COUNT defaults to 200000 events.  hiventd listens on
# 127.0.0.1 with a port it picks and keeps its data in a temporary
# directory that is removed afterwards.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [COUNT]" >&2
    exit 2
fi
bin="$1/server"
count="${2:-200000}"
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin/hiventd" --data-dir "$work/db" --listen 127.0.0.1:0 --ready-file "$work/port" \
    --log-level warning 2>"$work/hiventd.log" &
server_pid=$!
for _ in $(seq 100); do
    [ -s "$work/port" ] && break
    sleep 0.05
done
if [ ! -s "$work/port" ]; then
    echo "hiventd did not write its port within 5 s:" >&2
    cat "$work/hiventd.log" >&2
    exit 1
fi

ticks_per_s=$(getconf CLK_TCK)
# Fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "$1"; }

start_ticks=$(cpu_ticks "/proc/$server_pid/stat")
declare -A thread_start
for task in /proc/"$server_pid"/task/*; do
    thread_start[$task]=$(cpu_ticks "$task/stat")
done

/usr/bin/time -f "%U %S" -o "$work/load.time" \
    timeout 300 "$bin/hvd_emit_load" --port "$(cat "$work/port")" --count "$count" \
    >"$work/load.out"
grep RESULT "$work/load.out"

for task in /proc/"$server_pid"/task/*; do
    ticks=$(( $(cpu_ticks "$task/stat") - ${thread_start[$task]:-0} ))
    awk -v name="$(cat "$task/comm")" -v tid="${task##*/}" -v t="$ticks" -v hz="$ticks_per_s" \
        -v n="$count" 'BEGIN { if (t > 0) printf "hiventd thread %s (%s): %.1f us/event\n",
                                                   tid, name, t / hz * 1e6 / n }'
done
server_ticks=$(( $(cpu_ticks "/proc/$server_pid/stat") - start_ticks ))
written=$(awk '/^write_bytes/ {print $2}' "/proc/$server_pid/io")
read -r load_user load_sys <"$work/load.time"
awk -v t="$server_ticks" -v hz="$ticks_per_s" -v n="$count" -v u="$load_user" \
    -v s="$load_sys" -v w="$written" 'BEGIN {
        server = t / hz * 1e6 / n
        load = (u + s) * 1e6 / n
        printf "hiventd: %.1f us/event\nload program: %.1f us/event\n", server, load
        printf "all processes: %.1f us/event\nbytes written by hiventd: %.0f per event\n",
               server + load, w / n
    }'
