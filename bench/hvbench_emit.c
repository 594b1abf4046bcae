/*
 * Emit benchmark on the public libhivent ABI.
 *
 *   hvbench_emit --port P --mode async --producers N --size BYTES --count TOTAL
 *   hvbench_emit --port P --mode sync --size BYTES --count N
 *
 * async: N threads, each with its own client handle, emit TOTAL/N events
 * with hivent_emit_async() and keep at most --window emits outstanding.
 * The rate counts only emits whose delivery report is a success, which
 * hiventd sends after its store commit.  sync: one client emits one event
 * at a time with hivent_emit() and records each round trip.
 */
#include <hivent/hivent.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

typedef struct producer {
    pthread_t thread;
    hivent_client_t *client;
    const unsigned char *payload;
    size_t payload_size;
    long count;
    long window;
    long done;
    long failed;
    long queue_full;
    uint64_t end_ns;
    char first_error[256];
} producer_t;

static pthread_barrier_t start_barrier;
static atomic_int connect_failures;

static void on_delivery(hivent_client_t *client, hivent_err_t err, const char *errstr,
                        const hivent_event_t *event, void *msg_opaque, void *opaque)
{
    producer_t *p = opaque;
    p->done++;
    if (err != HIVENT_OK) {
        if (p->failed++ == 0)
            snprintf(p->first_error, sizeof(p->first_error), "%s: %s", hivent_err_name(err),
                     errstr ? errstr : "");
    }
}

static hivent_client_t *connect_client(const char *host, const char *port, void *opaque,
                                       int with_delivery_cb)
{
    char errstr[512];
    hivent_conf_t *conf = hivent_conf_new();
    if (!conf)
        return NULL;
    if (hivent_conf_set(conf, "server.host", host, errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "server.port", port, errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "client_id", "hvbench", errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "log_level", "warning", errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "request_timeout", "60000", errstr, sizeof(errstr)) ||
        hivent_conf_set(conf, "flush_timeout", "60000", errstr, sizeof(errstr))) {
        fprintf(stderr, "configuration: %s\n", errstr);
        hivent_conf_destroy(conf);
        return NULL;
    }
    if (with_delivery_cb)
        hivent_conf_set_delivery_cb(conf, on_delivery);
    hivent_conf_set_opaque(conf, opaque);
    hivent_client_t *c = hivent_client_new(conf, errstr, sizeof(errstr));
    if (!c) {
        fprintf(stderr, "client: %s\n", errstr);
        hivent_conf_destroy(conf);
        return NULL;
    }
    uint64_t deadline = hvb_now_ns() + 10000000000ull;
    while (hivent_client_state(c) != HIVENT_STATE_CONNECTED && hvb_now_ns() < deadline)
        hivent_client_poll(c, 10);
    if (hivent_client_state(c) != HIVENT_STATE_CONNECTED) {
        fprintf(stderr, "client: not connected to %s:%s within 10 s\n", host, port);
        hivent_client_destroy(c);
        return NULL;
    }
    return c;
}

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    char errstr[256];
    pthread_barrier_wait(&start_barrier);
    if (atomic_load(&connect_failures) > 0)
        return NULL;
    for (long i = 0; i < p->count;) {
        if (i - p->done >= p->window) {
            hivent_client_poll(p->client, 5);
            continue;
        }
        hivent_err_t err = hivent_emit_async(p->client, "bench:emit", p->payload,
                                             p->payload_size, 1, NULL, NULL, NULL, errstr,
                                             sizeof(errstr));
        if (err == HIVENT_ERR_QUEUE_FULL) {
            p->queue_full++;
            hivent_client_poll(p->client, 5);
            continue;
        }
        if (err != HIVENT_OK) {
            fprintf(stderr, "emit_async: %s: %s\n", hivent_err_name(err), errstr);
            break;
        }
        i++;
        /* Collect delivery reports now and then without waiting. */
        if ((i & 255) == 0)
            hivent_client_poll(p->client, 0);
    }
    uint64_t deadline = hvb_now_ns() + 120000000000ull;
    while (p->done < p->count && hvb_now_ns() < deadline)
        hivent_client_poll(p->client, 100);
    p->end_ns = hvb_now_ns();
    return NULL;
}

static int run_async(const char *host, const char *port, int producers, size_t size,
                     long total, long window)
{
    producer_t *ps = calloc((size_t)producers, sizeof(*ps));
    unsigned char *payload = hvb_payload_new(size, 12345);
    if (!ps || !payload) {
        fprintf(stderr, "payload size %zu not supported (8 to 65535 bytes)\n", size);
        return 2;
    }
    pthread_barrier_init(&start_barrier, NULL, (unsigned)producers + 1);
    for (int i = 0; i < producers; i++) {
        producer_t *p = &ps[i];
        p->payload = payload;
        p->payload_size = size;
        p->count = total / producers + (i < total % producers ? 1 : 0);
        p->window = window;
        p->client = connect_client(host, port, p, 1);
        if (!p->client)
            atomic_fetch_add(&connect_failures, 1);
        pthread_create(&p->thread, NULL, producer_main, p);
    }
    pthread_barrier_wait(&start_barrier);
    uint64_t start = hvb_now_ns();
    uint64_t end = start;
    long ok = 0, failed = 0, queue_full = 0;
    for (int i = 0; i < producers; i++) {
        producer_t *p = &ps[i];
        pthread_join(p->thread, NULL);
        if (p->end_ns > end)
            end = p->end_ns;
        ok += p->done - p->failed;
        failed += p->failed + (p->count - p->done);
        queue_full += p->queue_full;
        if (p->failed)
            fprintf(stderr, "producer %d: %ld failed, first: %s\n", i, p->failed,
                    p->first_error);
    }
    for (int i = 0; i < producers; i++)
        hivent_client_destroy(ps[i].client);
    if (atomic_load(&connect_failures) > 0)
        return 1;
    double secs = (double)(end - start) / 1e9;
    printf("RESULT mode=async producers=%d size=%zu count=%ld ok=%ld failed=%ld "
           "queue_full_retries=%ld seconds=%.4f rate=%.1f\n",
           producers, size, total, ok, failed, queue_full, secs, secs > 0 ? ok / secs : 0);
    free(payload);
    free(ps);
    return failed ? 1 : 0;
}

static int run_sync(const char *host, const char *port, size_t size, long count, long warmup)
{
    unsigned char *payload = hvb_payload_new(size, 12345);
    double *lat = calloc((size_t)count, sizeof(*lat));
    if (!payload || !lat) {
        fprintf(stderr, "payload size %zu not supported (8 to 65535 bytes)\n", size);
        return 2;
    }
    hivent_client_t *c = connect_client(host, port, NULL, 0);
    if (!c)
        return 1;
    char errstr[256];
    long failed = 0;
    uint64_t start = hvb_now_ns();
    for (long i = -warmup; i < count; i++) {
        uint64_t t0 = hvb_now_ns();
        hivent_err_t err = hivent_emit(c, "bench:emit", payload, size, 1, NULL, NULL, -1,
                                       NULL, errstr, sizeof(errstr));
        uint64_t t1 = hvb_now_ns();
        if (err != HIVENT_OK) {
            if (failed++ == 0)
                fprintf(stderr, "emit: %s: %s\n", hivent_err_name(err), errstr);
            continue;
        }
        if (i == 0)
            start = t0;
        if (i >= 0)
            lat[i] = (double)(t1 - t0) / 1e3;
    }
    double secs = (double)(hvb_now_ns() - start) / 1e9;
    double mean = 0;
    for (long i = 0; i < count; i++)
        mean += lat[i];
    mean /= (double)count;
    double p50 = hvb_quantile(lat, (size_t)count, 0.50);
    double p99 = hvb_quantile(lat, (size_t)count, 0.99);
    printf("RESULT mode=sync size=%zu count=%ld failed=%ld seconds=%.4f rate=%.1f "
           "mean_us=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
           size, count, failed, secs, count / secs, mean, p50, p99, lat[count - 1]);
    hivent_client_destroy(c);
    free(lat);
    free(payload);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (hvb_opt_flag(argc, argv, "--help")) {
        printf("usage: %s --port PORT [--host HOST] [--mode async|sync] [--producers N]\n"
               "          [--size BYTES] [--count N] [--window N] [--warmup N]\n",
               argv[0]);
        return 0;
    }
    const char *host = hvb_opt_str(argc, argv, "--host", "127.0.0.1");
    const char *port = hvb_opt_str(argc, argv, "--port", "4000");
    const char *mode = hvb_opt_str(argc, argv, "--mode", "async");
    long producers = hvb_opt_long(argc, argv, "--producers", 1);
    long size = hvb_opt_long(argc, argv, "--size", 256);
    long count = hvb_opt_long(argc, argv, "--count", 100000);
    long window = hvb_opt_long(argc, argv, "--window", 10000);
    long warmup = hvb_opt_long(argc, argv, "--warmup", 200);
    if (producers < 1 || producers > 64 || count < 1 || window < 1 || warmup < 0) {
        fprintf(stderr, "invalid arguments: producers 1..64, count >= 1, window >= 1\n");
        return 2;
    }
    if (strcmp(mode, "async") == 0)
        return run_async(host, port, (int)producers, (size_t)size, count, window);
    if (strcmp(mode, "sync") == 0)
        return run_sync(host, port, (size_t)size, count, warmup);
    fprintf(stderr, "invalid --mode %s (expected async or sync)\n", mode);
    return 2;
}
