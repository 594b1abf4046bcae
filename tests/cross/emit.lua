-- Emit COUNT events from Lua and write the published events as JSON lines.
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local hivent = require("hivent")
local json = require("json")

local topic, count, out_path = arg[1], math.tointeger(tonumber(arg[2])), arg[3]
hivent.configure{ client_id = "cross-lua" }
local f = assert(io.open(out_path, "w"))
for i = 1, count do
  local payload = {
    index = i, big = math.maxinteger, negative = math.mininteger, ratio = i / 8,
    label = "lua ✓ " .. i, tags = { "a", "b", i }, nested = { ok = (i % 2 == 0) },
  }
  local event = hivent.emit(topic, payload, { version = 3, key = "lua-" .. (i % 2) })
  f:write(json.encode({ name = event.name, payload = event.payload, meta = event.meta }), "\n")
end
f:close()
hivent.close()
