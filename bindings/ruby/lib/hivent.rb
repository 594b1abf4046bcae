# frozen_string_literal: true

require "hivent/version"
require "hivent/native"
require "hivent/errors"
require "hivent/life_cycle_event_handler"
require "hivent/configuration"
require "hivent/notices"
require "hivent/event"
require "hivent/delivery"
require "hivent/client"
require "hivent/consumer"
require "hivent/memory"

# Ruby client for the Hivent event bus, built on libhivent.
#
#   Hivent.configure do |c|
#     c.client_id = "billing"
#     c.server = { host: "127.0.0.1", port: 4000, secure: false, api_key: ENV["KEY"] }
#   end
#   event = Hivent.emit("invoice:paid", { id: 7 }, version: 1)
#   Hivent.emit("invoice:sent", { id: 7 }, version: 1) { |event, error| ... }
#   Hivent.flush(5)
#
# The module-level methods use one default Client, created on first use
# from Hivent.config.  In a child made by Process.fork the default client
# is created again; an explicit Hivent::Client inherited by the child
# raises Hivent::ForkedError instead.
module Hivent
  unless Native.hivent_version_check(Native::HIVENT_VERSION).zero?
    raise Error.build(Native::HIVENT_ERR_VERSION_MISMATCH,
                      "libhivent #{Native.hivent_version_str} cannot serve a binding built " \
                      "against #{Native::HIVENT_VERSION_STR}")
  end

  @lock = Mutex.new
  @config = nil
  @client = nil

  class << self
    # Returns the current configuration.
    def config
      @lock.synchronize { @config ||= Configuration.new }
    end

    # Yields a copy of the configuration, checks every value with
    # libhivent and, when all are valid, makes it current and closes the
    # default client so the next emit uses the new settings.  Raises
    # Hivent::ConfigurationError (or ArgumentError, TypeError) naming the
    # value at fault, leaving the previous configuration in place.
    def configure
      updated = config.dup
      yield updated
      updated.validate!
      old_client = @lock.synchronize do
        @config = updated
        swap_client(nil)
      end
      old_client&.close
      updated
    end

    def logger
      config.logger
    end

    # Returns the default client, creating it on first use.  A default
    # client in the failed state, which gave up reconnecting after
    # max_reconnect_tries, is replaced by a new one, with a warning.
    def client
      failed = nil
      current = @lock.synchronize do
        existing = @client
        if existing && !existing.closed? && @client_pid == Process.pid
          next existing unless existing.state == :failed

          failed = existing
        end
        @config ||= Configuration.new
        swap_client(Client.new(@config))
        @client
      end
      discard_failed_client(failed) if failed
      current
    end

    # Emits with the default client.  Without a block it waits and returns
    # the published Hivent::Event.  With a block it returns a
    # Hivent::Delivery at once, and the block runs with (event, error) when
    # the delivery report is dispatched.  See Client#emit.
    def emit(name, payload = {}, version:, cid: nil, key: nil, &block)
      if block
        client.emit_async(name, payload, version: version, cid: cid, key: key, &block)
      else
        client.emit(name, payload, version: version, cid: cid, key: key)
      end
    end

    # Waits up to +timeout+ seconds for the default client's outstanding
    # emits; returns how many are still outstanding.
    def flush(timeout = 5)
      current = @client
      return 0 unless current && !current.closed? && @client_pid == Process.pid

      current.flush(timeout)
    end

    # Flushes and closes the default client.
    def close(timeout = nil)
      current = @lock.synchronize { swap_client(nil) }
      current&.close(timeout)
      nil
    end

    # Closes the default client and restores the default configuration.
    def reset!
      close
      @lock.synchronize { @config = nil }
      nil
    end

    private

    # Logs the replacement of the failed default client +failed+ and closes
    # it without waiting, which fails its outstanding emits.  Runs outside
    # @lock because delivery blocks run by close may call Hivent.emit.
    def discard_failed_client(failed)
      reason = failed.last_error&.message || "reconnect attempts used up"
      logger.warn("hivent") do
        "default client failed (#{reason}); replaced it with a new client for the module-level API"
      end
      failed.close(0)
    end

    # Replaces the default client; returns the previous one when it belongs
    # to this process, for the caller to close outside the lock.
    def swap_client(replacement)
      previous = @client
      previous_pid = @client_pid
      @client = replacement
      @client_pid = Process.pid
      previous if previous && previous_pid == Process.pid
    end
  end
end

at_exit { Hivent.close }
