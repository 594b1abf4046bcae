#!/usr/bin/env bash
# Cross-language test against a real hiventd: events emitted from Python are
# consumed in Ruby, Lua and Python; events emitted from Lua are consumed in
# Python and Ruby. Every consumer must receive exactly the published events,
# with equal payloads and metadata.
#
# Needs a CMake build (HIVENT_BUILD_DIR, default build/test) and installs the
# bindings into it with scripts/install-bindings.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${HIVENT_BUILD_DIR:-$root/build/test}" && pwd)
env_dir=$build/bindings-env
export HIVENT_BUILD_DIR=$build
export HIVENT_WEBHOOKS_JSON=${HIVENT_WEBHOOKS_JSON:-$root/../shared/data/github-webhooks/index.json}
work=$(mktemp -d "${TMPDIR:-/tmp}/hivent-cross.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -n ${server_pid:-} ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" || true
  rm -rf "$work"
}
trap cleanup EXIT

"$root/scripts/install-bindings.sh" "$env_dir"

python=$env_dir/venv/bin/python
ruby_env=(env "GEM_HOME=$env_dir/gems" "GEM_PATH=$env_dir/gems")
lua_env=(env "LUA_PATH=$env_dir/lua/share/lua/5.4/?.lua;$env_dir/lua/share/lua/5.4/?/init.lua;;"
         "LUA_CPATH=$env_dir/lua/lib/lua/5.4/?.so;;")

mkdir "$work/data"
"$build/server/hiventd" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --ready-file "$work/port" --log-level warning 2>"$work/hiventd.log" &
server_pid=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
export HIVENT_SERVER_PORT=$(cat "$work/port") HIVENT_LOG_LEVEL=warning

PY_COUNT=60
LUA_COUNT=40
cd "$here"
"${ruby_env[@]}" ruby consume.rb cross:from-python rb-svc $PY_COUNT "$work/py-to-rb.jsonl" &
pids+=($!)
"${lua_env[@]}" lua5.4 consume.lua cross:from-python lua-svc $PY_COUNT "$work/py-to-lua.jsonl" &
pids+=($!)
"$python" consume.py cross:from-python py-svc $PY_COUNT "$work/py-to-py.jsonl" &
pids+=($!)
"$python" consume.py cross:from-lua py-lua-svc $LUA_COUNT "$work/lua-to-py.jsonl" &
pids+=($!)
"${ruby_env[@]}" ruby consume.rb cross:from-lua rb-lua-svc $LUA_COUNT "$work/lua-to-rb.jsonl" &
pids+=($!)

# Events emitted before a service's first consumer joined are not stored for
# it, so wait until all five services have a live consumer.
for _ in $(seq 300); do
  joined=$(curl -fsS "http://127.0.0.1:$HIVENT_SERVER_PORT/metrics" |
           grep -c '^hivent_consumers{service=.*} [1-9]' || true)
  ((joined >= 5)) && break
  sleep 0.1
done
((joined >= 5)) || { echo "cross: consumers did not join"; exit 1; }

"$python" emit.py cross:from-python $PY_COUNT "$work/py-published.jsonl"
"${lua_env[@]}" lua5.4 emit.lua cross:from-lua $LUA_COUNT "$work/lua-published.jsonl"

status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
pids=()
"$python" compare.py "$work/py-published.jsonl" "$work/py-to-rb.jsonl" \
  "$work/py-to-lua.jsonl" "$work/py-to-py.jsonl" || status=1
"$python" compare.py "$work/lua-published.jsonl" "$work/lua-to-py.jsonl" \
  "$work/lua-to-rb.jsonl" || status=1
if ((status == 0)); then
  echo "2 passed, 0 failed"
else
  echo "cross-language: FAILED"
fi
exit $status
