# Consume COUNT events of TOPIC as SERVICE from Ruby and write them as JSON lines.
require "hivent"
require "json"
require "logger"

topic, service, count, out_path = ARGV
count = Integer(count)
Hivent.configure { |c| c.logger = Logger.new($stderr, level: Logger::WARN) }
received = []

collector = Class.new(Hivent::Consumer) do
  topic topic
  name service
  partition_count 2
  define_method(:process) do |event|
    received << { "name" => event.name, "payload" => event.payload, "meta" => event.meta }
    nil
  end
end

consumer = collector.new
consumer.start
deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 120
while received.size < count && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
  consumer.poll(0.5)
end
consumer.close
File.open(out_path, "w") { |f| received.each { |e| f.puts(JSON.generate(e)) } }
