/*
 * Request parsing of hiventd on plain bytes; see request.h.  Nothing here
 * touches libwebsockets, the network thread's state or the log, so the
 * functions are safe on any input and any thread.
 */
#include "request.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "event.h"

/* Maximum number of bytes of a rejected value copied into an error message. */
#define ECHO_MAX 64

/* Writes at most ECHO_MAX bytes of @s to @dst as printable ASCII, each
 * other byte as '?', and "..." when @s is longer. */
static void echo_value(char *dst, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < ECHO_MAX && o + 1 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (len > ECHO_MAX)
        for (int i = 0; i < 3 && o + 1 < size; i++)
            dst[o++] = '.';
    if (size)
        dst[o < size ? o : size - 1] = '\0';
}

/* Returns the first NUL or control byte (C0 or DEL) of @s, or -1. */
static int find_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return c;
    }
    return -1;
}

static int bytes_equal(const char *s, size_t len, const char *literal)
{
    return len == strlen(literal) && memcmp(s, literal, len) == 0;
}

/* Parses @len decimal digits (no sign, no spaces) into @out; returns -1
 * for an empty string, another byte or a value over @max. */
static int parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (max - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

/* ---- query parameters ---- */

void hvd_query_init(hvd_query_t *q)
{
    q->count = 0;
    q->used = 0;
    q->error[0] = '\0';
}

int hvd_query_fail(hvd_query_t *q, const char *message)
{
    if (!q->error[0])
        snprintf(q->error, sizeof(q->error), "%s", message ? message : "invalid query");
    return -1;
}

const hvd_param_t *hvd_query_find(const hvd_query_t *q, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < q->count; i++)
        if (q->params[i].name_len == len && memcmp(q->params[i].name, name, len) == 0)
            return &q->params[i];
    return NULL;
}

int hvd_query_add(hvd_query_t *q, const char *fragment, size_t len)
{
    char shown[ECHO_MAX + 4];
    char message[sizeof(q->error)];
    if (q->error[0])
        return -1;
    if (!fragment || len == 0)
        return 0;
    const char *eq = memchr(fragment, '=', len);
    size_t name_len = eq ? (size_t)(eq - fragment) : len;
    echo_value(shown, sizeof(shown), fragment, name_len);
    if (!eq) {
        snprintf(message, sizeof(message),
                 "query parameter '%s' has no value; send it as NAME=VALUE", shown);
        return hvd_query_fail(q, message);
    }
    if (name_len == 0)
        return hvd_query_fail(q, "query parameter with an empty name");
    int control = find_control(fragment, len);
    if (control == 0) {
        snprintf(message, sizeof(message), "query parameter '%s' contains a NUL byte (%%00)",
                 shown);
        return hvd_query_fail(q, message);
    }
    if (control > 0) {
        snprintf(message, sizeof(message),
                 "query parameter '%s' contains the control byte 0x%02X", shown, control);
        return hvd_query_fail(q, message);
    }
    if (q->count == HVD_QUERY_MAX_PARAMS) {
        snprintf(message, sizeof(message), "more than %d query parameters",
                 HVD_QUERY_MAX_PARAMS);
        return hvd_query_fail(q, message);
    }
    /* The copy keeps both halves NUL-terminated: name, NUL, value, NUL. */
    if (len + 1 > sizeof(q->data) - q->used) {
        snprintf(message, sizeof(message), "query is longer than %d bytes",
                 HVD_QUERY_MAX_BYTES);
        return hvd_query_fail(q, message);
    }
    for (int i = 0; i < q->count; i++) {
        if (q->params[i].name_len == name_len &&
            memcmp(q->params[i].name, fragment, name_len) == 0) {
            snprintf(message, sizeof(message), "query parameter '%s' is given more than once",
                     shown);
            return hvd_query_fail(q, message);
        }
    }
    char *copy = q->data + q->used;
    memcpy(copy, fragment, len);
    copy[name_len] = '\0';
    copy[len] = '\0';
    q->used += len + 1;
    hvd_param_t *p = &q->params[q->count++];
    p->name = copy;
    p->name_len = name_len;
    p->value = copy + name_len + 1;
    p->value_len = len - name_len - 1;
    return 0;
}

int hvd_secret_equal(const char *given, size_t given_len, const char *expected)
{
    size_t expected_len = strlen(expected);
    unsigned char diff = given_len != expected_len;
    for (size_t i = 0; i < expected_len; i++)
        diff |= (unsigned char)(expected[i] ^ (i < given_len ? given[i] : 0));
    return diff == 0;
}

/* ---- WebSocket upgrade ---- */

unsigned hvd_upgrade_target(const char *path, size_t path_len, const hvd_query_t *q,
                            hvd_upgrade_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    if (path && bytes_equal(path, path_len, "/producer/websocket")) {
        out->consumer = 0;
    } else if (path && bytes_equal(path, path_len, "/consumer/websocket")) {
        out->consumer = 1;
    } else {
        snprintf(err, err_size, "unknown endpoint; use /producer/websocket or "
                 "/consumer/websocket");
        return 404;
    }
    if (q->error[0]) {
        snprintf(err, err_size, "invalid query: %s", q->error);
        return 400;
    }
    out->api_key = hvd_query_find(q, "api_key");
    return 0;
}

/* Sets @out to the value of optional name parameter @what (NULL when
 * absent or empty); returns -1 when it fails hv_check_name(). */
static int optional_name(const hvd_query_t *q, const char *what, const char **out, char *err,
                         size_t err_size)
{
    const hvd_param_t *p = hvd_query_find(q, what);
    *out = NULL;
    if (!p || p->value_len == 0)
        return 0;
    char reason[128];
    if (hv_check_name(p->value, what, reason, sizeof(reason)) < 0) {
        snprintf(err, err_size, "invalid %s parameter: %s", what, reason);
        return -1;
    }
    *out = p->value;
    return 0;
}

unsigned hvd_upgrade_params(const hvd_query_t *q, hvd_upgrade_t *out, char *err,
                            size_t err_size)
{
    const hvd_param_t *vsn = hvd_query_find(q, "vsn");
    out->json = 0;
    if (vsn && bytes_equal(vsn->value, vsn->value_len, "2.0.0")) {
        out->json = 1;
    } else if (vsn && !bytes_equal(vsn->value, vsn->value_len, "1.0.0")) {
        snprintf(err, err_size, "unsupported vsn; use 1.0.0 or 2.0.0");
        return 400;
    }
    const hvd_param_t *gzip = hvd_query_find(q, "gzip");
    out->gzip = 0;
    if (gzip) {
        if (bytes_equal(gzip->value, gzip->value_len, "1") ||
            bytes_equal(gzip->value, gzip->value_len, "true")) {
            out->gzip = 1;
        } else if (!bytes_equal(gzip->value, gzip->value_len, "0") &&
                   !bytes_equal(gzip->value, gzip->value_len, "false")) {
            snprintf(err, err_size, "invalid gzip value; use 1, true, 0 or false");
            return 400;
        }
    }
    if (optional_name(q, "client_id", &out->client_id, err, err_size) < 0)
        return 400;
    out->service = NULL;
    out->name = NULL;
    if (!out->consumer)
        return 0;
    const hvd_param_t *service = hvd_query_find(q, "service");
    if (!service || service->value_len == 0) {
        snprintf(err, err_size, "missing service parameter; a consumer must name its service");
        return 400;
    }
    if (optional_name(q, "service", &out->service, err, err_size) < 0)
        return 400;
    if (optional_name(q, "name", &out->name, err, err_size) < 0)
        return 400;
    return 0;
}

/* ---- plain HTTP ---- */

static const char *method_name(hvd_http_method_t method)
{
    return method == HVD_METHOD_GET ? "GET" : "POST";
}

/* Returns 405 with out->allow set unless @method is @allowed, else 0.
 * @path is the route's literal path. */
static unsigned check_method(hvd_http_method_t method, hvd_http_method_t allowed,
                             const char *path, hvd_http_request_t *out, char *err,
                             size_t err_size)
{
    if (method == allowed)
        return 0;
    out->allow = method_name(allowed);
    snprintf(err, err_size, "method not allowed; %s accepts only %s", path, out->allow);
    return 405;
}

/* Checks the service, partition and limit parameters of an admin route. */
static unsigned admin_params(const hvd_query_t *q, hvd_partition_count_fn partition_count,
                             void *ctx, hvd_http_request_t *out, char *err, size_t err_size)
{
    if (q->error[0]) {
        snprintf(err, err_size, "invalid query: %s", q->error);
        return 400;
    }
    const hvd_param_t *service = hvd_query_find(q, "service");
    if (!service || service->value_len == 0) {
        snprintf(err, err_size, "missing service parameter");
        return 400;
    }
    char reason[128];
    if (hv_check_name(service->value, "service", reason, sizeof(reason)) < 0) {
        snprintf(err, err_size, "invalid service parameter: %s", reason);
        return 400;
    }
    out->service = service->value;
    int count = partition_count ? partition_count(ctx, service->value) : -1;
    if (count < 0) {
        snprintf(err, err_size, "unknown service %s: no consumer of it ever joined",
                 service->value);
        return 404;
    }
    out->partition = -1;
    const hvd_param_t *partition = hvd_query_find(q, "partition");
    if (partition) {
        uint64_t p;
        if (parse_decimal(partition->value, partition->value_len, INT32_MAX, &p) < 0 ||
            p >= (uint64_t)count) {
            char shown[ECHO_MAX + 4];
            echo_value(shown, sizeof(shown), partition->value, partition->value_len);
            snprintf(err, err_size, "invalid partition '%s': service %s has partition_count "
                     "%d, so partition must be an integer from 0 to %d", shown,
                     service->value, count, count - 1);
            return 400;
        }
        out->partition = (int)p;
    }
    out->limit = HVD_DLQ_DEFAULT_LIMIT;
    const hvd_param_t *limit = hvd_query_find(q, "limit");
    if (out->route == HVD_ROUTE_DLQ_LIST && limit) {
        uint64_t n;
        if (parse_decimal(limit->value, limit->value_len, HVD_DLQ_MAX_LIMIT, &n) < 0 ||
            n < 1) {
            snprintf(err, err_size, "limit must be an integer from 1 to %d",
                     HVD_DLQ_MAX_LIMIT);
            return 400;
        }
        out->limit = (int)n;
    }
    return 0;
}

/* Paths of the plain HTTP routes and the one method each accepts. */
static const struct {
    const char *path;
    hvd_route_t route;
    hvd_http_method_t method;
} routes[] = {
    {"/health", HVD_ROUTE_HEALTH, HVD_METHOD_GET},
    {"/metrics", HVD_ROUTE_METRICS, HVD_METHOD_GET},
    {"/admin/dlq", HVD_ROUTE_DLQ_LIST, HVD_METHOD_GET},
    {"/admin/dlq/replay", HVD_ROUTE_DLQ_REPLAY, HVD_METHOD_POST},
    {"/admin/dlq/purge", HVD_ROUTE_DLQ_PURGE, HVD_METHOD_POST},
};

unsigned hvd_http_route(hvd_http_method_t method, const char *path, size_t path_len,
                        const hvd_query_t *q, int authorized,
                        hvd_partition_count_fn partition_count, void *ctx,
                        hvd_http_request_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    out->partition = -1;
    if (!path)
        path_len = 0;
    int admin = path_len >= 7 && memcmp(path, "/admin/", 7) == 0;
    if (admin && !authorized) {
        snprintf(err, err_size, "missing or invalid admin key; send Authorization: Bearer KEY");
        return 401;
    }
    size_t i = 0;
    size_t route_count = sizeof(routes) / sizeof(routes[0]);
    while (i < route_count && !bytes_equal(path, path_len, routes[i].path))
        i++;
    if (i == route_count) {
        snprintf(err, err_size, admin ? "unknown admin path" : "not found");
        return 404;
    }
    out->route = routes[i].route;
    unsigned status = check_method(method, routes[i].method, routes[i].path, out, err,
                                   err_size);
    if (status || !admin)
        return status;
    return admin_params(q, partition_count, ctx, out, err, err_size);
}

int hvd_admin_authorized(const char *header, size_t len, const char *admin_key)
{
    if (!admin_key)
        return 1;
    if (!header || len < 7 || strncasecmp(header, "Bearer", 6) != 0 ||
        (header[6] != ' ' && header[6] != '\t'))
        return 0;
    size_t start = 6;
    while (start < len && (header[start] == ' ' || header[start] == '\t'))
        start++;
    size_t end = len;
    while (end > start && (header[end - 1] == ' ' || header[end - 1] == '\t'))
        end--;
    if (end == start || find_control(header + start, end - start) >= 0)
        return 0;
    return hvd_secret_equal(header + start, end - start, admin_key);
}

int hvd_content_length_parse(const char *value, size_t len, uint64_t *out)
{
    if (!value)
        return -1;
    size_t start = 0, end = len;
    while (start < end && (value[start] == ' ' || value[start] == '\t'))
        start++;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;
    return parse_decimal(value + start, end - start, INT64_MAX, out);
}
