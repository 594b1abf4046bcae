/*
 * Python typemaps for libhivent.  The generated module is hivent.capi, a
 * flat low-level layer; the package hivent builds the public classes on it.
 *
 * Build with `swig -python -threads`: every wrapped C call then runs with
 * the GIL released, so a thread blocked in hivent_client_next(),
 * hivent_emit() or hivent_client_flush() lets other Python threads run.
 * Helpers that build Python objects are marked %nothread.
 *
 * Error reporting: functions returning hivent_err_t raise the exception
 * class that hivent._errors registered for the code, with the sentence the
 * core wrote into its errstr buffer.  Constructors that return NULL raise
 * the base class HiventError.
 */
%module(package="hivent") capi

%{
#include "pyconv.h"

/* errstr buffer of the call in progress.  Per thread, because calls run
 * with the GIL released and several threads may be inside the core. */
static _Thread_local char hv_py_errbuf[512];

/* Replaces a pending UnicodeEncodeError of argument @what with one whose
 * reason names @what, so the caller sees which argument had the lone
 * surrogate.  Other pending exceptions stay as they are. */
static void hv_py_name_encode_error(const char *what)
{
    PyObject *type, *value, *traceback;
    Py_ssize_t start, end;
    PyObject *object;

    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    object = value ? PyUnicodeEncodeError_GetObject(value) : NULL;
    if (!object || PyUnicodeEncodeError_GetStart(value, &start) < 0 ||
        PyUnicodeEncodeError_GetEnd(value, &end) < 0 || start >= PyUnicode_GET_LENGTH(object)) {
        Py_XDECREF(object);
        PyErr_Restore(type, value, traceback);
        return;
    }
    char text[256];
    snprintf(text, sizeof text, "%s contains the lone surrogate U+%04X, which UTF-8 cannot encode",
             what, (unsigned int)PyUnicode_ReadChar(object, start));
    PyObject *reason = PyUnicode_FromString(text);
    if (reason) {
        PyObject *named = PyObject_CallFunction(PyExc_UnicodeEncodeError, "sOnnO", "utf-8",
                                                object, start, end, reason);
        if (named) {
            PyErr_SetObject(PyExc_UnicodeEncodeError, named);
            Py_DECREF(named);
        }
        Py_DECREF(reason);
    }
    Py_DECREF(object);
    if (PyErr_Occurred()) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
    } else {
        PyErr_Restore(type, value, traceback);
    }
}

/* Raises for a failed call and clears the errstr buffer. */
static void hv_py_raise_errbuf(int code)
{
    hv_py_raise(code, hv_py_errbuf);
    hv_py_errbuf[0] = '\0';
}
%}

/* ---- strings in ---- */

/* A str argument passes the UTF-8 form that the str object caches, without
 * SWIG's copy into a malloc()ed buffer.  The argument tuple keeps the str
 * alive for the whole call, also while the GIL is released.  None passes
 * NULL.  A NUL character raises ValueError, because C would see the text
 * cut short. */
%typemap(in) const char * {
    if ($input == Py_None) {
        $1 = NULL;
    } else if (!PyUnicode_Check($input)) {
        PyErr_Format(PyExc_TypeError, "$1_name must be str or None, not %.100s",
                     Py_TYPE($input)->tp_name);
        SWIG_fail;
    } else {
        Py_ssize_t len;
        $1 = (char *)PyUnicode_AsUTF8AndSize($input, &len);
        if (!$1) {
            hv_py_name_encode_error("$1_name");
            SWIG_fail;
        }
        if (strlen($1) != (size_t)len) {
            PyErr_Format(PyExc_ValueError, "$1_name must not contain NUL characters: %R",
                         $input);
            SWIG_fail;
        }
    }
}
%typemap(freearg) const char * "";

/* An event version is any signed 64-bit integer. */
%typemap(in) int64_t version {
    int overflow = 0;
    long long value;

    if (!PyLong_Check($input) || PyBool_Check($input)) {
        PyErr_Format(PyExc_TypeError, "version must be int, not %.100s",
                     Py_TYPE($input)->tp_name);
        SWIG_fail;
    }
    value = PyLong_AsLongLongAndOverflow($input, &overflow);
    if (overflow != 0) {
        PyErr_Format(PyExc_OverflowError,
                     "version must fit in a signed 64-bit integer, not %R", $input);
        SWIG_fail;
    }
    if (value == -1 && PyErr_Occurred())
        SWIG_fail;
    $1 = (int64_t)value;
}

/* ---- errstr buffers ---- */

%typemap(in, numinputs=0) (char *errstr, size_t errstr_size) {
    hv_py_errbuf[0] = '\0';
    $1 = hv_py_errbuf;
    $2 = sizeof hv_py_errbuf;
}

%typemap(out) hivent_err_t {
    if ($1 != HIVENT_OK) {
        hv_py_raise_errbuf($1);
        SWIG_fail;
    }
    hv_py_errbuf[0] = '\0';
    $result = SWIG_Py_Void();
}

/* hivent_notice_err() reports an error code; it does not fail. */
%typemap(out) hivent_err_t hivent_notice_err {
    $result = PyLong_FromLong((long)$1);
}

%typemap(out) hivent_client_t *hivent_client_new, hivent_consumer_t *hivent_consumer_new {
    if (!$1) {
        hv_py_raise_errbuf(0);
        SWIG_fail;
    }
    hv_py_errbuf[0] = '\0';
    $result = SWIG_NewPointerObj(SWIG_as_voidptr($1), $1_descriptor, 0);
}

%typemap(out) int hivent_memory_includes {
    if ($1 < 0) {
        hv_py_raise($1, NULL);
        SWIG_fail;
    }
    $result = PyBool_FromLong($1);
}

/* ---- payloads: Python objects in, MessagePack bytes to the core ---- */

%define HV_PY_PAYLOAD_IN(PTR, SIZE, ROOT)
%typemap(in) (const void *PTR, size_t SIZE) {
    hv_py_packed_t packed;
    if (hv_py_pack($input, ROOT, 1, &packed) < 0)
        SWIG_fail;
    $1 = packed.data;
    $2 = packed.size;
}
%typemap(freearg) (const void *PTR, size_t SIZE) {
    free((void *)$1);
}
%enddef

/* Emit payloads use the calling thread's reused buffer: the core copies
 * the payload into its own frame before hivent_emit() or
 * hivent_emit_async() returns. */
%typemap(in) (const void *payload, size_t payload_size) (hv_py_packed_t packed = {NULL, 0, 0}) {
    if (hv_py_pack_scratch($input, "payload", &packed) < 0)
        SWIG_fail;
    $1 = packed.data;
    $2 = packed.size;
}
%typemap(freearg) (const void *payload, size_t payload_size) {
    hv_py_packed_release(&packed$argnum);
}

HV_PY_PAYLOAD_IN(payload_subset, payload_subset_size, "payload")
HV_PY_PAYLOAD_IN(meta_subset, meta_subset_size, "meta")

/* Raw MessagePack bytes for hivent_msgpack_to_json(). */
%typemap(in) (const void *msgpack, size_t size) (Py_buffer view, int have_view = 0) {
    if (PyObject_GetBuffer($input, &view, PyBUF_CONTIG_RO) != 0)
        SWIG_fail;
    have_view = 1;
    $1 = view.buf;
    $2 = (size_t)view.len;
}
%typemap(freearg) (const void *msgpack, size_t size) {
    if (have_view$argnum)
        PyBuffer_Release(&view$argnum);
}

%typemap(in) (const char *json, size_t json_size) (Py_buffer view, int have_view = 0) {
    if (PyUnicode_Check($input)) {
        Py_ssize_t len;
        $1 = (char *)PyUnicode_AsUTF8AndSize($input, &len);
        if (!$1)
            SWIG_fail;
        $2 = (size_t)len;
    } else {
        if (PyObject_GetBuffer($input, &view, PyBUF_CONTIG_RO) != 0)
            SWIG_fail;
        have_view = 1;
        $1 = view.buf;
        $2 = (size_t)view.len;
    }
}
%typemap(freearg) (const char *json, size_t json_size) {
    if (have_view$argnum)
        PyBuffer_Release(&view$argnum);
}

%typemap(in, numinputs=0) (void **out, size_t *out_size) (void *data = NULL, size_t size = 0) {
    $1 = &data;
    $2 = &size;
}
%typemap(argout) (void **out, size_t *out_size) {
    Py_DECREF($result);
    $result = PyBytes_FromStringAndSize((const char *)*$1, (Py_ssize_t)*$2);
    hivent_free(*$1);
    if (!$result)
        SWIG_fail;
}

/* hivent_event_payload() and hivent_event_msgpack() return bytes. */
%typemap(in, numinputs=0) size_t *size (size_t size = 0) {
    $1 = &size;
}
%typemap(out) const void *hivent_event_payload, const void *hivent_event_msgpack {
    $result = SWIG_Py_Void();
}
%typemap(argout) size_t *size {
    Py_DECREF($result);
    $result = PyBytes_FromStringAndSize((const char *)result, result ? (Py_ssize_t)*$1 : 0);
    if (!$result)
        SWIG_fail;
}

/* hivent_conf_get() returns the value as str. */
%typemap(in, numinputs=0) (char *dest, size_t *dest_size) (char value[4096], size_t size) {
    value[0] = '\0';
    size = sizeof value;
    $1 = value;
    $2 = &size;
}
%typemap(argout) (char *dest, size_t *dest_size) {
    Py_DECREF($result);
    $result = PyUnicode_DecodeUTF8($1, (Py_ssize_t)strnlen($1, sizeof value$argnum),
                                   "surrogateescape");
    if (!$result)
        SWIG_fail;
}

/* ---- events out ---- */

%typemap(in, numinputs=0) hivent_event_t **published (hivent_event_t *event = NULL) {
    $1 = &event;
}
%typemap(argout) hivent_event_t **published {
    PyObject *fields = hv_py_event_fields(*$1);
    hivent_event_destroy(*$1);
    *$1 = NULL;
    if (!fields)
        SWIG_fail;
    Py_DECREF($result);
    $result = fields;
}
%typemap(freearg) hivent_event_t **published {
    if ($1 && *$1)
        hivent_event_destroy(*$1);
}

/* Copies owned by the caller: converted to a field tuple, then freed. */
%typemap(out) hivent_event_t *hivent_memory_at, hivent_event_t *hivent_memory_last {
    $result = hv_py_event_fields($1);
    hivent_event_destroy($1);
    if (!$result)
        SWIG_fail;
}

%newobject hivent_event_to_json;
%newobject hivent_msgpack_to_json;
%typemap(newfree) char * "hivent_free($1);";
%typemap(out) char *hivent_msgpack_to_json {
    if (!$1) {
        hv_py_raise_errbuf(HIVENT_ERR_PAYLOAD);
        SWIG_fail;
    }
    $result = SWIG_FromCharPtr($1);
}

/* The binding passes integer ids as msg_opaque (read back with
 * hivent_notice_msg_id()). */
%typemap(in) void *msg_opaque {
    unsigned long long id = PyLong_AsUnsignedLongLong($input);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        SWIG_fail;
    $1 = (void *)(uintptr_t)id;
}

/* An event returned by hivent_event_dup() would need hivent_event_destroy()
 * from Python; the binding copies events into Python objects instead. */
%ignore hivent_event_dup;

/* hivent_emit_async() only encodes the event and appends it to the send
 * queue under a short mutex; it never waits.  It keeps the GIL: releasing
 * it on every emit handed the GIL to the dispatcher thread once per event,
 * and the emitting thread then waited to get it back. */
%nothread hivent_emit_async;

%include "../swig/hivent_common.i"

/* ---- helpers that build Python objects (need the GIL) ---- */

%{
static PyObject *hv_py_pack_object(PyObject *value)
{
    hv_py_packed_t packed;
    if (hv_py_pack(value, "value", 0, &packed) < 0)
        return NULL;
    PyObject *bytes = PyBytes_FromStringAndSize(packed.data, (Py_ssize_t)packed.size);
    free(packed.data);
    return bytes;
}

static PyObject *hv_py_unpack_object(PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_CONTIG_RO) != 0)
        return NULL;
    PyObject *value = hv_py_unpack(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return value;
}

static PyObject *hv_py_text(const char *s)
{
    return PyUnicode_DecodeUTF8(s ? s : "", s ? (Py_ssize_t)strlen(s) : 0, "replace");
}

static PyObject *hv_py_event_tuple(const hivent_event_t *event)
{
    return hv_py_event_fields(event);
}

/* Returns (type, err, errstr, msg_id, event_fields, state, attempt,
 * next_attempt_ms, log_level, log_facility, log_message). */
static PyObject *notice_fields(const hivent_notice_t *notice, int packed)
{
    if (!notice)
        Py_RETURN_NONE;
    int type = (int)hivent_notice_type(notice);
    PyObject *event = Py_None;
    Py_INCREF(event);
    if (type == HIVENT_NOTICE_DELIVERY || type == HIVENT_NOTICE_EVENT) {
        Py_DECREF(event);
        event = packed ? hv_py_event_fields_packed(hivent_notice_event(notice))
                       : hv_py_event_fields(hivent_notice_event(notice));
        if (!event)
            return NULL;
    }
    const char *errstr = hivent_notice_errstr(notice);
    const char *facility = type == HIVENT_NOTICE_LOG ? hivent_notice_log_facility(notice) : NULL;
    const char *message = type == HIVENT_NOTICE_LOG ? hivent_notice_log_message(notice) : NULL;
    return Py_BuildValue("(iiNKNiiiiNN)", type, (int)hivent_notice_err(notice),
                         hv_py_text(errstr), (unsigned long long)hivent_notice_msg_id(notice),
                         event, (int)hivent_notice_state(notice), hivent_notice_attempt(notice),
                         hivent_notice_next_attempt_ms(notice), hivent_notice_log_level(notice),
                         hv_py_text(facility), hv_py_text(message));
}

static PyObject *hv_py_notice_fields(const hivent_notice_t *notice)
{
    return notice_fields(notice, 0);
}

/* Takes up to @max notices of @client and returns their field tuples as a
 * list, with event payloads left as MessagePack bytes.  Only the wait for the first notice releases the GIL; the others
 * are already queued, so taking them needs no wait, and the dispatcher
 * does not give the GIL away and take it back once per notice.  A notice
 * that cannot be converted (out of memory) raises when it is the first;
 * after the first it is reported as unraisable and the list so far is
 * returned, so the converted ones are not lost. */
static PyObject *hv_py_client_drain(hivent_client_t *client, int timeout_ms, int max)
{
    hivent_notice_t *notice;
    Py_BEGIN_ALLOW_THREADS
    notice = hivent_client_next(client, timeout_ms);
    Py_END_ALLOW_THREADS
    PyObject *list = PyList_New(0);
    if (!list) {
        hivent_notice_destroy(notice);
        return NULL;
    }
    while (notice) {
        PyObject *fields = notice_fields(notice, 1);
        hivent_notice_destroy(notice);
        if (!fields || PyList_Append(list, fields) < 0) {
            Py_XDECREF(fields);
            if (PyList_GET_SIZE(list) == 0) {
                Py_DECREF(list);
                return NULL;
            }
            PyErr_WriteUnraisable(list);
            break;
        }
        Py_DECREF(fields);
        if (PyList_GET_SIZE(list) >= max)
            break;
        notice = hivent_client_next(client, 0);
    }
    return list;
}

static PyObject *hv_py_set_hooks_object(PyObject *error_factory, PyObject *ext_type)
{
    if (hv_py_set_hooks(error_factory, ext_type) < 0)
        return NULL;
    Py_RETURN_NONE;
}
%}

%nothread;
%rename(pack) hv_py_pack_object;
%rename(unpack) hv_py_unpack_object;
%rename(event_fields) hv_py_event_tuple;
%rename(notice_fields) hv_py_notice_fields;
%rename(set_hooks) hv_py_set_hooks_object;
%rename(client_drain) hv_py_client_drain;
PyObject *hv_py_pack_object(PyObject *value);
PyObject *hv_py_unpack_object(PyObject *data);
PyObject *hv_py_event_tuple(const hivent_event_t *event);
PyObject *hv_py_notice_fields(const hivent_notice_t *notice);
PyObject *hv_py_set_hooks_object(PyObject *error_factory, PyObject *ext_type);
PyObject *hv_py_client_drain(hivent_client_t *client, int timeout_ms, int max);
%thread;
