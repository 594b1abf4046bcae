/* Notice queue, request lists and handle setup shared by client and consumer. */
#include <errno.h>
#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "frame.h"
#include "handle.h"

int64_t hv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Request lists. */

void hv_req_append(hv_req_list_t *l, hv_req_t *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->count++;
}

void hv_req_prepend_list(hv_req_list_t *l, hv_req_list_t *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->head)
        l->tail = front->tail;
    l->head = front->head;
    l->count += front->count;
    memset(front, 0, sizeof *front);
}

hv_req_t *hv_req_pop(hv_req_list_t *l)
{
    hv_req_t *r = l->head;
    if (!r)
        return NULL;
    l->head = r->next;
    if (!l->head)
        l->tail = NULL;
    l->count--;
    r->next = NULL;
    return r;
}

/* Replies arrive in send order from hiventd, so the match is nearly always
 * the head and the scan is short. */
hv_req_t *hv_req_take_ref(hv_req_list_t *l, int64_t ref)
{
    hv_req_t *prev = NULL;
    for (hv_req_t *r = l->head; r; prev = r, r = r->next) {
        if (r->ref != ref)
            continue;
        if (prev)
            prev->next = r->next;
        else
            l->head = r->next;
        if (l->tail == r)
            l->tail = prev;
        l->count--;
        r->next = NULL;
        return r;
    }
    return NULL;
}

void hv_req_free(hv_req_t *r)
{
    if (!r)
        return;
    free(r->frame);
    hivent_event_destroy(r->event);
    free(r);
}

hv_req_t *hv_req_build(hv_handle_t *h, hv_req_kind_t kind, const char *topic,
                       const char *event, const void *payload, size_t payload_size)
{
    hv_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = kind;
    pthread_mutex_lock(&h->lock);
    r->ref = h->next_ref++;
    pthread_mutex_unlock(&h->lock);
    hv_frame_t f = {0};
    f.topic = (char *)topic;
    f.event = (char *)event;
    f.payload = (unsigned char *)payload;
    f.payload_size = payload_size;
    f.ref.kind = kind == HV_REQ_PUSH ? HV_REF_NIL : HV_REF_INT;
    f.ref.num = r->ref;
    hv_buf_t buf = {0};
    if (hv_buf_reserve(&buf, LWS_PRE) != 0) {
        free(r);
        return NULL;
    }
    buf.len = LWS_PRE;
    if (hv_frame_encode(&f, 1, &buf) != 0) {
        hv_buf_free(&buf);
        free(r);
        return NULL;
    }
    r->binary = 1;
    r->frame = hv_buf_steal(&buf, &r->frame_len);
    r->frame_len -= LWS_PRE;
    return r;
}

/* Notices. */

hivent_notice_t *hv_notice_new(hivent_notice_type_t type)
{
    hivent_notice_t *n = calloc(1, sizeof *n);
    if (n)
        n->type = type;
    return n;
}

void hv_notice_push_locked(hv_handle_t *h, hivent_notice_t *n)
{
    n->next = NULL;
    if (h->nq_tail)
        h->nq_tail->next = n;
    else
        h->nq_head = n;
    h->nq_tail = n;
    h->nq_len++;
    if (!h->efd_armed && h->efd >= 0) {
        uint64_t one = 1;
        if (write(h->efd, &one, sizeof one) == sizeof one)
            h->efd_armed = 1;
    }
    pthread_cond_broadcast(&h->cond);
}

void hv_notice_push(hv_handle_t *h, hivent_notice_t *n)
{
    pthread_mutex_lock(&h->lock);
    hv_notice_push_locked(h, n);
    pthread_mutex_unlock(&h->lock);
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

hivent_notice_t *hv_notice_pop(hv_handle_t *h, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&h->lock);
    while (!h->nq_head && timeout_ms != 0) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&h->cond, &h->lock)
                                : pthread_cond_timedwait(&h->cond, &h->lock, &deadline);
        if (rc == ETIMEDOUT)
            break;
    }
    hivent_notice_t *n = h->nq_head;
    if (n) {
        h->nq_head = n->next;
        if (!h->nq_head)
            h->nq_tail = NULL;
        h->nq_len--;
        n->next = NULL;
    }
    if (!h->nq_head && h->efd_armed) {
        uint64_t v;
        if (read(h->efd, &v, sizeof v) == sizeof v || errno == EAGAIN)
            h->efd_armed = 0;
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

void hv_post_state(hv_handle_t *h, hivent_state_t state, int attempt, int next_ms,
                   hivent_err_t reason, const char *reason_str)
{
    hivent_notice_t *n = hv_notice_new(HIVENT_NOTICE_STATE);
    if (!n)
        return;
    n->state = state;
    n->attempt = attempt;
    n->next_attempt_ms = next_ms;
    n->err = reason;
    n->errstr = reason_str ? strdup(reason_str) : NULL;
    pthread_mutex_lock(&h->lock);
    h->state = state;
    h->attempt = attempt;
    hv_notice_push_locked(h, n);
    pthread_mutex_unlock(&h->lock);
}

void hv_post_error(hv_handle_t *h, hivent_err_t err, const char *errstr)
{
    hivent_notice_t *n = hv_notice_new(HIVENT_NOTICE_ERROR);
    if (!n)
        return;
    n->err = err;
    n->errstr = errstr ? strdup(errstr) : NULL;
    hv_notice_push(h, n);
}

/* Completes an emit: a sync waiter is signalled, an async emit gets a
 * delivery notice.  Takes ownership of @published and frees @req. */
void hv_post_delivery_locked(hv_handle_t *h, hv_req_t *req, hivent_err_t err,
                             const char *errstr, hivent_event_t *published)
{
    h->outstanding--;
    h->outstanding_bytes -= (long long)req->frame_len;
    if (req->detached) {
        hivent_event_destroy(published);
        hv_req_free(req);
        pthread_cond_broadcast(&h->cond);
        return;
    }
    if (req->waiter) {
        req->waiter->done = 1;
        req->waiter->err = err;
        snprintf(req->waiter->errstr, sizeof req->waiter->errstr, "%s", errstr ? errstr : "");
        req->waiter->published = published;
        pthread_cond_broadcast(&h->cond);
        hv_req_free(req);
        return;
    }
    hivent_notice_t *n = hv_notice_new(HIVENT_NOTICE_DELIVERY);
    if (!n) {
        hivent_event_destroy(published);
        hv_req_free(req);
        pthread_cond_broadcast(&h->cond);
        return;
    }
    n->err = err;
    n->errstr = errstr && *errstr ? strdup(errstr) : NULL;
    n->msg_opaque = req->msg_opaque;
    if (published) {
        n->event = published;
    } else {
        n->event = req->event;
        req->event = NULL;
    }
    hv_req_free(req);
    hv_notice_push_locked(h, n);
}

int hv_wait_until(hv_handle_t *h, int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return pthread_cond_wait(&h->cond, &h->lock) == 0 ? 0 : -1;
    int64_t left = deadline_ms - hv_now_ms();
    if (left <= 0)
        return -1;
    struct timespec ts;
    deadline_after(&ts, (int)(left > 86400000 ? 86400000 : left));
    return pthread_cond_timedwait(&h->cond, &h->lock, &ts) == ETIMEDOUT ? -1 : 0;
}

void hv_fail_all_locked(hv_handle_t *h, hivent_err_t err, const char *why)
{
    hv_req_list_t all = {0};
    hv_req_t *r;
    while ((r = hv_req_pop(&h->inflight)))
        hv_req_append(&all, r);
    while ((r = hv_req_pop(&h->pending)))
        hv_req_append(&all, r);
    while ((r = hv_req_pop(&all))) {
        if (r->kind == HV_REQ_EMIT)
            hv_post_delivery_locked(h, r, err, why, NULL);
        else
            hv_req_free(r);
    }
}

int hv_poll(hv_handle_t *h, int timeout_ms, void (*dispatch)(hv_handle_t *h,
                                                              hivent_notice_t *n))
{
    int count = 0;
    int64_t start = hv_now_ms();
    hivent_notice_t *n = hv_notice_pop(h, timeout_ms);
    while (n) {
        if (!hv_dispatch_common(h, n))
            dispatch(h, n);
        count++;
        n = hv_poll_done(start, timeout_ms, count) ? NULL : hv_notice_pop(h, 0);
    }
    return count;
}

/* Runs the state, error and log callbacks; returns 1 when @n was one of
 * those types (and frees it), else 0. */
int hv_dispatch_common(hv_handle_t *h, hivent_notice_t *n)
{
    hivent_conf_t *c = h->conf;
    switch (n->type) {
    case HIVENT_NOTICE_STATE:
        if (c->state_cb)
            c->state_cb(h->owner, n->state, n->attempt, n->next_attempt_ms, n->err,
                        n->errstr ? n->errstr : "", c->opaque);
        break;
    case HIVENT_NOTICE_ERROR:
        if (c->error_cb)
            c->error_cb(h->owner, n->err, n->errstr ? n->errstr : "", c->opaque);
        break;
    case HIVENT_NOTICE_LOG:
        if (c->log_cb)
            c->log_cb(h->owner, n->level, n->facility, n->message, c->opaque);
        else
            fprintf(stderr, "hivent %d %s: %s\n", n->level, n->facility, n->message);
        break;
    default:
        return 0;
    }
    hivent_notice_destroy(n);
    return 1;
}

/* Handle setup. */

/* getpid() is a system call on every check; the process id is cached
 * instead and forgotten in the child of every fork(), where the
 * pthread_atfork() handler runs. */
static atomic_int cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_after_fork(void)
{
    atomic_store(&cached_pid, 0);
}

static void pid_setup(void)
{
    pthread_atfork(NULL, NULL, pid_after_fork);
}

static pid_t current_pid(void)
{
    pthread_once(&pid_once, pid_setup);
    pid_t pid = atomic_load(&cached_pid);
    if (pid == 0) {
        pid = getpid();
        atomic_store(&cached_pid, pid);
    }
    return pid;
}

int hv_handle_init(hv_handle_t *h, hivent_conf_t *conf, hv_role_t role, void *owner,
                   const char *topic, char *err, size_t err_size)
{
    memset(h, 0, sizeof *h);
    h->conf = conf;
    h->role = role;
    h->owner = owner;
    h->pid = current_pid();
    h->memory = hv_conf_is_memory(conf);
    h->heartbeat_ref = -1;
    h->state = HIVENT_STATE_CONNECTING;
    h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->topic = strdup(topic);
    if (h->efd < 0 || !h->topic) {
        snprintf(err, err_size, "could not create the notice eventfd: %s", strerror(errno));
        if (h->efd >= 0)
            close(h->efd);
        free(h->topic);
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->lock, NULL);
    return 0;
}

static void free_list(hv_req_list_t *l)
{
    hv_req_t *r;
    while ((r = hv_req_pop(l)))
        hv_req_free(r);
}

void hv_handle_free(hv_handle_t *h)
{
    hivent_notice_t *n = h->nq_head;
    while (n) {
        hivent_notice_t *next = n->next;
        hivent_notice_destroy(n);
        n = next;
    }
    free_list(&h->pending);
    free_list(&h->inflight);
    hv_buf_free(&h->rx);
    hv_buf_free(&h->join_payload);
    free(h->topic);
    free(h->service);
    if (h->efd >= 0)
        close(h->efd);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    hivent_conf_destroy(h->conf);
}

int hv_handle_forked(const hv_handle_t *h)
{
    return h->pid != current_pid();
}

/* Public notice accessors. */

HIVENT_API hivent_notice_type_t hivent_notice_type(const hivent_notice_t *n)
{
    return n ? n->type : 0;
}

HIVENT_API hivent_err_t hivent_notice_err(const hivent_notice_t *n)
{
    return n ? n->err : HIVENT_ERR_INVALID_ARG;
}

HIVENT_API const char *hivent_notice_errstr(const hivent_notice_t *n)
{
    if (!n || !n->errstr)
        return n && n->err ? hivent_err_str(n->err) : "";
    return n->errstr;
}

HIVENT_API const hivent_event_t *hivent_notice_event(const hivent_notice_t *n)
{
    return n ? n->event : NULL;
}

HIVENT_API void *hivent_notice_msg_opaque(const hivent_notice_t *n)
{
    return n ? n->msg_opaque : NULL;
}

HIVENT_API uint64_t hivent_notice_msg_id(const hivent_notice_t *n)
{
    return n ? (uint64_t)(uintptr_t)n->msg_opaque : 0;
}

HIVENT_API hivent_state_t hivent_notice_state(const hivent_notice_t *n)
{
    return n ? n->state : HIVENT_STATE_CLOSED;
}

HIVENT_API int hivent_notice_attempt(const hivent_notice_t *n)
{
    return n ? n->attempt : 0;
}

HIVENT_API int hivent_notice_next_attempt_ms(const hivent_notice_t *n)
{
    return n ? n->next_attempt_ms : 0;
}

HIVENT_API int hivent_notice_log_level(const hivent_notice_t *n)
{
    return n ? n->level : 0;
}

HIVENT_API const char *hivent_notice_log_facility(const hivent_notice_t *n)
{
    return n && n->facility ? n->facility : "";
}

HIVENT_API const char *hivent_notice_log_message(const hivent_notice_t *n)
{
    return n && n->message ? n->message : "";
}

HIVENT_API void hivent_notice_destroy(hivent_notice_t *n)
{
    if (!n)
        return;
    free(n->errstr);
    free(n->message);
    hivent_event_destroy(n->event);
    free(n);
}

HIVENT_API const char *hivent_state_name(int state)
{
    static const char *const names[] = {"connecting", "connected", "backoff", "failed",
                                        "closed"};
    return state >= 0 && state <= 4 ? names[state] : "unknown";
}
