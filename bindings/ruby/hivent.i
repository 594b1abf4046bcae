/*
 * Ruby interface to libhivent: Hivent::Native, a module of functions that
 * lib/hivent/*.rb turns into classes.
 *
 * The core ABI keeps its names (Hivent::Native.hivent_emit_async, ...).
 * Helpers from ext/hivent/rb_glue.h replace the calls that block or that
 * return raw buffers, under names without the hivent_ prefix
 * (Hivent::Native.client_next, event_fields, ...).
 *
 * Typemaps:
 *  - const char *: String or nil; a NUL byte raises ArgumentError naming
 *    the parameter.
 *  - (char *errstr, size_t errstr_size): filled by the core and raised as
 *    a Hivent::Error subclass when the call fails.
 *  - (const void *payload, size_t payload_size) and the memory subset
 *    pairs: a Hash packed to MessagePack by rb_payload.c, the emit
 *    payload into a reused per-thread buffer.
 *  - hivent_err_t results raise unless the call reports through errstr.
 *  - void *msg_opaque: an Integer id, read back by hivent_notice_msg_id().
 */
%module "hivent::native"

%{
#include <stdint.h>
#include <string.h>
#include "rb_glue.h"
#include "rb_payload.h"
%}

%init %{
    hv_rb_payload_init(rb_define_module("Hivent"));
    /* SWIG_InitializeModule, which runs first, defined the class. */
    hv_rb_cClientPointer = rb_const_get(rb_define_module("SWIG"), rb_intern("TYPE_p_hivent_client_s"));
    rb_gc_register_mark_object(hv_rb_cClientPointer);
%}

/* ---- client handles --------------------------------------------- */

%{
/* SWIG::TYPE_p_hivent_client_s, the class of client handles. */
static VALUE hv_rb_cClientPointer = Qnil;
%}

/* SWIG's pointer check looks up the @__swigtype__ instance variable and
 * compares type names on every call.  Only SWIG's NewPointerObj makes
 * T_DATA objects of the handle class (the class has no new, and its
 * allocate makes plain objects), so checking the class is enough; every
 * other object takes SWIG's full check and its TypeError. */
%typemap(in) hivent_client_t *client (void *argp = 0, int res = 0) {
    if (RB_TYPE_P($input, T_DATA) && !RTYPEDDATA_P($input) &&
        rb_obj_class($input) == hv_rb_cClientPointer) {
        $1 = (hivent_client_t *)DATA_PTR($input);
    } else {
        res = SWIG_ConvertPtr($input, &argp, $descriptor, 0);
        if (!SWIG_IsOK(res)) {
            SWIG_exception_fail(SWIG_ArgError(res),
                                Ruby_Format_TypeError("", "hivent_client_t *", "$symname", $argnum, $input));
        }
        $1 = (hivent_client_t *)argp;
    }
}

/* ---- integers --------------------------------------------------- */

/* SWIG's int64_t conversion sets up an exception handler (rb_rescue) on
 * every call.  This one reads a Fixnum directly and packs a Bignum with a
 * range check.  Other types raise TypeError and Integers outside
 * int64_t raise RangeError, as Integer conversions in Ruby do. */
%typemap(in) int64_t version {
    if (FIXNUM_P($input)) {
        $1 = (int64_t)FIX2LONG($input);
    } else if (RB_TYPE_P($input, T_BIGNUM)) {
        uint64_t magnitude = 0;
        int sign = rb_integer_pack($input, &magnitude, 1, sizeof magnitude, 0,
                                   INTEGER_PACK_LSWORD_FIRST | INTEGER_PACK_NATIVE_BYTE_ORDER);
        if (sign == 1 && magnitude <= (uint64_t)INT64_MAX)
            $1 = (int64_t)magnitude;
        else if (sign == -1 && magnitude <= (uint64_t)INT64_MAX + 1)
            $1 = (int64_t)(0 - magnitude);  /* exact down to INT64_MIN */
        else
            rb_raise(rb_eRangeError, "version %" PRIsVALUE " is outside the int64_t range "
                     "(-2**63 to 2**63-1)", $input);
    } else {
        rb_raise(rb_eTypeError, "version must be an Integer, got %s", rb_obj_classname($input));
    }
}

/* ---- strings ---------------------------------------------------- */

%{
/* Returns @value, a String or an object with to_str, as a C string for
 * the parameter @param.  Raises ArgumentError naming @param when the
 * bytes contain a NUL, which would cut the string short in C.  The
 * message leaves the value out because it may be a secret (api_key). */
static char *hv_rb_c_string(VALUE *value, const char *param)
{
    const char *bytes;
    const char *nul;

    StringValue(*value);
    bytes = RSTRING_PTR(*value);
    nul = memchr(bytes, '\0', (size_t)RSTRING_LEN(*value));
    if (nul)
        rb_raise(rb_eArgError, "%s contains a NUL byte at byte %ld; C strings cannot contain one",
                 param, (long)(nul - bytes));
    return StringValueCStr(*value);
}
%}

/* StringValue() may replace $input with the result of to_str, which then
 * stays referenced from $input for the call. */
%typemap(in) const char * {
    $1 = NIL_P($input) ? NULL : hv_rb_c_string(&$input, "$1_name");
}
%typemap(freearg) const char * "";

/* ---- error buffers ---------------------------------------------- */

%typemap(in, numinputs=0) (char *errstr, size_t errstr_size) (char temp[512]) {
    temp[0] = '\0';
    $1 = temp;
    $2 = sizeof temp;
}
%typemap(argout) (char *errstr, size_t errstr_size) {
    int status = HV_RB_STATUS(result);
    if (status != HIVENT_OK)
        hv_rb_raise(status, $1);
}

/* ---- error results ---------------------------------------------- */

/* By default a failed call raises with the core's description. */
%typemap(out) hivent_err_t {
    if ($1 != HIVENT_OK)
        hv_rb_raise((int)$1, NULL);
    $result = Qtrue;
}
/* These report a sentence through errstr; the argout typemap raises. */
%typemap(out) hivent_err_t hivent_conf_set,
              hivent_err_t hivent_conf_load_env,
              hivent_err_t hivent_emit_async "$result = Qtrue;";
/* These return an error code as data. */
%typemap(out) hivent_err_t hivent_notice_err,
              hivent_err_t hivent_version_check "$result = INT2NUM((int)$1);";

/* ---- payloads --------------------------------------------------- */

%define HV_RB_PAYLOAD_TYPEMAP(PTR, SIZE, ROOT)
%typemap(in) (const void *PTR, size_t SIZE) (VALUE packed) {
    packed = NIL_P($input) ? Qnil : hv_rb_pack_map($input, ROOT);
    $1 = NIL_P(packed) ? NULL : (void *)RSTRING_PTR(packed);
    $2 = NIL_P(packed) ? 0 : (size_t)RSTRING_LEN(packed);
}
/* Keeps the packed String alive, and its bytes in place, for the call. */
%typemap(freearg) (const void *PTR, size_t SIZE) "RB_GC_GUARD(packed$argnum);";
%enddef

/* The emit payload packs into the calling thread's reused buffer.  It
 * packs in a check typemap, which SWIG runs after every in typemap, so
 * no to_str or to_int of a later argument runs Ruby code (which could
 * emit and reuse the buffer) before the core copies the bytes. */
%typemap(in) (const void *payload, size_t payload_size) (VALUE source) {
    source = $input;
    $1 = NULL;
    $2 = 0;
}
%typemap(check) (const void *payload, size_t payload_size) {
    if (!NIL_P(source$argnum))
        $1 = (void *)hv_rb_pack_map_reused(source$argnum, "payload", &$2);
}

HV_RB_PAYLOAD_TYPEMAP(payload_subset, payload_subset_size, "payload")
HV_RB_PAYLOAD_TYPEMAP(meta_subset, meta_subset_size, "meta")

%typemap(in) void *msg_opaque {
    $1 = (void *)(uintptr_t)NUM2ULL($input);
}

/* ---- ownership -------------------------------------------------- */

%newobject hivent_event_to_json;
%typemap(newfree) char * "hivent_free($1);";

/* ---- calls replaced by rb_glue.h helpers ------------------------ */

/* They block with the GVL held or hand out raw buffers. */
%ignore hivent_client_next;
%ignore hivent_consumer_next;
%ignore hivent_client_flush;
%ignore hivent_client_destroy;
%ignore hivent_consumer_close;
%ignore hivent_consumer_destroy;
%ignore hivent_emit;
%ignore hivent_event_payload;
%ignore hivent_event_msgpack;
%ignore hivent_conf_get;
%ignore hivent_free;
/* Ruby has its own JSON library; payloads convert straight to and from
 * MessagePack. */
%ignore hivent_json_to_msgpack;
%ignore hivent_msgpack_to_json;

%rename("%(strip:[hv_rb_])s") "";

%include "../swig/hivent_common.i"
%include "rb_glue.h"
