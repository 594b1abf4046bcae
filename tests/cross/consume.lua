-- Consume COUNT events of TOPIC as SERVICE from Lua and write them as JSON lines.
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local hivent = require("hivent")
local json = require("json")

local topic, service, count, out_path = arg[1], arg[2], math.tointeger(tonumber(arg[3])), arg[4]
local received = {}

local Collector = hivent.Consumer:extend{ topic = topic, name = service, partition_count = 2 }
function Collector:process(event)
  received[#received + 1] = json.encode({ name = event.name, payload = event.payload,
                                          meta = event.meta })
  return true
end

local consumer = Collector:new()
local waited = 0
while #received < count and waited < 120 do
  consumer:run{ duration = 1, count = count - #received }
  waited = waited + 1
end
consumer:close()
local f = assert(io.open(out_path, "w"))
for _, line in ipairs(received) do f:write(line, "\n") end
f:close()
