/*
 * Python <-> MessagePack conversion for payloads, and event and error
 * helpers for the SWIG wrapper.
 *
 * Packing supports dict, list, tuple, str, bytes, bytearray, memoryview,
 * int (-2**63 .. 2**64-1), float, bool, None and hivent.ExtType.  Payloads
 * are maps with string keys, as in JSON, so dict keys must be str.  Strings
 * must be encodable as UTF-8: a lone surrogate raises ValueError.
 *
 * Unpacking accepts what other producers may send: map keys of any type
 * (arrays become tuples), and strings with invalid UTF-8, decoded with the
 * surrogateescape handler.  Such values do not pack back.  Unpacking
 * checks every length against the input before reading or allocating.
 */
#include "pyconv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

static PyObject *error_factory;  /* callable(code, message) -> exception */
static PyObject *ext_type;       /* class ExtType(code, data) */

int hv_py_set_hooks(PyObject *factory, PyObject *ext)
{
    if (!PyCallable_Check(factory) || !PyType_Check(ext)) {
        PyErr_SetString(PyExc_TypeError,
                        "set_hooks() expects a callable and a class");
        return -1;
    }
    Py_INCREF(factory);
    Py_XSETREF(error_factory, factory);
    Py_INCREF(ext);
    Py_XSETREF(ext_type, ext);
    return 0;
}

void hv_py_raise(int code, const char *message)
{
    if (!message || !*message)
        message = hivent_err_str(code);
    if (!error_factory) {
        PyErr_Format(PyExc_RuntimeError, "%s (%s)", message, hivent_err_name(code));
        return;
    }
    PyObject *exc = PyObject_CallFunction(error_factory, "is", code, message);
    if (!exc)
        return;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/* ---- field paths for error messages ---- */

typedef struct hv_py_path {
    const struct hv_py_path *parent;
    const char *root;   /* set on the root element only */
    PyObject *key;      /* dict key (borrowed), or NULL for a list index */
    Py_ssize_t index;
} hv_py_path_t;

/* Returns 1 when @text encodes as UTF-8 (no lone surrogates), else 0. */
static int is_utf8_text(PyObject *text)
{
    if (PyUnicode_AsUTF8AndSize(text, NULL))
        return 1;
    PyErr_Clear();
    return 0;
}

/* Returns the path as text such as payload["a"][2], or NULL.  Keys that are
 * not str, or hold lone surrogates, appear as their repr(). */
static PyObject *path_string(const hv_py_path_t *path)
{
    const hv_py_path_t *chain[HV_PY_MAX_DEPTH + 4];
    int n = 0;

    for (const hv_py_path_t *p = path; p && n < (int)(sizeof chain / sizeof *chain); p = p->parent)
        chain[n++] = p;

    PyObject *text = PyUnicode_FromString(chain[n - 1]->root ? chain[n - 1]->root : "value");
    for (int i = n - 2; i >= 0 && text; i--) {
        PyObject *part;
        if (!chain[i]->key)
            part = PyUnicode_FromFormat("[%zd]", chain[i]->index);
        else if (PyUnicode_Check(chain[i]->key) && is_utf8_text(chain[i]->key))
            part = PyUnicode_FromFormat("[\"%U\"]", chain[i]->key);
        else
            part = PyUnicode_FromFormat("[%R]", chain[i]->key);
        if (!part) {
            Py_CLEAR(text);
            break;
        }
        PyObject *joined = PyUnicode_Concat(text, part);
        Py_DECREF(part);
        Py_SETREF(text, joined);
    }
    return text;
}

/* Sets @exc_type with "PATH: MESSAGE" and returns -1. */
static int fail_at(PyObject *exc_type, const hv_py_path_t *path, const char *message)
{
    PyObject *where = path_string(path);
    if (where) {
        PyErr_Format(exc_type, "%U: %s", where, message);
        Py_DECREF(where);
    }
    return -1;
}

static int fail_type(const hv_py_path_t *path, PyObject *value)
{
    char message[256];
    snprintf(message, sizeof message,
             "cannot convert a value of type %.100s to MessagePack (supported: "
             "dict, list, tuple, str, bytes, int, float, bool, None)",
             Py_TYPE(value)->tp_name);
    return fail_at(PyExc_TypeError, path, message);
}

/* ---- packing ---- */

static int pack_value(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path, int depth);

static int pack_result(int rc)
{
    if (rc != 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int pack_int(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);

    if (overflow == 0) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        return pack_result(msgpack_pack_int64(pk, (int64_t)v));
    }
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(value);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
            return pack_result(msgpack_pack_uint64(pk, (uint64_t)u));
        PyErr_Clear();
    }
    return fail_at(PyExc_OverflowError, path,
                   "integer out of the MessagePack range -2**63 .. 2**64-1");
}

/* Sets ValueError naming the first surrogate code point of @value and returns -1. */
static int fail_surrogate(PyObject *value, const hv_py_path_t *path)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    Py_ssize_t index = 0;
    Py_UCS4 code = 0;
    char message[256];

    for (; index < length; index++) {
        code = PyUnicode_READ_CHAR(value, index);
        if (code >= 0xD800 && code <= 0xDFFF)
            break;
    }
    snprintf(message, sizeof message,
             "string contains the lone surrogate U+%04X at index %zd, which UTF-8 cannot "
             "encode; payload strings must be valid Unicode text (pass bytes for binary data)",
             (unsigned)code, index);
    return fail_at(PyExc_ValueError, path, message);
}

static int pack_str(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path)
{
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(value, &size);

    if (!utf8) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        return fail_surrogate(value, path);
    }
    if (msgpack_pack_str(pk, (size_t)size) != 0)
        return pack_result(-1);
    return pack_result(msgpack_pack_str_body(pk, utf8, (size_t)size));
}

static int pack_buffer(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path)
{
    Py_buffer view;

    if (PyObject_GetBuffer(value, &view, PyBUF_CONTIG_RO) != 0) {
        PyErr_Clear();
        return fail_at(PyExc_TypeError, path, "binary value is not a contiguous buffer");
    }
    int rc = -1;
    if ((unsigned long long)view.len <= UINT32_MAX) {
        rc = msgpack_pack_bin(pk, (size_t)view.len);
        if (rc == 0)
            rc = msgpack_pack_bin_body(pk, view.buf, (size_t)view.len);
        rc = pack_result(rc);
    } else {
        rc = fail_at(PyExc_ValueError, path, "binary value longer than 2**32-1 bytes");
    }
    PyBuffer_Release(&view);
    return rc;
}

static int pack_ext(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path)
{
    PyObject *code = PyObject_GetAttrString(value, "code");
    PyObject *data = code ? PyObject_GetAttrString(value, "data") : NULL;
    int rc = -1;

    if (!code || !data)
        goto done;
    long type = PyLong_AsLong(code);
    if (type == -1 && PyErr_Occurred())
        goto done;
    if (type < -128 || type > 127 || !PyBytes_Check(data)) {
        rc = fail_at(PyExc_ValueError, path, "ExtType needs a code in -128..127 and bytes data");
        goto done;
    }
    rc = pack_result(msgpack_pack_ext_with_body(pk, PyBytes_AS_STRING(data),
                                                (size_t)PyBytes_GET_SIZE(data), (int8_t)type));
done:
    Py_XDECREF(code);
    Py_XDECREF(data);
    return rc;
}

static int pack_dict(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path, int depth)
{
    Py_ssize_t size = PyDict_GET_SIZE(value);
    Py_ssize_t pos = 0;
    PyObject *key, *item;

    if ((unsigned long long)size > UINT32_MAX)
        return fail_at(PyExc_ValueError, path, "dict has more than 2**32-1 items");
    if (pack_result(msgpack_pack_map(pk, (size_t)size)) < 0)
        return -1;
    /* Nothing below runs Python code on the dict, so it cannot change size
     * while it is iterated. */
    while (PyDict_Next(value, &pos, &key, &item)) {
        hv_py_path_t child = {path, NULL, key, 0};
        if (!PyUnicode_Check(key)) {
            char message[200];
            snprintf(message, sizeof message,
                     "dict key must be str, not %.100s (payload maps have string keys, "
                     "as in JSON)", Py_TYPE(key)->tp_name);
            return fail_at(PyExc_TypeError, &child, message);
        }
        if (pack_str(pk, key, &child) < 0)
            return -1;
        if (pack_value(pk, item, &child, depth + 1) < 0)
            return -1;
    }
    return 0;
}

static int pack_sequence(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path, int depth)
{
    Py_ssize_t size = PySequence_Fast_GET_SIZE(value);
    PyObject **items = PySequence_Fast_ITEMS(value);

    if ((unsigned long long)size > UINT32_MAX)
        return fail_at(PyExc_ValueError, path, "sequence has more than 2**32-1 items");
    if (pack_result(msgpack_pack_array(pk, (size_t)size)) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < size; i++) {
        hv_py_path_t child = {path, NULL, NULL, i};
        if (pack_value(pk, items[i], &child, depth + 1) < 0)
            return -1;
    }
    return 0;
}

static int pack_value(msgpack_packer *pk, PyObject *value, const hv_py_path_t *path, int depth)
{
    if (depth > HV_PY_MAX_DEPTH)
        return fail_at(PyExc_ValueError, path,
                       "nesting deeper than 64 levels (or a container that contains itself)");
    if (value == Py_None)
        return pack_result(msgpack_pack_nil(pk));
    if (value == Py_True)
        return pack_result(msgpack_pack_true(pk));
    if (value == Py_False)
        return pack_result(msgpack_pack_false(pk));
    if (PyLong_Check(value))
        return pack_int(pk, value, path);
    if (PyFloat_Check(value))
        return pack_result(msgpack_pack_double(pk, PyFloat_AsDouble(value)));
    if (PyUnicode_Check(value))
        return pack_str(pk, value, path);
    if (PyDict_Check(value))
        return pack_dict(pk, value, path, depth);
    if (PyList_Check(value) || PyTuple_Check(value))
        return pack_sequence(pk, value, path, depth);
    if (PyBytes_Check(value) || PyByteArray_Check(value) || PyMemoryView_Check(value))
        return pack_buffer(pk, value, path);
    if (ext_type && PyObject_TypeCheck(value, (PyTypeObject *)ext_type))
        return pack_ext(pk, value, path);
    return fail_type(path, value);
}

/* Checks @value against @require_map; returns 1 when there is something to
 * pack, 0 for None as a map (an empty buffer), -1 with TypeError set. */
static int check_root(PyObject *value, const char *root, int require_map)
{
    if (require_map && value == Py_None)
        return 0;
    if (require_map && !PyDict_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict, not %.100s", root,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    return 1;
}

int hv_py_pack(PyObject *value, const char *root, int require_map, hv_py_packed_t *out)
{
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    hv_py_path_t path = {NULL, root, NULL, 0};

    out->data = NULL;
    out->size = 0;
    out->scratch = 0;
    int rc = check_root(value, root, require_map);
    if (rc <= 0)
        return rc;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    if (pack_value(&pk, value, &path, 0) < 0) {
        msgpack_sbuffer_destroy(&sbuf);
        return -1;
    }
    out->data = sbuf.data;
    out->size = sbuf.size;
    return 0;
}

/* Per-thread packing buffer of hv_py_pack_scratch().  msgpack_sbuffer
 * allocates 8 KiB on its first write, so a fresh buffer per emit cost one
 * malloc() and free() of 8 KiB per event.  In glibc a request of that size
 * first consolidates the fast bins. */
static _Thread_local msgpack_sbuffer scratch;
static _Thread_local int scratch_in_use;

/* Ends the use of the scratch buffer, freeing it when a large payload grew
 * it beyond HV_PY_SCRATCH_KEEP. */
static void scratch_done(void)
{
    if (scratch.alloc > HV_PY_SCRATCH_KEEP) {
        free(scratch.data);
        memset(&scratch, 0, sizeof scratch);
    }
    scratch_in_use = 0;
}

int hv_py_pack_scratch(PyObject *value, const char *root, hv_py_packed_t *out)
{
    msgpack_packer pk;
    hv_py_path_t path = {NULL, root, NULL, 0};

    out->data = NULL;
    out->size = 0;
    out->scratch = 0;
    /* A finalizer run by an allocation while packing could emit again on
     * this thread; that nested call gets a buffer of its own. */
    if (scratch_in_use)
        return hv_py_pack(value, root, 1, out);
    int rc = check_root(value, root, 1);
    if (rc <= 0)
        return rc;
    scratch.size = 0;
    scratch_in_use = 1;
    msgpack_packer_init(&pk, &scratch, msgpack_sbuffer_write);
    if (pack_value(&pk, value, &path, 0) < 0) {
        scratch_done();
        return -1;
    }
    out->data = scratch.data;
    out->size = scratch.size;
    out->scratch = 1;
    return 0;
}

void hv_py_packed_release(hv_py_packed_t *packed)
{
    if (packed->scratch)
        scratch_done();
    else
        free(packed->data);
    packed->data = NULL;
    packed->size = 0;
    packed->scratch = 0;
}

/* ---- unpacking ---- */

typedef struct reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
} reader_t;

static PyObject *unpack_fail(const reader_t *r, const char *what)
{
    PyErr_Format(PyExc_ValueError, "invalid MessagePack at byte %zu of %zu: %s", r->pos, r->len,
                 what);
    return NULL;
}

/* Reads an unsigned big-endian integer of @n bytes into @out; returns 0 or -1. */
static int read_uint(reader_t *r, size_t n, uint64_t *out)
{
    if (r->len - r->pos < n)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[r->pos + i];
    r->pos += n;
    *out = v;
    return 0;
}

static PyObject *read_value(reader_t *r, int depth);

static PyObject *read_bytes_object(reader_t *r, uint64_t size, int kind)
{
    if (size > r->len - r->pos)
        return unpack_fail(r, "string or binary length exceeds the input");
    const char *start = (const char *)r->p + r->pos;
    r->pos += (size_t)size;
    if (kind == 's')
        return PyUnicode_DecodeUTF8(start, (Py_ssize_t)size, "surrogateescape");
    return PyBytes_FromStringAndSize(start, (Py_ssize_t)size);
}

static PyObject *read_ext(reader_t *r, uint64_t size)
{
    if (r->len - r->pos < 1 || size > r->len - r->pos - 1)
        return unpack_fail(r, "extension length exceeds the input");
    int code = (int8_t)r->p[r->pos++];
    PyObject *data = read_bytes_object(r, size, 'b');
    if (!data)
        return NULL;
    if (!ext_type) {
        PyObject *tuple = Py_BuildValue("(iN)", code, data);
        return tuple;
    }
    return PyObject_CallFunction(ext_type, "iN", code, data);
}

static PyObject *read_array(reader_t *r, uint64_t count, int depth)
{
    /* Every element takes at least one byte. */
    if (count > r->len - r->pos)
        return unpack_fail(r, "array length exceeds the input");
    PyObject *list = PyList_New((Py_ssize_t)count);
    if (!list)
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        PyObject *item = read_value(r, depth + 1);
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *read_map(reader_t *r, uint64_t count, int depth)
{
    /* Every pair takes at least two bytes. */
    if (count > (r->len - r->pos) / 2)
        return unpack_fail(r, "map length exceeds the input");
    PyObject *dict = PyDict_New();
    if (!dict)
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        PyObject *key = read_value(r, depth + 1);
        if (!key)
            goto fail;
        if (PyList_Check(key)) {
            PyObject *tuple = PyList_AsTuple(key);
            Py_SETREF(key, tuple);
            if (!key)
                goto fail;
        }
        if (PyObject_Hash(key) == -1) {
            PyErr_Clear();
            char what[128];
            snprintf(what, sizeof what, "map key of type %.60s is not hashable",
                     Py_TYPE(key)->tp_name);
            Py_DECREF(key);
            unpack_fail(r, what);
            goto fail;
        }
        PyObject *item = read_value(r, depth + 1);
        if (!item) {
            Py_DECREF(key);
            goto fail;
        }
        int rc = PyDict_SetItem(dict, key, item);
        Py_DECREF(key);
        Py_DECREF(item);
        if (rc < 0)
            goto fail;
    }
    return dict;
fail:
    Py_DECREF(dict);
    return NULL;
}

static PyObject *read_float(reader_t *r, size_t n)
{
    uint64_t bits;
    if (read_uint(r, n, &bits) < 0)
        return unpack_fail(r, "truncated float");
    if (n == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        return PyFloat_FromDouble((double)f);
    }
    double d;
    memcpy(&d, &bits, sizeof d);
    return PyFloat_FromDouble(d);
}

static PyObject *read_signed(reader_t *r, size_t n)
{
    uint64_t bits;
    if (read_uint(r, n, &bits) < 0)
        return unpack_fail(r, "truncated integer");
    int64_t v;
    switch (n) {
    case 1: v = (int8_t)bits; break;
    case 2: v = (int16_t)bits; break;
    case 4: v = (int32_t)bits; break;
    default: v = (int64_t)bits; break;
    }
    return PyLong_FromLongLong(v);
}

/* Reads a length field of @n bytes and then the value it announces. */
static PyObject *read_sized(reader_t *r, size_t n, int kind, int depth)
{
    uint64_t size;
    if (read_uint(r, n, &size) < 0)
        return unpack_fail(r, "truncated length");
    switch (kind) {
    case 'a': return read_array(r, size, depth);
    case 'm': return read_map(r, size, depth);
    case 'e': return read_ext(r, size);
    default: return read_bytes_object(r, size, kind);
    }
}

static PyObject *read_value(reader_t *r, int depth)
{
    if (depth > HV_PY_MAX_DEPTH)
        return unpack_fail(r, "nesting deeper than 64 levels");
    if (r->pos >= r->len)
        return unpack_fail(r, "truncated input");

    unsigned char b = r->p[r->pos++];
    uint64_t u;

    if (b <= 0x7f)
        return PyLong_FromLong(b);
    if (b >= 0xe0)
        return PyLong_FromLong((int8_t)b);
    if ((b & 0xf0) == 0x80)
        return read_map(r, b & 0x0f, depth);
    if ((b & 0xf0) == 0x90)
        return read_array(r, b & 0x0f, depth);
    if ((b & 0xe0) == 0xa0)
        return read_bytes_object(r, b & 0x1f, 's');

    switch (b) {
    case 0xc0: Py_RETURN_NONE;
    case 0xc2: Py_RETURN_FALSE;
    case 0xc3: Py_RETURN_TRUE;
    case 0xc4: return read_sized(r, 1, 'b', depth);
    case 0xc5: return read_sized(r, 2, 'b', depth);
    case 0xc6: return read_sized(r, 4, 'b', depth);
    case 0xc7: return read_sized(r, 1, 'e', depth);
    case 0xc8: return read_sized(r, 2, 'e', depth);
    case 0xc9: return read_sized(r, 4, 'e', depth);
    case 0xca: return read_float(r, 4);
    case 0xcb: return read_float(r, 8);
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (read_uint(r, (size_t)1 << (b - 0xcc), &u) < 0)
            return unpack_fail(r, "truncated integer");
        return PyLong_FromUnsignedLongLong(u);
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return read_signed(r, (size_t)1 << (b - 0xd0));
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return read_ext(r, (uint64_t)1 << (b - 0xd4));
    case 0xd9: return read_sized(r, 1, 's', depth);
    case 0xda: return read_sized(r, 2, 's', depth);
    case 0xdb: return read_sized(r, 4, 's', depth);
    case 0xdc: return read_sized(r, 2, 'a', depth);
    case 0xdd: return read_sized(r, 4, 'a', depth);
    case 0xde: return read_sized(r, 2, 'm', depth);
    case 0xdf: return read_sized(r, 4, 'm', depth);
    default:
        r->pos--;
        return unpack_fail(r, "reserved type byte 0xc1");
    }
}

PyObject *hv_py_unpack(const void *data, size_t size)
{
    reader_t r = {data, size, 0};

    if (!data && size > 0) {
        PyErr_SetString(PyExc_ValueError, "invalid MessagePack: NULL buffer");
        return NULL;
    }
    PyObject *value = read_value(&r, 0);
    if (value && r.pos != r.len) {
        Py_DECREF(value);
        return unpack_fail(&r, "trailing bytes after the value");
    }
    return value;
}

/* ---- events ---- */

static PyObject *text_or_none(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static PyObject *event_fields(const hivent_event_t *event, int packed)
{
    size_t size = 0;

    if (!event)
        Py_RETURN_NONE;
    const void *payload = hivent_event_payload(event, &size);
    PyObject *payload_obj;
    if (!payload || size == 0)
        payload_obj = PyDict_New();
    else if (packed)
        payload_obj = PyBytes_FromStringAndSize(payload, (Py_ssize_t)size);
    else
        payload_obj = hv_py_unpack(payload, size);
    if (!payload_obj)
        return NULL;
    return Py_BuildValue("(NNLNNNNNNi)",
                         text_or_none(hivent_event_name(event)), payload_obj,
                         (long long)hivent_event_version(event),
                         text_or_none(hivent_event_cid(event)),
                         text_or_none(hivent_event_key(event)),
                         text_or_none(hivent_event_producer(event)),
                         text_or_none(hivent_event_uuid(event)),
                         text_or_none(hivent_event_created_at(event)),
                         text_or_none(hivent_event_queue(event)),
                         hivent_event_partition(event));
}

PyObject *hv_py_event_fields(const hivent_event_t *event)
{
    return event_fields(event, 0);
}

PyObject *hv_py_event_fields_packed(const hivent_event_t *event)
{
    return event_fields(event, 1);
}
