--- Structured errors of the hivent binding.
--
-- Core failures raise (or return, in the `nil, err` convention) an error
-- object with fields `code` (the core's integer code), `name` (such as
-- "HIVENT_ERR_TIMED_OUT") and `message`.  tostring(err) gives
-- "HIVENT_ERR_TIMED_OUT: message".  The table of codes comes from the core
-- (hivent_err_count/hivent_err_code_at/hivent_err_name), so it matches
-- the library the module was built against.
local core = require("hivent_core")

local errors = {}

--- Metatable of error objects.
local Error = {}
Error.__index = Error

function Error.__tostring(err)
  return err.name .. ": " .. err.message
end

function Error.__eq(a, b)
  return a.code == b.code and a.message == b.message
end

errors.Error = Error

--- Code by name: errors.codes.HIVENT_ERR_TIMED_OUT == -5.
errors.codes = {}
--- Name by code: errors.names[-5] == "HIVENT_ERR_TIMED_OUT".
errors.names = {}

for i = 0, core.hivent_err_count() - 1 do
  local code = core.hivent_err_code_at(i)
  local name = core.hivent_err_name(code)
  errors.codes[name] = code
  errors.names[code] = name
  -- Short alias without the prefix: errors.TIMED_OUT == -5.
  errors[name:gsub("^HIVENT_ERR_", ""):gsub("^HIVENT_", "")] = code
end

--- Creates an error object for a core code and an optional message.
function errors.new(code, message)
  local name = errors.names[code] or ("HIVENT_ERR_" .. tostring(code))
  if message == nil or message == "" then
    message = core.hivent_err_str(code)
  end
  return setmetatable({ code = code, name = name, message = message }, Error)
end

--- Raises the error object for `code`, blaming the caller `level` frames up.
function errors.raise(code, message, level)
  error(errors.new(code, message), (level or 1) + 1)
end

--- Raises HIVENT_ERR_INVALID_ARG (or `code`) when table `options` has a
-- key missing from the set `accepted`.  The message names the key, the
-- option `kind` (such as "emit") and the accepted keys.
function errors.check_keys(options, accepted, kind, level, code)
  for key in pairs(options) do
    if not accepted[key] then
      local names = {}
      for name in pairs(accepted) do
        names[#names + 1] = name
      end
      table.sort(names)
      errors.raise(code or errors.codes.HIVENT_ERR_INVALID_ARG,
        string.format("unknown %s option %s; the accepted options are %s", kind,
          type(key) == "string" and string.format("%q", key) or tostring(key),
          table.concat(names, ", ")), (level or 1) + 1)
    end
  end
end

--- Returns true when `value` is a hivent error object.  When `code` is
-- given (a number, or a name such as "HIVENT_ERR_TIMED_OUT" or
-- "TIMED_OUT"), it must also be that error.
function errors.is(value, code)
  if getmetatable(value) ~= Error then
    return false
  end
  if code == nil then
    return true
  end
  if type(code) == "string" then
    code = errors.codes[code] or errors[code]
  end
  return value.code == code
end

--- Returns true when `value` is the error the stand-alone lua5.4
-- interpreter raises on SIGINT: the string "interrupted!", with a
-- "chunk:line: " prefix and possibly a traceback after it.
function errors.is_interrupt(value)
  if type(value) ~= "string" then
    return false
  end
  local first_line = value:match("^[^\n]*")
  return first_line == "interrupted!" or first_line:sub(-14) == ": interrupted!"
end

--- Message handler for xpcall: adds a traceback to every error except a
-- SIGINT interruption, which stays unchanged so callers can re-raise it.
function errors.traceback(value)
  if errors.is_interrupt(value) then
    return value
  end
  return debug.traceback(value, 2)
end

--- Returns `value` (anything raised) as an error object.  Hivent errors
-- stay as they are, "not enough memory" becomes HIVENT_ERR_NO_MEMORY and
-- other values become `code` (default HIVENT_ERR_INVALID_ARG) with their
-- text as the message.  A SIGINT interruption is raised again, so that
-- Ctrl-C still stops the program.
function errors.wrap(value, code)
  if getmetatable(value) == Error then
    return value
  end
  if errors.is_interrupt(value) then
    error(value, 0)
  end
  if value == "not enough memory" then
    return errors.new(errors.codes.HIVENT_ERR_NO_MEMORY, value)
  end
  return errors.new(code or errors.codes.HIVENT_ERR_INVALID_ARG, tostring(value))
end

--- Calls fn(...) and returns its results, or nil and the error object when
-- it raised a hivent error.  Other errors propagate unchanged.
function errors.try(fn, ...)
  local results = table.pack(pcall(fn, ...))
  if results[1] then
    return table.unpack(results, 2, results.n)
  end
  if errors.is(results[2]) then
    return nil, results[2]
  end
  error(results[2], 0)
end

return errors
