--- Consumers.
--
-- A consumer class declares topic (an event name or "*"), name (the
-- service, which shares partitions among its instances), partition_count
-- and optionally version, plus a process(event) method:
--
--   local Billing = hivent.Consumer:extend{
--     topic = "invoice:paid", name = "billing", partition_count = 4,
--   }
--   function Billing:process(event)
--     if not event.payload.id then return nil, "missing id" end
--     return true
--   end
--   Billing:new():run{duration = 60}
--
-- process returns true (any value other than nil or false) to acknowledge
-- the event, or nil/false and a reason to send it to the dead-letter
-- queue.  An error raised inside process is logged with its traceback and
-- dead-letters the event; the loop goes on.  Optional hooks
-- on_processed(event) and on_failed(event, reason) run after each event.
local core = require("hivent_core")
local config = require("hivent.config")
local errors = require("hivent.errors")
local Event = require("hivent.event")
local log = require("hivent.log")
local notices = require("hivent.notices")

local Consumer = {}
Consumer.__index = Consumer

local MAX_NOTICES_PER_POLL = 10000
local DEFAULT_POLL_INTERVAL = 0.2
local DEFAULT_CLOSE_SECONDS = 5
local METAMETHODS = { "__gc", "__tostring", "__close" }

--- Returns a subclass of this class; `fields` (optional) becomes the
-- class table and may hold topic, name, partition_count, version and
-- methods.
function Consumer:extend(fields)
  local class = fields or {}
  class.__index = class
  for _, name in ipairs(METAMETHODS) do
    if rawget(class, name) == nil then
      class[name] = self[name]
    end
  end
  return setmetatable(class, self)
end

-- Partitions per service accepted by libhivent (HV_MAX_PARTITIONS in
-- core/src/consumer.c).
local MAX_PARTITIONS = 4096

-- Returns true when `value` is a number with an integer value from
-- `min` to `max`.  Strings are not converted.
local function is_integer_in(value, min, max)
  if type(value) ~= "number" then
    return false
  end
  local integer = math.tointeger(value)
  return integer ~= nil and integer >= min and integer <= max
end

local function check_definition(self)
  if type(self.topic) ~= "string" or self.topic == "" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      "consumer topic must be an event name or \"*\", got " .. tostring(self.topic), 3)
  end
  if type(self.name) ~= "string" or self.name == "" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      "consumer name (the service) must be a non-empty string, got " .. tostring(self.name), 3)
  end
  for _, field in ipairs({ "topic", "name" }) do
    if self[field]:find("\0", 1, true) then
      errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
        string.format("consumer %s must not contain a NUL byte, got %q", field, self[field]), 3)
    end
  end
  if not is_integer_in(self.partition_count, 1, MAX_PARTITIONS) then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      string.format("consumer partition_count must be an integer from 1 to %d, got %s %s",
        MAX_PARTITIONS, type(self.partition_count), tostring(self.partition_count)), 3)
  end
  if self.version ~= nil and not is_integer_in(self.version, 1, math.maxinteger) then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      string.format("consumer version must be a positive integer or nil, got %s %s",
        type(self.version), tostring(self.version)), 3)
  end
  if type(self.process) ~= "function" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      "consumer " .. self.name .. " has no process(event) function", 3)
  end
end

--- Creates an instance and connects it.  `fields` may override topic,
-- name, partition_count, version and process; the option tables hold
-- configuration (merged over the hivent.configure settings) and
-- on_state/on_error handlers.
function Consumer:new(fields, ...)
  local instance = setmetatable({}, self)
  for key, value in pairs(fields or {}) do
    instance[key] = value
  end
  check_definition(instance)
  -- env is left out, so it follows hivent.configure{env = ...}.
  local consumer_options = {}
  if instance.version ~= nil then
    consumer_options.consumer = { version = math.tointeger(instance.version) }
  end
  local conf = config.build(consumer_options, ...)
  local handle, errstr = core.hivent_consumer_new(conf, instance.topic, instance.name,
    math.tointeger(instance.partition_count))
  if handle == nil then
    core.hivent_conf_destroy(conf)
    errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE, errstr, 2)
  end
  instance.handle = handle
  instance.label = "consumer " .. instance.name
  instance.processed = 0
  instance.failed = 0
  instance.stopping = false
  instance.on_state = instance.on_state or config.settings.on_state
  instance.on_error = instance.on_error or config.settings.on_error
  for i = 1, select("#", ...) do
    local options = select(i, ...)
    if type(options) == "table" then
      instance.on_state = options.on_state or instance.on_state
      instance.on_error = options.on_error or instance.on_error
    end
  end
  return instance
end

function Consumer:__gc()
  if rawget(self, "handle") then
    core.hivent_consumer_destroy(self.handle)
    self.handle = nil
  end
end

function Consumer:__tostring()
  return string.format("hivent.Consumer(%s on %s, %s)", tostring(self.name),
    tostring(self.topic), self.handle and self:state() or "closed")
end

local function check_handle(self)
  if type(self) ~= "table" or rawget(self, "label") == nil then
    error("expected a hivent consumer instance (call methods with a colon on an instance)", 3)
  end
  if self.handle == nil then
    errors.raise(errors.codes.HIVENT_ERR_STATE, self.label .. " is closed", 3)
  end
  return self.handle
end

-- Returns the text of a dead-letter reason or raised error `value`:
-- strings and numbers as they are, values with a __tostring metamethod
-- (such as hivent errors) through it, tables by their string `message`
-- field, and anything else by its type.
local function describe_reason(value)
  local kind = type(value)
  if kind == "string" or kind == "number" then
    return tostring(value)
  end
  local meta = getmetatable(value)
  if type(meta) == "table" and rawget(meta, "__tostring") then
    local ok, text = pcall(tostring, value)
    if ok and type(text) == "string" then
      return text
    end
  end
  if kind == "table" then
    local message = rawget(value, "message")
    if type(message) == "string" or type(message) == "number" then
      return tostring(message)
    end
    return "a table without a message field"
  end
  return "a " .. kind .. " value"
end

-- Returns the reason text of a failed process call.
local function failure_reason(result, reason)
  if reason ~= nil then
    return describe_reason(reason)
  end
  if result == false then
    return "process returned false"
  end
  return "process returned nil without a reason (return true to acknowledge)"
end

-- Runs process for one event; returns true on success, or false and a
-- reason.  A SIGINT interruption inside process is raised again.
function Consumer:_process(event)
  local ok, result, reason = xpcall(self.process, errors.traceback, self, event)
  if not ok then
    if errors.is_interrupt(result) then
      error(result, 0)
    end
    local message = describe_reason(result)
    log.error(self.label, string.format("process raised an error for %s (uuid %s, queue %s): %s",
      tostring(event.name), tostring(event.meta.uuid), tostring(event.queue), message))
    return false, (message:match("^[^\n]*"))
  end
  if result == nil or result == false then
    return false, failure_reason(result, reason)
  end
  return true
end

-- Converts and processes the event of `notice`, then acknowledges or
-- rejects it.  Returns the event table (nil when the payload cannot be
-- converted), whether processing succeeded, and the failure reason.  The
-- caller destroys the notice.
function Consumer:_handle_event(notice)
  local event_ptr = core.hivent_notice_event(notice)
  local ok, event = pcall(core.event_table, event_ptr)
  local success, reason
  if ok then
    event = Event.wrap(event)
    success, reason = self:_process(event)
  elseif errors.is_interrupt(event) then
    error(event, 0)
  else
    success, reason = false, "cannot convert the event payload: " .. tostring(event)
    log.error(self.label, reason)
    event = nil
  end

  local err
  if success then
    err = core.hivent_consumer_ack(self.handle, event_ptr)
    self.processed = self.processed + 1
  else
    -- The reason is a C string, so a NUL byte is stored as the text \0.
    err = core.hivent_consumer_reject(self.handle, event_ptr, (reason:gsub("\0", "\\0")))
    -- libhivent logs the dead letter itself, at notice level, with the
    -- event name, uuid, queue and reason.
    self.failed = self.failed + 1
  end
  if err ~= 0 then
    log.warning(self.label, string.format("cannot %s the event: %s",
      success and "acknowledge" or "reject", tostring(errors.new(err))))
  end
  return event, success, reason
end

-- Returns the HIVENT_ERR_FAILED error that run() returns once the core
-- gave up reconnecting.  `cause` (the last connection or join error) is
-- kept in the field `cause`.
local function failure_error(cause)
  local message = cause and cause.message or "reconnect attempts used up"
  local err = errors.new(errors.codes.HIVENT_ERR_FAILED, message)
  if cause and cause.code ~= errors.codes.HIVENT_ERR_FAILED then
    err.cause = cause
  end
  return err
end

function Consumer:_dispatch(notice)
  local kind = core.hivent_notice_type(notice)
  if kind == notices.EVENT then
    -- pcall so that the notice is destroyed also when a SIGINT
    -- interruption leaves the event unacknowledged (the server redelivers
    -- it after the consumer leaves).
    local ok, event, success, reason = pcall(self._handle_event, self, notice)
    core.hivent_notice_destroy(notice)
    if not ok then
      error(event, 0)
    end
    local hook = success and self.on_processed or self.on_failed
    if event and hook then
      notices.call_handler(self, success and "on_processed" or "on_failed", hook, self, event,
        reason)
    end
    return 1
  end
  local ok, info = pcall(notices.handle_common, self, notice, kind)
  core.hivent_notice_destroy(notice)
  if not ok then
    if errors.is_interrupt(info) then
      error(info, 0)
    end
    log.error(self.label, "cannot handle a notice: " .. tostring(info))
  elseif info and info.state == "failed" then
    self.failed_error = failure_error(info.reason)
  end
  return 0
end

--- Waits up to `timeout` seconds (default 0, negative = forever) for
-- notices and handles the pending ones, processing consumed events.
-- Returns the number of events processed (successfully or not).
function Consumer:poll(timeout)
  local handle = check_handle(self)
  local wait = notices.to_ms(timeout, 0)
  local events, handled = 0, 0
  while handled < MAX_NOTICES_PER_POLL and not self.stopping do
    local notice = core.hivent_consumer_next(handle, handled == 0 and wait or 0)
    if notice == nil then
      break
    end
    handled = handled + 1
    events = events + self:_dispatch(notice)
  end
  return events
end

-- Raises HIVENT_ERR_INVALID_ARG unless `options` is nil or a table whose
-- duration, count and poll_interval are nil or non-negative numbers.
local RUN_OPTIONS = { duration = true, count = true, poll_interval = true }

local function check_run_options(options)
  if options == nil then
    return {}
  end
  if type(options) ~= "table" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      "run options must be a table or nil, got " .. type(options), 3)
  end
  errors.check_keys(options, RUN_OPTIONS, "run", 3)
  for _, key in ipairs({ "duration", "count", "poll_interval" }) do
    local value = options[key]
    if value ~= nil and (type(value) ~= "number" or value ~= value or value < 0) then
      errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
        string.format("run option %s must be a non-negative number, got %s", key, tostring(value)),
        3)
    end
  end
  return options
end

-- Returns the events `consumers` processed (successfully or not) so far.
local function events_done(consumers)
  local total = 0
  for _, consumer in ipairs(consumers) do
    if type(consumer) == "table" then
      total = total + (consumer.processed or 0) + (consumer.failed or 0)
    end
  end
  return total
end

-- Closes `consumers` after SIGINT or SIGTERM raised "interrupted!"
-- inside run() or run_all().
local function close_interrupted(consumers)
  local signal = core.signal_caught() or "SIGINT"
  for _, consumer in ipairs(consumers) do
    consumer.stopping = false
    if rawget(consumer, "handle") then
      log.notice(consumer.label, "interrupted by " .. signal .. ", leaving the channel")
      consumer:close()
    end
  end
end

local function run_loop(self, options)
  check_handle(self)
  options = check_run_options(options)
  local interval = options.poll_interval or DEFAULT_POLL_INTERVAL
  local deadline = options.duration and (core.monotonic() + options.duration)
  local count = 0
  self.stopping = false
  while not self.stopping do
    if self.failed_error then
      return nil, self.failed_error
    end
    if options.count and count >= options.count then
      break
    end
    local wait = interval
    if deadline then
      local remaining = deadline - core.monotonic()
      if remaining <= 0 then
        break
      end
      wait = math.min(wait, remaining)
    end
    count = count + self:_poll_some(wait, options.count and (options.count - count))
  end
  return count
end

--- Processes events until stop() is called, `duration` seconds passed or
-- `count` events were processed.  Options: duration, count,
-- poll_interval (seconds between checks of stop and duration, default
-- 0.2).  Returns the number of events processed.  Returns nil and an
-- error object on any failure: HIVENT_ERR_FAILED when the consumer gave
-- up reconnecting (its field `cause` is the last connection or join
-- error, such as HIVENT_ERR_JOIN_REJECTED), HIVENT_ERR_STATE when it is
-- closed, HIVENT_ERR_INVALID_ARG for invalid options.
--
-- On SIGINT (Ctrl-C) or SIGTERM during run(), run() closes the consumer,
-- which leaves the channel so that unacknowledged events go to the
-- service's other consumers.  It then returns the number of events
-- processed and the string "interrupted".  Signals reach run() within one
-- poll_interval, and inside process at its next Lua instruction.  A second
-- signal of the same kind ends the process at once.
function Consumer:run(options)
  local before = type(self) == "table" and events_done({ self }) or 0
  core.signal_watch()
  local ok, result, err = pcall(run_loop, self, options)
  core.signal_unwatch()
  if type(self) == "table" then
    self.stopping = false
  end
  if ok then
    return result, err
  end
  if errors.is_interrupt(result) then
    close_interrupted({ self })
    return events_done({ self }) - before, "interrupted"
  end
  return nil, errors.wrap(result)
end

-- Like poll(), but stops after `limit` events (nil = no limit).
function Consumer:_poll_some(timeout, limit)
  if limit == nil then
    return self:poll(timeout)
  end
  local events, handled = 0, 0
  local wait = notices.to_ms(timeout, 0)
  while events < limit and handled < MAX_NOTICES_PER_POLL and not self.stopping do
    local notice = core.hivent_consumer_next(self.handle, handled == 0 and wait or 0)
    if notice == nil then
      break
    end
    handled = handled + 1
    events = events + self:_dispatch(notice)
  end
  return events
end

--- Makes run() return after the event being processed; callable from
-- process, hooks and handlers.
function Consumer:stop()
  self.stopping = true
end

--- Returns the connection state.
function Consumer:state()
  if self.handle == nil then
    return "closed"
  end
  return core.hivent_state_name(core.hivent_consumer_state(self.handle))
end

--- Returns a descriptor that is readable while notices are pending.
function Consumer:fd()
  return core.hivent_consumer_fd(check_handle(self))
end

--- Leaves the channel (waiting up to `timeout` seconds, default 5) and
-- frees the consumer.  Unacknowledged events go to the service's other
-- consumers.  Calling it again does nothing.
function Consumer:close(timeout)
  if self.handle == nil then
    return
  end
  local err = core.hivent_consumer_close(self.handle, notices.to_ms(timeout, DEFAULT_CLOSE_SECONDS * 1000))
  if err ~= 0 and err ~= errors.codes.HIVENT_ERR_TIMED_OUT then
    log.debug(self.label, "close: " .. tostring(errors.new(err)))
  end
  core.hivent_consumer_destroy(self.handle)
  self.handle = nil
end

local function run_all_loop(consumers, options)
  options = check_run_options(options)
  local interval = options.poll_interval or DEFAULT_POLL_INTERVAL
  local deadline = options.duration and (core.monotonic() + options.duration)
  local fds = {}
  for i, consumer in ipairs(consumers) do
    fds[i] = consumer:fd()
    consumer.stopping = false
  end
  local total = 0
  while true do
    for _, consumer in ipairs(consumers) do
      if consumer.failed_error then
        return nil, consumer.failed_error
      end
      if consumer.stopping then
        return total
      end
    end
    local wait = interval
    if deadline then
      local remaining = deadline - core.monotonic()
      if remaining <= 0 then
        return total
      end
      wait = math.min(wait, remaining)
    end
    core.wait_fds(fds, notices.to_ms(wait, 0))
    for _, consumer in ipairs(consumers) do
      total = total + consumer:poll(0)
    end
  end
end

--- Runs several consumers in one loop until `duration` seconds passed or
-- one of them called stop().  Options as for run().  Returns the total
-- number of events processed, or nil and an error object on any failure,
-- such as the HIVENT_ERR_FAILED error of a consumer that gave up
-- reconnecting.
-- On SIGINT or SIGTERM it closes every consumer and returns the total and
-- the string "interrupted", as run() does.
function Consumer.run_all(consumers, options)
  local list = {}
  if type(consumers) == "table" then
    for _, consumer in ipairs(consumers) do
      if type(consumer) == "table" then
        list[#list + 1] = consumer
      end
    end
  end
  local before = events_done(list)
  core.signal_watch()
  local ok, result, err = pcall(run_all_loop, consumers, options)
  core.signal_unwatch()
  for _, consumer in ipairs(list) do
    consumer.stopping = false
  end
  if ok then
    return result, err
  end
  if errors.is_interrupt(result) then
    close_interrupted(list)
    return events_done(list) - before, "interrupted"
  end
  return nil, errors.wrap(result)
end

return Consumer
