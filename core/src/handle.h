/*
 * State shared by the producer client and the consumer: configuration,
 * notice queue, request queues and the libwebsockets I/O thread.
 *
 * Locking: every field below `lock` is guarded by it, except the fields
 * marked "I/O thread", which only the I/O thread touches.
 */
#ifndef HV_HANDLE_H
#define HV_HANDLE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <syslog.h>

#include "buf.h"
#include "conf.h"
#include "hivent/hivent.h"

struct lws_context;
struct lws;

typedef enum { HV_ROLE_PRODUCER, HV_ROLE_CONSUMER } hv_role_t;

typedef enum {
    HV_REQ_EMIT,      /* awaits a reply; completes a delivery */
    HV_REQ_JOIN,      /* channel join; awaits a reply */
    HV_REQ_LEAVE,     /* channel leave; awaits a reply */
    HV_REQ_HEARTBEAT, /* awaits a reply on topic phoenix */
    HV_REQ_PUSH       /* ack or quarantine; no reply tracked */
} hv_req_kind_t;

/* Completion slot of a synchronous emit. */
typedef struct hv_waiter {
    int done;
    hivent_err_t err;
    char errstr[512];
    hivent_event_t *published;
} hv_waiter_t;

typedef struct hv_req {
    struct hv_req *next;
    hv_req_kind_t kind;
    int64_t ref;
    unsigned char *frame;       /* LWS_PRE bytes of headroom, then the message */
    size_t frame_len;
    int binary;
    hivent_event_t *event;      /* emit: the event as sent */
    void *msg_opaque;
    hv_waiter_t *waiter;        /* sync emit, or NULL */
    int detached;               /* sync emit that timed out: drop the result */
    int64_t sent_at_ms;
} hv_req_t;

typedef struct hv_req_list {
    hv_req_t *head;
    hv_req_t *tail;
    size_t count;
} hv_req_list_t;

struct hivent_notice_s {
    struct hivent_notice_s *next;
    hivent_notice_type_t type;
    hivent_err_t err;
    char *errstr;
    hivent_event_t *event;
    void *msg_opaque;
    hivent_state_t state;
    int attempt;
    int next_attempt_ms;
    int level;
    const char *facility;
    char *message;
};

typedef struct hv_handle {
    hivent_conf_t *conf;
    hv_role_t role;
    void *owner;                /* the public client or consumer */
    pid_t pid;
    int memory;                 /* memory transport: no I/O thread */

    pthread_mutex_t lock;
    pthread_cond_t cond;        /* signalled on notices and completions */

    hivent_notice_t *nq_head, *nq_tail;
    size_t nq_len;
    int efd;                    /* eventfd, readable while nq_len > 0 */
    int efd_armed;

    hv_req_list_t pending;      /* queued control frames and emits, in order */
    hv_req_list_t inflight;     /* sent and awaiting a reply */
    int outstanding;            /* emits not yet completed */
    long long outstanding_bytes;
    int64_t next_ref;

    hivent_state_t state;
    int attempt;
    int stopping;               /* destroy in progress: I/O thread exits */
    int closing;                /* consumer close: leave, then disconnect */
    int wake_pending;
    int users;                  /* API calls blocked inside the handle */

    /* Channel */
    char *topic;
    hv_buf_t join_payload;
    int joined;
    int extensions;             /* server confirmed ack/prefetch in the join reply */

    /* Consumer */
    char *service;
    int partition_count;

    /* I/O thread */
    pthread_t thread;
    int thread_started;
    struct lws_context *ctx;
    struct lws *wsi;
    hv_buf_t rx;
    int rx_binary;
    int64_t heartbeat_ref;      /* -1 when no heartbeat is outstanding */
    int probe_left;             /* emits still to send one at a time (under lock) */
    char last_error[640];
    hivent_err_t last_err;
    int connect_failed;
    void *timers;
} hv_handle_t;

/* Lifecycle. */
int hv_handle_init(hv_handle_t *h, hivent_conf_t *conf, hv_role_t role, void *owner,
                   const char *topic, char *err, size_t err_size);
void hv_handle_free(hv_handle_t *h);
int hv_handle_forked(const hv_handle_t *h);

/* Notices (notice.c). */
hivent_notice_t *hv_notice_new(hivent_notice_type_t type);
void hv_notice_push(hv_handle_t *h, hivent_notice_t *n);         /* takes h->lock */
void hv_notice_push_locked(hv_handle_t *h, hivent_notice_t *n);
hivent_notice_t *hv_notice_pop(hv_handle_t *h, int timeout_ms);
void hv_post_state(hv_handle_t *h, hivent_state_t state, int attempt, int next_ms,
                   hivent_err_t reason, const char *reason_str);
void hv_post_error(hv_handle_t *h, hivent_err_t err, const char *errstr);
void hv_post_delivery_locked(hv_handle_t *h, hv_req_t *req, hivent_err_t err,
                             const char *errstr, hivent_event_t *published);
int hv_dispatch_common(hv_handle_t *h, hivent_notice_t *n);

int64_t hv_now_ms(void);

/* Most notices one poll call dispatches. */
#define HV_POLL_MAX_BATCH 1000

/* Returns 1 when a poll call that started at @start_ms with @timeout_ms and
 * has dispatched @count notices should return: after HV_POLL_MAX_BATCH
 * notices, or once its timeout (0 or more) has passed, so slow callbacks
 * cannot keep the caller inside poll indefinitely. */
static inline int hv_poll_done(int64_t start_ms, int timeout_ms, int count)
{
    if (count >= HV_POLL_MAX_BATCH)
        return 1;
    return timeout_ms >= 0 && hv_now_ms() - start_ms > timeout_ms;
}

/* Runs poll for @h: waits up to @timeout_ms for the first notice, then
 * dispatches notices until the queue is empty or hv_poll_done() returns 1.
 * State, error and log notices go to their callbacks, and every other
 * notice goes to @dispatch, which frees it.  Returns the number handled. */
int hv_poll(hv_handle_t *h, int timeout_ms, void (*dispatch)(hv_handle_t *h,
                                                              hivent_notice_t *n));

/* Logging (log.c). */
void hv_log(hv_handle_t *h, int level, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Request lists (notice.c). */
void hv_req_append(hv_req_list_t *l, hv_req_t *r);
void hv_req_prepend_list(hv_req_list_t *l, hv_req_list_t *front);
hv_req_t *hv_req_pop(hv_req_list_t *l);
hv_req_t *hv_req_take_ref(hv_req_list_t *l, int64_t ref);
void hv_req_free(hv_req_t *r);
hv_req_t *hv_req_build(hv_handle_t *h, hv_req_kind_t kind, const char *topic,
                       const char *event, const void *payload, size_t payload_size);

/* Memory transport (memory.c). */
hivent_err_t hv_memory_emit(hv_handle_t *h, hv_req_t *req, hivent_event_t **published,
                            char *err, size_t err_size);
void hv_memory_register(hv_handle_t *h);
void hv_memory_unregister(hv_handle_t *h);
void hv_memory_dead_letter(const hivent_event_t *ev, const char *reason);

/* Waits on h->cond until @deadline_ms (monotonic, -1 forever); returns 0
 * when woken, -1 on timeout.  Call with h->lock held. */
int hv_wait_until(hv_handle_t *h, int64_t deadline_ms);
/* Fails every queued and in-flight emit with @err (I/O thread stopped). */
void hv_fail_all_locked(hv_handle_t *h, hivent_err_t err, const char *why);

/* I/O engine (conn.c). */
int hv_conn_start(hv_handle_t *h, char *err, size_t err_size);
void hv_conn_wake(hv_handle_t *h);
void hv_conn_stop(hv_handle_t *h);

#endif
