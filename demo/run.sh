#!/usr/bin/env bash
# The Hivent demo: replays 329 real GitHub webhook payloads through a fresh
# hiventd (SQLite store in a temporary data directory) to four consumer
# services written in C, Python, Ruby and Lua, then prints a summary and
# exits non-zero when any count disagrees with what was emitted.
#
# Usage: demo/run.sh   (scripts/demo.sh installs and builds first)
# Environment: HIVENT_BUILD_DIR (default build/release), HIVENT_BINDINGS_ENV
# (default $HIVENT_BUILD_DIR/bindings-env, made by scripts/install-bindings.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${HIVENT_BUILD_DIR:-$root/build/release}
env_dir=${HIVENT_BINDINGS_ENV:-$build/bindings-env}
data=$root/../shared/data/github-webhooks/index.json
work=$(mktemp -d "${TMPDIR:-/tmp}/hivent-demo.XXXXXX")
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n "${server_pid:-}" ]]; then
    kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fetch_examples() {
  # The data folder may be absent on a fresh machine: npm has the same file.
  if [[ -f $data ]]; then
    cp "$data" "$work/index.json"
    return
  fi
  echo "demo: $data not found; fetching @octokit/webhooks-examples@7.6.1 with npm"
  (cd "$work" && npm pack --silent @octokit/webhooks-examples@7.6.1 >/dev/null &&
    tar xzf octokit-webhooks-examples-7.6.1.tgz package/api.github.com/index.json &&
    mv package/api.github.com/index.json index.json)
}

start_server() {
  mkdir -p "$work/data"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/admin.key"
  "$build/server/hiventd" --data-dir "$work/data" --listen 127.0.0.1:0 \
    --ready-file "$work/port" --admin-key-file "$work/admin.key" \
    --log-level warning 2>"$work/hiventd.log" &
  server_pid=$!
  for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
  [[ -s $work/port ]] || { echo "demo: hiventd did not start"; cat "$work/hiventd.log"; exit 1; }
  port=$(cat "$work/port")
  export HIVENT_SERVER_HOST=127.0.0.1 HIVENT_SERVER_PORT=$port HIVENT_LOG_LEVEL=warning
  echo "demo: hiventd listening on 127.0.0.1:$port, data in $work/data"
}

start_consumer() {
  local language=$1 service=$2 topic=$3 partitions=$4 expected=$5
  local out=$work/results/$service.json
  case $language in
    C) "$build/demo/demo_consumer" "$topic" "$service" "$partitions" "$expected" "$out" ;;
    Python) "$env_dir/venv/bin/python" "$root/demo/consumer.py" "$topic" "$service" \
              "$partitions" "$expected" "$out" ;;
    Ruby) GEM_HOME=$env_dir/gems GEM_PATH=$env_dir/gems ruby "$root/demo/consumer.rb" \
            "$topic" "$service" "$partitions" "$expected" "$out" ;;
    Lua) LUA_PATH="$env_dir/lua/share/lua/5.4/?.lua;$env_dir/lua/share/lua/5.4/?/init.lua;;" \
           LUA_CPATH="$env_dir/lua/lib/lua/5.4/?.so;;" \
           lua5.4 "$root/demo/consumer.lua" "$topic" "$service" "$partitions" "$expected" \
           "$out" ;;
  esac >"$work/$service.log" 2>&1 &
  pids+=($!)
}

wait_for_consumers() {
  local services=("$@")
  for _ in $(seq 300); do
    local metrics ready=0
    metrics=$(curl -fsS "http://127.0.0.1:$port/metrics" || true)
    for s in "${services[@]}"; do
      grep -Eq "^hivent_consumers\\{service=\"$s\"\\} [1-9]" <<<"$metrics" && ready=$((ready + 1))
    done
    ((ready == ${#services[@]})) && return 0
    sleep 0.1
  done
  echo "demo: consumers did not join within 30 s; their logs:"
  tail -n 20 "$work"/*.log
  exit 1
}

fetch_examples
total=$(python3 "$root/demo/prepare.py" "$work/index.json" "$work/events.jsonl")
echo "demo: $total GitHub webhook payloads to replay as github:<event> events"
start_server
mkdir -p "$work/results"

services=()
while read -r language service topic partitions rule; do
  expected=$(python3 - "$work/events.jsonl" "$topic" <<'PY'
import json, sys
topic = sys.argv[2]
print(sum(1 for line in open(sys.argv[1], encoding="utf-8")
          if topic == "*" or json.loads(line)["name"] == topic))
PY
)
  echo "demo: $language consumer, service $service, topic $topic, $partitions partitions, expects $expected"
  start_consumer "$language" "$service" "$topic" "$partitions" "$expected"
  services+=("$service")
done <"$root/demo/services.txt"
wait_for_consumers "${services[@]}"

start=$(date +%s.%N)
"$build/tools/hivent" replay "$work/events.jsonl" --client-id github-replayer
end=$(date +%s.%N)

status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
pids=()
((status == 0)) || { echo "demo: a consumer failed; logs:"; tail -n 20 "$work"/*.log; }

printf '{' >"$work/dead.json"
first=1
for s in "${services[@]}"; do
  n=$(HIVENT_ADMIN_KEY=$(cat "$work/admin.key") "$build/tools/hivent" dlq list "$s" \
        --format json | grep -c . || true)
  ((first)) || printf ', ' >>"$work/dead.json"
  printf '"%s": %d' "$s" "$n" >>"$work/dead.json"
  first=0
done
printf '}\n' >>"$work/dead.json"

python3 "$root/demo/summary.py" "$work/events.jsonl" "$root/demo/services.txt" \
  "$work/results" "$work/dead.json" "$(python3 -c "print($end - $start)")" || status=1
exit $status
