#!/bin/sh
# Build and install the Python binding into a fresh virtual environment, then
# run its pytest suite from outside the source tree.
#
# Needs: a CMake build directory with libhivent and hiventd already built
# (HIVENT_BUILD_DIR, default build/ at the repository root) and Debian's python3-venv,
# python3-dev, python3-setuptools, python3-wheel, python3-pytest and swig.
# No package registry is contacted.  Extra arguments go to pytest.
# Exits non-zero when the build or any test fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build_dir=${HIVENT_BUILD_DIR:-$here/../../build}
python=${HIVENT_PYTHON:-/usr/bin/python3}

if [ ! -f "$build_dir/core/libhivent.a" ]; then
    echo "run-tests.sh: $build_dir/core/libhivent.a not found; build the repository" \
         "with cmake or set HIVENT_BUILD_DIR" >&2
    exit 1
fi
if [ ! -x "$build_dir/server/hiventd" ]; then
    echo "run-tests.sh: $build_dir/server/hiventd not found; build it with cmake" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hivent-python-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

"$python" -m venv --system-site-packages "$work/venv"
HIVENT_BUILD_DIR=$build_dir HIVENT_LINK=static \
    "$work/venv/bin/pip" install --quiet --no-build-isolation --no-index \
    --disable-pip-version-check "$here"
# pip builds in the source tree; keep it clean.
rm -rf "$here/build" "$here"/*.egg-info

# Run from an empty directory so `import hivent` finds the installed package,
# not the source tree.
mkdir "$work/run"
cd "$work/run"
HIVENT_BUILD_DIR=$build_dir "$work/venv/bin/python" -m pytest -p no:cacheprovider \
    --basetemp="$work/pytest" "$here/tests" "$@"
