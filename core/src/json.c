/* JSON <-> MessagePack conversion (jansson) and vsn 2.0.0 JSON frames. */
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "frame.h"
#include "hivent/hivent.h"
#include "json_internal.h"
#include "mp.h"

static void set_err(char *err, size_t size, const char *fmt, const char *detail)
{
    if (err && size)
        snprintf(err, size, fmt, detail);
}

static int pack_json(msgpack_packer *pk, const json_t *j, int depth, int max_depth)
{
    if (depth >= max_depth && (json_is_object(j) || json_is_array(j)))
        return -1;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, key, val) {
            size_t n = strlen(key);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, key, n);
            if (pack_json(pk, val, depth + 1, max_depth) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, val) {
            if (pack_json(pk, val, depth + 1, max_depth) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        return msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(j));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(j));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    }
    return -1;
}

int hv_json_to_msgpack_buf(const json_t *j, int max_depth, hv_buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, hv_buf_msgpack_write);
    return pack_json(&pk, j, 0, max_depth);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64_string(const unsigned char *p, size_t n)
{
    size_t out_len = (n + 2) / 3 * 4;
    char *s = malloc(out_len + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        s[o++] = b64[(v >> 18) & 63];
        s[o++] = b64[(v >> 12) & 63];
        s[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        s[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    s[o] = 0;
    json_t *j = json_stringn(s, o);
    free(s);
    return j;
}

/* Longest JSON text accepted for a MessagePack map key that is not a string. */
#define HV_JSON_MAX_KEY_TEXT 1024

static json_t *read_value(hv_mp_reader_t *r, int depth);

static json_t *read_container(hv_mp_reader_t *r, const hv_mp_value_t *v, int depth)
{
    if (v->type == HV_MP_ARRAY) {
        json_t *arr = json_array();
        for (uint32_t i = 0; arr && i < v->size; i++) {
            json_t *item = read_value(r, depth + 1);
            if (!item || json_array_append_new(arr, item) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    json_t *obj = json_object();
    for (uint32_t i = 0; obj && i < v->size; i++) {
        json_t *key = read_value(r, depth + 1);
        json_t *val = key ? read_value(r, depth + 1) : NULL;
        char *text = NULL;
        const char *name = NULL;
        if (key && json_is_string(key)) {
            name = json_string_value(key);
        } else if (key) {
            /* A key's JSON text is escaped again inside every enclosing
             * non-string key, which doubles its length per level, so a
             * long key text fails the conversion instead of growing. */
            text = json_dumps(key, JSON_COMPACT | JSON_ENCODE_ANY);
            name = text && strlen(text) <= HV_JSON_MAX_KEY_TEXT ? text : NULL;
        }
        int rc = (val && name) ? json_object_set_new(obj, name, val) : -1;
        if (rc != 0 && val)
            json_decref(val);
        free(text);
        json_decref(key);
        if (rc != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *read_value(hv_mp_reader_t *r, int depth)
{
    hv_mp_value_t v;
    if (depth > HV_MP_MAX_DEPTH || hv_mp_read(r, &v) != 0)
        return NULL;
    switch (v.type) {
    case HV_MP_NIL:
        return json_null();
    case HV_MP_BOOL:
        return json_boolean(v.boolean);
    case HV_MP_INT:
        return json_integer(v.i);
    case HV_MP_UINT:
        if (v.u > INT64_MAX)
            return json_real((double)v.u);
        return json_integer((json_int_t)v.u);
    case HV_MP_FLOAT:
        return isfinite(v.f) ? json_real(v.f) : json_null();
    case HV_MP_STR:
        if (!hv_utf8_valid(v.str, v.size))
            return base64_string((const unsigned char *)v.str, v.size);
        return json_stringn(v.str, v.size);
    case HV_MP_BIN:
    case HV_MP_EXT:
        return base64_string((const unsigned char *)v.str, v.size);
    case HV_MP_ARRAY:
    case HV_MP_MAP:
        return read_container(r, &v, depth);
    }
    return NULL;
}

json_t *hv_msgpack_to_json_value(const void *p, size_t size, int max_depth)
{
    if (!p || hv_mp_validate_depth(p, size, max_depth) != 0)
        return NULL;
    hv_mp_reader_t r;
    hv_mp_reader_init(&r, p, size);
    return read_value(&r, 0);
}

HIVENT_API hivent_err_t hivent_json_to_msgpack(const char *json, size_t json_size,
                                               void **out, size_t *out_size,
                                               char *errstr, size_t errstr_size)
{
    if (!json || !out || !out_size) {
        set_err(errstr, errstr_size, "%s", "json, out and out_size must not be NULL");
        return HIVENT_ERR_INVALID_ARG;
    }
    json_error_t jerr;
    json_t *j = json_loadb(json, json_size, JSON_DECODE_ANY, &jerr);
    if (!j) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "invalid JSON at line %d, column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        return HIVENT_ERR_PAYLOAD;
    }
    hv_buf_t buf = {0};
    int rc = hv_json_to_msgpack_buf(j, HV_PAYLOAD_MAX_DEPTH, &buf);
    json_decref(j);
    if (rc != 0 || !buf.data) {
        hv_buf_free(&buf);
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "JSON nests arrays and objects deeper than %d levels "
                     "or memory ran out", HV_PAYLOAD_MAX_DEPTH);
        return HIVENT_ERR_PAYLOAD;
    }
    *out = hv_buf_steal(&buf, out_size);
    return HIVENT_OK;
}

HIVENT_API char *hivent_msgpack_to_json(const void *msgpack, size_t size, char *errstr,
                                        size_t errstr_size)
{
    json_t *j = hv_msgpack_to_json_value(msgpack, size, HV_PAYLOAD_MAX_DEPTH);
    if (!j) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "invalid MessagePack: truncated, malformed or nested "
                     "deeper than %d levels", HV_PAYLOAD_MAX_DEPTH);
        return NULL;
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (!text) {
        set_err(errstr, errstr_size, "%s", "out of memory");
        return NULL;
    }
    /* jansson allocates with malloc, so hivent_free() (free) releases it. */
    return text;
}

static json_t *ref_to_json(const hv_ref_t *ref)
{
    if (ref->kind == HV_REF_INT)
        return json_integer(ref->num);
    if (ref->kind == HV_REF_STR)
        return json_string(ref->str ? ref->str : "");
    return json_null();
}

int hv_frame_encode_json(const hv_frame_t *f, hv_buf_t *out)
{
    json_t *payload = f->payload ? hv_msgpack_to_json_value(f->payload, f->payload_size, HV_MP_MAX_DEPTH)
                                 : json_object();
    if (!payload)
        return -1;
    json_t *arr = json_pack("[o, o, s, s, o]", ref_to_json(&f->join_ref), ref_to_json(&f->ref),
                            f->topic ? f->topic : "", f->event ? f->event : "", payload);
    if (!arr)
        return -1;
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        return -1;
    int rc = hv_buf_puts(out, text);
    free(text);
    return rc;
}

static int json_to_ref(const json_t *j, hv_ref_t *ref)
{
    memset(ref, 0, sizeof *ref);
    if (json_is_null(j))
        return 0;
    if (json_is_integer(j)) {
        ref->kind = HV_REF_INT;
        ref->num = json_integer_value(j);
        return 0;
    }
    if (json_is_string(j)) {
        ref->kind = HV_REF_STR;
        ref->str = strdup(json_string_value(j));
        return ref->str ? 0 : -1;
    }
    return -1;
}

int hv_frame_decode_json(const char *text, size_t len, size_t max_size, hv_frame_t *f,
                         char *err, size_t err_size)
{
    memset(f, 0, sizeof *f);
    if (len > max_size) {
        set_err(err, err_size, "%s", "frame exceeds the maximum frame size");
        return -1;
    }
    json_error_t jerr;
    json_t *arr = json_loadb(text, len, 0, &jerr);
    if (!arr) {
        set_err(err, err_size, "invalid JSON frame: %s", jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_array(arr) || json_array_size(arr) != 5) {
        set_err(err, err_size, "%s", "JSON frame is not an array of 5 elements "
                                     "[join_ref, ref, topic, event, payload]");
        goto out;
    }
    json_t *topic = json_array_get(arr, 2), *event = json_array_get(arr, 3);
    json_t *payload = json_array_get(arr, 4);
    if (!json_is_string(topic) || !json_is_string(event) || !json_is_object(payload)) {
        set_err(err, err_size, "%s", "JSON frame needs string topic and event and an "
                                     "object payload");
        goto out;
    }
    if (json_to_ref(json_array_get(arr, 0), &f->join_ref) != 0 ||
        json_to_ref(json_array_get(arr, 1), &f->ref) != 0) {
        set_err(err, err_size, "%s", "JSON frame refs must be null, integers or strings");
        goto out;
    }
    f->topic = strdup(json_string_value(topic));
    f->event = strdup(json_string_value(event));
    hv_buf_t buf = {0};
    if (!f->topic || !f->event || hv_json_to_msgpack_buf(payload, HV_MP_MAX_DEPTH, &buf) != 0 || !buf.data) {
        hv_buf_free(&buf);
        set_err(err, err_size, "%s", "JSON frame payload could not be converted");
        goto out;
    }
    f->payload = hv_buf_steal(&buf, &f->payload_size);
    rc = 0;
out:
    json_decref(arr);
    if (rc != 0)
        hv_frame_clear(f);
    return rc;
}
