-- Consuming from a real hiventd: delivery, dead-letter queue, errors in
-- process.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
local server = require("spec.helpers.server")

-- Waits until `consumer` is connected (its channel joined).
local function wait_connected(consumer, seconds)
  return server.wait_for(seconds or 10, function()
    consumer:poll(0.05)
    return consumer:state() == "connected"
  end)
end

local function dead_letters(srv, service)
  local body, status, text = server.admin(srv.port, srv.admin_key, "GET",
    "/admin/dlq?service=" .. service)
  assert.are.equal(200, status, "admin request failed: " .. tostring(text))
  return body.events
end

describe("consumer", function()
  local srv, client, options

  setup(function()
    srv = server.shared()
    options = { server = { port = srv.port } }
    client = hivent.Client.new(options, { client_id = "lua-consume-spec" })
  end)

  teardown(function()
    client:close(2)
  end)

  it("receives emitted events with queue and partition", function()
    local topic = server.unique("lua:consume")
    local service = server.unique("lua_consume")
    local received = {}
    local consumer = hivent.consumer({
      topic = topic, name = service, partition_count = 3,
      process = function(event)
        received[#received + 1] = event
        return true
      end,
    }, options)
    assert.is_truthy(wait_connected(consumer))
    local sent = client:emit(topic, { order = 1, items = { "a", "b" }, price = 9.75 },
      { key = "customer-1", version = 2, cid = "c-9" })
    local count = consumer:run({ count = 1, duration = 10 })
    consumer:close(2)
    assert.are.equal(1, count)
    local event = received[1]
    assert.are.equal(topic, event.name)
    assert.are.equal(1, event.payload.order)
    assert.are.same({ "a", "b" }, event.payload.items)
    assert.are.equal(9.75, event.payload.price)
    assert.are.equal(sent.meta.uuid, event.meta.uuid)
    assert.are.equal(sent.meta.created_at, event.meta.created_at)
    assert.are.equal("lua-consume-spec", event.meta.producer)
    assert.are.equal(2, event.meta.version)
    assert.are.equal("c-9", event.meta.cid)
    assert.are.equal("customer-1", event.meta.key)
    assert.is_true(event.partition >= 0 and event.partition < 3)
    assert.are.equal(service .. ":" .. event.partition, event.queue)
    assert.are.equal(1, consumer.processed)
    assert.are.equal(0, consumer.failed)
  end)

  it("keeps the order of events with one key", function()
    local topic = server.unique("lua:order")
    local Ordered = hivent.Consumer:extend({ topic = topic, name = server.unique("lua_order"),
      partition_count = 4 })
    function Ordered:process(event)
      self.seen[#self.seen + 1] = event.payload.n
      return true
    end
    local consumer = Ordered:new({ seen = {} }, options)
    assert.is_truthy(wait_connected(consumer))
    for n = 1, 50 do
      client:emit_async(topic, { n = n }, { key = "same-key" })
    end
    assert.are.equal(0, client:flush(10))
    assert.are.equal(50, consumer:run({ count = 50, duration = 15 }))
    consumer:close(2)
    for n = 1, 50 do
      assert.are.equal(n, consumer.seen[n])
    end
  end)

  it("describes table dead-letter reasons", function()
    local topic = server.unique("lua:dlq_table")
    local service = server.unique("lua_dlq_table")
    -- Payload id -> what process does with the event.
    local outcomes = {
      function() return nil, { message = "card declined" } end,
      function() return nil, { code = 7 } end,
      function() return nil, hivent.errors.new(hivent.errors.codes.HIVENT_ERR_TIMED_OUT, "slow") end,
      function() error({ message = "raised table" }) end,
      function() return false, print end,
    }
    local expected = {
      "card declined",
      "a table without a message field",
      "HIVENT_ERR_TIMED_OUT: slow",
      "raised table",
      "a function value",
    }
    local failed = {}
    local consumer = hivent.consumer({
      topic = topic, name = service, partition_count = 1,
      process = function(event) return outcomes[event.payload.id]() end,
      on_failed = function(event, reason) failed[event.payload.id] = reason end,
    }, options)
    assert.is_truthy(wait_connected(consumer))
    for id = 1, #outcomes do
      client:emit(topic, { id = id }, { key = "one" })
    end
    local previous_level = hivent.log.level()
    hivent.set_log_level("crit")
    local count = consumer:run({ count = #outcomes, duration = 10 })
    hivent.set_log_level(previous_level)
    assert.are.equal(#outcomes, count)
    assert.are.same(expected, failed)
    local events = server.wait_for(10, function()
      consumer:poll(0.02)
      local list = dead_letters(srv, service)
      return #list >= #outcomes and list
    end)
    assert.is_truthy(events, "the dead-letter queue of " .. service .. " is incomplete")
    local stored = {}
    for _, entry in ipairs(events) do
      stored[entry.event.payload.id] = entry.reason
    end
    for id, reason in ipairs(expected) do
      assert.are.equal(reason, stored[id], "reason of event " .. id)
    end
    consumer:close(2)
  end)

  it("checks partition_count type and range", function()
    local cases = {
      { "2", "got string 2" },
      { 2 ^ 53, "got number 9.007199254741e+15" },
      { 0, "got number 0" },
      { 4097, "got number 4097" },
      { 1.5, "got number 1.5" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(hivent.consumer, {
        topic = "lua:x", name = "lua_partitions", partition_count = case[1],
        process = function() return true end,
      }, options)
      assert.is_false(ok)
      assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"), tostring(err))
      assert.matches("partition_count must be an integer from 1 to 4096", err.message, 1, true)
      assert.matches(case[2], err.message, 1, true)
    end
    local ok, err = pcall(hivent.consumer, {
      topic = "lua:x", name = "lua_versions", partition_count = 1, version = "2",
      process = function() return true end,
    }, options)
    assert.is_false(ok)
    assert.matches("version must be a positive integer or nil, got string 2", err.message, 1, true)
  end)

  it("dead-letters an event when process returns nil, err", function()
    local topic = server.unique("lua:dlq")
    local service = server.unique("lua_dlq")
    local failed = {}
    local consumer = hivent.consumer({
      topic = topic, name = service, partition_count = 1,
      process = function(event)
        if event.payload.bad then
          return nil, "bad order " .. event.payload.id
        end
        return true
      end,
      on_failed = function(event, reason) failed[#failed + 1] = reason end,
    }, options)
    assert.is_truthy(wait_connected(consumer))
    client:emit(topic, { id = 1, bad = true })
    client:emit(topic, { id = 2, bad = false })
    assert.are.equal(2, consumer:run({ count = 2, duration = 10 }))
    assert.are.equal(1, consumer.processed)
    assert.are.equal(1, consumer.failed)
    assert.are.same({ "bad order 1" }, failed)
    local events = server.wait_for(10, function()
      consumer:poll(0.02)
      local list = dead_letters(srv, service)
      return #list > 0 and list
    end)
    assert.is_truthy(events, "nothing in the dead-letter queue of " .. service)
    assert.are.equal(1, #events)
    assert.are.equal(service .. ":0:dead_letter", events[1].queue)
    assert.are.equal(1, events[1].event.payload.id)
    assert.are.equal("bad order 1", events[1].reason)
    consumer:close(2)
  end)

  it("logs each dead letter once", function()
    local topic = server.unique("lua:dlq_log")
    local logged = {}
    hivent.set_log_level("debug")
    hivent.set_logger(function(level, facility, message)
      logged[#logged + 1] = { level = level, facility = facility, message = message }
    end)
    local ok, err = pcall(function()
      local consumer = hivent.consumer({
        topic = topic, name = server.unique("lua_dlq_log"), partition_count = 1,
        process = function() return nil, "rejected on purpose" end,
      }, options)
      assert.is_truthy(wait_connected(consumer))
      local sent = client:emit(topic, { id = 1 })
      assert.are.equal(1, consumer:run({ count = 1, duration = 10 }))
      -- The core's log lines arrive as notices on the next polls.
      for _ = 1, 5 do consumer:poll(0.05) end
      consumer:close(2)
      local lines = {}
      for _, entry in ipairs(logged) do
        if entry.message:find(sent.meta.uuid, 1, true)
            and entry.message:find("dead-letter", 1, true) then
          lines[#lines + 1] = entry
        end
      end
      assert.are.equal(1, #lines, "dead-letter log lines: " .. #lines)
      assert.matches("rejected on purpose", lines[1].message, 1, true)
    end)
    hivent.set_logger(nil)
    hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
    assert(ok, err)
  end)

  it("counts an error in process as a failure and logs its traceback", function()
    local topic = server.unique("lua:raise")
    local service = server.unique("lua_raise")
    local logged = {}
    hivent.set_logger(function(level, facility, message)
      logged[#logged + 1] = { level = level, facility = facility, message = message }
    end)
    local consumer = hivent.consumer({
      topic = topic, name = service, partition_count = 1,
      process = function(event)
        if event.payload.explode then
          error("process exploded on " .. event.payload.id)
        end
        return true
      end,
    }, options)
    local ok, err = pcall(function()
      assert.is_truthy(wait_connected(consumer))
      client:emit(topic, { id = 1, explode = true })
      client:emit(topic, { id = 2 })
      assert.are.equal(2, consumer:run({ count = 2, duration = 10 }))
    end)
    hivent.set_logger(nil)
    assert(ok, err)
    assert.are.equal(1, consumer.failed)
    assert.are.equal(1, consumer.processed)
    local entry
    for _, candidate in ipairs(logged) do
      if candidate.message:find("process exploded on 1", 1, true) and candidate.level == 3 then
        entry = candidate
      end
    end
    assert.is_truthy(entry, "the error was not logged")
    assert.matches("stack traceback", entry.message, 1, true)
    local events = server.wait_for(10, function()
      consumer:poll(0.02)
      local list = dead_letters(srv, service)
      return #list > 0 and list
    end)
    consumer:close(2)
    assert.is_truthy(events)
    assert.matches("process exploded on 1", events[1].reason, 1, true)
  end)

  it("stops run() from inside process", function()
    local topic = server.unique("lua:stop")
    local consumer
    consumer = hivent.consumer({
      topic = topic, name = server.unique("lua_stop"), partition_count = 1,
      process = function()
        consumer:stop()
        return true
      end,
    }, options)
    assert.is_truthy(wait_connected(consumer))
    client:emit(topic, { a = 1 })
    client:emit(topic, { a = 2 })
    local started = require("hivent_core").monotonic()
    local count = consumer:run({ duration = 10 })
    local elapsed = require("hivent_core").monotonic() - started
    consumer:close(2)
    assert.are.equal(1, count)
    assert.is_true(elapsed < 5)
  end)

  it("run returns nil, err for invalid use", function()
    local consumer = hivent.consumer({
      topic = server.unique("lua:run_args"), name = server.unique("lua_run_args"),
      partition_count = 1, process = function() return true end,
    }, options)
    local cases = {
      { "options a string", "soon", "HIVENT_ERR_INVALID_ARG" },
      { "negative duration", { duration = -1 }, "HIVENT_ERR_INVALID_ARG" },
      { "count a string", { count = "2" }, "HIVENT_ERR_INVALID_ARG" },
      { "poll_interval NaN", { poll_interval = 0 / 0 }, "HIVENT_ERR_INVALID_ARG" },
    }
    for _, case in ipairs(cases) do
      local count, err = consumer:run(case[2])
      assert.is_nil(count, case[1])
      assert.is_true(hivent.errors.is(err, case[3]), case[1] .. ": " .. tostring(err))
    end
    local total, all_err = hivent.run_all({ consumer }, { duration = "long" })
    assert.is_nil(total)
    assert.is_true(hivent.errors.is(all_err, "HIVENT_ERR_INVALID_ARG"), tostring(all_err))
    consumer:close(2)
    local count, err = consumer:run({ duration = 0.1 })
    assert.is_nil(count)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_STATE"), tostring(err))
  end)

  it("runs several consumers in one loop", function()
    local topic = server.unique("lua:many")
    local counts = { 0, 0 }
    local consumers = {}
    for i = 1, 2 do
      consumers[i] = hivent.consumer({
        topic = topic, name = server.unique("lua_many" .. i), partition_count = 1,
        process = function()
          counts[i] = counts[i] + 1
          return true
        end,
      }, options)
      assert.is_truthy(wait_connected(consumers[i]))
    end
    for n = 1, 5 do
      client:emit(topic, { n = n })
    end
    server.wait_for(10, function()
      hivent.run_all(consumers, { duration = 0.2 })
      return counts[1] == 5 and counts[2] == 5
    end)
    for _, consumer in ipairs(consumers) do
      consumer:close(2)
    end
    assert.are.same({ 5, 5 }, counts)
  end)
end)
