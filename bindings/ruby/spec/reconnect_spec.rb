# frozen_string_literal: true

require "spec_helper"

RSpec.describe "reconnect" do
  let(:log) { StringIO.new }
  let(:server) { TestServer.new.start }

  after { server.destroy }

  it "emits again after hiventd restarts" do
    client = Hivent::Client.new(server_config(port: server.port, log: log))
    expect(client.emit("reconnect:before", { "n" => 1 }, version: 1).payload).to eq({ "n" => 1 })
    server.stop
    pending_delivery = client.emit_async("reconnect:during", { "n" => 2 }, version: 1)
    wait_until(10, "connection lost") { client.poll(0.05) && client.state != :connected }
    server.start
    expect(pending_delivery.value(20).payload).to eq({ "n" => 2 })
    expect(client.emit("reconnect:after", { "n" => 3 }, version: 1, timeout: 20).payload).to eq({ "n" => 3 })
    expect(log.string).to match(/backoff|connecting/)
    client.close
  end

  it "consumes again after hiventd restarts" do
    topic = unique("reconnect")
    consumer = RecordingConsumer.new(config: server_config(port: server.port, log: log), topic: topic,
                                     name: unique("svc"), partition_count: 1)
    wait_joined(consumer)
    client = Hivent::Client.new(server_config(port: server.port, log: log))
    client.emit(topic, { "n" => 1 }, version: 1)
    wait_until(10, "first event") { consumer.poll(0.05) && consumer.events.length == 1 }

    server.stop
    wait_until(10, "consumer noticed") { consumer.poll(0.05) && consumer.state != :connected }
    server.start
    wait_until(20, "consumer rejoined") { consumer.poll(0.05) && consumer.state == :connected }
    client.emit(topic, { "n" => 2 }, version: 1, timeout: 20)
    wait_until(15, "second event") { consumer.poll(0.05) && consumer.events.length >= 2 }
    expect(consumer.events.map { |event| event.payload["n"] }).to eq([1, 2])
    consumer.close
    client.close
  end

  it "gives up after max_reconnect_tries and fails clearly" do
    port = server.port
    server.stop
    client = Hivent::Client.new(server_config(port: port, log: log, max_reconnect_tries: 1,
                                              reconnect_backoff_time: 50, flush_timeout: 200))
    wait_until(15, "failed state") do
      client.poll(0.05)
      client.state == :failed
    end
    expect { client.emit("reconnect:failed", {}, version: 1, timeout: 5) }.to raise_error(Hivent::Error)
    expect(log.string).to match(/failed/i)
    client.close(0.5)
  end

  it "replaces a failed default client on Hivent.emit" do
    port = server.port
    server.stop
    Hivent.configure do |config|
      config.client_id = "ruby-spec-default"
      config.server = { host: "127.0.0.1", port: port }
      config.max_reconnect_tries = 1
      config.reconnect_backoff_time = 50
      config.set("flush_timeout", 200)
      config.logger = test_logger(log)
    end
    failed = Hivent.client
    wait_until(15, "failed state") do
      failed.poll(0.05)
      failed.state == :failed
    end
    server.start(port)
    event = Hivent.emit("reconnect:default", { "n" => 1 }, version: 1)
    expect(event.payload).to eq({ "n" => 1 })
    expect(Hivent.client).not_to equal(failed)
    expect(failed.closed?).to be(true)
    expect(log.string.lines.grep(/W,.*default client failed.*replaced it with a new client/).length).to eq(1)
    expect(Hivent.emit("reconnect:default", { "n" => 2 }, version: 1).payload).to eq({ "n" => 2 })
  end

  it "warns once per reconnect backoff" do
    port = server.port
    server.stop
    client = Hivent::Client.new(server_config(port: port, log: log, max_reconnect_tries: 2,
                                              reconnect_backoff_time: 50, flush_timeout: 200))
    wait_until(15, "failed state") do
      client.poll(0.05)
      client.state == :failed
    end
    warnings = log.string.lines.grep(/\AW,/)
    expect(warnings.grep(/attempt 1\b/).length).to eq(1), warnings.join
    expect(warnings.grep(/attempt 2\b/).length).to eq(1), warnings.join
    expect(log.string.lines.grep(/\AD,.*connection backoff \(attempt 1\)/).length).to eq(1)
    client.close(0.5)
  end

  it "stops a consumer run with FailedError when reconnects are used up" do
    port = server.port
    server.stop
    consumer = RecordingConsumer.new(config: server_config(port: port, log: log, max_reconnect_tries: 1,
                                                           reconnect_backoff_time: 50),
                                     topic: "reconnect:gone", name: unique("svc"), partition_count: 1)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect { consumer.run(timeout: 20) }.to raise_error(Hivent::FailedError, /refused/)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 15
    expect(consumer.state).to eq(:closed)
  end

  it "stops a consumer run with FailedError when every join is rejected" do
    topic = unique("reconnect:join")
    service = unique("svc")
    config = server_config(port: server.port, log: log, max_reconnect_tries: 2, reconnect_backoff_time: 50)
    owner = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 4)
    wait_joined(owner)
    mismatched = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 7)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect { mismatched.run(timeout: 20) }.to raise_error(Hivent::FailedError, /partition_count 7/)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 15
    expect(mismatched.state).to eq(:closed)
    owner.close
  end

  it "logs a rejected join once" do
    topic = unique("reconnect:join-log")
    service = unique("svc")
    config = server_config(port: server.port, log: log, max_reconnect_tries: 0, reconnect_backoff_time: 50)
    owner = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 4)
    wait_joined(owner)
    mismatched = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 7)
    expect { mismatched.run(timeout: 20) }.to raise_error(Hivent::FailedError)
    owner.close
    errors = log.string.lines.grep(/\AE,/)
    join_lines = errors.grep(/join of event:#{Regexp.escape(topic)} rejected/).grep_v(/giving up/)
    expect(join_lines.length).to eq(1), errors.join
    expect(errors.grep(/giving up/).length).to eq(1), errors.join
  end

  it "stops run_all with FailedError when one consumer fails" do
    topic = unique("reconnect:run_all")
    service = unique("svc")
    config = server_config(port: server.port, log: log, max_reconnect_tries: 2, reconnect_backoff_time: 50)
    owner = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 4)
    wait_joined(owner)
    healthy = RecordingConsumer.new(config: config, topic: topic, name: unique("svc"), partition_count: 1)
    mismatched = RecordingConsumer.new(config: config, topic: topic, name: service, partition_count: 7)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect { Hivent::Consumer.run_all(healthy, mismatched, timeout: 20) }
      .to raise_error(Hivent::FailedError, /partition_count 7/)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 15
    expect(healthy.state).to eq(:closed)
    expect(mismatched.state).to eq(:closed)
    owner.close
  end
end
