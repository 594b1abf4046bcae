--- Reads notices (state changes, errors, log lines, delivery reports)
-- into plain Lua values, and the default handling shared by clients and
-- consumers.
local core = require("hivent_core")
local errors = require("hivent.errors")
local log = require("hivent.log")

local notices = {}

notices.DELIVERY = core.HIVENT_NOTICE_DELIVERY
notices.EVENT = core.HIVENT_NOTICE_EVENT
notices.STATE = core.HIVENT_NOTICE_STATE
notices.ERROR = core.HIVENT_NOTICE_ERROR
notices.LOG = core.HIVENT_NOTICE_LOG

--- Returns a table describing a state notice.
function notices.read_state(notice)
  local reason = core.hivent_notice_err(notice)
  return {
    state = core.hivent_state_name(core.hivent_notice_state(notice)),
    attempt = core.hivent_notice_attempt(notice),
    next_attempt_ms = core.hivent_notice_next_attempt_ms(notice),
    reason = reason ~= 0 and errors.new(reason, core.hivent_notice_errstr(notice)) or nil,
  }
end

--- Handles a state, error or log notice for the handle described by
-- `owner` ({label = "client" or "consumer ...", on_state, on_error}).
-- Returns the state table for state notices.
function notices.handle_common(owner, notice, kind)
  if kind == notices.LOG then
    log.write(core.hivent_notice_log_level(notice), core.hivent_notice_log_facility(notice),
      core.hivent_notice_log_message(notice))
  elseif kind == notices.STATE then
    local info = notices.read_state(notice)
    owner.last_state = info.state
    notices.log_state(owner, info)
    if owner.on_state then
      notices.call_handler(owner, "on_state", owner.on_state, info.state, info)
    end
    return info
  elseif kind == notices.ERROR then
    -- Not logged here: libhivent logs the same sentence at error level
    -- (facility "conn") before it posts an error notice.
    local err = errors.new(core.hivent_notice_err(notice), core.hivent_notice_errstr(notice))
    owner.last_error = err
    if owner.on_error then
      notices.call_handler(owner, "on_error", owner.on_error, err)
    end
  end
  return nil
end

--- Logs a state change at debug level (the core logs the connection
-- events themselves at info, warning and error).
function notices.log_state(owner, info)
  local level = 7
  local text = string.format("connection %s", info.state)
  if info.state == "backoff" then
    text = string.format("connection lost or refused (attempt %d), retrying in %d ms",
      info.attempt, info.next_attempt_ms)
  elseif info.state == "failed" then
    text = string.format("reconnect attempts used up after %d attempts, giving up", info.attempt)
  end
  if info.reason then
    text = text .. ": " .. tostring(info.reason)
  end
  log.write(level, owner.label, text)
end

--- Calls an application callback; an error inside it is logged with its
-- traceback and does not propagate into the poll loop, except a SIGINT
-- interruption, which is raised again.
function notices.call_handler(owner, what, fn, ...)
  local ok, err = xpcall(fn, errors.traceback, ...)
  if not ok then
    if errors.is_interrupt(err) then
      error(err, 0)
    end
    log.error(owner.label, string.format("%s callback raised an error: %s", what, tostring(err)))
  end
  return ok
end

--- Converts seconds (nil = default_ms, negative = forever) to milliseconds.
function notices.to_ms(seconds, default_ms)
  if seconds == nil then
    return default_ms
  end
  if type(seconds) ~= "number" or seconds ~= seconds then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      "timeout must be a number of seconds, got " .. tostring(seconds), 3)
  end
  if seconds < 0 then
    return -1
  end
  local ms = math.floor(seconds * 1000 + 0.5)
  if ms > 2147483647 then
    ms = 2147483647
  end
  return math.tointeger(ms)
end

return notices
