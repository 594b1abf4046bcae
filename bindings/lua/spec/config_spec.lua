-- Configuration errors and HIVENT_* environment variables.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
local config = require("hivent.config")
local server = require("spec.helpers.server")

-- Runs a Lua snippet in a child interpreter with extra environment
-- variables and returns its output.
local function run_child(env, code)
  local prefix = {}
  for name, value in pairs(env) do
    prefix[#prefix + 1] = name .. "=" .. server.quote(value)
  end
  local command = string.format("env %s lua5.4 -e %s 2>&1", table.concat(prefix, " "),
    server.quote(code))
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("a")
  pipe:close()
  return output
end

describe("configuration", function()
  after_each(function()
    hivent.close()
    hivent.configure({})
  end)

  it("rejects an unknown key with a structured error", function()
    local ok, err = pcall(hivent.configure, { no_such_option = 1 })
    assert.is_false(ok)
    assert.is_true(hivent.errors.is(err, "HIVENT_ERR_UNKNOWN_KEY"))
    assert.are.equal(hivent.errors.codes.HIVENT_ERR_UNKNOWN_KEY, err.code)
    assert.matches("no_such_option", err.message, 1, true)
    assert.matches("^HIVENT_ERR_UNKNOWN_KEY: ", tostring(err))
  end)

  it("rejects an unknown nested key", function()
    local ok, err = pcall(hivent.configure, { server = { hots = "x" } })
    assert.is_false(ok)
    assert.is_true(hivent.errors.is(err, "UNKNOWN_KEY"))
    assert.matches("server.hots", err.message, 1, true)
  end)

  it("rejects invalid values naming the key", function()
    local cases = {
      { { max_reconnect_tries = "often" }, "max_reconnect_tries" },
      { { reconnect_backoff_time = -5 }, "reconnect_backoff_time" },
      { { server = { port = 70000 } }, "server.port" },
      { { server = { secure = "maybe" } }, "server.secure" },
      { { client_id = { "not", "a", "string" } }, "client_id" },
      { { reconnect_backoff_time = 1.5 }, "reconnect_backoff_time" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(hivent.configure, case[1])
      assert.is_false(ok, "accepted " .. case[2])
      assert.is_true(hivent.errors.is(err), "not a hivent error: " .. tostring(err))
      assert.matches(case[2], tostring(err), 1, true)
    end
  end)

  it("rejects a configuration that is not a table", function()
    local ok, err = pcall(hivent.configure, "server=memory")
    assert.is_false(ok)
    assert.is_true(hivent.errors.is(err, "INVALID_VALUE"))
  end)

  it("keeps the previous settings after an error", function()
    hivent.configure({ client_id = "kept", server = { host = "memory" } })
    pcall(hivent.configure, { bogus = true })
    assert.are.equal("kept", hivent.settings().client_id)
    assert.are.equal("kept", hivent.emit("config:kept", {}).meta.producer)
  end)

  it("accepts the documented options", function()
    assert.has_no.errors(function()
      hivent.configure({
        client_id = "svc", max_reconnect_tries = -1, reconnect_backoff_time = 250,
        server = { host = "127.0.0.1", port = 4000, secure = false, api_key = "k" },
        ["tls.verify"] = true,
      })
    end)
    local conf = config.build()
    assert.are.equal("svc", config.get(conf, "client_id"))
    assert.are.equal("250", config.get(conf, "reconnect_backoff_time"))
    assert.are.equal("4000", config.get(conf, "server.port"))
    assert.are.equal("(set)", config.get(conf, "server.api_key"))
    require("hivent_core").hivent_conf_destroy(conf)
  end)

  it("rejects invalid consumer definitions", function()
    local base = { topic = "a:b", name = "svc", partition_count = 2, process = function() return true end }
    for field, value in pairs({ topic = "", name = 5, partition_count = 0, version = -1, process = "x" }) do
      local definition = {}
      for k, v in pairs(base) do definition[k] = v end
      definition[field] = value
      local ok, err = pcall(hivent.consumer, definition, { server = { host = "memory" } })
      assert.is_false(ok, "accepted " .. field)
      assert.is_true(hivent.errors.is(err, "INVALID_ARG"), tostring(err))
      assert.matches(field == "name" and "name" or field, err.message, 1, true)
    end
  end)

  it("applies HIVENT_* environment variables", function()
    local output = run_child({ HIVENT_SERVER_HOST = "memory", HIVENT_CLIENT_ID = "from-env" },
      [[local h = require("hivent"); io.write(h.emit("env:test", {}).meta.producer)]])
    assert.are.equal("from-env", output)
  end)

  it("lets explicit options override the environment", function()
    local output = run_child({ HIVENT_SERVER_HOST = "memory", HIVENT_CLIENT_ID = "from-env" },
      [[local h = require("hivent"); h.configure{client_id = "explicit"}
        io.write(h.emit("env:test", {}).meta.producer)]])
    assert.are.equal("explicit", output)
  end)

  it("gives clients the configure settings over the environment", function()
    local output = run_child({ HIVENT_SERVER_HOST = "memory", HIVENT_CLIENT_ID = "from-env" },
      [[local h = require("hivent"); h.configure{client_id = "from-configure"}
        local configured = h.Client.new()
        local explicit = h.Client.new{client_id = "from-options"}
        io.write(configured:emit("env:test", {}).meta.producer, " ",
          explicit:emit("env:test", {}).meta.producer)]])
    assert.are.equal("from-configure from-options", output)
  end)

  it("lets consumers follow configure env = false", function()
    -- The consumer would see only version 5 events if it read the variable.
    local output = run_child({ HIVENT_CONSUMER_VERSION = "5" },
      [[local h = require("hivent"); h.configure{env = false, server = {host = "memory"}}
        local seen = {}
        local consumer = h.consumer{topic = "env:consumer", name = "env_consumer",
          partition_count = 1,
          process = function(event) seen[#seen + 1] = event.meta.version; return true end}
        for _ = 1, 20 do consumer:poll(0.05) end
        h.emit("env:consumer", {}, {version = 1})
        h.emit("env:consumer", {}, {version = 5})
        consumer:run{count = 2, duration = 5}
        io.write(table.concat(seen, ","))]])
    assert.are.equal("1,5", output)
  end)

  it("reports a bad environment value", function()
    local output = run_child({ HIVENT_MAX_RECONNECT_TRIES = "lots" },
      [[local h = require("hivent"); local ok, err = pcall(h.configure, {})
        io.write(tostring(err))]])
    assert.matches("HIVENT_ERR_INVALID_VALUE", output, 1, true)
    assert.matches("max_reconnect_tries", output, 1, true)
  end)

  it("offers the nil, err convention", function()
    hivent.configure({ server = { host = "memory" } })
    local event, err = hivent.try_emit("try:ok", { a = 1 })
    assert.is_nil(err)
    assert.are.equal("try:ok", event.name)
    local value, failure = hivent.try(hivent.configure, { nope = 1 })
    assert.is_nil(value)
    assert.are.equal("HIVENT_ERR_UNKNOWN_KEY", failure.name)
    -- Errors that are not hivent errors still raise.
    assert.has_error(function() hivent.try(error, "plain") end, "plain")
  end)
end)
