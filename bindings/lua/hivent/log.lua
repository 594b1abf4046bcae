--- Logging of the hivent binding.
--
-- Core log lines arrive as notices and are passed, together with the Lua
-- layer's own messages, to one logger function:
--   logger(level, facility, message)
-- where level is a syslog level (3 error, 4 warning, 5 notice, 6 info,
-- 7 debug) and facility names the part that logged ("conn", "emit",
-- "process", ...).  The default logger writes one line per message to
-- io.stderr.  Messages above the current level are dropped before they
-- reach the logger.
local log = {}

log.levels = {
  emerg = 0, alert = 1, crit = 2, error = 3,
  warning = 4, notice = 5, info = 6, debug = 7,
}
log.names = {}
for name, level in pairs(log.levels) do
  log.names[level] = name
end

local current_level = log.levels.info

local is_interrupt = require("hivent.errors").is_interrupt

--- Writes "TIME hivent LEVEL [facility] message" to io.stderr.
function log.stderr_logger(level, facility, message)
  io.stderr:write(string.format("%s hivent %s [%s] %s\n",
    os.date("!%Y-%m-%dT%H:%M:%SZ"), log.names[level] or tostring(level),
    facility, message))
end

local logger = log.stderr_logger

--- Converts a level name or number to a syslog level number.
function log.level_number(level)
  if type(level) == "number" and math.type(level) == "integer"
      and level >= 0 and level <= 7 then
    return level
  end
  local number = log.levels[level]
  if number == nil then
    error(string.format("invalid log level %q: use one of debug, info, notice, "
      .. "warning, error, or 0 to 7", tostring(level)), 3)
  end
  return number
end

--- Sets the logger function; nil restores the stderr logger.
function log.set_logger(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("logger must be a function(level, facility, message) or nil", 2)
  end
  logger = fn or log.stderr_logger
end

--- Sets the maximum level passed to the logger (a name or 0..7).
function log.set_level(level)
  current_level = log.level_number(level)
end

--- Returns the current level as a name.
function log.level()
  return log.names[current_level]
end

--- Passes one message to the logger.  A logger that raises is reported
-- on io.stderr once per message and does not break the caller, except
-- that a SIGINT interruption is raised again.
function log.write(level, facility, message)
  if level > current_level then
    return
  end
  local ok, err = pcall(logger, level, facility, message)
  if not ok then
    if is_interrupt(err) then
      error(err, 0)
    end
    io.stderr:write("hivent: the logger raised an error: " .. tostring(err) .. "\n")
    log.stderr_logger(level, facility, message)
  end
end

function log.error(facility, message) log.write(3, facility, message) end
function log.warning(facility, message) log.write(4, facility, message) end
function log.notice(facility, message) log.write(5, facility, message) end
function log.info(facility, message) log.write(6, facility, message) end
function log.debug(facility, message) log.write(7, facility, message) end

return log
