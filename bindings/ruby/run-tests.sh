#!/bin/sh
# Builds the gem from this checkout with gem build and installs it with
# gem install --local into a temporary GEM_HOME, so no gem server is
# needed.  Then starts hiventd on 127.0.0.1 with a free port and a temporary
# data directory, and runs the RSpec suite in spec/ against the installed
# gem from another directory.  Exits non-zero on any failure.
#
# HIVENT_BUILD_DIR: CMake build directory with core/libhivent.a and
# server/hiventd already built (default: build/ at the repository root).
# Extra arguments go to rspec, for example spec/payload_spec.rb.
# Needs: ruby, ruby-dev, ruby-rspec, ruby-minitest, swig, libmsgpack-dev and
# the -dev packages libhivent links (libwebsockets, jansson, zlib, OpenSSL).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
HIVENT_BUILD_DIR=${HIVENT_BUILD_DIR:-$REPO/build}
HIVENT_BUILD_DIR=$(cd "$HIVENT_BUILD_DIR" && pwd)
export HIVENT_BUILD_DIR
HIVENTD="$HIVENT_BUILD_DIR/server/hiventd"
export HIVENTD

for tool in ruby gem rspec swig; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run-tests.sh: $tool not found" >&2; exit 1; }
done
[ -x "$HIVENTD" ] || { echo "run-tests.sh: $HIVENTD not found; build the repository first" >&2; exit 1; }
[ -f "$HIVENT_BUILD_DIR/core/libhivent.a" ] || {
    echo "run-tests.sh: $HIVENT_BUILD_DIR/core/libhivent.a not found; build the repository first" >&2
    exit 1
}

WORK=$(mktemp -d /tmp/hivent-ruby-tests.XXXXXX)
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

VERSION=$(ruby -e 'require ARGV[0]; print Hivent::VERSION' "$HERE/lib/hivent/version.rb")
GEM_FILE="$WORK/hivent-$VERSION.gem"
echo "ruby: building hivent-$VERSION.gem against $HIVENT_BUILD_DIR"
(cd "$HERE" && gem build hivent.gemspec --output "$GEM_FILE") >"$WORK/gem-build.log" 2>&1 ||
    { cat "$WORK/gem-build.log" >&2; exit 1; }
gem install --local --no-document --install-dir "$WORK/gems" "$GEM_FILE" >"$WORK/gem-install.log" 2>&1 ||
    { cat "$WORK/gem-install.log" >&2; find "$WORK/gems" -name mkmf.log -exec cat {} + >&2; exit 1; }

# Only the freshly installed gem and the system's gems are visible.
GEM_HOME="$WORK/gems"
GEM_PATH="$WORK/gems:$(gem env gempath)"
export GEM_HOME GEM_PATH

(cd / && ruby -e 'require "hivent"; puts "ruby: loaded hivent #{Hivent::VERSION} with libhivent #{Hivent::Native.hivent_version_str}"') ||
    { echo "run-tests.sh: require \"hivent\" failed outside the source tree" >&2; exit 1; }

ADMIN_KEY="ruby-tests-admin-$$"
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
echo "ruby: hiventd pid $SERVER_PID on 127.0.0.1:$HIVENT_TEST_PORT"

# Run from $WORK so rspec does not put the checkout's lib/ on the load path.
if [ "$#" -eq 0 ]; then
    set -- "$HERE/spec"
else
    specs=
    for arg in "$@"; do
        case "$arg" in
            -*) specs="$specs $arg" ;;
            /*) specs="$specs $arg" ;;
            *) specs="$specs $HERE/$arg" ;;
        esac
    done
    # shellcheck disable=SC2086
    set -- $specs
fi
status=0
(cd "$WORK" && rspec --default-path "$HERE/spec" -I "$HERE/spec" --format progress "$@") || status=$?
if [ "$status" -ne 0 ]; then
    echo "run-tests.sh: rspec failed with status $status; hiventd log:" >&2
    tail -n 50 "$WORK/hiventd.log" >&2
fi
exit "$status"
