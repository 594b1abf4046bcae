#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build and test Hivent-C.
# Runs apt-get only when a package is missing, so a second run is fast.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates openssl
  libwebsockets-dev libmsgpack-dev libssl-dev zlib1g-dev libjansson-dev
  libsqlite3-dev sqlite3 libcurl4-openssl-dev
  swig
  python3 python3-dev python3-venv python3-pip python3-wheel python3-setuptools
  python3-pytest python3-websockets python3-msgpack
  ruby ruby-dev ruby-rspec ruby-minitest rake
  lua5.4 liblua5.4-dev luarocks lua-busted
  valgrind clang libclang-rt-14-dev
  lua-socket lua-dkjson
  redis-server redis-tools nats-server libnats-dev python3-websocket
  curl procps iproute2
)
# Node.js and npm serve the phoenix JavaScript client test; a machine that
# already has a node binary (for example from another repository) keeps it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
