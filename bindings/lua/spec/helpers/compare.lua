-- Deep comparison of decoded payloads.  It distinguishes integers from
-- floats and reports the first difference with its path.
local compare = {}

local function describe(value)
  if math.type(value) then
    return string.format("%s %s", math.type(value), tostring(value))
  end
  return string.format("%s %s", type(value), tostring(value))
end

--- Returns true, or false and "path: expected X, got Y".
function compare.deep(expected, actual, path)
  path = path or "value"
  if type(expected) ~= type(actual) then
    return false, string.format("%s: expected %s, got %s", path, describe(expected), describe(actual))
  end
  if type(expected) == "number" then
    if math.type(expected) ~= math.type(actual) then
      return false, string.format("%s: expected %s, got %s", path, describe(expected), describe(actual))
    end
    if expected ~= actual and not (expected ~= expected and actual ~= actual) then
      return false, string.format("%s: expected %s, got %s", path, describe(expected), describe(actual))
    end
    return true
  end
  if type(expected) ~= "table" then
    if expected ~= actual then
      return false, string.format("%s: expected %s, got %s", path, describe(expected), describe(actual))
    end
    return true
  end
  for key, value in pairs(expected) do
    local ok, difference = compare.deep(value, actual[key], path .. "[" .. tostring(key) .. "]")
    if not ok then
      return false, difference
    end
  end
  for key in pairs(actual) do
    if expected[key] == nil then
      return false, string.format("%s: unexpected key %s", path, tostring(key))
    end
  end
  return true
end

--- Asserts deep equality with a message naming the first difference.
function compare.assert_same(expected, actual, label)
  local ok, difference = compare.deep(expected, actual, label)
  assert(ok, difference)
end

--- Loads the GitHub webhook examples: a list of {name, json, payload}.
function compare.webhooks(null)
  local json = require("dkjson")
  local path = os.getenv("HIVENT_WEBHOOKS")
    or "../../../shared/data/github-webhooks/index.json"
  local file = io.open(path, "r")
  if not file then
    return nil, "webhook examples not found at " .. path
  end
  local text = file:read("a")
  file:close()
  -- Decoded twice: with dkjson's own null to encode each example as
  -- JSON text, and with `null` for the expected Lua values.
  local index = assert(json.decode(text, 1, json.null))
  local expected = assert(json.decode(text, 1, null))
  local examples = {}
  for e, entry in ipairs(index) do
    for i, payload in ipairs(entry.examples or {}) do
      examples[#examples + 1] = {
        name = entry.name .. "#" .. i,
        json = json.encode(payload),
        payload = expected[e].examples[i],
      }
    end
  end
  return examples
end

return compare
