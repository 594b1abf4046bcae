/*
 * The I/O engine: one libwebsockets context and service thread per handle.
 *
 * libwebsockets is not thread-safe, so other threads never touch the
 * context: they append to the handle's queues under its lock and call
 * lws_cancel_service(), which makes the service thread run
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED and pick the work up.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libwebsockets.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backoff.h"
#include "event.h"
#include "frame.h"
#include "handle.h"
#include "mp.h"

#define TICK_US (250 * LWS_US_PER_MS)
/* Frames written per writeable callback before yielding to reads. */
#define WRITE_BATCH 256
/* Bytes of framed requests sent with one lws_write(). */
#define WRITE_BATCH_BYTES (64 * 1024)

/* Rate of one kind of warning, see log_limited(). */
typedef struct log_limit {
    int64_t last_ms;            /* when the last warning was logged */
    int quiet;                  /* lines logged at debug since then */
} log_limit_t;

typedef struct hv_timers {
    lws_sorted_usec_list_t reconnect;
    lws_sorted_usec_list_t heartbeat;
    lws_sorted_usec_list_t tick;
    hv_handle_t *h;
    int need_join;
    int need_heartbeat;
    int need_leave;
    int generation;
    char tls_detail[160];       /* why the last certificate check failed */
    unsigned char *batch;       /* LWS_PRE + WRITE_BATCH_BYTES, see write_batch() */
    log_limit_t push_rejects;   /* rejected acks and quarantines */
    log_limit_t emit_rejects;   /* rejected emits */
} hv_timers_t;

static void connect_now(hv_handle_t *h);

static hv_timers_t *timers_of(hv_handle_t *h)
{
    return h->timers;
}

static void append_encoded(char *out, size_t size, size_t *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p && *o + 4 < size; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[(*o)++] = (char)*p;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[*p >> 4];
            out[(*o)++] = hex[*p & 15];
        }
    }
    out[*o] = 0;
}

static void append_param(char *out, size_t size, size_t *o, const char *name,
                         const char *value)
{
    if (*o + strlen(name) + 3 >= size)
        return;
    if (out[*o - 1] != '?')
        out[(*o)++] = '&';
    append_encoded(out, size, o, name);
    out[(*o)++] = '=';
    append_encoded(out, size, o, value ? value : "");
}

/* Builds the upgrade path; every query value is percent-encoded once. */
static void build_path(hv_handle_t *h, char *out, size_t size)
{
    hivent_conf_t *c = h->conf;
    size_t o = (size_t)snprintf(out, size, "%s?",
                                h->role == HV_ROLE_PRODUCER ? "/producer/websocket"
                                                            : "/consumer/websocket");
    append_param(out, size, &o, "vsn", "1.0.0");
    if (h->role == HV_ROLE_PRODUCER) {
        append_param(out, size, &o, "client_id", c->client_id);
    } else {
        append_param(out, size, &o, "service", h->service);
        append_param(out, size, &o, "name", c->consumer_name);
    }
    append_param(out, size, &o, "api_key", c->api_key);
    if (c->gzip)
        append_param(out, size, &o, "gzip", "1");
}

/*
 * Finds out why the server cannot be reached.  libwebsockets 4.1 reports
 * every DNS or TCP failure as "Unable to connect" and closes the socket
 * before the callback, so the resolution and one non-blocking connect are
 * repeated here to tell a failed lookup and a refused port apart.
 */
static hivent_err_t probe_server(hv_handle_t *h, char *msg, size_t size)
{
    hivent_conf_t *c = h->conf;
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", c->port);
    int gai = getaddrinfo(c->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(msg, size, "could not resolve host %s: %s", c->host, gai_strerror(gai));
        return HIVENT_ERR_RESOLVE;
    }
    int err = ETIMEDOUT;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
            err = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            socklen_t len = sizeof err;
            if (poll(&pfd, 1, 1000) == 1)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        } else {
            err = errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (err == ECONNREFUSED) {
        snprintf(msg, size, "connection to %s:%d refused; is hiventd running and listening "
                 "on that port?", c->host, c->port);
        return HIVENT_ERR_REFUSED;
    }
    snprintf(msg, size, "could not connect to %s:%d: %s", c->host, c->port,
             err ? strerror(err) : "connection closed during the handshake");
    return HIVENT_ERR_CONNECTION;
}

static hivent_err_t classify_error(hv_handle_t *h, struct lws *wsi, const char *why,
                                   char *msg, size_t size)
{
    int status = wsi ? (int)lws_http_client_http_response(wsi) : 0;
    if (status == 403 || strstr(why, "403")) {
        snprintf(msg, size, "server rejected the API key (HTTP 403); check server.api_key");
        return HIVENT_ERR_AUTH;
    }
    const char *detail = timers_of(h)->tls_detail;
    if (detail[0]) {
        snprintf(msg, size, "TLS handshake with %s:%d failed: server certificate not "
                 "accepted: %s (tls.ca_file and server.host must match the server's "
                 "certificate)", h->conf->host, h->conf->port, detail);
        return HIVENT_ERR_TLS;
    }
    if (strstr(why, "SSL") || strstr(why, "ssl") || strstr(why, "TLS") ||
        strstr(why, "tls") || strstr(why, "certificate") || strstr(why, "verify")) {
        snprintf(msg, size, "TLS handshake with %s:%d failed: %s", h->conf->host,
                 h->conf->port, why);
        return HIVENT_ERR_TLS;
    }
    if (status > 0) {
        snprintf(msg, size, "server answered the WebSocket upgrade with HTTP %d (%s)", status,
                 why);
        return HIVENT_ERR_CONNECTION;
    }
    if (strstr(why, "Unable to connect") || strstr(why, "connect"))
        return probe_server(h, msg, size);
    /* A plain ws client talking to a TLS port sees the handshake fail
     * with a read error and nothing more specific. */
    snprintf(msg, size, "WebSocket handshake with %s:%d failed: %s%s", h->conf->host,
             h->conf->port, why,
             h->conf->secure ? "" : "; if the server serves wss, set server.secure = true");
    return HIVENT_ERR_CONNECTION;
}

/* Moves emits awaiting a reply back to the front of the pending queue,
 * in their original order, and drops control frames of the old channel. */
static void requeue_inflight_locked(hv_handle_t *h)
{
    hv_req_list_t again = {0};
    hv_req_t *r;
    while ((r = hv_req_pop(&h->inflight))) {
        if (r->kind == HV_REQ_EMIT)
            hv_req_append(&again, r);
        else
            hv_req_free(r);
    }
    hv_req_prepend_list(&h->pending, &again);
}

static void reconnect_cb(lws_sorted_usec_list_t *sul)
{
    hv_timers_t *t = lws_container_of(sul, hv_timers_t, reconnect);
    connect_now(t->h);
}

static int stopping(hv_handle_t *h)
{
    pthread_mutex_lock(&h->lock);
    int s = h->stopping;
    pthread_mutex_unlock(&h->lock);
    return s;
}

/* Handles the end of a connection or a failed attempt: requeues what was
 * in flight, then schedules the next attempt or enters the failed state. */
static void on_disconnect(hv_handle_t *h, hivent_err_t err, const char *why)
{
    hv_timers_t *t = timers_of(h);
    h->wsi = NULL;
    h->joined = 0;
    h->heartbeat_ref = -1;
    t->generation++;
    hv_buf_free(&h->rx);
    lws_sul_cancel(&t->heartbeat);
    pthread_mutex_lock(&h->lock);
    requeue_inflight_locked(h);
    int stop = h->stopping || h->closing;
    int attempt = h->attempt + 1;
    pthread_mutex_unlock(&h->lock);
    if (stop) {
        hv_post_state(h, HIVENT_STATE_CLOSED, 0, 0, HIVENT_OK, NULL);
        return;
    }
    /* @why may point into h->last_error itself, so copy through a buffer. */
    char reason[sizeof h->last_error];
    snprintf(reason, sizeof reason, "%s", why ? why : hivent_err_str(err));
    memcpy(h->last_error, reason, sizeof reason);
    h->last_err = err;
    int max = h->conf->max_reconnect_tries;
    if (max >= 0 && attempt > max) {
        char msg[1024];
        snprintf(msg, sizeof msg, "giving up after %d failed connection attempt%s to %s:%d; "
                 "last error: %s", attempt, attempt == 1 ? "" : "s", h->conf->host,
                 h->conf->port, h->last_error);
        hv_log(h, LOG_ERR, "conn", "%s", msg);
        pthread_mutex_lock(&h->lock);
        h->state = HIVENT_STATE_FAILED;
        pthread_mutex_unlock(&h->lock);
        /* The state notice carries the cause in @err.  It is posted before
         * the failed deliveries, so an application has the cause at hand
         * when it handles them. */
        hv_post_state(h, HIVENT_STATE_FAILED, attempt, 0, err, msg);
        hv_post_error(h, HIVENT_ERR_FAILED, msg);
        pthread_mutex_lock(&h->lock);
        hv_fail_all_locked(h, HIVENT_ERR_FAILED, msg);
        pthread_mutex_unlock(&h->lock);
        return;
    }
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (uint32_t)hv_now_ms();
    hivent_conf_t *c = h->conf;
    int delay = hv_backoff_delay_ms(c->backoff_ms, c->backoff_max_ms, c->jitter_pct, attempt,
                                    rnd);
    hv_log(h, LOG_WARNING, "conn", "connection to %s:%d failed (%s: %s); attempt %d, "
           "retrying in %d ms", c->host, c->port, hivent_err_name(err), h->last_error,
           attempt, delay);
    hv_post_state(h, HIVENT_STATE_BACKOFF, attempt, delay, err, h->last_error);
    lws_sul_schedule(h->ctx, 0, &t->reconnect, reconnect_cb,
                     (lws_usec_t)delay * LWS_US_PER_MS);
}

static void connect_now(hv_handle_t *h)
{
    hivent_conf_t *c = h->conf;
    /* The configuration limits keep the path within 4096 bytes even with
     * every byte percent-encoded: 255-byte client_id, service and name,
     * a 512-byte api_key.  hiventd reads request headers of up to 4096
     * bytes. */
    char path[4096];
    if (stopping(h))
        return;
    build_path(h, path, sizeof path);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = h->ctx;
    ci.address = c->host;
    ci.port = c->port;
    ci.path = path;
    ci.host = c->host;
    ci.origin = c->host;
    ci.local_protocol_name = "hivent";
    ci.pwsi = &h->wsi;
    ci.userdata = h;
    if (c->secure) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (!c->tls_verify)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
                                 LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                 LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    pthread_mutex_lock(&h->lock);
    int attempt = h->attempt;
    pthread_mutex_unlock(&h->lock);
    hv_post_state(h, HIVENT_STATE_CONNECTING, attempt, 0, HIVENT_OK, NULL);
    hv_log(h, LOG_DEBUG, "conn", "connecting to %s://%s:%d%s", c->secure ? "wss" : "ws",
           c->host, c->port, h->role == HV_ROLE_PRODUCER ? "/producer/websocket"
                                                       : "/consumer/websocket");
    h->connect_failed = 0;
    timers_of(h)->tls_detail[0] = 0;
    if (!lws_client_connect_via_info(&ci) && !h->connect_failed) {
        char msg[512];
        h->wsi = NULL;
        hivent_err_t err = probe_server(h, msg, sizeof msg);
        on_disconnect(h, err, msg);
    }
}

/* lws_write() masks a client frame's payload in place, so it writes from
 * a scratch copy: an emit requeued after a lost connection must go out
 * again with its original bytes, not the bytes masked for the old one. */
static int write_req(struct lws *wsi, hv_req_t *r)
{
    unsigned char *copy = malloc(LWS_PRE + r->frame_len);
    if (!copy)
        return -1;
    memcpy(copy + LWS_PRE, r->frame + LWS_PRE, r->frame_len);
    int n = lws_write(wsi, copy + LWS_PRE, r->frame_len,
                      r->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    free(copy);
    return n < (int)r->frame_len ? -1 : 0;
}

/* Writes a control request (join, leave, heartbeat) and tracks its reply. */
static int write_control(hv_handle_t *h, struct lws *wsi, hv_req_kind_t kind,
                         const char *topic, const char *event, const void *payload,
                         size_t payload_size)
{
    hv_req_t *r = hv_req_build(h, kind, topic, event, payload, payload_size);
    if (!r)
        return -1;
    if (write_req(wsi, r) != 0) {
        hv_req_free(r);
        return -1;
    }
    if (kind == HV_REQ_HEARTBEAT)
        h->heartbeat_ref = r->ref;
    pthread_mutex_lock(&h->lock);
    hv_req_append(&h->inflight, r);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

/* Appends @r to @out as a final, masked client WebSocket frame (RFC 6455
 * section 5.2) with masking key @key; returns the bytes written. */
static size_t put_masked_frame(unsigned char *out, const hv_req_t *r, const unsigned char *key)
{
    size_t len = r->frame_len, o = 0;
    out[o++] = (unsigned char)(0x80 | (r->binary ? 0x2 : 0x1));
    if (len < 126) {
        out[o++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        out[o++] = 0x80 | 126;
        out[o++] = (unsigned char)(len >> 8);
        out[o++] = (unsigned char)len;
    } else {
        out[o++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[o++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + o, key, 4);
    o += 4;
    const unsigned char *src = r->frame + LWS_PRE;
    unsigned char *dst = out + o;
    /* Eight bytes at a time: the key repeats every four bytes, so a word
     * of the key twice masks any eight bytes that start at a multiple of
     * four. */
    uint64_t key8;
    unsigned char key_twice[8] = {key[0], key[1], key[2], key[3],
                                  key[0], key[1], key[2], key[3]};
    memcpy(&key8, key_twice, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= key8;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ key[i & 3];
    return o + len;
}

static int has_emit_inflight_locked(hv_handle_t *h)
{
    for (hv_req_t *r = h->inflight.head; r; r = r->next)
        if (r->kind == HV_REQ_EMIT)
            return 1;
    return 0;
}

/*
 * Writes up to WRITE_BATCH pending requests with one lws_write().  Each
 * request is framed and masked into the batch buffer here, because
 * lws_write() with LWS_WRITE_BINARY sends one frame per call and so one
 * send() per emit; LWS_WRITE_HTTP passes the buffer to the socket as it
 * is.  The request's own bytes stay unmasked, so an emit requeued after a
 * lost connection goes out again intact.  Returns 1 when requests remain,
 * 0 when the queue is empty, -1 on a failed write.
 */
static int write_batch(hv_handle_t *h, struct lws *wsi)
{
    hv_timers_t *t = timers_of(h);
    if (!t->batch && !(t->batch = malloc(LWS_PRE + WRITE_BATCH_BYTES)))
        return -1;
    unsigned char keys[4 * WRITE_BATCH];
    if (getrandom(keys, sizeof keys, 0) != (ssize_t)sizeof keys)
        return -1;
    unsigned char *start = t->batch + LWS_PRE;
    size_t used = 0;
    int64_t now = hv_now_ms();
    int more = 0;
    for (int i = 0; i < WRITE_BATCH; i++) {
        pthread_mutex_lock(&h->lock);
        hv_req_t *r = h->pending.head;
        /* Probing after a 1007 close: the next emit waits until the
         * server replied to the one in flight. */
        int probing = r && r->kind == HV_REQ_EMIT && h->probe_left > 0;
        if (probing && has_emit_inflight_locked(h)) {
            pthread_mutex_unlock(&h->lock);
            more = 0;
            break;
        }
        /* 14 bytes: the largest frame header with its masking key. */
        int fits = r && used + r->frame_len + 14 <= WRITE_BATCH_BYTES;
        if (r && (fits || used == 0)) {
            if (probing)
                h->probe_left--;
            hv_req_pop(&h->pending);
            if (r->kind == HV_REQ_EMIT) {
                r->sent_at_ms = now;
                hv_req_append(&h->inflight, r);
            }
        }
        more = h->pending.count > 0;
        pthread_mutex_unlock(&h->lock);
        if (!r || (!fits && used > 0))
            break;
        if (!fits) {
            /* A frame larger than the batch buffer goes out alone. */
            int rc = write_req(wsi, r);
            if (r->kind != HV_REQ_EMIT)
                hv_req_free(r);
            return rc != 0 ? -1 : more;
        }
        used += put_masked_frame(start + used, r, keys + 4 * i);
        if (r->kind != HV_REQ_EMIT)
            hv_req_free(r);
    }
    if (used > 0 && lws_write(wsi, start, used, LWS_WRITE_HTTP) < (int)used)
        return -1;
    return more;
}

static int on_writeable(hv_handle_t *h, struct lws *wsi)
{
    hv_timers_t *t = timers_of(h);
    if (t->need_join) {
        t->need_join = 0;
        return write_control(h, wsi, HV_REQ_JOIN, h->topic, "phx_join", h->join_payload.data,
                             h->join_payload.len);
    }
    if (t->need_heartbeat) {
        t->need_heartbeat = 0;
        if (write_control(h, wsi, HV_REQ_HEARTBEAT, "phoenix", "heartbeat", NULL, 0) != 0)
            return -1;
    }
    if (!h->joined)
        return 0;
    /* Acks and quarantines queued before close go out ahead of phx_leave,
     * or the server would never see them. */
    pthread_mutex_lock(&h->lock);
    int drained = h->pending.count == 0;
    pthread_mutex_unlock(&h->lock);
    if (t->need_leave && drained) {
        t->need_leave = 0;
        return write_control(h, wsi, HV_REQ_LEAVE, h->topic, "phx_leave", NULL, 0);
    }
    int more = write_batch(h, wsi);
    if (more < 0)
        return -1;
    if (more || t->need_leave)
        lws_callback_on_writable(wsi);
    return 0;
}

static void heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    hv_timers_t *t = lws_container_of(sul, hv_timers_t, heartbeat);
    hv_handle_t *h = t->h;
    if (!h->wsi)
        return;
    if (h->heartbeat_ref >= 0) {
        hv_log(h, LOG_WARNING, "conn", "no heartbeat reply within %d ms; closing the "
               "connection to %s:%d", h->conf->heartbeat_ms, h->conf->host, h->conf->port);
        snprintf(h->last_error, sizeof h->last_error, "heartbeat reply missing");
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    t->need_heartbeat = 1;
    lws_callback_on_writable(h->wsi);
    lws_sul_schedule(h->ctx, 0, &t->heartbeat, heartbeat_cb,
                     (lws_usec_t)h->conf->heartbeat_ms * LWS_US_PER_MS);
}

/* Fails emits whose reply is overdue and wakes the loop for stop requests. */
static void tick_cb(lws_sorted_usec_list_t *sul)
{
    hv_timers_t *t = lws_container_of(sul, hv_timers_t, tick);
    hv_handle_t *h = t->h;
    int64_t limit = hv_now_ms() - h->conf->request_timeout_ms;
    pthread_mutex_lock(&h->lock);
    hv_req_t *prev = NULL, *r = h->inflight.head;
    while (r) {
        hv_req_t *next = r->next;
        /* Emits join the in-flight list as they are written, so their
         * sent_at_ms never decreases along it: the first emit still in
         * time ends the scan. */
        if (r->kind == HV_REQ_EMIT && r->sent_at_ms >= limit)
            break;
        if (r->kind == HV_REQ_EMIT) {
            if (prev)
                prev->next = next;
            else
                h->inflight.head = next;
            if (h->inflight.tail == r)
                h->inflight.tail = prev;
            h->inflight.count--;
            char msg[128];
            snprintf(msg, sizeof msg, "no reply to emit ref %lld within %d ms",
                     (long long)r->ref, h->conf->request_timeout_ms);
            hv_post_delivery_locked(h, r, HIVENT_ERR_TIMED_OUT, msg, NULL);
        } else {
            prev = r;
        }
        r = next;
    }
    /* A probing emit that timed out frees the way for the next one. */
    int resume = h->probe_left > 0 && h->pending.count > 0 && !has_emit_inflight_locked(h);
    pthread_mutex_unlock(&h->lock);
    if (resume && h->wsi)
        lws_callback_on_writable(h->wsi);
    lws_sul_schedule(h->ctx, 0, &t->tick, tick_cb, TICK_US);
}

/* Reads {"status", "response"} of a reply payload. */
static int reply_status(const hv_frame_t *f, const unsigned char **resp, size_t *resp_size)
{
    const unsigned char *st;
    size_t st_size;
    *resp = NULL;
    *resp_size = 0;
    if (hv_mp_map_find(f->payload, f->payload_size, "response", resp, resp_size) != 1)
        *resp = NULL;
    if (hv_mp_map_find(f->payload, f->payload_size, "status", &st, &st_size) != 1)
        return 0;
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, st, st_size);
    return hv_mp_read(&r, &v) == 0 && v.type == HV_MP_STR && v.size == 2 &&
           memcmp(v.str, "ok", 2) == 0;
}

/* Describes an error response: its "reason" string, a plain string, or
 * the response as JSON text. */
static void describe_response(const unsigned char *resp, size_t size, char *out,
                              size_t out_size)
{
    const unsigned char *val;
    size_t val_size;
    char *s = NULL;
    if (!resp) {
        snprintf(out, out_size, "server returned an error without a reason");
        return;
    }
    if (hv_mp_map_find(resp, size, "reason", &val, &val_size) == 1)
        s = hv_mp_strdup(val, val_size);
    if (!s)
        s = hv_mp_strdup(resp, size);
    if (!s)
        s = hivent_msgpack_to_json(resp, size, NULL, 0);
    snprintf(out, out_size, "%s", s ? s : "unreadable error response");
    free(s);
}

static void on_join_reply(hv_handle_t *h, int ok, const unsigned char *resp, size_t size)
{
    if (!ok) {
        char why[512];
        describe_response(resp, size, why, sizeof why);
        hv_log(h, LOG_ERR, "conn", "join of %s rejected: %s", h->topic, why);
        char msg[600];
        snprintf(msg, sizeof msg, "join of %s rejected: %s", h->topic, why);
        hv_post_error(h, HIVENT_ERR_JOIN_REJECTED, msg);
        snprintf(h->last_error, sizeof h->last_error, "%s", msg);
        h->last_err = HIVENT_ERR_JOIN_REJECTED;
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    const unsigned char *val;
    size_t vs;
    h->extensions = resp && hv_mp_map_find(resp, size, "ack", &val, &vs) == 1 && vs == 1 &&
                    val[0] == 0xc3;
    h->joined = 1;
    hv_log(h, LOG_INFO, "conn", "joined %s on %s:%d%s", h->topic, h->conf->host,
           h->conf->port, h->extensions ? " (acknowledgements on)" : "");
    hv_post_state(h, HIVENT_STATE_CONNECTED, 0, 0, HIVENT_OK, NULL);
    lws_callback_on_writable(h->wsi);
}

/* Returns 1 when @resp is the map {"uuid": @uuid} and nothing else. */
static int is_own_uuid(const unsigned char *resp, size_t size, const char *uuid)
{
    const unsigned char *val;
    size_t val_size;
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, resp, size);
    if (!uuid || hv_mp_read(&r, &v) != 0 || v.type != HV_MP_MAP || v.size != 1 ||
        hv_mp_map_find(resp, size, "uuid", &val, &val_size) != 1)
        return 0;
    hv_mp_reader_init(&r, val, val_size);
    size_t len = strlen(uuid);
    return hv_mp_read(&r, &v) == 0 && v.type == HV_MP_STR && v.size == len &&
           memcmp(v.str, uuid, len) == 0;
}

/* Logs @line as a warning at most once a second for @limit, with the
 * count of the lines logged at debug in between. */
static void log_limited(hv_handle_t *h, log_limit_t *limit, const char *facility,
                        const char *line)
{
    int64_t now = hv_now_ms();
    if (now - limit->last_ms < 1000) {
        limit->quiet++;
        hv_log(h, LOG_DEBUG, facility, "%s", line);
        return;
    }
    if (limit->quiet > 0)
        hv_log(h, LOG_WARNING, facility, "%s (and %d more since the last such warning)", line,
               limit->quiet);
    else
        hv_log(h, LOG_WARNING, facility, "%s", line);
    limit->last_ms = now;
    limit->quiet = 0;
}

static void on_emit_reply(hv_handle_t *h, hv_req_t *r, int ok, const unsigned char *resp,
                          size_t size)
{
    hivent_event_t *published = NULL;
    char why[512] = "";
    if (ok) {
        char perr[256];
        const hv_buf_t *sent = &r->event->packed;
        /* hiventd answers a new event it stored as sent with {"uuid": UUID}
         * (compact replies) or with the same bytes; the event as built is
         * then the published one.  A duplicate returns the stored event,
         * which is parsed. */
        if (resp && (is_own_uuid(resp, size, r->event->uuid) ||
                     (sent->data && size == sent->len &&
                      memcmp(resp, sent->data, size) == 0))) {
            published = r->event;
            r->event = NULL;
        } else if (!resp ||
                   hv_event_parse(resp, size, &published, perr, sizeof perr) != HIVENT_OK) {
            /* A server that returns no event still stored it; report the
             * event as sent. */
            published = hivent_event_dup(r->event);
        }
    } else {
        describe_response(resp, size, why, sizeof why);
        /* Each rejection also reaches its delivery report, and a full
         * partition rejects every emit, so the warnings are limited. */
        char line[1024];
        snprintf(line, sizeof line, "server rejected event %s (uuid %s): %s", r->event->name,
                 r->event->uuid ? r->event->uuid : "-", why);
        log_limited(h, &timers_of(h)->emit_rejects, "emit", line);
    }
    pthread_mutex_lock(&h->lock);
    hv_post_delivery_locked(h, r, ok ? HIVENT_OK : HIVENT_ERR_REJECTED, why, published);
    pthread_mutex_unlock(&h->lock);
}

/* Consumer side: event:received {event, queue}. */
void hv_consumer_on_event(hv_handle_t *h, const hv_frame_t *f);

/* Logs an error reply to an ack or quarantine.  After a rebalance the
 * previous owner's acks of moved events are rejected in bursts, so the
 * warnings are limited. */
static void log_push_rejection(hv_handle_t *h, const hv_frame_t *f)
{
    const unsigned char *resp;
    size_t size;
    if (reply_status(f, &resp, &size))
        return;
    char why[512], line[1024];
    describe_response(resp, size, why, sizeof why);
    snprintf(line, sizeof line, "server rejected an ack or quarantine on %s: %s", f->topic, why);
    log_limited(h, &timers_of(h)->push_rejects, "consumer", line);
}

static void on_reply(hv_handle_t *h, const hv_frame_t *f)
{
    /* Acks and quarantines go out with a nil ref, and the server's replies
     * to them carry it back; nothing waits for those replies, but a
     * rejected one is logged. */
    if (f->ref.kind != HV_REF_INT) {
        log_push_rejection(h, f);
        return;
    }
    pthread_mutex_lock(&h->lock);
    hv_req_t *r = hv_req_take_ref(&h->inflight, f->ref.num);
    pthread_mutex_unlock(&h->lock);
    if (!r) {
        hv_log(h, LOG_DEBUG, "conn", "reply to unknown ref %lld on %s dropped",
               (long long)f->ref.num, f->topic);
        return;
    }
    const unsigned char *resp;
    size_t size;
    int ok = reply_status(f, &resp, &size);
    switch (r->kind) {
    case HV_REQ_EMIT:
        on_emit_reply(h, r, ok, resp, size);
        pthread_mutex_lock(&h->lock);
        int next = h->probe_left > 0 && h->pending.count > 0;
        pthread_mutex_unlock(&h->lock);
        if (next && h->wsi)
            lws_callback_on_writable(h->wsi);
        return;
    case HV_REQ_JOIN:
        on_join_reply(h, ok, resp, size);
        break;
    case HV_REQ_HEARTBEAT:
        h->heartbeat_ref = -1;
        break;
    case HV_REQ_LEAVE:
        hv_log(h, LOG_INFO, "conn", "left %s", h->topic);
        h->joined = 0;
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        break;
    case HV_REQ_PUSH:
        break;
    }
    hv_req_free(r);
}

static void on_message(hv_handle_t *h, const unsigned char *data, size_t len)
{
    hv_frame_t f;
    char err[256];
    if (!h->rx_binary) {
        hv_log(h, LOG_WARNING, "conn", "text frame of %zu bytes dropped; vsn 1.0.0 uses "
               "binary frames", len);
        return;
    }
    if (hv_frame_decode(data, len, (size_t)h->conf->max_frame_size, &f, err, sizeof err) != 0) {
        hv_log(h, LOG_WARNING, "conn", "malformed frame of %zu bytes dropped: %s", len, err);
        return;
    }
    int ours = strcmp(f.topic, h->topic) == 0;
    if (strcmp(f.event, "phx_reply") == 0) {
        on_reply(h, &f);
    } else if (ours && (strcmp(f.event, "phx_close") == 0 ||
                        strcmp(f.event, "phx_error") == 0)) {
        hv_log(h, LOG_WARNING, "conn", "server sent %s for %s; rejoining", f.event, f.topic);
        h->joined = 0;
        pthread_mutex_lock(&h->lock);
        requeue_inflight_locked(h);
        pthread_mutex_unlock(&h->lock);
        timers_of(h)->need_join = 1;
        lws_callback_on_writable(h->wsi);
    } else if (ours && strcmp(f.event, "event:received") == 0 && h->role == HV_ROLE_CONSUMER) {
        hv_consumer_on_event(h, &f);
    } else {
        hv_log(h, LOG_DEBUG, "conn", "unexpected %s on %s dropped", f.event, f.topic);
    }
    hv_frame_clear(&f);
}

static int on_receive(hv_handle_t *h, struct lws *wsi, const void *in, size_t len)
{
    if (h->rx.len == 0)
        h->rx_binary = lws_frame_is_binary(wsi);
    if (h->rx.len + len > (size_t)h->conf->max_frame_size) {
        hv_log(h, LOG_ERR, "conn", "incoming message exceeds max_frame_size (%d bytes); "
               "closing the connection", h->conf->max_frame_size);
        snprintf(h->last_error, sizeof h->last_error, "incoming message too large");
        return -1;
    }
    if (hv_buf_append(&h->rx, in, len) != 0)
        return -1;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    on_message(h, h->rx.data, h->rx.len);
    h->rx.len = 0;
    return 0;
}

static void on_established(hv_handle_t *h, struct lws *wsi)
{
    hv_timers_t *t = timers_of(h);
    h->wsi = wsi;
    h->heartbeat_ref = -1;
    hv_log(h, LOG_INFO, "conn", "connected to %s:%d", h->conf->host, h->conf->port);
    t->need_join = 1;
    t->need_heartbeat = 0;
    lws_callback_on_writable(wsi);
    if (h->conf->heartbeat_ms > 0)
        lws_sul_schedule(h->ctx, 0, &t->heartbeat, heartbeat_cb,
                         (lws_usec_t)h->conf->heartbeat_ms * LWS_US_PER_MS);
}

static void on_wake(hv_handle_t *h)
{
    pthread_mutex_lock(&h->lock);
    int has_work = h->pending.count > 0;
    int closing = h->closing;
    h->wake_pending = 0;
    pthread_mutex_unlock(&h->lock);
    if (!h->wsi)
        return;
    if (closing && h->joined)
        timers_of(h)->need_leave = 1;
    if (has_work || closing)
        lws_callback_on_writable(h->wsi);
}

/*
 * Runs for each certificate of the server's chain during the handshake,
 * after OpenSSL checked it (chain, dates and, unless tls.verify is false,
 * the host name).  libwebsockets 4.1 reports a failed check only as an
 * OpenSSL error code, so the reason is kept here for the error message.
 * Returns 0: the verdict stays with OpenSSL.
 */
static int note_server_cert(hv_handle_t *h, X509_STORE_CTX *store, int preverify_ok)
{
    if (!preverify_ok)
        snprintf(timers_of(h)->tls_detail, sizeof timers_of(h)->tls_detail, "%s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
    return 0;
}

/* Removes and returns the largest emit awaiting a reply, or NULL. */
static hv_req_t *take_largest_inflight_locked(hv_handle_t *h)
{
    hv_req_t *best = NULL;
    for (hv_req_t *r = h->inflight.head; r; r = r->next)
        if (r->kind == HV_REQ_EMIT && (!best || r->frame_len > best->frame_len))
            best = r;
    return best ? hv_req_take_ref(&h->inflight, best->ref) : NULL;
}

/*
 * Handles close code 1007 (invalid frame data): the server could not
 * accept one of the frames in flight, and sending the same batch again
 * would only repeat the close, forever, since each connection succeeds.
 * With one emit in flight that emit is the cause and fails with
 * HIVENT_ERR_REJECTED.  With several, they are sent again one at a time,
 * so the next 1007 close finds the cause alone in flight.
 */
static void on_invalid_frame_close(hv_handle_t *h)
{
    pthread_mutex_lock(&h->lock);
    int emits = 0;
    hv_req_t *only = NULL;
    for (hv_req_t *r = h->inflight.head; r; r = r->next) {
        if (r->kind == HV_REQ_EMIT) {
            emits++;
            only = r;
        }
    }
    if (emits != 1) {
        h->probe_left = emits;
        pthread_mutex_unlock(&h->lock);
        if (emits > 1)
            hv_log(h, LOG_WARNING, "conn", "%s with %d emits in flight; sending them again "
                   "one at a time to find the one the server cannot accept", h->last_error,
                   emits);
        return;
    }
    h->probe_left = 0;
    hv_req_t *r = hv_req_take_ref(&h->inflight, only->ref);
    char name[256], uuid[64];
    snprintf(name, sizeof name, "%s", r->event->name);
    snprintf(uuid, sizeof uuid, "%s", r->event->uuid ? r->event->uuid : "-");
    char msg[sizeof h->last_error + 160];
    snprintf(msg, sizeof msg, "%s; the server could not accept the frame of this emit, so it "
             "is not sent again", h->last_error);
    hv_post_delivery_locked(h, r, HIVENT_ERR_REJECTED, msg, NULL);
    pthread_mutex_unlock(&h->lock);
    /* hv_log() takes the handle lock itself. */
    hv_log(h, LOG_ERR, "emit", "event %s (uuid %s) rejected: %s", name, uuid, msg);
}

/*
 * Records the server's close code and reason for the reconnect log.  Close
 * code 1009 (message too big) means a frame was over the server's limit;
 * resending it would only repeat the close, so the largest emit in flight
 * fails with HIVENT_ERR_TOO_LARGE instead of going back to the queue.
 * Code 1007 is handled by on_invalid_frame_close().
 */
static void on_peer_close(hv_handle_t *h, const unsigned char *in, size_t len)
{
    int code = len >= 2 ? (in[0] << 8) | in[1] : 1005;
    int reason_len = len > 2 ? (int)(len - 2) : 0;
    if (reason_len > 200)
        reason_len = 200;
    snprintf(h->last_error, sizeof h->last_error, "server closed the connection with code "
             "%d%s%.*s", code, reason_len ? ": " : "", reason_len,
             reason_len ? (const char *)in + 2 : "");
    h->last_err = HIVENT_ERR_CONNECTION;
    if (code == 1007) {
        on_invalid_frame_close(h);
        return;
    }
    if (code != 1009)
        return;
    pthread_mutex_lock(&h->lock);
    hv_req_t *r = take_largest_inflight_locked(h);
    if (r) {
        char msg[sizeof h->last_error + 160];
        size_t size = r->event && r->event->packed.len ? r->event->packed.len : r->frame_len;
        snprintf(msg, sizeof msg, "%s; this emit of %zu bytes packed is over the server's "
                 "frame limit (hiventd --max-frame-size, --max-inflated-size)", h->last_error,
                 size);
        hv_post_delivery_locked(h, r, HIVENT_ERR_TOO_LARGE, msg, NULL);
    }
    pthread_mutex_unlock(&h->lock);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    hv_handle_t *h = lws_context_user(lws_get_context(wsi));
    if (!h)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        on_established(h, wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        const char *why = in ? (const char *)in : "connection error";
        char msg[512];
        hivent_err_t err = classify_error(h, wsi, why, msg, sizeof msg);
        h->connect_failed = 1;
        on_disconnect(h, err, msg);
        break;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (wsi == h->wsi)
            on_peer_close(h, in, len);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (wsi == h->wsi)
            on_disconnect(h, h->last_err ? h->last_err : HIVENT_ERR_CONNECTION,
                          h->last_error[0] ? h->last_error : "connection closed");
        h->last_err = 0;
        h->last_error[0] = 0;
        break;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        /* libwebsockets 4.1 closes an attempt whose upgrade reply does not
         * come within timeout_secs with this reason only, not with
         * CLIENT_CONNECTION_ERROR, so without this the state stays
         * connecting for good. */
        if (wsi == h->wsi) {
            char msg[512];
            snprintf(msg, sizeof msg, "connection to %s:%d closed before the WebSocket "
                     "upgrade completed: no upgrade reply within connect_timeout (%d ms), "
                     "or the server closed the connection",
                     h->conf->host, h->conf->port, h->conf->connect_timeout_ms);
            on_disconnect(h, HIVENT_ERR_CONNECTION, msg);
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(h, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (wsi != h->wsi)
            return 0;
        return on_writeable(h, wsi);
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        return note_server_cert(h, user, (int)len);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        on_wake(h);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"hivent", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *io_main(void *arg)
{
    hv_handle_t *h = arg;
    hv_timers_t *t = timers_of(h);
    lws_sul_schedule(h->ctx, 0, &t->tick, tick_cb, TICK_US);
    connect_now(h);
    while (!stopping(h)) {
        if (lws_service(h->ctx, 0) < 0)
            break;
    }
    lws_sul_cancel(&t->tick);
    lws_sul_cancel(&t->heartbeat);
    lws_sul_cancel(&t->reconnect);
    pthread_mutex_lock(&h->lock);
    struct lws_context *ctx = h->ctx;
    h->ctx = NULL;
    pthread_mutex_unlock(&h->lock);
    lws_context_destroy(ctx);
    free(t->batch);
    t->batch = NULL;
    return NULL;
}

static void quiet_lws_log(int level, const char *line)
{
    (void)level;
    (void)line;
}

static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;

/* libwebsockets logging is process-wide; the library reports through its
 * own log callback instead, so lws output is off unless HIVENT_LWS_DEBUG
 * is set in the environment. */
static void setup_lws_log(void)
{
    if (getenv("HIVENT_LWS_DEBUG"))
        lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO, NULL);
    else
        lws_set_log_level(0, quiet_lws_log);
}

int hv_conn_start(hv_handle_t *h, char *err, size_t err_size)
{
    pthread_once(&lws_log_once, setup_lws_log);
    hv_timers_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    t->h = h;
    h->timers = t;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = h;
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = (unsigned int)(h->conf->connect_timeout_ms + 999) / 1000;
    /* Without this option libwebsockets 4.1 sets up no client TLS context,
     * which spares a plain ws connection the ~45 ms and several hundred
     * kilobytes of loading the system CA store. */
    if (h->conf->secure)
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (h->conf->ca_file && access(h->conf->ca_file, R_OK) != 0) {
        snprintf(err, err_size, "tls.ca_file %s: %s", h->conf->ca_file, strerror(errno));
        free(t);
        h->timers = NULL;
        return -1;
    }
    if (h->conf->ca_file)
        info.client_ssl_ca_filepath = h->conf->ca_file;
    if (h->conf->secure && !h->conf->tls_verify)
        hv_log(h, LOG_WARNING, "conn", "tls.verify is false: the server certificate and host "
               "name are not checked; use this only for testing");
    h->ctx = lws_create_context(&info);
    if (!h->ctx) {
        snprintf(err, err_size, "could not create the libwebsockets context (check "
                 "tls.ca_file%s%s)", h->conf->ca_file ? " = " : "",
                 h->conf->ca_file ? h->conf->ca_file : "");
        free(t);
        h->timers = NULL;
        return -1;
    }
    if (pthread_create(&h->thread, NULL, io_main, h) != 0) {
        snprintf(err, err_size, "could not start the I/O thread");
        lws_context_destroy(h->ctx);
        h->ctx = NULL;
        free(t);
        h->timers = NULL;
        return -1;
    }
    h->thread_started = 1;
    return 0;
}

void hv_conn_wake(hv_handle_t *h)
{
    /* The lock keeps the I/O thread from destroying the context while
     * lws_cancel_service(), which only writes to a pipe, uses it. */
    pthread_mutex_lock(&h->lock);
    if (!h->wake_pending && h->ctx) {
        h->wake_pending = 1;
        lws_cancel_service(h->ctx);
    }
    pthread_mutex_unlock(&h->lock);
}

void hv_conn_stop(hv_handle_t *h)
{
    if (!h->thread_started) {
        free(h->timers);
        h->timers = NULL;
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    if (h->ctx)
        lws_cancel_service(h->ctx);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    h->thread_started = 0;
    free(h->timers);
    h->timers = NULL;
}
