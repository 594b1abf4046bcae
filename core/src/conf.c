/* Configuration: a table of string keys with types, ranges and defaults. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef enum { KIND_STR, KIND_INT, KIND_BIGINT, KIND_BOOL, KIND_LEVEL } kind_t;

struct key_desc {
    const char *name;
    kind_t kind;
    size_t offset;
    long long min, max;
    const char *def;
    int secret;
};

#define F(field) offsetof(struct hivent_conf_s, field)

static const struct key_desc keys[] = {
    {"client_id", KIND_STR, F(client_id), 0, 255, NULL, 0},
    {"server.host", KIND_STR, F(host), 1, 255, "127.0.0.1", 0},
    {"server.port", KIND_INT, F(port), 1, 65535, "4000", 0},
    {"server.secure", KIND_BOOL, F(secure), 0, 1, "false", 0},
    {"server.api_key", KIND_STR, F(api_key), 0, 512, "", 1},
    {"max_reconnect_tries", KIND_INT, F(max_reconnect_tries), -1, INT_MAX, "3", 0},
    {"reconnect_backoff_time", KIND_INT, F(backoff_ms), 0, 86400000, "1000", 0},
    {"reconnect_backoff_max", KIND_INT, F(backoff_max_ms), 0, 86400000, "30000", 0},
    {"reconnect_jitter", KIND_INT, F(jitter_pct), 0, 100, "20", 0},
    {"heartbeat_interval", KIND_INT, F(heartbeat_ms), 0, 86400000, "30000", 0},
    {"request_timeout", KIND_INT, F(request_timeout_ms), 1, 86400000, "10000", 0},
    {"connect_timeout", KIND_INT, F(connect_timeout_ms), 1, 86400000, "10000", 0},
    {"tls.ca_file", KIND_STR, F(ca_file), 0, 4096, NULL, 0},
    {"tls.verify", KIND_BOOL, F(tls_verify), 0, 1, "true", 0},
    {"max_frame_size", KIND_INT, F(max_frame_size), 1024, 1 << 30, "16777216", 0},
    {"queue.max_events", KIND_INT, F(queue_max_events), 1, 100000000, "100000", 0},
    {"queue.max_bytes", KIND_BIGINT, F(queue_max_bytes), 1024, 1LL << 40, "268435456", 0},
    {"flush_timeout", KIND_INT, F(flush_timeout_ms), 0, 86400000, "5000", 0},
    {"gzip", KIND_BOOL, F(gzip), 0, 1, "true", 0},
    {"log_level", KIND_LEVEL, F(log_level), 0, 7, "info", 0},
    {"log.queue", KIND_BOOL, F(log_queue), 0, 1, "false", 0},
    {"consumer.name", KIND_STR, F(consumer_name), 1, 255, NULL, 0},
    {"consumer.ack", KIND_BOOL, F(consumer_ack), 0, 1, "true", 0},
    {"consumer.prefetch", KIND_INT, F(consumer_prefetch), 1, 100000, "100", 0},
    {"consumer.version", KIND_INT, F(consumer_version), 0, INT_MAX, "0", 0},
};

#define KEY_COUNT ((int)(sizeof keys / sizeof keys[0]))

static const char *const level_names[] = {"emerg",  "alert",  "crit", "error",
                                          "warning", "notice", "info", "debug"};

static void set_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t size, const char *fmt, ...)
{
    if (!err || !size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

static const struct key_desc *find_key(const char *name)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_level(const char *v, int *out)
{
    for (int i = 0; i < 8; i++) {
        if (strcasecmp(v, level_names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    if (strcasecmp(v, "warn") == 0 || strcasecmp(v, "err") == 0) {
        *out = v[0] == 'w' || v[0] == 'W' ? 4 : 3;
        return 0;
    }
    if (isdigit((unsigned char)v[0]) && v[1] == 0 && v[0] <= '7') {
        *out = v[0] - '0';
        return 0;
    }
    return -1;
}

static int parse_int(const char *v, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static hivent_err_t set_str(hivent_conf_t *conf, const struct key_desc *k, const char *value,
                            char *err, size_t err_size)
{
    size_t n = strlen(value);
    if ((long long)n < k->min || (long long)n > k->max) {
        set_err(err, err_size, "%s: expected a string of %lld to %lld bytes, got %zu bytes",
                k->name, k->min, k->max, n);
        return HIVENT_ERR_INVALID_VALUE;
    }
    /* Values go into the upgrade URL or a file path, and hiventd rejects
     * control bytes in a query. */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)value[i];
        if (ch < 0x20 || ch == 0x7f) {
            set_err(err, err_size, "%s: control byte 0x%02x at offset %zu is not allowed",
                    k->name, ch, i);
            return HIVENT_ERR_INVALID_VALUE;
        }
    }
    char **field = (char **)((char *)conf + k->offset);
    char *copy = strdup(value);
    if (!copy)
        return HIVENT_ERR_NO_MEMORY;
    free(*field);
    *field = copy;
    return HIVENT_OK;
}

static hivent_err_t set_value(hivent_conf_t *conf, const struct key_desc *k, const char *value,
                              char *err, size_t err_size)
{
    void *field = (char *)conf + k->offset;
    long long n;
    int b;
    switch (k->kind) {
    case KIND_STR:
        return set_str(conf, k, value, err, err_size);
    case KIND_INT:
    case KIND_BIGINT:
        if (parse_int(value, k->min, k->max, &n) != 0) {
            set_err(err, err_size, "%s: expected an integer from %lld to %lld, got \"%.64s\"",
                    k->name, k->min, k->max, value);
            return HIVENT_ERR_INVALID_VALUE;
        }
        if (k->kind == KIND_INT)
            *(int *)field = (int)n;
        else
            *(long long *)field = n;
        return HIVENT_OK;
    case KIND_BOOL:
        if (parse_bool(value, &b) != 0) {
            set_err(err, err_size, "%s: expected true or false (also 1/0, yes/no, on/off), "
                    "got \"%.64s\"", k->name, value);
            return HIVENT_ERR_INVALID_VALUE;
        }
        *(int *)field = b;
        return HIVENT_OK;
    case KIND_LEVEL:
        if (parse_level(value, &b) != 0) {
            set_err(err, err_size, "%s: expected debug, info, notice, warning, error or a "
                    "number from 0 to 7, got \"%.64s\"", k->name, value);
            return HIVENT_ERR_INVALID_VALUE;
        }
        *(int *)field = b;
        return HIVENT_OK;
    }
    return HIVENT_ERR_INVALID_VALUE;
}

static char *default_client_id(void)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    return strdup(host);
}

HIVENT_API hivent_conf_t *hivent_conf_new(void)
{
    hivent_conf_t *conf = calloc(1, sizeof *conf);
    if (!conf)
        return NULL;
    for (int i = 0; i < KEY_COUNT; i++) {
        if (keys[i].def && set_value(conf, &keys[i], keys[i].def, NULL, 0) != HIVENT_OK) {
            hivent_conf_destroy(conf);
            return NULL;
        }
    }
    conf->client_id = default_client_id();
    if (!conf->client_id) {
        hivent_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

HIVENT_API hivent_conf_t *hivent_conf_dup(const hivent_conf_t *src)
{
    if (!src)
        return NULL;
    hivent_conf_t *conf = malloc(sizeof *conf);
    if (!conf)
        return NULL;
    *conf = *src;
    int failed = 0;
    for (int i = 0; i < KEY_COUNT; i++) {
        if (keys[i].kind != KIND_STR)
            continue;
        char **field = (char **)((char *)conf + keys[i].offset);
        if (*field && !(*field = strdup(*field)))
            failed = 1;
    }
    if (failed) {
        hivent_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

HIVENT_API void hivent_conf_destroy(hivent_conf_t *conf)
{
    if (!conf)
        return;
    for (int i = 0; i < KEY_COUNT; i++) {
        if (keys[i].kind == KIND_STR)
            free(*(char **)((char *)conf + keys[i].offset));
    }
    free(conf);
}

HIVENT_API hivent_err_t hivent_conf_set(hivent_conf_t *conf, const char *key,
                                        const char *value, char *errstr, size_t errstr_size)
{
    if (!conf || !key || !value) {
        set_err(errstr, errstr_size, "conf, key and value must not be NULL");
        return HIVENT_ERR_INVALID_ARG;
    }
    const struct key_desc *k = find_key(key);
    if (!k) {
        set_err(errstr, errstr_size, "unknown configuration key \"%.64s\"; the known keys "
                "are listed in docs/configuration.md", key);
        return HIVENT_ERR_UNKNOWN_KEY;
    }
    return set_value(conf, k, value, errstr, errstr_size);
}

static void format_value(const hivent_conf_t *conf, const struct key_desc *k, char *buf,
                         size_t size)
{
    const void *field = (const char *)conf + k->offset;
    switch (k->kind) {
    case KIND_STR: {
        const char *s = *(char *const *)field;
        if (k->secret)
            snprintf(buf, size, "%s", s && *s ? "(set)" : "");
        else
            snprintf(buf, size, "%s", s ? s : "");
        break;
    }
    case KIND_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        break;
    case KIND_BIGINT:
        snprintf(buf, size, "%lld", *(const long long *)field);
        break;
    case KIND_BOOL:
        snprintf(buf, size, "%s", *(const int *)field ? "true" : "false");
        break;
    case KIND_LEVEL:
        snprintf(buf, size, "%s", level_names[*(const int *)field & 7]);
        break;
    }
}

HIVENT_API hivent_err_t hivent_conf_get(const hivent_conf_t *conf, const char *key,
                                        char *dest, size_t *dest_size)
{
    if (!conf || !key || !dest_size)
        return HIVENT_ERR_INVALID_ARG;
    const struct key_desc *k = find_key(key);
    if (!k)
        return HIVENT_ERR_UNKNOWN_KEY;
    char small[64] = "";
    const char *s = small;
    if (k->kind == KIND_STR && !k->secret) {
        s = *(char *const *)((const char *)conf + k->offset);
        if (!s)
            s = "";
    } else {
        format_value(conf, k, small, sizeof small);
    }
    size_t need = strlen(s) + 1;
    if (dest && *dest_size > 0)
        snprintf(dest, *dest_size, "%s", s);
    *dest_size = need;
    return HIVENT_OK;
}

HIVENT_API hivent_err_t hivent_conf_load_env(hivent_conf_t *conf, char *errstr,
                                             size_t errstr_size)
{
    if (!conf) {
        set_err(errstr, errstr_size, "conf must not be NULL");
        return HIVENT_ERR_INVALID_ARG;
    }
    for (int i = 0; i < KEY_COUNT; i++) {
        char var[64] = "HIVENT_";
        size_t o = strlen(var);
        for (const char *p = keys[i].name; *p && o < sizeof var - 1; p++)
            var[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
        var[o] = 0;
        const char *value = getenv(var);
        if (!value)
            continue;
        char inner[256];
        hivent_err_t rc = set_value(conf, &keys[i], value, inner, sizeof inner);
        if (rc != HIVENT_OK) {
            set_err(errstr, errstr_size, "environment variable %s: %s", var, inner);
            return rc;
        }
    }
    return HIVENT_OK;
}

HIVENT_API int hivent_conf_key_count(void)
{
    return KEY_COUNT;
}

HIVENT_API const char *hivent_conf_key_at(int i)
{
    return i >= 0 && i < KEY_COUNT ? keys[i].name : NULL;
}

#define SETTER(fn, type, field)                                        \
    HIVENT_API void fn(hivent_conf_t *conf, type value)                \
    {                                                                  \
        if (conf)                                                      \
            conf->field = value;                                       \
    }

SETTER(hivent_conf_set_delivery_cb, hivent_delivery_cb *, delivery_cb)
SETTER(hivent_conf_set_state_cb, hivent_state_cb *, state_cb)
SETTER(hivent_conf_set_error_cb, hivent_error_cb *, error_cb)
SETTER(hivent_conf_set_log_cb, hivent_log_cb *, log_cb)
SETTER(hivent_conf_set_process_cb, hivent_process_cb *, process_cb)
SETTER(hivent_conf_set_opaque, void *, opaque)

int hv_conf_is_memory(const hivent_conf_t *conf)
{
    return conf->host && strcmp(conf->host, "memory") == 0;
}
