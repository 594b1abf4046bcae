# frozen_string_literal: true

require "hivent/testing"

module Hivent
  # RSpec matcher for code that emits over the memory transport:
  #
  #   require "hivent/rspec"
  #
  #   expect { signup(user) }.to emit("user:created", version: 2).with(id: user.id)
  #   expect { noop }.not_to emit("user:created")
  module RSpecMatchers
    # Block matcher built by #emit.
    class EmitMatcher
      def initialize(name, version)
        @name = name
        @version = version
        @payload = nil
        @events = []
      end

      # Requires the payload to contain every field of +payload+.
      def with(payload)
        @payload = payload
        self
      end

      def supports_block_expectations?
        true
      end

      def matches?(block)
        @events = Testing.emitted_during(&block)
        !Testing.matching(@events, @name, version: @version, payload: @payload).empty?
      end

      def does_not_match?(block)
        !matches?(block)
      end

      def failure_message
        "expected the block to emit #{description_text}, but #{Testing.describe_events(@events)}"
      end

      def failure_message_when_negated
        "expected the block not to emit #{description_text}, but it did"
      end

      def description
        "emit #{description_text}"
      end

      private

      def description_text
        Testing.describe(@name, @version, @payload)
      end
    end

    # Matches when the block emits an event +name+, optionally of +version+.
    def emit(name, version: nil)
      EmitMatcher.new(name, version)
    end
  end
end

if defined?(RSpec) && RSpec.respond_to?(:configure)
  RSpec.configure { |config| config.include Hivent::RSpecMatchers }
end
