# frozen_string_literal: true

module Hivent
  # Version of the gem; it follows the version of libhivent it wraps.
  VERSION = "0.1.0"
end
