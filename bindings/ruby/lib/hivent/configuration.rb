# frozen_string_literal: true

require "logger"

module Hivent
  # Settings for clients and consumers.  The named attributes mirror the
  # reference client; #set reaches every other libhivent key, such as
  # "heartbeat_interval" or "queue.max_events".  HIVENT_* environment
  # variables (HIVENT_SERVER_HOST, HIVENT_MAX_RECONNECT_TRIES, ...) apply
  # first, and values set here override them.
  class Configuration
    SERVER_KEYS = %i[host port secure api_key].freeze
    # Hash keys that .from sets through the attribute writers; other keys
    # are libhivent keys for #set.
    ATTRIBUTE_KEYS = %w[client_id max_reconnect_tries reconnect_backoff_time
                        life_cycle_event_handler use_env logger server].freeze

    # Returns +value+ as a Configuration: a Configuration as it is, or a
    # Hash of options applied to a copy of +base+ (a fresh configuration
    # when nil).  Hash keys, as Symbols or Strings, are the settings of the
    # configure block: client_id, server (a Hash with host, port, secure and
    # api_key), max_reconnect_tries, reconnect_backoff_time,
    # life_cycle_event_handler, use_env and logger.  Any other key is a
    # libhivent key given to #set, such as request_timeout.  Raises
    # ArgumentError naming the class of any other +value+.
    def self.from(value, base: nil)
      case value
      when Configuration
        value
      when Hash
        (base ? base.dup : new).apply(value)
      else
        raise ArgumentError,
              "expected a Hivent::Configuration or a Hash of options, got #{value.class}"
      end
    end

    # Ruby Logger levels mapped to libhivent log_level names.
    LOG_LEVELS = {
      Logger::DEBUG => "debug", Logger::INFO => "info", Logger::WARN => "warning",
      Logger::ERROR => "error", Logger::FATAL => "error", Logger::UNKNOWN => "error"
    }.freeze

    # meta.producer of emitted events; libhivent's default is the host name.
    attr_accessor :client_id
    # Consecutive failed connection attempts before the failed state; -1 retries forever.
    attr_accessor :max_reconnect_tries
    # Base of the exponential reconnect delay, in milliseconds.
    attr_accessor :reconnect_backoff_time
    # Object with the Hivent::LifeCycleEventHandler methods.
    attr_accessor :life_cycle_event_handler
    # Whether HIVENT_* environment variables apply (default true).
    attr_accessor :use_env
    # Ruby Logger that receives libhivent's log lines.
    attr_writer :logger
    # Values given with #set, by libhivent key.
    attr_reader :options

    def initialize
      @server = {}
      @options = {}
      @use_env = true
      @life_cycle_event_handler = LifeCycleEventHandler.new
    end

    def initialize_copy(source)
      super
      @server = source.server.dup
      @options = source.options.dup
    end

    def logger
      @logger ||= Logger.new($stderr, progname: "hivent", level: Logger::INFO)
    end

    # Returns the server settings given so far (host, port, secure, api_key).
    def server
      @server
    end

    # Merges +settings+ (a Hash with :host, :port, :secure and :api_key)
    # into the server settings.  server.host "memory" selects the in-process
    # transport.
    def server=(settings)
      raise TypeError, "server must be a Hash, got #{settings.class}" unless settings.is_a?(Hash)

      settings.each do |key, value|
        name = key.to_sym
        unless SERVER_KEYS.include?(name)
          raise ArgumentError, "unknown server setting #{key.inspect} (expected one of #{SERVER_KEYS.join(', ')})"
        end

        @server[name] = value
      end
    end

    # Applies a Hash of options with the keys that .from accepts; returns self.
    def apply(options)
      options.each do |key, value|
        name = key.to_s
        if ATTRIBUTE_KEYS.include?(name)
          public_send("#{name}=", value)
        else
          set(name, value)
        end
      end
      self
    end

    # Sets libhivent option +key+ (a String such as "request_timeout") to
    # +value+; nil removes an earlier #set.
    def set(key, value)
      if value.nil?
        @options.delete(key.to_s)
      else
        @options[key.to_s] = value
      end
      self
    end

    # Builds a native configuration, checking every value with libhivent.
    # Returns a conf handle the caller owns (destroy it with
    # Native.hivent_conf_destroy unless a constructor took it).  Raises a
    # Hivent::ConfigurationError naming the key at fault.
    def to_native(extra = {})
      conf = Native.hivent_conf_new
      raise Hivent::NoMemoryError, "could not allocate a configuration" unless conf

      begin
        Native.hivent_conf_load_env(conf) if use_env
        native_values.merge(extra).each { |key, value| Native.hivent_conf_set(conf, key, value) }
      rescue Exception # rubocop:disable Lint/RescueException
        Native.hivent_conf_destroy(conf)
        raise
      end
      conf
    end

    # Checks every value with libhivent; raises Hivent::ConfigurationError.
    def validate!
      Native.hivent_conf_destroy(to_native)
      self
    end

    # Returns the libhivent log_level that matches the logger's level.
    def log_level
      LOG_LEVELS.fetch(logger.level, "info")
    end

    private

    # Returns every value to set, by libhivent key, as Strings.
    def native_values
      values = { "log.queue" => "true", "log_level" => log_level }
      values["client_id"] = client_id
      values["max_reconnect_tries"] = max_reconnect_tries
      values["reconnect_backoff_time"] = reconnect_backoff_time
      @server.each { |key, value| values["server.#{key}"] = value }
      values.merge!(@options)
      values.each_with_object({}) do |(key, value), out|
        out[key] = native_string(key, value) unless value.nil?
      end
    end

    def native_string(key, value)
      case value
      when String then value
      when Symbol, Integer, true, false then value.to_s
      when Float
        raise ArgumentError, "#{key}: #{value} is not a whole number" unless value.finite? && value == value.floor

        value.to_i.to_s
      else
        raise TypeError, "#{key}: expected a String, Integer or boolean, got #{value.class}"
      end
    end
  end
end
