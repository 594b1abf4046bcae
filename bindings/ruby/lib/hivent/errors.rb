# frozen_string_literal: true

module Hivent
  # Base class of every error libhivent reports.  #code is the core's
  # error code: negative for local errors, positive for errors reported by
  # the server.  One subclass exists per code, named after the core's
  # symbolic name: HIVENT_ERR_TIMED_OUT is Hivent::TimedOutError.
  class Error < StandardError
    attr_reader :code

    def initialize(message = nil, code: self.class.code)
      @code = code
      super(message || (code && Native.hivent_err_str(code)) || "hivent error")
    end

    # Returns the core's symbolic name of #code, such as "HIVENT_ERR_TIMED_OUT".
    def code_name
      Native.hivent_err_name(code.to_i)
    end

    class << self
      # The core error code this class stands for; nil for the base classes.
      attr_reader :code

      # Returns the class for +code+, or Hivent::Error for unknown codes.
      def for_code(code)
        CLASSES.fetch(code, Error)
      end

      # Builds the exception for +code+ with +message+; rb_glue.c raises
      # what this returns.
      def build(code, message = nil)
        for_code(code).new(message, code: code)
      end
    end
  end

  # Configuration rejected: unknown key or invalid value.
  class ConfigurationError < Error; end

  # Errors the server reported in a reply.
  class ServerError < Error; end

  # Error classes by core error code.
  CLASSES = {}

  CONFIGURATION_CODES = [Native::HIVENT_ERR_UNKNOWN_KEY, Native::HIVENT_ERR_INVALID_VALUE].freeze
  private_constant :CONFIGURATION_CODES

  Native.hivent_err_count.times do |index|
    code = Native.hivent_err_code_at(index)
    next if code.zero?

    base_name = Native.hivent_err_name(code).sub(/\AHIVENT_ERR_/, "")
    class_name = base_name.split("_").map(&:capitalize).join + "Error"
    parent = if CONFIGURATION_CODES.include?(code) then ConfigurationError
             elsif code.positive? then ServerError
             else Error
             end
    klass = Class.new(parent)
    klass.instance_variable_set(:@code, code)
    const_set(class_name, klass)
    CLASSES[code] = klass
  end
  CLASSES.freeze

  # Raised in a consumer's place when #process returns [:error, reason]; it
  # is what the event_processing_failed hook receives as the exception.
  class ProcessingError < StandardError; end
end
