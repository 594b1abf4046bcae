# frozen_string_literal: true

module Hivent
  # Result of an asynchronous emit.  It completes when the client
  # dispatches the delivery report, which happens on whichever thread polls
  # the client (Client#poll, #flush, #close, a synchronous emit, or
  # #value here).
  class Delivery
    # The published event after success, the event as sent after a failure.
    attr_reader :event
    # The Hivent::Error of a failed emit, or nil.
    attr_reader :error
    # The msg_opaque id libhivent reports back in the delivery notice.
    attr_reader :id

    def initialize(client, id, callback)
      @client = client
      @id = id
      @callback = callback
      @done = false
      @event = nil
      @error = nil
    end

    def done?
      @done
    end

    def success?
      @done && @error.nil?
    end

    # Waits up to +timeout+ seconds (nil: until libhivent reports, which it
    # does within request_timeout) and returns the published Event.  Raises
    # the emit's Hivent::Error, or Hivent::TimedOutError when +timeout+
    # passes first.
    def value(timeout = nil)
      @client.wait_for(self, timeout)
      raise @error if @error

      @event
    end

    # Records the outcome; the client calls it while holding its lock.
    def complete(event, error)
      @event = event
      @error = error
      @done = true
    end

    # Returns whether the emit was given a block.
    def callback?
      !@callback.nil?
    end

    # Runs the block given to the emit, if any, with (event, error).
    def run_callback
      @callback&.call(@event, @error)
    end

    def inspect
      state = if !@done then "pending" elsif @error then "failed: #{@error.message}" else "delivered" end
      "#<Hivent::Delivery id=#{@id} #{state}>"
    end
  end
end
