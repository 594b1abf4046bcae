/*
 * Consume benchmarks on the public libhivent ABI.
 *
 *   hvbench_consume --port P --mode throughput --consumers N --count TOTAL [--no-ack]
 *   hvbench_consume --port P --mode e2e --rate EVENTS_PER_S --count N
 *
 * throughput: registers a fresh service (one consumer joins and leaves),
 * fills its queues with TOTAL keyed events, then starts N consumer handles,
 * each polled by its own thread, and times from their creation until every
 * event has been processed.  With --no-ack the consumers set
 * consumer.ack = false.
 *
 * e2e: a producer emits asynchronously at a fixed rate to one connected
 * consumer in the same process.  Each payload carries its send time, and
 * the consumer's process callback records the latency from the emit call.
 */
#include <hivent/hivent.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define PARTITIONS 8

static const char *g_host = "127.0.0.1";
static const char *g_port = "4000";

static atomic_long processed;
static atomic_int stop_consumers;

typedef struct e2e_state {
    double *latency_us;
    long capacity;
    atomic_long count;
} e2e_state_t;

static e2e_state_t e2e;

static int process_count(hivent_consumer_t *consumer, const hivent_event_t *event,
                         char *reason, size_t reason_size, void *opaque)
{
    atomic_fetch_add(&processed, 1);
    return 0;
}

/* The e2e payload is {"t": uint64 send time in ns, "pad": STR}; the send
 * time sits at a fixed offset: fixmap (1), fixstr "t" (2), uint64 (9). */
static int process_e2e(hivent_consumer_t *consumer, const hivent_event_t *event,
                       char *reason, size_t reason_size, void *opaque)
{
    uint64_t now = hvb_now_ns();
    size_t size = 0;
    const unsigned char *p = hivent_event_payload(event, &size);
    if (size >= 12 && p[3] == 0xcf) {
        uint64_t sent = 0;
        for (int i = 0; i < 8; i++)
            sent = (sent << 8) | p[4 + i];
        long i = atomic_fetch_add(&e2e.count, 1);
        if (i < e2e.capacity)
            e2e.latency_us[i] = (double)(now - sent) / 1e3;
    }
    atomic_fetch_add(&processed, 1);
    return 0;
}

static hivent_conf_t *base_conf(void)
{
    char errstr[512];
    hivent_conf_t *conf = hivent_conf_new();
    if (!conf)
        return NULL;
    if (hivent_conf_set(conf, "server.host", g_host, errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "server.port", g_port, errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "client_id", "hvbench", errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "log_level", "warning", errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "request_timeout", "60000", errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "flush_timeout", "60000", errstr, sizeof(errstr))) {
        fprintf(stderr, "configuration: %s\n", errstr);
        hivent_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static hivent_consumer_t *consumer_start(const char *topic, const char *service, int ack,
                                         const char *prefetch, hivent_process_cb *cb)
{
    char errstr[512];
    hivent_conf_t *conf = base_conf();
    if (!conf)
        return NULL;
    if (hivent_conf_set(conf, "consumer.ack", ack ? "true" : "false", errstr,
                        sizeof(errstr)) ||
        hivent_conf_set(conf, "consumer.prefetch", prefetch, errstr, sizeof(errstr))) {
        fprintf(stderr, "configuration: %s\n", errstr);
        hivent_conf_destroy(conf);
        return NULL;
    }
    hivent_conf_set_process_cb(conf, cb);
    hivent_consumer_t *c = hivent_consumer_new(conf, topic, service, PARTITIONS, errstr,
                                               sizeof(errstr));
    if (!c) {
        fprintf(stderr, "consumer: %s\n", errstr);
        hivent_conf_destroy(conf);
    }
    return c;
}

static int consumer_wait_connected(hivent_consumer_t *c, int timeout_ms)
{
    uint64_t deadline = hvb_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (hivent_consumer_state(c) != HIVENT_STATE_CONNECTED && hvb_now_ns() < deadline)
        hivent_consumer_poll(c, 10);
    return hivent_consumer_state(c) == HIVENT_STATE_CONNECTED ? 0 : -1;
}

static hivent_client_t *producer_start(void)
{
    char errstr[512];
    hivent_conf_t *conf = base_conf();
    if (!conf)
        return NULL;
    hivent_client_t *c = hivent_client_new(conf, errstr, sizeof(errstr));
    if (!c) {
        fprintf(stderr, "client: %s\n", errstr);
        hivent_conf_destroy(conf);
        return NULL;
    }
    uint64_t deadline = hvb_now_ns() + 10000000000ull;
    while (hivent_client_state(c) != HIVENT_STATE_CONNECTED && hvb_now_ns() < deadline)
        hivent_client_poll(c, 10);
    return c;
}

/* Fills the queues with @count keyed events and waits until all are stored. */
static int fill(const char *topic, long count, const unsigned char *payload, size_t size)
{
    hivent_client_t *p = producer_start();
    if (!p)
        return -1;
    char errstr[256], key[32];
    long failed = 0;
    for (long i = 0; i < count;) {
        snprintf(key, sizeof(key), "k%ld", i);
        hivent_err_t err = hivent_emit_async(p, topic, payload, size, 1, NULL, key, NULL,
                                             errstr, sizeof(errstr));
        if (err == HIVENT_ERR_QUEUE_FULL) {
            hivent_client_flush(p, 50);
            continue;
        }
        if (err != HIVENT_OK) {
            fprintf(stderr, "fill: %s: %s\n", hivent_err_name(err), errstr);
            failed++;
        }
        i++;
    }
    int left = hivent_client_flush(p, 120000);
    hivent_client_destroy(p);
    if (left || failed) {
        fprintf(stderr, "fill: %d emits outstanding, %ld failed\n", left, failed);
        return -1;
    }
    return 0;
}

static void *poll_main(void *arg)
{
    hivent_consumer_t *c = arg;
    while (!atomic_load(&stop_consumers))
        hivent_consumer_poll(c, 20);
    return NULL;
}

static int run_throughput(int consumers, long count, int ack, size_t size)
{
    char topic[64], service[64];
    unsigned tag = (unsigned)getpid() ^ (unsigned)hvb_now_ns();
    snprintf(topic, sizeof(topic), "bench:consume.%08x", tag);
    snprintf(service, sizeof(service), "bench-consume-%08x", tag);
    unsigned char *payload = hvb_payload_new(size, 777);
    if (!payload)
        return 2;

    /* The first join subscribes the service; emits before it are not queued. */
    hivent_consumer_t *reg = consumer_start(topic, service, ack, "100", process_count);
    if (!reg || consumer_wait_connected(reg, 10000) < 0) {
        fprintf(stderr, "registration consumer did not connect\n");
        return 1;
    }
    hivent_consumer_close(reg, 5000);
    hivent_consumer_destroy(reg);

    uint64_t fill_start = hvb_now_ns();
    if (fill(topic, count, payload, size) < 0)
        return 1;
    double fill_secs = (double)(hvb_now_ns() - fill_start) / 1e9;
    atomic_store(&processed, 0);

    hivent_consumer_t *cs[64];
    pthread_t threads[64];
    uint64_t start = hvb_now_ns();
    for (int i = 0; i < consumers; i++) {
        cs[i] = consumer_start(topic, service, ack, "1000", process_count);
        if (!cs[i])
            return 1;
        pthread_create(&threads[i], NULL, poll_main, cs[i]);
    }
    uint64_t deadline = start + 300000000000ull;
    while (atomic_load(&processed) < count && hvb_now_ns() < deadline)
        usleep(1000);
    uint64_t end = hvb_now_ns();
    atomic_store(&stop_consumers, 1);
    for (int i = 0; i < consumers; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < consumers; i++)
        hivent_consumer_destroy(cs[i]);
    long got = atomic_load(&processed);
    double secs = (double)(end - start) / 1e9;
    printf("RESULT mode=throughput consumers=%d ack=%d size=%zu count=%ld processed=%ld "
           "fill_seconds=%.3f seconds=%.4f rate=%.1f\n",
           consumers, ack, size, count, got, fill_secs, secs, got / secs);
    free(payload);
    return got >= count ? 0 : 1;
}

static int run_e2e(long rate, long count, size_t size)
{
    char topic[64], service[64];
    unsigned tag = (unsigned)getpid() ^ (unsigned)hvb_now_ns();
    snprintf(topic, sizeof(topic), "bench:e2e.%08x", tag);
    snprintf(service, sizeof(service), "bench-e2e-%08x", tag);
    e2e.latency_us = calloc((size_t)count, sizeof(double));
    e2e.capacity = count;
    if (!e2e.latency_us || size < 32)
        return 2;

    hivent_consumer_t *cons = consumer_start(topic, service, 1, "100", process_e2e);
    if (!cons || consumer_wait_connected(cons, 10000) < 0) {
        fprintf(stderr, "consumer did not connect\n");
        return 1;
    }
    pthread_t poller;
    pthread_create(&poller, NULL, poll_main, cons);
    hivent_client_t *p = producer_start();
    if (!p)
        return 1;

    /* {"t": uint64, "pad": str8} padded to @size bytes. */
    unsigned char *payload = malloc(size);
    size_t pad = size - 1 - 2 - 9 - 4 - 2;
    if (!payload || pad > 255)
        return 2;
    payload[0] = 0x82;
    payload[1] = 0xa1;
    payload[2] = 't';
    payload[3] = 0xcf;
    memcpy(payload + 12, "\xa3pad\xd9", 5);
    payload[17] = (unsigned char)pad;
    memset(payload + 18, 'x', pad);

    char errstr[256];
    uint64_t interval = 1000000000ull / (uint64_t)rate;
    uint64_t next = hvb_now_ns();
    long failed = 0;
    for (long i = 0; i < count; i++) {
        hvb_sleep_until(next);
        next += interval;
        uint64_t t = hvb_now_ns();
        for (int b = 0; b < 8; b++)
            payload[4 + b] = (unsigned char)(t >> (56 - 8 * b));
        if (hivent_emit_async(p, topic, payload, size, 1, NULL, NULL, NULL, errstr,
                              sizeof(errstr)) != HIVENT_OK)
            failed++;
        hivent_client_poll(p, 0);
    }
    hivent_client_flush(p, 30000);
    uint64_t deadline = hvb_now_ns() + 30000000000ull;
    while (atomic_load(&processed) < count - failed && hvb_now_ns() < deadline)
        usleep(1000);
    atomic_store(&stop_consumers, 1);
    pthread_join(poller, NULL);
    hivent_consumer_destroy(cons);
    hivent_client_destroy(p);

    long n = atomic_load(&e2e.count);
    if (n > count)
        n = count;
    double p50 = hvb_quantile(e2e.latency_us, (size_t)n, 0.50);
    double p99 = hvb_quantile(e2e.latency_us, (size_t)n, 0.99);
    double max = n ? e2e.latency_us[n - 1] : 0;
    printf("RESULT mode=e2e rate=%ld size=%zu count=%ld received=%ld failed=%ld "
           "p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
           rate, size, count, n, failed, p50, p99, max);
    free(payload);
    free(e2e.latency_us);
    return n == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (hvb_opt_flag(argc, argv, "--help")) {
        printf("usage: %s --port PORT [--host HOST] --mode throughput [--consumers N]\n"
               "          [--count N] [--size BYTES] [--no-ack]\n"
               "       %s --port PORT --mode e2e [--rate EVENTS_PER_S] [--count N]\n",
               argv[0], argv[0]);
        return 0;
    }
    g_host = hvb_opt_str(argc, argv, "--host", g_host);
    g_port = hvb_opt_str(argc, argv, "--port", g_port);
    const char *mode = hvb_opt_str(argc, argv, "--mode", "throughput");
    long consumers = hvb_opt_long(argc, argv, "--consumers", 1);
    long count = hvb_opt_long(argc, argv, "--count", 100000);
    long size = hvb_opt_long(argc, argv, "--size", 256);
    long rate = hvb_opt_long(argc, argv, "--rate", 1000);
    int ack = !hvb_opt_flag(argc, argv, "--no-ack");
    if (consumers < 1 || consumers > 64 || count < 1 || rate < 1 || rate > 1000000 ||
        size < 32 || size > 4096 || (strcmp(mode, "e2e") == 0 && size > 273)) {
        fprintf(stderr, "invalid arguments: consumers 1..64, count >= 1, rate 1..1000000, "
                        "size 32..4096 (e2e: 32..273)\n");
        return 2;
    }
    if (strcmp(mode, "throughput") == 0)
        return run_throughput((int)consumers, count, ack, (size_t)size);
    if (strcmp(mode, "e2e") == 0)
        return run_e2e(rate, count, (size_t)size);
    fprintf(stderr, "invalid --mode %s (expected throughput or e2e)\n", mode);
    return 2;
}
