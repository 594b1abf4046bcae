# frozen_string_literal: true

require "logger"

module Hivent
  # Turns the notices that every handle reports (log lines, connection
  # states, errors) into Logger messages.  Client and Consumer include it
  # and handle their own delivery and event notices.
  module Notices
    NOTICE_DELIVERY = Native::HIVENT_NOTICE_DELIVERY
    NOTICE_EVENT = Native::HIVENT_NOTICE_EVENT
    NOTICE_STATE = Native::HIVENT_NOTICE_STATE
    NOTICE_ERROR = Native::HIVENT_NOTICE_ERROR
    NOTICE_LOG = Native::HIVENT_NOTICE_LOG

    # Positions in the Array from Native.notice_fields.
    FIELD_TYPE = 0
    FIELD_ERR = 1
    FIELD_ERRSTR = 2
    FIELD_MSG_ID = 3
    FIELD_EVENT = 4
    FIELD_STATE = 5
    FIELD_ATTEMPT = 6
    FIELD_NEXT_ATTEMPT_MS = 7
    FIELD_LOG_LEVEL = 8
    FIELD_LOG_FACILITY = 9
    FIELD_LOG_MESSAGE = 10

    STATE_CONNECTED = Native::HIVENT_STATE_CONNECTED
    STATE_BACKOFF = Native::HIVENT_STATE_BACKOFF
    STATE_FAILED = Native::HIVENT_STATE_FAILED

    # Returns the Logger severity for a syslog level (3 error .. 7 debug).
    def self.severity(syslog_level)
      case syslog_level
      when 0..3 then Logger::ERROR
      when 4 then Logger::WARN
      when 5, 6 then Logger::INFO
      else Logger::DEBUG
      end
    end

    private

    # Handles a log, state or error notice; returns false for other types.
    def handle_common_notice(fields)
      case fields[FIELD_TYPE]
      when NOTICE_LOG then log_notice(fields)
      when NOTICE_STATE then state_notice(fields)
      when NOTICE_ERROR then error_notice(fields)
      else return false
      end
      true
    end

    def log_notice(fields)
      severity = Notices.severity(fields[FIELD_LOG_LEVEL])
      logger.add(severity, "[#{fields[FIELD_LOG_FACILITY]}] #{fields[FIELD_LOG_MESSAGE]}", "hivent")
    end

    def state_notice(fields)
      state = fields[FIELD_STATE]
      text = "#{notice_source}: connection #{Native.hivent_state_name(state)}"
      text += " (attempt #{fields[FIELD_ATTEMPT]})" if fields[FIELD_ATTEMPT].to_i.positive?
      if state == STATE_BACKOFF
        text += ", next attempt in #{fields[FIELD_NEXT_ATTEMPT_MS]} ms"
        text += " after #{fields[FIELD_ERRSTR]}" unless fields[FIELD_ERRSTR].to_s.empty?
      end
      logger.add(state_severity(state), text, "hivent")
      state_changed(state)
    end

    # Returns the Logger severity of a state notice.  libhivent logs every
    # retry at warning level itself (facility "conn"), so a backoff notice
    # is logged at debug level to keep one warning per retry.
    def state_severity(state)
      case state
      when STATE_FAILED then Logger::WARN
      when STATE_BACKOFF then Logger::DEBUG
      else Logger::INFO
      end
    end

    # Not logged here: libhivent logs the same sentence at error level
    # (facility "conn") before it posts an error notice.
    def error_notice(fields)
      error = Error.build(fields[FIELD_ERR], fields[FIELD_ERRSTR])
      @last_error = error
      @last_cause = error unless error.code == Native::HIVENT_ERR_FAILED
    end

    # Called after every state notice; Consumer uses it for hooks.
    def state_changed(_state); end

    # Logs +exception+ raised by application code with its backtrace.
    def log_exception(context, exception)
      trace = Array(exception.backtrace).join("\n  ")
      logger.error("hivent") { "#{context}: #{exception.class}: #{exception.message}\n  #{trace}" }
    end

    def monotonic_now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # Converts seconds (nil: no limit) to the milliseconds libhivent takes.
    def to_ms(seconds)
      return -1 if seconds.nil?

      ms = (seconds * 1000).ceil
      ms.negative? ? 0 : [ms, 2**31 - 1].min
    end
  end
end
