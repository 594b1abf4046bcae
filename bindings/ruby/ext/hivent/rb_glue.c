/* Ruby-side helpers around the core ABI; see rb_glue.h. */
#include "rb_glue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ruby/encoding.h>
#include <ruby/thread.h>

#include "rb_payload.h"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

void hv_rb_raise(int code, const char *message)
{
    VALUE module, base, exc;

    if (!message || !*message)
        message = hivent_err_str(code);
    module = rb_const_get(rb_cObject, rb_intern("Hivent"));
    if (!rb_const_defined_at(module, rb_intern("Error")))
        rb_raise(rb_eRuntimeError, "%s: %s", hivent_err_name(code), message);
    base = rb_const_get_at(module, rb_intern("Error"));
    exc = rb_funcall(base, rb_intern("build"), 2, INT2NUM(code),
                     rb_utf8_str_new_cstr(message));
    rb_exc_raise(exc);
}

int hv_rb_status_of_err(hivent_err_t err)
{
    return (int)err;
}

int hv_rb_status_of_ptr(const void *ptr)
{
    return ptr ? HIVENT_OK : HIVENT_ERR_INVALID_VALUE;
}

/* ------------------------------------------------------------------ */
/* Waiting without the GVL                                             */
/* ------------------------------------------------------------------ */

typedef struct hv_rb_wait {
    hivent_client_t *client;
    hivent_consumer_t *consumer;
    int slice_ms;
    hivent_notice_t *notice;
} hv_rb_wait_t;

static void *next_without_gvl(void *arg)
{
    hv_rb_wait_t *w = arg;

    if (w->client)
        w->notice = hivent_client_next(w->client, w->slice_ms);
    else
        w->notice = hivent_consumer_next(w->consumer, w->slice_ms);
    return NULL;
}

/* The core offers no way to wake a waiting next(), so an interrupt is
 * noticed when the current slice ends. */
static void unblock_nothing(void *arg)
{
    (void)arg;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static hivent_notice_t *wait_for_notice(hv_rb_wait_t *w, int timeout_ms)
{
    int64_t deadline;

    /* A pending notice is taken without releasing the GVL: a release and
     * reacquire costs far more than next() with timeout 0. */
    w->slice_ms = 0;
    next_without_gvl(w);
    if (w->notice || timeout_ms == 0)
        return w->notice;

    deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline < 0 ? HV_RB_WAIT_SLICE_MS : deadline - monotonic_ms();

        if (left < 0)
            left = 0;
        w->slice_ms = left < HV_RB_WAIT_SLICE_MS ? (int)left : HV_RB_WAIT_SLICE_MS;
        w->notice = NULL;
        /* The gvl2 variant returns without raising, so a notice taken
         * just before an interrupt is returned instead of dropped. */
        rb_thread_call_without_gvl2(next_without_gvl, w, unblock_nothing, NULL);
        if (w->notice)
            return w->notice;
        rb_thread_check_ints();
        if (deadline >= 0 && monotonic_ms() >= deadline)
            return NULL;
    }
}

hivent_notice_t *hv_rb_client_next(hivent_client_t *client, int timeout_ms)
{
    hv_rb_wait_t w = { client, NULL, 0, NULL };

    if (!client)
        rb_raise(rb_eArgError, "client is nil");
    return wait_for_notice(&w, timeout_ms);
}

hivent_notice_t *hv_rb_consumer_next(hivent_consumer_t *consumer, int timeout_ms)
{
    hv_rb_wait_t w = { NULL, consumer, 0, NULL };

    if (!consumer)
        rb_raise(rb_eArgError, "consumer is nil");
    return wait_for_notice(&w, timeout_ms);
}

typedef struct hv_rb_close {
    hivent_client_t *client;
    hivent_consumer_t *consumer;
    int timeout_ms;
    hivent_err_t err;
} hv_rb_close_t;

static void *client_destroy_without_gvl(void *arg)
{
    hv_rb_close_t *c = arg;

    if (c->timeout_ms > 0)
        hivent_client_flush(c->client, c->timeout_ms);
    hivent_client_destroy(c->client);
    return NULL;
}

static void *consumer_close_without_gvl(void *arg)
{
    hv_rb_close_t *c = arg;

    c->err = hivent_consumer_close(c->consumer, c->timeout_ms);
    return NULL;
}

static void *consumer_destroy_without_gvl(void *arg)
{
    hivent_consumer_destroy(((hv_rb_close_t *)arg)->consumer);
    return NULL;
}

void hv_rb_client_destroy(hivent_client_t *client, int flush_timeout_ms)
{
    hv_rb_close_t c = { client, NULL, flush_timeout_ms, HIVENT_OK };

    if (client)
        rb_thread_call_without_gvl(client_destroy_without_gvl, &c, unblock_nothing, NULL);
}

hivent_err_t hv_rb_consumer_close(hivent_consumer_t *consumer, int timeout_ms)
{
    hv_rb_close_t c = { NULL, consumer, timeout_ms, HIVENT_OK };

    if (!consumer)
        rb_raise(rb_eArgError, "consumer is nil");
    rb_thread_call_without_gvl(consumer_close_without_gvl, &c, unblock_nothing, NULL);
    return c.err;
}

void hv_rb_consumer_destroy(hivent_consumer_t *consumer)
{
    hv_rb_close_t c = { NULL, consumer, 0, HIVENT_OK };

    if (consumer)
        rb_thread_call_without_gvl(consumer_destroy_without_gvl, &c, unblock_nothing, NULL);
}

/* ------------------------------------------------------------------ */
/* Notices and events as Ruby values                                   */
/* ------------------------------------------------------------------ */

static VALUE string_or_nil(const char *s)
{
    return s ? rb_utf8_str_new_cstr(s) : Qnil;
}

VALUE hv_rb_event_payload(const hivent_event_t *event)
{
    const void *payload;
    size_t size = 0;

    if (!event)
        rb_raise(rb_eArgError, "event is nil");
    payload = hivent_event_payload(event, &size);
    if (!payload || size == 0)
        return rb_hash_new();
    return hv_rb_unpack(payload, size);
}

VALUE hv_rb_event_msgpack(const hivent_event_t *event)
{
    const void *packed;
    size_t size = 0;

    if (!event)
        rb_raise(rb_eArgError, "event is nil");
    packed = hivent_event_msgpack(event, &size);
    if (!packed)
        hv_rb_raise(HIVENT_ERR_NO_MEMORY, "packing the event failed");
    return rb_str_new(packed, (long)size);
}

/* The payload slot holds a Hash, or with @packed its MessagePack bytes as
 * a binary String (an empty Hash when there are none). */
static VALUE event_fields(const hivent_event_t *event, int packed)
{
    VALUE fields;

    if (!event)
        rb_raise(rb_eArgError, "event is nil");
    fields = rb_ary_new_capa(10);
    rb_ary_push(fields, string_or_nil(hivent_event_name(event)));
    if (packed) {
        size_t size = 0;
        const void *payload = hivent_event_payload(event, &size);

        rb_ary_push(fields, payload && size > 0 ? rb_str_new(payload, (long)size) : rb_hash_new());
    } else {
        rb_ary_push(fields, hv_rb_event_payload(event));
    }
    rb_ary_push(fields, LL2NUM(hivent_event_version(event)));
    rb_ary_push(fields, string_or_nil(hivent_event_cid(event)));
    rb_ary_push(fields, string_or_nil(hivent_event_key(event)));
    rb_ary_push(fields, string_or_nil(hivent_event_producer(event)));
    rb_ary_push(fields, string_or_nil(hivent_event_uuid(event)));
    rb_ary_push(fields, string_or_nil(hivent_event_created_at(event)));
    rb_ary_push(fields, string_or_nil(hivent_event_queue(event)));
    rb_ary_push(fields, INT2NUM(hivent_event_partition(event)));
    return fields;
}

VALUE hv_rb_event_fields(const hivent_event_t *event)
{
    return event_fields(event, 0);
}

/* Ids and frozen meta keys for event_object(), created on first use. */
static VALUE event_class = Qnil;
static ID id_name, id_payload, id_packed, id_meta, id_queue, id_partition;
static VALUE meta_keys[6];

static void event_object_init(void)
{
    static const char *const keys[6] = { "version", "cid", "key", "producer", "uuid",
                                         "created_at" };

    id_name = rb_intern("@name");
    id_payload = rb_intern("@payload");
    id_packed = rb_intern("@packed");
    id_meta = rb_intern("@meta");
    id_queue = rb_intern("@queue");
    id_partition = rb_intern("@partition");
    for (int i = 0; i < 6; i++) {
        meta_keys[i] = rb_obj_freeze(rb_utf8_str_new_cstr(keys[i]));
        rb_gc_register_mark_object(meta_keys[i]);
    }
    /* Set last, because a non-nil event_class marks the ids and keys as ready. */
    event_class = rb_path2class("Hivent::Event");
    rb_gc_register_mark_object(event_class);
}

/* Builds a Hivent::Event with the instance variables that
 * Event#load_packed_fields sets, without the fields Array and the Ruby
 * calls.  The payload stays MessagePack bytes in @packed until
 * Event#payload decodes it.  lib/hivent/event.rb must keep these
 * instance variable names. */
static VALUE event_object(const hivent_event_t *event)
{
    VALUE object, meta, pairs[12];
    const void *payload;
    size_t size = 0;
    int partition;

    if (NIL_P(event_class))
        event_object_init();
    object = rb_obj_alloc(event_class);
    rb_ivar_set(object, id_name, string_or_nil(hivent_event_name(event)));
    payload = hivent_event_payload(event, &size);
    if (payload && size > 0) {
        rb_ivar_set(object, id_payload, Qnil);
        rb_ivar_set(object, id_packed, rb_str_new(payload, (long)size));
    } else {
        rb_ivar_set(object, id_payload, rb_hash_new());
        rb_ivar_set(object, id_packed, Qnil);
    }
    pairs[0] = meta_keys[0];
    pairs[1] = LL2NUM(hivent_event_version(event));
    pairs[2] = meta_keys[1];
    pairs[3] = string_or_nil(hivent_event_cid(event));
    pairs[4] = meta_keys[2];
    pairs[5] = string_or_nil(hivent_event_key(event));
    pairs[6] = meta_keys[3];
    pairs[7] = string_or_nil(hivent_event_producer(event));
    pairs[8] = meta_keys[4];
    pairs[9] = string_or_nil(hivent_event_uuid(event));
    pairs[10] = meta_keys[5];
    pairs[11] = string_or_nil(hivent_event_created_at(event));
    meta = rb_hash_new();
    rb_hash_bulk_insert(12, pairs, meta);
    rb_ivar_set(object, id_meta, meta);
    rb_ivar_set(object, id_queue, string_or_nil(hivent_event_queue(event)));
    partition = hivent_event_partition(event);
    rb_ivar_set(object, id_partition, partition < 0 ? Qnil : INT2NUM(partition));
    return object;
}

/* The event slot is nil or depends on @packed.  With 0 it is the Array of
 * event_fields() with a decoded payload, with 1 the same Array with the
 * payload as bytes, and with 2 a Hivent::Event from event_object(). */
static VALUE notice_fields(const hivent_notice_t *notice, int packed)
{
    hivent_notice_type_t type;
    const hivent_event_t *event;
    VALUE values[11];

    if (!notice)
        rb_raise(rb_eArgError, "notice is nil");
    type = hivent_notice_type(notice);
    event = hivent_notice_event(notice);
    for (int i = 0; i < 11; i++)
        values[i] = Qnil;
    values[0] = INT2NUM((int)type);
    values[1] = INT2NUM((int)hivent_notice_err(notice));
    values[2] = string_or_nil(hivent_notice_errstr(notice));
    values[3] = ULL2NUM(type == HIVENT_NOTICE_DELIVERY ? hivent_notice_msg_id(notice) : 0);
    if (event)
        values[4] = packed == 2 ? event_object(event) : event_fields(event, packed);
    if (type == HIVENT_NOTICE_STATE) {
        values[5] = INT2NUM((int)hivent_notice_state(notice));
        values[6] = INT2NUM(hivent_notice_attempt(notice));
        values[7] = INT2NUM(hivent_notice_next_attempt_ms(notice));
    }
    if (type == HIVENT_NOTICE_LOG) {
        values[8] = INT2NUM(hivent_notice_log_level(notice));
        values[9] = string_or_nil(hivent_notice_log_facility(notice));
        values[10] = string_or_nil(hivent_notice_log_message(notice));
    }
    return rb_ary_new_from_values(11, values);
}

VALUE hv_rb_notice_fields(const hivent_notice_t *notice)
{
    return notice_fields(notice, 0);
}

VALUE hv_rb_notice_fields_packed(const hivent_notice_t *notice)
{
    return notice_fields(notice, 1);
}

static VALUE convert_for_drain(VALUE notice)
{
    return notice_fields((const hivent_notice_t *)notice, 2);
}

VALUE hv_rb_client_drain(hivent_client_t *client, int timeout_ms, int max)
{
    hv_rb_wait_t w = { client, NULL, 0, NULL };
    hivent_notice_t *notice;
    VALUE list;

    if (!client)
        rb_raise(rb_eArgError, "client is nil");
    if (max < 1)
        max = 1;
    notice = wait_for_notice(&w, timeout_ms);
    if (!notice)
        return rb_ary_new();
    list = rb_ary_new();
    while (notice) {
        int state = 0;
        VALUE fields = rb_protect(convert_for_drain, (VALUE)notice, &state);

        if (state) {
            VALUE exc = rb_errinfo();

            rb_set_errinfo(Qnil);
            fields = rb_ary_new_from_args(3, exc, INT2NUM((int)hivent_notice_type(notice)),
                                          ULL2NUM(hivent_notice_msg_id(notice)));
        }
        hivent_notice_destroy(notice);
        rb_ary_push(list, fields);
        if (RARRAY_LEN(list) >= max)
            break;
        /* Already queued notices are taken without releasing the GVL. */
        w.slice_ms = 0;
        next_without_gvl(&w);
        notice = w.notice;
    }
    return list;
}

/* ------------------------------------------------------------------ */
/* Configuration and payload helpers                                   */
/* ------------------------------------------------------------------ */

VALUE hv_rb_conf_get(const hivent_conf_t *conf, const char *key)
{
    size_t size = 0;
    hivent_err_t err;
    VALUE out;

    if (!conf || !key)
        rb_raise(rb_eArgError, "configuration and key are required");
    err = hivent_conf_get(conf, key, NULL, &size);
    if (err != HIVENT_OK)
        hv_rb_raise(err, NULL);
    if (size == 0)
        return rb_utf8_str_new("", 0);
    out = rb_str_buf_new((long)size);
    err = hivent_conf_get(conf, key, RSTRING_PTR(out), &size);
    if (err != HIVENT_OK)
        hv_rb_raise(err, NULL);
    rb_str_set_len(out, (long)strnlen(RSTRING_PTR(out), size));
    rb_enc_associate(out, rb_utf8_encoding());
    return out;
}

VALUE hv_rb_payload_pack(VALUE payload)
{
    return hv_rb_pack_map(payload, "payload");
}

VALUE hv_rb_payload_unpack(VALUE bytes)
{
    StringValue(bytes);
    return hv_rb_unpack(RSTRING_PTR(bytes), (size_t)RSTRING_LEN(bytes));
}

VALUE hv_rb_payload_normalize(VALUE payload)
{
    VALUE packed = hv_rb_pack_map(payload, "payload");
    VALUE decoded = hv_rb_unpack(RSTRING_PTR(packed), (size_t)RSTRING_LEN(packed));

    RB_GC_GUARD(packed);
    return decoded;
}
