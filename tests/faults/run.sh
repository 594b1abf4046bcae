#!/bin/bash
# Runs the fault cases against a real hiventd: builds faultc against the
# build directory's libhivent, then runs driver.py.
# Usage: tests/faults/run.sh [--short] [--only CASE] [--keep] [BUILD_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
driver_args=()
build=""
while [ $# -gt 0 ]; do
    case "$1" in
        --short|--keep) driver_args+=("$1") ;;
        --only) driver_args+=("$1" "$2"); shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
build=$(cd "${build:-$root/build}" && pwd)

for need in "$build/server/hiventd" "$build/core/libhivent.so"; do
    if [ ! -e "$need" ]; then
        echo "missing $need: build the project first (cmake --build $build)" >&2
        exit 2
    fi
done

mkdir -p "$build/faults"
cc -O2 -g -std=gnu11 -Wall -Wextra -Werror -I"$root/core/include" \
    "$here"/common.c "$here"/faultc.c "$here"/produce.c "$here"/consume.c "$here"/lifecycle.c \
    -L"$build/core" -lhivent -Wl,-rpath,"$build/core" -lpthread \
    -o "$build/faults/faultc"

exec /usr/bin/python3 "$here/driver.py" --build "$build" "${driver_args[@]}"
