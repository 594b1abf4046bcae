# frozen_string_literal: true

require "spec_helper"

RSpec.describe "emit" do
  let(:log) { StringIO.new }
  # Created on first use, so examples that never emit through it start no connection.
  def client
    @client ||= Hivent::Client.new(server_config(log: log, client_id: "emit-spec"))
  end

  after { @client&.close }

  describe "synchronous" do
    it "returns the published event with meta filled in" do
      event = client.emit("emit:sync", { "amount" => 12, flag: true }, version: 3, key: "k-1")
      expect(event.name).to eq("emit:sync")
      expect(event.payload).to eq({ "amount" => 12, "flag" => true })
      expect(event.version).to eq(3)
      expect(event.key).to eq("k-1")
      expect(event.producer).to eq("emit-spec")
      expect(event.uuid).to match(/\A\h{8}-\h{4}-[47]\h{3}-\h{4}-\h{12}\z/)
      expect(event.cid).to match(/\A\h{8}-/)
      expect(event.created_at).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\z/)
    end

    it "keeps a given correlation id" do
      expect(client.emit("emit:cid", {}, version: 1, cid: "corr-42").cid).to eq("corr-42")
    end

    it "works through the module API" do
      Hivent.configure do |c|
        c.client_id = "module-api"
        c.server = { host: "127.0.0.1", port: SharedServer.port }
        c.logger = test_logger(log)
      end
      event = Hivent.emit("emit:module", { foo: "bar" }, version: 1, cid: nil, key: nil)
      expect(event.payload).to eq({ "foo" => "bar" })
      expect(event.producer).to eq("module-api")
    end

    it "serves several threads at once" do
      threads = Array.new(4) do |t|
        Thread.new { Array.new(10) { |i| client.emit("emit:threads", { t: t, i: i }, version: 1).payload } }
      end
      payloads = threads.flat_map(&:value)
      expect(payloads.length).to eq(40)
      expect(payloads.uniq.length).to eq(40)
    end
  end

  describe "asynchronous" do
    it "calls the block with the published event" do
      results = []
      delivery = client.emit_async("emit:async", { n: 1 }, version: 2) { |event, error| results << [event, error] }
      expect(client.flush(10)).to eq(0)
      expect(delivery).to be_done
      expect(results.length).to eq(1)
      event, error = results.first
      expect(error).to be_nil
      expect(event.payload).to eq({ "n" => 1 })
      expect(event.uuid).to eq(delivery.event.uuid)
    end

    it "returns deliveries whose value waits for the reply" do
      deliveries = Array.new(200) { |i| client.emit_async("emit:many", { i: i }, version: 1) }
      events = deliveries.map { |delivery| delivery.value(10) }
      expect(events.map { |event| event.payload["i"] }).to eq((0...200).to_a)
      expect(events.map(&:uuid).uniq.length).to eq(200)
    end

    it "runs the block of a module-level emit" do
      Hivent.configure { |c| c.server = { host: "127.0.0.1", port: SharedServer.port }; c.logger = test_logger(log) }
      seen = nil
      Hivent.emit("emit:module-async", { a: 1 }, version: 1) { |event, _error| seen = event }
      expect(Hivent.flush(10)).to eq(0)
      expect(seen.payload).to eq({ "a" => 1 })
    end

    it "allows emits inside a delivery block" do
      inner = nil
      client.emit_async("emit:outer", {}, version: 1) do |_event, _error|
        inner = client.emit("emit:inner", { "nested" => true }, version: 1, timeout: 10)
      end
      expect(client.flush(10)).to eq(0)
      expect(inner.payload).to eq({ "nested" => true })
    end

    it "rejects close inside a delivery block" do
      raised = nil
      client.emit_async("emit:close-inside", {}, version: 1) do |_event, _error|
        client.close
      rescue Hivent::StateError => e
        raised = e
      end
      expect(client.flush(10)).to eq(0)
      expect(raised).to be_a(Hivent::StateError)
      expect(client).not_to be_closed
    end

    it "logs an exception raised in the block and keeps going" do
      client.emit_async("emit:bad-block", {}, version: 1) { raise ArgumentError, "callback broke" }
      expect(client.flush(10)).to eq(0)
      expect(client.emit("emit:after-bad-block", {}, version: 1).name).to eq("emit:after-bad-block")
      expect(log.string).to include("callback broke")
      expect(log.string).to include("emit_spec.rb")
    end
  end

  describe "payload buffer" do
    it "sends only the new payload after a rejected one" do
      bad = { "big" => "y" * 10_000, "bad" => Object.new }
      expect { client.emit("emit:reuse", bad, version: 1) }.to raise_error(TypeError, /payload\.bad/)
      expect(client.emit("emit:reuse", { "n" => 1 }, version: 1).payload).to eq({ "n" => 1 })
    end

    it "keeps payloads apart across sizes" do
      large = { "data" => "z" * 400_000 }
      expect(client.emit("emit:large", large, version: 1).payload).to eq(large)
      expect(client.emit("emit:small", { "a" => "b" }, version: 1).payload).to eq({ "a" => "b" })
      expect(client.emit("emit:empty", nil, version: 1).payload).to eq({})
    end

    it "keeps payloads apart across threads" do
      threads = Array.new(4) do |t|
        Thread.new do
          Array.new(50) { |i| client.emit_async("emit:threads", { "t" => t, "i" => i, "pad" => "p" * (t * 300) }, version: 1) }
        end
      end
      deliveries = threads.flat_map(&:value)
      expect(client.flush(20)).to eq(0)
      deliveries.each { |delivery| expect(delivery.error).to be_nil }
      payloads = deliveries.map { |delivery| delivery.event.payload }
      expected = Array.new(4) { |t| Array.new(50) { |i| { "t" => t, "i" => i, "pad" => "p" * (t * 300) } } }.flatten
      expect(payloads).to match_array(expected)
    end

    it "names a payload key that is not a String" do
      expect { client.emit_async("emit:key", { 1 => 2 }, version: 1) }
        .to raise_error(TypeError, /payload: map key of class Integer/)
      expect(client.outstanding).to eq(0)
    end

    it "reports a long path cut at 240 characters" do
      payload = {}
      inner = payload
      20.times do
        inner["k" * 20] = {}
        inner = inner["k" * 20]
      end
      inner["bad"] = Object.new
      expect { client.emit("emit:deep", payload, version: 1) }.to raise_error(TypeError) do |error|
        path = error.message.split(": ").first
        expect(path.length).to eq(243)
        expect(path).to end_with("...")
        expect(path).to start_with("payload.#{'k' * 20}.")
      end
    end
  end

  describe "delivery reports" do
    it "builds the event of an asynchronous emit" do
      seen = nil
      delivery = client.emit_async("emit:report", { "x" => [1, "two"] }, version: 5, cid: "c-9", key: "k-9") do |event, error|
        seen = [event, error]
      end
      expect(client.flush(10)).to eq(0)
      event, error = seen
      expect(error).to be_nil
      expect(event).to be(delivery.event)
      expect(event.name).to eq("emit:report")
      expect(event.payload).to eq({ "x" => [1, "two"] })
      expect(event.meta.keys).to eq(%w[version cid key producer uuid created_at])
      expect(event.version).to eq(5)
      expect(event.cid).to eq("c-9")
      expect(event.key).to eq("k-9")
      expect(event.producer).to be_a(String)
      expect(event.uuid).to match(/\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/)
      expect(event.queue).to be_nil
      expect(event.partition).to be_nil
      expect(event.name.frozen?).to be(false)
    end
  end

  describe "errors" do
    it "rejects a version that is not positive" do
      expect { client.emit("emit:v0", {}, version: 0) }.to raise_error(Hivent::InvalidArgError)
    end

    it "rejects a version that is not an Integer" do
      expect { client.emit("emit:vs", {}, version: "1") }.to raise_error(TypeError, /version/)
    end

    it "rejects a version outside the 64-bit range" do
      expect { client.emit("emit:vbig", {}, version: 2**63) }
        .to raise_error(RangeError, /version 9223372036854775808 is outside the int64_t range/)
      expect { client.emit("emit:vbig", {}, version: 2**70) }.to raise_error(RangeError, /version/)
      expect { client.emit("emit:vneg", {}, version: -2**63 - 1) }.to raise_error(RangeError, /version/)
      expect(client.outstanding).to eq(0)
    end

    it "accepts a Bignum version inside the 64-bit range" do
      expect(client.emit("emit:vwide", {}, version: 2**63 - 1).version).to eq(2**63 - 1)
      expect(client.emit("emit:vwide", {}, version: 2**62).version).to eq(2**62)
    end

    it "rejects a native call with a handle of another type" do
      expect { Hivent::Native.hivent_emit_async("not a client", "emit:x", {}, 1, nil, nil, 1) }
        .to raise_error(TypeError, /hivent_client_t/)
      expect { Hivent::Native.hivent_emit_async(nil, "emit:x", {}, 1, nil, nil, 1) }
        .to raise_error(Hivent::InvalidArgError)
    end

    it "rejects an empty or invalid name" do
      expect { client.emit("", {}, version: 1) }.to raise_error(Hivent::InvalidArgError)
      expect { client.emit("bad\xff", {}, version: 1) }.to raise_error(Hivent::InvalidArgError)
      expect { client.emit("nul\0name", {}, version: 1) }
        .to raise_error(ArgumentError, /\Aname contains a NUL byte at byte 3/)
    end

    it "names a key with a NUL byte" do
      expect { client.emit("emit:nulkey", {}, version: 1, key: "ab\0") }
        .to raise_error(ArgumentError, /\Akey contains a NUL byte at byte 2/)
      expect { client.emit("emit:nulcid", {}, version: 1, cid: "\0") }
        .to raise_error(ArgumentError, /\Acid contains a NUL byte at byte 0/)
      expect(client.outstanding).to eq(0)
    end

    it "names the payload field that cannot be converted" do
      expect { client.emit("emit:bad", { a: { b: [Object.new] } }, version: 1) }
        .to raise_error(TypeError, /payload\.a\.b\[0\]/)
      expect(client.outstanding).to eq(0)
    end

    it "rejects duplicate keys before sending" do
      identity = {}.compare_by_identity
      identity["a".dup] = 1
      identity["a".dup] = 2
      expect { client.emit("emit:dup", { a: 1, "a" => 2 }, version: 1) }
        .to raise_error(ArgumentError, /payload: duplicate key "a"/)
      expect { client.emit_async("emit:dup", identity, version: 1) }
        .to raise_error(ArgumentError, /payload: duplicate key "a"/)
      expect(client.outstanding).to eq(0)
    end

    it "raises DestroyedError after close" do
      client.close
      expect { client.emit("emit:closed", {}, version: 1) }.to raise_error(Hivent::DestroyedError)
    end

    it "fails when the server rejects the API key" do
      server = TestServer.new(extra_args: ["--api-key", "right-key"]).start
      config = server_config(port: server.port, max_reconnect_tries: 0, log: log)
      config.server = { api_key: "wrong-key" }
      bad_client = Hivent::Client.new(config)
      expect { bad_client.emit("emit:auth", {}, version: 1, timeout: 10) }.to raise_error(Hivent::Error)
      expect(log.string).to match(/AUTH|403|API key/i)
      expect(log.string).not_to include("wrong-key")
      bad_client.close
    ensure
      server&.destroy
    end

    it "fails outstanding emits at once on close(0)" do
      server = TestServer.new.start
      port = server.port
      server.stop
      down = Hivent::Client.new(server_config(port: port, log: log, flush_timeout: 3000))
      errors = []
      deliveries = Array.new(3) do |i|
        down.emit_async("emit:close", { "i" => i }, version: 1) { |_event, error| errors << error }
      end
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      down.close(0)
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 1
      expect(down).to be_closed
      expect(errors.length).to eq(3)
      expect(errors).to all(be_a(Hivent::DestroyedError))
      deliveries.each { |delivery| expect(delivery.error).to be_a(Hivent::DestroyedError) }
      expect(log.string).to include("closed with 3 emits outstanding")
    ensure
      server&.destroy
    end

    it "waits flush_timeout once when closing without a timeout" do
      server = TestServer.new.start
      port = server.port
      server.stop
      down = Hivent::Client.new(server_config(port: port, log: log, flush_timeout: 600))
      delivery = down.emit_async("emit:close", {}, version: 1)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      down.close
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      expect(elapsed).to be >= 0.5
      expect(elapsed).to be < 1.1
      expect(delivery.error).to be_a(Hivent::DestroyedError)
    ensure
      server&.destroy
    end

    it "times out a delivery wait on request" do
      server = TestServer.new.start
      port = server.port
      server.stop
      slow = Hivent::Client.new(server_config(port: port, log: log, flush_timeout: 200))
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      expect { slow.emit("emit:down", {}, version: 1, timeout: 0.5) }.to raise_error(Hivent::TimedOutError)
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 2
      slow.close(0.2)
    ensure
      server&.destroy
    end
  end
end
