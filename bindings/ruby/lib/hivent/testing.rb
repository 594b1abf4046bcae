# frozen_string_literal: true

require "hivent"

module Hivent
  # Matching logic shared by the RSpec matcher and the minitest assertions.
  # Both need the memory transport (server.host = "memory").
  module Testing
    module_function

    # Runs the block and returns the events emitted on the memory bus
    # meanwhile, after flushing the default client.
    def emitted_during
      before = Memory.count
      yield
      Hivent.flush(5)
      after = Memory.all
      # A Memory.clear inside the block restarts the record.
      after.length >= before ? after.drop(before) : after
    end

    # Returns the events of +events+ that have +name+, +version+ (nil: any)
    # and a payload containing every field of +payload+ (nil: any).
    def matching(events, name, version: nil, payload: nil)
      expected = payload && Native.payload_normalize(payload)
      events.select do |event|
        event.name == name.to_s &&
          (version.nil? || event.version == version) &&
          (expected.nil? || expected.all? { |key, value| event.payload.key?(key) && event.payload[key] == value })
      end
    end

    # Describes the expectation for failure messages.
    def describe(name, version, payload)
      text = "an event #{name.to_s.inspect}"
      text += " version #{version}" if version
      text += " with payload including #{Native.payload_normalize(payload).inspect}" if payload
      text
    end

    # Lists +events+ for failure messages.
    def describe_events(events)
      return "no events were emitted (is server.host \"memory\"?)" if events.empty?

      lines = events.map { |event| "  #{event.name} v#{event.version} #{event.payload.inspect}" }
      "emitted:\n#{lines.join("\n")}"
    end
  end
end
