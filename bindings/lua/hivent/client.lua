--- Producer clients.
--
--   local client = hivent.Client.new{client_id = "billing", server = {port = 4000}}
--   local event = client:emit("invoice:paid", {id = 7}, {version = 1, key = "7"})
--   client:emit_async("invoice:paid", {id = 8}, nil, function(err, event) ... end)
--   client:flush(5)
--   client:close()
--
-- Delivery callbacks, state and error handlers run only inside poll(),
-- flush() and close(), on the calling thread.
local core = require("hivent_core")
local config = require("hivent.config")
local errors = require("hivent.errors")
local Event = require("hivent.event")
local log = require("hivent.log")
local notices = require("hivent.notices")

local Client = {}
Client.__index = Client

local DEFAULT_FLUSH_SECONDS = 5
-- Notices handled by one poll() call at most, so a busy client cannot
-- keep the caller inside poll() forever.
local MAX_NOTICES_PER_POLL = 10000

--- Creates a client from option tables (see hivent.config), merged left
-- to right.  Function-valued options on_state(state, info) and
-- on_error(err) become handlers.  Raises a structured error on invalid
-- configuration.
function Client.new(...)
  local conf = config.build(...)
  local flush_ms = math.tointeger(tonumber(config.get(conf, "flush_timeout")))
  -- close() and __gc wait for outstanding emits themselves, so the core
  -- client gets flush_timeout 0 and its destroy fails the rest at once
  -- instead of waiting again.
  core.hivent_conf_set(conf, "flush_timeout", "0")
  local handle, errstr = core.hivent_client_new(conf)
  if handle == nil then
    core.hivent_conf_destroy(conf)
    errors.raise(errors.codes.HIVENT_ERR_INVALID_VALUE, errstr, 2)
  end
  local self = setmetatable({
    handle = handle,
    label = "client",
    callbacks = {},
    abandoned = {},
    pending_callbacks = 0,
    next_id = 0,
    flush_timeout = flush_ms / 1000,
  }, Client)
  self.on_state = config.settings.on_state
  self.on_error = config.settings.on_error
  for i = 1, select("#", ...) do
    local options = select(i, ...)
    if type(options) == "table" then
      self.on_state = options.on_state or self.on_state
      self.on_error = options.on_error or self.on_error
    end
  end
  return self
end

function Client:__gc()
  if self.handle then
    core.hivent_client_flush(self.handle, notices.to_ms(self.flush_timeout, 0))
    core.hivent_client_destroy(self.handle)
    self.handle = nil
  end
end

function Client:__tostring()
  return string.format("hivent.Client(%s)", self.handle and self:state() or "closed")
end

local function check_handle(self)
  if getmetatable(self) ~= Client then
    error("expected a hivent.Client (call methods with a colon)", 3)
  end
  if self.handle == nil then
    errors.raise(errors.codes.HIVENT_ERR_STATE, "client is closed", 3)
  end
  return self.handle
end

-- Raises a structured HIVENT_ERR_INVALID_ARG error for a bad emit argument.
local function invalid_arg(message)
  errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG, message, 4)
end

-- Options of an emit without any; shared, and never written to.
local NO_OPTIONS = setmetatable({}, {
  __newindex = function() error("emit options table is read-only", 2) end,
})

local EMIT_OPTIONS = { version = true, cid = true, key = true, timeout = true }

local function check_emit_args(name, payload, options)
  if type(name) ~= "string" or name == "" then
    invalid_arg("event name must be a non-empty string, got " .. tostring(name))
  end
  if payload ~= nil and type(payload) ~= "table" then
    invalid_arg("payload must be a table or nil, got " .. type(payload))
  end
  if options ~= nil and type(options) ~= "table" then
    invalid_arg("emit options must be a table or nil, got " .. type(options))
  end
  options = options or NO_OPTIONS
  errors.check_keys(options, EMIT_OPTIONS, "emit", 3)
  local version = options.version or 1
  if math.tointeger(version) == nil then
    invalid_arg("version must be an integer, got " .. tostring(version))
  end
  -- Checked one by one: a loop over { "cid", "key" } built a table per emit.
  local cid, key = options.cid, options.key
  if cid ~= nil and type(cid) ~= "string" then
    invalid_arg("cid must be a string or nil, got " .. type(cid))
  end
  if key ~= nil and type(key) ~= "string" then
    invalid_arg("key must be a string or nil, got " .. type(key))
  end
  return options, math.tointeger(version)
end

-- Calls a core emit function.  The generated wrapper raises a string
-- error when it cannot convert an argument (a payload value of an
-- unsupported type, nesting deeper than 64 levels, a version out of the
-- C int range); that error is raised again as a structured error.
-- The results pass through varargs, without a table per call.  call_core
-- tail-calls core_results, so level 3 is the caller of the emit function.
local function core_results(ok, ...)
  if not ok then
    error(errors.wrap((...), errors.codes.HIVENT_ERR_INVALID_ARG), 3)
  end
  return ...
end

local function call_core(fn, ...)
  return core_results(pcall(fn, ...))
end

-- Seconds between checks for SIGINT and SIGTERM while emit() waits.
local EMIT_WAIT_SLICE = 0.2

-- Polls `self` until `result.done` is set or the monotonic `deadline`
-- (nil: none) passed.
local function wait_for_result(self, result, deadline)
  while not result.done do
    local wait = EMIT_WAIT_SLICE
    if deadline then
      local left = deadline - core.monotonic()
      if left <= 0 then
        return
      end
      wait = math.min(wait, left)
    end
    self:poll(wait)
  end
end

-- Stops waiting for emit `id`: its result, when it comes, is dropped.
function Client:_abandon(id)
  if self.callbacks[id] then
    self.callbacks[id] = nil
    self.pending_callbacks = self.pending_callbacks - 1
    self.abandoned[id] = true
  end
end

--- Emits an event and waits for the server's reply.  Options: version
-- (default 1), cid, key, timeout (seconds; default request_timeout plus
-- time spent buffered).  Returns the published event; raises a
-- structured error on failure.  SIGINT and SIGTERM end the wait within
-- 0.2 s by raising "interrupted!", and the event stays queued and may
-- still be published.  Delivery callbacks of other emits may run meanwhile.
function Client:emit(name, payload, options)
  local handle = check_handle(self)
  local version
  options, version = check_emit_args(name, payload, options)
  local timeout_ms = notices.to_ms(options.timeout, -1)
  local deadline = timeout_ms >= 0 and (core.monotonic() + timeout_ms / 1000) or nil
  local id = self.next_id + 1
  local err, errstr = call_core(core.hivent_emit_async, handle, name, payload, version,
    options.cid, options.key, id)
  if err ~= 0 then
    errors.raise(err, errstr, 2)
  end
  self.next_id = id
  local result = {}
  self.callbacks[id] = function(delivery_err, event)
    result.done, result.err, result.event = true, delivery_err, event
  end
  self.pending_callbacks = self.pending_callbacks + 1

  core.signal_watch()
  local ok, wait_err = pcall(wait_for_result, self, result, deadline)
  core.signal_unwatch()
  if not result.done then
    self:_abandon(id)
  end
  if not ok then
    error(wait_err, 0)
  end
  if not result.done then
    errors.raise(errors.codes.HIVENT_ERR_TIMED_OUT,
      string.format("no reply to emit of %s within %d ms", name, timeout_ms), 2)
  end
  if result.err then
    errors.raise(result.err.code, result.err.message, 2)
  end
  return result.event
end

--- Queues an event and returns its integer id at once.  callback(err,
-- event) runs later inside poll(), flush() or close(): err is nil and
-- event the published event on success, else err is a structured error
-- and event the event as sent.  Without a callback a failure is logged.
-- Raises when the event cannot even be queued (full queue, failed state).
function Client:emit_async(name, payload, options, callback)
  local handle = check_handle(self)
  if callback ~= nil and type(callback) ~= "function" then
    errors.raise(errors.codes.HIVENT_ERR_INVALID_ARG,
      "callback must be a function or nil, got " .. type(callback), 2)
  end
  local version
  options, version = check_emit_args(name, payload, options)
  local id = self.next_id + 1
  local err, errstr = call_core(core.hivent_emit_async, handle, name, payload, version,
    options.cid, options.key, id)
  if err ~= 0 then
    errors.raise(err, errstr, 2)
  end
  self.next_id = id
  if callback then
    self.callbacks[id] = callback
    self.pending_callbacks = self.pending_callbacks + 1
  end
  return id
end

function Client:_deliver(notice)
  local id, code, errstr, ok, event = core.take_delivery(notice)
  local err = nil
  if code ~= 0 then
    err = errors.new(code, errstr)
  end
  if not ok then
    log.error(self.label, string.format("cannot convert the delivered event of emit %d: %s",
      id, tostring(event)))
    event = nil
  end
  event = Event.wrap(event)

  local callback = self.callbacks[id]
  if self.abandoned[id] then
    self.abandoned[id] = nil
    log.debug(self.label, string.format("dropped the result of emit %d, which timed out or "
      .. "was interrupted: %s", id, err and tostring(err) or "published"))
  elseif callback then
    self.callbacks[id] = nil
    self.pending_callbacks = self.pending_callbacks - 1
    notices.call_handler(self, "delivery", callback, err, event)
  elseif err then
    log.error(self.label, string.format("async emit %d of %s failed: %s", id,
      event and event.name or "an event", tostring(err)))
  end
end

function Client:_dispatch(notice)
  local kind = core.hivent_notice_type(notice)
  if kind == notices.DELIVERY then
    self:_deliver(notice)
    return
  end
  local ok, err = pcall(notices.handle_common, self, notice, kind)
  core.hivent_notice_destroy(notice)
  if not ok then
    if errors.is_interrupt(err) then
      error(err, 0)
    end
    log.error(self.label, "cannot handle a notice: " .. tostring(err))
  end
end

--- Waits up to `timeout` seconds (default 0, negative = forever) for
-- notices and handles all pending ones: delivery callbacks, state and
-- error handlers, log lines.  Returns the number handled.
function Client:poll(timeout)
  local handle = check_handle(self)
  local wait = notices.to_ms(timeout, 0)
  local handled = 0
  while handled < MAX_NOTICES_PER_POLL do
    local notice = core.hivent_client_next(handle, handled == 0 and wait or 0)
    if notice == nil then
      break
    end
    handled = handled + 1
    self:_dispatch(notice)
  end
  return handled
end

--- Waits up to `timeout` seconds (default 5) for outstanding asynchronous
-- emits, running their callbacks.  Returns how many are still
-- outstanding (0 when all completed).
function Client:flush(timeout)
  local handle = check_handle(self)
  local seconds = timeout or DEFAULT_FLUSH_SECONDS
  local deadline = core.monotonic() + seconds
  while true do
    local outstanding = core.hivent_client_outstanding(handle)
    if outstanding == 0 then
      -- Replies are in; run the callbacks still queued.
      for _ = 1, 100 do
        if self:poll(0) == 0 then break end
      end
      return 0
    end
    local remaining = deadline - core.monotonic()
    if remaining <= 0 then
      self:poll(0)
      return core.hivent_client_outstanding(handle)
    end
    self:poll(math.min(remaining, 0.1))
  end
end

--- Returns the connection state: "connecting", "connected", "backoff",
-- "failed" or "closed".
function Client:state()
  if self.handle == nil then
    return "closed"
  end
  return core.hivent_state_name(core.hivent_client_state(self.handle))
end

--- Returns the number of emits buffered or awaiting a reply.
function Client:outstanding()
  return core.hivent_client_outstanding(check_handle(self))
end

--- Returns a descriptor that is readable while notices are pending.
function Client:fd()
  return core.hivent_client_fd(check_handle(self))
end

--- Flushes for up to `timeout` seconds (default: the flush_timeout
-- option; 0 returns without waiting for the server), destroys the client,
-- and calls the callbacks of emits that never completed with
-- HIVENT_ERR_DESTROYED; the event may still have reached the server.
-- Calling it again does nothing.
function Client:close(timeout)
  if self.handle == nil then
    return
  end
  local seconds = timeout or self.flush_timeout
  local left = self:flush(seconds)
  if left > 0 then
    log.warning(self.label, string.format("closed with %d emits outstanding after waiting %s s, "
      .. "so they fail with HIVENT_ERR_DESTROYED", left, tostring(seconds)))
  end
  core.hivent_client_destroy(self.handle)
  self.handle = nil
  local ids = {}
  for id in pairs(self.callbacks) do
    ids[#ids + 1] = id
  end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local callback = self.callbacks[id]
    self.callbacks[id] = nil
    notices.call_handler(self, "delivery", callback,
      errors.new(errors.codes.HIVENT_ERR_DESTROYED, "client closed before the emit completed"), nil)
  end
  self.pending_callbacks = 0
end

return Client
