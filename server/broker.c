/*
 * Services, their partition queues, partition assignment and delivery.
 * Runs on the network thread only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <msgpack.h>

#include "event.h"
#include "hiventd.h"
#include "log.h"
#include "partition.h"
#include "siphash.h"

hvd_body_t *hvd_body_new(const void *data, size_t size, int64_t version, const char *name)
{
    size_t name_len = strlen(name);
    hvd_body_t *b = malloc(sizeof(*b) + size + name_len + 1);
    if (!b)
        return NULL;
    b->refs = 1;
    b->version = version;
    b->size = size;
    memcpy(b->data, data, size);
    char *n = (char *)b->data + size;
    memcpy(n, name, name_len + 1);
    b->name = n;
    return b;
}

hvd_body_t *hvd_body_parse(const void *data, size_t size)
{
    hivent_event_t *ev = NULL;
    char err[256];
    if (hv_event_parse(data, size, &ev, err, sizeof(err)) != HIVENT_OK || !ev)
        return NULL;
    hvd_body_t *b = hvd_body_new(data, size, ev->version, ev->name);
    hivent_event_destroy(ev);
    return b;
}

void hvd_body_release(hvd_body_t *body)
{
    if (body && --body->refs == 0)
        free(body);
}

hvd_service_t *hvd_service_find(hvd_server_t *srv, const char *name)
{
    for (hvd_service_t *s = srv->services; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

hvd_service_t *hvd_service_add(hvd_server_t *srv, const char *name, int partition_count)
{
    hvd_service_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = strdup(name);
    s->partitions = calloc((size_t)partition_count, sizeof(*s->partitions));
    if (!s->name || !s->partitions) {
        free(s->name);
        free(s->partitions);
        free(s);
        return NULL;
    }
    s->partition_count = partition_count;
    s->next = srv->services;
    srv->services = s;
    srv->service_count++;
    return s;
}

int hvd_service_remove(hvd_server_t *srv, hvd_service_t *svc)
{
    if (svc->topic_count > 0 || svc->members || svc->pending_joins > 0)
        return -1;
    for (int p = 0; p < svc->partition_count; p++)
        if (svc->partitions[p].count > 0 || svc->partitions[p].reserved > 0)
            return -1;
    for (hvd_service_t **pp = &srv->services; *pp; pp = &(*pp)->next) {
        if (*pp == svc) {
            *pp = svc->next;
            srv->service_count--;
            break;
        }
    }
    for (int p = 0; p < svc->partition_count; p++)
        free(svc->partitions[p].index);
    free(svc->partitions);
    free(svc->topics);
    free(svc->name);
    free(svc);
    return 0;
}

int hvd_service_has_topic(const hvd_service_t *svc, const char *topic)
{
    for (int i = 0; i < svc->topic_count; i++)
        if (strcmp(svc->topics[i], topic) == 0)
            return 1;
    return 0;
}

int hvd_service_subscribe(hvd_service_t *svc, const char *topic)
{
    if (hvd_service_has_topic(svc, topic))
        return 0;
    char **topics = realloc(svc->topics, (size_t)(svc->topic_count + 1) * sizeof(*topics));
    if (!topics)
        return -1;
    svc->topics = topics;
    if (!(topics[svc->topic_count] = strdup(topic)))
        return -1;
    svc->topic_count++;
    return 1;
}

int hvd_service_matches(const hvd_service_t *svc, const char *event_name)
{
    for (int i = 0; i < svc->topic_count; i++)
        if (strcmp(svc->topics[i], "*") == 0 || strcmp(svc->topics[i], event_name) == 0)
            return 1;
    return 0;
}

/* ---- uuid index of a partition ----
 *
 * Acks and quarantines name an entry by uuid.  Scanning the list cost
 * O(entries) per ack, and each ack of an entry that was already completed
 * (a consumer acking after its partition moved, or twice) scanned the whole
 * partition.  The index is a chained hash table with at most one entry per
 * bucket on average.  Clients choose uuids, so the hash is keyed with
 * random bytes to keep them from putting all entries in one bucket. */

#define INDEX_MIN_SIZE 64

static uint8_t index_key[16];
static int index_key_ready;

static uint64_t uuid_hash(const char *uuid)
{
    if (!index_key_ready) {
        if (getrandom(index_key, sizeof(index_key), 0) != (ssize_t)sizeof(index_key))
            hvd_warn("getrandom failed; the uuid index uses a fixed hash key");
        index_key_ready = 1;
    }
    return hvd_siphash24(index_key, uuid, strlen(uuid));
}

static void index_link(hvd_entry_t **buckets, int size, hvd_entry_t *e)
{
    hvd_entry_t **slot = &buckets[e->hash & (uint64_t)(size - 1)];
    e->index_next = *slot;
    *slot = e;
}

/* Rebuilds the index of @p with @size buckets.  On allocation failure the
 * old index stays, so lookups remain correct with longer chains. */
static void index_resize(hvd_partition_t *p, int size)
{
    hvd_entry_t **buckets = calloc((size_t)size, sizeof(*buckets));
    if (!buckets)
        return;
    for (hvd_entry_t *e = p->head; e; e = e->next)
        index_link(buckets, size, e);
    free(p->index);
    p->index = buckets;
    p->index_size = size;
}

/* Indexes @e, which is already in @p's list. */
static void index_add(hvd_partition_t *p, hvd_entry_t *e)
{
    if (p->count > p->index_size) {
        int old_size = p->index_size;
        int size = old_size ? old_size * 2 : INDEX_MIN_SIZE;
        if (size > 0)
            index_resize(p, size);
        if (p->index_size != old_size)
            return; /* the rebuild walked the list, @e included */
    }
    if (p->index)
        index_link(p->index, p->index_size, e);
}

static void index_remove(hvd_partition_t *p, hvd_entry_t *e)
{
    if (!p->index)
        return;
    hvd_entry_t **pp = &p->index[e->hash & (uint64_t)(p->index_size - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->index_next;
    if (*pp)
        *pp = e->index_next;
    e->index_next = NULL;
    /* Shrink after a drain so an idle partition does not keep a large
     * table; the gap between 1/8 and 1 avoids resizing back and forth. */
    if (p->index_size > INDEX_MIN_SIZE && p->count < p->index_size / 8)
        index_resize(p, p->index_size / 2);
}

int hvd_partition_insert(hvd_server_t *srv, hvd_partition_t *p, int64_t seq, const char *uuid,
                         hvd_body_t *body)
{
    size_t uuid_len = strlen(uuid);
    hvd_entry_t *e = calloc(1, sizeof(*e) + uuid_len + 1);
    if (!e)
        return -1;
    e->seq = seq;
    e->hash = uuid_hash(uuid);
    memcpy(e->uuid, uuid, uuid_len + 1);

    /* Walk back over waiting entries with a larger seq; entries in flight
     * (before the cursor) are never passed. */
    hvd_entry_t *after = p->tail;
    if (p->cursor) {
        while (after && after->seq > seq && after != p->cursor->prev)
            after = after->prev;
    }
    e->prev = after;
    e->next = after ? after->next : p->head;
    if (e->next)
        e->next->prev = e;
    else
        p->tail = e;
    if (after)
        after->next = e;
    else
        p->head = e;
    if (!p->cursor || p->cursor == e->next)
        p->cursor = e;
    p->count++;
    index_add(p, e);
    if (seq >= p->next_seq)
        p->next_seq = seq + 1;
    /* Keep the body only when it continues the run of bodies that starts
     * at the cursor and half the budget is free; the others are read from
     * the store when the cursor reaches them. */
    if (body && srv->body_bytes + body->size <= HVD_BODY_BUDGET / 2 &&
        (p->cursor == e || (e->prev && e->prev->body))) {
        e->body = body;
        body->refs++;
        srv->body_bytes += body->size;
    }
    return 0;
}

static void entry_drop_body(hvd_server_t *srv, hvd_entry_t *e)
{
    if (e->body) {
        srv->body_bytes -= e->body->size;
        hvd_body_release(e->body);
        e->body = NULL;
    }
}

typedef struct body_read {
    hvd_server_t *srv;          /* NULL: hvd_entry_body() reads one body */
    hvd_entry_t *e;             /* walks the entries in step with the rows */
    hvd_entry_t *end;           /* first entry after the batch, or NULL */
    hvd_body_t *single;         /* hvd_entry_body(): the body read */
    int taken;                  /* bodies kept by this batch */
    int full;                   /* the budget stopped the batch */
} body_read_t;

static int body_row(void *ctx, int64_t seq, const char *uuid, const void *data, size_t size)
{
    body_read_t *r = ctx;
    while (r->e != r->end && r->e->seq < seq)
        r->e = r->e->next;
    if (r->e == r->end || r->e->seq != seq || strcmp(r->e->uuid, uuid) != 0)
        return 0;
    if (!r->srv) {
        if (!r->single)
            r->single = hvd_body_parse(data, size);
        return 0;
    }
    /* The first body of a batch, at the cursor, is always kept; after it
     * the budget decides, and the bodies kept stay one run. */
    if (r->e->body || r->full)
        return 0;
    if (r->taken > 0 && r->srv->body_bytes + size > HVD_BODY_BUDGET) {
        r->full = 1;
        return 0;
    }
    if ((r->e->body = hvd_body_parse(data, size))) {
        r->srv->body_bytes += r->e->body->size;
        r->taken++;
    }
    return 0;
}

/* Reads the bodies of the next HVD_BODY_WINDOW entries from @part's cursor
 * in one query.  Returns 0, or -1 when the store failed. */
static int partition_read_window(hvd_server_t *srv, hvd_service_t *svc, int part)
{
    hvd_partition_t *p = &svc->partitions[part];
    hvd_entry_t *first = NULL, *last = NULL, *e = p->cursor;
    for (int n = 0; e && n < HVD_BODY_WINDOW; n++, e = e->next) {
        if (e->body)
            continue;
        if (!first)
            first = e;
        last = e;
    }
    if (!first)
        return 0;
    body_read_t r = {srv, first, last->next, NULL, 0, 0};
    hvd_store_t *st = srv->store;
    if (st->ops->read_bodies(st, svc->name, part, first->seq, last->seq, body_row, &r) < 0) {
        hvd_err("store: reading events %" PRId64 " to %" PRId64 " of queue %s:%d failed: %s; "
                "delivery of the partition waits", first->seq, last->seq, svc->name, part,
                st->ops->errmsg(st));
        return -1;
    }
    hvd_debug("store: read %d bodies of queue %s:%d from seq %" PRId64, r.taken, svc->name,
              part, first->seq);
    return 0;
}

hvd_body_t *hvd_entry_body(hvd_server_t *srv, hvd_service_t *svc, int part, hvd_entry_t *e)
{
    if (e->body) {
        e->body->refs++;
        return e->body;
    }
    body_read_t r = {NULL, e, e->next, NULL, 0, 0};
    hvd_store_t *st = srv->store;
    if (st->ops->read_bodies(st, svc->name, part, e->seq, e->seq, body_row, &r) < 0)
        hvd_err("store: reading event %s of queue %s:%d failed: %s", e->uuid, svc->name, part,
                st->ops->errmsg(st));
    return r.single;
}

hvd_entry_t *hvd_partition_find(hvd_partition_t *p, const char *uuid)
{
    if (!p->index) {
        /* Only when allocating the first index failed. */
        for (hvd_entry_t *e = p->head; e; e = e->next)
            if (strcmp(e->uuid, uuid) == 0)
                return e;
        return NULL;
    }
    /* A uuid can be queued twice in one partition, because a dead letter
     * can be replayed while its original is pending.  The entry with the
     * lowest seq wins, as it did when the list was scanned. */
    uint64_t hash = uuid_hash(uuid);
    hvd_entry_t *found = NULL;
    for (hvd_entry_t *e = p->index[hash & (uint64_t)(p->index_size - 1)]; e;
         e = e->index_next) {
        if (e->hash == hash && strcmp(e->uuid, uuid) == 0 && (!found || e->seq < found->seq))
            found = e;
    }
    return found;
}

void hvd_partition_remove(hvd_server_t *srv, hvd_partition_t *p, hvd_entry_t *e)
{
    if (e->owner) {
        e->owner->inflight--;
        e->owner = NULL;
    }
    if (p->cursor == e)
        p->cursor = e->next;
    if (e->prev)
        e->prev->next = e->next;
    else
        p->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->tail = e->prev;
    p->count--;
    index_remove(p, e);
    entry_drop_body(srv, e);
    free(e);
}

void hvd_broker_complete(hvd_server_t *srv, hvd_service_t *svc, int part, int64_t seq)
{
    hvd_job_t *job = hvd_job_new(HVD_JOB_COMPLETE);
    if (!job) {
        hvd_err("out of memory: queue entry %s:%d seq %" PRId64 " stays stored and will be "
                "delivered again after a restart", svc->name, part, seq);
        return;
    }
    job->service = svc->name;
    job->partition = part;
    job->seq = seq;
    hvd_committer_submit(srv->committer, job);
}

/* Puts every in-flight entry of @p back to waiting, so the next owner
 * receives them again from the oldest one. */
static void partition_reset(hvd_partition_t *p)
{
    for (hvd_entry_t *e = p->head; e && e != p->cursor; e = e->next) {
        if (e->owner) {
            e->owner->inflight--;
            e->owner = NULL;
        }
    }
    p->cursor = p->head;
}

static void log_assignment(hvd_service_t *svc, hvd_consumer_t *c)
{
    char list[512];
    size_t n = 0;
    list[0] = '\0';
    for (int i = 0; i < c->owned_count && n < sizeof(list) - 16; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%d", i ? "," : "", c->owned[i]);
    if (c->owned_count && n >= sizeof(list) - 16)
        snprintf(list + n, sizeof(list) - n, ",...");
    hvd_info("assign: service %s consumer %" PRId64 " (%s, conn %" PRIu64 ") owns %d of %d "
             "partitions [%s]", svc->name, c->id, c->conn->name ? c->conn->name : "-",
             c->conn->id, c->owned_count, svc->partition_count, list);
}

static void rebuild_owned(hvd_service_t *svc)
{
    for (hvd_consumer_t *c = svc->members; c; c = c->next)
        c->owned_count = 0;
    for (int p = 0; p < svc->partition_count; p++) {
        hvd_consumer_t *o = svc->partitions[p].owner;
        if (o)
            o->owned[o->owned_count++] = p;
    }
    for (hvd_consumer_t *c = svc->members; c; c = c->next) {
        if (c->rr >= c->owned_count)
            c->rr = 0;
    }
}

/* Recomputes owners with hv_assign_partitions (balanced and sticky) and
 * resets the partitions that changed hands. */
static void rebalance(hvd_service_t *svc)
{
    int count = svc->partition_count;
    int64_t *owners = malloc((size_t)count * sizeof(*owners));
    int64_t *members = malloc((size_t)(svc->member_count + 1) * sizeof(*members));
    if (!owners || !members) {
        hvd_err("out of memory rebalancing service %s", svc->name);
        free(owners);
        free(members);
        return;
    }
    int n = 0;
    for (hvd_consumer_t *c = svc->members; c; c = c->next)
        members[n++] = c->id;
    for (int p = 0; p < count; p++)
        owners[p] = svc->partitions[p].owner ? svc->partitions[p].owner->id : -1;

    hv_assign_partitions(owners, count, members, n);

    int moved = 0;
    for (int p = 0; p < count; p++) {
        hvd_partition_t *part = &svc->partitions[p];
        hvd_consumer_t *next = NULL;
        for (hvd_consumer_t *c = svc->members; c; c = c->next)
            if (c->id == owners[p])
                next = c;
        if (next != part->owner) {
            partition_reset(part);
            part->owner = next;
            moved++;
        }
    }
    free(owners);
    free(members);

    rebuild_owned(svc);
    hvd_info("assign: service %s has %d consumers, %d partitions moved", svc->name,
             svc->member_count, moved);
    for (hvd_consumer_t *c = svc->members; c; c = c->next)
        log_assignment(svc, c);
    for (hvd_consumer_t *c = svc->members; c; c = c->next)
        hvd_consumer_pump(c);
}

hvd_consumer_t *hvd_consumer_join(hvd_service_t *svc, hvd_conn_t *conn, int ack, int prefetch,
                                  int64_t version)
{
    hvd_consumer_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->owned = calloc((size_t)svc->partition_count, sizeof(*c->owned));
    if (!c->owned) {
        free(c);
        return NULL;
    }
    c->conn = conn;
    c->service = svc;
    c->id = ++conn->server->next_consumer_id;
    c->ack = ack;
    c->prefetch = prefetch;
    c->version = version;

    hvd_consumer_t **tail = &svc->members;
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;
    svc->member_count++;
    rebalance(svc);
    return c;
}

void hvd_consumer_leave(hvd_consumer_t *cons)
{
    if (!cons)
        return;
    hvd_service_t *svc = cons->service;
    for (hvd_consumer_t **pp = &svc->members; *pp; pp = &(*pp)->next) {
        if (*pp == cons) {
            *pp = cons->next;
            svc->member_count--;
            break;
        }
    }
    for (int p = 0; p < svc->partition_count; p++) {
        if (svc->partitions[p].owner == cons) {
            partition_reset(&svc->partitions[p]);
            svc->partitions[p].owner = NULL;
        }
    }
    hvd_info("leave: service %s consumer %" PRId64 " (conn %" PRIu64 ") left", svc->name,
             cons->id, cons->conn->id);
    free(cons->owned);
    free(cons);
    if (svc->member_count > 0)
        rebalance(svc);
}

/* Picks the confirmed channel to push an event named @name on: event:NAME,
 * else event:*, else the first event channel.  Channels whose join is
 * pending are skipped. */
static const hvd_channel_t *push_channel(const hvd_conn_t *conn, const char *name)
{
    const hvd_channel_t *wildcard = NULL, *first = NULL;
    for (int i = 0; i < conn->channel_count; i++) {
        const char *t = conn->channels[i].topic;
        if (strncmp(t, "event:", 6) != 0 || conn->channels[i].pending)
            continue;
        if (strcmp(t + 6, name) == 0)
            return &conn->channels[i];
        if (strcmp(t + 6, "*") == 0 && !wildcard)
            wildcard = &conn->channels[i];
        if (!first)
            first = &conn->channels[i];
    }
    return wildcard ? wildcard : first;
}

/* Packs {"event": BODY, "queue": "SERVICE:PARTITION"}. */
static int pack_received(hv_buf_t *out, const hvd_body_t *body, const char *service, int part)
{
    char queue[300];
    int qlen = snprintf(queue, sizeof(queue), "%s:%d", service, part);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, hv_buf_msgpack_write);
    if (msgpack_pack_map(&pk, 2) || msgpack_pack_str_with_body(&pk, "event", 5))
        return -1;
    if (hv_buf_append(out, body->data, body->size) < 0)
        return -1;
    if (msgpack_pack_str_with_body(&pk, "queue", 5) ||
        msgpack_pack_str_with_body(&pk, queue, (size_t)qlen))
        return -1;
    return 0;
}

/* Bytes of a MessagePack str of @len bytes, header included, as
 * msgpack-c packs it (fixstr, str8, str16 or str32). */
static size_t packed_str_size(size_t len)
{
    if (len < 32)
        return 1 + len;
    if (len < 256)
        return 2 + len;
    if (len < 65536)
        return 3 + len;
    return 5 + len;
}

size_t hvd_push_frame_size(const hvd_service_t *svc, int part, size_t body_size)
{
    /* The channel a push goes out on is one the consumer joined, and every
     * joined topic is among the service's subscriptions. */
    size_t topic_len = 0;
    for (int i = 0; i < svc->topic_count; i++) {
        size_t len = strlen("event:") + strlen(svc->topics[i]);
        if (len > topic_len)
            topic_len = len;
    }
    char queue[300];
    int queue_len = snprintf(queue, sizeof(queue), "%s:%d", svc->name, part);
    if (queue_len < 0 || (size_t)queue_len >= sizeof(queue))
        queue_len = (int)strlen(svc->name) + 12;
    /* {"event": BODY, "queue": QUEUE} */
    size_t payload = 1 + packed_str_size(5) + body_size + packed_str_size(5) +
                     packed_str_size((size_t)queue_len);
    /* {"topic", "event", "payload", "ref": nil}, as hv_frame_encode() packs
     * it without gzip. */
    return 1 + packed_str_size(5) + packed_str_size(topic_len) + packed_str_size(5) +
           packed_str_size(strlen("event:received")) + packed_str_size(7) + payload +
           packed_str_size(3) + 1;
}

/* Pushes the entry at @part's cursor to @cons; returns 0 or -1. */
static int deliver_one(hvd_consumer_t *cons, int part)
{
    hvd_service_t *svc = cons->service;
    hvd_partition_t *p = &svc->partitions[part];
    hvd_entry_t *e = p->cursor;
    hvd_server_t *srv = cons->conn->server;

    if (!e->body) {
        if (partition_read_window(srv, svc, part) < 0)
            return -1;
        if (!e->body) {
            /* Not in the store, or not an event: the same entries are
             * skipped when a restart loads the queues. */
            hvd_warn("store: event %s in queue %s:%d seq %" PRId64 " cannot be read or is not "
                     "a valid event; skipped", e->uuid, svc->name, part, e->seq);
            hvd_partition_remove(srv, p, e);
            return 0;
        }
    }
    p->cursor = e->next;

    if (cons->version != 0 && e->body->version != cons->version) {
        svc->stats.skipped++;
        hvd_broker_complete(srv, svc, part, e->seq);
        hvd_partition_remove(srv, p, e);
        return 0;
    }

    const hvd_channel_t *ch = push_channel(cons->conn, e->body->name);
    hv_buf_t payload = {0};
    int rc = -1;
    if (ch && pack_received(&payload, e->body, svc->name, part) == 0) {
        hv_ref_t nil = {0};
        rc = hvd_conn_send(cons->conn, ch->topic, "event:received", &nil, &ch->join_ref,
                           payload.data, payload.len);
    }
    hv_buf_free(&payload);
    if (rc < 0) {
        p->cursor = e;
        return -1;
    }
    svc->stats.delivered++;
    if (cons->ack) {
        /* A redelivery reads the body from the store again. */
        entry_drop_body(srv, e);
        e->owner = cons;
        e->delivered_to = cons->id;
        cons->inflight++;
    } else {
        hvd_broker_complete(srv, svc, part, e->seq);
        hvd_partition_remove(srv, p, e);
    }
    return 0;
}

void hvd_consumer_pump(hvd_consumer_t *cons)
{
    hvd_partition_t *parts = cons->service->partitions;
    /* Bounded by the window: each round either pushes one event or stops. */
    for (;;) {
        if (cons->conn->closing || cons->owned_count == 0 || cons->conn->server->stopping)
            return;
        if (cons->ack ? cons->inflight >= cons->prefetch
                      : cons->conn->out_count >= HVD_PUSH_WINDOW)
            return;
        int found = -1;
        for (int i = 0; i < cons->owned_count; i++) {
            int idx = (cons->rr + i) % cons->owned_count;
            if (parts[cons->owned[idx]].cursor) {
                found = idx;
                break;
            }
        }
        if (found < 0)
            return;
        cons->rr = (found + 1) % cons->owned_count;
        if (deliver_one(cons, cons->owned[found]) < 0)
            return;
    }
}

void hvd_service_pump(hvd_service_t *svc)
{
    for (hvd_consumer_t *c = svc->members; c; c = c->next)
        hvd_consumer_pump(c);
}

static int load_service_cb(void *ctx, const char *name, int partition_count, const char *topic)
{
    hvd_server_t *srv = ctx;
    hvd_service_t *svc = hvd_service_find(srv, name);
    if (!svc) {
        if (partition_count < 1 || partition_count > 65536) {
            hvd_err("store: service %s has an invalid partition_count %d; skipped", name,
                    partition_count);
            return 0;
        }
        svc = hvd_service_add(srv, name, partition_count);
        if (!svc)
            return -1;
    }
    if (strcmp(topic, "*") != 0 && strchr(topic, '*'))
        hvd_warn("store: service %s subscribes to topic %s, which matches only an event of "
                 "that exact name, and hiventd now rejects emits of names with \"*\"", name,
                 topic);
    return hvd_service_subscribe(svc, topic) < 0 ? -1 : 0;
}

static int load_pending_cb(void *ctx, const char *service, int partition, int64_t seq,
                           const char *uuid)
{
    hvd_server_t *srv = ctx;
    hvd_service_t *svc = hvd_service_find(srv, service);
    if (!svc || partition < 0 || partition >= svc->partition_count) {
        hvd_warn("store: queue entry %s:%d seq %" PRId64 " has no service or partition; "
                 "skipped", service, partition, seq);
        return 0;
    }
    /* The body is read when delivery gets near the entry. */
    return hvd_partition_insert(srv, &svc->partitions[partition], seq, uuid, NULL);
}

int hvd_broker_load(hvd_server_t *srv)
{
    hvd_store_t *st = srv->store;
    if (st->ops->load_services(st, load_service_cb, srv) < 0 ||
        st->ops->load_pending(st, load_pending_cb, srv) < 0) {
        hvd_err("store: loading failed: %s", st->ops->errmsg(st));
        return -1;
    }
    for (hvd_service_t *s = srv->services; s; s = s->next) {
        long pending = 0;
        for (int p = 0; p < s->partition_count; p++)
            pending += s->partitions[p].count;
        hvd_info("store: service %s with %d partitions and %d topics, %ld events pending",
                 s->name, s->partition_count, s->topic_count, pending);
    }
    return 0;
}
