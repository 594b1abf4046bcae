#!/usr/bin/env bash
# Installs what is missing, builds Hivent-C and its bindings, and runs the
# demo (demo/run.sh): 329 real GitHub webhook payloads through hiventd to
# consumers in C, Python, Ruby and Lua.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export HIVENT_BUILD_DIR=${HIVENT_BUILD_DIR:-$root/build/release}

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$HIVENT_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DHIVENT_BUILD_TESTS=OFF \
  >/dev/null
cmake --build "$HIVENT_BUILD_DIR" -j "$(nproc)" >/dev/null
"$root/scripts/install-bindings.sh"
exec "$root/demo/run.sh"
