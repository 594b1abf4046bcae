-- A small JSON encoder that keeps 64-bit integers exact, for the
-- cross-language test (dkjson writes large integers as floats).
local hivent = require("hivent")

local M = {}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
                    ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_sequence(t)
  if hivent.is_array(t) then
    return true
  end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

function M.encode(v)
  if v == nil or v == hivent.null then
    return "null"
  elseif type(v) == "boolean" then
    return tostring(v)
  elseif math.type(v) == "integer" then
    return string.format("%d", v)
  elseif type(v) == "number" then
    return string.format("%.17g", v)
  elseif type(v) == "string" then
    return encode_string(v)
  elseif type(v) == "table" then
    local parts = {}
    if is_sequence(v) then
      for i = 1, #v do parts[i] = M.encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, val in pairs(v) do
      parts[#parts + 1] = encode_string(tostring(k)) .. ":" .. M.encode(val)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. type(v))
end

return M
