# frozen_string_literal: true

module Hivent
  # One event: a name, a payload Hash with String keys, and meta (a Hash
  # with String keys "version", "cid", "key", "producer", "uuid" and
  # "created_at").  Consumed events also carry their partition queue
  # ("SERVICE:PARTITION") and partition number.
  class Event
    attr_reader :name, :meta, :queue, :partition

    # Builds an Event from the Array that Native.event_fields returns.
    def self.from_fields(fields)
      name, payload, version, cid, key, producer, uuid, created_at, queue, partition = fields
      meta = { "version" => version, "cid" => cid, "key" => key, "producer" => producer,
               "uuid" => uuid, "created_at" => created_at }
      new(name, payload, meta, queue: queue, partition: partition.negative? ? nil : partition)
    end

    # Builds an Event from fields whose payload may still be MessagePack
    # bytes (Native.notice_fields_packed).  The payload is decoded when
    # #payload is first called, so a delivery report whose event nobody
    # reads costs no Hash; a payload that cannot be decoded raises
    # Hivent::Error there.
    def self.from_packed_fields(fields)
      event = allocate
      event.send(:load_packed_fields, fields)
      event
    end

    # Builds an Event from a native event handle; the handle stays with the caller.
    def self.from_native(handle)
      from_fields(Native.event_fields(handle))
    end

    def initialize(name, payload, meta, queue: nil, partition: nil)
      @name = name
      @payload = payload
      @meta = meta
      @queue = queue
      @partition = partition
      @packed = nil
    end

    # The payload Hash, with String keys.
    def payload
      packed = @packed
      if packed
        # Set before @packed is cleared: another thread sees either the
        # bytes, which it decodes again, or the Hash.
        @payload = Native.payload_unpack(packed)
        @packed = nil
      end
      @payload
    end

    def version = meta["version"]
    def cid = meta["cid"]
    def key = meta["key"]
    def producer = meta["producer"]
    def uuid = meta["uuid"]
    def created_at = meta["created_at"]

    # Returns the dead-letter queue of a consumed event, or nil.
    def dead_letter_queue
      queue && "#{queue}:dead_letter"
    end

    # Returns {"name" => ..., "payload" => ..., "meta" => ...}.
    def to_h
      { "name" => name, "payload" => payload, "meta" => meta }
    end

    def ==(other)
      other.is_a?(Event) && to_h == other.to_h && queue == other.queue && partition == other.partition
    end
    alias eql? ==

    def hash
      [to_h, queue, partition].hash
    end

    private

    # Sets every field from +fields+ without keyword arguments, which cost
    # a Hash per event on a path that runs once per delivery report.
    def load_packed_fields(fields)
      @name, payload, version, cid, key, producer, uuid, created_at, @queue, partition = fields
      @meta = { "version" => version, "cid" => cid, "key" => key, "producer" => producer,
                "uuid" => uuid, "created_at" => created_at }
      @partition = partition.negative? ? nil : partition
      if payload.is_a?(String)
        @payload = nil
        @packed = payload
      else
        @payload = payload
        @packed = nil
      end
    end

    public

    def inspect
      "#<Hivent::Event #{name} v#{version} uuid=#{uuid.inspect} payload=#{payload.inspect}>"
    end
  end
end
