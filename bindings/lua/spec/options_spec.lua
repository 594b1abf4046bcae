-- Misspelled keys in option tables raise errors that name the key and
-- list the accepted ones.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")

local MEMORY = { server = { host = "memory" } }

local function process()
  return true
end

-- Calls fn and returns the error it raised.  Fails the test when fn
-- returns normally.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "no error was raised")
  return err
end

describe("option keys", function()
  local client

  setup(function()
    client = hivent.Client.new(MEMORY)
  end)

  teardown(function()
    client:close(0)
    hivent.close(0)
    hivent.configure({})
  end)

  it("rejects unknown emit options", function()
    local err = raised(function()
      client:emit("v:x", {}, { verison = 2, kee = "user-7" })
    end)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"))
    assert.matches("unknown emit option", err.message, 1, true)
    assert.is_truthy(err.message:find('"verison"', 1, true) or err.message:find('"kee"', 1, true),
      err.message)
    assert.matches("the accepted options are cid, key, timeout, version", err.message, 1, true)
  end)

  it("rejects unknown async emit options", function()
    local err = raised(function()
      client:emit_async("v:x", {}, { kee = "user-7" })
    end)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"))
    assert.matches('unknown emit option "kee"', err.message, 1, true)
    assert.are.equal(0, client:outstanding())
  end)

  it("rejects unknown module emit options", function()
    hivent.configure(MEMORY)
    local event, err = hivent.try_emit("v:x", {}, { verison = 2 })
    assert.is_nil(event)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"))
    assert.matches('unknown emit option "verison"', err.message, 1, true)
  end)

  it("rejects non-string option keys", function()
    local err = raised(function()
      client:emit("v:x", {}, { 2 })
    end)
    assert.matches("unknown emit option 1", err.message, 1, true)
  end)

  it("accepts every documented emit option", function()
    local event = client:emit("v:x", { n = 1 }, { version = 2, cid = "c-1", key = "k", timeout = 5 })
    assert.are.equal(2, event.meta.version)
    assert.are.equal("c-1", event.meta.cid)
  end)

  it("rejects unknown consumer definition keys", function()
    local err = raised(function()
      hivent.consumer({
        topic = "v:x", name = "svc", partition_count = 1, process = process, verison = 2,
      }, MEMORY)
    end)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"))
    assert.matches('unknown consumer definition option "verison"', err.message, 1, true)
    assert.matches("name, on_failed, on_processed, partition_count, process, topic, version",
      err.message, 1, true)
  end)

  it("rejects unknown run options", function()
    local consumer = hivent.consumer({
      topic = "v:x", name = "svc", partition_count = 1, process = process,
    }, MEMORY)
    local count, err = consumer:run({ durration = 1 })
    consumer:close(0)
    assert.is_nil(count)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_ARG"))
    assert.matches('unknown run option "durration"', err.message, 1, true)
    assert.matches("count, duration, poll_interval", err.message, 1, true)
  end)

  it("rejects unknown handler options", function()
    local cases = {
      function() hivent.configure({ on_stat = print }) end,
      function() hivent.Client.new(MEMORY, { on_eror = print }) end,
      function()
        hivent.consumer({ topic = "v:x", name = "svc", partition_count = 1, process = process },
          { server = { host = "memory" }, on_stat = print })
      end,
    }
    for i, case in ipairs(cases) do
      local err = raised(case)
      assert.is_true(hivent.errors.is(err, "HIVENT_ERR_UNKNOWN_KEY"), "case " .. i)
      assert.matches("unknown handler option", err.message, 1, true)
      assert.matches("on_error and on_state", err.message, 1, true)
    end
  end)

  it("rejects a function as a nested value", function()
    local err = raised(function()
      hivent.Client.new({ server = { host = "memory", port = print } })
    end)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_INVALID_VALUE"))
    assert.matches("server.port must be a string, number or boolean, got function", err.message,
      1, true)
  end)

  it("uses handlers given to configure", function()
    local handler = function() end
    hivent.configure({ server = { host = "memory" }, on_state = handler, on_error = handler })
    local configured = hivent.Client.new()
    assert.are.equal(handler, configured.on_state)
    assert.are.equal(handler, configured.on_error)
    configured:close(0)
  end)
end)
