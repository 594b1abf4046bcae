-- Lua strings may contain NUL bytes, but C strings end at the first one.
-- Every string passed to libhivent as a C string must raise, not be cut.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
local server = require("spec.helpers.server")

-- Asserts that the pcall result (ok, err) is a failure with
-- HIVENT_ERR_INVALID_ARG or HIVENT_ERR_INVALID_VALUE naming `argument`.
local function assert_nul_error(case, argument, ok, err)
  assert.is_false(ok, case .. " was accepted")
  assert.is_true(hivent.errors.is(err), case .. ": not a hivent error: " .. tostring(err))
  assert.is_true(err.name == "HIVENT_ERR_INVALID_ARG" or err.name == "HIVENT_ERR_INVALID_VALUE",
    case .. ": " .. tostring(err))
  assert.matches(argument, err.message, 1, true)
  assert.matches("NUL byte", err.message, 1, true)
end

describe("NUL bytes in C string arguments", function()
  local srv, client, options

  setup(function()
    srv = server.shared()
    options = { server = { port = srv.port } }
    client = hivent.Client.new(options, { client_id = "lua-nul-spec" })
  end)

  teardown(function()
    client:close(2)
  end)

  after_each(function()
    hivent.close(2)
    hivent.configure({})
  end)

  it("raises for NUL in emit arguments", function()
    local cases = {
      { "name", "hl:\0secret-suffix", {} },
      { "cid", "lua:nul", { cid = "corr\0tail" } },
      { "key", "lua:nul", { key = "\0" } },
    }
    for _, case in ipairs(cases) do
      local argument, name, emit_options = case[1], case[2], case[3]
      emit_options.version = 1
      assert_nul_error("emit " .. argument, argument,
        pcall(client.emit, client, name, {}, emit_options))
      assert_nul_error("emit_async " .. argument, argument,
        pcall(client.emit_async, client, name, {}, emit_options))
      local event, err = hivent.try_emit(name, {}, emit_options)
      assert.is_nil(event, "try_emit " .. argument)
      assert_nul_error("try_emit " .. argument, argument, false, err)
    end
  end)

  it("emits nothing for a name with NUL", function()
    hivent.configure({ server = { host = "memory" } })
    hivent.memory.clear()
    assert.has_error(function() hivent.emit("hl:\0secret-suffix", {}, { version = 1 }) end)
    assert.are.equal(0, hivent.memory.count())
  end)

  it("raises for NUL in configuration", function()
    assert_nul_error("value", "client_id",
      pcall(hivent.configure, { client_id = "producer\0x" }))
    assert_nul_error("nested value", "server.host",
      pcall(hivent.configure, { server = { host = "127.0.0.1\0evil" } }))
    assert_nul_error("key", "client_id",
      pcall(hivent.configure, { ["client_id\0x"] = "producer" }))
    assert_nul_error("client value", "client_id",
      pcall(hivent.Client.new, options, { client_id = "a\0b" }))
  end)

  it("raises for NUL in consumer topic and name", function()
    local base = { topic = "lua:nul", name = "nul_svc", partition_count = 1,
      process = function() return true end }
    for field, value in pairs({ topic = "lua:nul\0x", name = "nul_svc\0x" }) do
      local definition = {}
      for k, v in pairs(base) do definition[k] = v end
      definition[field] = value
      assert_nul_error("consumer " .. field, field,
        pcall(hivent.consumer, definition, { server = { host = "memory" } }))
    end
  end)

  it("stores a reject reason with NUL escaped", function()
    local topic = server.unique("lua:nul_reason")
    local service = server.unique("lua_nul_reason")
    local consumer = hivent.consumer({
      topic = topic, name = service, partition_count = 1,
      process = function() return nil, "bad\0reason" end,
    }, options)
    assert.is_truthy(server.wait_for(10, function()
      consumer:poll(0.05)
      return consumer:state() == "connected"
    end))
    client:emit(topic, { id = 1 })
    assert.are.equal(1, consumer:run({ count = 1, duration = 10 }))
    assert.are.equal(1, consumer.failed)
    local events = server.wait_for(10, function()
      consumer:poll(0.02)
      local body, status = server.admin(srv.port, srv.admin_key, "GET",
        "/admin/dlq?service=" .. service)
      return status == 200 and #body.events > 0 and body.events
    end)
    consumer:close(2)
    assert.is_truthy(events, "nothing in the dead-letter queue of " .. service)
    assert.are.equal("bad\\0reason", events[1].reason)
  end)
end)
