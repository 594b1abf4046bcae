#!/usr/bin/env bash
# Installs the Python, Ruby and Lua bindings from this repository into one
# folder, without any package registry:
#   ENV/venv   a Python virtual environment (pip install --no-build-isolation)
#   ENV/gems   a GEM_HOME with the gem built by `gem build`
#   ENV/lua    a LuaRocks tree made by `luarocks make`
#
# Usage: scripts/install-bindings.sh [--dry-run] [ENV]
# The bindings link libhivent statically from a CMake build of this
# repository: HIVENT_BUILD_DIR when it is set, else the first of build/ and
# build/release that contains core/libhivent.a. ENV defaults to
# BUILD/bindings-env. --dry-run prints the directories and installs nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dry_run=0
if [[ ${1:-} == --dry-run ]]; then
  dry_run=1
  shift
fi
if [[ $# -gt 1 || ${1:-} == -* ]]; then
  echo "usage: scripts/install-bindings.sh [--dry-run] [ENV]" >&2
  exit 2
fi

has_libhivent() {
  [[ -f $1/core/libhivent.a ]]
}

build_help="build one with: cmake -S $root -B $root/build -DCMAKE_BUILD_TYPE=Release && cmake --build $root/build -j"

if [[ -n ${HIVENT_BUILD_DIR:-} ]]; then
  if ! has_libhivent "$HIVENT_BUILD_DIR"; then
    echo "install-bindings: HIVENT_BUILD_DIR=$HIVENT_BUILD_DIR contains no core/libhivent.a;" \
      "point it at a CMake build directory of this repository, or $build_help" >&2
    exit 1
  fi
  build=$(cd "$HIVENT_BUILD_DIR" && pwd)
else
  build=
  for candidate in "$root/build" "$root/build/release"; do
    if has_libhivent "$candidate"; then
      build=$candidate
      break
    fi
  done
  if [[ -z $build ]]; then
    echo "install-bindings: no built libhivent found; tried $root/build/core/libhivent.a" \
      "and $root/build/release/core/libhivent.a." >&2
    echo "install-bindings: $build_help, or set HIVENT_BUILD_DIR to a build directory" >&2
    exit 1
  fi
fi

env_dir=${1:-$build/bindings-env}
echo "install-bindings: build directory $build"
echo "install-bindings: installing into $env_dir"
if [[ $dry_run == 1 ]]; then
  exit 0
fi
mkdir -p "$env_dir"
env_dir=$(cd "$env_dir" && pwd)
export HIVENT_BUILD_DIR=$build

echo "install-bindings: Python into $env_dir/venv"
[[ -x $env_dir/venv/bin/python ]] || /usr/bin/python3 -m venv --system-site-packages "$env_dir/venv"
HIVENT_LINK=static "$env_dir/venv/bin/pip" install --quiet --no-build-isolation --no-index \
  --disable-pip-version-check --force-reinstall --no-deps "$root/bindings/python"
rm -rf "$root/bindings/python/build" "$root"/bindings/python/*.egg-info

echo "install-bindings: Ruby into $env_dir/gems"
gem_dir=$(mktemp -d)
(cd "$root/bindings/ruby" && gem build --silent hivent.gemspec -o "$gem_dir/hivent.gem" >/dev/null)
GEM_HOME=$env_dir/gems gem install --silent --local --no-document "$gem_dir/hivent.gem" >/dev/null
rm -rf "$gem_dir"

echo "install-bindings: Lua into $env_dir/lua"
(cd "$root/bindings/lua" &&
  HIVENT_LINK=static luarocks --lua-version 5.4 --tree "$env_dir/lua" make >/dev/null)

# GEM_PATH replaces RubyGems' default search path, so the default is appended.
gem_path="$env_dir/gems:$(gem env gempath)"
cat <<EOF

Installed. To use the bindings from a shell:
  Python:  . $env_dir/venv/bin/activate
           python -c 'import hivent'
  Ruby:    export GEM_HOME=$env_dir/gems GEM_PATH=$gem_path
           ruby -e 'require "hivent"'
  Lua:     eval "\$(luarocks --lua-version 5.4 --tree $env_dir/lua path)"
           lua5.4 -e 'require "hivent"'
The Lua line sets LUA_PATH and LUA_CPATH, which lua5.4 reads unless
LUA_PATH_5_4 or LUA_CPATH_5_4 are set.
EOF
