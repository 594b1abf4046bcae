-- Rockspec of the Lua binding of libhivent.  Build it from this directory
-- of the repository with `luarocks --lua-version 5.4 make`; no rock server
-- is needed.  The build needs swig, the Lua 5.4 headers, msgpack-c and
-- libhivent: the installed one when pkg-config finds "hivent", otherwise
-- the static library of the CMake build in HIVENT_BUILD_DIR (default: the
-- repository's build/ directory).  See the Makefile for HIVENT_LINK.
rockspec_format = "3.0"
package = "hivent"
version = "0.1.0-1"
source = {
  -- Built in place from the repository checkout; `luarocks make` does not
  -- fetch this URL.
  url = "git+file:///hivent-c",
}
description = {
  summary = "Lua client of the Hivent event bus, over libhivent",
  detailed = [[
Emit and consume Hivent events from Lua: payloads are Lua tables,
consumers are tables or classes with a process(event) function, and all
protocol, reconnect and partition logic runs in libhivent.]],
}
dependencies = {
  "lua >= 5.3, < 5.5",
}
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
