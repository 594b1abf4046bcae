# Demo consumer in Ruby: counts events per partition.
#
#   ruby consumer.rb TOPIC SERVICE PARTITIONS EXPECTED OUT_FILE
#
# The server address and key come from HIVENT_* environment variables.
require "hivent"
require "json"
require "logger"

topic, service, partitions, expected, out_file = ARGV
partitions = Integer(partitions)
expected = Integer(expected)
IDLE_LIMIT = 60

Hivent.configure { |c| c.logger = Logger.new($stderr, level: Logger::WARN) }

per_partition = Hash.new(0)
received = 0

consumer_class = Class.new(Hivent::Consumer) do
  topic topic
  name service
  partition_count partitions

  define_method(:process) do |event|
    received += 1
    per_partition[event.partition] += 1
    nil
  end
end

consumer = consumer_class.new
consumer.start
last_event = Process.clock_gettime(Process::CLOCK_MONOTONIC)
while received < expected &&
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - last_event < IDLE_LIMIT
  before = received
  consumer.poll(1.0)
  last_event = Process.clock_gettime(Process::CLOCK_MONOTONIC) if received > before
end
consumer.close

summary = {
  language: "Ruby", service: service, topic: topic, received: received, rejected: 0,
  partitions: (0...partitions).to_h { |p| [p.to_s, per_partition[p]] }
}
File.write(out_file, JSON.generate(summary) + "\n")
