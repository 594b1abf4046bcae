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
