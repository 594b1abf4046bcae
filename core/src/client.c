/* Producer client: emit, flush, poll and life cycle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "handle.h"

struct hivent_client_s {
    hv_handle_t h;
};

static void set_err(char *err, size_t size, const char *msg)
{
    if (err && size)
        snprintf(err, size, "%s", msg);
}

HIVENT_API hivent_client_t *hivent_client_new(hivent_conf_t *conf, char *errstr,
                                              size_t errstr_size)
{
    if (!conf) {
        set_err(errstr, errstr_size, "conf must not be NULL");
        return NULL;
    }
    if (conf->client_id && conf->client_id[0] &&
        hv_check_name(conf->client_id, "client_id", errstr, errstr_size) != 0)
        return NULL;
    hivent_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (hv_handle_init(&c->h, conf, HV_ROLE_PRODUCER, c, "ingress:all", errstr,
                       errstr_size) != 0) {
        free(c);
        return NULL;
    }
    if (c->h.memory) {
        c->h.state = HIVENT_STATE_CONNECTED;
        return c;
    }
    /* {"reply": "compact"} asks hiventd to answer an emit it stored as sent
     * with {"uuid": UUID}; a server without the extension ignores it. */
    static const unsigned char compact[] = {0x81, 0xa5, 'r', 'e', 'p', 'l', 'y', 0xa7,
                                            'c', 'o', 'm', 'p', 'a', 'c', 't'};
    if (hv_buf_append(&c->h.join_payload, compact, sizeof compact) != 0) {
        set_err(errstr, errstr_size, "out of memory");
        c->h.conf = NULL; /* stays with the caller on failure */
        hv_handle_free(&c->h);
        free(c);
        return NULL;
    }
    if (hv_conn_start(&c->h, errstr, errstr_size) != 0) {
        c->h.conf = NULL; /* stays with the caller on failure */
        hv_handle_free(&c->h);
        free(c);
        return NULL;
    }
    return c;
}

/* Builds the request for one emit: validates, assigns meta.uuid and
 * meta.created_at so a retried emit is recognisable, and meta.cid when the
 * caller gives none, so hiventd can store the event as sent; encodes the
 * frame.  The packed event stays in ev->packed, where the reply is
 * compared with it. */
static hivent_err_t build_emit(hv_handle_t *h, const char *name, const void *payload,
                               size_t payload_size, int64_t version, const char *cid,
                               const char *key, hv_req_t **out, char *err, size_t err_size)
{
    hivent_event_t *ev;
    char buf[37];
    char when[32];
    hivent_err_t rc = hv_event_new(name, payload, payload_size, version, cid, key,
                                   h->conf->client_id, &ev, err, err_size);
    if (rc != HIVENT_OK)
        return rc;
    hv_uuid7(buf);
    hv_now_iso8601(when);
    ev->uuid = strdup(buf);
    ev->created_at = strdup(when);
    if (!ev->cid) {
        hv_uuid4(buf);
        ev->cid = strdup(buf);
    }
    if (!ev->uuid || !ev->created_at || !ev->cid || hv_event_pack(ev, &ev->packed) != 0) {
        hivent_event_destroy(ev);
        set_err(err, err_size, "out of memory");
        return HIVENT_ERR_NO_MEMORY;
    }
    /* The server limits frames after inflating, so the limit applies to
     * the packed event, not to its gzipped form. 64 bytes cover the frame
     * map around it. */
    if (ev->packed.len + 64 > (size_t)h->conf->max_frame_size) {
        snprintf(err, err_size, "event %s is %zu bytes packed, and with the frame around "
                 "it more than max_frame_size (%d bytes); split the payload or raise "
                 "max_frame_size here and --max-frame-size and --max-inflated-size on "
                 "hiventd", name, ev->packed.len, h->conf->max_frame_size);
        hivent_event_destroy(ev);
        return HIVENT_ERR_TOO_LARGE;
    }
    hv_req_t *r = hv_req_build(h, HV_REQ_EMIT, "ingress:all", "event:emit", ev->packed.data,
                               ev->packed.len);
    if (!r) {
        hivent_event_destroy(ev);
        set_err(err, err_size, "out of memory");
        return HIVENT_ERR_NO_MEMORY;
    }
    r->event = ev;
    if (r->frame_len > (size_t)h->conf->max_frame_size) {
        snprintf(err, err_size, "event %s encodes to %zu bytes, more than max_frame_size "
                 "(%d bytes)", name, r->frame_len, h->conf->max_frame_size);
        hv_req_free(r);
        return HIVENT_ERR_TOO_LARGE;
    }
    *out = r;
    return HIVENT_OK;
}

/* Appends @r to the send queue unless the client cannot take it. */
static hivent_err_t enqueue_locked(hv_handle_t *h, hv_req_t *r, char *err, size_t err_size)
{
    hivent_conf_t *c = h->conf;
    if (h->state == HIVENT_STATE_FAILED) {
        snprintf(err, err_size, "client failed: it gave up connecting to %s:%d after "
                 "max_reconnect_tries (%d) retries; create a new client (last error: %s)", c->host,
                 c->port, c->max_reconnect_tries, h->last_error[0] ? h->last_error : "unknown");
        return HIVENT_ERR_FAILED;
    }
    if (h->stopping) {
        set_err(err, err_size, "client is being destroyed");
        return HIVENT_ERR_DESTROYED;
    }
    if (h->outstanding >= c->queue_max_events ||
        h->outstanding_bytes + (long long)r->frame_len > c->queue_max_bytes) {
        snprintf(err, err_size, "outbound queue is full (%d events, %lld bytes; limits "
                 "queue.max_events = %d, queue.max_bytes = %lld); wait for deliveries or "
                 "flush", h->outstanding, h->outstanding_bytes, c->queue_max_events,
                 c->queue_max_bytes);
        return HIVENT_ERR_QUEUE_FULL;
    }
    h->outstanding++;
    h->outstanding_bytes += (long long)r->frame_len;
    hv_req_append(&h->pending, r);
    return HIVENT_OK;
}

static hivent_err_t check_client(hivent_client_t *c, char *err, size_t err_size)
{
    if (!c) {
        set_err(err, err_size, "client must not be NULL");
        return HIVENT_ERR_INVALID_ARG;
    }
    if (hv_handle_forked(&c->h)) {
        set_err(err, err_size, "this client was created before fork(); create a new client "
                "in the child process");
        return HIVENT_ERR_FORKED;
    }
    return HIVENT_OK;
}

static hivent_err_t submit(hivent_client_t *c, hv_req_t *r, char *err, size_t err_size)
{
    hv_handle_t *h = &c->h;
    if (h->memory)
        return hv_memory_emit(h, r, NULL, err, err_size);
    pthread_mutex_lock(&h->lock);
    hivent_err_t rc = enqueue_locked(h, r, err, err_size);
    pthread_mutex_unlock(&h->lock);
    if (rc != HIVENT_OK) {
        hv_req_free(r);
        return rc;
    }
    hv_conn_wake(h);
    return HIVENT_OK;
}

HIVENT_API hivent_err_t hivent_emit_async(hivent_client_t *c, const char *name,
                                          const void *payload, size_t payload_size,
                                          int64_t version, const char *cid,
                                          const char *key, void *msg_opaque,
                                          char *errstr, size_t errstr_size)
{
    char local[256];
    if (!errstr) {
        errstr = local;
        errstr_size = sizeof local;
    }
    hivent_err_t rc = check_client(c, errstr, errstr_size);
    if (rc != HIVENT_OK)
        return rc;
    hv_req_t *r;
    rc = build_emit(&c->h, name, payload, payload_size, version, cid, key, &r, errstr,
                    errstr_size);
    if (rc != HIVENT_OK)
        return rc;
    r->msg_opaque = msg_opaque;
    return submit(c, r, errstr, errstr_size);
}

static void detach_waiter_locked(hv_handle_t *h, hv_waiter_t *w)
{
    hv_req_list_t *lists[] = {&h->pending, &h->inflight};
    for (int i = 0; i < 2; i++)
        for (hv_req_t *r = lists[i]->head; r; r = r->next)
            if (r->waiter == w) {
                r->waiter = NULL;
                r->detached = 1;
            }
}

HIVENT_API hivent_err_t hivent_emit(hivent_client_t *c, const char *name, const void *payload,
                                    size_t payload_size, int64_t version, const char *cid,
                                    const char *key, int timeout_ms,
                                    hivent_event_t **published, char *errstr,
                                    size_t errstr_size)
{
    char local[256];
    if (!errstr) {
        errstr = local;
        errstr_size = sizeof local;
    }
    if (published)
        *published = NULL;
    hivent_err_t rc = check_client(c, errstr, errstr_size);
    if (rc != HIVENT_OK)
        return rc;
    hv_handle_t *h = &c->h;
    hv_req_t *r;
    rc = build_emit(h, name, payload, payload_size, version, cid, key, &r, errstr,
                    errstr_size);
    if (rc != HIVENT_OK)
        return rc;
    if (h->memory)
        return hv_memory_emit(h, r, published, errstr, errstr_size);
    hv_waiter_t w;
    memset(&w, 0, sizeof w);
    r->waiter = &w;
    int64_t deadline = timeout_ms < 0 ? -1 : hv_now_ms() + timeout_ms;
    pthread_mutex_lock(&h->lock);
    rc = enqueue_locked(h, r, errstr, errstr_size);
    if (rc != HIVENT_OK) {
        pthread_mutex_unlock(&h->lock);
        hv_req_free(r);
        return rc;
    }
    h->users++;
    pthread_mutex_unlock(&h->lock);
    hv_conn_wake(h);
    pthread_mutex_lock(&h->lock);
    while (!w.done && hv_wait_until(h, deadline) == 0)
        ;
    if (!w.done) {
        detach_waiter_locked(h, &w);
        snprintf(errstr, errstr_size, "no reply to emit of %s within %d ms", name,
                 timeout_ms);
        rc = HIVENT_ERR_TIMED_OUT;
    } else {
        rc = w.err;
        if (rc != HIVENT_OK)
            snprintf(errstr, errstr_size, "%s", w.errstr);
    }
    h->users--;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (published && rc == HIVENT_OK)
        *published = w.published;
    else
        hivent_event_destroy(w.published);
    return rc;
}

static void dispatch_delivery(hivent_client_t *c, hivent_notice_t *n)
{
    hivent_conf_t *conf = c->h.conf;
    if (conf->delivery_cb)
        conf->delivery_cb(c, n->err, n->errstr ? n->errstr : "", n->event, n->msg_opaque,
                          conf->opaque);
    hivent_notice_destroy(n);
}

static void dispatch_notice(hv_handle_t *h, hivent_notice_t *n)
{
    dispatch_delivery(h->owner, n);
}

HIVENT_API int hivent_client_poll(hivent_client_t *c, int timeout_ms)
{
    if (!c || hv_handle_forked(&c->h))
        return 0;
    return hv_poll(&c->h, timeout_ms, dispatch_notice);
}

HIVENT_API hivent_notice_t *hivent_client_next(hivent_client_t *c, int timeout_ms)
{
    if (!c || hv_handle_forked(&c->h))
        return NULL;
    return hv_notice_pop(&c->h, timeout_ms);
}

HIVENT_API int hivent_client_flush(hivent_client_t *c, int timeout_ms)
{
    if (!c || hv_handle_forked(&c->h))
        return -1;
    hv_handle_t *h = &c->h;
    int64_t deadline = timeout_ms < 0 ? -1 : hv_now_ms() + timeout_ms;
    int dispatch = h->conf->delivery_cb != NULL;
    for (;;) {
        if (dispatch)
            hivent_client_poll(c, 0);
        pthread_mutex_lock(&h->lock);
        int left = h->outstanding;
        if (left > 0) {
            int64_t slice = hv_now_ms() + 50;
            if (deadline >= 0 && slice > deadline)
                slice = deadline;
            hv_wait_until(h, slice);
            left = h->outstanding;
        }
        pthread_mutex_unlock(&h->lock);
        if (left == 0) {
            /* Every emit has completed, so the queue contains a finite
             * number of notices.  Dispatch all of them, not one poll slice. */
            if (dispatch)
                while (hivent_client_poll(c, 0) > 0)
                    ;
            return 0;
        }
        if (deadline >= 0 && hv_now_ms() >= deadline)
            return left;
    }
}

HIVENT_API int hivent_client_fd(hivent_client_t *c)
{
    return c ? c->h.efd : -1;
}

HIVENT_API hivent_state_t hivent_client_state(hivent_client_t *c)
{
    if (!c)
        return HIVENT_STATE_CLOSED;
    pthread_mutex_lock(&c->h.lock);
    hivent_state_t s = c->h.state;
    pthread_mutex_unlock(&c->h.lock);
    return s;
}

HIVENT_API int hivent_client_outstanding(hivent_client_t *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->h.lock);
    int n = c->h.outstanding;
    pthread_mutex_unlock(&c->h.lock);
    return n;
}

HIVENT_API void hivent_client_destroy(hivent_client_t *c)
{
    if (!c)
        return;
    hv_handle_t *h = &c->h;
    if (hv_handle_forked(h)) {
        /* The parent owns the socket, the thread and possibly the lock; the
         * child releases only what no other process can see. */
        free(c);
        return;
    }
    int left = hivent_client_flush(c, h->conf->flush_timeout_ms);
    if (left > 0)
        hv_log(h, LOG_WARNING, "emit", "destroying the client with %d emits outstanding "
               "after flush_timeout (%d ms); they are reported as failed", left,
               h->conf->flush_timeout_ms);
    hv_conn_stop(h);
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    hv_fail_all_locked(h, HIVENT_ERR_DESTROYED,
                       "client destroyed before the server confirmed the emit");
    while (h->users > 0)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    /* Delivery reports go to the callback; other notices nobody will read
     * are dropped, so queued log lines do not spill onto stderr. */
    hivent_notice_t *n;
    while ((n = hv_notice_pop(h, 0))) {
        if (n->type == HIVENT_NOTICE_DELIVERY)
            dispatch_delivery(c, n);
        else
            hivent_notice_destroy(n);
    }
    hv_handle_free(h);
    free(c);
}
