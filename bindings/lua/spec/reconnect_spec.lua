-- Reconnecting after hiventd restarts, and giving up after
-- max_reconnect_tries.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "error")
local core = require("hivent_core")
local server = require("spec.helpers.server")

describe("reconnect", function()
  local srv

  before_each(function()
    srv = server.start()
  end)

  after_each(function()
    srv:remove()
  end)

  it("emits again after hiventd restarts", function()
    local states = {}
    local client = hivent.Client.new({
      server = { port = srv.port }, max_reconnect_tries = -1,
      reconnect_backoff_time = 100, reconnect_backoff_max = 500,
      on_state = function(state) states[#states + 1] = state end,
    })
    local first = client:emit("lua:before_restart", { n = 1 })
    assert.is_string(first.meta.uuid)
    srv:restart()
    local second = client:emit("lua:after_restart", { n = 2 }, { timeout = 15 })
    assert.are.equal(2, second.payload.n)
    client:poll(0)
    client:close(2)
    local went_down = false
    for _, state in ipairs(states) do
      if state == "backoff" or state == "connecting" then went_down = true end
    end
    assert.is_true(went_down, "no reconnect was reported: " .. table.concat(states, ","))
  end)

  it("keeps consuming after hiventd restarts", function()
    local topic = server.unique("lua:restart")
    local options = { server = { port = srv.port }, max_reconnect_tries = -1,
      reconnect_backoff_time = 100, reconnect_backoff_max = 500 }
    local seen = {}
    local consumer
    consumer = hivent.consumer({
      topic = topic, name = server.unique("lua_restart"), partition_count = 1,
      process = function(event)
        seen[#seen + 1] = event.payload.n
        if event.payload.n == 2 then
          consumer:stop()
        end
        return true
      end,
    }, options)
    local client = hivent.Client.new(options)
    assert.is_truthy(server.wait_for(10, function()
      consumer:poll(0.05)
      return consumer:state() == "connected"
    end))
    client:emit(topic, { n = 1 })
    assert.are.equal(1, consumer:run({ count = 1, duration = 10 }))

    srv:restart()
    assert.is_truthy(server.wait_for(20, function()
      consumer:poll(0.05)
      client:poll(0)
      return consumer:state() == "connected"
    end), "consumer did not reconnect")
    client:emit(topic, { n = 2 }, { timeout = 15 })
    consumer:run({ duration = 15 })
    consumer:close(2)
    client:close(2)
    -- Delivery is at-least-once: event 1 comes again when its ack was
    -- still in flight at the restart.
    assert.are.equal(1, seen[1])
    assert.are.equal(2, seen[#seen])
    for i = 2, #seen - 1 do
      assert.are.equal(1, seen[i])
    end
  end)

  it("run returns FAILED when joins are rejected", function()
    local topic = server.unique("lua:join")
    local service = server.unique("lua_join")
    local options = { server = { port = srv.port }, max_reconnect_tries = 2,
      reconnect_backoff_time = 50, reconnect_backoff_max = 100 }
    local process = function() return true end
    local owner = hivent.consumer({ topic = topic, name = service, partition_count = 4,
      process = process }, options)
    assert.is_truthy(server.wait_for(10, function()
      owner:poll(0.05)
      return owner:state() == "connected"
    end))
    local mismatched = hivent.consumer({ topic = topic, name = service, partition_count = 7,
      process = process }, options)
    local started = core.monotonic()
    local count, err = mismatched:run({ duration = 20 })
    local elapsed = core.monotonic() - started
    assert.is_nil(count)
    assert.are.equal("HIVENT_ERR_FAILED", err.name)
    assert.are.equal("HIVENT_ERR_JOIN_REJECTED", err.cause.name)
    assert.matches("partition_count 7", err.message, 1, true)
    assert.is_true(elapsed < 15, "run took " .. elapsed .. " s")
    assert.are.equal("failed", mismatched:state())
    mismatched:close(0)
    owner:close(2)
  end)

  it("logs a rejected join once", function()
    local topic = server.unique("lua:join_log")
    local service = server.unique("lua_join_log")
    local options = { server = { port = srv.port }, max_reconnect_tries = 0,
      reconnect_backoff_time = 50 }
    local process = function() return true end
    local messages = {}
    hivent.set_logger(function(level, _, message)
      if level <= 3 then
        messages[#messages + 1] = message
      end
    end)
    finally(function() hivent.set_logger(nil) end)
    local owner = hivent.consumer({ topic = topic, name = service, partition_count = 4,
      process = process }, options)
    assert.is_truthy(server.wait_for(10, function()
      owner:poll(0.05)
      return owner:state() == "connected"
    end))
    local mismatched = hivent.consumer({ topic = topic, name = service, partition_count = 7,
      process = process }, options)
    local count, err = mismatched:run({ duration = 10 })
    mismatched:close(0)
    owner:close(2)
    assert.is_nil(count)
    assert.are.equal("HIVENT_ERR_JOIN_REJECTED", err.cause.name)
    local rejected, gave_up = 0, 0
    for _, message in ipairs(messages) do
      if message:find("giving up", 1, true) then
        gave_up = gave_up + 1
      elseif message:find("join of event:" .. topic .. " rejected", 1, true) then
        rejected = rejected + 1
      end
    end
    assert.are.equal(1, rejected, "error lines:\n" .. table.concat(messages, "\n"))
    assert.are.equal(1, gave_up, "error lines:\n" .. table.concat(messages, "\n"))
  end)

  it("run and run_all return FAILED without a server", function()
    local options = { server = { port = srv.port }, max_reconnect_tries = 1,
      reconnect_backoff_time = 50, connect_timeout = 1000 }
    srv:stop()
    local function new_consumer()
      return hivent.consumer({ topic = "lua:gone", name = server.unique("lua_gone"),
        partition_count = 1, process = function() return true end }, options)
    end
    local single = new_consumer()
    local count, err = single:run({ duration = 20 })
    assert.is_nil(count)
    assert.are.equal("HIVENT_ERR_FAILED", err.name)
    assert.is_true(hivent.errors.is(err.cause), tostring(err.cause))
    single:close(0)

    local pair = { new_consumer(), new_consumer() }
    local started = core.monotonic()
    local total, all_err = hivent.run_all(pair, { duration = 20 })
    assert.is_nil(total)
    assert.is_true(hivent.errors.is(all_err, "HIVENT_ERR_FAILED"), tostring(all_err))
    assert.is_true(core.monotonic() - started < 15)
    for _, consumer in ipairs(pair) do
      consumer:close(0)
    end
  end)

  it("gives up after max_reconnect_tries", function()
    local errors_seen = {}
    local client = hivent.Client.new({
      server = { port = srv.port }, max_reconnect_tries = 2,
      reconnect_backoff_time = 50, reconnect_backoff_max = 100, connect_timeout = 1000,
      on_error = function(err) errors_seen[#errors_seen + 1] = err end,
    })
    client:emit("lua:before_stop", {})
    srv:stop()
    local failed = server.wait_for(20, function()
      client:poll(0.05)
      return client:state() == "failed"
    end)
    assert.is_truthy(failed, "state is " .. client:state())
    local event, err = hivent.try(client.emit, client, "lua:after_failure", {})
    assert.is_nil(event)
    assert.are.equal("HIVENT_ERR_FAILED", err.name)
    client:poll(0)
    assert.is_true(#errors_seen >= 1)
    assert.is_true(hivent.errors.is(errors_seen[1]))
    client:close(0)
  end)

  it("replaces a failed default client", function()
    local warnings = {}
    local level = hivent.log.level()
    hivent.set_log_level("warning")
    hivent.set_logger(function(message_level, _, message)
      if message_level == hivent.log.levels.warning and message:find("default client", 1, true) then
        warnings[#warnings + 1] = message
      end
    end)
    local ok, err = pcall(function()
      hivent.configure({
        server = { port = srv.port }, max_reconnect_tries = 2,
        reconnect_backoff_time = 50, reconnect_backoff_max = 100, connect_timeout = 1000,
      })
      hivent.emit("lua:default_before_stop", {})
      local first = hivent.client()
      srv:stop()
      local failed = server.wait_for(20, function()
        hivent.poll(0.05)
        return first:state() == "failed"
      end)
      assert.is_truthy(failed, "state is " .. first:state())

      srv:restart()
      local event = hivent.emit("lua:default_after_restart", { n = 2 }, { timeout = 15 })
      assert.are.equal("lua:default_after_restart", event.name)
      assert.are_not.equal(first, hivent.client())
      assert.are.equal("closed", first:state())
      assert.are.equal(1, #warnings, table.concat(warnings, "\n"))
      assert.matches("new default client replaces it", warnings[1], 1, true)
    end)
    hivent.set_logger(nil)
    hivent.set_log_level(level)
    hivent.close(0)
    hivent.configure({})
    assert(ok, err)
  end)
end)
