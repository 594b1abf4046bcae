/* Client and consumer against a real hiventd: emit, consume, acknowledge,
 * quarantine, API keys, and reconnects after hiventd is killed. */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "harness.h"

static hiventd_t server;
static char data_dir[256];
static recorder_t rec;

typedef struct consumed {
    pthread_mutex_t lock;
    int count;
    int index[REC_MAX];
    int partition[REC_MAX];
    char key[REC_MAX][16];
} consumed_t;

static consumed_t got;

static int process(hivent_consumer_t *consumer, const hivent_event_t *ev, char *reason,
                   size_t reason_size, void *opaque)
{
    consumed_t *c = opaque;
    size_t size;
    const unsigned char *p = hivent_event_payload(ev, &size);
    char *json = hivent_msgpack_to_json(p, size, NULL, 0);
    int index = -1;
    const char *at = json ? strstr(json, "\"i\":") : NULL;
    if (at)
        index = atoi(at + 4);
    hivent_free(json);
    pthread_mutex_lock(&c->lock);
    if (c->count < REC_MAX) {
        c->index[c->count] = index;
        c->partition[c->count] = hivent_event_partition(ev);
        snprintf(c->key[c->count], sizeof c->key[0], "%s",
                 hivent_event_key(ev) ? hivent_event_key(ev) : "");
        c->count++;
    }
    pthread_mutex_unlock(&c->lock);
    if (strcmp(hivent_event_name(ev), "bad") == 0) {
        snprintf(reason, reason_size, "cannot process event %d", index);
        return 1;
    }
    return 0;
}

static hivent_consumer_t *new_consumer(const char *topic, const char *service, int parts)
{
    hivent_conf_t *conf = test_conf(server.port);
    conf_put(conf, "heartbeat_interval", "1000");
    hivent_conf_set_process_cb(conf, process);
    hivent_conf_set_opaque(conf, &got);
    char err[512] = "";
    hivent_consumer_t *c = hivent_consumer_new(conf, topic, service, parts, err, sizeof err);
    CHECK_MSG(c != NULL, "%s", err);
    if (!c)
        hivent_conf_destroy(conf);
    return c;
}

static hivent_client_t *new_client(const char *api_key)
{
    hivent_conf_t *conf = test_conf(server.port);
    if (api_key)
        conf_put(conf, "server.api_key", api_key);
    rec_init(&rec);
    rec_attach(&rec, conf);
    char err[512] = "";
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    CHECK_MSG(c != NULL, "%s", err);
    if (!c)
        hivent_conf_destroy(conf);
    return c;
}

/* Polls the consumer until @n events arrived or @timeout_ms passed. */
static int consume_until(hivent_consumer_t *c, int n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (got.count < n && now_ms() < end)
        hivent_consumer_poll(c, 50);
    return got.count;
}

static void reset_consumed(void)
{
    pthread_mutex_lock(&got.lock);
    got.count = 0;
    pthread_mutex_unlock(&got.lock);
}

static int wait_consumer_connected(hivent_consumer_t *c)
{
    int64_t end = now_ms() + 5000;
    while (hivent_consumer_state(c) != HIVENT_STATE_CONNECTED && now_ms() < end)
        hivent_consumer_poll(c, 50);
    return hivent_consumer_state(c) == HIVENT_STATE_CONNECTED;
}

static void emit_consume_ack_roundtrip(void)
{
    reset_consumed();
    hivent_consumer_t *cons = new_consumer("order:paid", "billing", 4);
    CHECK_REQUIRE(cons != NULL);
    CHECK_REQUIRE(wait_consumer_connected(cons));
    hivent_client_t *c = new_client(NULL);
    CHECK_REQUIRE(c != NULL);
    const char *keys[] = {"alice", "bob", "carol", "dave", "erin"};
    char err[512] = "";
    for (int i = 0; i < 100; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, i, 3);
        hivent_err_t rc = i % 10 == 0
            ? hivent_emit(c, "order:paid", payload, len, 1, NULL, keys[i % 5], 5000, NULL, err,
                          sizeof err)
            : hivent_emit_async(c, "order:paid", payload, len, 1, NULL, keys[i % 5], NULL, err,
                                sizeof err);
        CHECK_MSG(rc == HIVENT_OK, "emit %d: %s", i, err);
    }
    /* An event of another name is not delivered to this topic. */
    hivent_emit(c, "order:refunded", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err);
    CHECK_INT(hivent_client_flush(c, 10000), 0);
    CHECK_INT(rec.deliveries_ok, 90);
    CHECK_INT(consume_until(cons, 100, 10000), 100);
    hivent_consumer_poll(cons, 300);
    CHECK_INT(got.count, 100);
    /* Partition = crc32(key) mod 4, and per key the emit order holds. */
    int last[5] = {-1, -1, -1, -1, -1};
    for (int k = 0; k < got.count; k++) {
        int key_index = -1;
        for (int j = 0; j < 5; j++)
            if (strcmp(got.key[k], keys[j]) == 0)
                key_index = j;
        CHECK_REQUIRE(key_index >= 0);
        uLong crc = crc32(0L, (const Bytef *)keys[key_index], (uInt)strlen(keys[key_index]));
        CHECK_INT(got.partition[k], (int)(crc % 4));
        CHECK_MSG(got.index[k] > last[key_index], "key %s: %d after %d", keys[key_index],
                  got.index[k], last[key_index]);
        last[key_index] = got.index[k];
    }
    hivent_client_destroy(c);
    CHECK_INT(hivent_consumer_close(cons, 3000), HIVENT_OK);
    hivent_consumer_destroy(cons);
}

/* Packs a map {"i": INDEX, "d": [[...[]...]]} whose arrays and maps nest
 * @depth levels, the top map included. */
static size_t pack_nested(unsigned char *out, size_t size, int index, int depth)
{
    size_t n = 0;
    if (size < (size_t)depth + 16 || depth < 2)
        return 0;
    out[n++] = 0x82;
    out[n++] = 0xa1;
    out[n++] = 'i';
    out[n++] = (unsigned char)index;
    out[n++] = 0xa1;
    out[n++] = 'd';
    for (int i = 1; i < depth - 1; i++)
        out[n++] = 0x91; /* array of one */
    out[n++] = 0x90;     /* the innermost, empty array */
    return n;
}

/* Emit and hiventd apply the same payload depth limit, so a payload the
 * client accepts is stored and delivered, and a deeper one fails at emit
 * without reaching the server. */
static void payload_depth_limit_shared(void)
{
    reset_consumed();
    hivent_consumer_t *cons = new_consumer("deep:event", "deep-reader", 1);
    CHECK_REQUIRE(cons != NULL);
    CHECK_REQUIRE(wait_consumer_connected(cons));
    hivent_client_t *c = new_client(NULL);
    CHECK_REQUIRE(c != NULL);
    unsigned char payload[256];
    char err[512] = "";
    size_t len = pack_nested(payload, sizeof payload, 7, 64);
    CHECK_REQUIRE(len > 0);
    CHECK_INT(hivent_emit(c, "deep:event", payload, len, 1, NULL, NULL, 5000, NULL, err,
                          sizeof err), HIVENT_OK);
    CHECK_INT(consume_until(cons, 1, 5000), 1);
    CHECK_INT(got.index[0], 7);

    len = pack_nested(payload, sizeof payload, 8, 65);
    CHECK_INT(hivent_emit(c, "deep:event", payload, len, 1, NULL, NULL, 5000, NULL, err,
                          sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_CONTAINS(err, "deeper than 64 levels");
    CHECK_INT(hivent_emit_async(c, "deep:event", payload, len, 1, NULL, NULL, NULL, err,
                                sizeof err), HIVENT_ERR_PAYLOAD);
    /* The client is still usable. */
    len = pack_nested(payload, sizeof payload, 9, 3);
    CHECK_INT(hivent_emit(c, "deep:event", payload, len, 1, NULL, NULL, 5000, NULL, err,
                          sizeof err), HIVENT_OK);
    CHECK_INT(consume_until(cons, 2, 5000), 2);
    CHECK_INT(got.index[1], 9);
    hivent_client_destroy(c);
    CHECK_INT(hivent_consumer_close(cons, 3000), HIVENT_OK);
    hivent_consumer_destroy(cons);
}

static pthread_mutex_t logs_lock = PTHREAD_MUTEX_INITIALIZER;
static char consumer_logs[16384];

static void keep_log(void *handle, int level, const char *facility, const char *message,
                     void *opaque)
{
    pthread_mutex_lock(&logs_lock);
    size_t used = strlen(consumer_logs);
    snprintf(consumer_logs + used, sizeof consumer_logs - used, "%d %s %s\n", level, facility,
             message);
    pthread_mutex_unlock(&logs_lock);
}

/* Returns hiventd's hivent_events_delivered_total of @service, or -1. */
static long delivered_count(const char *service)
{
    char *text = http_get(server.port, "GET", "/metrics", NULL);
    char needle[128];
    snprintf(needle, sizeof needle, "hivent_events_delivered_total{service=\"%s\"} ", service);
    const char *at = text ? strstr(text, needle) : NULL;
    long n = at ? atol(at + strlen(needle)) : -1;
    free(text);
    return n;
}

/* After a partition moves, hiventd sends its events again to the new
 * owner.  The old owner's late acks of those events are rejected and
 * logged, and the new owner completes them. */
static void late_ack_after_move_logged(void)
{
    reset_consumed();
    consumer_logs[0] = 0;
    hivent_conf_t *conf = test_conf(server.port);
    conf_put(conf, "consumer.name", "first");
    hivent_conf_set_process_cb(conf, process);
    hivent_conf_set_opaque(conf, &got);
    hivent_conf_set_log_cb(conf, keep_log);
    char err[512] = "";
    hivent_consumer_t *a = hivent_consumer_new(conf, "move:event", "movers", 2, err, sizeof err);
    CHECK_REQUIRE(a != NULL);
    CHECK_REQUIRE(wait_consumer_connected(a));
    hivent_client_t *c = new_client(NULL);
    CHECK_REQUIRE(c != NULL);
    char key[16];
    for (int i = 0; i < 20; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, i, 3);
        snprintf(key, sizeof key, "k%d", i);
        CHECK_INT(hivent_emit(c, "move:event", payload, len, 1, NULL, key, 5000, NULL, err,
                              sizeof err), HIVENT_OK);
    }
    /* The first consumer has all 20 unprocessed; the second takes one
     * partition, and hiventd sends that partition's events to it. */
    usleep(300 * 1000);
    hivent_consumer_t *b = new_consumer("move:event", "movers", 2);
    CHECK_REQUIRE(b != NULL);
    int64_t end = now_ms() + 10000;
    while (delivered_count("movers") <= 20 && now_ms() < end)
        usleep(20 * 1000);
    CHECK(delivered_count("movers") > 20);
    /* The first consumer now processes and acknowledges all 20. */
    end = now_ms() + 5000;
    while (got.count < 20 && now_ms() < end)
        hivent_consumer_poll(a, 50);
    CHECK_INT(got.count, 20);
    end = now_ms() + 3000;
    while (!strstr(consumer_logs, "rejected an ack") && now_ms() < end)
        hivent_consumer_poll(a, 50);
    pthread_mutex_lock(&logs_lock);
    CHECK_CONTAINS(consumer_logs, "server rejected an ack or quarantine on event:move:event");
    CHECK_CONTAINS(consumer_logs, "was not delivered to this consumer");
    pthread_mutex_unlock(&logs_lock);
    /* The second consumer processes the moved events again. */
    end = now_ms() + 5000;
    while (got.count < 21 && now_ms() < end)
        hivent_consumer_poll(b, 50);
    CHECK(got.count > 20);
    hivent_client_destroy(c);
    CHECK_INT(hivent_consumer_close(a, 3000), HIVENT_OK);
    CHECK_INT(hivent_consumer_close(b, 3000), HIVENT_OK);
    hivent_consumer_destroy(a);
    hivent_consumer_destroy(b);
}

static void quarantine_reaches_dead_letter_queue(void)
{
    reset_consumed();
    hivent_consumer_t *cons = new_consumer("bad", "dlq-svc", 1);
    CHECK_REQUIRE(cons != NULL);
    CHECK_REQUIRE(wait_consumer_connected(cons));
    hivent_client_t *c = new_client(NULL);
    CHECK_REQUIRE(c != NULL);
    unsigned char payload[64];
    size_t len = pack_index_payload(payload, sizeof payload, 42, 1);
    char err[512] = "";
    hivent_event_t *pub = NULL;
    CHECK_INT(hivent_emit(c, "bad", payload, len, 1, NULL, NULL, 5000, &pub, err, sizeof err),
              HIVENT_OK);
    CHECK_INT(consume_until(cons, 1, 5000), 1);
    /* The quarantine is a push; give hiventd a moment to store it. */
    char *resp = NULL;
    int64_t end = now_ms() + 5000;
    while (now_ms() < end) {
        hivent_consumer_poll(cons, 100);
        free(resp);
        resp = http_get(server.port, "GET", "/admin/dlq?service=dlq-svc",
                        HIVENTD_TEST_ADMIN_KEY);
        if (resp && strstr(resp, "cannot process event 42"))
            break;
    }
    CHECK_CONTAINS(resp, "cannot process event 42");
    CHECK_CONTAINS(resp, "dlq-svc:0:dead_letter");
    if (pub)
        CHECK_CONTAINS(resp, hivent_event_uuid(pub));
    free(resp);
    /* Without the admin key the queue stays closed. */
    resp = http_get(server.port, "GET", "/admin/dlq?service=dlq-svc", "wrong-key");
    CHECK(resp != NULL);
    CHECK(resp && !strstr(resp, "cannot process event 42"));
    free(resp);
    hivent_event_destroy(pub);
    hivent_client_destroy(c);
    hivent_consumer_destroy(cons);
}

static void published_event_keeps_client_uuid(void)
{
    hivent_client_t *c = new_client(NULL);
    CHECK_REQUIRE(c != NULL);
    hivent_event_t *pub = NULL;
    char err[512] = "";
    CHECK_INT(hivent_emit(c, "uuid:check", NULL, 0, 4, "cid-x", "k", 5000, &pub, err,
                          sizeof err), HIVENT_OK);
    CHECK_REQUIRE(pub != NULL);
    CHECK(hivent_event_uuid(pub) != NULL);
    CHECK_INT(hivent_event_uuid(pub) ? strlen(hivent_event_uuid(pub)) : 0, 36);
    CHECK_STR(hivent_event_cid(pub), "cid-x");
    CHECK_INT(hivent_event_version(pub), 4);
    CHECK(hivent_event_created_at(pub) != NULL);
    hivent_event_destroy(pub);
    hivent_client_destroy(c);
}

static void restart_with_api_key(const char *api_key);

static void api_key_checked(void)
{
    const char *key = "a+b/c=d&e f%20\xc3\xbc";
    restart_with_api_key(key);
    hivent_client_t *c = new_client(key);
    CHECK_REQUIRE(c != NULL);
    char err[512] = "";
    CHECK_MSG(hivent_emit(c, "auth", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err) ==
              HIVENT_OK, "%s", err);
    hivent_client_destroy(c);

    hivent_conf_t *conf = test_conf(server.port);
    conf_put(conf, "server.api_key", "a+b/c=d&e f%20");
    conf_put(conf, "max_reconnect_tries", "0");
    rec_init(&rec);
    rec_attach(&rec, conf);
    c = hivent_client_new(conf, err, sizeof err);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, rec.error_count > 0, 5000));
    int failed = rec_find_state(&rec, HIVENT_STATE_FAILED, 0);
    CHECK(failed >= 0);
    if (failed >= 0)
        CHECK_INT(rec.state_reasons[failed], HIVENT_ERR_AUTH);
    hivent_client_destroy(c);
    restart_with_api_key(NULL);
}

static void restart_with_api_key(const char *api_key)
{
    int port = server.port;
    hiventd_kill(&server, SIGTERM);
    CHECK_INT(hiventd_start(&server, data_dir, port, api_key), 0);
}

static void reconnect_after_hiventd_restart(void)
{
    reset_consumed();
    hivent_consumer_t *cons = new_consumer("restarted", "restart-svc", 2);
    CHECK_REQUIRE(cons != NULL);
    CHECK_REQUIRE(wait_consumer_connected(cons));
    hivent_client_t *c = new_client(NULL);
    CHECK_REQUIRE(c != NULL);
    char err[512] = "";
    CHECK_INT(hivent_emit(c, "restarted", NULL, 0, 1, NULL, "k", 5000, NULL, err, sizeof err),
              HIVENT_OK);
    CHECK_INT(consume_until(cons, 1, 5000), 1);

    int port = server.port;
    hiventd_kill(&server, SIGKILL);
    /* Emits while hiventd is down are buffered. */
    for (uintptr_t i = 1; i <= 20; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, (int)i, 2);
        CHECK_INT(hivent_emit_async(c, "restarted", payload, len, 1, NULL, "k", (void *)i, err,
                                    sizeof err), HIVENT_OK);
    }
    CHECK(POLL_UNTIL(c, rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0) >= 0, 3000));
    hivent_consumer_poll(cons, 100);
    CHECK_INT(hiventd_start(&server, data_dir, port, NULL), 0);
    CHECK_INT(hivent_client_flush(c, 15000), 0);
    CHECK_INT(rec.deliveries_ok, 20);
    /* The event consumed before the kill may come again, because its
     * acknowledgement may not have reached the store.  The 20 buffered
     * events arrive once each, in emit order. */
    int64_t end = now_ms() + 15000;
    int seen = 0;
    while (now_ms() < end && seen < 20) {
        hivent_consumer_poll(cons, 50);
        seen = 0;
        for (int k = 0; k < got.count; k++)
            seen += got.index[k] > 0;
    }
    hivent_consumer_poll(cons, 300);
    int expect = 1, again = 0;
    for (int k = 1; k < got.count; k++) {
        if (got.index[k] < 0) {
            again++;
            continue;
        }
        CHECK_INT(got.index[k], expect);
        expect = got.index[k] + 1;
    }
    CHECK_INT(expect, 21);
    CHECK(again <= 1);
    CHECK(wait_consumer_connected(cons));
    hivent_client_destroy(c);
    hivent_consumer_destroy(cons);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    signal(SIGPIPE, SIG_IGN);
    if (!hiventd_path()) {
        fprintf(stderr, "SKIP: hiventd not built (HIVENTD=%s)\n",
                getenv("HIVENTD") ? getenv("HIVENTD") : "(unset)");
        return TEST_SKIP_CODE;
    }
    pthread_mutex_init(&got.lock, NULL);
    snprintf(data_dir, sizeof data_dir, "/tmp/hivent-hiventd-XXXXXX");
    if (!mkdtemp(data_dir) || hiventd_start(&server, data_dir, 0, NULL) != 0) {
        fprintf(stderr, "could not start hiventd\n");
        return 1;
    }
    if (!only || strcmp(only, "emit_consume_ack_roundtrip") == 0)
        RUN_TEST(emit_consume_ack_roundtrip);
    if (!only || strcmp(only, "payload_depth_limit_shared") == 0)
        RUN_TEST(payload_depth_limit_shared);
    if (!only || strcmp(only, "late_ack_after_move_logged") == 0)
        RUN_TEST(late_ack_after_move_logged);
    if (!only || strcmp(only, "quarantine_reaches_dead_letter_queue") == 0)
        RUN_TEST(quarantine_reaches_dead_letter_queue);
    if (!only || strcmp(only, "published_event_keeps_client_uuid") == 0)
        RUN_TEST(published_event_keeps_client_uuid);
    if (!only || strcmp(only, "api_key_checked") == 0)
        RUN_TEST(api_key_checked);
    if (!only || strcmp(only, "reconnect_after_hiventd_restart") == 0)
        RUN_TEST(reconnect_after_hiventd_restart);
    hiventd_kill(&server, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", data_dir);
    return check_summary();
}
