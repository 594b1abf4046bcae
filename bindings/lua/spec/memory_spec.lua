-- The in-memory transport (server.host = "memory").
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")

describe("memory transport", function()
  before_each(function()
    hivent.configure({ server = { host = "memory" }, client_id = "memory-spec" })
    hivent.memory.clear()
  end)

  after_each(function()
    hivent.close()
    hivent.memory.clear()
  end)

  it("records emitted events", function()
    assert.is_true(hivent.memory.is_empty())
    local published = hivent.emit("memory:one", { n = 1, list = { "a", "b" } },
      { version = 2, key = "k1", cid = "c1" })
    hivent.emit("memory:two", { n = 2 })
    assert.are.equal(2, hivent.memory.count())
    local all = hivent.memory.all()
    assert.are.equal(2, #all)
    assert.are.equal("memory:one", all[1].name)
    assert.are.equal(2, all[1].meta.version)
    assert.are.equal("k1", all[1].meta.key)
    assert.are.equal("c1", all[1].meta.cid)
    assert.are.equal("memory-spec", all[1].meta.producer)
    assert.are.equal(published.meta.uuid, all[1].meta.uuid)
    assert.are.same({ "a", "b" }, all[1].payload.list)
    assert.are.equal("memory:two", hivent.memory.last().name)
  end)

  it("matches payload and meta subsets", function()
    hivent.emit("memory:order", { id = 7, total = 12.5, customer = { name = "Ada" } }, { version = 3 })
    assert.is_true(hivent.memory.includes("memory:order"))
    assert.is_true(hivent.memory.includes("memory:order", { id = 7 }))
    assert.is_true(hivent.memory.includes(nil, { customer = { name = "Ada" } }))
    assert.is_true(hivent.memory.includes("memory:order", { id = 7 }, { version = 3 }))
    assert.is_false(hivent.memory.includes("memory:order", { id = 8 }))
    assert.is_false(hivent.memory.includes("memory:order", nil, { version = 1 }))
    assert.is_false(hivent.memory.includes("memory:other"))
  end)

  it("forgets events on clear", function()
    hivent.emit("memory:gone", {})
    hivent.memory.clear()
    assert.are.equal(0, hivent.memory.count())
    assert.is_nil(hivent.memory.last())
    assert.are.same({}, hivent.memory.all())
  end)

  it("delivers to consumers in the same process", function()
    local seen = {}
    local consumer = hivent.consumer({
      topic = "memory:consume", name = "memory_consumer", partition_count = 2,
      process = function(event)
        seen[#seen + 1] = event
        return true
      end,
    })
    hivent.emit("memory:consume", { n = 1 }, { key = "a" })
    hivent.emit("memory:consume", { n = 2 }, { key = "a" })
    local count = consumer:run({ count = 2, duration = 5 })
    consumer:close()
    assert.are.equal(2, count)
    assert.are.equal(2, #seen)
    assert.are.equal(1, seen[1].payload.n)
    assert.are.equal(2, seen[2].payload.n)
    assert.are.equal(seen[1].partition, seen[2].partition)
  end)

  it("emits asynchronously with a callback", function()
    local results = {}
    for i = 1, 5 do
      hivent.emit_async("memory:async", { i = i }, nil, function(err, event)
        results[#results + 1] = { err = err, event = event }
      end)
    end
    assert.are.equal(0, hivent.flush(5))
    assert.are.equal(5, #results)
    for _, result in ipairs(results) do
      assert.is_nil(result.err)
      assert.are.equal("memory:async", result.event.name)
    end
    assert.are.equal(5, hivent.memory.count())
  end)
end)
