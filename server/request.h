/*
 * Request parsing of hiventd without libwebsockets: query parameters,
 * WebSocket upgrade parameters, the admin and health routes, the bearer
 * key and Content-Length.  Every function takes plain bytes, so the
 * libFuzzer target tests/fuzz/fuzz_request.c drives them directly; the
 * lws callbacks in ws.c and http.c only fetch the raw strings.
 */
#ifndef HVD_REQUEST_H
#define HVD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* Query limits.  hiventd gives libwebsockets 4096 bytes for all request
 * headers, so a request that passes lws never reaches HVD_QUERY_MAX_BYTES. */
#define HVD_QUERY_MAX_PARAMS 32
#define HVD_QUERY_MAX_BYTES 4096

/* One name=value query parameter; both strings are NUL-terminated and
 * contain no NUL or control byte. */
typedef struct hvd_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} hvd_param_t;

/* Query parameters of one request, copied into @data.  @error is empty
 * until a fragment is rejected; later fragments are then ignored. */
typedef struct hvd_query {
    hvd_param_t params[HVD_QUERY_MAX_PARAMS];
    int count;
    size_t used;
    char error[160];
    char data[HVD_QUERY_MAX_BYTES];
} hvd_query_t;

void hvd_query_init(hvd_query_t *q);
/* Adds one '&'-separated fragment of the query, already URL-decoded as
 * libwebsockets gives it, so it may contain NUL bytes decoded from %00.  An
 * empty fragment is skipped.  Rejects a fragment without '=', with an
 * empty name, with a NUL or control byte, with a name already given, the
 * 33rd parameter and a query over HVD_QUERY_MAX_BYTES.  Returns 0, or -1
 * with the reason in q->error. */
int hvd_query_add(hvd_query_t *q, const char *fragment, size_t len);
/* Records @message as the query's error unless it has one; returns -1. */
int hvd_query_fail(hvd_query_t *q, const char *message);
/* Returns the parameter called @name, or NULL. */
const hvd_param_t *hvd_query_find(const hvd_query_t *q, const char *name);

/* Compares @given (@given_len bytes) with the NUL-terminated @expected in
 * time that depends only on their lengths; returns 1 when equal. */
int hvd_secret_equal(const char *given, size_t given_len, const char *expected);

/* ---- WebSocket upgrade ---- */

typedef struct hvd_upgrade {
    int consumer;               /* /consumer/websocket, else /producer/websocket */
    int json;                   /* vsn 2.0.0 */
    int gzip;                   /* gzip=1 or gzip=true */
    const hvd_param_t *api_key; /* NULL when absent */
    const char *client_id;      /* NULL when absent or empty */
    const char *service;        /* consumers only, never NULL after success */
    const char *name;           /* consumers only; NULL when absent or empty */
} hvd_upgrade_t;

/* Checks the path and query syntax of an upgrade request and sets
 * out->consumer and out->api_key.  Returns 0, 404 for another path or 400
 * for a query that hvd_query_add() rejected, with a message in @err. */
unsigned hvd_upgrade_target(const char *path, size_t path_len, const hvd_query_t *q,
                            hvd_upgrade_t *out, char *err, size_t err_size);
/* Checks vsn, gzip, client_id and, for consumers, service and name, and
 * fills the rest of @out; call after hvd_upgrade_target().  Returns 0 or
 * 400 with a message in @err. */
unsigned hvd_upgrade_params(const hvd_query_t *q, hvd_upgrade_t *out, char *err,
                            size_t err_size);

/* ---- plain HTTP: /health, /metrics, /admin/dlq ---- */

typedef enum hvd_http_method {
    HVD_METHOD_GET,
    HVD_METHOD_POST,
    HVD_METHOD_OTHER,           /* PUT, DELETE, PATCH, OPTIONS, HEAD ... */
} hvd_http_method_t;

typedef enum hvd_route {
    HVD_ROUTE_HEALTH,
    HVD_ROUTE_METRICS,
    HVD_ROUTE_DLQ_LIST,
    HVD_ROUTE_DLQ_REPLAY,
    HVD_ROUTE_DLQ_PURGE,
} hvd_route_t;

#define HVD_DLQ_DEFAULT_LIMIT 100
#define HVD_DLQ_MAX_LIMIT 10000

typedef struct hvd_http_request {
    hvd_route_t route;
    const char *allow;          /* method for the Allow header of a 405, else NULL */
    const char *service;        /* admin routes */
    int partition;              /* admin routes; -1: every partition */
    int limit;                  /* HVD_ROUTE_DLQ_LIST */
} hvd_http_request_t;

/* Returns the partition count of @service, or -1 when no such service
 * exists. */
typedef int (*hvd_partition_count_fn)(void *ctx, const char *service);

/* Routes a plain HTTP request and checks its admin parameters in this
 * order: admin key (401), admin path (404), method (405), query syntax,
 * service (400, or 404 when @partition_count returns -1 for it), partition
 * and limit (400).  /health and /metrics read no query.  @authorized is
 * the result of hvd_admin_authorized().  Returns 0 with @out filled, or
 * the HTTP status with a message in @err (and out->allow set for 405). */
unsigned hvd_http_route(hvd_http_method_t method, const char *path, size_t path_len,
                        const hvd_query_t *q, int authorized,
                        hvd_partition_count_fn partition_count, void *ctx,
                        hvd_http_request_t *out, char *err, size_t err_size);

/* Checks an Authorization header value (@header may be NULL when the
 * request has none) against @admin_key: "Bearer" in any case, one or more
 * spaces or tabs, then the key.  Returns 1 when @admin_key is NULL or matches. */
int hvd_admin_authorized(const char *header, size_t len, const char *admin_key);

/* Parses a Content-Length value: decimal digits only, at most
 * INT64_MAX, surrounding spaces and tabs allowed.  Returns 0 or -1. */
int hvd_content_length_parse(const char *value, size_t len, uint64_t *out);

#endif
