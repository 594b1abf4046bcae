# frozen_string_literal: true

# Shared setup for the Ruby binding's specs.  run-tests.sh installs the gem,
# starts hiventd and exports:
#   HIVENTD                the hiventd binary, for specs that run their own server
#   HIVENT_TEST_PORT       port of the shared hiventd on 127.0.0.1
#   HIVENT_TEST_ADMIN_KEY  its admin key

require "fileutils"
require "json"
require "logger"
require "net/http"
require "securerandom"
require "stringio"
require "tmpdir"

# HIVENT_* variables of the caller's shell would change every client's
# configuration; the specs set what they need themselves.
ENV.keys.grep(/\AHIVENT_/).each do |name|
  ENV.delete(name) unless %w[HIVENT_BUILD_DIR HIVENT_TEST_PORT HIVENT_TEST_ADMIN_KEY].include?(name)
end

require "hivent"

# A hiventd process on 127.0.0.1 with its own data directory.
class TestServer
  attr_reader :port, :data_dir, :admin_key

  def self.binary
    ENV.fetch("HIVENTD") { File.join(ENV.fetch("HIVENT_BUILD_DIR"), "server", "hiventd") }
  end

  def initialize(data_dir: Dir.mktmpdir("hivent-rb-server"), admin_key: "admin-#{SecureRandom.hex(4)}",
                 extra_args: [])
    @data_dir = data_dir
    @admin_key = admin_key
    @extra_args = extra_args
    @pid = nil
    @port = 0
  end

  # Starts hiventd on +port+ (0: a free one) and waits until it listens.
  def start(port = @port)
    ready = File.join(@data_dir, "ready-#{SecureRandom.hex(4)}")
    log = File.join(@data_dir, "hiventd.log")
    @pid = Process.spawn(self.class.binary, "--data-dir", @data_dir, "--listen", "127.0.0.1:#{port}",
                         "--ready-file", ready, "--admin-key", @admin_key, "--log-level", "warning",
                         *@extra_args, out: [log, "a"], err: [log, "a"])
    deadline = Time.now + 15
    until File.size?(ready)
      raise "hiventd exited early; see #{log}" if Process.waitpid(@pid, Process::WNOHANG)
      raise "hiventd did not write #{ready} within 15 s" if Time.now > deadline

      sleep 0.05
    end
    @port = Integer(File.read(ready).strip)
    self
  end

  # Stops hiventd with TERM, then KILL after 5 s.
  def stop
    return unless @pid

    Process.kill("TERM", @pid)
    deadline = Time.now + 5
    until Process.waitpid(@pid, Process::WNOHANG)
      if Time.now > deadline
        Process.kill("KILL", @pid)
        Process.waitpid(@pid)
        break
      end
      sleep 0.05
    end
    @pid = nil
  rescue Errno::ESRCH, Errno::ECHILD
    @pid = nil
  end

  def running?
    !@pid.nil?
  end

  # Stops the server and removes its data directory.
  def destroy
    stop
    FileUtils.rm_rf(@data_dir)
  end
end

# The hiventd that run-tests.sh started, or one started here when the
# specs run on their own (rspec with HIVENT_BUILD_DIR set).
module SharedServer
  def self.port
    @port ||= ENV["HIVENT_TEST_PORT"]&.then { |text| Integer(text) } || start_own.port
  end

  def self.admin_key
    port
    @admin_key || ENV.fetch("HIVENT_TEST_ADMIN_KEY")
  end

  def self.start_own
    server = TestServer.new.start
    @admin_key = server.admin_key
    at_exit { server.destroy }
    server
  end
end

module SpecHelpers
  # Returns a name no other example uses, for topics and services on the
  # shared server.
  def unique(prefix)
    "#{prefix}-#{SecureRandom.hex(4)}"
  end

  # Returns a Logger that writes to +io+ at debug level.
  def test_logger(io)
    Logger.new(io, level: Logger::DEBUG)
  end

  # Returns a configuration for the server on +port+ with short timeouts.
  def server_config(port: SharedServer.port, log: StringIO.new, **settings)
    config = Hivent::Configuration.new
    config.client_id = settings.delete(:client_id) || "ruby-spec"
    config.server = { host: "127.0.0.1", port: port }
    config.reconnect_backoff_time = settings.delete(:reconnect_backoff_time) || 100
    config.max_reconnect_tries = settings.delete(:max_reconnect_tries) || -1
    config.logger = test_logger(log)
    settings.each { |key, value| config.set(key.to_s, value) }
    config
  end

  def memory_config(log: StringIO.new)
    config = Hivent::Configuration.new
    config.client_id = "ruby-spec-memory"
    config.server = { host: "memory" }
    config.logger = test_logger(log)
    config
  end

  # Calls the block every 20 ms until it returns a true value; fails after
  # +timeout+ seconds.
  def wait_until(timeout = 10, message = "condition")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      result = yield
      return result if result
      raise "#{message} not met within #{timeout} s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
  end

  # Polls +consumer+ until it has joined its channel.
  def wait_joined(consumer, timeout = 10)
    consumer.start
    wait_until(timeout, "#{consumer.service} joined") do
      consumer.poll(0.05)
      consumer.state == :connected
    end
  end

  # Returns the dead-letter entries of +service+ from hiventd's admin API.
  def dead_letters(service, port: SharedServer.port, admin_key: SharedServer.admin_key)
    uri = URI("http://127.0.0.1:#{port}/admin/dlq?service=#{URI.encode_www_form_component(service)}&limit=1000")
    request = Net::HTTP::Get.new(uri)
    request["Authorization"] = "Bearer #{admin_key}"
    response = Net::HTTP.start(uri.host, uri.port, open_timeout: 5, read_timeout: 5) { |http| http.request(request) }
    raise "GET #{uri} returned #{response.code}: #{response.body}" unless response.code == "200"

    JSON.parse(response.body).fetch("events")
  end
end

# A consumer that records what it processes; +behaviour+ decides the
# outcome of each event.
class RecordingConsumer < Hivent::Consumer
  attr_reader :events

  def initialize(behaviour: nil, **options)
    super(**options)
    @behaviour = behaviour
    @events = []
  end

  def process(event)
    @events << event
    @behaviour&.call(event)
  end
end

RSpec.configure do |config|
  config.include SpecHelpers
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.order = :defined
  config.after { Hivent.reset! }
end
