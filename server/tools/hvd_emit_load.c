/*
 * Durable emit load for hiventd through libhivent.
 *
 *   hvd_emit_load --port P [--producers 4] [--size 256] [--count 400000]
 *                 [--window 20000] [--partitions 16] [--consume]
 *
 * A consumer of service "load" first joins event:load:emit, which
 * subscribes the service, so every emit is stored for it.  Without
 * --consume the consumer then leaves and the events stay queued; with
 * --consume it keeps acknowledging them during the run.  Each producer
 * thread owns one client and keeps at most --window emits outstanding
 * with hivent_emit_async().  The rate counts successful delivery reports,
 * which hiventd sends only after the event's transaction committed.
 */
#include <hivent/hivent.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOPIC "load:emit"
#define SERVICE "load"

typedef struct producer {
    pthread_t thread;
    hivent_client_t *client;
    long count;
    long window;
    long done;
    long failed;
    char first_error[256];
} producer_t;

static const char *opt_host = "127.0.0.1";
static const char *opt_port = "4000";
static unsigned char *payload;
static size_t payload_size;
static pthread_barrier_t start_barrier;
static atomic_int stop_consumer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Builds {"data": STR} of exactly @size bytes (40 to 65535). */
static unsigned char *payload_new(size_t size)
{
    if (size < 40 || size > 65535)
        return NULL;
    size_t header = size - 8 <= 255 ? 2 : 3;
    size_t len = size - 6 - header;
    unsigned char *p = malloc(size), *w = p;
    if (!p)
        return NULL;
    *w++ = 0x81;
    *w++ = 0xa4;
    memcpy(w, "data", 4);
    w += 4;
    if (header == 2) {
        *w++ = 0xd9;
    } else {
        *w++ = 0xda;
        *w++ = (unsigned char)(len >> 8);
    }
    *w++ = (unsigned char)len;
    for (size_t i = 0; i < len; i++)
        *w++ = (unsigned char)('a' + (i * 7 + i / 26) % 26);
    return p;
}

static hivent_conf_t *conf_new(void)
{
    char err[256];
    hivent_conf_t *conf = hivent_conf_new();
    if (!conf)
        return NULL;
    if (hivent_conf_set(conf, "server.host", opt_host, err, sizeof(err)) ||
        hivent_conf_set(conf, "server.port", opt_port, err, sizeof(err)) ||
        hivent_conf_set(conf, "log_level", "error", err, sizeof(err)) ||
        hivent_conf_set(conf, "request_timeout", "60000", err, sizeof(err)) ||
        hivent_conf_set(conf, "flush_timeout", "60000", err, sizeof(err))) {
        fprintf(stderr, "configuration: %s\n", err);
        hivent_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static void on_delivery(hivent_client_t *client, hivent_err_t err, const char *errstr,
                        const hivent_event_t *event, void *msg_opaque, void *opaque)
{
    (void)client;
    (void)event;
    (void)msg_opaque;
    producer_t *p = opaque;
    p->done++;
    if (err != HIVENT_OK && p->failed++ == 0)
        snprintf(p->first_error, sizeof(p->first_error), "%s: %s", hivent_err_name(err),
                 errstr);
}

static int wait_connected(hivent_state_t (*state)(void *), void *handle,
                          int (*poll)(void *, int))
{
    for (int i = 0; i < 1000 && state(handle) != HIVENT_STATE_CONNECTED; i++)
        poll(handle, 10);
    return state(handle) == HIVENT_STATE_CONNECTED ? 0 : -1;
}

static hivent_state_t client_state(void *h) { return hivent_client_state(h); }
static int client_poll(void *h, int ms) { return hivent_client_poll(h, ms); }
static hivent_state_t consumer_state(void *h) { return hivent_consumer_state(h); }
static int consumer_poll(void *h, int ms) { return hivent_consumer_poll(h, ms); }

static int on_process(hivent_consumer_t *consumer, const hivent_event_t *event, char *reason,
                      size_t reason_size, void *opaque)
{
    (void)consumer;
    (void)event;
    (void)reason;
    (void)reason_size;
    atomic_long *consumed = opaque;
    atomic_fetch_add(consumed, 1);
    return 0;
}

static hivent_consumer_t *consumer_new(int partitions, atomic_long *consumed)
{
    char err[256];
    hivent_conf_t *conf = conf_new();
    if (!conf)
        return NULL;
    hivent_conf_set(conf, "consumer.prefetch", "10000", err, sizeof(err));
    hivent_conf_set_process_cb(conf, on_process);
    hivent_conf_set_opaque(conf, consumed);
    hivent_consumer_t *c = hivent_consumer_new(conf, TOPIC, SERVICE, partitions, err,
                                               sizeof(err));
    if (!c) {
        fprintf(stderr, "consumer: %s\n", err);
        hivent_conf_destroy(conf);
        return NULL;
    }
    if (wait_connected(consumer_state, c, consumer_poll) < 0) {
        fprintf(stderr, "consumer: not connected to %s:%s within 10 s\n", opt_host, opt_port);
        hivent_consumer_destroy(c);
        return NULL;
    }
    return c;
}

static void *consumer_main(void *arg)
{
    hivent_consumer_t *c = arg;
    for (long i = 0; i < 10000000 && !atomic_load(&stop_consumer); i++)
        hivent_consumer_poll(c, 20);
    return NULL;
}

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    char err[256], key[32];
    pthread_barrier_wait(&start_barrier);
    for (long i = 0; i < p->count;) {
        if (i - p->done >= p->window) {
            hivent_client_poll(p->client, 5);
            continue;
        }
        /* Keys spread the events over every partition. */
        snprintf(key, sizeof(key), "k%ld", i % 1000);
        hivent_err_t rc = hivent_emit_async(p->client, TOPIC, payload, payload_size, 1, NULL,
                                            key, NULL, err, sizeof(err));
        if (rc == HIVENT_ERR_QUEUE_FULL) {
            hivent_client_poll(p->client, 5);
            continue;
        }
        if (rc != HIVENT_OK) {
            fprintf(stderr, "emit: %s: %s\n", hivent_err_name(rc), err);
            p->count = i;
            break;
        }
        i++;
        if ((i & 255) == 0)
            hivent_client_poll(p->client, 0);
    }
    double deadline = now_s() + 120;
    while (p->done < p->count && now_s() < deadline)
        hivent_client_poll(p->client, 50);
    return NULL;
}

static long opt_long(int argc, char **argv, const char *name, long fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return fallback;
}

static int opt_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--port") == 0)
            opt_port = argv[i + 1];
        if (strcmp(argv[i], "--host") == 0)
            opt_host = argv[i + 1];
    }
    int producers = (int)opt_long(argc, argv, "--producers", 4);
    long count = opt_long(argc, argv, "--count", 400000);
    long window = opt_long(argc, argv, "--window", 20000);
    int partitions = (int)opt_long(argc, argv, "--partitions", 16);
    int consume = opt_flag(argc, argv, "--consume");
    payload_size = (size_t)opt_long(argc, argv, "--size", 256);
    payload = payload_new(payload_size);
    if (!payload || producers < 1 || producers > 64 || count < producers || window < 1 ||
        partitions < 1) {
        fprintf(stderr, "usage: %s --port P [--producers 1..64] [--size 40..65535] "
                "[--count N] [--window N] [--partitions N] [--consume]\n", argv[0]);
        return 2;
    }

    atomic_long consumed = 0;
    hivent_consumer_t *consumer = consumer_new(partitions, &consumed);
    if (!consumer)
        return 1;
    pthread_t consumer_thread;
    if (consume) {
        pthread_create(&consumer_thread, NULL, consumer_main, consumer);
    } else {
        hivent_consumer_destroy(consumer);
        consumer = NULL;
    }

    producer_t *ps = calloc((size_t)producers, sizeof(*ps));
    pthread_barrier_init(&start_barrier, NULL, (unsigned)producers + 1);
    for (int i = 0; i < producers; i++) {
        producer_t *p = &ps[i];
        p->count = count / producers;
        p->window = window;
        hivent_conf_t *conf = conf_new();
        char err[256];
        if (conf) {
            hivent_conf_set_delivery_cb(conf, on_delivery);
            hivent_conf_set_opaque(conf, p);
            hivent_conf_set(conf, "client_id", "load", err, sizeof(err));
            p->client = hivent_client_new(conf, err, sizeof(err));
        }
        if (!p->client || wait_connected(client_state, p->client, client_poll) < 0) {
            fprintf(stderr, "producer %d: not connected to %s:%s within 10 s\n", i, opt_host,
                    opt_port);
            return 1;
        }
        pthread_create(&p->thread, NULL, producer_main, p);
    }
    pthread_barrier_wait(&start_barrier);
    double start = now_s();
    long ok = 0, failed = 0, total = 0;
    for (int i = 0; i < producers; i++) {
        pthread_join(ps[i].thread, NULL);
        ok += ps[i].done - ps[i].failed;
        failed += ps[i].failed + (ps[i].count - ps[i].done);
        total += ps[i].count;
        if (ps[i].failed)
            fprintf(stderr, "producer %d: %ld failed, first: %s\n", i, ps[i].failed,
                    ps[i].first_error);
    }
    double secs = now_s() - start;
    for (int i = 0; i < producers; i++)
        hivent_client_destroy(ps[i].client);
    if (consume) {
        atomic_store(&stop_consumer, 1);
        pthread_join(consumer_thread, NULL);
        hivent_consumer_destroy(consumer);
    }
    printf("RESULT producers=%d size=%zu count=%ld ok=%ld failed=%ld consumed=%ld "
           "seconds=%.3f rate=%.0f\n", producers, payload_size, total, ok, failed,
           (long)atomic_load(&consumed), secs, ok / secs);
    free(payload);
    free(ps);
    return failed ? 1 : 0;
}
