/*
 * Lua interface of libhivent: the module hivent_core, wrapped by the Lua
 * layer in hivent/*.lua.  This file holds the Lua typemaps and native
 * helpers, then includes the declarations shared by every binding.
 *
 * Conventions of the generated functions:
 *  - Integers travel as Lua integers (SWIG's stock Lua typemaps use
 *    lua_Number, which would turn error codes into floats).
 *  - String arguments raise an error naming the parameter when they
 *    contain a NUL byte.
 *  - A (char *errstr, size_t errstr_size) pair takes no Lua argument and
 *    adds the message as an extra string result.
 *  - Payload arguments take a Lua table (or nil for an empty map) and pack
 *    it to MessagePack with src/convert.c.
 *  - Events owned by the caller (the published event of hivent_emit(), the
 *    memory transport's copies) come back as Lua tables and are freed at
 *    once; events borrowed from a notice stay pointers for ack/reject and
 *    convert with event_table().
 */
%module hivent_core

%{
#include <stdint.h>
#include <stdlib.h>
#include "convert.h"
%}

/* Integers. */
%typemap(in, checkfn="hv_lua_is_integer") int, long, long long, int64_t, int32_t
{
    lua_Integer value = hv_lua_check_integer(L, $input, "argument $argnum");

    $1 = ($1_ltype)value;
    if ((lua_Integer)$1 != value)
        luaL_error(L, "argument $argnum of $symname is out of range");
}
%typemap(in, checkfn="hv_lua_is_integer") size_t, unsigned int, uint64_t
{
    lua_Integer value = hv_lua_check_integer(L, $input, "argument $argnum");

    if (value < 0)
        luaL_error(L, "argument $argnum of $symname must not be negative");
    $1 = ($1_ltype)value;
}
%typemap(out) int, long, long long, int64_t, int32_t, size_t, unsigned int, uint64_t
%{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}
%typemap(in, checkfn="hv_lua_is_integer") enum SWIGTYPE
%{ $1 = ($1_ltype)(int)hv_lua_check_integer(L, $input, "argument $argnum"); %}
%typemap(out) enum SWIGTYPE
%{ lua_pushinteger(L, (lua_Integer)(int)$1); SWIG_arg++; %}
%typemap(typecheck, precedence=SWIG_TYPECHECK_INTEGER) int, long, int64_t, size_t, uint64_t
%{ $1 = hv_lua_is_integer(L, $input); %}

/* C strings: a Lua string with a NUL byte raises instead of being cut. */
%typemap(in, checkfn="SWIG_lua_isnilstring") const char *, char *
%{ $1 = ($ltype)hv_lua_check_cstring(L, $input, "$1_name"); %}

/* Error messages written into a caller buffer. */
%typemap(in, numinputs=0) (char *errstr, size_t errstr_size) (char temp[512])
%{ temp[0] = '\0'; $1 = temp; $2 = sizeof(temp); %}
%typemap(argout) (char *errstr, size_t errstr_size)
%{ lua_pushstring(L, $1); SWIG_arg++; %}

/* Payloads: a Lua table packed to MessagePack; nil means an empty map
 * (or "match anything" for the memory transport's subsets). */
%typemap(in) (const void *payload, size_t payload_size)
%{ hv_lua_pack_payload(L, $input, "payload", (const void **)&$1, &$2); %}
%typemap(in) (const void *payload_subset, size_t payload_subset_size)
%{ hv_lua_pack_payload(L, $input, "payload", (const void **)&$1, &$2); %}
%typemap(in) (const void *meta_subset, size_t meta_subset_size)
%{ hv_lua_pack_payload(L, $input, "meta", (const void **)&$1, &$2); %}

/* The published event of a synchronous emit, as a table or nil. */
%typemap(in, numinputs=0) hivent_event_t **published (hivent_event_t *temp = NULL)
%{ $1 = &temp; %}
%typemap(argout) hivent_event_t **published
%{ hv_lua_push_owned_event(L, *$1); *$1 = NULL; SWIG_arg++; %}

/* Asynchronous emits carry an integer id instead of a pointer. */
%typemap(in, checkfn="hv_lua_is_integer") void *msg_opaque
%{ $1 = (void *)(uintptr_t)hv_lua_check_integer(L, $input, "msg_id"); %}

/* Events copied out of the memory transport. */
%typemap(out) hivent_event_t *hivent_memory_at, hivent_event_t *hivent_memory_last
%{ hv_lua_push_owned_event(L, $1); SWIG_arg++; %}

/* hivent_conf_get(): the value comes back as a string, or nil. */
%typemap(in, numinputs=0) (char *dest, size_t *dest_size) (char temp[256], size_t temp_size)
%{ temp_size = sizeof(temp); $1 = temp; $2 = &temp_size; %}
%typemap(argout) (char *dest, size_t *dest_size)
%{
    if (result != HIVENT_OK) {
        lua_pushnil(L);
    } else if (*$2 <= sizeof(temp$argnum)) {
        lua_pushstring(L, $1);
    } else {
        size_t needed = *$2;
        char *value = malloc(needed);

        if (value == NULL || hivent_conf_get(arg1, arg2, value, &needed) != HIVENT_OK) {
            free(value);
            lua_pushnil(L);
        } else {
            lua_pushstring(L, value);
            free(value);
        }
    }
    SWIG_arg++;
%}

/* JSON helpers, used to check payload conversion against the core's. */
%typemap(in, checkfn="lua_isstring") (const char *json, size_t json_size)
%{ $1 = (char *)lua_tolstring(L, $input, &$2); %}
%typemap(in, checkfn="lua_isstring") (const void *msgpack, size_t size)
%{ $1 = (void *)lua_tolstring(L, $input, &$2); %}
%typemap(in, numinputs=0) (void **out, size_t *out_size) (void *temp = NULL, size_t temp_size = 0)
%{ $1 = &temp; $2 = &temp_size; %}
%typemap(argout) (void **out, size_t *out_size)
%{
    if (*$1 != NULL)
        lua_pushlstring(L, (const char *)*$1, *$2);
    else
        lua_pushnil(L);
    hivent_free(*$1);
    *$1 = NULL;
    SWIG_arg++;
%}
%typemap(out) char *hivent_msgpack_to_json, char *hivent_event_to_json
%{ lua_pushstring(L, $1); hivent_free($1); SWIG_arg++; %}

/* The Lua layer never owns a borrowed event or a raw payload pointer. */
%ignore hivent_free;
%ignore hivent_event_payload;
%ignore hivent_event_msgpack;
%ignore hivent_event_dup;
%ignore hivent_event_destroy;
%ignore hivent_conf_dup;

%include "../swig/hivent_common.i"

/* Native helpers. */
%native(pack) int hv_lua_native_pack(lua_State *L);
%native(unpack) int hv_lua_native_unpack(lua_State *L);
%native(null_value) int hv_lua_native_null(lua_State *L);
%native(array_meta) int hv_lua_native_array_meta(lua_State *L);
%native(utf8_valid) int hv_lua_native_utf8_valid(lua_State *L);
%native(monotonic) int hv_lua_native_monotonic(lua_State *L);
%native(sleep) int hv_lua_native_sleep(lua_State *L);
%native(wait_fds) int hv_lua_native_wait_fds(lua_State *L);
%native(signal_watch) int hv_lua_native_signal_watch(lua_State *L);
%native(signal_unwatch) int hv_lua_native_signal_unwatch(lua_State *L);
%native(signal_caught) int hv_lua_native_signal_caught(lua_State *L);
%native(event_table) int hv_lua_native_event_table(lua_State *L);
%native(take_delivery) int hv_lua_native_take_delivery(lua_State *L);

%wrapper %{
/* event_table(event) -> table for an event borrowed from a notice. */
static int hv_lua_native_event_table(lua_State *L)
{
    hivent_event_t *event = NULL;

    if (!SWIG_IsOK(SWIG_ConvertPtr(L, 1, (void **)&event, SWIGTYPE_p_hivent_event_s, 0)))
        return luaL_argerror(L, 1, "expected an event pointer");
    hv_lua_push_event(L, event);
    return 1;
}

static int push_event_protected(lua_State *L)
{
    hv_lua_push_event(L, (const hivent_event_t *)lua_touserdata(L, 1));
    return 1;
}

/* take_delivery(notice) -> msg_id, err, errstr, ok, event
 * Reads a delivery notice in one call and destroys it.  ok is true and
 * event the event table (nil when the notice has none), or ok is false
 * and event the message of the conversion error.  One call in place of
 * five saves a pointer type check and a wrapper call for each. */
static int hv_lua_native_take_delivery(lua_State *L)
{
    hivent_notice_t *notice = NULL;

    if (!SWIG_IsOK(SWIG_ConvertPtr(L, 1, (void **)&notice, SWIGTYPE_p_hivent_notice_s, 0)) ||
        !notice)
        return luaL_argerror(L, 1, "expected a notice pointer");
    hivent_err_t err = hivent_notice_err(notice);
    const hivent_event_t *event = hivent_notice_event(notice);
    lua_pushinteger(L, (lua_Integer)hivent_notice_msg_id(notice));
    lua_pushinteger(L, (lua_Integer)err);
    if (err != HIVENT_OK)
        lua_pushstring(L, hivent_notice_errstr(notice));
    else
        lua_pushnil(L);
    if (!event) {
        lua_pushboolean(L, 1);
        lua_pushnil(L);
    } else {
        lua_pushcfunction(L, push_event_protected);
        lua_pushlightuserdata(L, (void *)event);
        int status = lua_pcall(L, 1, 1, 0);
        lua_pushboolean(L, status == LUA_OK);
        lua_insert(L, -2);
    }
    hivent_notice_destroy(notice);
    return 5;
}
%}
