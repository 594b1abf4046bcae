--- Lua binding of libhivent, the client of the Hivent event bus.
--
--   local hivent = require("hivent")
--   hivent.configure{client_id = "billing", server = {host = "127.0.0.1", port = 4000}}
--   local event = hivent.emit("invoice:paid", {id = 7}, {version = 1, key = "7"})
--
-- The module-level functions use one default client, created on first use
-- from the settings of the last configure() call (and HIVENT_*
-- environment variables).  Explicit clients: hivent.Client.new(options).
local core = require("hivent_core")
local Client = require("hivent.client")
local config = require("hivent.config")
local Consumer = require("hivent.consumer")
local errors = require("hivent.errors")
local Event = require("hivent.event")
local log = require("hivent.log")
local memory = require("hivent.memory")

if core.hivent_version_check(core.HIVENT_VERSION) ~= 0 then
  error(string.format("hivent: the loaded libhivent %s cannot serve this module "
    .. "(built against header version 0x%06x)", core.hivent_version_str(), core.HIVENT_VERSION))
end

local array_meta = core.array_meta()

local hivent = {
  VERSION = "0.1.0",
  core_version = core.hivent_version_str(),
  --- Stands for MessagePack nil inside payload tables.
  null = core.null_value(),
  errors = errors,
  Client = Client,
  Consumer = Consumer,
  Event = Event,
  log = log,
  memory = memory,
  set_logger = log.set_logger,
  set_log_level = log.set_level,
  try = errors.try,
  run_all = Consumer.run_all,
}

--- Marks `t` (default: a new table) as an array, so that it packs as a
-- MessagePack array even when empty.  Decoded arrays carry this mark.
function hivent.array(t)
  t = t or {}
  if type(t) ~= "table" then
    error("hivent.array expects a table or nil, got " .. type(t), 2)
  end
  return setmetatable(t, array_meta)
end

--- Returns true when `t` carries the array mark.
function hivent.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_meta
end

local default_client = nil

--- Sets the options every client and consumer created afterwards starts
-- from (the default client included): client_id, server = {host, port,
-- secure, api_key}, max_reconnect_tries, reconnect_backoff_time and any
-- other core key.  Checks the options at once (raising a structured
-- error naming a bad key) and closes the previous default client.
function hivent.configure(options)
  options = options or {}
  if type(options) ~= "table" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
      "configure expects a table of options, got " .. type(options), 2)
  end
  config.validate(options)
  if default_client then
    default_client:close()
    default_client = nil
  end
  config.settings = config.merge_value({}, options)
end

--- Returns a copy of the settings given to configure().
function hivent.settings()
  return config.merge_value({}, config.settings)
end

--- Returns the default client, creating it on first use.
function hivent.client()
  if default_client == nil or default_client.handle == nil then
    default_client = Client.new()
  end
  return default_client
end

-- Returns the default client for an emit.  A default client in the
-- failed state has used up its reconnect attempts and accepts no more
-- emits.  Module-level callers cannot create a client, so it is replaced.
local function emitting_client()
  if default_client and default_client.handle and default_client:state() == "failed" then
    log.warning("client", "the default client gave up reconnecting (state failed), "
      .. "so a new default client replaces it")
    default_client:close(0)
    default_client = nil
  end
  return hivent.client()
end

--- Emits with the default client; see Client:emit.  Returns the
-- published event, raises a structured error on failure.  A default
-- client in the failed state is replaced by a new one first.
function hivent.emit(name, payload, options)
  return emitting_client():emit(name, payload, options)
end

--- Emits like hivent.emit but returns nil and an error object instead of
-- raising, for every failure: invalid arguments and payloads
-- (HIVENT_ERR_INVALID_ARG), configuration and core errors.  Only a SIGINT
-- interruption still raises.
function hivent.try_emit(name, payload, options)
  local ok, result = pcall(hivent.emit, name, payload, options)
  if ok then
    return result
  end
  return nil, errors.wrap(result)
end

--- Queues an emit on the default client; see Client:emit_async.  A
-- default client in the failed state is replaced by a new one first.
function hivent.emit_async(name, payload, options, callback)
  return emitting_client():emit_async(name, payload, options, callback)
end

--- Waits up to `timeout` seconds for the default client's outstanding
-- emits; returns how many are still outstanding.
function hivent.flush(timeout)
  if default_client == nil then
    return 0
  end
  return default_client:flush(timeout)
end

--- Handles the default client's pending notices; see Client:poll.
function hivent.poll(timeout)
  return hivent.client():poll(timeout)
end

--- Flushes and closes the default client.
function hivent.close(timeout)
  if default_client then
    default_client:close(timeout)
    default_client = nil
  end
end

local CONSUMER_DEFINITION_KEYS = {
  topic = true, name = true, partition_count = true, version = true,
  process = true, on_processed = true, on_failed = true,
}

--- Creates a consumer from a plain table {topic, name, partition_count,
-- version, process = function(event) ... end, on_processed(event),
-- on_failed(event, reason)}.  Functions receive the event only.
-- `options` overrides configuration for this consumer.
function hivent.consumer(definition, options)
  if type(definition) ~= "table" then
    error("consumer definition must be a table, got " .. type(definition), 2)
  end
  errors.check_keys(definition, CONSUMER_DEFINITION_KEYS, "consumer definition", 2)
  local fields = {
    topic = definition.topic,
    name = definition.name,
    partition_count = definition.partition_count,
    version = definition.version,
    definition = definition,
  }
  if type(definition.process) == "function" then
    fields.process = function(_, event) return definition.process(event) end
  end
  if definition.on_processed then
    fields.on_processed = function(_, event) return definition.on_processed(event) end
  end
  if definition.on_failed then
    fields.on_failed = function(_, event, reason) return definition.on_failed(event, reason) end
  end
  return Consumer:new(fields, options)
end

return hivent
