/* Producer client against the scripted fault server on 127.0.0.1. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "harness.h"

static fault_server_t srv;
static recorder_t rec;

/* Resets the server and returns a connected client with the recorder. */
static hivent_client_t *connect_client(hivent_conf_t *conf)
{
    rec_init(&rec);
    rec_attach(&rec, conf);
    char err[512] = "";
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    CHECK_MSG(c != NULL, "client_new: %s", err);
    if (!c) {
        hivent_conf_destroy(conf);
        return NULL;
    }
    return c;
}

static int connected(hivent_client_t *c)
{
    return hivent_client_state(c) == HIVENT_STATE_CONNECTED;
}

static void reset_server(void)
{
    fs_do(&srv, "{\"cmd\":\"reset\"}");
}

/* Returns the stored uuids as a JSON array (caller decrefs the state). */
static json_t *stored_events(json_t *state)
{
    return json_object_get(state, "stored");
}

static int hex_equals(const char *hex, const char *bytes)
{
    size_t n = strlen(bytes);
    if (!hex || strlen(hex) != n * 2)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || v != (unsigned char)bytes[i])
            return 0;
    }
    return 1;
}

static void connect_joins_with_encoded_query(void)
{
    reset_server();
    const char *api_key = "a+b/c=d&e f%20\xc3\xbc";
    hivent_conf_t *conf = test_conf(srv.port);
    conf_put(conf, "server.api_key", api_key);
    conf_put(conf, "client_id", "svc one/\xc3\xa9");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    json_t *st = fs_state(&srv);
    json_t *req = json_array_get(json_object_get(st, "requests"), 0);
    const char *path = json_string_value(json_object_get(req, "path"));
    CHECK(path && strncmp(path, "/producer/websocket?", 20) == 0);
    json_t *q = json_object_get(req, "query");
    CHECK(hex_equals(json_string_value(json_object_get(q, "api_key")), api_key));
    CHECK(hex_equals(json_string_value(json_object_get(q, "client_id")), "svc one/\xc3\xa9"));
    CHECK(hex_equals(json_string_value(json_object_get(q, "vsn")), "1.0.0"));
    CHECK(hex_equals(json_string_value(json_object_get(q, "gzip")), "1"));
    /* Encoded exactly once: no raw space, plus or ampersand inside a value,
     * and no double-encoded percent sign. */
    const char *raw = json_string_value(json_object_get(req, "raw_query"));
    CHECK(raw && !strchr(raw, ' ') && !strchr(raw, '+'));
    CHECK_CONTAINS(raw, "api_key=a%2Bb%2Fc%3Dd%26e%20f%2520%C3%BC");
    CHECK(raw && !strstr(raw, "%252520"));
    json_t *join = json_array_get(json_object_get(st, "frames"), 0);
    CHECK_STR(json_string_value(json_object_get(join, "event")), "phx_join");
    CHECK_STR(json_string_value(json_object_get(join, "topic")), "ingress:all");
    CHECK(json_is_integer(json_object_get(join, "ref")));
    CHECK(json_is_object(json_object_get(join, "payload")));
    /* The API key never appears in the logs. */
    CHECK(!rec_logged(&rec, "a+b/c=d"));
    CHECK(!rec_logged(&rec, "a%2Bb"));
    json_decref(st);
    hivent_client_destroy(c);
}

static void emit_sync_returns_published(void)
{
    reset_server();
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    unsigned char payload[256];
    size_t len = pack_index_payload(payload, sizeof payload, 7, 20);
    hivent_event_t *pub = NULL;
    char err[512] = "";
    hivent_err_t rc = hivent_emit(c, "order:paid", payload, len, 3, "corr-1", "k-1", 5000,
                                  &pub, err, sizeof err);
    CHECK_MSG(rc == HIVENT_OK, "emit: %s", err);
    CHECK_REQUIRE(pub != NULL);
    CHECK_STR(hivent_event_name(pub), "order:paid");
    CHECK_INT(hivent_event_version(pub), 3);
    CHECK_STR(hivent_event_cid(pub), "corr-1");
    CHECK_STR(hivent_event_key(pub), "k-1");
    CHECK_STR(hivent_event_producer(pub), "integration-test");
    size_t ps;
    const void *pp = hivent_event_payload(pub, &ps);
    CHECK_INT(ps, len);
    CHECK(pp && memcmp(pp, payload, len) == 0);
    json_t *st = fs_state(&srv);
    CHECK_STR(json_string_value(json_array_get(stored_events(st), 0)), hivent_event_uuid(pub));
    /* The frame on the wire carried the client-assigned uuid and time. */
    json_t *frames = json_object_get(st, "frames");
    json_t *emit = json_array_get(frames, json_array_size(frames) - 1);
    json_t *meta = json_object_get(json_object_get(json_object_get(emit, "payload"), "meta"),
                                   NULL);
    meta = json_object_get(json_object_get(emit, "payload"), "meta");
    CHECK_STR(json_string_value(json_object_get(meta, "uuid")), hivent_event_uuid(pub));
    CHECK(json_string_value(json_object_get(meta, "created_at")) != NULL);
    CHECK_INT(json_integer_value(json_object_get(meta, "version")), 3);
    json_decref(st);
    hivent_event_destroy(pub);

    /* A large payload goes out gzipped and comes back (gzipped) intact. */
    static unsigned char big[8192];
    len = pack_index_payload(big, sizeof big, 8, 5000);
    rc = hivent_emit(c, "big", big, len, 1, NULL, NULL, 5000, &pub, err, sizeof err);
    CHECK_MSG(rc == HIVENT_OK, "big emit: %s", err);
    pp = hivent_event_payload(pub, &ps);
    CHECK_INT(ps, len);
    CHECK(pp && memcmp(pp, big, len) == 0);
    hivent_event_destroy(pub);
    st = fs_state(&srv);
    frames = json_object_get(st, "frames");
    CHECK(json_is_true(json_object_get(json_array_get(frames, json_array_size(frames) - 1),
                                       "gzip")));
    json_decref(st);
    hivent_client_destroy(c);
}

static void emit_error_reply_rejected(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"emit\":\"error\",\"error_reason\":\"quota exceeded\"}");
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    char err[512] = "";
    hivent_event_t *pub = (hivent_event_t *)1;
    CHECK_INT(hivent_emit(c, "a", NULL, 0, 1, NULL, NULL, 5000, &pub, err, sizeof err),
              HIVENT_ERR_REJECTED);
    CHECK_CONTAINS(err, "quota exceeded");
    CHECK(pub == NULL);
    CHECK_INT(hivent_emit_async(c, "a", NULL, 0, 1, NULL, NULL, (void *)5, err, sizeof err),
              HIVENT_OK);
    CHECK_INT(hivent_client_flush(c, 5000), 0);
    CHECK_INT(rec.deliveries_failed, 1);
    CHECK_INT(rec.delivery_errs[0], HIVENT_ERR_REJECTED);
    hivent_client_destroy(c);
}

static int count_occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A burst of rejected emits gives one warning a second; each rejection
 * still reaches its delivery report and the debug log. */
static void rejected_emits_logged_once_a_second(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"emit\":\"error\",\"error_reason\":\"queue full\"}");
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    char err[512] = "";
    for (uintptr_t i = 1; i <= 30; i++)
        CHECK_INT(hivent_emit_async(c, "burst", NULL, 0, 1, NULL, NULL, (void *)i, err,
                                    sizeof err), HIVENT_OK);
    CHECK_INT(hivent_client_flush(c, 5000), 0);
    CHECK_INT(rec.deliveries_failed, 30);
    pthread_mutex_lock(&rec.lock);
    int warnings = count_occurrences(rec.logs, "4 emit server rejected event burst");
    int debug = count_occurrences(rec.logs, "7 emit server rejected event burst");
    pthread_mutex_unlock(&rec.lock);
    CHECK(warnings >= 1);
    CHECK(warnings <= 3);
    CHECK_INT(warnings + debug, 30);
    hivent_client_destroy(c);
}

static void emit_timeouts(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"emit\":\"ignore\"}");
    hivent_conf_t *conf = test_conf(srv.port);
    conf_put(conf, "request_timeout", "400");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    char err[512] = "";
    int64_t t0 = now_ms();
    CHECK_INT(hivent_emit(c, "a", NULL, 0, 1, NULL, NULL, 150, NULL, err, sizeof err),
              HIVENT_ERR_TIMED_OUT);
    int64_t took = now_ms() - t0;
    CHECK_MSG(took >= 140 && took < 1000, "explicit timeout took %lld ms", (long long)took);
    /* timeout_ms < 0 waits for request_timeout. */
    t0 = now_ms();
    CHECK_INT(hivent_emit(c, "a", NULL, 0, 1, NULL, NULL, -1, NULL, err, sizeof err),
              HIVENT_ERR_TIMED_OUT);
    took = now_ms() - t0;
    CHECK_MSG(took >= 390 && took < 2500, "request_timeout took %lld ms", (long long)took);
    CHECK_INT(hivent_emit_async(c, "a", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err),
              HIVENT_OK);
    CHECK_INT(hivent_client_flush(c, 3000), 0);
    CHECK_INT(rec.deliveries_failed, 1);
    CHECK_INT(rec.delivery_errs[0], HIVENT_ERR_TIMED_OUT);
    hivent_client_destroy(c);

    /* A delayed reply within the timeout succeeds. */
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"emit_delay_ms\":300}");
    c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    t0 = now_ms();
    CHECK_INT(hivent_emit(c, "a", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err),
              HIVENT_OK);
    CHECK(now_ms() - t0 >= 290);
    hivent_client_destroy(c);
}

static void emit_async_many_in_order(void)
{
    reset_server();
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    char err[512];
    for (uintptr_t i = 1; i <= 500; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, (int)i, 4);
        CHECK_INT(hivent_emit_async(c, "seq", payload, len, 1, NULL, NULL, (void *)i, err,
                                    sizeof err), HIVENT_OK);
    }
    CHECK_INT(hivent_client_flush(c, 10000), 0);
    CHECK_INT(rec.deliveries_ok, 500);
    for (int i = 0; i < rec.delivery_count; i++)
        CHECK_INT(rec.delivery_ids[i], i + 1);
    json_t *st = fs_state(&srv);
    CHECK_INT(json_array_size(stored_events(st)), 500);
    json_decref(st);
    hivent_client_destroy(c);
}

/* Checks that the server stored exactly @n events, each once, in order of
 * their payload index 1..n. */
static void check_stored_in_order(int n)
{
    json_t *st = fs_state(&srv);
    json_t *frames = json_object_get(st, "frames");
    json_t *stored = stored_events(st);
    CHECK_INT(json_array_size(stored), n);
    /* Every frame the server received decoded cleanly. */
    CHECK_INT(json_integer_value(json_object_get(st, "bad_frames")), 0);
    if (getenv("HIVENT_TEST_VERBOSE")) {
        size_t k;
        json_t *f;
        json_array_foreach(frames, k, f) {
            json_t *ev = json_object_get(f, "payload");
            fprintf(stderr, "    frame conn %lld %s ref %lld i %lld\n",
                    json_integer_value(json_object_get(f, "conn")),
                    json_string_value(json_object_get(f, "event")),
                    json_integer_value(json_object_get(f, "ref")),
                    json_integer_value(json_object_get(json_object_get(ev, "payload"), "i")));
        }
    }
    /* Map each uuid to its payload index through the emit frames. */
    int expect = 1;
    size_t i;
    json_t *uuid;
    json_array_foreach(stored, i, uuid) {
        size_t k;
        json_t *f;
        int index = -1;
        json_array_foreach(frames, k, f) {
            json_t *ev = json_object_get(f, "payload");
            json_t *meta = json_object_get(ev, "meta");
            if (json_equal(json_object_get(meta, "uuid"), uuid)) {
                index = (int)json_integer_value(
                    json_object_get(json_object_get(ev, "payload"), "i"));
                break;
            }
        }
        CHECK_MSG(index == expect, "stored event %zu has index %d, expected %d", i, index,
                  expect);
        expect = index + 1;
    }
    json_decref(st);
}

static void order_kept_across_dropped_connection(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"drop_after_emits\":40,\"drop_connections\":3}");
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    char err[512];
    for (uintptr_t i = 1; i <= 300; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, (int)i, 8);
        CHECK_INT(hivent_emit_async(c, "seq", payload, len, 1, NULL, NULL, (void *)i, err,
                                    sizeof err), HIVENT_OK);
    }
    CHECK_INT(hivent_client_flush(c, 20000), 0);
    CHECK_INT(rec.deliveries_ok, 300);
    CHECK_INT(rec.deliveries_failed, 0);
    check_stored_in_order(300);
    /* The reconnects were reported with attempt numbers. */
    int b = rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0);
    CHECK(b >= 0);
    if (b >= 0) {
        CHECK_INT(rec.attempts[b], 1);
        CHECK(rec.next_ms[b] > 0);
        CHECK_INT(rec.state_reasons[b], HIVENT_ERR_CONNECTION);
    }
    json_t *st = fs_state(&srv);
    CHECK_INT(json_array_size(json_object_get(st, "requests")), 4);
    json_decref(st);
    hivent_client_destroy(c);
}

/* A server that closes with 1007 for one frame would get the same batch
 * again on every reconnect.  The client narrows the batch down to that
 * emit, fails it alone and delivers the others. */
static void invalid_frame_close_fails_one_emit(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"poison_name\":\"poison\",\"emit_delay_ms\":50}");
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    char err[512];
    for (uintptr_t i = 1; i <= 21; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, (int)i, 8);
        CHECK_INT(hivent_emit_async(c, i == 11 ? "poison" : "seq", payload, len, 1, NULL, NULL,
                                    (void *)i, err, sizeof err), HIVENT_OK);
    }
    CHECK_INT(hivent_client_flush(c, 20000), 0);
    CHECK_INT(rec.deliveries_ok, 20);
    CHECK_INT(rec.deliveries_failed, 1);
    int poisoned = -1;
    for (int i = 0; i < rec.delivery_count; i++)
        if (rec.delivery_ids[i] == 11)
            poisoned = i;
    CHECK(poisoned >= 0);
    if (poisoned >= 0)
        CHECK_INT(rec.delivery_errs[poisoned], HIVENT_ERR_REJECTED);
    json_t *st = fs_state(&srv);
    CHECK_INT(json_array_size(stored_events(st)), 20);
    /* Closed once with the whole batch in flight, once with the poison
     * emit alone, never again. */
    CHECK_INT(json_integer_value(json_object_get(st, "poisoned")), 2);
    json_decref(st);

    /* A synchronous emit of the same name returns instead of waiting for
     * reconnects that each end the same way. */
    hivent_event_t *pub = NULL;
    CHECK_INT(hivent_emit(c, "poison", NULL, 0, 1, NULL, NULL, -1, &pub, err, sizeof err),
              HIVENT_ERR_REJECTED);
    CHECK_CONTAINS(err, "1007");
    CHECK(pub == NULL);
    CHECK_INT(hivent_emit(c, "seq", NULL, 0, 1, NULL, NULL, 5000, &pub, err, sizeof err),
              HIVENT_OK);
    hivent_event_destroy(pub);
    hivent_client_destroy(c);
}

static void buffered_while_disconnected(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"reject_status\":503}");
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0) >= 0, 5000));
    char err[512];
    for (uintptr_t i = 1; i <= 50; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, (int)i, 8);
        CHECK_INT(hivent_emit_async(c, "buffered", payload, len, 1, NULL, NULL, (void *)i, err,
                                    sizeof err), HIVENT_OK);
    }
    CHECK_INT(hivent_client_outstanding(c), 50);
    hivent_client_poll(c, 300);
    CHECK_INT(rec.delivery_count, 0);
    fs_do(&srv, "{\"cmd\":\"set\",\"reject_status\":0}");
    CHECK_INT(hivent_client_flush(c, 10000), 0);
    CHECK_INT(rec.deliveries_ok, 50);
    check_stored_in_order(50);
    hivent_client_destroy(c);
}

static void reconnect_attempts_used_up(void)
{
    hivent_conf_t *conf = test_conf(closed_port());
    conf_put(conf, "max_reconnect_tries", "2");
    conf_put(conf, "reconnect_backoff_time", "30");
    conf_put(conf, "reconnect_jitter", "0");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    char err[512] = "";
    CHECK_INT(hivent_emit_async(c, "pending", NULL, 0, 1, NULL, NULL, (void *)1, err,
                                sizeof err), HIVENT_OK);
    CHECK(POLL_UNTIL(c, hivent_client_state(c) == HIVENT_STATE_FAILED && rec.error_count > 0,
                     5000));
    hivent_client_poll(c, 200);
    /* connecting, backoff 1, connecting, backoff 2, connecting, failed. */
    int expect_states[] = {HIVENT_STATE_CONNECTING, HIVENT_STATE_BACKOFF,
                           HIVENT_STATE_CONNECTING, HIVENT_STATE_BACKOFF,
                           HIVENT_STATE_CONNECTING, HIVENT_STATE_FAILED};
    int expect_attempts[] = {0, 1, 1, 2, 2, 3};
    CHECK_INT(rec.state_count, 6);
    for (int i = 0; i < 6 && i < rec.state_count; i++) {
        CHECK_INT(rec.states[i], expect_states[i]);
        CHECK_INT(rec.attempts[i], expect_attempts[i]);
    }
    CHECK_INT(rec.next_ms[1], 30);
    CHECK_INT(rec.next_ms[3], 60);
    CHECK_INT(rec.state_reasons[1], HIVENT_ERR_REFUSED);
    CHECK_INT(rec.error_count, 1);
    CHECK_INT(rec.errors[0], HIVENT_ERR_FAILED);
    CHECK_CONTAINS(rec.error_text[0], "refused");
    CHECK_INT(rec.deliveries_failed, 1);
    CHECK_INT(rec.delivery_errs[0], HIVENT_ERR_FAILED);
    /* Later emits fail at once with the same error and no delivery notice. */
    CHECK_INT(hivent_emit(c, "late", NULL, 0, 1, NULL, NULL, 1000, NULL, err, sizeof err),
              HIVENT_ERR_FAILED);
    CHECK_CONTAINS(err, "failed");
    CHECK_INT(hivent_emit_async(c, "late", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err),
              HIVENT_ERR_FAILED);
    hivent_client_poll(c, 300);
    CHECK_INT(rec.error_count, 1);
    CHECK_INT(rec.delivery_count, 1);
    CHECK_INT(hivent_client_flush(c, 100), 0);
    hivent_client_destroy(c);
}

static void reconnect_forever(void)
{
    hivent_conf_t *conf = test_conf(closed_port());
    conf_put(conf, "max_reconnect_tries", "-1");
    conf_put(conf, "reconnect_backoff_time", "10");
    conf_put(conf, "reconnect_backoff_max", "20");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    int last = 0;
    CHECK(POLL_UNTIL(c, (last = rec.state_count ? rec.attempts[rec.state_count - 1] : 0) >= 8,
                     8000));
    CHECK(rec_find_state(&rec, HIVENT_STATE_FAILED, 0) < 0);
    CHECK_INT(rec.error_count, 0);
    hivent_client_destroy(c);
}

static void rejoin_after_channel_close(void)
{
    const char *events[] = {"phx_close", "phx_error"};
    for (int i = 0; i < 2; i++) {
        reset_server();
        hivent_client_t *c = connect_client(test_conf(srv.port));
        CHECK_REQUIRE(c != NULL);
        CHECK(POLL_UNTIL(c, connected(c), 5000));
        char cmd[200];
        snprintf(cmd, sizeof cmd, "{\"cmd\":\"push\",\"topic\":\"ingress:all\",\"event\":\"%s\","
                 "\"payload\":{},\"ref\":null}", events[i]);
        fs_do(&srv, cmd);
        CHECK_MSG(POLL_UNTIL(c, fs_count_frames(&srv, "phx_join") >= 2, 5000),
                  "no rejoin after %s", events[i]);
        char err[512] = "";
        CHECK_MSG(hivent_emit(c, "after", NULL, 0, 1, NULL, NULL, 5000, NULL, err,
                              sizeof err) == HIVENT_OK, "emit after %s: %s", events[i], err);
        json_t *st = fs_state(&srv);
        CHECK_INT(json_array_size(json_object_get(st, "requests")), 1);
        json_decref(st);
        hivent_client_destroy(c);
    }
}

static void rejoin_after_join_error(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"join\":\"error\",\"error_reason\":\"not allowed yet\"}");
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, rec.error_count > 0, 5000));
    CHECK_INT(rec.errors[0], HIVENT_ERR_JOIN_REJECTED);
    CHECK_CONTAINS(rec.error_text[0], "not allowed yet");
    CHECK(!connected(c));
    fs_do(&srv, "{\"cmd\":\"set\",\"join\":\"ok\"}");
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    char err[512] = "";
    CHECK_INT(hivent_emit(c, "a", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err),
              HIVENT_OK);
    CHECK(fs_count_frames(&srv, "phx_join") >= 2);
    hivent_client_destroy(c);
}

static void heartbeat_timeout_detected(void)
{
    reset_server();
    hivent_conf_t *conf = test_conf(srv.port);
    conf_put(conf, "heartbeat_interval", "200");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    /* Answered heartbeats keep the connection. */
    hivent_client_poll(c, 0);
    int64_t end = now_ms() + 1100;
    while (now_ms() < end)
        hivent_client_poll(c, 50);
    json_t *st = fs_state(&srv);
    CHECK(json_integer_value(json_object_get(st, "heartbeats")) >= 4);
    CHECK_INT(json_array_size(json_object_get(st, "requests")), 1);
    json_decref(st);
    CHECK(rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0) < 0);
    /* Ignored heartbeats count as a lost connection within two beats. */
    fs_do(&srv, "{\"cmd\":\"set\",\"heartbeat\":\"ignore\"}");
    int64_t t0 = now_ms();
    int from = rec.state_count;
    CHECK(POLL_UNTIL(c, rec_find_state(&rec, HIVENT_STATE_BACKOFF, from) >= 0, 3000));
    CHECK_MSG(now_ms() - t0 <= 700, "heartbeat loss noticed after %lld ms",
              (long long)(now_ms() - t0));
    CHECK(rec_logged(&rec, "heartbeat"));
    hivent_client_destroy(c);
}

static void connect_errors_classified(void)
{
    struct {
        const char *label, *host;
        int port, reject, expect;
        const char *text;
    } cases[] = {
        {"HTTP 403", "127.0.0.1", srv.port, 403, HIVENT_ERR_AUTH, "403"},
        {"refused port", "127.0.0.1", closed_port(), 0, HIVENT_ERR_REFUSED, "refused"},
        {"unresolvable host", "hivent-test.invalid", 4000, 0, HIVENT_ERR_RESOLVE, "invalid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset_server();
        char cmd[100];
        snprintf(cmd, sizeof cmd, "{\"cmd\":\"set\",\"reject_status\":%d}", cases[i].reject);
        fs_do(&srv, cmd);
        hivent_conf_t *conf = test_conf(cases[i].port);
        conf_put(conf, "server.host", cases[i].host);
        conf_put(conf, "max_reconnect_tries", "0");
        conf_put(conf, "server.api_key", "key-that-must-stay-secret");
        hivent_client_t *c = connect_client(conf);
        CHECK_REQUIRE(c != NULL);
        CHECK_MSG(POLL_UNTIL(c, rec.error_count > 0, 8000), "%s: no error", cases[i].label);
        int failed = rec_find_state(&rec, HIVENT_STATE_FAILED, 0);
        CHECK_MSG(failed >= 0, "%s: not failed", cases[i].label);
        if (failed >= 0)
            CHECK_MSG(rec.state_reasons[failed] == cases[i].expect, "%s: reason %s",
                      cases[i].label, hivent_err_name(rec.state_reasons[failed]));
        CHECK_MSG(strstr(rec.error_text[0], cases[i].text) != NULL, "%s: error \"%s\"",
                  cases[i].label, rec.error_text[0]);
        CHECK(!rec_logged(&rec, "key-that-must-stay-secret"));
        CHECK(strstr(rec.error_text[0], "key-that-must-stay-secret") == NULL);
        hivent_client_destroy(c);
    }
}

static void malformed_frames_dropped(void)
{
    reset_server();
    hivent_conf_t *conf = test_conf(srv.port);
    conf_put(conf, "max_frame_size", "1048576");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    const char *commands[] = {
        "{\"cmd\":\"raw\",\"hex\":\"c1c1c1\"}",                       /* reserved bytes */
        "{\"cmd\":\"raw\",\"hex\":\"84a5746f706963\"}",               /* truncated map */
        "{\"cmd\":\"raw\",\"hex\":\"93010203\"}",                     /* array */
        "{\"cmd\":\"raw\",\"hex\":\"1f8b0800000000000003ffff\"}",     /* corrupt gzip */
        "{\"cmd\":\"raw\",\"hex\":\"dfffffffff\"}",                   /* huge map count */
        "{\"cmd\":\"raw\",\"text\":true,\"hex\":\"5b5d\"}",           /* text frame "[]" */
        "{\"cmd\":\"bomb\",\"size\":67108864}",                       /* 64 MiB of zeros */
        "{\"cmd\":\"push\",\"topic\":\"ingress:all\",\"event\":\"phx_reply\","
        "\"payload\":{\"status\":\"ok\"},\"ref\":987654}",            /* unknown ref */
        "{\"cmd\":\"push\",\"topic\":\"ingress:all\",\"event\":\"phx_reply\","
        "\"payload\":{\"status\":\"ok\"},\"ref\":\"str\"}",           /* string ref */
        "{\"cmd\":\"push\",\"topic\":\"other\",\"event\":\"whatever\",\"payload\":{}}",
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        CHECK_MSG(fs_do(&srv, commands[i]) == 0, "command %zu", i);
    hivent_client_poll(c, 300);
    CHECK(rec_logged(&rec, "malformed frame"));
    CHECK(rec_logged(&rec, "maximum frame size"));
    CHECK(rec_logged(&rec, "text frame"));
    char err[512] = "";
    CHECK_MSG(hivent_emit(c, "still-works", NULL, 0, 1, NULL, NULL, 5000, NULL, err,
                          sizeof err) == HIVENT_OK, "%s", err);
    /* None of it cost the connection. */
    json_t *st = fs_state(&srv);
    CHECK_INT(json_array_size(json_object_get(st, "requests")), 1);
    json_decref(st);

    /* A phx_close split into three WebSocket fragments is reassembled. */
    /* {"topic":"ingress:all","event":"phx_close","payload":{},"ref":nil} */
    const char *split = "{\"cmd\":\"raw\",\"fragments\":[\"84a5746f706963ab696e6772\","
                        "\"6573733a616c6ca56576656e74a9\","
                        "\"7068785f636c6f7365a77061796c6f616480a3726566c0\"]}";
    CHECK(fs_do(&srv, split) == 0);
    CHECK(POLL_UNTIL(c, fs_count_frames(&srv, "phx_join") >= 2, 5000));

    /* A message over max_frame_size closes the connection, which recovers. */
    CHECK(fs_do(&srv, "{\"cmd\":\"zeros\",\"size\":1100000}") == 0);
    CHECK(POLL_UNTIL(c, rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0) >= 0, 5000));
    CHECK(rec_logged(&rec, "exceeds max_frame_size"));
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    CHECK_INT(hivent_emit(c, "after-big", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err),
              HIVENT_OK);
    hivent_client_destroy(c);
}

static void cut_frame_not_continued(void)
{
    reset_server();
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    /* The first 12 bytes of a frame map, then the connection drops. */
    CHECK(fs_do(&srv, "{\"cmd\":\"partial\",\"hex\":\"84a5746f706963ab696e6772\"}") == 0);
    CHECK(POLL_UNTIL(c, rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0) >= 0, 5000));
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    char err[512] = "";
    CHECK_MSG(hivent_emit(c, "after-cut", NULL, 0, 1, NULL, NULL, 5000, NULL, err,
                          sizeof err) == HIVENT_OK, "%s", err);
    CHECK(!rec_logged(&rec, "malformed frame"));
    hivent_client_destroy(c);
}

static void flush_and_destroy_report_outstanding(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"emit\":\"ignore\"}");
    hivent_conf_t *conf = test_conf(srv.port);
    conf_put(conf, "request_timeout", "60000");
    conf_put(conf, "flush_timeout", "300");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    char err[512];
    for (uintptr_t i = 1; i <= 5; i++)
        CHECK_INT(hivent_emit_async(c, "never-answered", NULL, 0, 1, NULL, NULL, (void *)i, err,
                                    sizeof err), HIVENT_OK);
    int64_t t0 = now_ms();
    CHECK_INT(hivent_client_flush(c, 200), 5);
    CHECK(now_ms() - t0 >= 190);
    CHECK_INT(hivent_client_outstanding(c), 5);
    CHECK_INT(rec.delivery_count, 0);
    t0 = now_ms();
    hivent_client_destroy(c);
    int64_t took = now_ms() - t0;
    CHECK_MSG(took < 2000, "destroy took %lld ms", (long long)took);
    /* Every outstanding emit was reported failed before destroy returned. */
    CHECK_INT(rec.delivery_count, 5);
    CHECK_INT(rec.deliveries_failed, 5);
    for (int i = 0; i < rec.delivery_count; i++)
        CHECK_INT(rec.delivery_errs[i], HIVENT_ERR_DESTROYED);
}

static void queue_full_and_too_large(void)
{
    reset_server();
    fs_do(&srv, "{\"cmd\":\"set\",\"emit\":\"ignore\"}");
    hivent_conf_t *conf = test_conf(srv.port);
    conf_put(conf, "queue.max_events", "5");
    conf_put(conf, "max_frame_size", "2048");
    conf_put(conf, "flush_timeout", "0");
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    char err[512] = "";
    for (int i = 0; i < 5; i++)
        CHECK_INT(hivent_emit_async(c, "q", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err),
                  HIVENT_OK);
    CHECK_INT(hivent_emit_async(c, "q", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err),
              HIVENT_ERR_QUEUE_FULL);
    CHECK_CONTAINS(err, "queue.max_events");
    CHECK_INT(hivent_emit(c, "q", NULL, 0, 1, NULL, NULL, 100, NULL, err, sizeof err),
              HIVENT_ERR_QUEUE_FULL);
    /* Incompressible payload over max_frame_size. */
    unsigned char big[4096];
    big[0] = 0x81;
    big[1] = 0xa1;
    big[2] = 'b';
    big[3] = 0xc5;
    big[4] = 0x0f;
    big[5] = 0xa0;
    uint32_t x = 2463534242u;
    for (int i = 6; i < 6 + 0x0fa0 && i < (int)sizeof big; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (unsigned char)x;
    }
    CHECK_INT(hivent_emit_async(c, "big", big, 6 + 0x0fa0, 1, NULL, NULL, NULL, err,
                                sizeof err), HIVENT_ERR_TOO_LARGE);
    CHECK_CONTAINS(err, "max_frame_size");
    hivent_client_destroy(c);
}

static void notice_fd_readable(void)
{
    reset_server();
    hivent_conf_t *conf = test_conf(srv.port);
    hivent_client_t *c = connect_client(conf);
    CHECK_REQUIRE(c != NULL);
    int fd = hivent_client_fd(c);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_INT(poll(&p, 1, 3000), 1);
    /* Draining the notices makes the descriptor quiet again. */
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    while (hivent_client_poll(c, 100) > 0)
        ;
    p.revents = 0;
    CHECK_INT(poll(&p, 1, 0), 0);
    char err[256];
    hivent_emit_async(c, "fd", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err);
    CHECK_INT(poll(&p, 1, 3000), 1);
    hivent_client_destroy(c);
}

struct destroyer {
    hivent_client_t *c;
    int delay_ms;
    int64_t took;
    recorder_t *rec;
};

static void *destroy_later(void *arg)
{
    struct destroyer *d = arg;
    usleep((useconds_t)d->delay_ms * 1000);
    int64_t t0 = now_ms();
    hivent_client_destroy(d->c);
    d->rec->destroyed = 1;
    d->took = now_ms() - t0;
    return NULL;
}

/* Listens on a port but never accepts, so a connection attempt hangs. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    listen(fd, 1);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void destroy_from_other_thread(void)
{
    int port;
    int lfd = silent_listener(&port);
    const char *phases[] = {"connect", "backoff", "flush"};
    for (int phase = 0; phase < 3; phase++) {
        reset_server();
        hivent_conf_t *conf;
        if (phase == 0) {
            conf = test_conf(port);
            conf_put(conf, "connect_timeout", "30000");
        } else if (phase == 1) {
            conf = test_conf(closed_port());
            conf_put(conf, "reconnect_backoff_time", "30000");
            conf_put(conf, "reconnect_backoff_max", "30000");
        } else {
            fs_do(&srv, "{\"cmd\":\"set\",\"emit\":\"ignore\"}");
            conf = test_conf(srv.port);
            conf_put(conf, "request_timeout", "60000");
            conf_put(conf, "flush_timeout", "500");
        }
        hivent_client_t *c = connect_client(conf);
        CHECK_REQUIRE(c != NULL);
        if (phase == 1)
            CHECK(POLL_UNTIL(c, rec_find_state(&rec, HIVENT_STATE_BACKOFF, 0) >= 0, 5000));
        if (phase == 2) {
            CHECK(POLL_UNTIL(c, connected(c), 5000));
            char err[256];
            hivent_emit_async(c, "x", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err);
        }
        struct destroyer d = {c, 100, 0, &rec};
        pthread_t t;
        pthread_create(&t, NULL, destroy_later, &d);
        pthread_join(t, NULL);
        int limit = phase == 2 ? 1500 : 1000;
        CHECK_MSG(d.took < limit, "destroy during %s took %lld ms", phases[phase],
                  (long long)d.took);
        CHECK_INT(rec.callbacks_after_destroy, 0);
        if (phase == 2)
            CHECK_INT(rec.deliveries_failed, 1);
    }
    close(lfd);
}

struct emitter {
    hivent_client_t *c;
    int base;
    int count;
    int ok;
};

static void *emit_many(void *arg)
{
    struct emitter *e = arg;
    char err[256];
    for (int i = 0; i < e->count; i++) {
        unsigned char payload[64];
        size_t len = pack_index_payload(payload, sizeof payload, e->base + i, 4);
        hivent_err_t rc = i % 2 ? hivent_emit(e->c, "mt", payload, len, 1, NULL, NULL, 10000,
                                              NULL, err, sizeof err)
                                : hivent_emit_async(e->c, "mt", payload, len, 1, NULL, NULL,
                                                    NULL, err, sizeof err);
        e->ok += rc == HIVENT_OK;
    }
    return NULL;
}

static void emit_from_many_threads(void)
{
    reset_server();
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    enum { THREADS = 8, PER_THREAD = 150 };
    pthread_t t[THREADS];
    struct emitter e[THREADS];
    for (int i = 0; i < THREADS; i++) {
        e[i] = (struct emitter){c, i * 1000, PER_THREAD, 0};
        pthread_create(&t[i], NULL, emit_many, &e[i]);
    }
    int64_t end = now_ms() + 20000;
    int done = 0;
    for (int i = 0; i < THREADS; i++) {
        while (now_ms() < end && pthread_tryjoin_np(t[i], NULL) != 0)
            hivent_client_poll(c, 10);
        done++;
    }
    CHECK_INT(hivent_client_flush(c, 10000), 0);
    int ok = 0;
    for (int i = 0; i < THREADS; i++)
        ok += e[i].ok;
    CHECK_INT(ok, THREADS * PER_THREAD);
    CHECK_INT(rec.deliveries_ok, THREADS * PER_THREAD / 2);
    json_t *st = fs_state(&srv);
    CHECK_INT(json_array_size(stored_events(st)), THREADS * PER_THREAD);
    CHECK_INT(json_integer_value(json_object_get(st, "duplicates")), 0);
    json_decref(st);
    hivent_client_destroy(c);
}

static void fork_makes_handle_inert(void)
{
    reset_server();
    hivent_client_t *c = connect_client(test_conf(srv.port));
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, connected(c), 5000));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: exit status bit per failed check. */
        int fails = 0;
        char err[512] = "";
        if (hivent_emit(c, "child", NULL, 0, 1, NULL, NULL, 1000, NULL, err, sizeof err) !=
            HIVENT_ERR_FORKED)
            fails |= 1;
        if (hivent_emit_async(c, "child", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err) !=
            HIVENT_ERR_FORKED || !strstr(err, "fork"))
            fails |= 2;
        int64_t t0 = now_ms();
        hivent_client_destroy(c);
        if (now_ms() - t0 > 200)
            fails |= 4;
        hivent_conf_t *conf = test_conf(srv.port);
        hivent_client_t *fresh = hivent_client_new(conf, err, sizeof err);
        if (!fresh ||
            hivent_emit(fresh, "from-child", NULL, 0, 1, NULL, NULL, 5000, NULL, err,
                        sizeof err) != HIVENT_OK)
            fails |= 8;
        hivent_client_destroy(fresh);
        _exit(fails);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    /* The parent's connection was not touched by the child. */
    char err[512] = "";
    CHECK_MSG(hivent_emit(c, "parent", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err) ==
              HIVENT_OK, "%s", err);
    json_t *st = fs_state(&srv);
    CHECK_INT(json_array_size(json_object_get(st, "requests")), 2);
    CHECK_INT(json_array_size(stored_events(st)), 2);
    json_decref(st);
    hivent_client_destroy(c);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (fs_start(&srv, NULL, NULL) != 0) {
        fprintf(stderr, "could not start the fault server\n");
        return 1;
    }
    const char *only = argc > 1 ? argv[1] : NULL;
#define MAYBE_RUN(fn) if (!only || strcmp(only, #fn) == 0) RUN_TEST(fn)
    MAYBE_RUN(connect_joins_with_encoded_query);
    MAYBE_RUN(emit_sync_returns_published);
    MAYBE_RUN(emit_error_reply_rejected);
    MAYBE_RUN(rejected_emits_logged_once_a_second);
    MAYBE_RUN(emit_timeouts);
    MAYBE_RUN(emit_async_many_in_order);
    MAYBE_RUN(order_kept_across_dropped_connection);
    MAYBE_RUN(invalid_frame_close_fails_one_emit);
    MAYBE_RUN(buffered_while_disconnected);
    MAYBE_RUN(reconnect_attempts_used_up);
    MAYBE_RUN(reconnect_forever);
    MAYBE_RUN(rejoin_after_channel_close);
    MAYBE_RUN(rejoin_after_join_error);
    MAYBE_RUN(heartbeat_timeout_detected);
    MAYBE_RUN(connect_errors_classified);
    MAYBE_RUN(malformed_frames_dropped);
    MAYBE_RUN(cut_frame_not_continued);
    MAYBE_RUN(flush_and_destroy_report_outstanding);
    MAYBE_RUN(queue_full_and_too_large);
    MAYBE_RUN(notice_fd_readable);
    MAYBE_RUN(destroy_from_other_thread);
    MAYBE_RUN(emit_from_many_threads);
    MAYBE_RUN(fork_makes_handle_inert);
    fs_stop(&srv);
    return check_summary();
}
