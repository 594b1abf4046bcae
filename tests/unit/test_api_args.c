/* Every public function given NULL or invalid arguments returns an error
 * or a documented neutral value and never crashes. */
#include "check.h"
#include "hivent/hivent.h"

static hivent_client_t *memory_client(void)
{
    hivent_conf_t *conf = hivent_conf_new();
    hivent_conf_set(conf, "server.host", "memory", NULL, 0);
    char err[256] = "";
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    if (!c)
        hivent_conf_destroy(conf);
    return c;
}

static void client_functions_reject_null(void)
{
    char err[256] = "";
    CHECK(hivent_client_new(NULL, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "conf");
    CHECK(hivent_client_new(NULL, NULL, 0) == NULL);
    CHECK_INT(hivent_emit(NULL, "a", NULL, 0, 1, NULL, NULL, 100, NULL, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_CONTAINS(err, "client");
    CHECK_INT(hivent_emit_async(NULL, "a", NULL, 0, 1, NULL, NULL, NULL, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_client_flush(NULL, 10), -1);
    CHECK_INT(hivent_client_poll(NULL, 10), 0);
    CHECK(hivent_client_next(NULL, 10) == NULL);
    CHECK_INT(hivent_client_fd(NULL), -1);
    CHECK_INT(hivent_client_state(NULL), HIVENT_STATE_CLOSED);
    CHECK_INT(hivent_client_outstanding(NULL), 0);
    hivent_client_destroy(NULL);
}

static void emit_rejects_bad_arguments(void)
{
    hivent_client_t *c = memory_client();
    CHECK_REQUIRE(c != NULL);
    char long_name[257];
    memset(long_name, 'x', 256);
    long_name[256] = 0;
    static const unsigned char array[] = {0x91, 0x01};
    static const unsigned char truncated[] = {0x81, 0xa1};
    struct {
        const char *label, *name;
        const void *payload;
        size_t size;
        int64_t version;
        const char *cid, *key;
        hivent_err_t expect;
        const char *names;
    } cases[] = {
        {"NULL name", NULL, NULL, 0, 1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "name"},
        {"empty name", "", NULL, 0, 1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "name"},
        {"256-byte name", long_name, NULL, 0, 1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "name"},
        {"invalid UTF-8 name", "a\xfe", NULL, 0, 1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "name"},
        {"name with *", "user:*", NULL, 0, 1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "'*'"},
        {"name *", "*", NULL, 0, 1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "'*'"},
        {"version 0", "a", NULL, 0, 0, NULL, NULL, HIVENT_ERR_INVALID_ARG, "version"},
        {"negative version", "a", NULL, 0, -1, NULL, NULL, HIVENT_ERR_INVALID_ARG, "version"},
        {"array payload", "a", array, sizeof array, 1, NULL, NULL, HIVENT_ERR_PAYLOAD,
         "payload"},
        {"truncated payload", "a", truncated, sizeof truncated, 1, NULL, NULL,
         HIVENT_ERR_PAYLOAD, "payload"},
        {"invalid cid", "a", NULL, 0, 1, "\xc0\xaf", NULL, HIVENT_ERR_INVALID_ARG, "cid"},
        {"empty key", "a", NULL, 0, 1, NULL, "", HIVENT_ERR_INVALID_ARG, "key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        hivent_event_t *published = (hivent_event_t *)1;
        hivent_err_t rc = hivent_emit(c, cases[i].name, cases[i].payload, cases[i].size,
                                      cases[i].version, cases[i].cid, cases[i].key, 100,
                                      &published, err, sizeof err);
        CHECK_MSG(rc == cases[i].expect, "sync %s: rc %d", cases[i].label, rc);
        CHECK_MSG(strstr(err, cases[i].names) != NULL, "sync %s: message \"%s\"",
                  cases[i].label, err);
        CHECK_MSG(published == NULL, "sync %s: published set", cases[i].label);
        err[0] = 0;
        rc = hivent_emit_async(c, cases[i].name, cases[i].payload, cases[i].size,
                               cases[i].version, cases[i].cid, cases[i].key, NULL, err,
                               sizeof err);
        CHECK_MSG(rc == cases[i].expect, "async %s: rc %d", cases[i].label, rc);
        CHECK_MSG(strstr(err, cases[i].names) != NULL, "async %s: message \"%s\"",
                  cases[i].label, err);
        /* A NULL error buffer is allowed. */
        rc = hivent_emit_async(c, cases[i].name, cases[i].payload, cases[i].size,
                               cases[i].version, cases[i].cid, cases[i].key, NULL, NULL, 0);
        CHECK_MSG(rc == cases[i].expect, "async %s without errstr: rc %d", cases[i].label, rc);
    }
    /* None of the rejected emits produced a delivery notice. */
    CHECK(hivent_client_next(c, 0) == NULL);
    CHECK_INT(hivent_client_outstanding(c), 0);
    hivent_client_destroy(c);
}

static void consumer_functions_reject_null(void)
{
    char err[256] = "";
    hivent_conf_t *conf = hivent_conf_new();
    hivent_conf_set(conf, "server.host", "memory", NULL, 0);
    CHECK(hivent_consumer_new(NULL, "t", "svc", 1, err, sizeof err) == NULL);
    CHECK(hivent_consumer_new(conf, NULL, "svc", 1, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "topic");
    CHECK(hivent_consumer_new(conf, "t", NULL, 1, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "service");
    CHECK(hivent_consumer_new(conf, "t", "a:b", 1, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "':'");
    CHECK(hivent_consumer_new(conf, "t", "svc", 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "partition_count");
    CHECK(hivent_consumer_new(conf, "t", "svc", 4097, err, sizeof err) == NULL);
    CHECK(hivent_consumer_new(conf, "t\xff", "svc", 1, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "UTF-8");
    CHECK(hivent_consumer_new(conf, "github:*", "svc", 1, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "\"*\" alone matches every event");
    CHECK(hivent_consumer_new(conf, "t", "svc", 0, NULL, 0) == NULL);
    hivent_conf_destroy(conf);

    CHECK_INT(hivent_consumer_poll(NULL, 10), 0);
    CHECK(hivent_consumer_next(NULL, 10) == NULL);
    CHECK_INT(hivent_consumer_ack(NULL, NULL), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_consumer_reject(NULL, NULL, "r"), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_consumer_close(NULL, 10), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_consumer_fd(NULL), -1);
    CHECK_INT(hivent_consumer_state(NULL), HIVENT_STATE_CLOSED);
    hivent_consumer_destroy(NULL);
}

static void notice_accessors_accept_null(void)
{
    CHECK_INT(hivent_notice_type(NULL), 0);
    CHECK_INT(hivent_notice_err(NULL), HIVENT_ERR_INVALID_ARG);
    CHECK_STR(hivent_notice_errstr(NULL), "");
    CHECK(hivent_notice_event(NULL) == NULL);
    CHECK(hivent_notice_msg_opaque(NULL) == NULL);
    CHECK_INT(hivent_notice_msg_id(NULL), 0);
    CHECK_INT(hivent_notice_state(NULL), HIVENT_STATE_CLOSED);
    CHECK_INT(hivent_notice_attempt(NULL), 0);
    CHECK_INT(hivent_notice_next_attempt_ms(NULL), 0);
    CHECK_INT(hivent_notice_log_level(NULL), 0);
    CHECK_STR(hivent_notice_log_facility(NULL), "");
    CHECK_STR(hivent_notice_log_message(NULL), "");
    hivent_notice_destroy(NULL);
    hivent_free(NULL);
}

static void conf_setters_accept_null(void)
{
    hivent_conf_set_delivery_cb(NULL, NULL);
    hivent_conf_set_state_cb(NULL, NULL);
    hivent_conf_set_error_cb(NULL, NULL);
    hivent_conf_set_log_cb(NULL, NULL);
    hivent_conf_set_process_cb(NULL, NULL);
    hivent_conf_set_opaque(NULL, NULL);
    char err[64];
    CHECK_INT(hivent_conf_load_env(NULL, err, sizeof err), HIVENT_ERR_INVALID_ARG);
    hivent_memory_clear();
    CHECK_INT(hivent_memory_includes(NULL, "\x80", 1, NULL, 0), 0);
    /* A malformed subset is an error, not a match. */
    CHECK_INT(hivent_memory_includes(NULL, "\x82\xa1", 2, NULL, 0), HIVENT_ERR_PAYLOAD);
    CHECK_INT(hivent_memory_includes(NULL, NULL, 0, "\x81", 1), HIVENT_ERR_PAYLOAD);
}

static void client_new_rejects_bad_client_id(void)
{
    hivent_conf_t *conf = hivent_conf_new();
    hivent_conf_set(conf, "server.host", "memory", NULL, 0);
    /* The setter takes any bytes up to 255; the constructor checks UTF-8. */
    CHECK_INT(hivent_conf_set(conf, "client_id", "svc\xff", NULL, 0), HIVENT_OK);
    char err[256] = "";
    CHECK(hivent_client_new(conf, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "client_id");
    /* On failure the caller keeps the configuration and may fix it. */
    CHECK_INT(hivent_conf_set(conf, "client_id", "svc", NULL, 0), HIVENT_OK);
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    CHECK(c != NULL);
    hivent_client_destroy(c);
}

static void client_new_rejects_missing_ca_file(void)
{
    hivent_conf_t *conf = hivent_conf_new();
    CHECK_INT(hivent_conf_set(conf, "server.secure", "true", NULL, 0), HIVENT_OK);
    CHECK_INT(hivent_conf_set(conf, "tls.ca_file", "/nonexistent/hivent-ca.pem", NULL, 0),
              HIVENT_OK);
    char err[256] = "";
    CHECK(hivent_client_new(conf, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "tls.ca_file /nonexistent/hivent-ca.pem");
    CHECK_CONTAINS(err, "No such file");
    hivent_conf_destroy(conf);
}

int main(void)
{
    RUN_TEST(client_functions_reject_null);
    RUN_TEST(emit_rejects_bad_arguments);
    RUN_TEST(consumer_functions_reject_null);
    RUN_TEST(notice_accessors_accept_null);
    RUN_TEST(conf_setters_accept_null);
    RUN_TEST(client_new_rejects_bad_client_id);
    RUN_TEST(client_new_rejects_missing_ca_file);
    return check_summary();
}
