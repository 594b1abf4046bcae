-- Payload conversion between Lua values and MessagePack, without a server.
local hivent = require("hivent")
hivent.set_log_level(os.getenv("HIVENT_TEST_LOG_LEVEL") or "warning")
local core = require("hivent_core")
local compare = require("spec.helpers.compare")

local function roundtrip(value)
  return core.unpack(core.pack(value))
end

local function first_byte(value)
  return core.pack(value):byte(1)
end

describe("payload conversion", function()
  it("keeps strings, UTF-8 and binary", function()
    assert.are.equal("", roundtrip(""))
    assert.are.equal("héllo wörld ✓ 😀", roundtrip("héllo wörld ✓ 😀"))
    assert.are.equal(0xa0, first_byte(""))
    local binary = "\255\0\1\200abc"
    assert.are.equal(binary, roundtrip(binary))
    assert.are.equal(0xc4, first_byte(binary))
    -- Overlong form, surrogate and code point above U+10FFFF pack as bin.
    assert.are.equal(0xc4, first_byte("\xc0\xaf"))
    assert.are.equal(0xc4, first_byte("\xed\xa0\x80"))
    assert.are.equal(0xc4, first_byte("\xf4\x90\x80\x80"))
    local long = string.rep("x", 70000)
    assert.are.equal(long, roundtrip(long))
  end)

  it("keeps 64-bit integers as integers", function()
    for _, n in ipairs({ 0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536,
                         2147483647, -2147483648, 4294967296,
                         math.maxinteger, math.mininteger }) do
      local back = roundtrip(n)
      assert.are.equal("integer", math.type(back), "type of " .. n)
      assert.are.equal(n, back)
    end
  end)

  it("keeps floats as floats", function()
    for _, x in ipairs({ 0.0, 1.5, -2.25, 2.0, 1e308, -1e-308, math.huge, -math.huge }) do
      local back = roundtrip(x)
      assert.are.equal("float", math.type(back), "type of " .. tostring(x))
      assert.are.equal(x, back)
    end
    local nan = roundtrip(0 / 0)
    assert.is_true(nan ~= nan)
    assert.are.equal(0xcb, first_byte(2.0))
  end)

  it("keeps booleans and null", function()
    assert.are.equal(true, roundtrip(true))
    assert.are.equal(false, roundtrip(false))
    assert.are.equal(hivent.null, roundtrip(hivent.null))
    assert.are.equal(0xc0, first_byte(hivent.null))
    local value = roundtrip({ list = { 1, hivent.null, 3 }, gone = hivent.null })
    assert.are.equal(3, #value.list)
    assert.are.equal(hivent.null, value.list[2])
    assert.are.equal(hivent.null, value.gone)
  end)

  it("packs sequences as arrays and other tables as maps", function()
    assert.are.equal(0x93, first_byte({ 1, 2, 3 }))
    assert.are.equal(0x80, first_byte({}))
    assert.are.equal(0x90, first_byte(hivent.array()))
    assert.are.equal(0x82, first_byte({ [1] = "a", [3] = "c" }))
    assert.are.equal(0x82, first_byte({ 1, x = 2 }))
    local sparse = roundtrip({ [1] = "a", [3] = "c" })
    assert.are.equal("c", sparse[3])
    assert.is_false(hivent.is_array(sparse))
    local decoded = roundtrip({ items = hivent.array(), empty = {} })
    assert.is_true(hivent.is_array(decoded.items))
    assert.are.equal(0x90, first_byte(decoded.items))
    assert.are.equal(0x80, first_byte(decoded.empty))
  end)

  it("keeps nested maps and arrays", function()
    local value = {
      name = "order", total = 12.5, count = 3, paid = false,
      lines = { { sku = "a", qty = 1 }, { sku = "b", qty = 2, tags = { "x", "y" } } },
      meta = { [1] = "one", [2.5] = "float key", [true] = "bool key" },
      blob = "\0\1\2\255",
    }
    compare.assert_same(value, roundtrip(value), "value")
  end)

  it("names the field of an unconvertible value", function()
    local ok, err = pcall(core.pack, { a = { b = { 1, function() end } } }, "payload")
    assert.is_false(ok)
    assert.matches("payload.a.b[2]: cannot convert a function", err, 1, true)
    ok, err = pcall(core.pack, { ["odd key"] = coroutine.create(function() end) }, "payload")
    assert.is_false(ok)
    assert.matches('payload["odd key"]: cannot convert a thread', err, 1, true)
    ok, err = pcall(core.pack, { f = io.stdout }, "payload")
    assert.is_false(ok)
    assert.matches("payload.f: cannot convert a userdata", err, 1, true)
    ok, err = pcall(core.pack, { [{}] = 1 }, "payload")
    assert.is_false(ok)
    assert.matches("cannot be a map key", err, 1, true)
  end)

  it("rejects cyclic tables", function()
    local t = { child = {} }
    t.child.parent = t
    local ok, err = pcall(core.pack, t, "payload")
    assert.is_false(ok)
    assert.matches("payload.child.parent: cyclic table", err, 1, true)
    -- The same table twice, but not inside itself, is fine.
    local shared = { 1 }
    local value = roundtrip({ a = shared, b = shared })
    assert.are.same({ 1 }, value.b)
  end)

  it("limits nesting to 64 levels", function()
    local deep = {}
    local node = deep
    for _ = 1, 63 do
      node.next = {}
      node = node.next
    end
    assert.is_table(roundtrip(deep))
    node.next = {}
    local ok, err = pcall(core.pack, deep, "payload")
    assert.is_false(ok)
    assert.matches("nested deeper than 64 levels", err, 1, true)
  end)

  it("rejects malformed MessagePack", function()
    local cases = {
      { "", "truncated" },
      { "\xa5abc", "truncated" },
      { "\xdd\xff\xff\xff\xff", "container length exceeds the input" },
      { "\xdf\x7f\xff\xff\xff\x01", "container length exceeds the input" },
      { "\xdb\xff\xff\xff\xff", "truncated" },
      { "\xc1", "0xc1" },
      { "\x01\x02", "trailing bytes" },
      { "\xd4\x01\x00", "extension types are not supported" },
      { string.rep("\x91", 65) .. "\x01", "nested deeper than 64" },
      { "\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01", "NaN" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(core.unpack, case[1])
      assert.is_false(ok, "accepted " .. case[2])
      assert.matches(case[2], err, 1, true)
    end
  end)

  it("decodes every MessagePack number form", function()
    assert.are.equal(-1, core.unpack("\xff"))
    assert.are.equal(-128, core.unpack("\xd0\x80"))
    assert.are.equal(-32768, core.unpack("\xd1\x80\x00"))
    assert.are.equal(65535, core.unpack("\xcd\xff\xff"))
    assert.are.equal(1.5, core.unpack("\xca\x3f\xc0\x00\x00"))
    assert.are.equal(math.mininteger, core.unpack("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"))
    local big = core.unpack("\xcf\xff\xff\xff\xff\xff\xff\xff\xff")
    assert.are.equal("float", math.type(big))
    assert.are.equal(2.0 ^ 64, big)
  end)

  it("requires the payload to be a map", function()
    hivent.configure({ server = { host = "memory" } })
    local ok, err = pcall(hivent.emit, "conv:test", { 1, 2 })
    assert.is_false(ok)
    assert.matches("must be a map", tostring(err), 1, true)
    ok, err = pcall(hivent.emit, "conv:test", { f = print })
    assert.is_false(ok)
    assert.matches("payload.f: cannot convert a function", tostring(err), 1, true)
    hivent.close()
  end)

  it("round-trips the GitHub webhook payloads", function()
    local examples, reason = compare.webhooks(hivent.null)
    if not examples then
      pending(reason)
      return
    end
    assert.are.equal(329, #examples)
    for _, example in ipairs(examples) do
      -- The core's JSON reader and this module's decoder agree...
      local packed, errstr = select(2, core.hivent_json_to_msgpack(example.json))
      assert(packed, example.name .. ": " .. tostring(errstr))
      local decoded = core.unpack(packed)
      compare.assert_same(example.payload, decoded, example.name)
      -- ...and packing the Lua table again gives the same JSON.
      local json = core.hivent_msgpack_to_json(core.pack(decoded))
      assert(json, example.name .. ": msgpack_to_json failed")
      local again = select(2, core.hivent_json_to_msgpack(json))
      compare.assert_same(decoded, core.unpack(again), example.name)
    end
  end)
end)
