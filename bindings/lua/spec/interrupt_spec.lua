-- SIGINT (Ctrl-C) and SIGTERM during Consumer:run() and a synchronous
-- emit in a child lua5.4 interpreter.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
local core = require("hivent_core")
local server = require("spec.helpers.server")

-- The child consumes `topic` as `service` and prints "ready" once joined.
-- Its process prints "processing" and then sleeps 5 s for events with
-- payload.slow, so that SIGINT arrives inside process.
local CHILD_SCRIPT = [[
local hivent = require("hivent")
local core = require("hivent_core")
local port, topic, service = tonumber(arg[1]), arg[2], arg[3]
local function say(text)
  io.stdout:write(text, "\n")
  io.stdout:flush()
end
local consumer = hivent.consumer({
  topic = topic, name = service, partition_count = 1,
  process = function(event)
    if event.payload.slow then
      say("processing")
      for _ = 1, 100 do core.sleep(0.05) end
    end
    return true
  end,
}, { server = { port = port } })
for _ = 1, 200 do
  consumer:poll(0.05)
  if consumer:state() == "connected" then break end
end
say("ready " .. consumer:state())
local count, reason = consumer:run({ duration = 20 })
say(string.format("returned %s %s %s", tostring(count), tostring(reason), consumer:state()))
]]

local function read_file(path)
  local file = io.open(path, "r")
  if not file then
    return ""
  end
  local text = file:read("a")
  file:close()
  return text
end

-- The child emits synchronously to a port with no server, with
-- reconnect attempts unlimited, so emit() waits until a signal ends it.
local EMIT_SCRIPT = [[
local hivent = require("hivent")
hivent.configure({ server = { host = "127.0.0.1", port = tonumber(arg[1]) },
  max_reconnect_tries = -1, reconnect_backoff_time = 100 })
hivent.set_logger(function() end)
io.stdout:write("emitting\n")
io.stdout:flush()
local ok, err = pcall(hivent.emit, "lua:interrupt", {}, { version = 1 })
io.stdout:write(string.format("emit returned %s, interrupt %s: %s\n", tostring(ok),
  tostring(hivent.errors.is_interrupt(err)), tostring(err)))
io.stdout:flush()
]]

-- Starts `script` with the arguments `...` in a new temporary directory.
-- Returns a table with dir, pid and read(name) for its files "out", "err"
-- and "status" (the exit status, written when the child ends).
local function start_script(script_text, ...)
  local dir = server.tmpdir()
  local script = assert(io.open(dir .. "/child.lua", "w"))
  script:write(script_text)
  script:close()
  local args = {}
  for i = 1, select("#", ...) do
    args[i] = server.quote(tostring(select(i, ...)))
  end
  -- The inner sh writes its pid and execs lua5.4, so the pid is the
  -- interpreter's; the outer subshell records the exit status.
  local command = string.format(
    "cd %s && (sh -c 'echo $$ >pid; exec lua5.4 child.lua \"$@\"' child %s "
      .. ">out 2>err; echo $? >status) >/dev/null 2>&1 &",
    server.quote(dir), table.concat(args, " "))
  assert(os.execute(command))
  local child = { dir = dir }
  function child.read(name)
    return read_file(dir .. "/" .. name)
  end
  child.pid = server.wait_for(5, function() return tonumber(child.read("pid"):match("%d+")) end)
  assert(child.pid, "the child wrote no pid")
  return child
end

-- Starts the consumer child on `topic` as `service`.
local function start_child(port, topic, service)
  return start_script(CHILD_SCRIPT, port, topic, service)
end

-- Returns a port on 127.0.0.1 that nothing listens on right now.
local function closed_port()
  local socket = require("socket")
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  listener:close()
  return tonumber(port)
end

local function stop_child(child)
  if child.read("status") == "" then
    os.execute("kill -9 " .. child.pid .. " 2>/dev/null")
  end
  os.execute("rm -rf " .. server.quote(child.dir))
end

local function wait_output(child, pattern, seconds)
  return server.wait_for(seconds, function() return child.read("out"):find(pattern) ~= nil end)
end

local function interrupt(child, signal)
  assert(os.execute("kill -" .. (signal or "INT") .. " " .. child.pid))
  return server.wait_for(10, function() return child.read("status") ~= "" end)
end

describe("consumer run on a signal", function()
  local srv, options

  setup(function()
    srv = server.shared()
    options = { server = { port = srv.port } }
  end)

  it("closes and returns while idle", function()
    local child = start_child(srv.port, server.unique("lua:sigint"), server.unique("lua_sigint"))
    local ok, err = pcall(function()
      assert.is_truthy(wait_output(child, "ready connected", 15), "child output: " .. child.read("out")
        .. child.read("err"))
      -- Let run() start waiting for notices.
      core.sleep(0.3)
      local started = core.monotonic()
      assert.is_truthy(interrupt(child), "the child did not exit after SIGINT")
      assert.is_true(core.monotonic() - started < 8)
      local stderr = child.read("err")
      assert.are.equal("0\n", child.read("status"), stderr)
      assert.matches("returned 0 interrupted closed", child.read("out"), 1, true)
      assert.is_nil(stderr:find("stack traceback", 1, true), stderr)
      assert.is_nil(stderr:find("interrupted!", 1, true), stderr)
      assert.matches("interrupted by SIGINT, leaving the channel", stderr, 1, true)
    end)
    stop_child(child)
    assert(ok, err)
  end)

  it("redelivers the interrupted event", function()
    local topic = server.unique("lua:sigint_busy")
    local service = server.unique("lua_sigint_busy")
    local client = hivent.Client.new(options, { client_id = "lua-interrupt-spec" })
    local child = start_child(srv.port, topic, service)
    local ok, err = pcall(function()
      assert.is_truthy(wait_output(child, "ready connected", 15), "child output: " .. child.read("out")
        .. child.read("err"))
      local sent = client:emit(topic, { slow = true })
      assert.is_truthy(wait_output(child, "processing", 10), "the child processed nothing")
      assert.is_truthy(interrupt(child), "the child did not exit after SIGINT")
      assert.are.equal("0\n", child.read("status"), child.read("err"))
      assert.matches("returned 0 interrupted closed", child.read("out"), 1, true)

      -- The event was neither acknowledged nor dead-lettered, so the
      -- service's next consumer receives it.
      local received = {}
      local successor = hivent.consumer({
        topic = topic, name = service, partition_count = 1,
        process = function(event)
          received[#received + 1] = event
          return true
        end,
      }, options)
      assert.are.equal(1, successor:run({ count = 1, duration = 15 }))
      successor:close(2)
      assert.are.equal(sent.meta.uuid, received[1].meta.uuid)
      local body, status = server.admin(srv.port, srv.admin_key, "GET",
        "/admin/dlq?service=" .. service)
      assert.are.equal(200, status)
      assert.are.equal(0, #body.events)
    end)
    stop_child(child)
    client:close(2)
    assert(ok, err)
  end)

  it("closes and returns on SIGTERM", function()
    local child = start_child(srv.port, server.unique("lua:sigterm"), server.unique("lua_sigterm"))
    local ok, err = pcall(function()
      assert.is_truthy(wait_output(child, "ready connected", 15), "child output: " .. child.read("out")
        .. child.read("err"))
      core.sleep(0.3)
      local started = core.monotonic()
      assert.is_truthy(interrupt(child, "TERM"), "the child did not exit after SIGTERM")
      assert.is_true(core.monotonic() - started < 3)
      local stderr = child.read("err")
      assert.are.equal("0\n", child.read("status"), stderr)
      assert.matches("returned 0 interrupted closed", child.read("out"), 1, true)
      assert.matches("interrupted by SIGTERM, leaving the channel", stderr, 1, true)
    end)
    stop_child(child)
    assert(ok, err)
  end)
end)

describe("synchronous emit on a signal", function()
  for _, signal in ipairs({ "INT", "TERM" }) do
    it("raises on SIG" .. signal .. " while the server is down", function()
      local child = start_script(EMIT_SCRIPT, closed_port())
      local ok, err = pcall(function()
        assert.is_truthy(wait_output(child, "emitting", 10), "child output: " .. child.read("out")
          .. child.read("err"))
        core.sleep(0.5)
        assert(os.execute("kill -" .. signal .. " " .. child.pid))
        -- emit() returns within one wait slice; the exit after it takes up
        -- to flush_timeout, because the garbage collector waits for the
        -- abandoned emit.
        assert.is_truthy(wait_output(child, "emit returned", 2),
          "emit did not return after SIG" .. signal)
        assert.matches("emit returned false, interrupt true", child.read("out"), 1, true)
        assert.is_truthy(server.wait_for(10, function() return child.read("status") ~= "" end),
          "the child did not exit after SIG" .. signal)
        assert.are.equal("0\n", child.read("status"), child.read("err"))
      end)
      stop_child(child)
      assert(ok, err)
    end)
  end
end)
