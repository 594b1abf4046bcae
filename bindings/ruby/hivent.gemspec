# frozen_string_literal: true

require_relative "lib/hivent/version"
require_relative "gem_stage"

# Inside the repository, gem build first stages the SWIG wrapper, the
# public header and the core sources into ext/hivent, and the repository's
# LICENSE next to this file (see gem_stage.rb), so installing the gem needs
# neither SWIG nor the repository.
HiventGemStage.run(__dir__) if HiventGemStage.repository?(__dir__)

Gem::Specification.new do |spec|
  spec.name = "hivent"
  spec.version = Hivent::VERSION
  spec.summary = "Ruby client for the Hivent event bus, built on libhivent"
  spec.description = <<~TEXT
    Emits and consumes Hivent events through libhivent, the C client of the
    Hivent event bus: configuration, synchronous and asynchronous emits,
    consumers with dead-letter handling, an in-memory transport and RSpec and
    minitest helpers for application tests.
  TEXT
  spec.authors = ["Hivent-C contributors"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.0"

  spec.files = Dir.chdir(__dir__) do
    Dir["lib/**/*.rb", "exe/*", "hivent.i", "README.md", "LICENSE",
        "ext/hivent/*.{c,h,rb}", "ext/hivent/include/hivent/*.h",
        "ext/hivent/core/*.{c,h}"]
  end
  spec.extensions = ["ext/hivent/extconf.rb"]
  spec.bindir = "exe"
  spec.executables = ["hivent-rb"]
  spec.require_paths = ["lib"]
end
