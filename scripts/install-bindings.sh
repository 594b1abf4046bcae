#!/usr/bin/env bash
# Installs the Python, Ruby and Lua bindings from this repository into one
# folder, without any package registry:
#   ENV/venv   a Python virtual environment (pip install --no-build-isolation)
#   ENV/gems   a GEM_HOME with the gem built by `gem build`
#   ENV/lua    a LuaRocks tree made by `luarocks make`
#
# Usage: scripts/install-bindings.sh [ENV]
# ENV defaults to $HIVENT_BUILD_DIR/bindings-env. HIVENT_BUILD_DIR (default
# build/release) must hold a CMake build of this repository.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${HIVENT_BUILD_DIR:-$root/build/release}" && pwd)
env_dir=${1:-$build/bindings-env}
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
