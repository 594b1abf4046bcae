# frozen_string_literal: true

require "spec_helper"
require "open3"
require "rbconfig"
require "hivent/cli"

RSpec.describe "hivent-rb command" do
  let(:env) { { "HIVENT_SERVER_HOST" => "127.0.0.1", "HIVENT_SERVER_PORT" => SharedServer.port.to_s } }
  let(:topic) { unique("cli") }
  let(:service) { unique("cli-svc") }

  def executable
    Gem.bin_path("hivent", "hivent-rb")
  rescue Gem::Exception
    File.expand_path("../exe/hivent-rb", __dir__)
  end

  def hivent_rb(*args)
    Open3.capture3(env, RbConfig.ruby, executable, *args)
  end

  # Joins once so hiventd stores the topic's events for +service+.
  def subscribe(partitions: 1)
    consumer = RecordingConsumer.new(config: server_config, topic: topic, name: service, partition_count: partitions)
    wait_joined(consumer)
    consumer.close
  end

  it "emits and consumes events as JSON lines" do
    subscribe
    emitted = Array.new(2) do |i|
      out, err, status = hivent_rb("emit", topic, JSON.generate("i" => i, "big" => 2**63), "--version", "2", "--key", "k")
      expect(status.exitstatus).to eq(0), err
      JSON.parse(out)
    end
    out, err, status = hivent_rb("consume", topic, service, "--count", "2", "--timeout", "20")
    expect(status.exitstatus).to eq(0), err
    consumed = out.lines.map { |line| JSON.parse(line) }
    expect(consumed.map { |record| record.slice("name", "payload", "meta") }).to eq(emitted)
    expect(consumed.map { |record| record["queue"] }).to eq(["#{service}:0"] * 2)
    expect(emitted.first["payload"]).to eq({ "i" => 0, "big" => 2**63 })
  end

  it "runs consumer classes with worker" do
    subscribe(partitions: 2)
    Dir.mktmpdir("hivent-rb-worker") do |dir|
      output = File.join(dir, "seen.txt")
      File.write(File.join(dir, "consumers.rb"), <<~RUBY)
        class CliWorkerConsumer < Hivent::Consumer
          topic #{topic.inspect}
          name #{service.inspect}
          partition_count 2
          def process(event)
            File.open(#{output.inspect}, "a") { |f| f.puts(event.payload["n"]) }
          end
        end
      RUBY
      client = Hivent::Client.new(server_config)
      3.times { |n| client.emit(topic, { "n" => n }, version: 1, key: "key-#{n}") }
      client.close
      _out, err, status = hivent_rb("--log-level", "info", "worker", "-r", File.join(dir, "consumers.rb"),
                                    "CliWorkerConsumer", "--timeout", "4")
      expect(status.exitstatus).to eq(0), err
      expect(err).to include("worker running CliWorkerConsumer")
      expect(File.read(output).split.map(&:to_i).sort).to eq([0, 1, 2])
    end
  end

  it "reports usage and argument errors with status 2" do
    _out, err, status = hivent_rb("nonsense")
    expect(status.exitstatus).to eq(2)
    expect(err).to include("Usage: hivent-rb")
    _out, err, status = hivent_rb("emit", "x:y", "[1]")
    expect(status.exitstatus).to eq(2)
    expect(err).to include("JSON object")
  end

  it "prints binary strings as base64" do
    event = Hivent::Event.new("b:c", { "blob" => "\x00\xff".b }, { "version" => 1 })
    expect(JSON.parse(Hivent::CLI.event_json(event))["payload"]).to eq({ "blob" => "AP8=" })
  end
end
