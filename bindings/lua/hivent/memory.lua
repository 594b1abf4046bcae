--- The core's in-memory transport, for application tests.
--
-- With hivent.configure{server = {host = "memory"}}, emits complete at
-- once without a server and consumers in the same process receive the
-- events.  These functions inspect what was emitted on that bus.
local core = require("hivent_core")
local errors = require("hivent.errors")
local Event = require("hivent.event")

local memory = {}

--- Returns every event emitted since the last clear, oldest first.
function memory.all()
  local events = {}
  local count = core.hivent_memory_count()
  for i = 0, count - 1 do
    local event = core.hivent_memory_at(i)
    if event == nil then
      break
    end
    events[#events + 1] = Event.wrap(event)
  end
  return events
end

--- Returns the newest emitted event, or nil.
function memory.last()
  return Event.wrap(core.hivent_memory_last())
end

--- Returns the number of emitted events.
function memory.count()
  return core.hivent_memory_count()
end

--- Returns true when no event was emitted since the last clear.
function memory.is_empty()
  return core.hivent_memory_count() == 0
end

--- Forgets every emitted event.
function memory.clear()
  core.hivent_memory_clear()
end

--- Returns true when an emitted event has name `name` (nil matches any),
-- a payload containing every field of `payload` and meta containing every
-- field of `meta` (nil tables match any).
function memory.includes(name, payload, meta)
  if name ~= nil and type(name) ~= "string" then
    error("name must be a string or nil, got " .. type(name), 2)
  end
  local result = core.hivent_memory_includes(name, payload, meta)
  if result < 0 then
    errors.raise(result, nil, 2)
  end
  return result == 1
end

return memory
