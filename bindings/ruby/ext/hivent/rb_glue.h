/*
 * Helpers that the Ruby interface (hivent.i) wraps beside the core ABI:
 * waiting for notices without the GVL, converting notices and events to
 * Ruby values in one call, and raising Hivent::Error subclasses.
 *
 * Functions declared outside the SWIG guard are wrapped into
 * Hivent::Native under the names given by %rename in hivent.i.
 */
#ifndef HV_RB_GLUE_H
#define HV_RB_GLUE_H

#include <ruby.h>
#include <stddef.h>

#include "hivent/hivent.h"

/* Longest slice spent waiting without the GVL before interrupts (signals,
 * Thread#raise, Thread#kill) are checked. */
#define HV_RB_WAIT_SLICE_MS 100

#ifndef SWIG
/*
 * Raises the Hivent::Error subclass for @code with @message, or with the
 * core's description of @code when @message is NULL or empty.  Falls back
 * to RuntimeError when the Ruby layer has not defined Hivent::Error.
 */
NORETURN(void hv_rb_raise(int code, const char *message));

/* Success test used by the errstr typemap: pointer results fail when
 * NULL (the core wrote its reason to errstr), hivent_err_t results when
 * they are not HIVENT_OK. */
int hv_rb_status_of_err(hivent_err_t err);
int hv_rb_status_of_ptr(const void *ptr);
#define HV_RB_STATUS(result) \
    _Generic((result), hivent_err_t: hv_rb_status_of_err, \
             default: hv_rb_status_of_ptr)(result)
#endif

/*
 * Returns the next notice of @client, waiting up to @timeout_ms (-1: no
 * limit) with the GVL released, or nil.  The wait runs in slices of at most
 * HV_RB_WAIT_SLICE_MS, and Ruby interrupts are processed between slices, so
 * a signal handler or Thread#raise runs within that time.
 */
hivent_notice_t *hv_rb_client_next(hivent_client_t *client, int timeout_ms);

/* Returns the next notice of @consumer, as hv_rb_client_next(). */
hivent_notice_t *hv_rb_consumer_next(hivent_consumer_t *consumer, int timeout_ms);

/*
 * Converts @notice to an Array
 * [type, err, errstr, msg_id, event, state, attempt, next_attempt_ms,
 *  log_level, log_facility, log_message]
 * where event is nil or an Array as from hv_rb_event_fields().
 */
VALUE hv_rb_notice_fields(const hivent_notice_t *notice);

/*
 * As hv_rb_notice_fields(), but the payload of the event stays MessagePack
 * bytes (a binary String; an empty Hash when the payload is empty), for
 * Event.from_packed_fields, which decodes it when it is first read.
 */
VALUE hv_rb_notice_fields_packed(const hivent_notice_t *notice);

/*
 * Takes up to @max notices of @client, waiting for the first as
 * hv_rb_client_next() does, and returns an Array with one entry per
 * notice: an Array as from hv_rb_notice_fields_packed() but with a
 * Hivent::Event (payload decoded on first read) or nil in the event slot,
 * or [exception, type, msg_id] for a notice that could not be converted.
 * The notices are freed.  An empty Array means none arrived in time.
 * One call per batch saves a wrapped pointer object and two method calls
 * per notice.
 */
VALUE hv_rb_client_drain(hivent_client_t *client, int timeout_ms, int max);

/*
 * Converts @event to an Array
 * [name, payload, version, cid, key, producer, uuid, created_at, queue,
 *  partition] with payload a Hash and missing strings as nil.
 */
VALUE hv_rb_event_fields(const hivent_event_t *event);

/* Returns the payload of @event as a Ruby Hash. */
VALUE hv_rb_event_payload(const hivent_event_t *event);

/* Returns the whole event {name, payload, meta} as MessagePack bytes. */
VALUE hv_rb_event_msgpack(const hivent_event_t *event);

/* Returns the value of configuration @key as a String. */
VALUE hv_rb_conf_get(const hivent_conf_t *conf, const char *key);

/* Destroys @client with the GVL released, after waiting up to
 * @flush_timeout_ms for outstanding emits (0: no wait).  The Ruby layer
 * creates clients with the core's flush_timeout at 0, so this wait is the
 * only one. */
void hv_rb_client_destroy(hivent_client_t *client, int flush_timeout_ms);

/* Closes @consumer with the GVL released, waiting up to @timeout_ms. */
hivent_err_t hv_rb_consumer_close(hivent_consumer_t *consumer, int timeout_ms);

/* Destroys @consumer with the GVL released. */
void hv_rb_consumer_destroy(hivent_consumer_t *consumer);

/* Packs a Hash as a MessagePack map; returns the bytes as a binary String. */
VALUE hv_rb_payload_pack(VALUE payload);

/* Decodes one MessagePack value from a String of bytes. */
VALUE hv_rb_payload_unpack(VALUE bytes);

/* Packs @payload and decodes it again, which gives the form a consumer
 * receives: String keys, Symbols as Strings. */
VALUE hv_rb_payload_normalize(VALUE payload);

#endif
