-- Asynchronous emit rate of the Lua binding against a hiventd.
--
-- Usage:
--   lua5.4 bench/lua_emit.lua [--port PORT] [--host HOST] [--count N]
--                              [--payload-bytes B] [--hiventd PATH]
--
-- Without --port the script starts its own hiventd (--hiventd, default
-- $HIVENT_BUILD_DIR/server/hiventd, else build/server/hiventd) on
-- 127.0.0.1 with a free port and a temporary data directory, and stops it
-- at the end.  It emits N events (default 20000) with emit_async and a
-- delivery callback.  Each payload map has a "data" string of B bytes
-- (default 100), and keys cycle over 64 values.  The script waits for
-- all replies with flush and prints one line:
--   lua_emit: N events in S s = R events/s (F failed)
-- The rate counts from the first emit to the last delivery callback.  The
-- hivent module must be on package.path/cpath (for example after
-- `luarocks make` in bindings/lua).
local hivent = require("hivent")
local core = require("hivent_core")

local function parse_args(argv)
  local options = { count = 20000, payload_bytes = 100, host = "127.0.0.1" }
  local i = 1
  while i <= #argv do
    local name, value = argv[i], argv[i + 1]
    if name == "--port" then options.port = tonumber(value)
    elseif name == "--host" then options.host = value
    elseif name == "--count" then options.count = tonumber(value)
    elseif name == "--payload-bytes" then options.payload_bytes = tonumber(value)
    elseif name == "--hiventd" then options.hiventd = value
    else
      io.stderr:write("lua_emit: unknown option " .. tostring(name) .. "\n")
      os.exit(2)
    end
    if value == nil then
      io.stderr:write("lua_emit: option " .. name .. " needs a value\n")
      os.exit(2)
    end
    i = i + 2
  end
  return options
end

local function quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

-- Starts hiventd on a free loopback port; returns port, pid, data dir.
local function start_server(path)
  local dir = io.popen("mktemp -d /tmp/hivent-lua-bench.XXXXXX"):read("l")
  local command = string.format(
    "%s --data-dir %s --listen 127.0.0.1:0 --ready-file %s/port --log-level warning "
      .. ">%s/hiventd.log 2>&1 & echo $!", quote(path), quote(dir), quote(dir), quote(dir))
  local pid = tonumber(io.popen(command):read("l"))
  local deadline = core.monotonic() + 15
  while core.monotonic() < deadline do
    local file = io.open(dir .. "/port")
    local port = file and tonumber((file:read("l")))
    if file then file:close() end
    if port then
      return port, pid, dir
    end
    core.sleep(0.02)
  end
  error("hiventd did not start; see " .. dir .. "/hiventd.log")
end

local function stop_server(pid, dir)
  os.execute("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 750 do
    if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true then break end
    core.sleep(0.02)
  end
  os.execute("kill -9 " .. pid .. " 2>/dev/null; rm -rf " .. quote(dir))
end

local options = parse_args(arg)
local pid, dir
if not options.port then
  local build = os.getenv("HIVENT_BUILD_DIR") or "build"
  options.port, pid, dir = start_server(options.hiventd or (build .. "/server/hiventd"))
end

hivent.set_log_level("warning")
local client = hivent.Client.new({
  client_id = "lua-bench", server = { host = options.host, port = options.port },
})
-- Warm up: connect and join before timing.
client:emit("bench:warmup", {})

local data = string.rep("x", options.payload_bytes)
local done, failed = 0, 0
local finished_at
local function on_delivery(err)
  done = done + 1
  if err then failed = failed + 1 end
  finished_at = core.monotonic()
end

local started = core.monotonic()
for i = 1, options.count do
  local ok, err = pcall(client.emit_async, client, "bench:lua", { i = i, data = data },
    { key = tostring(i % 64) }, on_delivery)
  if not ok then
    if hivent.errors.is(err, "QUEUE_FULL") then
      client:poll(0.01)
      client:emit_async("bench:lua", { i = i, data = data }, { key = tostring(i % 64) }, on_delivery)
    else
      error(err, 0)
    end
  end
  if i % 1000 == 0 then
    client:poll(0)
  end
end
local left = client:flush(120)
client:close(5)
if pid then
  stop_server(pid, dir)
end

local seconds = (finished_at or core.monotonic()) - started
print(string.format("lua_emit: %d events in %.3f s = %.0f events/s (%d failed, %d unfinished)",
  done, seconds, done / seconds, failed, left))
if failed > 0 or left > 0 then
  os.exit(1)
end
