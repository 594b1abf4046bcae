/*
 * Conversions between Python objects and MessagePack for the hivent
 * extension module.  Every function here needs the GIL.
 */
#ifndef HIVENT_PYCONV_H
#define HIVENT_PYCONV_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>

#include "hivent/hivent.h"

/* Deepest nesting of lists and dicts packed or unpacked; the same limit as
 * the core's MessagePack reader, so anything packed here passes there. */
#define HV_PY_MAX_DEPTH 64

/* Largest per-thread packing buffer kept between calls to
 * hv_py_pack_scratch(); a larger one is freed after use. */
#define HV_PY_SCRATCH_KEEP (256 * 1024)

/* Buffer of packed MessagePack bytes.  Free it with hv_py_packed_release(),
 * or with free(data) when hv_py_pack() filled it. */
typedef struct hv_py_packed {
    char *data;
    size_t size;
    int scratch;  /* data is the calling thread's scratch buffer */
} hv_py_packed_t;

/*
 * Packs @value into @out.  @root names the value in error messages, such as
 * "payload".  With @require_map, @value must be a dict (None gives an empty
 * buffer).  Dict keys must be str and strings must encode as UTF-8.  On
 * failure returns -1 with a Python exception set (TypeError, OverflowError
 * or ValueError naming the field path) and @out empty.
 */
int hv_py_pack(PyObject *value, const char *root, int require_map, hv_py_packed_t *out);

/*
 * Packs the payload map @value (None gives an empty buffer) as hv_py_pack()
 * does, but into a buffer of the calling thread that is reused by the next
 * call, so an emit allocates nothing here.  @out is valid until
 * hv_py_packed_release(), which must come before the next call on this
 * thread; a nested call before that gets a malloc()ed buffer.
 */
int hv_py_pack_scratch(PyObject *value, const char *root, hv_py_packed_t *out);

/* Releases a buffer filled by hv_py_pack() or hv_py_pack_scratch(). */
void hv_py_packed_release(hv_py_packed_t *packed);

/* Unpacks exactly one MessagePack value of @size bytes into a new
 * reference, or returns NULL with ValueError set for malformed input. */
PyObject *hv_py_unpack(const void *data, size_t size);

/*
 * Returns a tuple (name, payload, version, cid, key, producer, uuid,
 * created_at, queue, partition) describing @event, None for NULL, or NULL
 * with an exception set.
 */
PyObject *hv_py_event_fields(const hivent_event_t *event);

/*
 * As hv_py_event_fields(), but a non-empty payload stays MessagePack bytes
 * (a bytes object) for Event.from_packed_fields(), which decodes it when
 * it is first read.
 */
PyObject *hv_py_event_fields_packed(const hivent_event_t *event);

/*
 * Raises the exception class registered for @code with @message (or the
 * core's text for @code when @message is NULL or empty).  Code 0 raises the
 * base class.
 */
void hv_py_raise(int code, const char *message);

/*
 * Registers the Python callables used by this module: @error_factory(code,
 * message) returns the exception instance to raise and @ext_type is the
 * class holding MessagePack extension values (fields code and data).
 */
int hv_py_set_hooks(PyObject *error_factory, PyObject *ext_type);

#endif
