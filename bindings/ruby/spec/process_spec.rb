# frozen_string_literal: true

require "spec_helper"
require "rbconfig"
require "timeout"

RSpec.describe "processes and threads" do
  let(:log) { StringIO.new }

  # Runs the block in a forked child and returns what it wrote to the pipe.
  def in_child
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      begin
        writer.write(JSON.generate(yield))
      rescue Exception => e # rubocop:disable Lint/RescueException
        writer.write(JSON.generate("crash" => "#{e.class}: #{e.message}"))
      ensure
        writer.close
        exit!(0)
      end
    end
    writer.close
    output = Timeout.timeout(30) { reader.read }
    Process.wait(pid)
    JSON.parse(output)
  ensure
    reader&.close
  end

  describe "fork" do
    it "fails the inherited client clearly and serves a new one" do
      client = Hivent::Client.new(server_config(log: log))
      client.emit("fork:parent", {}, version: 1)
      result = in_child do
        inherited = begin
          client.emit_async("fork:inherited", {}, version: 1)
          "no error"
        rescue Hivent::Error => e
          [e.class.name, e.code_name]
        end
        fresh = Hivent::Client.new(server_config(log: StringIO.new))
        event = fresh.emit("fork:child", { "pid" => Process.pid }, version: 1, timeout: 10)
        fresh.close
        { "inherited" => inherited, "child_event" => event.payload, "pid" => Process.pid }
      end
      expect(result["inherited"]).to eq(%w[Hivent::ForkedError HIVENT_ERR_FORKED])
      expect(result["child_event"]).to eq({ "pid" => result["pid"] })
      expect(client.emit("fork:parent-after", {}, version: 1).name).to eq("fork:parent-after")
      client.close
    end

    it "recreates the default client in the child" do
      Hivent.configure do |c|
        c.server = { host: "127.0.0.1", port: SharedServer.port }
        c.logger = test_logger(log)
      end
      Hivent.emit("fork:module-parent", {}, version: 1)
      result = in_child { { "name" => Hivent.emit("fork:module-child", {}, version: 1).name } }
      expect(result).to eq({ "name" => "fork:module-child" })
      expect(Hivent.emit("fork:module-parent-after", {}, version: 1).name).to eq("fork:module-parent-after")
    end
  end

  describe "waiting without the GVL" do
    it "lets other threads run while a consumer waits" do
      consumer = RecordingConsumer.new(config: server_config(log: log), topic: unique("gvl"),
                                       name: unique("svc"), partition_count: 1)
      counter = 0
      runner = Thread.new { consumer.run(timeout: 1.0, handle_signals: false) }
      ticker = Thread.new do
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 0.8
        counter += 1 while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      end
      ticker.join
      runner.join
      expect(counter).to be > 10_000
    end

    it "stops a run within the wait slice when #stop is called from another thread" do
      consumer = RecordingConsumer.new(config: server_config(log: log), topic: unique("stop"),
                                       name: unique("svc"), partition_count: 1)
      runner = Thread.new { consumer.run(timeout: 30, handle_signals: false) }
      sleep 0.5
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      consumer.stop
      expect(runner.join(5)).not_to be_nil
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 2
      expect(consumer.state).to eq(:closed)
    end

    it "delivers Thread#raise to a waiting consumer" do
      consumer = RecordingConsumer.new(config: server_config(log: log), topic: unique("raise"),
                                       name: unique("svc"), partition_count: 1)
      runner = Thread.new do
        consumer.run(timeout: 30, handle_signals: false)
        :finished
      rescue ArgumentError => e
        e.message
      end
      sleep 0.5
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      runner.raise(ArgumentError, "raised from outside")
      expect(runner.value).to eq("raised from outside")
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 1
      expect(consumer.state).to eq(:closed)
    end
  end

  describe "signals" do
    it "stops a running consumer on INT and on TERM" do
      lib_dirs = $LOAD_PATH.grep(%r{hivent}).map { |dir| "-I#{dir}" }
      script = <<~RUBY
        require "hivent"
        class SignalConsumer < Hivent::Consumer
          topic "signal:test"
          name "signal-#{SecureRandom.hex(4)}"
          partition_count 1
          def process(_event); end
        end
        Hivent.configure do |c|
          c.server = { host: "127.0.0.1", port: #{SharedServer.port} }
          c.logger = Logger.new(nil)
        end
        consumer = SignalConsumer.new
        $stdout.puts "running"
        $stdout.flush
        consumer.run
        $stdout.puts "stopped \#{consumer.state}"
      RUBY
      %w[INT TERM].each do |signal|
        IO.popen([RbConfig.ruby, *lib_dirs, "-e", script], err: File::NULL) do |io|
          expect(Timeout.timeout(15) { io.gets }).to eq("running\n")
          sleep 0.5
          started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
          Process.kill(signal, io.pid)
          expect(Timeout.timeout(10) { io.gets }).to eq("stopped closed\n")
          expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 5
        end
        expect($?.success?).to be(true)
      end
    end
  end
end
