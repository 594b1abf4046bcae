/*
 * WebSocket side of hiventd: the upgrade check, Phoenix Channels frames
 * (vsn 1.0.0 MessagePack and vsn 2.0.0 JSON), joins, emits, acks and
 * quarantines, and the send queue of each connection.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "event.h"
#include "hiventd.h"
#include "log.h"
#include "mp.h"
#include "partition.h"

/* Largest send queue of one connection before it is closed as not reading. */
#define OUT_QUEUE_MAX_BYTES (64u * 1024 * 1024)
#define DEFAULT_PREFETCH 100
#define MAX_PREFETCH 100000

typedef struct pss {
    hvd_conn_t *conn;
    void *http;
} pss_t;

static hvd_server_t *server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- connection registry ---- */

static size_t bucket_of(uint64_t id)
{
    return (size_t)(id * 0x9E3779B97F4A7C15ull >> 52) % HVD_CONN_BUCKETS;
}

hvd_conn_t *hvd_conn_find(hvd_server_t *srv, uint64_t id)
{
    for (hvd_conn_t *c = srv->conn_buckets[bucket_of(id)]; c; c = c->hash_next)
        if (c->id == id)
            return c;
    return NULL;
}

static void conn_register(hvd_server_t *srv, hvd_conn_t *c)
{
    size_t b = bucket_of(c->id);
    c->hash_next = srv->conn_buckets[b];
    srv->conn_buckets[b] = c;
    c->all_next = srv->conns;
    if (srv->conns)
        srv->conns->all_prev = c;
    srv->conns = c;
    srv->conn_count++;
}

static void conn_unregister(hvd_server_t *srv, hvd_conn_t *c)
{
    for (hvd_conn_t **pp = &srv->conn_buckets[bucket_of(c->id)]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == c) {
            *pp = c->hash_next;
            break;
        }
    }
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        srv->conns = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    srv->conn_count--;
}

static void conn_free(hvd_conn_t *c)
{
    for (hvd_out_t *o = c->out_head, *next; o; o = next) {
        next = o->next;
        free(o);
    }
    for (int i = 0; i < c->channel_count; i++) {
        free(c->channels[i].topic);
        hv_ref_clear(&c->channels[i].join_ref);
    }
    free(c->channels);
    hv_buf_free(&c->rx);
    free(c->client_id);
    free(c->service);
    free(c->name);
    free(c);
}

/* ---- sending ---- */

void hvd_conn_close(hvd_conn_t *c, int status, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_status = status;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    hvd_info("conn %" PRIu64 " (%s): closing with status %d: %s", c->id, c->peer, status,
             reason);
    lws_callback_on_writable(c->wsi);
}

int hvd_conn_send(hvd_conn_t *c, const char *topic, const char *event, const hv_ref_t *ref,
                  const hv_ref_t *join_ref, const void *payload, size_t payload_size)
{
    if (c->closing)
        return -1;
    hv_frame_t f;
    memset(&f, 0, sizeof(f));
    f.topic = (char *)topic;
    f.event = (char *)event;
    f.ref = *ref;
    if (join_ref)
        f.join_ref = *join_ref;
    f.payload = (unsigned char *)payload;
    f.payload_size = payload_size;

    /* The frame is encoded behind room for its hvd_out_t header and
     * LWS_PRE bytes, so the buffer becomes the queue entry as it is. */
    hv_buf_t enc = {0};
    size_t head = offsetof(hvd_out_t, data) + LWS_PRE;
    size_t estimate = head + payload_size + 128 + (topic ? strlen(topic) : 0) +
                      (event ? strlen(event) : 0);
    if (hv_buf_reserve(&enc, estimate) < 0)
        return -1;
    enc.len = head;
    int rc = c->json ? hv_frame_encode_json(&f, &enc) : hv_frame_encode(&f, c->gzip, &enc);
    if (rc < 0) {
        hvd_err("conn %" PRIu64 ": cannot encode %s on %s", c->id, event, topic);
        hv_buf_free(&enc);
        return -1;
    }
    size_t size = enc.len - head;
    if (c->out_bytes + size > OUT_QUEUE_MAX_BYTES) {
        hv_buf_free(&enc);
        hvd_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                       "send queue limit exceeded: the client does not read its frames");
        return -1;
    }
    hvd_out_t *o = (hvd_out_t *)(void *)hv_buf_steal(&enc, NULL);
    o->next = NULL;
    o->size = size;
    o->binary = !c->json;

    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_count++;
    c->out_bytes += size;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int hvd_conn_reply_ok(hvd_conn_t *c, const char *topic, const hv_ref_t *ref,
                      const hv_ref_t *join_ref, const void *response, size_t response_size)
{
    hv_buf_t payload = {0};
    /* {"status": "ok", "response": ...} adds 20 bytes to the response. */
    int rc = hv_buf_reserve(&payload, response_size + 32);
    if (rc == 0)
        rc = hv_pack_reply(&payload, "ok", response, response_size);
    if (rc == 0)
        rc = hvd_conn_send(c, topic, "phx_reply", ref, join_ref, payload.data, payload.len);
    hv_buf_free(&payload);
    return rc;
}

int hvd_conn_reply_error(hvd_conn_t *c, const char *topic, const hv_ref_t *ref,
                         const hv_ref_t *join_ref, const char *reason)
{
    hv_buf_t resp = {0}, payload = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &resp, hv_buf_msgpack_write);
    size_t len = strlen(reason);
    int rc = -1;
    if (msgpack_pack_map(&pk, 1) == 0 && msgpack_pack_str_with_body(&pk, "reason", 6) == 0 &&
        msgpack_pack_str_with_body(&pk, reason, len) == 0 &&
        hv_pack_reply(&payload, "error", resp.data, resp.len) == 0)
        rc = hvd_conn_send(c, topic, "phx_reply", ref, join_ref, payload.data, payload.len);
    hvd_debug("conn %" PRIu64 ": error reply on %s: %s", c->id, topic, reason);
    hv_buf_free(&resp);
    hv_buf_free(&payload);
    return rc;
}

/* Frames are written in batches, so one send() carries many replies.  Each
 * frame gets its WebSocket header here, and the batch goes to lws_write()
 * as LWS_WRITE_HTTP, which libwebsockets passes to the socket unframed.
 * libwebsockets buffers what the socket does not take at once.  hiventd
 * enables no WebSocket extension, so the frames need no other change. */
#define WRITE_BATCH_BYTES (128u * 1024)
#define WRITE_BATCHES_PER_CALLBACK 8
static unsigned char write_batch[LWS_PRE + WRITE_BATCH_BYTES];

/* Writes the server-to-client (unmasked) WebSocket header of a final frame
 * of @size bytes at @p; returns its length (2, 4 or 10 bytes). */
static size_t put_frame_header(unsigned char *p, size_t size, int binary)
{
    p[0] = (unsigned char)(0x80 | (binary ? 0x2 : 0x1));
    if (size < 126) {
        p[1] = (unsigned char)size;
        return 2;
    }
    if (size <= 0xffff) {
        p[1] = 126;
        p[2] = (unsigned char)(size >> 8);
        p[3] = (unsigned char)size;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)size >> (56 - 8 * i));
    return 10;
}

static hvd_out_t *out_pop(hvd_conn_t *c)
{
    hvd_out_t *o = c->out_head;
    c->out_head = o->next;
    if (!c->out_head)
        c->out_tail = NULL;
    c->out_count--;
    c->out_bytes -= o->size;
    return o;
}

/* Writes one batch of queued frames; returns 0, or -1 when the write failed. */
static int write_one_batch(hvd_conn_t *c)
{
    hvd_out_t *o = c->out_head;
    if (o->size + 10 > WRITE_BATCH_BYTES) {
        /* Too large for the batch buffer: lws frames it in place. */
        out_pop(c);
        int n = lws_write(c->wsi, o->data + LWS_PRE, o->size,
                          o->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        int failed = n < (int)o->size;
        free(o);
        return failed ? -1 : 0;
    }
    unsigned char *start = write_batch + LWS_PRE, *w = start;
    while ((o = c->out_head) && (size_t)(w - start) + o->size + 10 <= WRITE_BATCH_BYTES) {
        out_pop(c);
        w += put_frame_header(w, o->size, o->binary);
        memcpy(w, o->data + LWS_PRE, o->size);
        w += o->size;
        free(o);
    }
    size_t len = (size_t)(w - start);
    return lws_write(c->wsi, start, len, LWS_WRITE_HTTP) < (int)len ? -1 : 0;
}

static int conn_writeable(hvd_conn_t *c)
{
    for (int i = 0; i < WRITE_BATCHES_PER_CALLBACK && c->out_head; i++) {
        if (i > 0 && lws_send_pipe_choked(c->wsi))
            break;
        if (write_one_batch(c) < 0) {
            hvd_warn("conn %" PRIu64 " (%s): write failed; closing", c->id, c->peer);
            return -1;
        }
        if (c->consumer && !c->consumer->ack)
            hvd_consumer_pump(c->consumer);
    }
    if (c->out_head) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->closing) {
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_status,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    return 0;
}

/* ---- MessagePack helpers for payload fields ---- */

/* Reads integer field @key of @map; returns 1 found, 0 absent, -1 wrong type. */
static int map_int(const hv_frame_t *f, const char *key, int64_t *out)
{
    const unsigned char *val;
    size_t size;
    int rc = hv_mp_map_find(f->payload, f->payload_size, key, &val, &size);
    if (rc <= 0)
        return rc;
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, val, size);
    if (hv_mp_read(&r, &v) < 0)
        return -1;
    if (v.type == HV_MP_NIL)
        return 0;
    if (v.type == HV_MP_INT) {
        *out = v.i;
        return 1;
    }
    if (v.type == HV_MP_UINT && v.u <= INT64_MAX) {
        *out = (int64_t)v.u;
        return 1;
    }
    return -1;
}

/* Reads boolean field @key; returns 1 found, 0 absent, -1 wrong type. */
static int map_bool(const hv_frame_t *f, const char *key, int *out)
{
    const unsigned char *val;
    size_t size;
    int rc = hv_mp_map_find(f->payload, f->payload_size, key, &val, &size);
    if (rc <= 0)
        return rc;
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, val, size);
    if (hv_mp_read(&r, &v) < 0)
        return -1;
    if (v.type == HV_MP_NIL)
        return 0;
    if (v.type != HV_MP_BOOL)
        return -1;
    *out = v.boolean;
    return 1;
}

/* Copies string field @key; returns a new string, NULL when absent or not a string. */
static char *map_str(const hv_frame_t *f, const char *key)
{
    const unsigned char *val;
    size_t size;
    if (hv_mp_map_find(f->payload, f->payload_size, key, &val, &size) != 1)
        return NULL;
    return hv_mp_strdup(val, size);
}

/* ---- channels ---- */

static hvd_channel_t *find_channel(hvd_conn_t *c, const char *topic)
{
    for (int i = 0; i < c->channel_count; i++)
        if (strcmp(c->channels[i].topic, topic) == 0)
            return &c->channels[i];
    return NULL;
}

static int add_channel(hvd_conn_t *c, const char *topic, const hv_ref_t *join_ref)
{
    hvd_channel_t *chs = realloc(c->channels, (size_t)(c->channel_count + 1) * sizeof(*chs));
    if (!chs)
        return -1;
    c->channels = chs;
    hvd_channel_t *ch = &chs[c->channel_count];
    memset(ch, 0, sizeof(*ch));
    ch->topic = strdup(topic);
    if (!ch->topic || hv_ref_copy(&ch->join_ref, join_ref) < 0) {
        free(ch->topic);
        return -1;
    }
    c->channel_count++;
    return 0;
}

static void remove_channel(hvd_conn_t *c, hvd_channel_t *ch)
{
    free(ch->topic);
    hv_ref_clear(&ch->join_ref);
    int idx = (int)(ch - c->channels);
    memmove(&c->channels[idx], &c->channels[idx + 1],
            (size_t)(c->channel_count - idx - 1) * sizeof(*ch));
    c->channel_count--;
}

static int event_channel_count(const hvd_conn_t *c)
{
    int n = 0;
    for (int i = 0; i < c->channel_count; i++)
        n += strncmp(c->channels[i].topic, "event:", 6) == 0;
    return n;
}

/* ---- joins ---- */

/* Reads the consumer join parameters; returns 0 or -1 with @err set. */
static int read_join_params(hvd_server_t *srv, const hv_frame_t *f, int64_t *count, int *ack,
                            int64_t *prefetch, int64_t *version, char *err, size_t err_size)
{
    int rc = map_int(f, "partition_count", count);
    if (rc > 0 && *count > srv->cfg->max_partitions) {
        snprintf(err, err_size, "partition_count %" PRId64 " exceeds the limit of %d partitions "
                 "set by hiventd --max-partitions", *count, srv->cfg->max_partitions);
        return -1;
    }
    if (rc <= 0 || *count < 1) {
        snprintf(err, err_size, "partition_count must be an integer from 1 to %d",
                 srv->cfg->max_partitions);
        return -1;
    }
    *ack = 0;
    if (map_bool(f, "ack", ack) < 0) {
        snprintf(err, err_size, "ack must be true or false");
        return -1;
    }
    *prefetch = DEFAULT_PREFETCH;
    rc = map_int(f, "prefetch", prefetch);
    if (rc < 0 || *prefetch < 1 || *prefetch > MAX_PREFETCH) {
        snprintf(err, err_size, "prefetch must be an integer from 1 to %d", MAX_PREFETCH);
        return -1;
    }
    *version = 0;
    rc = map_int(f, "version", version);
    if (rc < 0 || *version < 0) {
        snprintf(err, err_size, "version must be a non-negative integer (0: every version)");
        return -1;
    }
    return 0;
}

/* Sends the ok reply of a consumer join of @topic, whose response confirms
 * the join parameters, and makes the connection a member of @svc on its
 * first event topic. */
static void confirm_event_join(hvd_conn_t *c, hvd_service_t *svc, const char *topic,
                               const hv_ref_t *ref, int ack, int64_t prefetch, int64_t version)
{
    /* The reply confirms the extensions, so a client knows it may send
     * event:ack; a plain Hivent 3.0 server replies with an empty map. */
    hv_buf_t resp = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &resp, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "ack", 3);
    if (ack)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_pack_str_with_body(&pk, "prefetch", 8);
    msgpack_pack_int64(&pk, prefetch);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_int64(&pk, version);
    hvd_conn_reply_ok(c, topic, ref, ref, resp.data, resp.len);
    hv_buf_free(&resp);
    hvd_info("join: conn %" PRIu64 " (%s, service %s, name %s) joined %s: partition_count %d"
             ", ack %s, prefetch %" PRId64 ", version %" PRId64, c->id, c->peer, c->service,
             c->name ? c->name : "-", topic, svc->partition_count, ack ? "on" : "off",
             prefetch, version);
    if (!c->consumer) {
        c->consumer = hvd_consumer_join(svc, c, ack, (int)prefetch, version);
        if (!c->consumer)
            hvd_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
    }
}

/* Removes @svc when a failed join created it and nothing else uses it. */
static void drop_unsaved_service(hvd_server_t *srv, hvd_service_t *svc)
{
    if (svc->topic_count == 0 && hvd_service_remove(srv, svc) == 0)
        hvd_debug("join: service removed from memory because its first topic was not saved");
}

/* Submits a job that saves @svc with topic @name.  The reply to the join
 * of channel @ch waits until hvd_ws_drain_done() gets the job back and
 * calls finish_event_join().  Returns 0, or -1 when out of memory. */
static int save_event_join(hvd_conn_t *c, hvd_service_t *svc, const char *name,
                           const hvd_channel_t *ch, int ack, int64_t prefetch, int64_t version)
{
    hvd_job_t *job = hvd_job_new(HVD_JOB_SERVICE);
    if (!job || !(job->topic = strdup(ch->topic)) || !(job->reason = strdup(name)) ||
        hv_ref_copy(&job->ref, &ch->join_ref) < 0 ||
        hv_ref_copy(&job->join_ref, &ch->join_ref) < 0) {
        hvd_job_free(job);
        return -1;
    }
    job->conn_id = c->id;
    job->service = svc->name;
    job->partition = svc->partition_count;
    job->user = svc;
    job->join_ack = ack;
    job->join_prefetch = (int)prefetch;
    job->join_version = version;
    svc->pending_joins++;
    hvd_debug("join: conn %" PRIu64 " waits for the store to save service %s with topic %s",
              c->id, svc->name, name);
    hvd_committer_submit(c->server->committer, job);
    return 0;
}

static void join_event_topic(hvd_conn_t *c, const hv_frame_t *f)
{
    hvd_server_t *srv = c->server;
    const char *name = f->topic + 6;
    char err[256];
    if (c->kind != HVD_CONN_CONSUMER) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref,
                             "event topics are joined on /consumer/websocket");
        return;
    }
    if (strcmp(name, "*") != 0 && hv_check_name(name, "topic", err, sizeof(err)) < 0) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, err);
        return;
    }
    if (strcmp(name, "*") != 0 && strchr(name, '*')) {
        char reason[512];
        snprintf(reason, sizeof(reason), "topic %s is invalid: only \"*\" alone matches every "
                 "event, and no event name may contain \"*\"; join event:* or the exact event "
                 "names", f->topic);
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, reason);
        return;
    }
    int64_t count, prefetch, version;
    int ack;
    if (read_join_params(srv, f, &count, &ack, &prefetch, &version, err, sizeof(err)) < 0) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, err);
        return;
    }
    hvd_service_t *svc = hvd_service_find(srv, c->service);
    if (svc && svc->partition_count != count) {
        snprintf(err, sizeof(err), "partition_count %" PRId64 " does not match partition_count "
                 "%d of service %s", count, svc->partition_count, svc->name);
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, err);
        return;
    }
    /* A new service has no topics, so it matches no event until its first
     * subscription is committed. */
    if (!svc && !(svc = hvd_service_add(srv, c->service, (int)count))) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, "out of memory");
        return;
    }
    if (add_channel(c, f->topic, &f->ref) < 0) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, "out of memory");
        drop_unsaved_service(srv, svc);
        return;
    }
    if (hvd_service_has_topic(svc, name)) {
        /* Service and topic are stored already: no store round trip. */
        confirm_event_join(c, svc, f->topic, &f->ref, ack, prefetch, version);
        return;
    }
    hvd_channel_t *ch = &c->channels[c->channel_count - 1];
    ch->pending = 1;
    if (save_event_join(c, svc, name, ch, ack, prefetch, version) < 0) {
        remove_channel(c, ch);
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, "out of memory");
        drop_unsaved_service(srv, svc);
    }
}

static int ref_equal(const hv_ref_t *a, const hv_ref_t *b)
{
    if (a->kind != b->kind)
        return 0;
    if (a->kind == HV_REF_INT)
        return a->num == b->num;
    if (a->kind == HV_REF_STR)
        return strcmp(a->str, b->str) == 0;
    return 1;
}

/* Completes a join submitted by save_event_join() once its job is back
 * from the store.  A committed topic joins the service's subscriptions
 * even when the connection is gone, so memory matches the store.  A failed
 * save removes the pending channel (and the service when the join created
 * it) and rejects the join. */
static void finish_event_join(hvd_server_t *srv, hvd_job_t *job, hvd_conn_t *c)
{
    hvd_service_t *svc = job->user;
    const char *name = job->reason;
    svc->pending_joins--;
    /* The channel of this join, unless the client left it meanwhile (and
     * perhaps joined it again with another ref). */
    hvd_channel_t *ch = c ? find_channel(c, job->topic) : NULL;
    if (ch && (!ch->pending || !ref_equal(&ch->join_ref, &job->ref)))
        ch = NULL;
    int added = 0;
    const char *failure = NULL;
    if (job->failed)
        failure = job->error ? job->error : "store error";
    else if ((added = hvd_service_subscribe(svc, name)) < 0)
        failure = "out of memory";
    if (failure) {
        char err[512];
        snprintf(err, sizeof(err), "saving service %s with topic %s failed: %s; retry the join",
                 svc->name, name, failure);
        hvd_warn("join: conn %" PRIu64 " rejected: %s", job->conn_id, err);
        if (ch) {
            remove_channel(c, ch);
            hvd_conn_reply_error(c, job->topic, &job->ref, &job->ref, err);
        }
        drop_unsaved_service(srv, svc);
        return;
    }
    if (added)
        hvd_info("subscribe: service %s now receives %s events", svc->name,
                 strcmp(name, "*") == 0 ? "all" : name);
    if (ch) {
        ch->pending = 0;
        confirm_event_join(c, svc, job->topic, &job->ref, job->join_ack, job->join_prefetch,
                           job->join_version);
    }
}

/* Join reply response {"reply": "compact"}: confirms compact emit replies. */
static const unsigned char compact_confirm[] = {0x81, 0xa5, 'r', 'e', 'p', 'l', 'y', 0xa7,
                                                'c', 'o', 'm', 'p', 'a', 'c', 't'};

/* Returns 1 when the join parameters of @f hold "reply": "compact". */
static int wants_compact_reply(const hv_frame_t *f)
{
    char *reply = map_str(f, "reply");
    int compact = reply && strcmp(reply, "compact") == 0;
    free(reply);
    return compact;
}

static void handle_join(hvd_conn_t *c, const hv_frame_t *f)
{
    hvd_channel_t *ch = find_channel(c, f->topic);
    if (ch && ch->pending) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref,
                             "the previous join of this topic is waiting for the store; "
                             "wait for its reply");
        return;
    }
    if (ch) {
        /* A repeated join keeps the membership and takes the new join_ref
         * and reply form. */
        hv_ref_clear(&ch->join_ref);
        hv_ref_copy(&ch->join_ref, &f->ref);
        ch->compact_reply = strcmp(f->topic, "ingress:all") == 0 && wants_compact_reply(f);
        hvd_conn_reply_ok(c, f->topic, &f->ref, &f->ref,
                          ch->compact_reply ? compact_confirm : NULL,
                          ch->compact_reply ? sizeof compact_confirm : 0);
        return;
    }
    if (c->channel_count >= c->server->cfg->max_topics) {
        char err[128];
        snprintf(err, sizeof(err), "joined topic limit of %d reached on this connection",
                 c->server->cfg->max_topics);
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, err);
        return;
    }
    if (strcmp(f->topic, "ingress:all") == 0) {
        if (add_channel(c, f->topic, &f->ref) < 0) {
            hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, "out of memory");
            return;
        }
        int compact = wants_compact_reply(f);
        c->channels[c->channel_count - 1].compact_reply = compact;
        hvd_conn_reply_ok(c, f->topic, &f->ref, &f->ref, compact ? compact_confirm : NULL,
                          compact ? sizeof compact_confirm : 0);
        hvd_info("join: conn %" PRIu64 " (%s, client_id %s) joined ingress:all%s", c->id,
                 c->peer, c->client_id ? c->client_id : "-",
                 compact ? " (compact replies)" : "");
        return;
    }
    if (strncmp(f->topic, "event:", 6) == 0) {
        join_event_topic(c, f);
        return;
    }
    hvd_conn_reply_error(c, f->topic, &f->ref, &f->ref, "unknown topic");
}

static void handle_leave(hvd_conn_t *c, const hv_frame_t *f, hvd_channel_t *ch)
{
    hv_ref_t join_ref = {0};
    hv_ref_copy(&join_ref, &ch->join_ref);
    remove_channel(c, ch);
    hvd_conn_reply_ok(c, f->topic, &f->ref, &join_ref, NULL, 0);
    hv_ref_clear(&join_ref);
    hvd_info("leave: conn %" PRIu64 " left %s", c->id, f->topic);
    if (c->consumer && event_channel_count(c) == 0) {
        hvd_consumer_leave(c->consumer);
        c->consumer = NULL;
    }
}

/* ---- emits ---- */

/* Chooses the queues of @ev, whose stored body has @body_size bytes.
 * Returns the target count, or -1 with @err set when a partition is full
 * or the event's push to a service would exceed --max-frame-size. */
static int plan_targets(hvd_server_t *srv, const hivent_event_t *ev, size_t body_size,
                        hvd_target_t **out, char *err, size_t err_size)
{
    *out = NULL;
    int n = 0;
    for (hvd_service_t *s = srv->services; s; s = s->next)
        n += hvd_service_matches(s, ev->name);
    if (n == 0)
        return 0;
    hvd_target_t *t = calloc((size_t)n, sizeof(*t));
    if (!t) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    int i = 0;
    for (hvd_service_t *s = srv->services; s; s = s->next) {
        if (!hvd_service_matches(s, ev->name))
            continue;
        int part = hv_partition_of(ev->key, ev->payload, ev->payload_size, s->partition_count);
        hvd_partition_t *p = &s->partitions[part];
        /* A consumer's client drops a frame over its max_frame_size, which
         * defaults to hiventd's, so an event whose push does not fit would
         * stay pending and be resent on every reconnect.
         * NOTE: vsn 2.0.0 consumers get JSON, which may be larger still. */
        size_t push_size = hvd_push_frame_size(s, part, body_size);
        if (push_size > srv->cfg->max_frame_size) {
            snprintf(err, err_size, "event %s is %zu bytes stored, and its event:received frame "
                     "to service %s would be %zu bytes, over the maximum frame size of %zu "
                     "bytes (hiventd --max-frame-size); send a smaller payload", ev->name,
                     body_size, s->name, push_size, srv->cfg->max_frame_size);
            free(t);
            return -1;
        }
        if (p->count + p->reserved >= srv->cfg->max_pending) {
            snprintf(err, err_size, "queue %s:%d has %d pending events, the limit; retry "
                     "after its consumers catch up", s->name, part, srv->cfg->max_pending);
            free(t);
            return -1;
        }
        t[i].service = s->name;
        t[i].service_ref = s;
        t[i].partition = part;
        i++;
    }
    for (i = 0; i < n; i++) {
        hvd_partition_t *p = &((hvd_service_t *)t[i].service_ref)->partitions[t[i].partition];
        t[i].seq = p->next_seq++;
        p->reserved++;
    }
    *out = t;
    return n;
}

static void handle_emit(hvd_conn_t *c, const hv_frame_t *f, const hvd_channel_t *ch)
{
    hvd_server_t *srv = c->server;
    hivent_event_t *ev = NULL;
    char err[512];
    hvd_job_t *job = NULL;
    hv_buf_t body = {0};

    if (hv_event_parse(f->payload, f->payload_size, &ev, err, sizeof(err)) != HIVENT_OK) {
        srv->emits_rejected++;
        hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref, err);
        return;
    }
    /* No event name may look like a pattern: the consumer topic "*"
     * matches every event, and any other topic matches one name exactly. */
    if (strchr(ev->name, '*')) {
        snprintf(err, sizeof(err), "event name %s is invalid: only \"*\" alone matches every "
                 "event, so no event name may contain \"*\"", ev->name);
        goto reject;
    }
    /* An event that arrives complete (libhivent fills meta.uuid, meta.cid,
     * meta.created_at and meta.producer) is stored as received; others are
     * completed and packed again. */
    int filled = 0;
    if (!ev->producer && c->client_id) {
        ev->producer = strdup(c->client_id);
        filled = 1;
    }
    int as_received = !filled && hv_event_is_complete_map(ev, f->payload, f->payload_size);
    const unsigned char *bytes = f->payload;
    size_t size = f->payload_size;
    if (!as_received) {
        if (hv_event_complete(ev) < 0 || hv_event_pack(ev, &body) < 0) {
            snprintf(err, sizeof(err), "out of memory");
            goto reject;
        }
        bytes = body.data;
        size = body.len;
    }
    if (strlen(ev->uuid) >= sizeof(job->uuid)) {
        snprintf(err, sizeof(err), "meta.uuid is longer than %zu bytes", sizeof(job->uuid) - 1);
        goto reject;
    }
    job = hvd_job_new(HVD_JOB_EMIT);
    hvd_body_t *shared = job ? hvd_body_new(bytes, size, ev->version, ev->name) : NULL;
    hv_buf_free(&body);
    if (!shared || !(job->topic = strdup(f->topic)) || hv_ref_copy(&job->ref, &f->ref) < 0 ||
        hv_ref_copy(&job->join_ref, &ch->join_ref) < 0) {
        hvd_body_release(shared);
        snprintf(err, sizeof(err), "out of memory");
        goto reject;
    }
    job->user = shared;
    int n = plan_targets(srv, ev, shared->size, &job->targets, err, sizeof(err));
    if (n < 0) {
        hvd_body_release(shared);
        job->user = NULL;
        goto reject;
    }
    job->target_count = n;
    job->compact_reply = as_received && ch->compact_reply;
    job->conn_id = c->id;
    snprintf(job->uuid, sizeof(job->uuid), "%s", ev->uuid);
    /* The store thread reads the bytes of the shared body, which lives
     * until finish_emit() releases it. */
    job->body = shared->data;
    job->body_size = shared->size;
    job->body_shared = 1;
    hvd_debug("emit: conn %" PRIu64 " event %s uuid %s to %d queues", c->id, ev->name,
              ev->uuid, n);
    hivent_event_destroy(ev);
    hvd_committer_submit(srv->committer, job);
    return;

reject:
    srv->emits_rejected++;
    hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref, err);
    hivent_event_destroy(ev);
    hv_buf_free(&body);
    hvd_job_free(job);
}

static void finish_emit(hvd_server_t *srv, hvd_job_t *job, hvd_conn_t *c)
{
    hvd_body_t *body = job->user;
    for (int i = 0; i < job->target_count; i++) {
        hvd_service_t *s = job->targets[i].service_ref;
        s->partitions[job->targets[i].partition].reserved--;
    }
    if (job->failed) {
        srv->emits_rejected++;
        if (c)
            hvd_conn_reply_error(c, job->topic, &job->ref, &job->join_ref,
                                 "storing the event failed; retry the emit");
    } else if (job->duplicate) {
        srv->emits_duplicate++;
        hvd_debug("emit: uuid %s is already stored; returning the stored event", job->uuid);
        if (c)
            hvd_conn_reply_ok(c, job->topic, &job->ref, &job->join_ref, job->existing.data,
                              job->existing.len);
    } else {
        srv->emits_accepted++;
        for (int i = 0; i < job->target_count; i++) {
            hvd_target_t *t = &job->targets[i];
            hvd_service_t *s = t->service_ref;
            if (hvd_partition_insert(srv, &s->partitions[t->partition], t->seq, job->uuid, body) < 0)
                hvd_err("out of memory queueing event %s in %s:%d; it is delivered after a "
                        "restart", job->uuid, s->name, t->partition);
            s->stats.emitted++;
        }
        if (c && job->compact_reply) {
            /* {"uuid": UUID}: the client holds the event it sent, which is
             * the stored one byte for byte. */
            unsigned char resp[8 + sizeof job->uuid];
            size_t len = strlen(job->uuid);
            resp[0] = 0x81;
            memcpy(resp + 1, "\xa4uuid", 5);
            resp[6] = 0xd9;
            resp[7] = (unsigned char)len;
            memcpy(resp + 8, job->uuid, len);
            hvd_conn_reply_ok(c, job->topic, &job->ref, &job->join_ref, resp, 8 + len);
        } else if (c) {
            hvd_conn_reply_ok(c, job->topic, &job->ref, &job->join_ref, job->body,
                              job->body_size);
        }
        for (int i = 0; i < job->target_count; i++) {
            hvd_service_t *s = job->targets[i].service_ref;
            hvd_consumer_t *owner = s->partitions[job->targets[i].partition].owner;
            if (owner)
                hvd_consumer_pump(owner);
        }
    }
    hvd_body_release(body);
    job->user = NULL;
    job->body = NULL;
    job->body_size = 0;
}

void hvd_ws_drain_done(hvd_server_t *srv)
{
    hvd_job_t *list = hvd_committer_take_done(srv->committer);
    while (list) {
        hvd_job_t *job = list;
        list = job->next;
        hvd_conn_t *c = job->conn_id ? hvd_conn_find(srv, job->conn_id) : NULL;
        switch (job->kind) {
        case HVD_JOB_EMIT:
            finish_emit(srv, job, c);
            break;
        case HVD_JOB_DEAD_LETTER:
            if (c && job->failed)
                hvd_conn_reply_error(c, job->topic, &job->ref, &job->join_ref,
                                     "storing the dead letter failed; retry");
            else if (c)
                hvd_conn_reply_ok(c, job->topic, &job->ref, &job->join_ref, NULL, 0);
            break;
        case HVD_JOB_SERVICE:
            if (job->user)
                finish_event_join(srv, job, c);
            break;
        case HVD_JOB_COMPLETE:
            break;
        }
        hvd_job_free(job);
    }
}

/* ---- acks and quarantines ---- */

/* Resolves "SERVICE:PARTITION" against the connection's service. */
static hvd_partition_t *resolve_queue(hvd_conn_t *c, const char *queue, int *part_out,
                                      char *err, size_t err_size)
{
    const char *colon = queue ? strrchr(queue, ':') : NULL;
    hvd_service_t *svc = c->service ? hvd_service_find(c->server, c->service) : NULL;
    if (!colon || !svc || (size_t)(colon - queue) != strlen(svc->name) ||
        strncmp(queue, svc->name, (size_t)(colon - queue)) != 0) {
        snprintf(err, err_size, "queue must be \"%s:PARTITION\"", c->service ? c->service : "");
        return NULL;
    }
    char *end;
    long part = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || part < 0 || part >= svc->partition_count) {
        snprintf(err, err_size, "queue %s names no partition of service %s (0 to %d)", queue,
                 svc->name, svc->partition_count - 1);
        return NULL;
    }
    *part_out = (int)part;
    return &svc->partitions[part];
}

/* Checks that pending entry @e of @queue was last delivered to @c's
 * consumer; returns 0, or -1 with @err set and the rejection logged. */
static int check_delivered_to(const hvd_conn_t *c, const hvd_entry_t *e, const char *action,
                              const char *queue, char *err, size_t err_size)
{
    if (c->consumer && e->delivered_to == c->consumer->id)
        return 0;
    snprintf(err, err_size, "cannot %s event %s in queue %s: it is pending and was not "
             "delivered to this consumer", action, e->uuid, queue);
    /* After a rebalance the previous owner's late acks arrive in bursts of
     * up to its prefetch, so one line a second is logged with a count of
     * the others.  The statics are safe on lws's one service thread. */
    static int64_t last_log_us;
    static uint64_t suppressed;
    int64_t now = lws_now_usecs();
    if (last_log_us && now - last_log_us < LWS_US_PER_SEC) {
        suppressed++;
        return -1;
    }
    hvd_info("conn %" PRIu64 " (%s, service %s, name %s): %s of event %s in %s rejected: last "
             "delivered to consumer %" PRId64 ", not to %" PRId64 " (%" PRIu64 " more such "
             "rejections in the last second were not logged)", c->id, c->peer, c->service,
             c->name ? c->name : "-", action, e->uuid, queue, e->delivered_to,
             c->consumer ? c->consumer->id : 0, suppressed);
    last_log_us = now;
    suppressed = 0;
    return -1;
}

static void handle_ack(hvd_conn_t *c, const hv_frame_t *f, const hvd_channel_t *ch)
{
    char err[256];
    char *queue = map_str(f, "queue");
    char *uuid = map_str(f, "uuid");
    int part;
    hvd_partition_t *p = resolve_queue(c, queue, &part, err, sizeof(err));
    if (p && !uuid)
        snprintf(err, sizeof(err), "uuid must be a string");
    if (!p || !uuid) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref, err);
        goto out;
    }
    hvd_entry_t *e = hvd_partition_find(p, uuid);
    if (e && check_delivered_to(c, e, "ack", queue, err, sizeof(err)) < 0) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref, err);
        goto out;
    }
    if (e) {
        hvd_service_t *svc = hvd_service_find(c->server, c->service);
        hvd_consumer_t *owner = e->owner;
        svc->stats.acknowledged++;
        hvd_broker_complete(c->server, svc, part, e->seq);
        hvd_partition_remove(c->server, p, e);
        if (owner)
            hvd_consumer_pump(owner);
    }
    /* An ack of an event no longer pending (acknowledged twice, or
     * delivered without ack mode) succeeds too: acks are idempotent. */
    hvd_conn_reply_ok(c, f->topic, &f->ref, &ch->join_ref, NULL, 0);
out:
    free(queue);
    free(uuid);
}

static void handle_quarantine(hvd_conn_t *c, const hv_frame_t *f, const hvd_channel_t *ch)
{
    hvd_server_t *srv = c->server;
    char err[512];
    char *queue = map_str(f, "queue");
    char *reason = NULL;
    hivent_event_t *ev = NULL;
    hvd_job_t *job = NULL;
    const unsigned char *span;
    size_t span_size;
    int part;

    hvd_partition_t *p = resolve_queue(c, queue, &part, err, sizeof(err));
    if (!p)
        goto reject;
    if (hv_mp_map_find(f->payload, f->payload_size, "event", &span, &span_size) != 1) {
        snprintf(err, sizeof(err), "event must be the received event map");
        goto reject;
    }
    if (hv_event_parse(span, span_size, &ev, err, sizeof(err)) != HIVENT_OK)
        goto reject;
    if (!ev->uuid || strlen(ev->uuid) >= sizeof(job->uuid)) {
        snprintf(err, sizeof(err), "event has no meta.uuid or one longer than %zu bytes",
                 sizeof(job->uuid) - 1);
        goto reject;
    }
    const unsigned char *rv;
    size_t rv_size;
    if (hv_mp_map_find(f->payload, f->payload_size, "reason", &rv, &rv_size) == 1) {
        reason = hv_mp_strdup(rv, rv_size);
        if (!reason && !(rv_size == 1 && rv[0] == 0xc0)) {
            snprintf(err, sizeof(err), "reason must be a string");
            goto reject;
        }
    }
    hvd_entry_t *e = hvd_partition_find(p, ev->uuid);
    if (e && check_delivered_to(c, e, "quarantine", queue, err, sizeof(err)) < 0)
        goto reject;
    if (!(job = hvd_job_new(HVD_JOB_DEAD_LETTER)) || !(job->topic = strdup(f->topic)) ||
        hv_ref_copy(&job->ref, &f->ref) < 0 || hv_ref_copy(&job->join_ref, &ch->join_ref) < 0) {
        snprintf(err, sizeof(err), "out of memory");
        goto reject;
    }
    hvd_service_t *svc = hvd_service_find(srv, c->service);
    /* The stored event goes to the dead-letter queue when it is still
     * pending, else the one the consumer sent. */
    hvd_body_t *stored = e ? hvd_entry_body(srv, svc, part, e) : NULL;
    const void *body = stored ? (const void *)stored->data : (const void *)span;
    size_t body_size = stored ? stored->size : span_size;
    job->body = malloc(body_size);
    if (job->body)
        memcpy(job->body, body, body_size);
    hvd_body_release(stored);
    if (!job->body) {
        snprintf(err, sizeof(err), "out of memory");
        goto reject;
    }
    job->body_size = body_size;
    job->reason = reason ? reason : strdup("");
    reason = NULL;
    job->service = svc->name;
    job->partition = part;
    job->seq = e ? e->seq : -1;
    job->conn_id = c->id;
    snprintf(job->uuid, sizeof(job->uuid), "%s", ev->uuid);
    hvd_info("quarantine: conn %" PRIu64 " moved event %s of %s to %s:dead_letter: %s", c->id,
             ev->uuid, svc->name, queue, job->reason && *job->reason ? job->reason : "-");
    svc->stats.dead_lettered++;
    hvd_committer_submit(srv->committer, job);
    if (e) {
        hvd_consumer_t *owner = e->owner;
        hvd_partition_remove(srv, p, e);
        if (owner)
            hvd_consumer_pump(owner);
    }
    goto out;

reject:
    hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref, err);
    hvd_job_free(job);
out:
    hivent_event_destroy(ev);
    free(queue);
    free(reason);
}

/* ---- dispatch ---- */

static void dispatch(hvd_conn_t *c, const hv_frame_t *f)
{
    if (strcmp(f->topic, "phoenix") == 0) {
        if (strcmp(f->event, "heartbeat") == 0)
            hvd_conn_reply_ok(c, f->topic, &f->ref, &f->join_ref, NULL, 0);
        else
            hvd_conn_reply_error(c, f->topic, &f->ref, &f->join_ref, "unknown event");
        return;
    }
    if (strcmp(f->event, "phx_join") == 0) {
        handle_join(c, f);
        return;
    }
    hvd_channel_t *ch = find_channel(c, f->topic);
    if (!ch) {
        hvd_conn_reply_error(c, f->topic, &f->ref, &f->join_ref, "unmatched topic");
        return;
    }
    if (strcmp(f->event, "phx_leave") == 0)
        handle_leave(c, f, ch);
    else if (ch->pending)
        hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref,
                             "the join of this topic is waiting for the store; wait for its "
                             "reply");
    else if (strcmp(f->topic, "ingress:all") == 0 && strcmp(f->event, "event:emit") == 0)
        handle_emit(c, f, ch);
    else if (strncmp(f->topic, "event:", 6) == 0 && strcmp(f->event, "event:ack") == 0)
        handle_ack(c, f, ch);
    else if (strncmp(f->topic, "event:", 6) == 0 && strcmp(f->event, "event:quarantine") == 0)
        handle_quarantine(c, f, ch);
    else
        hvd_conn_reply_error(c, f->topic, &f->ref, &ch->join_ref, "unknown event");
}

static void handle_message(hvd_conn_t *c, const unsigned char *data, size_t len, int binary)
{
    hv_frame_t f;
    memset(&f, 0, sizeof(f));
    char err[256] = "";
    if (c->json != !binary) {
        hvd_conn_close(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                       c->json ? "vsn 2.0.0 expects JSON text frames"
                               : "vsn 1.0.0 expects MessagePack binary frames");
        return;
    }
    size_t max = c->server->cfg->max_inflated_size;
    int rc = c->json ? hv_frame_decode_json((const char *)data, len, max, &f, err, sizeof(err))
                     : hv_frame_decode(data, len, max, &f, err, sizeof(err));
    if (rc < 0) {
        /* A WebSocket close reason has at most 123 bytes; the log line
         * gets the whole error. */
        char reason[120];
        snprintf(reason, sizeof(reason), "invalid frame: %.100s", err);
        if (c->kind == HVD_CONN_CONSUMER)
            hvd_warn("conn %" PRIu64 " (%s, service %s, name %s): invalid frame: %s", c->id,
                     c->peer, c->service ? c->service : "-", c->name ? c->name : "-", err);
        else
            hvd_warn("conn %" PRIu64 " (%s, client_id %s): invalid frame: %s", c->id, c->peer,
                     c->client_id ? c->client_id : "-", err);
        hv_frame_clear(&f);
        hvd_conn_close(c, strstr(err, "exceeds") ? LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE
                                                 : LWS_CLOSE_STATUS_INVALID_PAYLOAD, reason);
        return;
    }
    dispatch(c, &f);
    hv_frame_clear(&f);
}

static void conn_receive(hvd_conn_t *c, const void *in, size_t len)
{
    hvd_server_t *srv = c->server;
    c->last_rx_us = lws_now_usecs();
    if (c->closing)
        return;
    int first = lws_is_first_fragment(c->wsi);
    int final = lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0;
    if (first && c->rx.len == 0 && final) {
        if (len > srv->cfg->max_frame_size)
            goto too_big;
        handle_message(c, in, len, lws_frame_is_binary(c->wsi));
        return;
    }
    if (c->rx.len + len > srv->cfg->max_frame_size)
        goto too_big;
    if (hv_buf_append(&c->rx, in, len) < 0) {
        hvd_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    if (final) {
        handle_message(c, c->rx.data, c->rx.len, lws_frame_is_binary(c->wsi));
        hv_buf_free(&c->rx);
    }
    return;
too_big:;
    char reason[120];
    snprintf(reason, sizeof(reason), "message exceeds the maximum frame size of %zu bytes",
             srv->cfg->max_frame_size);
    hv_buf_free(&c->rx);
    hvd_conn_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, reason);
}

/* ---- connection setup ---- */

int hvd_query_read(struct lws *wsi, hvd_query_t *q)
{
    /* hiventd gives lws 4096 bytes for all headers, so every fragment fits. */
    char fragment[HVD_QUERY_MAX_BYTES + 1];
    hvd_query_init(q);
    /* libwebsockets 4.1.6 ends the URI at a decoded %0D or %0A and skips
     * the rest of the request line, HTTP version included, so the last
     * value read would be cut short. */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0)
        return hvd_query_fail(q, "the request line ends early, at an encoded CR or LF "
                                 "(%0D or %0A) in the URI");
    for (int i = 0; i <= HVD_QUERY_MAX_PARAMS; i++) {
        int n = lws_hdr_copy_fragment(wsi, fragment, sizeof(fragment), WSI_TOKEN_HTTP_URI_ARGS,
                                      i);
        if (n < 0) {
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
                return hvd_query_fail(q, "query parameter too long");
            return 0;
        }
        if (hvd_query_add(q, fragment, (size_t)n) < 0)
            return -1;
    }
    if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, HVD_QUERY_MAX_PARAMS + 1) > 0 ||
        lws_hdr_copy_fragment(wsi, fragment, sizeof(fragment), WSI_TOKEN_HTTP_URI_ARGS,
                              HVD_QUERY_MAX_PARAMS + 1) >= 0) {
        char message[64];
        snprintf(message, sizeof(message), "more than %d query parameters",
                 HVD_QUERY_MAX_PARAMS);
        return hvd_query_fail(q, message);
    }
    return 0;
}

/* Reads the path and query of an upgrade request and checks them with
 * hvd_upgrade_target(); returns its status. */
static unsigned read_upgrade(struct lws *wsi, hvd_query_t *q, hvd_upgrade_t *up, char *err,
                             size_t err_size)
{
    char path[128];
    int n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
    hvd_query_read(wsi, q);
    return hvd_upgrade_target(path, n > 0 ? (size_t)n : 0, q, up, err, err_size);
}

/* Rejects an upgrade request with an HTTP/1.1 error response and closes.
 * The response is written by hand because lws_return_http_status() writes
 * HTTP/1.0 at this stage, which WebSocket clients reject as malformed. */
static int reject_upgrade(struct lws *wsi, unsigned int status, const char *why)
{
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    /* A client retrying with a wrong key would write a line per attempt,
     * so rejections are logged at most once a second with a count of the
     * ones left out.  The statics are safe because lws calls this only on
     * its one service thread (count_threads = 1). */
    static int64_t last_log_us;
    static uint64_t suppressed;
    int64_t now = lws_now_usecs();
    if (last_log_us && now - last_log_us < LWS_US_PER_SEC) {
        suppressed++;
    } else {
        if (suppressed)
            hvd_info("upgrade from %s rejected with HTTP %u: %s (%" PRIu64 " more upgrades "
                     "rejected in the last second were not logged)", peer, status, why,
                     suppressed);
        else
            hvd_info("upgrade from %s rejected with HTTP %u: %s", peer, status, why);
        last_log_us = now;
        suppressed = 0;
    }
    const char *text = status == 403 ? "Forbidden" : status == 404 ? "Not Found"
                     : status == 503 ? "Service Unavailable" : "Bad Request";
    unsigned char buf[LWS_PRE + 512];
    char *start = (char *)buf + LWS_PRE;
    int n = snprintf(start, sizeof(buf) - LWS_PRE,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n", status, text, strlen(why) + 1, why);
    if (n > 0 && (size_t)n < sizeof(buf) - LWS_PRE)
        lws_write(wsi, (unsigned char *)start, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return -1;
}

static int confirm_upgrade(struct lws *wsi)
{
    hvd_server_t *srv = server_of(wsi);
    hvd_query_t *q = malloc(sizeof(*q));
    hvd_upgrade_t up;
    char err[256];
    int rc = 0;
    if (!q)
        return reject_upgrade(wsi, 503, "out of memory");
    unsigned status = srv->stopping ? 503 : read_upgrade(wsi, q, &up, err, sizeof(err));
    if (srv->stopping) {
        rc = reject_upgrade(wsi, 503, "server is shutting down");
    } else if (status) {
        rc = reject_upgrade(wsi, status, err);
    } else if (srv->cfg->api_key &&
               (!up.api_key || !hvd_secret_equal(up.api_key->value, up.api_key->value_len,
                                                  srv->cfg->api_key))) {
        srv->connections_rejected++;
        rc = reject_upgrade(wsi, 403, "invalid api_key");
    } else if (srv->conn_count >= srv->cfg->max_connections) {
        srv->connections_rejected++;
        rc = reject_upgrade(wsi, 503, "connection limit reached");
    } else if ((status = hvd_upgrade_params(q, &up, err, sizeof(err))) != 0) {
        rc = reject_upgrade(wsi, status, err);
    }
    free(q);
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int conn_established(struct lws *wsi, pss_t *pss)
{
    hvd_server_t *srv = server_of(wsi);
    hvd_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    /* confirm_upgrade() accepted the same path and query, so they parse
     * again without error here. */
    hvd_query_t *q = malloc(sizeof(*q));
    hvd_upgrade_t up;
    char err[256];
    if (!q || read_upgrade(wsi, q, &up, err, sizeof(err)) != 0 ||
        hvd_upgrade_params(q, &up, err, sizeof(err)) != 0) {
        hvd_err("upgrade: request parameters unreadable after the upgrade was accepted: %s",
                q ? err : "out of memory");
        free(q);
        free(c);
        return -1;
    }
    c->id = ++srv->next_conn_id;
    c->wsi = wsi;
    c->server = srv;
    c->kind = up.consumer ? HVD_CONN_CONSUMER : HVD_CONN_PRODUCER;
    c->json = up.json;
    c->gzip = up.gzip;
    c->client_id = dup_or_null(up.client_id);
    c->service = dup_or_null(up.service);
    c->name = dup_or_null(up.name);
    free(q);
    if ((up.client_id && !c->client_id) || (up.service && !c->service) ||
        (up.name && !c->name)) {
        hvd_err("upgrade: out of memory copying the parameters of conn %" PRIu64, c->id);
        conn_free(c);
        return -1;
    }
    lws_get_peer_simple(wsi, c->peer, sizeof(c->peer));
    c->last_rx_us = lws_now_usecs();
    conn_register(srv, c);
    srv->connections_total++;
    pss->conn = c;
    if (c->kind == HVD_CONN_CONSUMER)
        hvd_info("conn %" PRIu64 " (%s): consumer connected, service %s, name %s, vsn %s%s",
                 c->id, c->peer, c->service ? c->service : "-", c->name ? c->name : "-",
                 c->json ? "2.0.0" : "1.0.0", c->gzip ? ", gzip" : "");
    else
        hvd_info("conn %" PRIu64 " (%s): producer connected, client_id %s, vsn %s%s", c->id,
                 c->peer, c->client_id ? c->client_id : "-", c->json ? "2.0.0" : "1.0.0",
                 c->gzip ? ", gzip" : "");
    return 0;
}

static void conn_closed(pss_t *pss)
{
    hvd_conn_t *c = pss->conn;
    if (!c)
        return;
    pss->conn = NULL;
    hvd_info("conn %" PRIu64 " (%s): closed", c->id, c->peer);
    if (c->consumer) {
        hvd_consumer_t *cons = c->consumer;
        c->consumer = NULL;
        c->closing = 1;
        hvd_consumer_leave(cons);
    }
    conn_unregister(c->server, c);
    conn_free(c);
}

void hvd_ws_sweep(lws_sorted_usec_list_t *sul)
{
    hvd_server_t *srv = lws_container_of(sul, hvd_server_t, sweep_sul);
    int interval = srv->cfg->heartbeat_interval_ms;
    if (interval <= 0)
        return;
    lws_usec_t now = lws_now_usecs();
    lws_usec_t limit = (lws_usec_t)interval * 2000;
    char reason[120];
    snprintf(reason, sizeof(reason), "no message for %d ms (two heartbeat intervals)",
             2 * interval);
    for (hvd_conn_t *c = srv->conns; c; c = c->all_next)
        if (!c->closing && now - c->last_rx_us > limit)
            hvd_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, reason);
    lws_sul_schedule(srv->context, 0, &srv->sweep_sul, hvd_ws_sweep,
                     (lws_usec_t)interval * 1000 / 4);
}

int hvd_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return conn_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        if (pss && pss->conn)
            conn_receive(pss->conn, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (pss && pss->conn)
            return conn_writeable(pss->conn);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss)
            conn_closed(pss);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        hvd_server_t *srv = server_of(wsi);
        if (srv && srv->committer)
            hvd_ws_drain_done(srv);
        return 0;
    }
    default:
        break;
    }
    return hvd_http_callback(wsi, reason, pss ? &pss->http : NULL, in, len);
}

size_t hvd_ws_session_size(void)
{
    return sizeof(pss_t);
}
