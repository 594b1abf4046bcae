# frozen_string_literal: true

require "spec_helper"

# Checks the installed gem that run-tests.sh built from hivent.gemspec.
RSpec.describe "installed gem" do
  let(:gem_spec) { Gem.loaded_specs.fetch("hivent") }

  it "declares the MIT license" do
    expect(gem_spec.licenses).to eq(["MIT"])
  end

  it "ships the LICENSE file" do
    # The installed specification lists no files, so look in the gem's directory.
    license = File.join(gem_spec.full_gem_path, "LICENSE")
    expect(File.exist?(license)).to be(true)
    expect(File.read(license)).to start_with("MIT License")
  end
end
