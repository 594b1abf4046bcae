/* Consumer: joins event:TOPIC, dispatches consumed events, acks and rejects. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "frame.h"
#include "handle.h"
#include "mp.h"

/* The server accepts at most this many partitions per service. */
#define HV_MAX_PARTITIONS 4096

struct hivent_consumer_s {
    hv_handle_t h;
};

static void set_err(char *err, size_t size, const char *msg)
{
    if (err && size)
        snprintf(err, size, "%s", msg);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int build_join(hv_handle_t *h)
{
    hivent_conf_t *c = h->conf;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &h->join_payload, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, c->consumer_version > 0 ? 4 : 3);
    pack_str(&pk, "partition_count");
    msgpack_pack_int(&pk, h->partition_count);
    pack_str(&pk, "ack");
    if (c->consumer_ack)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pack_str(&pk, "prefetch");
    msgpack_pack_int(&pk, c->consumer_prefetch);
    if (c->consumer_version > 0) {
        pack_str(&pk, "version");
        msgpack_pack_int(&pk, c->consumer_version);
    }
    return h->join_payload.data ? 0 : -1;
}

static int check_args(hivent_conf_t *conf, const char *topic, const char *service,
                      int partition_count, char *err, size_t err_size)
{
    if (!conf) {
        set_err(err, err_size, "conf must not be NULL");
        return -1;
    }
    if (hv_check_name(topic, "topic", err, err_size) != 0 ||
        hv_check_name(service, "service", err, err_size) != 0)
        return -1;
    if (strcmp(topic, "*") != 0 && strchr(topic, '*')) {
        snprintf(err, err_size, "topic \"%s\" is invalid: \"*\" alone matches every event, "
                 "and any other topic matches one event name exactly", topic);
        return -1;
    }
    if (strchr(service, ':')) {
        snprintf(err, err_size, "service \"%s\" must not contain ':' because queue names "
                 "are SERVICE:PARTITION", service);
        return -1;
    }
    if (partition_count < 1 || partition_count > HV_MAX_PARTITIONS) {
        snprintf(err, err_size, "partition_count must be from 1 to %d, got %d",
                 HV_MAX_PARTITIONS, partition_count);
        return -1;
    }
    return 0;
}

static int default_instance_name(hivent_conf_t *conf)
{
    if (conf->consumer_name)
        return 0;
    char host[200] = "localhost";
    char name[256];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
    conf->consumer_name = strdup(name);
    return conf->consumer_name ? 0 : -1;
}

HIVENT_API hivent_consumer_t *hivent_consumer_new(hivent_conf_t *conf, const char *topic,
                                                  const char *service, int partition_count,
                                                  char *errstr, size_t errstr_size)
{
    char local[256];
    if (!errstr) {
        errstr = local;
        errstr_size = sizeof local;
    }
    if (check_args(conf, topic, service, partition_count, errstr, errstr_size) != 0)
        return NULL;
    if (default_instance_name(conf) != 0) {
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    hivent_consumer_t *c = calloc(1, sizeof *c);
    char channel[HV_NAME_MAX + 8];
    snprintf(channel, sizeof channel, "event:%s", topic);
    if (!c || hv_handle_init(&c->h, conf, HV_ROLE_CONSUMER, c, channel, errstr,
                             errstr_size) != 0) {
        free(c);
        return NULL;
    }
    hv_handle_t *h = &c->h;
    h->partition_count = partition_count;
    h->service = strdup(service);
    if (!h->service || build_join(h) != 0) {
        set_err(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (h->memory) {
        h->state = HIVENT_STATE_CONNECTED;
        h->joined = 1;
        hv_memory_register(h);
        return c;
    }
    if (hv_conn_start(h, errstr, errstr_size) != 0)
        goto fail;
    return c;
fail:
    h->conf = NULL; /* stays with the caller on failure */
    hv_handle_free(h);
    free(c);
    return NULL;
}

/* Parses the partition number after the last ':' of a queue name. */
static int queue_partition(const char *queue)
{
    const char *colon = strrchr(queue, ':');
    if (!colon || !colon[1])
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    return *end || p < 0 || p > HV_MAX_PARTITIONS ? -1 : (int)p;
}

void hv_consumer_on_event(hv_handle_t *h, const hv_frame_t *f)
{
    const unsigned char *ev_span, *q_span;
    size_t ev_size, q_size;
    char err[256];
    if (hv_mp_map_find(f->payload, f->payload_size, "event", &ev_span, &ev_size) != 1 ||
        hv_mp_map_find(f->payload, f->payload_size, "queue", &q_span, &q_size) != 1) {
        hv_log(h, LOG_WARNING, "consumer", "event:received without event or queue dropped");
        return;
    }
    hivent_event_t *ev;
    if (hv_event_parse(ev_span, ev_size, &ev, err, sizeof err) != HIVENT_OK) {
        hv_log(h, LOG_WARNING, "consumer", "malformed event on %s dropped: %s", h->topic, err);
        return;
    }
    ev->queue = hv_mp_strdup(q_span, q_size);
    if (!ev->queue) {
        hv_log(h, LOG_WARNING, "consumer", "event %s with a non-string queue dropped",
               ev->uuid ? ev->uuid : "-");
        hivent_event_destroy(ev);
        return;
    }
    ev->partition = queue_partition(ev->queue);
    int want = h->conf->consumer_version;
    if (want > 0 && ev->version != want && !h->extensions) {
        /* A server without the version filter sends every version; the
         * filter then runs here and the event counts as done. */
        hivent_event_destroy(ev);
        return;
    }
    hivent_notice_t *n = hv_notice_new(HIVENT_NOTICE_EVENT);
    if (!n) {
        hivent_event_destroy(ev);
        return;
    }
    n->event = ev;
    hv_notice_push(h, n);
}

static hivent_err_t check_consumer(hivent_consumer_t *c, const hivent_event_t *ev)
{
    if (!c || !ev || !ev->queue)
        return HIVENT_ERR_INVALID_ARG;
    if (hv_handle_forked(&c->h))
        return HIVENT_ERR_FORKED;
    return HIVENT_OK;
}

static hivent_err_t push(hv_handle_t *h, const char *event, hv_buf_t *payload)
{
    hv_req_t *r = hv_req_build(h, HV_REQ_PUSH, h->topic, event, payload->data, payload->len);
    hv_buf_free(payload);
    if (!r)
        return HIVENT_ERR_NO_MEMORY;
    pthread_mutex_lock(&h->lock);
    int closed = h->stopping || h->state == HIVENT_STATE_FAILED;
    if (!closed)
        hv_req_append(&h->pending, r);
    pthread_mutex_unlock(&h->lock);
    if (closed) {
        hv_req_free(r);
        return HIVENT_ERR_STATE;
    }
    hv_conn_wake(h);
    return HIVENT_OK;
}

HIVENT_API hivent_err_t hivent_consumer_ack(hivent_consumer_t *c, const hivent_event_t *ev)
{
    hivent_err_t rc = check_consumer(c, ev);
    if (rc != HIVENT_OK)
        return rc;
    hv_handle_t *h = &c->h;
    if (h->memory || !h->extensions || !ev->uuid)
        return HIVENT_OK;
    hv_buf_t body = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "queue");
    pack_str(&pk, ev->queue);
    pack_str(&pk, "uuid");
    pack_str(&pk, ev->uuid);
    return push(h, "event:ack", &body);
}

HIVENT_API hivent_err_t hivent_consumer_reject(hivent_consumer_t *c, const hivent_event_t *ev,
                                               const char *reason)
{
    hivent_err_t rc = check_consumer(c, ev);
    if (rc != HIVENT_OK)
        return rc;
    hv_handle_t *h = &c->h;
    if (!reason || !hv_utf8_valid(reason, strlen(reason)))
        reason = "";
    hv_log(h, LOG_NOTICE, "consumer", "event %s (uuid %s) from %s sent to the dead-letter "
           "queue: %s", ev->name, ev->uuid ? ev->uuid : "-", ev->queue, reason);
    if (h->memory) {
        hv_memory_dead_letter(ev, reason);
        return HIVENT_OK;
    }
    size_t ev_size;
    const void *packed = hivent_event_msgpack(ev, &ev_size);
    if (!packed)
        return HIVENT_ERR_NO_MEMORY;
    hv_buf_t body = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "event");
    hv_buf_append(&body, packed, ev_size);
    pack_str(&pk, "queue");
    pack_str(&pk, ev->queue);
    pack_str(&pk, "reason");
    pack_str(&pk, reason);
    return push(h, "event:quarantine", &body);
}

static void process_event(hivent_consumer_t *c, hivent_notice_t *n)
{
    hivent_conf_t *conf = c->h.conf;
    if (!conf->process_cb) {
        hv_log(&c->h, LOG_WARNING, "consumer", "no process callback set; event %s acknowledged "
               "unprocessed", n->event->uuid ? n->event->uuid : "-");
        hivent_consumer_ack(c, n->event);
        return;
    }
    char reason[512] = "";
    int rc = conf->process_cb(c, n->event, reason, sizeof reason, conf->opaque);
    reason[sizeof reason - 1] = 0;
    if (rc == 0)
        hivent_consumer_ack(c, n->event);
    else
        hivent_consumer_reject(c, n->event, reason[0] ? reason : "process callback failed");
}

static void dispatch_notice(hv_handle_t *h, hivent_notice_t *n)
{
    if (n->type == HIVENT_NOTICE_EVENT)
        process_event(h->owner, n);
    hivent_notice_destroy(n);
}

HIVENT_API int hivent_consumer_poll(hivent_consumer_t *c, int timeout_ms)
{
    if (!c || hv_handle_forked(&c->h))
        return 0;
    return hv_poll(&c->h, timeout_ms, dispatch_notice);
}

HIVENT_API hivent_notice_t *hivent_consumer_next(hivent_consumer_t *c, int timeout_ms)
{
    if (!c || hv_handle_forked(&c->h))
        return NULL;
    return hv_notice_pop(&c->h, timeout_ms);
}

HIVENT_API hivent_err_t hivent_consumer_close(hivent_consumer_t *c, int timeout_ms)
{
    if (!c)
        return HIVENT_ERR_INVALID_ARG;
    if (hv_handle_forked(&c->h))
        return HIVENT_ERR_FORKED;
    hv_handle_t *h = &c->h;
    if (h->memory) {
        hv_memory_unregister(h);
        pthread_mutex_lock(&h->lock);
        h->state = HIVENT_STATE_CLOSED;
        pthread_mutex_unlock(&h->lock);
        return HIVENT_OK;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : hv_now_ms() + timeout_ms;
    pthread_mutex_lock(&h->lock);
    h->closing = 1;
    int connected = h->state == HIVENT_STATE_CONNECTED;
    pthread_mutex_unlock(&h->lock);
    hv_conn_wake(h);
    hivent_err_t rc = HIVENT_OK;
    if (connected) {
        pthread_mutex_lock(&h->lock);
        while (h->state != HIVENT_STATE_CLOSED && hv_wait_until(h, deadline) == 0)
            ;
        if (h->state != HIVENT_STATE_CLOSED)
            rc = HIVENT_ERR_TIMED_OUT;
        pthread_mutex_unlock(&h->lock);
    }
    hv_conn_stop(h);
    pthread_mutex_lock(&h->lock);
    h->state = HIVENT_STATE_CLOSED;
    pthread_mutex_unlock(&h->lock);
    return rc;
}

HIVENT_API void hivent_consumer_destroy(hivent_consumer_t *c)
{
    if (!c)
        return;
    hv_handle_t *h = &c->h;
    if (hv_handle_forked(h)) {
        free(c);
        return;
    }
    if (h->memory)
        hv_memory_unregister(h);
    else if (h->thread_started)
        hivent_consumer_close(c, 2000);
    hv_conn_stop(h);
    hv_handle_free(h);
    free(c);
}

HIVENT_API int hivent_consumer_fd(hivent_consumer_t *c)
{
    return c ? c->h.efd : -1;
}

HIVENT_API hivent_state_t hivent_consumer_state(hivent_consumer_t *c)
{
    if (!c)
        return HIVENT_STATE_CLOSED;
    pthread_mutex_lock(&c->h.lock);
    hivent_state_t s = c->h.state;
    pthread_mutex_unlock(&c->h.lock);
    return s;
}
