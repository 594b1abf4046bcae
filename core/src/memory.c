/*
 * Memory transport: one in-process bus shared by every handle whose
 * server.host is "memory".  It is the only state the library keeps per
 * process, and its lock is taken only by memory-transport calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "handle.h"
#include "mp.h"
#include "partition.h"

typedef struct bus {
    pthread_mutex_t lock;
    hivent_event_t **events;
    size_t count, cap;
    hv_handle_t **consumers;
    size_t consumer_count, consumer_cap;
    size_t dead_letters;
} bus_t;

static bus_t bus = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, 0, 0, 0};

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

void hv_memory_register(hv_handle_t *h)
{
    pthread_mutex_lock(&bus.lock);
    if (grow((void **)&bus.consumers, &bus.consumer_cap, bus.consumer_count + 1,
             sizeof *bus.consumers) == 0)
        bus.consumers[bus.consumer_count++] = h;
    pthread_mutex_unlock(&bus.lock);
}

void hv_memory_unregister(hv_handle_t *h)
{
    pthread_mutex_lock(&bus.lock);
    for (size_t i = 0; i < bus.consumer_count; i++) {
        if (bus.consumers[i] == h) {
            memmove(&bus.consumers[i], &bus.consumers[i + 1],
                    (bus.consumer_count - i - 1) * sizeof *bus.consumers);
            bus.consumer_count--;
            break;
        }
    }
    pthread_mutex_unlock(&bus.lock);
}

void hv_memory_dead_letter(const hivent_event_t *ev, const char *reason)
{
    (void)ev;
    (void)reason;
    pthread_mutex_lock(&bus.lock);
    bus.dead_letters++;
    pthread_mutex_unlock(&bus.lock);
}

static int topic_matches(const hv_handle_t *c, const char *name)
{
    const char *t = c->topic + strlen("event:");
    return strcmp(t, "*") == 0 || strcmp(t, name) == 0;
}

/* Delivers @ev to the owner of its partition in @service's live members. */
static void deliver_to_service(const char *service, const hivent_event_t *ev)
{
    hv_handle_t *members[64];
    int64_t ids[64];
    int m = 0, count = 0;
    for (size_t i = 0; i < bus.consumer_count && m < 64; i++) {
        hv_handle_t *c = bus.consumers[i];
        if (strcmp(c->service, service) != 0 || !topic_matches(c, ev->name))
            continue;
        if (c->conf->consumer_version > 0 && c->conf->consumer_version != ev->version)
            continue;
        if (m == 0)
            count = c->partition_count;
        ids[m] = m;
        members[m++] = c;
    }
    if (m == 0)
        return;
    int p = hv_partition_of(ev->key, ev->payload, ev->payload_size, count);
    int64_t *owners = malloc((size_t)count * sizeof *owners);
    if (!owners)
        return;
    for (int i = 0; i < count; i++)
        owners[i] = -1;
    hv_assign_partitions(owners, count, ids, m);
    hv_handle_t *owner = members[owners[p]];
    free(owners);
    hivent_event_t *copy = hivent_event_dup(ev);
    hivent_notice_t *n = copy ? hv_notice_new(HIVENT_NOTICE_EVENT) : NULL;
    size_t qlen = strlen(service) + 16;
    if (copy)
        copy->queue = malloc(qlen);
    if (!n || !copy->queue) {
        hivent_event_destroy(copy);
        free(n);
        return;
    }
    snprintf(copy->queue, qlen, "%s:%d", service, p);
    copy->partition = p;
    n->event = copy;
    hv_notice_push(owner, n);
}

static void deliver_locked(const hivent_event_t *ev)
{
    for (size_t i = 0; i < bus.consumer_count; i++) {
        const char *service = bus.consumers[i]->service;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(bus.consumers[j]->service, service) == 0;
        if (!seen)
            deliver_to_service(service, ev);
    }
}

hivent_err_t hv_memory_emit(hv_handle_t *h, hv_req_t *req, hivent_event_t **published,
                            char *err, size_t err_size)
{
    hivent_event_t *ev = req->event;
    if (hv_event_complete(ev) != 0) {
        hv_req_free(req);
        return HIVENT_ERR_NO_MEMORY;
    }
    hivent_event_t *stored = hivent_event_dup(ev);
    pthread_mutex_lock(&bus.lock);
    if (!stored || grow((void **)&bus.events, &bus.cap, bus.count + 1, sizeof *bus.events)) {
        pthread_mutex_unlock(&bus.lock);
        hivent_event_destroy(stored);
        hv_req_free(req);
        return HIVENT_ERR_NO_MEMORY;
    }
    bus.events[bus.count++] = stored;
    deliver_locked(stored);
    pthread_mutex_unlock(&bus.lock);
    if (published) {
        *published = hivent_event_dup(ev);
        hv_req_free(req);
        return HIVENT_OK;
    }
    pthread_mutex_lock(&h->lock);
    h->outstanding++;
    h->outstanding_bytes += (long long)req->frame_len;
    hv_post_delivery_locked(h, req, HIVENT_OK, NULL, hivent_event_dup(ev));
    pthread_mutex_unlock(&h->lock);
    return HIVENT_OK;
}

HIVENT_API size_t hivent_memory_count(void)
{
    pthread_mutex_lock(&bus.lock);
    size_t n = bus.count;
    pthread_mutex_unlock(&bus.lock);
    return n;
}

HIVENT_API hivent_event_t *hivent_memory_at(size_t i)
{
    pthread_mutex_lock(&bus.lock);
    hivent_event_t *ev = i < bus.count ? hivent_event_dup(bus.events[i]) : NULL;
    pthread_mutex_unlock(&bus.lock);
    return ev;
}

HIVENT_API hivent_event_t *hivent_memory_last(void)
{
    pthread_mutex_lock(&bus.lock);
    hivent_event_t *ev = bus.count ? hivent_event_dup(bus.events[bus.count - 1]) : NULL;
    pthread_mutex_unlock(&bus.lock);
    return ev;
}

HIVENT_API void hivent_memory_clear(void)
{
    pthread_mutex_lock(&bus.lock);
    for (size_t i = 0; i < bus.count; i++)
        hivent_event_destroy(bus.events[i]);
    bus.count = 0;
    bus.dead_letters = 0;
    pthread_mutex_unlock(&bus.lock);
}

/* Returns 1 when every key of map @sub is in map @map with a byte-equal
 * value, 0 when not, -1 when @sub is malformed. */
static int map_contains(const unsigned char *map, size_t map_size, const unsigned char *sub,
                        size_t sub_size)
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, sub, sub_size);
    if (hv_mp_read(&r, &v) != 0 || v.type != HV_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < v.size; i++) {
        hv_mp_value_t k;
        const unsigned char *want, *have;
        size_t want_size, have_size;
        if (hv_mp_read(&r, &k) != 0 || k.type != HV_MP_STR || k.size > 255)
            return -1;
        char key[256];
        memcpy(key, k.str, k.size);
        key[k.size] = 0;
        if (hv_mp_span(&r, &want, &want_size) != 0)
            return -1;
        if (hv_mp_map_find(map, map_size, key, &have, &have_size) != 1)
            return 0;
        if (have_size != want_size || memcmp(have, want, want_size) != 0) {
            /* Integers may differ in width; compare decoded numbers too. */
            hv_mp_reader_t a, b;
            hv_mp_value_t va, vb;
            hv_mp_reader_init(&a, have, have_size);
            hv_mp_reader_init(&b, want, want_size);
            if (hv_mp_read(&a, &va) || hv_mp_read(&b, &vb))
                return 0;
            int ints = (va.type == HV_MP_INT || va.type == HV_MP_UINT) &&
                       (vb.type == HV_MP_INT || vb.type == HV_MP_UINT);
            if (!ints)
                return 0;
            /* The reader fills u only for UINT values, so a signed 5 and
             * an unsigned 5 are compared through i, which both carry; i
             * saturates above INT64_MAX, where no signed value is equal. */
            int huge = (va.type == HV_MP_UINT && va.u > INT64_MAX) ||
                       (vb.type == HV_MP_UINT && vb.u > INT64_MAX);
            int same = va.type == HV_MP_UINT && vb.type == HV_MP_UINT ? va.u == vb.u
                                                                        : !huge && va.i == vb.i;
            if (!same)
                return 0;
        }
    }
    return 1;
}

static int event_matches(hivent_event_t *ev, const char *name, const void *payload_subset,
                         size_t payload_size, const void *meta_subset, size_t meta_size)
{
    if (name && strcmp(name, ev->name) != 0)
        return 0;
    if (payload_subset) {
        int rc = map_contains(ev->payload, ev->payload_size, payload_subset, payload_size);
        if (rc != 1)
            return rc;
    }
    if (meta_subset) {
        size_t size;
        const unsigned char *packed = hivent_event_msgpack(ev, &size);
        const unsigned char *meta;
        size_t ms;
        if (!packed || hv_mp_map_find(packed, size, "meta", &meta, &ms) != 1)
            return -1;
        return map_contains(meta, ms, meta_subset, meta_size);
    }
    return 1;
}

HIVENT_API int hivent_memory_includes(const char *name, const void *payload_subset,
                                      size_t payload_subset_size, const void *meta_subset,
                                      size_t meta_subset_size)
{
    if ((payload_subset && hv_mp_validate(payload_subset, payload_subset_size) != 0) ||
        (meta_subset && hv_mp_validate(meta_subset, meta_subset_size) != 0))
        return HIVENT_ERR_PAYLOAD;
    int found = 0;
    pthread_mutex_lock(&bus.lock);
    for (size_t i = 0; i < bus.count && !found; i++) {
        int rc = event_matches(bus.events[i], name, payload_subset, payload_subset_size,
                               meta_subset, meta_subset_size);
        if (rc < 0) {
            found = HIVENT_ERR_PAYLOAD;
            break;
        }
        found = rc;
    }
    pthread_mutex_unlock(&bus.lock);
    return found;
}
