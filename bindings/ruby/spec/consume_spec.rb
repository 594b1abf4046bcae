# frozen_string_literal: true

require "spec_helper"

# Records every life-cycle hook call.
class RecordingHandler < Hivent::LifeCycleEventHandler
  attr_reader :calls

  def initialize
    super
    @calls = []
  end

  def application_registered(*args)
    @calls << [:application_registered, *args]
  end

  def event_processing_succeeded(*args)
    @calls << [:event_processing_succeeded, *args]
  end

  def event_processing_failed(*args)
    @calls << [:event_processing_failed, *args]
  end
end

RSpec.describe "consume" do
  let(:log) { StringIO.new }
  let(:handler) { RecordingHandler.new }
  let(:topic) { unique("consume") }
  let(:service) { unique("svc") }
  let(:producer) { Hivent::Client.new(server_config(log: log, client_id: "consume-producer")) }

  after { producer.close }

  def consumer_config
    server_config(log: log).tap { |config| config.life_cycle_event_handler = handler }
  end

  def new_consumer(behaviour = nil, **options)
    RecordingConsumer.new(config: consumer_config, topic: topic, name: service, partition_count: 2,
                          behaviour: behaviour, **options)
  end

  it "receives events with equal payload and meta" do
    consumer = new_consumer
    wait_joined(consumer)
    published = Array.new(6) { |i| producer.emit(topic, { "i" => i, "tags" => %w[a b] }, version: 1, key: "key-#{i % 3}") }
    consumer.run(max_events: 6, timeout: 15)
    expect(consumer.events.length).to eq(6)
    published.each do |sent|
      got = consumer.events.find { |event| event.uuid == sent.uuid }
      expect(got).not_to be_nil
      expect(got.name).to eq(topic)
      expect(got.payload).to eq(sent.payload)
      expect(got.meta).to eq(sent.meta)
      expect(got.queue).to eq("#{service}:#{got.partition}")
      expect([0, 1]).to include(got.partition)
    end
    expect(consumer.processed_count).to eq(6)
  end

  it "keeps one key on one partition in emit order" do
    consumer = new_consumer
    wait_joined(consumer)
    10.times { |i| producer.emit_async(topic, { "seq" => i }, version: 1, key: "same-key") }
    expect(producer.flush(10)).to eq(0)
    consumer.run(max_events: 10, timeout: 15)
    expect(consumer.events.map(&:partition).uniq.length).to eq(1)
    expect(consumer.events.map { |event| event.payload["seq"] }).to eq((0...10).to_a)
  end

  it "calls application_registered and event_processing_succeeded" do
    consumer = new_consumer
    wait_joined(consumer)
    producer.emit(topic, { "x" => 1 }, version: 4)
    consumer.run(max_events: 1, timeout: 15)
    expect(handler.calls).to include([:application_registered, service, [topic], 2])
    expect(handler.calls).to include([:event_processing_succeeded, topic, 4, { "x" => 1 }])
  end

  it "delivers only the declared version" do
    consumer = new_consumer(version: 2)
    wait_joined(consumer)
    producer.emit(topic, { "v" => 1 }, version: 1)
    producer.emit(topic, { "v" => 2 }, version: 2)
    producer.emit(topic, { "v" => 3 }, version: 3)
    wait_until(15, "version 2 event") do
      consumer.poll(0.1)
      consumer.events.any?
    end
    consumer.poll(0.5)
    expect(consumer.events.map(&:version)).to eq([2])
    consumer.close
  end

  it "receives every event with topic *" do
    all = RecordingConsumer.new(config: consumer_config, topic: "*", name: unique("all"), partition_count: 1)
    wait_joined(all)
    names = [unique("first"), unique("second")]
    names.each { |name| producer.emit(name, {}, version: 1) }
    wait_until(15, "both events") do
      all.poll(0.1)
      names.all? { |name| all.events.any? { |event| event.name == name } }
    end
    all.close
  end

  it "splits partitions between two consumers of one service" do
    first = new_consumer
    second = new_consumer
    wait_joined(first)
    wait_joined(second)
    wait_until(10, "rebalance") do
      first.poll(0.05)
      second.poll(0.05)
      true
    end
    20.times { |i| producer.emit_async(topic, { "i" => i }, version: 1, key: "k#{i}") }
    expect(producer.flush(10)).to eq(0)
    wait_until(15, "20 events") do
      first.poll(0.05)
      second.poll(0.05)
      first.events.length + second.events.length >= 20
    end
    seen = (first.events + second.events).map { |event| event.payload["i"] }
    expect(seen.sort).to eq((0...20).to_a)
    expect(first.events.map(&:partition) & second.events.map(&:partition)).to eq([])
    first.close
    second.close
  end

  it "runs several consumers in one process with run_all" do
    consumers = [new_consumer, RecordingConsumer.new(config: consumer_config, topic: topic, name: unique("other"),
                                                     partition_count: 1)]
    consumers.each { |consumer| wait_joined(consumer) }
    producer.emit(topic, { "both" => true }, version: 1)
    Hivent::Consumer.run_all(consumers, max_events: 1, timeout: 15)
    expect(consumers.map { |consumer| consumer.events.length }).to eq([1, 1])
  end

  it "closes after the event when process calls close" do
    consumer = new_consumer(->(_event) { consumer.close })
    wait_joined(consumer)
    producer.emit(topic, { "x" => 1 }, version: 1)
    wait_until(15, "close from process") do
      consumer.poll(0.1) unless consumer.state == :closed
      consumer.state == :closed
    end
    expect(consumer.processed_count).to eq(1)
  end

  it "rejects poll and run after close" do
    consumer = new_consumer
    wait_joined(consumer)
    consumer.close
    expect(consumer.closed?).to be(true)
    expect { consumer.poll(0.1) }.to raise_error(Hivent::DestroyedError, /is closed; create a new consumer/)
    expect { consumer.run(timeout: 1) }.to raise_error(Hivent::DestroyedError, /is closed/)
    expect(consumer.state).to eq(:closed)
  end

  it "stays closed after close inside process" do
    consumer = new_consumer(->(_event) { consumer.close })
    wait_joined(consumer)
    producer.emit(topic, { "first" => 1 }, version: 1)
    producer.emit(topic, { "second" => 2 }, version: 1)
    wait_until(15, "close from process") do
      consumer.poll(0.1)
      consumer.state == :closed
    rescue Hivent::DestroyedError
      true
    end
    expect { consumer.poll(0.2) }.to raise_error(Hivent::DestroyedError)
    expect(consumer.state).to eq(:closed)
    expect(consumer.processed_count).to eq(1)
  end

  it "names poll from inside process" do
    errors = []
    consumer = new_consumer(lambda do |_event|
      consumer.poll(0)
    rescue Hivent::StateError => e
      errors << e
      nil
    end)
    wait_joined(consumer)
    producer.emit(topic, { "x" => 1 }, version: 1)
    consumer.run(max_events: 1, timeout: 15)
    expect(errors.length).to eq(1)
    expect(errors.first.message).to match(/poll called from inside process/)
    expect(errors.first.message).not_to match(/another thread/)
    expect(consumer.processed_count).to eq(1)
  end

  it "fails a run whose partition count differs from the service's" do
    first = new_consumer
    wait_joined(first)
    config = server_config(log: log, max_reconnect_tries: 1, reconnect_backoff_time: 50)
    mismatched = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 3)
    expect { mismatched.run(timeout: 15) }
      .to raise_error(Hivent::FailedError, /HIVENT_ERR_JOIN_REJECTED.*partition_count 3/)
    first.close
  end

  it "declares consumers with the class DSL" do
    consumed = []
    klass = Class.new(Hivent::Consumer)
    klass.topic(topic)
    klass.name(service)
    klass.partition_count(1)
    klass.define_method(:process) { |event| consumed << event.payload }
    consumer = klass.new(config: consumer_config)
    wait_joined(consumer)
    producer.emit(topic, { "dsl" => 1 }, version: 1)
    consumer.run(max_events: 1, timeout: 15)
    expect(consumed).to eq([{ "dsl" => 1 }])
  end
end

RSpec.describe "dead letters" do
  let(:log) { StringIO.new }
  let(:handler) { RecordingHandler.new }
  let(:topic) { unique("dlq") }
  let(:service) { unique("dlq-svc") }
  let(:producer) { Hivent::Client.new(server_config(log: log)) }

  after { producer.close }

  def consumer_with(behaviour)
    config = server_config(log: log)
    config.life_cycle_event_handler = handler
    RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 1, behaviour: behaviour)
  end

  it "dead-letters an event whose process raises, logs the backtrace and goes on" do
    consumer = consumer_with(->(event) { raise "boom #{event.payload['n']}" if event.payload["n"] == 1 })
    wait_joined(consumer)
    sent = [0, 1, 2].map { |n| producer.emit(topic, { "n" => n }, version: 1) }
    consumer.run(max_events: 3, timeout: 15)
    expect(consumer.events.map { |event| event.payload["n"] }).to eq([0, 1, 2])
    expect(consumer.processed_count).to eq(2)
    expect(consumer.failed_count).to eq(1)
    expect(log.string).to include("RuntimeError: boom 1")
    expect(log.string).to match(/consume_spec\.rb:\d+/)

    entries = wait_until(10, "dead letter stored") { dead_letters(service).then { |list| list unless list.empty? } }
    expect(entries.length).to eq(1)
    expect(entries.first["queue"]).to eq("#{service}:0:dead_letter")
    expect(entries.first["event"]["meta"]["uuid"]).to eq(sent[1].uuid)
    expect(entries.first["reason"]).to include("boom 1")

    failed = handler.calls.find { |call| call.first == :event_processing_failed }
    expect(failed[1]).to be_a(RuntimeError)
    expect(failed[2]).to eq({ "n" => 1 })
    expect(JSON.parse(failed[3])["meta"]["uuid"]).to eq(sent[1].uuid)
    expect(failed[4]).to eq("#{service}:0:dead_letter")
  end

  it "dead-letters an event when process returns [:error, reason]" do
    consumer = consumer_with(->(_event) { [:error, "not today"] })
    wait_joined(consumer)
    producer.emit(topic, { "x" => 1 }, version: 1)
    consumer.run(max_events: 1, timeout: 15)
    entries = wait_until(10, "dead letter stored") { dead_letters(service).then { |list| list unless list.empty? } }
    expect(entries.first["reason"]).to include("not today")
    failed = handler.calls.find { |call| call.first == :event_processing_failed }
    expect(failed[1]).to be_a(Hivent::ProcessingError)
  end

  it "survives an exception in a life-cycle hook" do
    broken = Class.new(Hivent::LifeCycleEventHandler) do
      def event_processing_succeeded(*)
        raise "hook broke"
      end
    end
    config = server_config(log: log)
    config.life_cycle_event_handler = broken.new
    consumer = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 1)
    wait_joined(consumer)
    2.times { |i| producer.emit(topic, { "i" => i }, version: 1) }
    consumer.run(max_events: 2, timeout: 15)
    expect(consumer.processed_count).to eq(2)
    expect(log.string).to include("hook broke")
    expect(dead_letters(service)).to eq([])
  end

  it "counts exceptions outside StandardError as failures" do
    consumer = consumer_with(->(_event) { raise NotImplementedError, "later" })
    wait_joined(consumer)
    producer.emit(topic, {}, version: 1)
    consumer.run(max_events: 1, timeout: 15)
    expect(consumer.failed_count).to eq(1)
    expect(log.string).to include("NotImplementedError: later")
  end
end
