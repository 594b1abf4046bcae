-- Starts and stops hiventd processes for the specs, on 127.0.0.1 only.
--
-- HIVENTD names the binary (run-tests.sh sets it from HIVENT_BUILD_DIR).
-- HIVENT_TEST_PORT and HIVENT_TEST_ADMIN_KEY describe the server that
-- run-tests.sh started for the whole suite; without them shared() starts
-- one itself.
local core = require("hivent_core")

local server = {}
server.__index = server

local ADMIN_KEY = "lua-spec-admin-key"
local START_TIMEOUT = 15
local STOP_TIMEOUT = 10

local function quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end
server.quote = quote

local function read_all(command)
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("a")
  pipe:close()
  return output
end

--- Returns a new temporary directory.
function server.tmpdir()
  local dir = read_all("mktemp -d /tmp/hivent-lua-spec.XXXXXX"):gsub("%s+$", "")
  assert(dir ~= "", "mktemp failed")
  return dir
end

function server.binary()
  local path = os.getenv("HIVENTD")
  if path == nil or path == "" then
    local build = os.getenv("HIVENT_BUILD_DIR") or "../../build"
    path = build .. "/server/hiventd"
  end
  return path
end

local function read_port(path)
  local file = io.open(path, "r")
  if not file then
    return nil
  end
  local text = file:read("a")
  file:close()
  return tonumber(text:match("^(%d+)\n"))
end

--- Starts hiventd.  Options: port (default 0, a free one), data_dir
-- (default a new temporary directory), admin_key, api_key.
function server.start(options)
  options = options or {}
  local self = setmetatable({
    data_dir = options.data_dir or server.tmpdir(),
    admin_key = options.admin_key or ADMIN_KEY,
    api_key = options.api_key,
  }, server)
  local ready = self.data_dir .. "/ready-port"
  os.remove(ready)
  local command = string.format(
    "%s --data-dir %s --listen 127.0.0.1:%d --ready-file %s --admin-key %s%s "
      .. "--log-level warning >>%s 2>&1 & echo $!",
    quote(server.binary()), quote(self.data_dir), options.port or 0, quote(ready),
    quote(self.admin_key), self.api_key and (" --api-key " .. quote(self.api_key)) or "",
    quote(self.data_dir .. "/hiventd.log"))
  self.pid = tonumber(read_all(command):match("(%d+)"))
  assert(self.pid, "cannot start hiventd")
  local deadline = core.monotonic() + START_TIMEOUT
  while core.monotonic() < deadline do
    self.port = read_port(ready)
    if self.port then
      return self
    end
    if not self:alive() then
      error("hiventd exited at start; log in " .. self.data_dir .. "/hiventd.log")
    end
    core.sleep(0.02)
  end
  self:stop()
  error("hiventd did not write its ready file within " .. START_TIMEOUT .. " s")
end

function server:alive()
  return os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end

--- Stops the server with SIGTERM (SIGKILL after STOP_TIMEOUT seconds)
-- and waits until it is gone.
function server:stop()
  if not self.pid then
    return
  end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  local deadline = core.monotonic() + STOP_TIMEOUT
  while self:alive() and core.monotonic() < deadline do
    core.sleep(0.02)
  end
  if self:alive() then
    os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
    core.sleep(0.1)
  end
  self.pid = nil
end

--- Starts the server again on the same port with the same data.
function server:restart()
  self:stop()
  local again = server.start({ port = self.port, data_dir = self.data_dir,
    admin_key = self.admin_key, api_key = self.api_key })
  self.pid = again.pid
  return self
end

--- Removes the data directory of a stopped server.
function server:remove()
  self:stop()
  os.execute("rm -rf " .. quote(self.data_dir))
end

local shared_server
--- Returns {port, admin_key} of the suite's server.
function server.shared()
  if shared_server then
    return shared_server
  end
  local port = tonumber(os.getenv("HIVENT_TEST_PORT") or "")
  if port then
    shared_server = { port = port, admin_key = os.getenv("HIVENT_TEST_ADMIN_KEY") or ADMIN_KEY }
  else
    shared_server = server.start()
  end
  return shared_server
end

--- Sends an admin HTTP request and returns the decoded JSON body and the
-- HTTP status.
function server.admin(port, admin_key, method, path)
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  local json = require("dkjson")
  local body = {}
  local _, status = http.request({
    url = string.format("http://127.0.0.1:%d%s", port, path),
    method = method,
    headers = { ["Authorization"] = "Bearer " .. admin_key },
    sink = ltn12.sink.table(body),
  })
  local text = table.concat(body)
  return json.decode(text), status, text
end

--- Returns a name unique to this run, for services and events.
local counter = 0
function server.unique(prefix)
  counter = counter + 1
  return string.format("%s_%d_%d_%d", prefix, os.time(), math.random(1, 1e9), counter)
end

--- Calls fn() until it returns a true value or `seconds` pass; returns
-- its last result.
function server.wait_for(seconds, fn)
  local deadline = core.monotonic() + seconds
  local result = fn()
  while not result and core.monotonic() < deadline do
    core.sleep(0.02)
    result = fn()
  end
  return result
end

return server
