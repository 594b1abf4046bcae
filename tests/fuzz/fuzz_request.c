/*
 * libFuzzer target: hiventd's request parsing (server/request.c).
 *
 * Input: one method byte ('G' GET, 'P' POST, anything else another
 * method), then newline-separated pieces: the path, the Authorization
 * value, the Content-Length value, then one query fragment per piece as
 * libwebsockets gives it (URL-decoded, so it may contain NUL bytes).  The
 * pieces go through the upgrade, route, bearer and Content-Length parsers.
 * Each result is checked against what the server relies on, and a broken
 * rule aborts.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "request.h"

#define ADMIN_KEY "admin-key"

typedef struct piece {
    const char *data;
    size_t len;
} piece_t;

static void require(int condition, const char *rule)
{
    if (!condition) {
        fprintf(stderr, "fuzz_request: rule broken: %s\n", rule);
        abort();
    }
}

/* Two services exist: billing with 4 partitions and named with 2. */
static int fake_partition_count(void *ctx, const char *service)
{
    (void)ctx;
    if (strcmp(service, "billing") == 0)
        return 4;
    if (strcmp(service, "named") == 0)
        return 2;
    return -1;
}

static int c_string_of_length(const char *s, size_t len)
{
    return s && strlen(s) == len;
}

static void check_query(const hvd_query_t *q, const piece_t *fragments, int count)
{
    require(q->count >= 0 && q->count <= HVD_QUERY_MAX_PARAMS, "parameter count in range");
    require(q->used <= sizeof(q->data), "query storage in bounds");
    for (int i = 0; i < q->count; i++) {
        const hvd_param_t *p = &q->params[i];
        require(p->name_len > 0, "parameter name not empty");
        require(c_string_of_length(p->name, p->name_len), "name has no NUL byte");
        require(c_string_of_length(p->value, p->value_len), "value has no NUL byte");
        require(hvd_query_find(q, p->name) == p, "names are unique");
    }
    if (q->error[0])
        return;
    /* Without an error, every non-empty fragment is one parameter, byte
     * for byte. */
    int k = 0;
    for (int i = 0; i < count; i++) {
        if (fragments[i].len == 0)
            continue;
        require(k < q->count, "every fragment kept");
        const hvd_param_t *p = &q->params[k++];
        require(p->name_len + 1 + p->value_len == fragments[i].len, "fragment length kept");
        require(memcmp(p->name, fragments[i].data, p->name_len) == 0, "name kept");
        require(fragments[i].data[p->name_len] == '=', "split at the first '='");
        require(memcmp(p->value, fragments[i].data + p->name_len + 1, p->value_len) == 0,
                "value kept");
    }
    require(k == q->count, "no parameter invented");
}

static void check_name(const char *value)
{
    char err[128];
    require(value == NULL || hv_check_name(value, "name", err, sizeof(err)) == 0,
            "names passed on are valid");
}

static void check_upgrade(const piece_t *path, const hvd_query_t *q)
{
    hvd_upgrade_t up;
    char err[256] = "";
    unsigned status = hvd_upgrade_target(path->data, path->len, q, &up, err, sizeof(err));
    require(status == 0 || status == 400 || status == 404, "upgrade target status");
    if (status) {
        require(err[0] != '\0', "upgrade target error has a message");
        return;
    }
    require(q->error[0] == '\0', "a rejected query never reaches the upgrade");
    status = hvd_upgrade_params(q, &up, err, sizeof(err));
    require(status == 0 || status == 400, "upgrade params status");
    if (status) {
        require(err[0] != '\0', "upgrade params error has a message");
        return;
    }
    const hvd_param_t *vsn = hvd_query_find(q, "vsn");
    require(!up.json || (vsn && strcmp(vsn->value, "2.0.0") == 0), "json only for 2.0.0");
    require(up.json || !vsn || strcmp(vsn->value, "1.0.0") == 0, "vsn 1.0.0 or absent");
    if (up.consumer)
        require(up.service != NULL, "a consumer has a service");
    else
        require(up.service == NULL && up.name == NULL, "a producer has no service");
    check_name(up.service);
    check_name(up.name);
    check_name(up.client_id);
}

static void check_route(hvd_http_method_t method, const piece_t *path, const hvd_query_t *q,
                        int authorized)
{
    hvd_http_request_t r;
    char err[512] = "";
    unsigned status = hvd_http_route(method, path->data, path->len, q, authorized,
                                     fake_partition_count, NULL, &r, err, sizeof(err));
    require(status == 0 || status == 400 || status == 401 || status == 404 || status == 405,
            "route status");
    if (status) {
        require(err[0] != '\0', "route error has a message");
        require((status == 405) == (r.allow != NULL), "Allow header exactly with 405");
        return;
    }
    if (r.route == HVD_ROUTE_HEALTH || r.route == HVD_ROUTE_METRICS) {
        require(method == HVD_METHOD_GET, "health and metrics only by GET");
        return;
    }
    require(authorized, "admin only with the key");
    require(q->error[0] == '\0', "admin only with a valid query");
    int count = r.service ? fake_partition_count(NULL, r.service) : -1;
    require(count > 0, "admin only for a known service");
    require(r.partition >= -1 && r.partition < count, "partition in range");
    require(r.limit >= 1 && r.limit <= HVD_DLQ_MAX_LIMIT, "limit in range");
    require((r.route == HVD_ROUTE_DLQ_LIST) == (method == HVD_METHOD_GET), "admin method");
}

static void check_authorization(const piece_t *auth)
{
    int ok = hvd_admin_authorized(auth->data, auth->len, ADMIN_KEY);
    require(hvd_admin_authorized(auth->data, auth->len, NULL) == 1, "no key accepts all");
    require(hvd_admin_authorized(NULL, 0, ADMIN_KEY) == 0, "no header, no access");
    if (!ok)
        return;
    /* The accepted header is "Bearer", blanks, the key, blanks. */
    require(auth->len >= 6 + 1 + strlen(ADMIN_KEY), "accepted header long enough");
    const char *key = memmem(auth->data, auth->len, ADMIN_KEY, strlen(ADMIN_KEY));
    require(key != NULL, "accepted header holds the key");
    for (const char *p = auth->data + 6; p < key; p++)
        require(*p == ' ' || *p == '\t', "only blanks before the key");
    for (const char *p = key + strlen(ADMIN_KEY); p < auth->data + auth->len; p++)
        require(*p == ' ' || *p == '\t', "only blanks after the key");
}

static void check_content_length(const piece_t *value)
{
    uint64_t length;
    if (hvd_content_length_parse(value->data, value->len, &length) < 0)
        return;
    require(length <= INT64_MAX, "Content-Length at most INT64_MAX");
    /* The digits of the value, without blanks and leading zeros, print the
     * parsed number. */
    char digits[32], printed[32];
    size_t n = 0;
    for (size_t i = 0; i < value->len; i++) {
        char c = value->data[i];
        if (c == ' ' || c == '\t')
            continue;
        require(c >= '0' && c <= '9', "Content-Length digits only");
        if (n == 0 && c == '0')
            continue;
        require(n + 1 < sizeof(digits), "Content-Length has at most 19 significant digits");
        digits[n++] = c;
    }
    digits[n] = '\0';
    snprintf(printed, sizeof(printed), "%" PRIu64, length);
    require(strcmp(n ? digits : "0", printed) == 0, "Content-Length value exact");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    hvd_http_method_t method = data[0] == 'G' ? HVD_METHOD_GET
                             : data[0] == 'P' ? HVD_METHOD_POST : HVD_METHOD_OTHER;
    /* Pieces point into a heap copy, so ASan reports reads past the input. */
    char *copy = malloc(size - 1 ? size - 1 : 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, size - 1);
    piece_t pieces[3 + HVD_QUERY_MAX_PARAMS + 8];
    int count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size - 1 && count < (int)(sizeof(pieces) / sizeof(pieces[0])); i++) {
        if (i == size - 1 || copy[i] == '\n') {
            pieces[count].data = copy + start;
            pieces[count].len = i - start;
            count++;
            start = i + 1;
        }
    }
    while (count < 3) {
        pieces[count].data = copy + (size - 1);
        pieces[count].len = 0;
        count++;
    }

    hvd_query_t *q = malloc(sizeof(*q));
    if (!q) {
        free(copy);
        return 0;
    }
    hvd_query_init(q);
    for (int i = 3; i < count; i++)
        hvd_query_add(q, pieces[i].data, pieces[i].len);
    check_query(q, pieces + 3, count - 3);
    check_upgrade(&pieces[0], q);
    int authorized = hvd_admin_authorized(pieces[1].data, pieces[1].len, ADMIN_KEY);
    check_route(method, &pieces[0], q, authorized);
    check_route(method, &pieces[0], q, 1);
    check_authorization(&pieces[1]);
    check_content_length(&pieces[2]);
    free(q);
    free(copy);
    return 0;
}
