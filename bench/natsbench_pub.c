/*
 * NATS reference publisher, built on libnats (Debian's libnats-dev).
 *
 *   natsbench_pub --url nats://127.0.0.1:PORT --mode core|js --producers N
 *                 --size BYTES --count TOTAL
 *
 * core: plain NATS publishes, which get no acknowledgement, so the rate
 * runs to the end of a final flush (a PING/PONG round trip after the last
 * message).  js: JetStream asynchronous publishes to a file-backed stream,
 * counted when the server's publish acknowledgement arrives.
 */
#include <nats/nats.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

typedef struct publisher {
    pthread_t thread;
    const char *url;
    int js_mode;
    const unsigned char *payload;
    int size;
    long count;
    long errors;
    uint64_t end_ns;
    natsConnection *nc;
    jsCtx *js;
} publisher_t;

static pthread_barrier_t start_barrier;
static atomic_long js_errors;

static void on_js_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    if (atomic_fetch_add(&js_errors, 1) == 0)
        fprintf(stderr, "jetstream publish failed: %s\n", pae->ErrText ? pae->ErrText : "?");
}

static natsStatus connect_publisher(publisher_t *p)
{
    natsStatus s = natsConnection_ConnectTo(&p->nc, p->url);
    if (s != NATS_OK || !p->js_mode)
        return s;
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = 10000;
    o.PublishAsync.ErrHandler = on_js_error;
    o.PublishAsync.StallWait = 60000;
    o.Wait = 60000;
    return natsConnection_JetStream(&p->js, p->nc, &o);
}

static void *publisher_main(void *arg)
{
    publisher_t *p = arg;
    pthread_barrier_wait(&start_barrier);
    for (long i = 0; i < p->count; i++) {
        natsStatus s = p->js_mode
                           ? js_PublishAsync(p->js, "bench.emit", p->payload, p->size, NULL)
                           : natsConnection_Publish(p->nc, "bench.emit", p->payload, p->size);
        if (s != NATS_OK && p->errors++ == 0)
            fprintf(stderr, "publish failed: %s\n", natsStatus_GetText(s));
    }
    natsStatus s;
    if (p->js_mode) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 120000;
        s = js_PublishAsyncComplete(p->js, &po);
    } else {
        s = natsConnection_FlushTimeout(p->nc, 120000);
    }
    if (s != NATS_OK) {
        fprintf(stderr, "completion failed: %s\n", natsStatus_GetText(s));
        p->errors++;
    }
    p->end_ns = hvb_now_ns();
    return NULL;
}

static int create_stream(const char *url)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subjects[] = {"bench.>"};
        sc.Name = "BENCH";
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        s = js_AddStream(&si, js, &sc, NULL, &jerr);
        if (s != NATS_OK)
            fprintf(stderr, "creating stream BENCH failed: %s (%d)\n", natsStatus_GetText(s),
                    (int)jerr);
    }
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *url = hvb_opt_str(argc, argv, "--url", "nats://127.0.0.1:4222");
    const char *mode = hvb_opt_str(argc, argv, "--mode", "core");
    long producers = hvb_opt_long(argc, argv, "--producers", 1);
    long size = hvb_opt_long(argc, argv, "--size", 256);
    long total = hvb_opt_long(argc, argv, "--count", 100000);
    int js_mode = strcmp(mode, "js") == 0;
    if ((!js_mode && strcmp(mode, "core") != 0) || producers < 1 || producers > 64 ||
        size < 1 || size > 1048576 || total < 1) {
        fprintf(stderr, "usage: %s --url URL --mode core|js [--producers 1..64] "
                        "[--size BYTES] [--count N]\n", argv[0]);
        return 2;
    }
    unsigned char *payload = malloc((size_t)size);
    publisher_t *ps = calloc((size_t)producers, sizeof(*ps));
    if (!payload || !ps)
        return 2;
    for (long i = 0; i < size; i++)
        payload[i] = (unsigned char)('a' + (i * 7919) % 26);
    if (js_mode && create_stream(url) < 0)
        return 1;

    pthread_barrier_init(&start_barrier, NULL, (unsigned)producers + 1);
    for (long i = 0; i < producers; i++) {
        publisher_t *p = &ps[i];
        p->url = url;
        p->js_mode = js_mode;
        p->payload = payload;
        p->size = (int)size;
        p->count = total / producers + (i < total % producers ? 1 : 0);
        natsStatus s = connect_publisher(p);
        if (s != NATS_OK) {
            fprintf(stderr, "connect to %s failed: %s\n", url, natsStatus_GetText(s));
            return 1;
        }
        pthread_create(&p->thread, NULL, publisher_main, p);
    }
    pthread_barrier_wait(&start_barrier);
    uint64_t start = hvb_now_ns(), end = start;
    long errors = 0;
    for (long i = 0; i < producers; i++) {
        pthread_join(ps[i].thread, NULL);
        if (ps[i].end_ns > end)
            end = ps[i].end_ns;
        errors += ps[i].errors;
    }
    errors += atomic_load(&js_errors);
    double secs = (double)(end - start) / 1e9;
    printf("RESULT mode=%s producers=%ld size=%ld count=%ld errors=%ld seconds=%.4f "
           "rate=%.1f\n",
           mode, producers, size, total, errors, secs, (double)(total - errors) / secs);
    for (long i = 0; i < producers; i++) {
        jsCtx_Destroy(ps[i].js);
        natsConnection_Destroy(ps[i].nc);
    }
    free(ps);
    free(payload);
    nats_Close();
    return errors ? 1 : 0;
}
