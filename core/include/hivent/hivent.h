/*
 * libhivent: C client for the Hivent event bus.
 *
 * Thread rules, stated once for the whole ABI:
 *  - Every function is safe to call from any thread unless its comment says
 *    otherwise.  Tags used below: [any thread], [poll thread] (the thread
 *    that calls the poll or next function of that handle), [not concurrent]
 *    (callers must not call it concurrently on the same handle).
 *  - The library runs one background I/O thread per client and per
 *    consumer.  That thread never calls application code: every callback
 *    runs inside hivent_client_poll() or hivent_consumer_poll() on the
 *    calling thread.
 *  - Two handles share nothing, except that every handle using the memory
 *    transport (server.host = "memory") in one process shares one in-process
 *    bus.
 *
 * Ownership rules: a function that takes a hivent_conf_t pointer and says
 * "takes ownership" frees it on success and leaves it with the caller on
 * failure.  Strings and buffers returned by getters live as long as the
 * object they were read from.  Memory returned with "free with
 * hivent_free()" belongs to the caller.
 */
#ifndef HIVENT_HIVENT_H
#define HIVENT_HIVENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(HIVENT_BUILDING) && defined(__GNUC__)
#define HIVENT_API __attribute__((visibility("default")))
#else
#define HIVENT_API
#endif

/**
 * @defgroup version Versions
 * @{
 */

/** Library version as 0xMMmmpp (major, minor, patch). */
#define HIVENT_VERSION 0x000100
/** Library version as a string. */
#define HIVENT_VERSION_STR "0.1.0"

/** Returns the runtime library version as 0xMMmmpp. [any thread] */
HIVENT_API int hivent_version(void);

/** Returns the runtime library version as a string. [any thread] */
HIVENT_API const char *hivent_version_str(void);

/**
 * Checks that the loaded library can serve a program compiled against
 * header version @p compiled (pass HIVENT_VERSION).  Returns HIVENT_OK or
 * HIVENT_ERR_VERSION_MISMATCH when the major versions differ or the library
 * is older than the header. [any thread]
 */
HIVENT_API int hivent_version_check(int compiled);

/** @} */

/**
 * @defgroup errors Error codes
 *
 * Zero is success.  Local errors are negative; errors reported by the
 * server are positive.
 * @{
 */
typedef enum hivent_err_e {
    HIVENT_OK = 0,

    /* Local errors. */
    HIVENT_ERR_INVALID_ARG = -1,      /**< an argument is NULL, empty or malformed */
    HIVENT_ERR_NO_MEMORY = -2,        /**< an allocation failed */
    HIVENT_ERR_UNKNOWN_KEY = -3,      /**< configuration key not known */
    HIVENT_ERR_INVALID_VALUE = -4,    /**< configuration value not accepted */
    HIVENT_ERR_TIMED_OUT = -5,        /**< no reply or result within the timeout */
    HIVENT_ERR_QUEUE_FULL = -6,       /**< outbound buffer limit reached */
    HIVENT_ERR_FAILED = -7,           /**< reconnect attempts used up; handle is in the failed state */
    HIVENT_ERR_DESTROYED = -8,        /**< handle destroyed before the request completed */
    HIVENT_ERR_FORKED = -9,           /**< handle was inherited across fork() */
    HIVENT_ERR_CONNECTION = -10,      /**< connection lost or closed */
    HIVENT_ERR_RESOLVE = -11,         /**< server host name lookup failed */
    HIVENT_ERR_REFUSED = -12,         /**< server refused the TCP connection */
    HIVENT_ERR_TLS = -13,             /**< TLS handshake or certificate verification failed */
    HIVENT_ERR_AUTH = -14,            /**< server rejected the API key (HTTP 403) */
    HIVENT_ERR_PROTOCOL = -15,        /**< malformed frame or unexpected message */
    HIVENT_ERR_PAYLOAD = -16,         /**< payload is not a valid MessagePack or JSON map */
    HIVENT_ERR_VERSION_MISMATCH = -17,/**< library and header versions are incompatible */
    HIVENT_ERR_STATE = -18,           /**< operation not valid in the handle's current state */
    HIVENT_ERR_TOO_LARGE = -19,       /**< frame exceeds max_frame_size */

    /* Errors reported by the server. */
    HIVENT_ERR_REJECTED = 1,          /**< server answered a request with an error reply */
    HIVENT_ERR_JOIN_REJECTED = 2      /**< server refused to join a channel */
} hivent_err_t;

/** Returns the symbolic name of @p err, such as "HIVENT_ERR_TIMED_OUT". [any thread] */
HIVENT_API const char *hivent_err_name(int err);

/** Returns a one-line English description of @p err. [any thread] */
HIVENT_API const char *hivent_err_str(int err);

/**
 * Returns the number of error codes; with hivent_err_code_at() it lets a
 * binding generate one exception class per code. [any thread]
 */
HIVENT_API int hivent_err_count(void);

/** Returns the @p i th error code (0 <= i < hivent_err_count()), or 0. [any thread] */
HIVENT_API int hivent_err_code_at(int i);

/** @} */

/**
 * @defgroup memory Memory helpers
 * @{
 */

/** Frees memory that this library returned with "free with hivent_free()". */
HIVENT_API void hivent_free(void *ptr);

/**
 * Converts JSON text to MessagePack.  On success stores a buffer in @p out
 * (free with hivent_free()) and its size in @p out_size.  Integers keep 64
 * bits.  Returns HIVENT_ERR_PAYLOAD with a message in @p errstr for invalid
 * JSON or invalid UTF-8. [any thread]
 */
HIVENT_API hivent_err_t hivent_json_to_msgpack(const char *json, size_t json_size,
                                               void **out, size_t *out_size,
                                               char *errstr, size_t errstr_size);

/**
 * Converts MessagePack bytes to compact JSON text.  Binary strings become
 * base64 text; map keys that are not strings become their JSON text.
 * Returns a NUL-terminated string (free with hivent_free()) or NULL with a
 * message in @p errstr. [any thread]
 */
HIVENT_API char *hivent_msgpack_to_json(const void *msgpack, size_t size,
                                        char *errstr, size_t errstr_size);

/** @} */

/**
 * @defgroup conf Configuration
 *
 * Options are set by string key.  Keys, defaults and units:
 *
 * | key                        | default     | meaning |
 * |----------------------------|-------------|---------|
 * | client_id                  | hostname    | meta.producer of emitted events |
 * | server.host                | 127.0.0.1   | server host; "memory" selects the in-process transport |
 * | server.port                | 4000        | server TCP port |
 * | server.secure              | false       | use wss (TLS) instead of ws |
 * | server.api_key             | (empty)     | API key sent on every connection (up to 512 bytes) |
 * | max_reconnect_tries        | 3           | consecutive failed attempts before the failed state; -1 = forever |
 * | reconnect_backoff_time     | 1000 ms     | base of the exponential reconnect delay |
 * | reconnect_backoff_max      | 30000 ms    | cap of the reconnect delay |
 * | reconnect_jitter           | 20 %        | random part of each delay, 0 to 100 |
 * | heartbeat_interval         | 30000 ms    | heartbeat period; 0 disables heartbeats |
 * | request_timeout            | 10000 ms    | time an emit or join waits for its reply |
 * | connect_timeout            | 10000 ms    | time a connection attempt may take |
 * | tls.ca_file                | (system)    | PEM file of trusted CAs for wss |
 * | tls.verify                 | true        | verify the certificate chain and host name |
 * | max_frame_size             | 16777216 B  | largest frame sent or accepted, after inflating |
 * | queue.max_events           | 100000      | emits buffered or awaiting a reply |
 * | queue.max_bytes            | 268435456 B | bytes of emits buffered or awaiting a reply |
 * | flush_timeout              | 5000 ms     | how long destroy waits for outstanding emits |
 * | gzip                       | true        | ask the server to gzip frames of 1024 bytes and more |
 * | log_level                  | info        | debug, info, notice, warning, error, or 0 to 7 |
 * | log.queue                  | false       | deliver logs as notices instead of writing to stderr |
 * | consumer.name              | HOST:PID    | instance name sent to the server |
 * | consumer.ack               | true        | request acknowledgements (at-least-once) |
 * | consumer.prefetch          | 100         | unacknowledged events the server may send ahead |
 * | consumer.version           | 0           | deliver only this event version; 0 = all |
 *
 * Every key can also be set from the environment by
 * hivent_conf_load_env(): the variable name is HIVENT_ followed by the key
 * in upper case with dots replaced by underscores, for example
 * HIVENT_SERVER_API_KEY or HIVENT_MAX_RECONNECT_TRIES.
 * @{
 */

typedef struct hivent_conf_s hivent_conf_t;
typedef struct hivent_client_s hivent_client_t;
typedef struct hivent_consumer_s hivent_consumer_t;
typedef struct hivent_event_s hivent_event_t;
typedef struct hivent_notice_s hivent_notice_t;

/** Creates a configuration holding the defaults, or NULL when out of memory. [any thread] */
HIVENT_API hivent_conf_t *hivent_conf_new(void);

/** Returns a deep copy of @p conf, callbacks included, or NULL. [any thread] */
HIVENT_API hivent_conf_t *hivent_conf_dup(const hivent_conf_t *conf);

/** Frees @p conf; NULL is ignored. [not concurrent] */
HIVENT_API void hivent_conf_destroy(hivent_conf_t *conf);

/**
 * Sets option @p key to @p value.  Returns HIVENT_ERR_UNKNOWN_KEY or
 * HIVENT_ERR_INVALID_VALUE with a sentence in @p errstr naming the key and
 * the accepted form. [not concurrent]
 */
HIVENT_API hivent_err_t hivent_conf_set(hivent_conf_t *conf, const char *key,
                                        const char *value, char *errstr,
                                        size_t errstr_size);

/**
 * Copies the value of @p key into @p dest.  On entry *dest_size is the size
 * of @p dest; on return it is the size needed including the NUL.  @p dest
 * may be NULL to query the size.  The API key reads back as "(set)" or "".
 * [any thread]
 */
HIVENT_API hivent_err_t hivent_conf_get(const hivent_conf_t *conf, const char *key,
                                        char *dest, size_t *dest_size);

/**
 * Applies every HIVENT_* environment variable that names a known key.
 * Stops at the first bad value and returns its error. [not concurrent]
 */
HIVENT_API hivent_err_t hivent_conf_load_env(hivent_conf_t *conf, char *errstr,
                                             size_t errstr_size);

/** Returns the number of known configuration keys. [any thread] */
HIVENT_API int hivent_conf_key_count(void);

/** Returns the @p i th known key name, or NULL. [any thread] */
HIVENT_API const char *hivent_conf_key_at(int i);

/** Connection states, reported by state notices and hivent_client_state(). */
typedef enum hivent_state_e {
    HIVENT_STATE_CONNECTING = 0, /**< a connection attempt is in progress */
    HIVENT_STATE_CONNECTED = 1,  /**< connected and channel joined */
    HIVENT_STATE_BACKOFF = 2,    /**< waiting before the next attempt */
    HIVENT_STATE_FAILED = 3,     /**< reconnect attempts used up; final */
    HIVENT_STATE_CLOSED = 4      /**< handle is shutting down; final */
} hivent_state_t;

/** Returns "connecting", "connected", "backoff", "failed" or "closed". */
HIVENT_API const char *hivent_state_name(int state);

/** Delivery report callback: one per asynchronous emit. */
typedef void hivent_delivery_cb(hivent_client_t *client, hivent_err_t err,
                                const char *errstr, const hivent_event_t *event,
                                void *msg_opaque, void *opaque);

/**
 * Connection state callback.  @p attempt counts consecutive failed attempts
 * (0 once connected); @p next_attempt_ms is the delay before the next
 * attempt in the backoff state, else 0.  On entering the failed state,
 * @p reason is the cause of the last attempt's failure (for example
 * HIVENT_ERR_TLS), and this notice and the error notice come before the
 * delivery reports of the emits that fail with HIVENT_ERR_FAILED.
 */
typedef void hivent_state_cb(void *handle, hivent_state_t state, int attempt,
                             int next_attempt_ms, hivent_err_t reason,
                             const char *reason_str, void *opaque);

/** Error callback: errors not tied to one emit, such as entering the failed state. */
typedef void hivent_error_cb(void *handle, hivent_err_t err, const char *errstr,
                             void *opaque);

/** Log callback: syslog @p level (3 error .. 7 debug) and a facility name. */
typedef void hivent_log_cb(void *handle, int level, const char *facility,
                           const char *message, void *opaque);

/**
 * Consumer process callback.  Return 0 when the event was handled; any
 * other value sends it to the dead-letter queue with the text written to
 * @p reason (at most @p reason_size bytes) as the reason.
 */
typedef int hivent_process_cb(hivent_consumer_t *consumer, const hivent_event_t *event,
                              char *reason, size_t reason_size, void *opaque);

/** Sets the delivery report callback. [not concurrent] */
HIVENT_API void hivent_conf_set_delivery_cb(hivent_conf_t *conf, hivent_delivery_cb *cb);
/** Sets the connection state callback. [not concurrent] */
HIVENT_API void hivent_conf_set_state_cb(hivent_conf_t *conf, hivent_state_cb *cb);
/** Sets the error callback. [not concurrent] */
HIVENT_API void hivent_conf_set_error_cb(hivent_conf_t *conf, hivent_error_cb *cb);
/** Sets the log callback; logs are then queued and delivered by poll. [not concurrent] */
HIVENT_API void hivent_conf_set_log_cb(hivent_conf_t *conf, hivent_log_cb *cb);
/** Sets the consumer process callback. [not concurrent] */
HIVENT_API void hivent_conf_set_process_cb(hivent_conf_t *conf, hivent_process_cb *cb);
/** Sets the opaque pointer passed to every callback. [not concurrent] */
HIVENT_API void hivent_conf_set_opaque(hivent_conf_t *conf, void *opaque);

/** @} */

/**
 * @defgroup event Events
 *
 * An event is a name, a payload map (MessagePack) and metadata.
 * @{
 */

/** Returns the event name. */
HIVENT_API const char *hivent_event_name(const hivent_event_t *event);
/** Returns the payload map as MessagePack bytes and stores its size in @p size. */
HIVENT_API const void *hivent_event_payload(const hivent_event_t *event, size_t *size);
/** Returns meta.version. */
HIVENT_API int64_t hivent_event_version(const hivent_event_t *event);
/** Returns meta.cid (correlation id), or NULL. */
HIVENT_API const char *hivent_event_cid(const hivent_event_t *event);
/** Returns meta.key (partition key), or NULL. */
HIVENT_API const char *hivent_event_key(const hivent_event_t *event);
/** Returns meta.producer, or NULL. */
HIVENT_API const char *hivent_event_producer(const hivent_event_t *event);
/** Returns meta.uuid, or NULL. */
HIVENT_API const char *hivent_event_uuid(const hivent_event_t *event);
/** Returns meta.created_at (ISO 8601, UTC), or NULL. */
HIVENT_API const char *hivent_event_created_at(const hivent_event_t *event);
/** Returns the partition queue ("SERVICE:PARTITION") of a consumed event, or NULL. */
HIVENT_API const char *hivent_event_queue(const hivent_event_t *event);
/** Returns the partition of a consumed event, or -1. */
HIVENT_API int hivent_event_partition(const hivent_event_t *event);
/**
 * Returns the whole event {name, payload, meta} as MessagePack bytes and
 * stores the size in @p size.
 */
HIVENT_API const void *hivent_event_msgpack(const hivent_event_t *event, size_t *size);
/** Returns the whole event as JSON text (free with hivent_free()), or NULL. */
HIVENT_API char *hivent_event_to_json(const hivent_event_t *event);
/** Returns an independent copy of @p event, or NULL. */
HIVENT_API hivent_event_t *hivent_event_dup(const hivent_event_t *event);
/** Frees an event returned by hivent_emit(), hivent_event_dup() or the memory API. */
HIVENT_API void hivent_event_destroy(hivent_event_t *event);

/** @} */

/**
 * @defgroup notice Notices
 *
 * A notice is one pending callback: a delivery report, a consumed event,
 * a state change, an error or a log line.  hivent_client_poll() and
 * hivent_consumer_poll() turn notices into callbacks; bindings and event
 * loops may instead take them one at a time with hivent_client_next() or
 * hivent_consumer_next() and must then free each with
 * hivent_notice_destroy().
 * @{
 */
typedef enum hivent_notice_type_e {
    HIVENT_NOTICE_DELIVERY = 1, /**< result of an asynchronous emit */
    HIVENT_NOTICE_EVENT = 2,    /**< consumed event; answer with ack or reject */
    HIVENT_NOTICE_STATE = 3,    /**< connection state change */
    HIVENT_NOTICE_ERROR = 4,    /**< error not tied to one request */
    HIVENT_NOTICE_LOG = 5       /**< log line (with log.queue or a log callback) */
} hivent_notice_type_t;

HIVENT_API hivent_notice_type_t hivent_notice_type(const hivent_notice_t *notice);
/** Returns the error of a delivery or error notice, the reason of a state notice, else 0. */
HIVENT_API hivent_err_t hivent_notice_err(const hivent_notice_t *notice);
/** Returns the error message, or "" when there is none. */
HIVENT_API const char *hivent_notice_errstr(const hivent_notice_t *notice);
/**
 * Returns the event: the published event of a successful delivery, the
 * event as sent for a failed one, the consumed event of an event notice;
 * else NULL.  The event lives as long as the notice.
 */
HIVENT_API const hivent_event_t *hivent_notice_event(const hivent_notice_t *notice);
/** Returns the msg_opaque given to hivent_emit_async() for a delivery notice. */
HIVENT_API void *hivent_notice_msg_opaque(const hivent_notice_t *notice);
/** Returns the same value as an integer, for bindings that pass ids. */
HIVENT_API uint64_t hivent_notice_msg_id(const hivent_notice_t *notice);
/** Returns the state of a state notice. */
HIVENT_API hivent_state_t hivent_notice_state(const hivent_notice_t *notice);
/** Returns the consecutive failed attempts of a state notice. */
HIVENT_API int hivent_notice_attempt(const hivent_notice_t *notice);
/** Returns the delay in ms before the next attempt of a backoff state notice. */
HIVENT_API int hivent_notice_next_attempt_ms(const hivent_notice_t *notice);
/** Returns the syslog level of a log notice. */
HIVENT_API int hivent_notice_log_level(const hivent_notice_t *notice);
/** Returns the facility of a log notice, such as "conn" or "emit". */
HIVENT_API const char *hivent_notice_log_facility(const hivent_notice_t *notice);
/** Returns the text of a log notice. */
HIVENT_API const char *hivent_notice_log_message(const hivent_notice_t *notice);
/** Frees a notice taken with a next function; NULL is ignored. */
HIVENT_API void hivent_notice_destroy(hivent_notice_t *notice);

/** @} */

/**
 * @defgroup client Producer client
 * @{
 */

/**
 * Creates a producer client and starts its I/O thread, which connects to
 * /producer/websocket and joins ingress:all.  Takes ownership of @p conf
 * on success.  Returns NULL with a sentence in @p errstr on failure
 * (invalid configuration, thread or TLS setup failure).  The connection is
 * made in the background: a server that is down is not an error here.
 * [any thread]
 */
HIVENT_API hivent_client_t *hivent_client_new(hivent_conf_t *conf, char *errstr,
                                              size_t errstr_size);

/**
 * Flushes outstanding emits for up to flush_timeout, fails the rest through
 * their delivery callbacks (dispatched before this returns), stops the I/O
 * thread and frees the client.  No callback runs after it returns.  In a
 * forked child it frees nothing the parent shares and returns at once.
 * NULL is ignored. [any thread, once]
 */
HIVENT_API void hivent_client_destroy(hivent_client_t *client);

/**
 * Emits an event and waits for the server's reply.  @p payload is a
 * MessagePack map of @p payload_size bytes; NULL with size 0 means an empty
 * map.  @p version must be positive.  @p cid and @p key may be NULL.  On
 * success stores the published event in @p published when it is not NULL
 * (free with hivent_event_destroy()).  @p timeout_ms < 0 uses
 * request_timeout plus the time spent buffered. [any thread]
 */
HIVENT_API hivent_err_t hivent_emit(hivent_client_t *client, const char *name,
                                    const void *payload, size_t payload_size,
                                    int64_t version, const char *cid, const char *key,
                                    int timeout_ms, hivent_event_t **published,
                                    char *errstr, size_t errstr_size);

/**
 * Queues an event and returns at once.  The result arrives later as a
 * delivery notice carrying @p msg_opaque.  An error returned here (invalid
 * argument, full queue, failed state) means no delivery notice will come.
 * [any thread]
 */
HIVENT_API hivent_err_t hivent_emit_async(hivent_client_t *client, const char *name,
                                          const void *payload, size_t payload_size,
                                          int64_t version, const char *cid,
                                          const char *key, void *msg_opaque,
                                          char *errstr, size_t errstr_size);

/**
 * Waits up to @p timeout_ms for outstanding asynchronous emits, dispatching
 * callbacks meanwhile when called on the poll thread with callbacks set.
 * Returns how many emits are still outstanding (0 when all completed); on
 * 0 with a delivery callback set, every delivery callback has already run.
 * [any thread]
 */
HIVENT_API int hivent_client_flush(hivent_client_t *client, int timeout_ms);

/**
 * Waits up to @p timeout_ms (-1 forever) for notices and dispatches the
 * pending ones to the configured callbacks.  Returns when the queue is
 * empty, after 1000 notices, or once @p timeout_ms has passed since the
 * call, so slow callbacks cannot hold the caller.  Notices without a
 * callback are dropped, except logs, which then go to stderr.  Returns the
 * number of notices handled. [poll thread; not concurrent with next]
 */
HIVENT_API int hivent_client_poll(hivent_client_t *client, int timeout_ms);

/**
 * Returns the next notice, waiting up to @p timeout_ms (-1 forever), or
 * NULL when none arrived.  Free it with hivent_notice_destroy(). [poll thread]
 */
HIVENT_API hivent_notice_t *hivent_client_next(hivent_client_t *client, int timeout_ms);

/**
 * Returns a file descriptor that is readable while notices are pending, for
 * use in select/poll/epoll loops.  Owned by the client. [any thread]
 */
HIVENT_API int hivent_client_fd(hivent_client_t *client);

/** Returns the current connection state. [any thread] */
HIVENT_API hivent_state_t hivent_client_state(hivent_client_t *client);

/** Returns the number of emits buffered or awaiting a reply. [any thread] */
HIVENT_API int hivent_client_outstanding(hivent_client_t *client);

/** @} */

/**
 * @defgroup consumer Consumer
 * @{
 */

/**
 * Creates a consumer of @p topic (an event name or "*") for service
 * @p service with @p partition_count partitions, and starts its I/O thread,
 * which connects to /consumer/websocket and joins event:TOPIC.  Takes
 * ownership of @p conf on success.  Returns NULL with a sentence in
 * @p errstr on failure. [any thread]
 */
HIVENT_API hivent_consumer_t *hivent_consumer_new(hivent_conf_t *conf, const char *topic,
                                                  const char *service, int partition_count,
                                                  char *errstr, size_t errstr_size);

/**
 * Dispatches pending notices: calls the process callback for each consumed
 * event and acknowledges or rejects it by its result, and calls the state,
 * error and log callbacks.  Waits up to @p timeout_ms (-1 forever) for the
 * first notice; returns when the queue is empty, after 1000 notices, or
 * once @p timeout_ms has passed since the call.  Returns the number
 * handled. [poll thread]
 */
HIVENT_API int hivent_consumer_poll(hivent_consumer_t *consumer, int timeout_ms);

/** Returns the next notice, as hivent_client_next(). [poll thread] */
HIVENT_API hivent_notice_t *hivent_consumer_next(hivent_consumer_t *consumer, int timeout_ms);

/**
 * Marks a consumed event as processed.  When the server confirmed
 * acknowledgements in its join reply, this sends event:ack and the server
 * completes the event.  Otherwise it does nothing, because the server
 * counted the event as done when it pushed it. [any thread]
 */
HIVENT_API hivent_err_t hivent_consumer_ack(hivent_consumer_t *consumer,
                                            const hivent_event_t *event);

/**
 * Sends a consumed event to its queue's dead-letter queue with @p reason
 * (may be NULL). [any thread]
 */
HIVENT_API hivent_err_t hivent_consumer_reject(hivent_consumer_t *consumer,
                                               const hivent_event_t *event,
                                               const char *reason);

/**
 * Leaves the channel and closes the connection, waiting up to
 * @p timeout_ms for the server to confirm.  Events not yet acknowledged
 * are redelivered to the service's other consumers. [any thread]
 */
HIVENT_API hivent_err_t hivent_consumer_close(hivent_consumer_t *consumer, int timeout_ms);

/** Closes (if not closed), stops the I/O thread and frees the consumer. [any thread, once] */
HIVENT_API void hivent_consumer_destroy(hivent_consumer_t *consumer);

/** Returns a file descriptor readable while notices are pending. [any thread] */
HIVENT_API int hivent_consumer_fd(hivent_consumer_t *consumer);

/** Returns the current connection state. [any thread] */
HIVENT_API hivent_state_t hivent_consumer_state(hivent_consumer_t *consumer);

/** @} */

/**
 * @defgroup memory_transport Memory transport
 *
 * With server.host = "memory" clients and consumers use one in-process bus
 * instead of a server.  Emits complete at once; consumers of matching
 * topics receive the events through the same partition logic.  These calls
 * inspect the events emitted on the bus, like Hivent.Memory of the Elixir
 * client.
 * @{
 */

/** Returns how many events were emitted on the memory bus since the last clear. */
HIVENT_API size_t hivent_memory_count(void);
/** Returns a copy of the @p i th emitted event (0 is the oldest), or NULL. */
HIVENT_API hivent_event_t *hivent_memory_at(size_t i);
/** Returns a copy of the newest emitted event, or NULL when there is none. */
HIVENT_API hivent_event_t *hivent_memory_last(void);
/** Forgets all emitted events. */
HIVENT_API void hivent_memory_clear(void);
/**
 * Returns 1 when an emitted event has name @p name (NULL matches any),
 * a payload containing every field of the MessagePack map @p payload_subset
 * (NULL matches any) and meta containing every field of @p meta_subset
 * (NULL matches any), 0 when none has, or a negative error code.
 */
HIVENT_API int hivent_memory_includes(const char *name, const void *payload_subset,
                                      size_t payload_subset_size,
                                      const void *meta_subset, size_t meta_subset_size);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* HIVENT_HIVENT_H */
