# frozen_string_literal: true

module Hivent
  # The in-process bus that clients and consumers use when server.host is
  # "memory".  Every event emitted on it is recorded, so application tests
  # can inspect what was emitted:
  #
  #   Hivent.configure { |c| c.server = { host: "memory" } }
  #   Hivent.emit("user:created", { id: 1 }, version: 1)
  #   Hivent::Memory.last.payload            # => {"id" => 1}
  #   Hivent::Memory.includes?("user:created", { id: 1 }, { version: 1 })
  #
  # The bus is shared by the whole process.
  module Memory
    module_function

    # Returns every event emitted since the last clear, oldest first.
    def all
      Array.new(count) { |index| at(index) }.compact
    end

    # Returns the event at +index+ (0 is the oldest), or nil.
    def at(index)
      return nil if index.negative?

      take(Native.hivent_memory_at(index))
    end

    # Returns the newest emitted event, or nil.
    def last
      take(Native.hivent_memory_last)
    end

    def count
      Native.hivent_memory_count
    end

    def empty?
      count.zero?
    end

    # Forgets every emitted event.
    def clear
      Native.hivent_memory_clear
      nil
    end

    # Returns true when an emitted event has name +name+ (nil: any), a
    # payload containing every field of +payload+ (nil: any) and meta
    # containing every field of +meta+ (nil: any), such as { version: 2 }.
    def includes?(name = nil, payload = nil, meta = nil)
      found = Native.hivent_memory_includes(name&.to_s, payload, meta)
      raise Error.build(found) if found.negative?

      found == 1
    end

    # The Elixir client's spelling of includes?.
    def include?(...)
      includes?(...)
    end

    # Converts a native event copy to an Event and frees the copy.
    def take(native)
      return nil unless native

      begin
        Event.from_native(native)
      ensure
        Native.hivent_event_destroy(native)
      end
    end
    private_class_method :take
  end
end
