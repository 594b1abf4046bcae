# frozen_string_literal: true

require "fileutils"

# Copies what the gem needs from the rest of the repository before gem
# build packs it: into ext/hivent the SWIG wrapper generated from hivent.i,
# the public header, and the core sources for installs that find no built
# or installed libhivent, and the repository's LICENSE into the gem's
# root.  The copies are build products and are ignored by git.
module HiventGemStage
  module_function

  def repository?(ruby_dir)
    File.exist?(File.join(ruby_dir, "../../core/include/hivent/hivent.h"))
  end

  def run(ruby_dir)
    repo = File.expand_path("../..", ruby_dir)
    ext = File.join(ruby_dir, "ext/hivent")
    FileUtils.cp(File.join(repo, "LICENSE"), ruby_dir)
    copy_header(repo, ext)
    copy_core(repo, ext)
    generate_wrapper(ruby_dir, ext)
  end

  def copy_header(repo, ext)
    dest = File.join(ext, "include/hivent")
    FileUtils.mkdir_p(dest)
    FileUtils.cp(File.join(repo, "core/include/hivent/hivent.h"), dest)
  end

  def copy_core(repo, ext)
    dest = File.join(ext, "core")
    FileUtils.rm_rf(dest)
    FileUtils.mkdir_p(dest)
    FileUtils.cp(Dir[File.join(repo, "core/src/*.{c,h}")], dest)
  end

  def generate_wrapper(ruby_dir, ext)
    wrapper = File.join(ext, "hivent_wrap.c")
    ok = system("swig", "-ruby", "-I#{File.join(ext, 'include')}", "-I#{ext}",
                "-o", wrapper, File.join(ruby_dir, "hivent.i"))
    raise "swig failed to generate #{wrapper}; SWIG 4 is needed (Debian: apt-get install swig)" unless ok
  end
end
