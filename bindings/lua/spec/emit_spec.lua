-- Emitting to a real hiventd.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
local core = require("hivent_core")
local server = require("spec.helpers.server")
local compare = require("spec.helpers.compare")

describe("emit", function()
  local srv, client

  setup(function()
    srv = server.shared()
  end)

  before_each(function()
    client = hivent.Client.new({ client_id = "lua-emit-spec", server = { port = srv.port } })
  end)

  after_each(function()
    client:close(2)
  end)

  it("returns the published event", function()
    local event = client:emit("lua:emitted", { id = 42, tags = { "a", "b" }, nested = { ok = true } },
      { version = 3, cid = "corr-1", key = "order-42" })
    assert.are.equal("lua:emitted", event.name)
    assert.are.equal(42, event.payload.id)
    assert.are.same({ "a", "b" }, event.payload.tags)
    assert.is_true(event.payload.nested.ok)
    assert.are.equal(3, event.meta.version)
    assert.are.equal("corr-1", event.meta.cid)
    assert.are.equal("order-42", event.meta.key)
    assert.are.equal("lua-emit-spec", event.meta.producer)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", event.meta.uuid)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", event.meta.created_at)
    assert.are.equal("connected", client:state())
  end)

  it("fills in a correlation id", function()
    local event = client:emit("lua:no_cid", {})
    assert.are.equal(1, event.meta.version)
    assert.is_string(event.meta.cid)
    assert.is_true(#event.meta.cid > 0)
  end)

  it("rejects invalid arguments", function()
    assert.has_error(function() client:emit("", {}) end)
    assert.has_error(function() client:emit("lua:x", "text") end)
    assert.has_error(function() client:emit("lua:x", {}, { version = 1.5 }) end)
    local ok, err = pcall(client.emit, client, "lua:x", {}, { version = 0 })
    assert.is_false(ok)
    assert.is_true(hivent.errors.is(err), tostring(err))
  end)

  -- Arguments that every emit function rejects with HIVENT_ERR_INVALID_ARG.
  local function invalid_emits()
    local deep = {}
    local level = deep
    for _ = 1, 200 do
      level.next = {}
      level = level.next
    end
    local cyclic = {}
    cyclic.self = cyclic
    return {
      { "empty name", "", {}, { version = 1 } },
      { "name not a string", 7, {} },
      { "payload nested 200 levels", "lua:x", deep },
      { "cyclic payload", "lua:x", cyclic },
      { "function in payload", "lua:x", { f = print } },
      { "payload a string", "lua:x", "text" },
      { "payload a sequence", "lua:x", { 1, 2 } },
      { "fractional version", "lua:x", {}, { version = 1.5 } },
      { "version beyond 64 bits", "lua:x", {}, { version = 2 ^ 63 } },
      { "key a number", "lua:x", {}, { key = 5 } },
      { "options a string", "lua:x", {}, "fast" },
      { "timeout a string", "lua:x", {}, { timeout = "soon" } },
    }
  end

  it("raises structured errors for invalid input", function()
    for _, case in ipairs(invalid_emits()) do
      local ok, err = pcall(client.emit, client, case[2], case[3], case[4])
      assert.is_false(ok, case[1])
      assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"), case[1] .. ": " .. tostring(err))
    end
  end)

  it("try_emit returns nil, err for invalid input", function()
    hivent.configure({ client_id = "lua-try-emit-spec", server = { port = srv.port } })
    local ok, failure = pcall(function()
      for _, case in ipairs(invalid_emits()) do
        local event, err = hivent.try_emit(case[2], case[3], case[4])
        assert.is_nil(event, case[1])
        assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"), case[1] .. ": " .. tostring(err))
        assert.is_string(err.message, case[1])
      end
      local event, err = hivent.try_emit("lua:try_ok", { n = 1 }, { version = 1 })
      assert.is_nil(err)
      assert.are.equal(1, event.payload.n)
    end)
    hivent.close(2)
    hivent.configure({})
    assert(ok, failure)
  end)

  it("names the field of a payload nested too deeply", function()
    local deep = {}
    local level = deep
    for _ = 1, 200 do
      level.next = {}
      level = level.next
    end
    local ok, err = pcall(client.emit, client, "lua:deep", deep)
    assert.is_false(ok)
    assert.matches("nested deeper than 64", err.message, 1, true)
    assert.matches("^payload%.next", err.message)
  end)

  it("emits asynchronously and runs callbacks on flush", function()
    local results = {}
    local ids = {}
    for i = 1, 200 do
      ids[i] = client:emit_async("lua:async", { i = i }, { key = tostring(i % 7) },
        function(err, event)
          results[#results + 1] = { err = err, event = event }
        end)
    end
    assert.are.equal(0, client:flush(10))
    assert.are.equal(200, #results)
    local seen = {}
    for _, result in ipairs(results) do
      assert.is_nil(result.err)
      seen[result.event.payload.i] = true
      assert.is_string(result.event.meta.uuid)
    end
    for i = 1, 200 do
      assert.is_true(seen[i], "no callback for emit " .. i)
    end
    assert.are.equal(200, ids[200] - ids[1] + 1)
  end)

  it("logs an error raised in a delivery callback and goes on", function()
    local logged = {}
    hivent.set_logger(function(level, facility, message)
      logged[#logged + 1] = { level = level, message = message }
    end)
    local second = false
    client:emit_async("lua:cb_error", {}, nil, function() error("callback exploded") end)
    client:emit_async("lua:cb_error", {}, nil, function() second = true end)
    local left = client:flush(10)
    hivent.set_logger(nil)
    assert.are.equal(0, left)
    assert.is_true(second)
    local found = false
    for _, entry in ipairs(logged) do
      if entry.message:find("callback exploded", 1, true) and entry.message:find("traceback", 1, true) then
        found = entry.level == 3
      end
    end
    assert.is_true(found, "the callback error was not logged with a traceback")
  end)

  it("emits the GitHub webhook payloads without loss", function()
    local examples, reason = compare.webhooks(hivent.null)
    if not examples then
      pending(reason)
      return
    end
    local failures = {}
    local published = {}
    for i, example in ipairs(examples) do
      client:emit_async("lua:webhook", example.payload, { key = example.name }, function(err, event)
        if err then
          failures[#failures + 1] = example.name .. ": " .. tostring(err)
        else
          published[i] = event
        end
      end)
    end
    assert.are.equal(0, client:flush(30))
    assert.are.same({}, failures)
    for i, example in ipairs(examples) do
      compare.assert_same(example.payload, published[i].payload, example.name)
    end
  end)

  it("fails with a structured error when no server answers", function()
    local dead = server.start()
    local port = dead.port
    dead:remove()
    local lonely = hivent.Client.new({
      server = { port = port }, max_reconnect_tries = 1, reconnect_backoff_time = 50,
      request_timeout = 500, connect_timeout = 500,
    })
    local event, err = hivent.try(lonely.emit, lonely, "lua:nowhere", {}, { timeout = 1 })
    assert.is_nil(event)
    assert.is_true(hivent.errors.is(err), tostring(err))
    assert.matches("^HIVENT_ERR_", err.name)
    lonely:close(0)
  end)
end)


describe("close", function()
  local srv, port

  before_each(function()
    srv = server.start()
    port = srv.port
    srv:stop()
  end)

  after_each(function()
    srv:remove()
  end)

  -- Returns a client of the stopped hiventd, which keeps its emits buffered.
  local function buffering_client(options)
    options.server = { port = port }
    options.max_reconnect_tries = -1
    options.reconnect_backoff_time = 100
    options.reconnect_backoff_max = 200
    return hivent.Client.new(options)
  end

  it("fails outstanding emits at once with close(0)", function()
    local client = buffering_client({ flush_timeout = 3000 })
    local errors_seen = {}
    for i = 1, 3 do
      client:emit_async("lua:close", { i = i }, nil, function(err)
        errors_seen[#errors_seen + 1] = err
      end)
    end
    local started = core.monotonic()
    client:close(0)
    local elapsed = core.monotonic() - started
    assert.is_true(elapsed < 1, "close(0) took " .. elapsed .. " s")
    assert.are.equal("closed", client:state())
    assert.are.equal(3, #errors_seen)
    for _, err in ipairs(errors_seen) do
      assert.are.equal("HIVENT_ERR_DESTROYED", err.name)
    end
  end)

  it("waits flush_timeout once without a timeout", function()
    local client = buffering_client({ flush_timeout = 600 })
    local failure
    client:emit_async("lua:close", {}, nil, function(err) failure = err end)
    local started = core.monotonic()
    client:close()
    local elapsed = core.monotonic() - started
    assert.is_true(elapsed >= 0.5, "close() took " .. elapsed .. " s")
    assert.is_true(elapsed < 1.1, "close() took " .. elapsed .. " s")
    assert.are.equal("HIVENT_ERR_DESTROYED", failure.name)
  end)
end)
