--- Event objects: plain tables with a metatable for printing.
--
-- Fields: name, payload (table), meta = {version, cid, key, producer, uuid,
-- created_at}, and for consumed events queue ("SERVICE:PARTITION") and
-- partition (from 0).
local Event = {}
Event.__index = Event

function Event.__tostring(event)
  local meta = event.meta or {}
  return string.format("hivent.Event(%s v%s uuid=%s)", tostring(event.name),
    tostring(meta.version), tostring(meta.uuid))
end

--- Sets the Event metatable on a table converted by the core module.
function Event.wrap(event)
  if event == nil then
    return nil
  end
  return setmetatable(event, Event)
end

return Event
