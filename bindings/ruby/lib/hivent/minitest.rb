# frozen_string_literal: true

require "minitest"
require "hivent/testing"

module Hivent
  # Minitest assertions for code that emits over the memory transport:
  #
  #   require "hivent/minitest"
  #
  #   assert_emits("user:created", version: 2, payload: { id: 1 }) { signup }
  #   refute_emits("user:deleted") { signup }
  module MinitestAssertions
    # Fails unless the block emits an event +name+ with +version+ (nil:
    # any) and a payload containing every field of +payload+ (nil: any).
    # Returns the matching events.
    def assert_emits(name, version: nil, payload: nil, &block)
      events = Testing.emitted_during(&block)
      found = Testing.matching(events, name, version: version, payload: payload)
      assert !found.empty?,
             "expected the block to emit #{Testing.describe(name, version, payload)}, " \
             "but #{Testing.describe_events(events)}"
      found
    end

    # Fails when the block emits a matching event.
    def refute_emits(name, version: nil, payload: nil, &block)
      events = Testing.emitted_during(&block)
      found = Testing.matching(events, name, version: version, payload: payload)
      assert found.empty?, "expected the block not to emit #{Testing.describe(name, version, payload)}, but it did"
      nil
    end
  end
end

Minitest::Test.include(Hivent::MinitestAssertions) if defined?(Minitest::Test)
