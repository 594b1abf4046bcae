#!/bin/sh
# Builds the Lua binding from this checkout with `luarocks make` into a
# temporary rock tree (no rock server needed).  It then starts hiventd on
# 127.0.0.1 with a free port and a temporary data directory and runs the
# busted suite in spec/ under Lua 5.4.  Exits non-zero on any failure.
#
# HIVENT_BUILD_DIR: CMake build directory with libhivent.a and
# server/hiventd already built (default: build/ at the repository root).
# Needs: lua5.4, liblua5.4-dev, luarocks, swig, lua-busted, lua-socket,
# lua-dkjson, libmsgpack-dev.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
HIVENT_BUILD_DIR=${HIVENT_BUILD_DIR:-$REPO/build}
HIVENT_BUILD_DIR=$(cd "$HIVENT_BUILD_DIR" && pwd)
export HIVENT_BUILD_DIR
HIVENTD="$HIVENT_BUILD_DIR/server/hiventd"
export HIVENTD

for tool in lua5.4 luarocks swig busted; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run-tests.sh: $tool not found" >&2; exit 1; }
done
[ -x "$HIVENTD" ] || { echo "run-tests.sh: $HIVENTD not found; build the repository first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/hivent-lua-tests.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "lua: building the rock against $HIVENT_BUILD_DIR"
(cd "$HERE" && HIVENT_LINK=static HIVENT_LUA_BUILD="$WORK/build" \
    luarocks --lua-version 5.4 --tree "$WORK/tree" make hivent-0.1.0-1.rockspec) \
    >"$WORK/luarocks.log" 2>&1 || { cat "$WORK/luarocks.log" >&2; exit 1; }

ADMIN_KEY="lua-tests-admin-$$"
mkdir -p "$WORK/data"
"$HIVENTD" --data-dir "$WORK/data" --listen 127.0.0.1:0 --ready-file "$WORK/port" \
    --admin-key "$ADMIN_KEY" --log-level warning >"$WORK/hiventd.log" 2>&1 &
SERVER_PID=$!
tries=0
while [ ! -s "$WORK/port" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 150 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "run-tests.sh: hiventd did not start" >&2
        cat "$WORK/hiventd.log" >&2
        exit 1
    fi
    sleep 0.1
done
HIVENT_TEST_PORT=$(head -n 1 "$WORK/port")
HIVENT_TEST_ADMIN_KEY=$ADMIN_KEY
export HIVENT_TEST_PORT HIVENT_TEST_ADMIN_KEY
echo "lua: hiventd pid $SERVER_PID on 127.0.0.1:$HIVENT_TEST_PORT"

# Only the freshly built rock and the system's Lua libraries are visible.
LUA_PATH_5_4="$WORK/tree/share/lua/5.4/?.lua;$WORK/tree/share/lua/5.4/?/init.lua;$HERE/?.lua;;"
LUA_CPATH_5_4="$WORK/tree/lib/lua/5.4/?.so;;"
export LUA_PATH_5_4 LUA_CPATH_5_4

status=0
(cd "$HERE" && lua5.4 "$(command -v busted)" --output=plainTerminal spec) \
    >"$WORK/busted.log" 2>&1 || status=$?
cat "$WORK/busted.log"

# busted ends with "N successes / N failures / N errors / N pending";
# print the plain form as well.
summary=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' \
    "$WORK/busted.log" | tail -n 1 || true)
if [ -z "$summary" ]; then
    echo "run-tests.sh: busted printed no summary" >&2
    exit 1
fi
passed=$(echo "$summary" | awk '{print $1}')
failed=$(echo "$summary" | awk '{print $4 + $7}')
skipped=$(echo "$summary" | awk '{print $10}')
echo "lua: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
    exit 1
fi
