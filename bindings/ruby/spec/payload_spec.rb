# frozen_string_literal: true

require "spec_helper"

WEBHOOKS_FILE = ENV.fetch("HIVENT_WEBHOOKS_FILE") do
  File.expand_path("../../../../shared/data/github-webhooks/index.json", __dir__)
end

RSpec.describe "payload conversion" do
  let(:native) { Hivent::Native }

  def round_trip(payload)
    native.payload_normalize(payload)
  end

  describe "round trip of each type" do
    it "keeps nil, booleans and floats" do
      payload = { "nil" => nil, "t" => true, "f" => false, "pi" => 3.141592653589793, "neg" => -0.5,
                  "tiny" => 5e-324, "huge" => 1.7976931348623157e308 }
      expect(round_trip(payload)).to eq(payload)
    end

    it "keeps non-finite floats" do
      result = round_trip({ "inf" => Float::INFINITY, "ninf" => -Float::INFINITY, "nan" => Float::NAN })
      expect(result["inf"]).to eq(Float::INFINITY)
      expect(result["ninf"]).to eq(-Float::INFINITY)
      expect(result["nan"]).to be_nan
    end

    it "keeps integers across the whole 64-bit range" do
      values = [0, 1, -1, 127, 128, -32, -33, 255, 256, -128, -129, 65_535, 65_536, -32_768, -32_769,
                2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -2**63]
      result = round_trip({ "values" => values })["values"]
      expect(result).to eq(values)
      expect(result.map(&:class).uniq).to eq([Integer])
    end

    it "keeps UTF-8 strings, including NUL bytes and astral characters" do
      payload = { "text" => "grüße 🎉 \u0000 end", "empty" => "", "long" => "x" * 70_000 }
      result = round_trip(payload)
      expect(result).to eq(payload)
      expect(result["text"].encoding).to eq(Encoding::UTF_8)
    end

    it "turns ASCII-8BIT strings into binary and back" do
      bytes = (0..255).map(&:chr).join.b
      result = round_trip({ "blob" => bytes })["blob"]
      expect(result).to eq(bytes)
      expect(result.encoding).to eq(Encoding::ASCII_8BIT)
    end

    it "converts other encodings to UTF-8" do
      latin = "caf\xE9".dup.force_encoding(Encoding::ISO_8859_1)
      expect(round_trip({ "s" => latin })["s"]).to eq("café")
    end

    it "turns symbols into strings, keys and values alike" do
      expect(round_trip({ status: :open, nested: { deep: [:a] } }))
        .to eq({ "status" => "open", "nested" => { "deep" => ["a"] } })
    end

    it "keeps nested arrays and maps" do
      payload = { "a" => [[], {}, [1, [2, [3, { "b" => [nil] }]]]], "m" => { "x" => { "y" => { "z" => 1 } } } }
      expect(round_trip(payload)).to eq(payload)
    end

    it "keeps 64 levels of arrays and maps with a scalar leaf" do
      deep = 63.times.reduce(1) { |inner, _| [inner] }
      expect(round_trip({ "d" => deep })).to eq({ "d" => deep })
      maps = 63.times.reduce({ "leaf" => 1 }) { |inner, _| { "k" => inner } }
      expect(round_trip(maps)).to eq(maps)
    end

    it "rejects packing 65 levels of arrays" do
      deep = 64.times.reduce(1) { |inner, _| [inner] }
      expect { native.payload_pack({ "d" => deep }) }
        .to raise_error(ArgumentError, /\Apayload\.d(\[0\]){63}: arrays and maps are nested deeper than 64 levels/)
    end

    it "keeps extension values" do
      ext = Hivent::Ext.new(-1, "\x00\x01\x02\x03".b)
      expect(round_trip({ "ts" => ext })["ts"]).to eq(ext)
    end

    it "packs nil as an empty map" do
      expect(native.payload_pack(nil)).to eq("\x80".b)
    end
  end

  describe "values that cannot be converted" do
    it "names the field of an unsupported object" do
      expect { native.payload_pack({ user: { tags: [1, Object.new] } }) }
        .to raise_error(TypeError, /\Apayload\.user\.tags\[1\]: cannot convert Object/)
    end

    it "rejects a payload that is not a Hash" do
      expect { native.payload_pack([1, 2]) }.to raise_error(TypeError, /payload: expected a Hash, got Array/)
    end

    it "rejects integers outside 64 bits" do
      expect { native.payload_pack({ n: 2**64 }) }.to raise_error(RangeError, /payload\.n: integer 18446744073709551616/)
      expect { native.payload_pack({ n: -2**63 - 1 }) }.to raise_error(RangeError, /payload\.n/)
    end

    it "rejects invalid UTF-8" do
      expect { native.payload_pack({ s: ["ok", "bad \xff"] }) }
        .to raise_error(ArgumentError, /payload\.s\[1\]: string is not valid UTF-8/)
    end

    it "names an invalid UTF-8 map key" do
      bad_key = "k\xff".dup.force_encoding(Encoding::UTF_8)
      expect { native.payload_pack({ user: { bad_key => 1 } }) }
        .to raise_error(ArgumentError, /\Apayload\.user: map key "k\\xFF" is not valid UTF-8/)
    end

    it "rejects keys that are not strings or symbols" do
      expect { native.payload_pack({ a: { 1 => "x" } }) }
        .to raise_error(TypeError, /payload\.a: map key of class Integer/)
    end

    it "rejects a Symbol and a String key with the same name" do
      expect { native.payload_pack({ user: { a: 1, "a" => 2 } }) }
        .to raise_error(ArgumentError, /\Apayload\.user: duplicate key "a"/)
    end

    it "rejects equal keys of a compare_by_identity Hash" do
      payload = {}.compare_by_identity
      payload["a".dup] = 1
      payload["a".dup] = 2
      expect(payload.size).to eq(2)
      expect { native.payload_pack(payload) }.to raise_error(ArgumentError, /\Apayload: duplicate key "a"/)
    end

    it "rejects keys that become equal in UTF-8" do
      latin = "caf\xE9".dup.force_encoding(Encoding::ISO_8859_1)
      expect { native.payload_pack({ latin => 1, "café" => 2 }) }
        .to raise_error(ArgumentError, /\Apayload: duplicate key "café"/)
    end

    it "keeps distinct Symbol and String keys" do
      identity = {}.compare_by_identity
      identity["a".dup] = 1
      identity["b".dup] = 2
      expect(round_trip({ a: 1, "b" => 2, c: { "c" => 3 } })).to eq({ "a" => 1, "b" => 2, "c" => { "c" => 3 } })
      expect(round_trip(identity)).to eq({ "a" => 1, "b" => 2 })
    end

    it "rejects a hash that contains itself" do
      loop_hash = {}
      loop_hash["self"] = loop_hash
      expect { native.payload_pack(loop_hash) }.to raise_error(ArgumentError, /nested deeper than 64 levels/)
    end

    it "rejects Time, Range and Proc values" do
      [Time.now, (1..2), -> {}].each do |value|
        expect { native.payload_pack({ v: value }) }.to raise_error(TypeError, /payload\.v: cannot convert/)
      end
    end
  end

  describe "decoding hostile input" do
    it "rejects truncated values" do
      packed = native.payload_pack({ "key" => "value", "list" => [1, 2, 3] })
      (0...packed.bytesize).each do |length|
        expect { native.payload_unpack(packed.byteslice(0, length)) }.to raise_error(Hivent::PayloadError)
      end
    end

    it "rejects counts larger than the input" do
      ["\xdd\xff\xff\xff\xff".b, "\xdf\xff\xff\xff\xff".b, "\xdb\xff\xff\xff\xff".b, "\xc6\x7f\xff\xff\xff".b].each do |bytes|
        expect { native.payload_unpack(bytes) }.to raise_error(Hivent::PayloadError)
      end
    end

    it "rejects the unused byte 0xc1 and trailing bytes" do
      expect { native.payload_unpack("\xc1".b) }.to raise_error(Hivent::PayloadError, /0xc1/)
      expect { native.payload_unpack("\x80\x80".b) }.to raise_error(Hivent::PayloadError, /trailing/)
    end

    it "decodes 64 levels of arrays" do
      bytes = ("\x91" * 64).b + "\xc0".b
      value = native.payload_unpack(bytes)
      depth = 0
      while value.is_a?(Array)
        depth += 1
        value = value.first
      end
      expect(depth).to eq(64)
      expect(value).to be_nil
    end

    it "rejects 65 levels of arrays as too deep" do
      expect { native.payload_unpack(("\x91" * 65).b + "\xc0".b) }
        .to raise_error(Hivent::PayloadError, /arrays and maps are nested deeper than 64 levels/)
    end

    it "does not call too deep input malformed" do
      expect { native.payload_unpack(("\x91" * 100).b + "\xc0".b) }
        .to raise_error(Hivent::PayloadError) { |error| expect(error.message).not_to match(/malformed/) }
    end

    it "never crashes on random bytes" do
      random = Random.new(4242)
      2000.times do
        bytes = random.bytes(random.rand(1..64))
        begin
          native.payload_unpack(bytes)
        rescue Hivent::PayloadError
          nil
        end
      end
    end
  end

  describe "nesting limit through a real hiventd" do
    def nested_maps(levels)
      (levels - 1).times.reduce({ "leaf" => 1 }) { |inner, _| { "k" => inner } }
    end

    it "delivers 64 levels and rejects 65 at emit" do
      topic = unique("deep")
      service = unique("deep")
      consumer = RecordingConsumer.new(config: server_config, topic: topic, name: service, partition_count: 1)
      wait_joined(consumer)
      client = Hivent::Client.new(server_config)
      sent = client.emit(topic, nested_maps(64), version: 1, timeout: 10)
      expect { client.emit(topic, nested_maps(65), version: 1, timeout: 10) }
        .to raise_error(ArgumentError, /nested deeper than 64 levels/)
      consumer.run(max_events: 1, timeout: 15)
      expect(consumer.events.length).to eq(1)
      expect(consumer.events.first.uuid).to eq(sent.uuid)
      expect(consumer.events.first.payload).to eq(nested_maps(64))
      expect(dead_letters(service)).to eq([])
    ensure
      client&.close
      consumer&.close
    end
  end

  describe "GitHub webhook payloads", if: File.exist?(WEBHOOKS_FILE) do
    let(:payloads) do
      JSON.parse(File.read(WEBHOOKS_FILE)).flat_map { |entry| entry["examples"] }
    end

    it "round-trip through the codec unchanged" do
      expect(payloads.length).to eq(329)
      payloads.each { |payload| expect(round_trip(payload)).to eq(payload) }
    end

    it "arrive unchanged at a consumer of a real hiventd" do
      topic = unique("webhook")
      consumer = RecordingConsumer.new(config: server_config, topic: topic, name: unique("hooks"),
                                       partition_count: 1)
      wait_joined(consumer)
      client = Hivent::Client.new(server_config)
      deliveries = payloads.each_with_index.map do |payload, index|
        client.emit_async(topic, payload, version: 1, key: "hook-#{index}")
      end
      expect(client.flush(30)).to eq(0)
      expect(deliveries.map(&:error).compact).to eq([])
      consumer.run(max_events: payloads.length, timeout: 60)
      expect(consumer.events.length).to eq(payloads.length)
      by_key = consumer.events.to_h { |event| [event.key, event.payload] }
      payloads.each_with_index { |payload, index| expect(by_key["hook-#{index}"]).to eq(payload) }
      client.close
    end
  end
end
