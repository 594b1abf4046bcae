/*
 * Conversion between Lua values and MessagePack for the Lua binding of
 * libhivent, plus the few native helpers the Lua layer needs (clock,
 * sleep, waiting on notice descriptors).
 *
 * Mapping, both ways:
 *   table         <-> map, or array when its keys are exactly 1..n (n > 0)
 *                     or it is empty and carries the "hivent.array"
 *                     metatable; other empty tables are maps.  Decoded
 *                     arrays carry that metatable, so an empty array
 *                     stays an array through a round trip.
 *   string        <-> str when it is valid UTF-8, else bin (both decode to
 *                     Lua strings)
 *   integer       <-> int (64-bit)
 *   float         <-> float64 (float32 decodes to a float)
 *   boolean       <-> bool
 *   hivent.null   <-> nil (a NULL light userdata, usable in arrays and maps)
 * Every other value (functions, threads, full userdata, cyclic tables)
 * raises a Lua error naming the field path, such as "payload.items[2].cb".
 */
#ifndef HIVENT_LUA_CONVERT_H
#define HIVENT_LUA_CONVERT_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

#include "hivent/hivent.h"

/* Containers nested deeper than this are rejected both ways; the core's
 * MessagePack reader has the same limit. */
#define HV_LUA_MAX_DEPTH 64

/*
 * Packs the payload table at stack index @p index into MessagePack.  The
 * bytes are owned by a userdata left on the stack (freed by the garbage
 * collector), so a Lua error raised half-way leaks nothing.  nil yields
 * NULL and size 0.  The top-level value must be a table that packs as a
 * map.  @p what names the root in error messages ("payload").
 */
void hv_lua_pack_payload(lua_State *L, int index, const char *what,
                         const void **data, size_t *size);

/* Pushes the value packed in @p data; raises a Lua error on malformed
 * input, trailing bytes or nesting deeper than HV_LUA_MAX_DEPTH. */
void hv_lua_push_msgpack(lua_State *L, const void *data, size_t size);

/* Pushes an event as a table {name, payload, meta = {...}, queue,
 * partition}; raises a Lua error when the payload cannot be decoded. */
void hv_lua_push_event(lua_State *L, const hivent_event_t *event);

/* Pushes @p event as hv_lua_push_event() does, then destroys it, also
 * when the conversion raises.  NULL pushes nil. */
void hv_lua_push_owned_event(lua_State *L, hivent_event_t *event);

/* Returns 1 when @p s contains well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
int hv_lua_utf8_valid(const unsigned char *s, size_t n);

/* Returns the integer at @p index, accepting floats with an integral
 * value, or raises an argument error naming @p what. */
lua_Integer hv_lua_check_integer(lua_State *L, int index, const char *what);

/* Returns the string at @p index for a C string argument, or NULL for nil.
 * Raises an error naming @p what when the string contains a NUL byte,
 * because C would read it cut at that byte. */
const char *hv_lua_check_cstring(lua_State *L, int index, const char *what);

/* Returns 1 when the value at @p index is an integer or an integral float. */
int hv_lua_is_integer(lua_State *L, int index);

/* Native functions registered in the module (see hivent.i). */
int hv_lua_native_pack(lua_State *L);
int hv_lua_native_unpack(lua_State *L);
int hv_lua_native_null(lua_State *L);
int hv_lua_native_utf8_valid(lua_State *L);
int hv_lua_native_array_meta(lua_State *L);
int hv_lua_native_monotonic(lua_State *L);
int hv_lua_native_sleep(lua_State *L);
int hv_lua_native_wait_fds(lua_State *L);
int hv_lua_native_signal_watch(lua_State *L);
int hv_lua_native_signal_unwatch(lua_State *L);
int hv_lua_native_signal_caught(lua_State *L);

#endif
