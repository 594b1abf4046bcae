--- Builds core configurations (hivent_conf_t) from Lua option tables.
--
-- Options use the core's key names.  Nested tables stand for dotted keys,
-- so {server = {host = "h", port = 4000}} sets "server.host" and
-- "server.port"; a dotted string key such as ["tls.verify"] works too.
-- Values may be strings, integers, integral floats or booleans.  Unless
-- `env = false` is given, HIVENT_* environment variables are applied
-- first, so explicit options override the environment.
local core = require("hivent_core")
local errors = require("hivent.errors")
local log = require("hivent.log")

local config = {}

--- Options set by hivent.configure(); every new client and consumer
-- starts from them.
config.settings = {}

-- Option names handled by the Lua layer, never passed to the core.
local LUA_OPTIONS = { env = true }
-- Function-valued options: the handlers of clients and consumers.
local HANDLER_OPTIONS = { on_state = true, on_error = true }

local function format_value(key, value)
  local kind = type(value)
  if kind == "string" then
    -- libhivent takes C strings, which would end at the NUL byte.
    if value:find("\0", 1, true) then
      errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
        string.format("configuration value of %s must not contain a NUL byte", key), 4)
    end
    return value
  elseif kind == "boolean" then
    return value and "true" or "false"
  elseif kind == "number" then
    if math.type(value) == "integer" then
      return string.format("%d", value)
    end
    local integer = math.tointeger(value)
    if integer then
      return string.format("%d", integer)
    end
    return tostring(value)
  end
  errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
    string.format("configuration value of %s must be a string, number or boolean, got %s",
      key, kind), 4)
end

--- Flattens nested option tables into a sorted list of {key, value}.
local function flatten(prefix, options, out, depth)
  if depth > 8 then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
      "configuration tables are nested too deeply at " .. prefix, 4)
  end
  for key, value in pairs(options) do
    if type(key) ~= "string" and prefix ~= "" then
      errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
        string.format("configuration value of %s must be a string, number or boolean, got table",
          prefix), 4)
    elseif type(key) ~= "string" then
      errors.raise(errors.codes.HIVENT_ERR_UNKNOWN_KEY,
        string.format("configuration keys must be strings, got %s %s",
          type(key), tostring(key)), 4)
    end
    local full = prefix == "" and key or (prefix .. "." .. key)
    if key:find("\0", 1, true) then
      errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
        string.format("configuration key %q must not contain a NUL byte", full), 4)
    end
    if prefix == "" and LUA_OPTIONS[key] then
      -- Handled by the caller.
    elseif type(value) == "table" then
      flatten(full, value, out, depth + 1)
    elseif type(value) ~= "function" then
      out[#out + 1] = { full, format_value(full, value) }
    elseif prefix ~= "" then
      format_value(full, value)
    elseif not HANDLER_OPTIONS[key] then
      errors.raise(errors.codes.HIVENT_ERR_UNKNOWN_KEY,
        string.format("unknown handler option %q; the accepted handler options are on_error "
          .. "and on_state", key), 4)
    end
  end
  if prefix == "" then
    table.sort(out, function(a, b) return a[1] < b[1] end)
  end
  return out
end

--- Returns a sorted list of {key, string value} pairs for `options`.
function config.flatten(options)
  if options == nil then
    return {}
  end
  if type(options) ~= "table" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
      "configuration must be a table, got " .. type(options), 3)
  end
  return flatten("", options, {}, 0)
end

local function apply(conf, options)
  if options.env ~= false then
    local err, errstr = core.hivent_conf_load_env(conf)
    if err ~= 0 then
      errors.raise(err, errstr, 3)
    end
  end
  -- Logs come back as notices and go to the Lua logger.
  core.hivent_conf_set(conf, "log.queue", "true")
  core.hivent_conf_set(conf, "log_level", log.level())
  for _, pair in ipairs(config.flatten(options)) do
    local err, errstr = core.hivent_conf_set(conf, pair[1], pair[2])
    if err ~= 0 then
      errors.raise(err, errstr, 3)
    end
  end
end

local function build(base, ...)
  local merged = config.merge_value({ env = true }, base)
  for i = 1, select("#", ...) do
    local options = select(i, ...)
    if options ~= nil then
      if type(options) ~= "table" then
        errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE,
          "configuration must be a table, got " .. type(options), 3)
      end
      for key, value in pairs(options) do
        merged[key] = config.merge_value(merged[key], value)
      end
    end
  end
  local conf = core.hivent_conf_new()
  if conf == nil then
    errors.raise(errors.codes.HIVENT_ERR_NO_MEMORY, "cannot allocate a configuration", 3)
  end
  local ok, err = pcall(apply, conf, merged)
  if not ok then
    core.hivent_conf_destroy(conf)
    error(err, 3)
  end
  return conf
end

--- Returns a new hivent_conf_t built from the option tables given, later
-- tables overriding earlier ones and all of them overriding
-- config.settings.  The caller owns the result and must hand it to a
-- constructor or destroy it.  Raises a structured error
-- (HIVENT_ERR_UNKNOWN_KEY, HIVENT_ERR_INVALID_VALUE) naming the key.
function config.build(...)
  return build(config.settings, ...)
end

--- Merges nested option tables (server, tls, queue, ...) key by key.
function config.merge_value(old, new)
  if type(old) == "table" and type(new) == "table" then
    local merged = {}
    for key, value in pairs(old) do merged[key] = value end
    for key, value in pairs(new) do merged[key] = config.merge_value(merged[key], value) end
    return merged
  end
  return new
end

--- Reads one key of a configuration as a string (the API key reads back
-- as "(set)" or "").
function config.get(conf, key)
  local err, value = core.hivent_conf_get(conf, key)
  if err ~= 0 then
    errors.raise(err, "cannot read configuration key " .. tostring(key), 2)
  end
  return value
end

--- Checks `options` alone (without config.settings) by building and
-- destroying a configuration.
function config.validate(options)
  core.hivent_conf_destroy(build({}, options))
end

return config
