-- Demo consumer in Lua: counts events per partition and sends events whose
-- payload action is "deleted" to the dead-letter queue.
--
--   lua5.4 consumer.lua TOPIC SERVICE PARTITIONS EXPECTED OUT_FILE
--
-- The server address and key come from HIVENT_* environment variables.
local hivent = require("hivent")

local topic, service, partitions, expected, out_file = table.unpack(arg)
partitions = math.tointeger(tonumber(partitions))
expected = math.tointeger(tonumber(expected))
local IDLE_LIMIT = 60

local per_partition = {}
local received, rejected = 0, 0

local Releases = hivent.Consumer:extend{
  topic = topic, name = service, partition_count = partitions,
}

function Releases:process(event)
  received = received + 1
  per_partition[event.partition] = (per_partition[event.partition] or 0) + 1
  if event.payload.action == "deleted" then
    rejected = rejected + 1
    return nil, "deleted releases are not archived"
  end
  return true
end

local consumer = Releases:new()
local idle = 0
while received < expected and idle < IDLE_LIMIT do
  local before = received
  -- run returns after one second, or as soon as the last expected event is in.
  consumer:run{ duration = 1, count = expected - received }
  idle = received > before and 0 or idle + 1
end
consumer:close()

local parts = {}
for p = 0, partitions - 1 do
  parts[#parts + 1] = string.format('"%d": %d', p, per_partition[p] or 0)
end
local f = assert(io.open(out_file, "w"))
f:write(string.format('{"language": "Lua", "service": "%s", "topic": "%s", "received": %d, '
  .. '"rejected": %d, "partitions": {%s}}\n', service, topic, received, rejected,
  table.concat(parts, ", ")))
f:close()
