#!/bin/sh
# Installs the npm packages pinned in phoenix/package-lock.json into WORKDIR
# (once per lock file) and runs the phoenix client test against $HIVENTD.
# Usage: run-phoenix-test.sh WORKDIR
set -eu
src=$(cd "$(dirname "$0")/phoenix" && pwd)
work=${1:?usage: run-phoenix-test.sh WORKDIR}
mkdir -p "$work"
if ! cmp -s "$src/package-lock.json" "$work/package-lock.json" ||
   [ ! -d "$work/node_modules/phoenix" ] || [ ! -d "$work/node_modules/ws" ]; then
    cp "$src/package.json" "$src/package-lock.json" "$work/"
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
fi
HIVENT_NODE_DIR="$work" exec node "$src/test_phoenix.mjs"
