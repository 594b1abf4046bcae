# frozen_string_literal: true

require "spec_helper"
require "hivent/rspec"
require "hivent/minitest"

RSpec.describe "memory transport" do
  let(:log) { StringIO.new }

  before do
    Hivent.configure do |c|
      c.server = { host: "memory" }
      c.client_id = "memory-spec"
      c.logger = test_logger(log)
    end
    Hivent::Memory.clear
  end

  it "records emitted events" do
    expect(Hivent::Memory).to be_empty
    first = Hivent.emit("memory:one", { "a" => 1 }, version: 1)
    Hivent.emit("memory:two", { "b" => [1, 2] }, version: 2, key: "k")
    expect(Hivent::Memory.count).to eq(2)
    expect(Hivent::Memory.all.map(&:name)).to eq(%w[memory:one memory:two])
    expect(Hivent::Memory.all.first.uuid).to eq(first.uuid)
    expect(Hivent::Memory.last.payload).to eq({ "b" => [1, 2] })
    expect(Hivent::Memory.last.producer).to eq("memory-spec")
  end

  it "answers includes? by name, payload subset and meta subset" do
    Hivent.emit("memory:inc", { "a" => 1, "b" => 2 }, version: 3)
    expect(Hivent::Memory.includes?("memory:inc")).to be(true)
    expect(Hivent::Memory.includes?("memory:inc", { a: 1 })).to be(true)
    expect(Hivent::Memory.includes?("memory:inc", { a: 2 })).to be(false)
    expect(Hivent::Memory.includes?(nil, nil, { version: 3 })).to be(true)
    expect(Hivent::Memory.includes?(nil, nil, { version: 4 })).to be(false)
    expect(Hivent::Memory.include?("memory:other")).to be(false)
  end

  it "clears the record" do
    Hivent.emit("memory:clear", {}, version: 1)
    Hivent::Memory.clear
    expect(Hivent::Memory.all).to eq([])
    expect(Hivent::Memory.last).to be_nil
  end

  it "delivers to consumers on the same bus" do
    consumer = RecordingConsumer.new(config: memory_config(log: log), topic: "memory:consume",
                                     name: unique("mem"), partition_count: 2)
    consumer.start
    Hivent.emit("memory:consume", { "x" => 1 }, version: 1, key: "a")
    Hivent.emit("memory:consume", { "x" => 2 }, version: 1, key: "b")
    wait_until(5, "two events") { consumer.poll(0.05) && consumer.events.length == 2 }
    expect(consumer.events.map { |event| event.payload["x"] }.sort).to eq([1, 2])
    consumer.close
  end

  describe "RSpec matcher" do
    it "matches name, version and payload" do
      expect { Hivent.emit("a:signal", { foo: "bar", other: 1 }, version: 2) }
        .to emit("a:signal", version: 2).with(foo: "bar")
    end

    it "fails for another version or payload and lists what was emitted" do
      matcher = emit("a:signal", version: 3).with(foo: "bar")
      expect(matcher.matches?(-> { Hivent.emit("a:signal", { foo: "bar" }, version: 2) })).to be(false)
      expect(matcher.failure_message).to include("a:signal v2")
      expect(emit("a:signal").with(foo: "baz").matches?(-> { Hivent.emit("a:signal", { foo: "bar" }, version: 1) }))
        .to be(false)
    end

    it "supports not_to" do
      expect { Hivent.emit("b:signal", {}, version: 1) }.not_to emit("a:signal")
    end

    it "counts only events emitted inside the block" do
      Hivent.emit("a:signal", { foo: "bar" }, version: 2)
      expect {}.not_to emit("a:signal")
    end
  end

  describe "minitest assertions" do
    let(:test_case) do
      Class.new do
        include Minitest::Assertions
        include Hivent::MinitestAssertions
        attr_accessor :assertions

        def initialize
          @assertions = 0
        end
      end.new
    end

    it "pass for a matching emit" do
      found = test_case.assert_emits("m:signal", version: 2, payload: { foo: "bar" }) do
        Hivent.emit("m:signal", { foo: "bar" }, version: 2)
      end
      expect(found.length).to eq(1)
      expect(test_case.assertions).to eq(1)
    end

    it "fail for a missing emit" do
      expect { test_case.assert_emits("m:signal") { nil } }.to raise_error(Minitest::Assertion, /no events were emitted/)
      expect { test_case.refute_emits("m:x") { Hivent.emit("m:x", {}, version: 1) } }
        .to raise_error(Minitest::Assertion, /not to emit/)
    end
  end
end
