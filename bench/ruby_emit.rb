# frozen_string_literal: true

# Asynchronous emit rate of the Ruby binding against a hiventd.
#
# Usage:
#   ruby bench/ruby_emit.rb [--port PORT] [--host HOST] [--count N]
#                           [--payload-bytes B] [--hiventd PATH]
#
# Without --port the script starts its own hiventd (--hiventd, default
# $HIVENT_BUILD_DIR/server/hiventd, else build/server/hiventd) on 127.0.0.1
# with a free port and a temporary data directory, and stops it at the end.
# It emits N events (default 20000) with Hivent::Client#emit_async and a
# delivery block.  Each payload Hash has a "data" String of B bytes
# (default 100), and the keys cycle over 64 values.  The script waits for
# every reply with flush and prints one line:
#   ruby_emit: N events in S s = R events/s (F failed)
# The rate counts from the first emit to the last delivery block.  The gem
# must be installed (gem install hivent-VERSION.gem) or on the load path.

require "fileutils"
require "optparse"
require "tmpdir"
require "hivent"

def parse_options(argv)
  options = { count: 20_000, payload_bytes: 100, host: "127.0.0.1" }
  OptionParser.new do |parser|
    parser.banner = "Usage: ruby bench/ruby_emit.rb [options]"
    parser.on("--port PORT", Integer, "port of a running hiventd") { |v| options[:port] = v }
    parser.on("--host HOST", "host of a running hiventd (default 127.0.0.1)") { |v| options[:host] = v }
    parser.on("--count N", Integer, "events to emit (default 20000)") { |v| options[:count] = v }
    parser.on("--payload-bytes B", Integer, "bytes of the payload's data string (default 100)") do |v|
      options[:payload_bytes] = v
    end
    parser.on("--hiventd PATH", "hiventd binary to start when --port is not given") { |v| options[:hiventd] = v }
  end.parse!(argv)
  options
end

def default_hiventd
  build = ENV.fetch("HIVENT_BUILD_DIR") { File.expand_path("../build", __dir__) }
  File.join(build, "server", "hiventd")
end

# Starts hiventd on a free loopback port; returns [port, pid, data dir].
def start_server(path)
  dir = Dir.mktmpdir("hivent-ruby-bench")
  ready = File.join(dir, "port")
  pid = Process.spawn(path, "--data-dir", dir, "--listen", "127.0.0.1:0", "--ready-file", ready,
                      "--log-level", "warning", out: File.join(dir, "hiventd.log"), err: [:child, :out])
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 15
  until File.size?(ready)
    abort "ruby_emit: hiventd exited; see #{dir}/hiventd.log" if Process.waitpid(pid, Process::WNOHANG)
    abort "ruby_emit: hiventd did not start within 15 s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    sleep 0.05
  end
  [Integer(File.read(ready).strip), pid, dir]
end

def stop_server(pid, dir)
  Process.kill("TERM", pid)
  Process.wait(pid)
  FileUtils.rm_rf(dir)
end

# Emits +count+ events and returns [seconds, failures].
def run_bench(client, count, payload_bytes)
  payload = { "data" => "x" * payload_bytes, "seq" => 0 }
  keys = Array.new(64) { |i| "key-#{i}" }
  failed = 0
  last_done = nil
  on_delivery = lambda do |_event, error|
    failed += 1 if error
    last_done = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  count.times do |i|
    payload["seq"] = i
    begin
      client.emit_async("bench:emit", payload, version: 1, key: keys[i % 64], &on_delivery)
    rescue Hivent::QueueFullError
      client.poll(0.01)
      retry
    end
  end
  left = client.flush(120)
  abort "ruby_emit: #{left} emits still outstanding after 120 s" unless left.zero?
  [(last_done || Process.clock_gettime(Process::CLOCK_MONOTONIC)) - started, failed]
end

options = parse_options(ARGV)
server = nil
port = options[:port]
unless port
  path = options[:hiventd] || default_hiventd
  abort "ruby_emit: #{path} not found; build hiventd or pass --port" unless File.executable?(path)
  port, *server = start_server(path)
end

begin
  config = Hivent::Configuration.new
  config.client_id = "ruby-bench"
  config.server = { host: options[:host], port: port }
  config.logger = Logger.new($stderr, level: Logger::WARN)
  client = Hivent::Client.new(config)
  client.emit("bench:warmup", {}, version: 1, timeout: 15)
  seconds, failed = run_bench(client, options[:count], options[:payload_bytes])
  client.close
  rate = options[:count] / seconds
  puts format("ruby_emit: %<n>d events in %<s>.3f s = %<r>.0f events/s (%<f>d failed)",
              n: options[:count], s: seconds, r: rate, f: failed)
ensure
  stop_server(*server) if server
end
