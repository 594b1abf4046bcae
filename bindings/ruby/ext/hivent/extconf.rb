# frozen_string_literal: true

# Builds hivent/native, the SWIG wrapper of libhivent.
#
# The wrapper source hivent_wrap.c ships in the gem (gem build generates
# it).  Without it, as in a build straight from the repository, SWIG 4
# generates it from ../../hivent.i.
#
# libhivent is taken from the first of:
#   1. HIVENT_BUILD_DIR: the static BUILD/core/libhivent.a of a CMake build
#      of the repository.  When set, this variable names the build the
#      caller wants, so it wins over an installed library.
#   2. pkg-config `hivent`: an installed libhivent (shared).
#   3. The core sources: ext/hivent/core (copied by gem build) or the
#      repository's core/src, compiled into the extension.
# Options 1 and 3 link libhivent's own dependencies (libwebsockets,
# msgpack-c, jansson, zlib, OpenSSL) through pkg-config.  The payload
# codec needs msgpack-c in every case.

require "mkmf"

EXT_DIR = __dir__
RUBY_DIR = File.expand_path("../..", EXT_DIR)
REPO_DIR = File.expand_path("../..", RUBY_DIR)
CORE_DEPS = %w[libwebsockets jansson zlib openssl].freeze

def first_dir(*candidates)
  candidates.find { |dir| File.directory?(dir) }
end

def require_pkg(name)
  return if pkg_config(name)

  abort "hivent: pkg-config module #{name} not found; install its -dev package " \
        "(Debian: libmsgpack-dev, libwebsockets-dev, libjansson-dev, zlib1g-dev, libssl-dev)"
end

def generate_wrapper(core_include)
  wrapper = File.join(EXT_DIR, "hivent_wrap.c")
  return if File.exist?(wrapper)

  interface = File.join(RUBY_DIR, "hivent.i")
  unless File.exist?(interface) && File.exist?(File.join(REPO_DIR, "bindings/swig/hivent_common.i"))
    abort "hivent: #{wrapper} is missing and the SWIG interface files are not available"
  end
  swig = find_executable("swig") || find_executable("swig4.0")
  abort "hivent: SWIG 4 is needed to generate #{wrapper} (Debian: apt-get install swig)" unless swig
  ok = system(swig, "-ruby", "-I#{core_include}", "-I#{EXT_DIR}", "-o", wrapper, interface)
  abort "hivent: #{swig} failed on #{interface}" unless ok
end

def link_static(build_dir)
  archive = File.join(build_dir, "core", "libhivent.a")
  abort "hivent: HIVENT_BUILD_DIR=#{build_dir} has no core/libhivent.a; run cmake --build first" \
    unless File.exist?(archive)
  CORE_DEPS.each { |dep| require_pkg(dep) }
  $LOCAL_LIBS << " #{archive}"
  "static library #{archive}"
end

def link_installed
  return nil unless pkg_config("hivent")
  return nil unless have_library("hivent", "hivent_version_check", "hivent/hivent.h")

  # A libhivent outside the linker's default directories is found at run
  # time through an rpath.
  libdir = pkg_config("hivent", "variable=libdir").to_s.strip
  $LDFLAGS << " -Wl,-rpath,#{libdir}" unless libdir.empty? || %w[/usr/lib /lib].include?(libdir)
  "installed library (pkg-config hivent, #{libdir})"
end

def compile_sources(core_src)
  abort "hivent: no libhivent found: set HIVENT_BUILD_DIR, install libhivent, " \
        "or build from a copy that has the core sources" unless core_src
  CORE_DEPS.each { |dep| require_pkg(dep) }
  $VPATH << core_src
  $INCFLAGS << " -I#{core_src}"
  $defs << "-DHIVENT_BUILDING"
  $srcs.concat(Dir[File.join(core_src, "*.c")].map { |path| File.basename(path) })
  "core sources in #{core_src}"
end

core_include = first_dir(File.join(EXT_DIR, "include"), File.join(REPO_DIR, "core/include"))
core_src = first_dir(File.join(EXT_DIR, "core"), File.join(REPO_DIR, "core/src"))
abort "hivent: hivent/hivent.h not found" unless core_include

generate_wrapper(core_include)
require_pkg("msgpack")
append_cflags(["-std=gnu11", "-D_GNU_SOURCE", "-fvisibility=hidden"])
$srcs = %w[hivent_wrap.c rb_glue.c rb_payload.c]

build_dir = ENV["HIVENT_BUILD_DIR"].to_s
source =
  if !build_dir.empty?
    $INCFLAGS << " -I#{core_include}"
    link_static(File.expand_path(build_dir))
  else
    link_installed || begin
      $INCFLAGS << " -I#{core_include}"
      compile_sources(core_src)
    end
  end
have_library("pthread")
message "hivent: linking libhivent from the #{source}\n"

create_makefile("hivent/native")
