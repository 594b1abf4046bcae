/* Configuration: every key, defaults, bad values, environment variables. */
#include <limits.h>

#include "check.h"
#include "hivent/hivent.h"

static const char *get(const hivent_conf_t *conf, const char *key)
{
    static char buf[512];
    size_t size = sizeof buf;
    if (hivent_conf_get(conf, key, buf, &size) != HIVENT_OK)
        return "(error)";
    return buf;
}

/* Key, default as read back, a valid value and how it reads back. */
static const struct {
    const char *key, *def, *value, *readback;
} table[] = {
    {"server.host", "127.0.0.1", "events.example.test", "events.example.test"},
    {"server.port", "4000", "65535", "65535"},
    {"server.secure", "false", "yes", "true"},
    {"server.api_key", "", "s3cr3t", "(set)"},
    {"max_reconnect_tries", "3", "-1", "-1"},
    {"reconnect_backoff_time", "1000", "250", "250"},
    {"reconnect_backoff_max", "30000", "0", "0"},
    {"reconnect_jitter", "20", "100", "100"},
    {"heartbeat_interval", "30000", "0", "0"},
    {"request_timeout", "10000", "1", "1"},
    {"connect_timeout", "10000", "86400000", "86400000"},
    {"tls.ca_file", "", "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt"},
    {"tls.verify", "true", "OFF", "false"},
    {"max_frame_size", "16777216", "1024", "1024"},
    {"queue.max_events", "100000", "1", "1"},
    {"queue.max_bytes", "268435456", "1099511627776", "1099511627776"},
    {"flush_timeout", "5000", "0", "0"},
    {"gzip", "true", "0", "false"},
    {"log_level", "info", "7", "debug"},
    {"log.queue", "false", "on", "true"},
    {"consumer.ack", "true", "no", "false"},
    {"consumer.prefetch", "100", "100000", "100000"},
    {"consumer.version", "0", "2147483647", "2147483647"},
    {"consumer.name", "", "worker-1", "worker-1"},
    {"client_id", NULL, "billing \xc3\xbc", "billing \xc3\xbc"},
};

#define TABLE_SIZE (sizeof table / sizeof table[0])

static void conf_every_key_default_and_set(void)
{
    hivent_conf_t *conf = hivent_conf_new();
    CHECK_REQUIRE(conf != NULL);
    CHECK_INT(hivent_conf_key_count(), (int)TABLE_SIZE);
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        if (table[i].def)
            CHECK_MSG(strcmp(get(conf, table[i].key), table[i].def) == 0,
                      "%s default \"%s\"", table[i].key, get(conf, table[i].key));
        char err[256] = "";
        hivent_err_t rc = hivent_conf_set(conf, table[i].key, table[i].value, err, sizeof err);
        CHECK_MSG(rc == HIVENT_OK, "%s = %s: %s", table[i].key, table[i].value, err);
        CHECK_MSG(strcmp(get(conf, table[i].key), table[i].readback) == 0,
                  "%s reads back \"%s\"", table[i].key, get(conf, table[i].key));
    }
    /* Every key the library lists is in the table. */
    for (int k = 0; k < hivent_conf_key_count(); k++) {
        int found = 0;
        for (size_t i = 0; i < TABLE_SIZE; i++)
            found |= strcmp(table[i].key, hivent_conf_key_at(k)) == 0;
        CHECK_MSG(found, "key %s not covered", hivent_conf_key_at(k));
    }
    CHECK(hivent_conf_key_at(-1) == NULL);
    CHECK(hivent_conf_key_at(hivent_conf_key_count()) == NULL);
    /* The default client_id is the host name, never empty. */
    hivent_conf_t *fresh = hivent_conf_new();
    CHECK(strlen(get(fresh, "client_id")) > 0);
    hivent_conf_destroy(fresh);
    hivent_conf_destroy(conf);
}

static void conf_rejects_bad_values(void)
{
    char long_host[300];
    memset(long_host, 'h', 299);
    long_host[299] = 0;
    char long_key[514];
    memset(long_key, 'k', 513);
    long_key[513] = 0;
    const struct {
        const char *key, *value, *expect;
    } bad[] = {
        {"server.port", "0", "1 to 65535"},
        {"server.port", "65536", "1 to 65535"},
        {"server.port", "80x", "integer"},
        {"server.port", "", "integer"},
        {"server.port", "99999999999999999999", "integer"},
        {"server.host", "", "string of 1 to 255"},
        {"server.host", long_host, "255"},
        {"server.secure", "maybe", "true or false"},
        {"max_reconnect_tries", "-2", "-1 to"},
        {"reconnect_jitter", "101", "0 to 100"},
        {"request_timeout", "0", "1 to"},
        {"max_frame_size", "1023", "1024 to"},
        {"queue.max_events", "0", "1 to"},
        {"queue.max_bytes", "1099511627777", "1024 to"},
        {"log_level", "loud", "debug, info"},
        {"log_level", "8", "0 to 7"},
        {"tls.verify", "2", "true or false"},
        {"consumer.prefetch", "0", "1 to"},
        {"heartbeat_interval", "-1", "0 to"},
        {"server.api_key", long_key, "0 to 512 bytes"},
        {"server.api_key", "key\twith-tab", "control byte 0x09 at offset 3"},
        {"server.api_key", "key\x7f", "control byte 0x7f"},
        {"client_id", "svc\n1", "control byte 0x0a"},
        {"consumer.name", "a\x01", "control byte 0x01"},
    };
    hivent_conf_t *conf = hivent_conf_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char before[512];
        snprintf(before, sizeof before, "%s", get(conf, bad[i].key));
        char err[256] = "";
        hivent_err_t rc = hivent_conf_set(conf, bad[i].key, bad[i].value, err, sizeof err);
        CHECK_MSG(rc == HIVENT_ERR_INVALID_VALUE, "%s = \"%.20s\" accepted", bad[i].key,
                  bad[i].value);
        CHECK_MSG(strncmp(err, bad[i].key, strlen(bad[i].key)) == 0,
                  "message does not name %s: %s", bad[i].key, err);
        CHECK_MSG(strstr(err, bad[i].expect) != NULL, "%s: message \"%s\" lacks \"%s\"",
                  bad[i].key, err, bad[i].expect);
        /* A rejected value leaves the old one in place. */
        CHECK_STR(get(conf, bad[i].key), before);
    }
    char err[256] = "";
    CHECK_INT(hivent_conf_set(conf, "server.hots", "x", err, sizeof err),
              HIVENT_ERR_UNKNOWN_KEY);
    CHECK_CONTAINS(err, "server.hots");
    CHECK_INT(hivent_conf_set(conf, "", "x", err, sizeof err), HIVENT_ERR_UNKNOWN_KEY);
    CHECK_INT(hivent_conf_set(conf, NULL, "x", err, sizeof err), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_conf_set(conf, "gzip", NULL, err, sizeof err), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_conf_set(NULL, "gzip", "1", err, sizeof err), HIVENT_ERR_INVALID_ARG);
    /* A NULL or zero-size error buffer is allowed. */
    CHECK_INT(hivent_conf_set(conf, "gzip", "x", NULL, 0), HIVENT_ERR_INVALID_VALUE);
    CHECK_INT(hivent_conf_set(conf, "gzip", "x", err, 0), HIVENT_ERR_INVALID_VALUE);
    /* A tiny error buffer is truncated and NUL-terminated. */
    char tiny[8];
    memset(tiny, 'z', sizeof tiny);
    hivent_conf_set(conf, "server.port", "x", tiny, sizeof tiny);
    CHECK_INT(strlen(tiny), 7);
    hivent_conf_destroy(conf);
}

static void conf_get_sizes(void)
{
    hivent_conf_t *conf = hivent_conf_new();
    hivent_conf_set(conf, "server.host", "abcdef", NULL, 0);
    size_t size = 0;
    CHECK_INT(hivent_conf_get(conf, "server.host", NULL, &size), HIVENT_OK);
    CHECK_INT(size, 7);
    char small[4] = "zzz";
    size = sizeof small;
    CHECK_INT(hivent_conf_get(conf, "server.host", small, &size), HIVENT_OK);
    CHECK_STR(small, "abc");
    CHECK_INT(size, 7);
    CHECK_INT(hivent_conf_get(conf, "nope", small, &size), HIVENT_ERR_UNKNOWN_KEY);
    CHECK_INT(hivent_conf_get(conf, "server.host", small, NULL), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_conf_get(NULL, "server.host", small, &size), HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_conf_get(conf, NULL, small, &size), HIVENT_ERR_INVALID_ARG);
    /* The API key never reads back. */
    hivent_conf_set(conf, "server.api_key", "top-secret", NULL, 0);
    CHECK_STR(get(conf, "server.api_key"), "(set)");
    hivent_conf_destroy(conf);
}

static int dummy_delivery_called;
static void dummy_delivery(hivent_client_t *c, hivent_err_t err, const char *errstr,
                           const hivent_event_t *ev, void *msg_opaque, void *opaque)
{
    dummy_delivery_called++;
}

static void conf_dup_is_deep(void)
{
    hivent_conf_t *a = hivent_conf_new();
    hivent_conf_set(a, "server.host", "first.test", NULL, 0);
    hivent_conf_set(a, "tls.ca_file", "/tmp/ca.pem", NULL, 0);
    hivent_conf_set_delivery_cb(a, dummy_delivery);
    hivent_conf_set_opaque(a, &dummy_delivery_called);
    hivent_conf_t *b = hivent_conf_dup(a);
    CHECK_REQUIRE(b != NULL);
    hivent_conf_set(a, "server.host", "changed.test", NULL, 0);
    hivent_conf_destroy(a);
    CHECK_STR(get(b, "server.host"), "first.test");
    CHECK_STR(get(b, "tls.ca_file"), "/tmp/ca.pem");
    hivent_conf_destroy(b);
    CHECK(hivent_conf_dup(NULL) == NULL);
    hivent_conf_destroy(NULL);
}

static void conf_from_environment(void)
{
    /* Every key maps to HIVENT_ + upper case with dots as underscores. */
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        char var[128] = "HIVENT_";
        size_t o = strlen(var);
        for (const char *p = table[i].key; *p; p++)
            var[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        var[o] = 0;
        setenv(var, table[i].value, 1);
        hivent_conf_t *conf = hivent_conf_new();
        char err[256] = "";
        CHECK_MSG(hivent_conf_load_env(conf, err, sizeof err) == HIVENT_OK, "%s: %s", var, err);
        CHECK_MSG(strcmp(get(conf, table[i].key), table[i].readback) == 0,
                  "%s did not set %s (reads \"%s\")", var, table[i].key,
                  get(conf, table[i].key));
        hivent_conf_destroy(conf);
        unsetenv(var);
    }
    setenv("HIVENT_SERVER_PORT", "not-a-port", 1);
    hivent_conf_t *conf = hivent_conf_new();
    char err[256] = "";
    CHECK_INT(hivent_conf_load_env(conf, err, sizeof err), HIVENT_ERR_INVALID_VALUE);
    CHECK_CONTAINS(err, "HIVENT_SERVER_PORT");
    CHECK_CONTAINS(err, "server.port");
    unsetenv("HIVENT_SERVER_PORT");
    CHECK_INT(hivent_conf_load_env(NULL, err, sizeof err), HIVENT_ERR_INVALID_ARG);
    hivent_conf_destroy(conf);
}

static void error_table(void)
{
    int n = hivent_err_count();
    CHECK_INT(n, 22);
    for (int i = 0; i < n; i++) {
        int code = hivent_err_code_at(i);
        const char *name = hivent_err_name(code);
        CHECK_MSG(strncmp(name, "HIVENT_", 7) == 0, "code %d named %s", code, name);
        CHECK_MSG(strlen(hivent_err_str(code)) > 0, "code %d has no text", code);
        for (int j = 0; j < i; j++) {
            CHECK(hivent_err_code_at(j) != code);
            CHECK(strcmp(hivent_err_name(hivent_err_code_at(j)), name) != 0);
        }
    }
    CHECK_STR(hivent_err_name(HIVENT_ERR_TIMED_OUT), "HIVENT_ERR_TIMED_OUT");
    CHECK_STR(hivent_err_name(HIVENT_ERR_JOIN_REJECTED), "HIVENT_ERR_JOIN_REJECTED");
    CHECK_STR(hivent_err_name(12345), "HIVENT_ERR_UNKNOWN");
    CHECK(strlen(hivent_err_str(-12345)) > 0);
    CHECK_INT(hivent_err_code_at(-1), 0);
    CHECK_INT(hivent_err_code_at(n), 0);
    /* Local errors are negative, server errors positive. */
    CHECK(HIVENT_ERR_TOO_LARGE < 0 && HIVENT_ERR_REJECTED > 0);
}

static void version_functions(void)
{
    CHECK_INT(hivent_version(), HIVENT_VERSION);
    CHECK_STR(hivent_version_str(), HIVENT_VERSION_STR);
    CHECK_INT(hivent_version_check(HIVENT_VERSION), HIVENT_OK);
    CHECK_INT(hivent_version_check(HIVENT_VERSION + 1), HIVENT_ERR_VERSION_MISMATCH);
    CHECK_INT(hivent_version_check(HIVENT_VERSION + 0x010000), HIVENT_ERR_VERSION_MISMATCH);
    CHECK_STR(hivent_state_name(HIVENT_STATE_BACKOFF), "backoff");
    CHECK_STR(hivent_state_name(99), "unknown");
    CHECK_STR(hivent_state_name(-1), "unknown");
}

int main(void)
{
    RUN_TEST(conf_every_key_default_and_set);
    RUN_TEST(conf_rejects_bad_values);
    RUN_TEST(conf_get_sizes);
    RUN_TEST(conf_dup_is_deep);
    RUN_TEST(conf_from_environment);
    RUN_TEST(error_table);
    RUN_TEST(version_functions);
    return check_summary();
}
