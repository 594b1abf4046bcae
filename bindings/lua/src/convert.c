/*
 * Lua <-> MessagePack conversion for the Lua binding.  Packing uses
 * msgpack-c's packer; unpacking is a bounds-checked walk over the bytes
 * that pushes Lua values directly.
 */
#include "convert.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#if LUA_VERSION_NUM < 503
#error "the hivent Lua binding needs Lua 5.3 or later (64-bit integers)"
#endif
#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, size)
#endif

#define PACKBUF_META "hivent.packbuf"
#define EVENTGUARD_META "hivent.eventguard"
#define ARRAY_META "hivent.array"

/* Pushes the metatable that marks a table as a MessagePack array. */
static void push_array_meta(lua_State *L)
{
    if (luaL_newmetatable(L, ARRAY_META)) {
        lua_pushstring(L, ARRAY_META);
        lua_setfield(L, -2, "__name");
    }
}

/* Returns 1 when the table at @p index carries the array metatable. */
static int has_array_meta(lua_State *L, int index)
{
    int marked;

    if (!lua_getmetatable(L, index))
        return 0;
    luaL_getmetatable(L, ARRAY_META);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return marked;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

int hv_lua_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return 0; /* overlong */
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return 0; /* surrogate */
        if (cp > 0x10FFFF)
            return 0;
        i += len;
    }
    return 1;
}

int hv_lua_is_integer(lua_State *L, int index)
{
    lua_Integer value;

    if (lua_type(L, index) != LUA_TNUMBER)
        return 0;
    if (lua_isinteger(L, index))
        return 1;
    return lua_numbertointeger(lua_tonumber(L, index), &value) &&
           (lua_Number)value == lua_tonumber(L, index);
}

lua_Integer hv_lua_check_integer(lua_State *L, int index, const char *what)
{
    lua_Integer value;

    if (lua_isinteger(L, index))
        return lua_tointeger(L, index);
    if (lua_type(L, index) == LUA_TNUMBER &&
        lua_numbertointeger(lua_tonumber(L, index), &value) &&
        (lua_Number)value == lua_tonumber(L, index))
        return value;
    return luaL_error(L, "%s must be an integer, got %s", what,
                      lua_type(L, index) == LUA_TNUMBER ? "a float"
                                                        : luaL_typename(L, index));
}

const char *hv_lua_check_cstring(lua_State *L, int index, const char *what)
{
    size_t length = 0;
    const char *text;
    const char *nul;

    if (lua_isnoneornil(L, index))
        return NULL;
    text = lua_tolstring(L, index, &length);
    if (text == NULL) {
        luaL_error(L, "%s must be a string, got %s", what, luaL_typename(L, index));
        return NULL;
    }
    nul = memchr(text, '\0', length);
    if (nul != NULL)
        luaL_error(L, "%s must not contain a NUL byte (found at byte %I of %I)", what,
                   (LUAI_UACINT)(nul - text), (LUAI_UACINT)length);
    return text;
}

static int is_null(lua_State *L, int index)
{
    return lua_type(L, index) == LUA_TLIGHTUSERDATA && lua_touserdata(L, index) == NULL;
}

/* ------------------------------------------------------------------ */
/* Packing                                                              */
/* ------------------------------------------------------------------ */

typedef struct pack_state {
    lua_State *L;
    msgpack_packer packer;
    const char *root;
    int seen;                                  /* stack index of the tables on the current path */
    int depth;
    int key_index[HV_LUA_MAX_DEPTH + 1];       /* stack index of each level's key, 0 for arrays */
    lua_Integer key_array[HV_LUA_MAX_DEPTH + 1];
} pack_state;

static int packbuf_gc(lua_State *L)
{
    msgpack_sbuffer *buffer = luaL_checkudata(L, 1, PACKBUF_META);

    msgpack_sbuffer_destroy(buffer);
    memset(buffer, 0, sizeof(*buffer));
    return 0;
}

/* Pushes a userdata that owns an empty msgpack_sbuffer. */
static msgpack_sbuffer *push_packbuf(lua_State *L)
{
    msgpack_sbuffer *buffer = lua_newuserdatauv(L, sizeof(*buffer), 0);

    msgpack_sbuffer_init(buffer);
    if (luaL_newmetatable(L, PACKBUF_META)) {
        lua_pushcfunction(L, packbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return buffer;
}

static int is_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    for (s++; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    }
    return 1;
}

/* Pushes the path component stored for @p level: ".name", ["a b"] or [3]. */
static void push_path_component(pack_state *s, int level)
{
    lua_State *L = s->L;
    int key = s->key_index[level];

    if (key == 0) {
        lua_pushfstring(L, "[%I]", (LUAI_UACINT)s->key_array[level]);
    } else if (lua_type(L, key) == LUA_TSTRING && is_identifier(lua_tostring(L, key))) {
        lua_pushfstring(L, ".%s", lua_tostring(L, key));
    } else if (lua_type(L, key) == LUA_TSTRING) {
        lua_pushfstring(L, "[\"%s\"]", lua_tostring(L, key));
    } else {
        luaL_tolstring(L, key, NULL);
        lua_pushfstring(L, "[%s]", lua_tostring(L, -1));
        lua_remove(L, -2);
    }
}

/* Raises "<path>: <message>" for the value at the current depth. */
static int pack_error(pack_state *s, const char *message)
{
    lua_State *L = s->L;
    int parts = 1;

    luaL_checkstack(L, s->depth + 4, "building the error message");
    lua_pushstring(L, s->root);
    for (int level = 1; level <= s->depth; level++) {
        push_path_component(s, level);
        parts++;
    }
    lua_concat(L, parts);
    return luaL_error(L, "%s: %s", lua_tostring(L, -1), message);
}

static void check_pack(pack_state *s, int rc)
{
    if (rc != 0)
        pack_error(s, "out of memory while packing");
}

static void pack_value(pack_state *s, int index);

static void pack_string(pack_state *s, int index)
{
    size_t len;
    const char *str = lua_tolstring(s->L, index, &len);

    if (len > UINT32_MAX)
        pack_error(s, "string longer than 4 GiB");
    if (hv_lua_utf8_valid((const unsigned char *)str, len)) {
        check_pack(s, msgpack_pack_str(&s->packer, len));
        check_pack(s, msgpack_pack_str_body(&s->packer, str, len));
    } else {
        check_pack(s, msgpack_pack_bin(&s->packer, len));
        check_pack(s, msgpack_pack_bin_body(&s->packer, str, len));
    }
}

static void pack_number(pack_state *s, int index)
{
    if (lua_isinteger(s->L, index))
        check_pack(s, msgpack_pack_int64(&s->packer, (int64_t)lua_tointeger(s->L, index)));
    else
        check_pack(s, msgpack_pack_double(&s->packer, (double)lua_tonumber(s->L, index)));
}

/* Counts the keys of the table at @p index and stores in @p is_array
 * whether they are exactly the integers 1..n with n > 0. */
static size_t table_shape(lua_State *L, int index, int *is_array)
{
    size_t count = 0;
    lua_Integer max = 0;
    int sequence = 1;

    lua_pushnil(L);
    while (lua_next(L, index) != 0) {
        lua_pop(L, 1);
        count++;
        if (sequence && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            if (lua_tointeger(L, -1) > max)
                max = lua_tointeger(L, -1);
        } else {
            sequence = 0;
        }
    }
    *is_array = sequence && count > 0 && (lua_Unsigned)max == count;
    return count;
}

static void pack_array(pack_state *s, int index, size_t count)
{
    lua_State *L = s->L;

    check_pack(s, msgpack_pack_array(&s->packer, count));
    for (size_t i = 1; i <= count; i++) {
        s->key_index[s->depth] = 0;
        s->key_array[s->depth] = (lua_Integer)i;
        lua_rawgeti(L, index, (lua_Integer)i);
        pack_value(s, lua_gettop(L));
        lua_pop(L, 1);
    }
}

static void pack_key(pack_state *s, int index)
{
    lua_State *L = s->L;

    switch (lua_type(L, index)) {
    case LUA_TSTRING:
        pack_string(s, index);
        break;
    case LUA_TNUMBER:
        pack_number(s, index);
        break;
    case LUA_TBOOLEAN:
        check_pack(s, lua_toboolean(L, index) ? msgpack_pack_true(&s->packer)
                                              : msgpack_pack_false(&s->packer));
        break;
    default:
        if (is_null(L, index)) {
            check_pack(s, msgpack_pack_nil(&s->packer));
            break;
        }
        lua_pushfstring(L, "a %s cannot be a map key", luaL_typename(L, index));
        pack_error(s, lua_tostring(L, -1));
    }
}

static void pack_map(pack_state *s, int index, size_t count)
{
    lua_State *L = s->L;

    check_pack(s, msgpack_pack_map(&s->packer, count));
    lua_pushnil(L);
    while (lua_next(L, index) != 0) {
        int key = lua_gettop(L) - 1;

        s->key_index[s->depth] = key;
        pack_key(s, key);
        pack_value(s, key + 1);
        lua_pop(L, 1);
    }
}

static void pack_table(pack_state *s, int index)
{
    lua_State *L = s->L;
    int is_array;
    size_t count;

    if (s->depth >= HV_LUA_MAX_DEPTH)
        pack_error(s, "tables nested deeper than 64 levels");
    luaL_checkstack(L, 8, "packing a nested table");

    lua_pushvalue(L, index);
    if (lua_rawget(L, s->seen) != LUA_TNIL)
        pack_error(s, "cyclic table (it contains itself)");
    lua_pop(L, 1);
    lua_pushvalue(L, index);
    lua_pushboolean(L, 1);
    lua_rawset(L, s->seen);

    count = table_shape(L, index, &is_array);
    /* A marked table packs as an array when it is empty or a sequence. */
    if (count == 0 && has_array_meta(L, index))
        is_array = 1;
    if (count > UINT32_MAX)
        pack_error(s, "table with more than 2^32 entries");
    s->depth++;
    if (is_array)
        pack_array(s, index, count);
    else
        pack_map(s, index, count);
    s->depth--;

    lua_pushvalue(L, index);
    lua_pushnil(L);
    lua_rawset(L, s->seen);
}

static void pack_value(pack_state *s, int index)
{
    lua_State *L = s->L;

    switch (lua_type(L, index)) {
    case LUA_TNIL:
        check_pack(s, msgpack_pack_nil(&s->packer));
        break;
    case LUA_TBOOLEAN:
        check_pack(s, lua_toboolean(L, index) ? msgpack_pack_true(&s->packer)
                                              : msgpack_pack_false(&s->packer));
        break;
    case LUA_TNUMBER:
        pack_number(s, index);
        break;
    case LUA_TSTRING:
        pack_string(s, index);
        break;
    case LUA_TTABLE:
        pack_table(s, index);
        break;
    default:
        if (is_null(L, index)) {
            check_pack(s, msgpack_pack_nil(&s->packer));
            break;
        }
        lua_pushfstring(L, "cannot convert a %s to MessagePack", luaL_typename(L, index));
        pack_error(s, lua_tostring(L, -1));
    }
}

/* Packs the value at @p index into a new buffer userdata left on top. */
static msgpack_sbuffer *pack_any(lua_State *L, int index, const char *root)
{
    pack_state state;
    msgpack_sbuffer *buffer;

    index = lua_absindex(L, index);
    memset(&state, 0, sizeof(state));
    state.L = L;
    state.root = root;
    lua_newtable(L);
    state.seen = lua_gettop(L);
    buffer = push_packbuf(L);
    msgpack_packer_init(&state.packer, buffer, msgpack_sbuffer_write);
    pack_value(&state, index);
    lua_remove(L, state.seen);
    return buffer;
}

void hv_lua_pack_payload(lua_State *L, int index, const char *what,
                         const void **data, size_t *size)
{
    msgpack_sbuffer *buffer;
    int is_array;

    *data = NULL;
    *size = 0;
    if (lua_isnoneornil(L, index))
        return;
    if (!lua_istable(L, index))
        luaL_error(L, "%s must be a table, got %s", what, luaL_typename(L, index));
    table_shape(L, lua_absindex(L, index), &is_array);
    if (is_array)
        luaL_error(L, "%s must be a map (a table with keys other than 1..n), "
                      "got a sequence", what);
    buffer = pack_any(L, index, what);
    *data = buffer->data;
    *size = buffer->size;
}

/* ------------------------------------------------------------------ */
/* Unpacking                                                            */
/* ------------------------------------------------------------------ */

typedef struct unpack_state {
    lua_State *L;
    const unsigned char *p;
    size_t len;
    size_t pos;
    int depth;
} unpack_state;

static int unpack_error(unpack_state *u, const char *message)
{
    return luaL_error(u->L, "invalid MessagePack at byte %I: %s",
                      (LUAI_UACINT)u->pos, message);
}

static const unsigned char *take(unpack_state *u, size_t n)
{
    const unsigned char *at;

    if (u->len - u->pos < n)
        unpack_error(u, "truncated input");
    at = u->p + u->pos;
    u->pos += n;
    return at;
}

static uint64_t read_be(unpack_state *u, size_t n)
{
    const unsigned char *b = take(u, n);
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | b[i];
    return v;
}

static void unpack_value(unpack_state *u);

static void unpack_bytes(unpack_state *u, size_t n)
{
    const unsigned char *b = take(u, n);

    lua_pushlstring(u->L, (const char *)b, n);
}

static void enter_container(unpack_state *u, uint64_t count, size_t min_size)
{
    if (u->depth >= HV_LUA_MAX_DEPTH)
        unpack_error(u, "containers nested deeper than 64 levels");
    /* Every element takes at least one byte, so a count larger than the
     * remaining input is malformed; checking it here bounds allocations. */
    if (count > (u->len - u->pos) / min_size)
        unpack_error(u, "container length exceeds the input");
    luaL_checkstack(u->L, 8, "unpacking a nested container");
    u->depth++;
}

static void unpack_array(unpack_state *u, uint64_t count)
{
    lua_State *L = u->L;

    enter_container(u, count, 1);
    lua_createtable(L, count < INT_MAX ? (int)count : 0, 0);
    push_array_meta(L);
    lua_setmetatable(L, -2);
    for (uint64_t i = 1; i <= count; i++) {
        unpack_value(u);
        lua_rawseti(L, -2, (lua_Integer)i);
    }
    u->depth--;
}

static void unpack_map(unpack_state *u, uint64_t count)
{
    lua_State *L = u->L;

    enter_container(u, count, 2);
    lua_createtable(L, 0, count < INT_MAX ? (int)count : 0);
    for (uint64_t i = 0; i < count; i++) {
        unpack_value(u);
        if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
            isnan(lua_tonumber(L, -1)))
            unpack_error(u, "map key is NaN");
        unpack_value(u);
        lua_rawset(L, -3);
    }
    u->depth--;
}

static void unpack_float(unpack_state *u, size_t n)
{
    uint64_t bits = read_be(u, n);

    if (n == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;

        memcpy(&f, &b32, sizeof(f));
        lua_pushnumber(u->L, (lua_Number)f);
    } else {
        double d;

        memcpy(&d, &bits, sizeof(d));
        lua_pushnumber(u->L, (lua_Number)d);
    }
}

static void unpack_uint(unpack_state *u, size_t n)
{
    uint64_t v = read_be(u, n);

    /* NOTE: Lua integers are signed 64-bit, so an unsigned value above
     * 2^63-1 decodes to the nearest float. */
    if (v > (uint64_t)LUA_MAXINTEGER)
        lua_pushnumber(u->L, (lua_Number)v);
    else
        lua_pushinteger(u->L, (lua_Integer)v);
}

static void unpack_int(unpack_state *u, size_t n)
{
    uint64_t v = read_be(u, n);
    int64_t signed_value;

    switch (n) {
    case 1: signed_value = (int8_t)v; break;
    case 2: signed_value = (int16_t)v; break;
    case 4: signed_value = (int32_t)v; break;
    default: memcpy(&signed_value, &v, sizeof(v)); break;
    }
    lua_pushinteger(u->L, (lua_Integer)signed_value);
}

static void unpack_value(unpack_state *u)
{
    lua_State *L = u->L;
    unsigned char c = *take(u, 1);

    if (c <= 0x7F) {
        lua_pushinteger(L, c);
    } else if (c >= 0xE0) {
        lua_pushinteger(L, (int8_t)c);
    } else if (c >= 0x80 && c <= 0x8F) {
        unpack_map(u, c & 0x0F);
    } else if (c >= 0x90 && c <= 0x9F) {
        unpack_array(u, c & 0x0F);
    } else if (c >= 0xA0 && c <= 0xBF) {
        unpack_bytes(u, c & 0x1F);
    } else {
        switch (c) {
        case 0xC0: lua_pushlightuserdata(L, NULL); break;
        case 0xC2: lua_pushboolean(L, 0); break;
        case 0xC3: lua_pushboolean(L, 1); break;
        case 0xC4: case 0xD9: unpack_bytes(u, read_be(u, 1)); break;
        case 0xC5: case 0xDA: unpack_bytes(u, read_be(u, 2)); break;
        case 0xC6: case 0xDB: unpack_bytes(u, read_be(u, 4)); break;
        case 0xCA: unpack_float(u, 4); break;
        case 0xCB: unpack_float(u, 8); break;
        case 0xCC: unpack_uint(u, 1); break;
        case 0xCD: unpack_uint(u, 2); break;
        case 0xCE: unpack_uint(u, 4); break;
        case 0xCF: unpack_uint(u, 8); break;
        case 0xD0: unpack_int(u, 1); break;
        case 0xD1: unpack_int(u, 2); break;
        case 0xD2: unpack_int(u, 4); break;
        case 0xD3: unpack_int(u, 8); break;
        case 0xDC: unpack_array(u, read_be(u, 2)); break;
        case 0xDD: unpack_array(u, read_be(u, 4)); break;
        case 0xDE: unpack_map(u, read_be(u, 2)); break;
        case 0xDF: unpack_map(u, read_be(u, 4)); break;
        case 0xC7: case 0xC8: case 0xC9:
        case 0xD4: case 0xD5: case 0xD6: case 0xD7: case 0xD8:
            unpack_error(u, "extension types are not supported");
            break;
        default:
            unpack_error(u, "byte 0xc1 is never used");
        }
    }
}

void hv_lua_push_msgpack(lua_State *L, const void *data, size_t size)
{
    unpack_state u;

    if (data == NULL && size > 0)
        luaL_error(L, "invalid MessagePack: NULL data with size %I", (LUAI_UACINT)size);
    u.L = L;
    u.p = data;
    u.len = size;
    u.pos = 0;
    u.depth = 0;
    luaL_checkstack(L, 8, "unpacking MessagePack");
    unpack_value(&u);
    if (u.pos != u.len)
        unpack_error(&u, "trailing bytes after the value");
}

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

static void set_string_field(lua_State *L, const char *name, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, name);
}

void hv_lua_push_event(lua_State *L, const hivent_event_t *event)
{
    const void *payload;
    size_t size = 0;
    int partition;

    if (event == NULL) {
        lua_pushnil(L);
        return;
    }
    luaL_checkstack(L, 8, "converting an event");
    lua_createtable(L, 0, 5);
    set_string_field(L, "name", hivent_event_name(event));

    payload = hivent_event_payload(event, &size);
    if (payload == NULL || size == 0)
        lua_newtable(L);
    else
        hv_lua_push_msgpack(L, payload, size);
    lua_setfield(L, -2, "payload");

    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)hivent_event_version(event));
    lua_setfield(L, -2, "version");
    set_string_field(L, "cid", hivent_event_cid(event));
    set_string_field(L, "key", hivent_event_key(event));
    set_string_field(L, "producer", hivent_event_producer(event));
    set_string_field(L, "uuid", hivent_event_uuid(event));
    set_string_field(L, "created_at", hivent_event_created_at(event));
    lua_setfield(L, -2, "meta");

    set_string_field(L, "queue", hivent_event_queue(event));
    partition = hivent_event_partition(event);
    if (partition >= 0) {
        lua_pushinteger(L, partition);
        lua_setfield(L, -2, "partition");
    }
}

static int eventguard_gc(lua_State *L)
{
    hivent_event_t **slot = luaL_checkudata(L, 1, EVENTGUARD_META);

    hivent_event_destroy(*slot);
    *slot = NULL;
    return 0;
}

void hv_lua_push_owned_event(lua_State *L, hivent_event_t *event)
{
    hivent_event_t **slot;

    if (event == NULL) {
        lua_pushnil(L);
        return;
    }
    luaL_checkstack(L, 4, "converting an event");
    /* The guard frees the event if the conversion raises. */
    slot = lua_newuserdatauv(L, sizeof(*slot), 0);
    *slot = event;
    if (luaL_newmetatable(L, EVENTGUARD_META)) {
        lua_pushcfunction(L, eventguard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    hv_lua_push_event(L, event);
    hivent_event_destroy(*slot);
    *slot = NULL;
    lua_remove(L, -2);
}

/* ------------------------------------------------------------------ */
/* Native functions                                                     */
/* ------------------------------------------------------------------ */

/* pack(value [, root]) -> MessagePack string of any convertible value. */
int hv_lua_native_pack(lua_State *L)
{
    const char *root = luaL_optstring(L, 2, "value");
    msgpack_sbuffer *buffer;

    luaL_checkany(L, 1);
    buffer = pack_any(L, 1, root);
    lua_pushlstring(L, buffer->data ? buffer->data : "", buffer->size);
    return 1;
}

/* unpack(string) -> value; nil in the input becomes the null sentinel. */
int hv_lua_native_unpack(lua_State *L)
{
    size_t size;
    const char *data = luaL_checklstring(L, 1, &size);

    hv_lua_push_msgpack(L, data, size);
    return 1;
}

int hv_lua_native_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL);
    return 1;
}

/* array_meta() -> the metatable that marks decoded (and empty) arrays. */
int hv_lua_native_array_meta(lua_State *L)
{
    push_array_meta(L);
    return 1;
}

int hv_lua_native_utf8_valid(lua_State *L)
{
    size_t size;
    const char *data = luaL_checklstring(L, 1, &size);

    lua_pushboolean(L, hv_lua_utf8_valid((const unsigned char *)data, size));
    return 1;
}

/* monotonic() -> seconds from an arbitrary start, as a float. */
int hv_lua_native_monotonic(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* sleep(seconds): sleeps up to one day; negative or NaN sleeps not at all. */
int hv_lua_native_sleep(lua_State *L)
{
    lua_Number seconds = luaL_checknumber(L, 1);
    struct timespec ts;

    if (!(seconds > 0))
        return 0;
    if (seconds > 86400)
        seconds = 86400;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/*
 * wait_fds({fd, ...}, timeout_ms) -> table of booleans (readable or not),
 * or nil and a message.  Used to wait on several handles' notice
 * descriptors at once.
 */
int hv_lua_native_wait_fds(lua_State *L)
{
    struct pollfd fds[64];
    lua_Integer count;
    lua_Integer timeout;
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    timeout = hv_lua_check_integer(L, 2, "timeout_ms");
    count = (lua_Integer)lua_rawlen(L, 1);
    if (count < 1 || count > 64)
        return luaL_error(L, "wait_fds needs 1 to 64 descriptors, got %I", (LUAI_UACINT)count);
    if (timeout > INT_MAX)
        timeout = INT_MAX;
    if (timeout < -1)
        timeout = -1;
    for (lua_Integer i = 0; i < count; i++) {
        lua_rawgeti(L, 1, i + 1);
        fds[i].fd = (int)hv_lua_check_integer(L, -1, "descriptor");
        fds[i].events = POLLIN;
        fds[i].revents = 0;
        lua_pop(L, 1);
    }
    rc = poll(fds, (nfds_t)count, (int)timeout);
    if (rc < 0 && errno != EINTR) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_createtable(L, (int)count, 0);
    for (lua_Integer i = 0; i < count; i++) {
        lua_pushboolean(L, rc > 0 && (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/*
 * Signal watch used by Consumer:run(), Consumer.run_all() and Client:emit().
 * While a watch is active, SIGINT and SIGTERM set a hook on the watching
 * Lua thread that raises "interrupted!" at its next Lua instruction, as the
 * lua5.4 interpreter does for SIGINT, so C waits end within one poll slice.
 * SA_RESETHAND restores the default action, so a second signal ends the
 * process at once.
 */
static volatile sig_atomic_t caught_signal;
static lua_State *volatile watched_state;
static int watch_depth;
static struct sigaction saved_sigint;
static struct sigaction saved_sigterm;

static void raise_interrupt(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_watched_signal(int signo)
{
    lua_State *L = watched_state;

    caught_signal = signo;
    if (L != NULL)
        lua_sethook(L, raise_interrupt, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* signal_watch(): starts watching SIGINT and SIGTERM.  Calls nest, and only
 * the outermost one installs the handlers. */
int hv_lua_native_signal_watch(lua_State *L)
{
    struct sigaction action;

    if (watch_depth++ > 0)
        return 0;
    caught_signal = 0;
    watched_state = L;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_watched_signal;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &saved_sigint);
    sigaction(SIGTERM, &action, &saved_sigterm);
    return 0;
}

/* signal_unwatch(): ends the innermost watch.  Ending the outermost one
 * restores the handlers that were installed before it. */
int hv_lua_native_signal_unwatch(lua_State *L)
{
    (void)L;
    if (watch_depth == 0 || --watch_depth > 0)
        return 0;
    sigaction(SIGINT, &saved_sigint, NULL);
    sigaction(SIGTERM, &saved_sigterm, NULL);
    watched_state = NULL;
    return 0;
}

/* signal_caught() -> "SIGINT", "SIGTERM" or nil: the signal caught by the
 * current or last watch. */
int hv_lua_native_signal_caught(lua_State *L)
{
    switch (caught_signal) {
    case SIGINT:
        lua_pushliteral(L, "SIGINT");
        break;
    case SIGTERM:
        lua_pushliteral(L, "SIGTERM");
        break;
    default:
        lua_pushnil(L);
    }
    return 1;
}
