/*
 * Plain HTTP on the WebSocket port: GET /health, GET /metrics (Prometheus
 * text format) and the dead-letter admin interface under /admin/dlq,
 * guarded by the admin key as "Authorization: Bearer KEY".
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "hiventd.h"
#include "log.h"

typedef struct http_req {
    hvd_http_method_t method;
    int ready;
    int close_after;            /* close the connection once the response is written */
    unsigned status;
    const char *content_type;
    const char *allow;          /* value of an Allow header, sent with 405 */
    hv_buf_t body;              /* LWS_PRE bytes of headroom, then the body */
    /* The request as parsed while its headers are at hand: 0 and @parsed,
     * or the error status and message. */
    unsigned parse_status;
    char parse_error[512];
    hvd_http_request_t parsed;
    hvd_query_t query;          /* parsed.service points into it */
} http_req_t;

static void req_free(void **state)
{
    http_req_t *req = *state;
    if (req) {
        hv_buf_free(&req->body);
        free(req);
        *state = NULL;
    }
}

static int out_puts(http_req_t *req, const char *s)
{
    return hv_buf_puts(&req->body, s);
}

static int out_printf(http_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Formats straight into the response body, growing it as needed, so long
 * values such as dead-lettered events are never cut short. */
static int out_printf(http_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || hv_buf_reserve(&req->body, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)req->body.data + req->body.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    req->body.len += (size_t)n;
    return 0;
}

/* Appends @s as a JSON string; bytes of invalid UTF-8 become '?'. */
static void json_string(http_req_t *req, const char *s)
{
    int valid = hv_utf8_valid(s, strlen(s));
    hv_buf_append(&req->body, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            hv_buf_append(&req->body, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            hv_buf_append(&req->body, esc, 6);
        } else if (*p >= 0x80 && !valid) {
            hv_buf_append(&req->body, "?", 1);
        } else {
            hv_buf_append(&req->body, p, 1);
        }
    }
    hv_buf_append(&req->body, "\"", 1);
}

/* Appends @s as a Prometheus label value. */
static void label_value(http_req_t *req, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            out_puts(req, "\\\\");
        else if (*p == '"')
            out_puts(req, "\\\"");
        else if (*p == '\n')
            out_puts(req, "\\n");
        else
            hv_buf_append(&req->body, p, 1);
    }
}

static void respond(http_req_t *req, unsigned status, const char *content_type)
{
    req->status = status;
    req->content_type = content_type;
    req->ready = 1;
}

static void respond_error(http_req_t *req, unsigned status, const char *message)
{
    req->body.len = LWS_PRE;
    out_puts(req, "{\"error\":");
    json_string(req, message);
    out_puts(req, "}\n");
    respond(req, status, "application/json");
}

/* ---- /health ---- */

static void count_connections(const hvd_server_t *srv, int *producers, int *consumers)
{
    for (const hvd_conn_t *c = srv->conns; c; c = c->all_next) {
        if (c->kind == HVD_CONN_CONSUMER)
            (*consumers)++;
        else
            (*producers)++;
    }
}

static void health(hvd_server_t *srv, http_req_t *req)
{
    int producers = 0, consumers = 0;
    count_connections(srv, &producers, &consumers);
    out_printf(req, "{\"status\":\"ok\",\"store\":\"%s\",\"connections\":{\"producer\":%d,"
               "\"consumer\":%d},\"store_outstanding\":%d,\"services\":[",
               srv->store->ops->name, producers, consumers,
               hvd_committer_outstanding(srv->committer));
    for (hvd_service_t *s = srv->services; s; s = s->next) {
        long pending = 0;
        for (int p = 0; p < s->partition_count; p++)
            pending += s->partitions[p].count;
        out_puts(req, s == srv->services ? "{\"name\":" : ",{\"name\":");
        json_string(req, s->name);
        out_printf(req, ",\"partition_count\":%d,\"pending\":%ld,\"topics\":[",
                   s->partition_count, pending);
        for (int i = 0; i < s->topic_count; i++) {
            if (i)
                out_puts(req, ",");
            json_string(req, s->topics[i]);
        }
        out_puts(req, "],\"consumers\":[");
        for (hvd_consumer_t *c = s->members; c; c = c->next) {
            out_printf(req, "%s{\"id\":%" PRId64 ",\"conn\":%" PRIu64 ",\"name\":",
                       c == s->members ? "" : ",", c->id, c->conn->id);
            json_string(req, c->conn->name ? c->conn->name : "");
            out_printf(req, ",\"ack\":%s,\"inflight\":%d,\"partitions\":[",
                       c->ack ? "true" : "false", c->inflight);
            for (int i = 0; i < c->owned_count; i++)
                out_printf(req, "%s%d", i ? "," : "", c->owned[i]);
            out_puts(req, "]}");
        }
        out_puts(req, "]}");
    }
    out_puts(req, "]}\n");
    respond(req, 200, "application/json");
}

/* ---- /metrics ---- */

static void metric_head(http_req_t *req, const char *name, const char *type, const char *help)
{
    out_printf(req, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void service_counter(hvd_server_t *srv, http_req_t *req, const char *name,
                            const char *help, size_t offset)
{
    metric_head(req, name, "counter", help);
    for (hvd_service_t *s = srv->services; s; s = s->next) {
        uint64_t v = *(const uint64_t *)((const char *)&s->stats + offset);
        out_printf(req, "%s{service=\"", name);
        label_value(req, s->name);
        out_printf(req, "\"} %" PRIu64 "\n", v);
    }
}

static void metrics(hvd_server_t *srv, http_req_t *req)
{
    int producers = 0, consumers = 0;
    count_connections(srv, &producers, &consumers);
    metric_head(req, "hivent_connections", "gauge", "Open WebSocket connections.");
    out_printf(req, "hivent_connections{kind=\"producer\"} %d\n", producers);
    out_printf(req, "hivent_connections{kind=\"consumer\"} %d\n", consumers);
    metric_head(req, "hivent_connections_accepted_total", "counter",
                "WebSocket connections accepted since start.");
    out_printf(req, "hivent_connections_accepted_total %" PRIu64 "\n", srv->connections_total);
    metric_head(req, "hivent_connections_rejected_total", "counter",
                "Upgrades rejected for a bad API key or the connection limit.");
    out_printf(req, "hivent_connections_rejected_total %" PRIu64 "\n",
               srv->connections_rejected);
    metric_head(req, "hivent_emits_total", "counter", "event:emit requests by result.");
    out_printf(req, "hivent_emits_total{result=\"stored\"} %" PRIu64 "\n", srv->emits_accepted);
    out_printf(req, "hivent_emits_total{result=\"duplicate\"} %" PRIu64 "\n",
               srv->emits_duplicate);
    out_printf(req, "hivent_emits_total{result=\"rejected\"} %" PRIu64 "\n",
               srv->emits_rejected);

    service_counter(srv, req, "hivent_events_emitted_total",
                    "Events stored for the service's queues.",
                    offsetof(hvd_service_stats_t, emitted));
    service_counter(srv, req, "hivent_events_delivered_total",
                    "event:received pushes, redeliveries included.",
                    offsetof(hvd_service_stats_t, delivered));
    service_counter(srv, req, "hivent_events_acknowledged_total", "event:ack requests that "
                    "completed a pending event.", offsetof(hvd_service_stats_t, acknowledged));
    service_counter(srv, req, "hivent_events_dead_lettered_total",
                    "Events moved to a dead-letter queue.",
                    offsetof(hvd_service_stats_t, dead_lettered));
    service_counter(srv, req, "hivent_events_skipped_total",
                    "Events completed unsent because of a consumer version filter.",
                    offsetof(hvd_service_stats_t, skipped));

    metric_head(req, "hivent_consumers", "gauge", "Live consumers per service.");
    for (hvd_service_t *s = srv->services; s; s = s->next) {
        out_puts(req, "hivent_consumers{service=\"");
        label_value(req, s->name);
        out_printf(req, "\"} %d\n", s->member_count);
    }
    metric_head(req, "hivent_queue_depth", "gauge",
                "Unfinished events per partition queue, in flight included.");
    for (hvd_service_t *s = srv->services; s; s = s->next) {
        for (int p = 0; p < s->partition_count; p++) {
            out_puts(req, "hivent_queue_depth{service=\"");
            label_value(req, s->name);
            out_printf(req, "\",partition=\"%d\"} %d\n", p, s->partitions[p].count);
        }
    }

    hvd_commit_stats_t st;
    hvd_committer_stats(srv->committer, &st);
    metric_head(req, "hivent_store_commit_seconds", "histogram",
                "Duration of store transactions (group commits).");
    for (int i = 0; i < 8; i++)
        out_printf(req, "hivent_store_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                   hvd_commit_bucket_bounds_s[i], st.latency_buckets[i]);
    out_printf(req, "hivent_store_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", st.commits);
    out_printf(req, "hivent_store_commit_seconds_sum %.6f\n", st.latency_sum_s);
    out_printf(req, "hivent_store_commit_seconds_count %" PRIu64 "\n", st.commits);
    metric_head(req, "hivent_store_requests_total", "counter", "Write requests committed.");
    out_printf(req, "hivent_store_requests_total %" PRIu64 "\n", st.jobs);
    metric_head(req, "hivent_store_commit_failures_total", "counter",
                "Transactions that failed and were retried request by request.");
    out_printf(req, "hivent_store_commit_failures_total %" PRIu64 "\n", st.failures);
    metric_head(req, "hivent_store_events_pruned_total", "counter",
                "Event bodies deleted by retention pruning (--retention).");
    out_printf(req, "hivent_store_events_pruned_total %" PRIu64 "\n", st.events_pruned);
    metric_head(req, "hivent_store_events", "gauge", "Event bodies in the store.");
    out_printf(req, "hivent_store_events %" PRId64 "\n", st.events_stored);
    respond(req, 200, "text/plain; version=0.0.4");
}

/* ---- /admin/dlq ---- */

typedef struct dlq_ctx {
    http_req_t *req;
    const char *service;
    int count;
} dlq_ctx_t;

static int dlq_row(void *ctx, int64_t id, int partition, const char *uuid, const void *body,
                   size_t body_size, const char *reason)
{
    dlq_ctx_t *d = ctx;
    char err[128];
    char *json = hivent_msgpack_to_json(body, body_size, err, sizeof(err));
    char queue[300];
    snprintf(queue, sizeof(queue), "%s:%d:dead_letter", d->service, partition);
    out_puts(d->req, d->count++ ? ",{\"queue\":" : "{\"queue\":");
    json_string(d->req, queue);
    out_printf(d->req, ",\"id\":%" PRId64 ",\"event\":%s,\"reason\":", id, json ? json : "null");
    json_string(d->req, reason ? reason : "");
    out_puts(d->req, "}");
    if (!json)
        hvd_warn("admin: dead letter %" PRId64 " (event %s) is not valid MessagePack: %s", id,
                 uuid, err);
    hivent_free(json);
    return 0;
}

typedef struct replayed {
    struct replayed *next;
    int partition;
    int64_t seq;
    char uuid[64];
    hvd_body_t *body;
} replayed_t;

typedef struct replay_ctx {
    hvd_service_t *svc;
    replayed_t *head, **tail;
} replay_ctx_t;

static int64_t replay_row(void *ctx, int partition, const char *uuid, const void *body,
                          size_t body_size)
{
    replay_ctx_t *r = ctx;
    if (partition < 0 || partition >= r->svc->partition_count || !uuid || strlen(uuid) >= 64)
        return -1;
    replayed_t *item = calloc(1, sizeof(*item));
    if (!item)
        return -1;
    item->body = hvd_body_parse(body, body_size);
    if (!item->body) {
        hvd_err("admin: dead letter of event %s is not a valid event; replay aborted", uuid);
        free(item);
        return -1;
    }
    item->partition = partition;
    item->seq = r->svc->partitions[partition].next_seq++;
    snprintf(item->uuid, sizeof(item->uuid), "%s", uuid);
    *r->tail = item;
    r->tail = &item->next;
    return item->seq;
}

static void replay(hvd_server_t *srv, http_req_t *req, hvd_service_t *svc, int partition)
{
    replay_ctx_t r = {svc, NULL, &r.head};
    int64_t n = srv->store->ops->dlq_replay(srv->store, svc->name, partition, replay_row, &r);
    for (replayed_t *item = r.head, *next; item; item = next) {
        next = item->next;
        if (n >= 0 && hvd_partition_insert(srv, &svc->partitions[item->partition],
                                           item->seq, item->uuid, item->body) < 0)
            hvd_err("admin: out of memory queueing replayed event %s; it is delivered after "
                    "a restart", item->uuid);
        hvd_body_release(item->body);
        free(item);
    }
    if (n < 0) {
        hvd_err("admin: replay of %s dead letters failed: %s", svc->name,
                srv->store->ops->errmsg(srv->store));
        respond_error(req, 500, "replay failed; see the server log");
        return;
    }
    hvd_notice("admin: replayed %" PRId64 " dead letters of service %s", n, svc->name);
    hvd_service_pump(svc);
    out_printf(req, "{\"replayed\":%" PRId64 "}\n", n);
    respond(req, 200, "application/json");
}

static void admin(hvd_server_t *srv, http_req_t *req)
{
    const hvd_http_request_t *r = &req->parsed;
    hvd_service_t *svc = hvd_service_find(srv, r->service);
    if (!svc) {
        respond_error(req, 404, "unknown service");
        return;
    }
    if (r->route == HVD_ROUTE_DLQ_REPLAY) {
        replay(srv, req, svc, r->partition);
        return;
    }
    if (r->route == HVD_ROUTE_DLQ_PURGE) {
        int64_t n = srv->store->ops->dlq_purge(srv->store, svc->name, r->partition);
        if (n < 0) {
            hvd_err("admin: purge of %s dead letters failed: %s", svc->name,
                    srv->store->ops->errmsg(srv->store));
            respond_error(req, 500, "purge failed; see the server log");
            return;
        }
        hvd_notice("admin: purged %" PRId64 " dead letters of service %s", n, svc->name);
        out_printf(req, "{\"purged\":%" PRId64 "}\n", n);
        respond(req, 200, "application/json");
        return;
    }
    dlq_ctx_t d = {req, svc->name, 0};
    out_puts(req, "{\"events\":[");
    if (srv->store->ops->dlq_list(srv->store, svc->name, r->partition, r->limit, dlq_row,
                                  &d) < 0) {
        hvd_err("admin: listing %s dead letters failed: %s", svc->name,
                srv->store->ops->errmsg(srv->store));
        respond_error(req, 500, "listing failed; see the server log");
        return;
    }
    out_puts(req, "]}\n");
    respond(req, 200, "application/json");
}

/* Builds the response to the request parsed by begin_request(). */
static void route(hvd_server_t *srv, http_req_t *req)
{
    if (req->parse_status) {
        respond_error(req, req->parse_status, req->parse_error);
        req->allow = req->parsed.allow;
        return;
    }
    switch (req->parsed.route) {
    case HVD_ROUTE_HEALTH:
        health(srv, req);
        break;
    case HVD_ROUTE_METRICS:
        metrics(srv, req);
        break;
    default:
        admin(srv, req);
        break;
    }
}

static int partition_count_of(void *ctx, const char *service)
{
    hvd_service_t *svc = hvd_service_find(ctx, service);
    return svc ? svc->partition_count : -1;
}

/* Returns 1 when the request carries the admin key (or hiventd has none). */
static int check_admin_key(struct lws *wsi, const hvd_server_t *srv)
{
    char auth[HVD_QUERY_MAX_BYTES + 1];
    if (!srv->cfg->admin_key)
        return 1;
    int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
    return hvd_admin_authorized(n > 0 ? auth : NULL, n > 0 ? (size_t)n : 0,
                                srv->cfg->admin_key);
}

/* Reads Content-Length; returns 0 (with *@present and *@length set) or -1
 * when the header is not a plain decimal number. */
static int read_content_length(struct lws *wsi, int *present, uint64_t *length)
{
    char value[32];
    *present = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    *length = 0;
    if (!*present)
        return 0;
    int n = lws_hdr_copy(wsi, value, sizeof(value), WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n <= 0)
        return -1;
    return hvd_content_length_parse(value, (size_t)n, length);
}

static int begin_request(struct lws *wsi, void **state, const char *path, size_t path_len)
{
    hvd_server_t *srv = lws_context_user(lws_get_context(wsi));
    req_free(state);
    http_req_t *req = calloc(1, sizeof(*req));
    if (!req || hv_buf_reserve(&req->body, LWS_PRE + 4096) < 0) {
        free(req);
        return -1;
    }
    *state = req;
    req->body.len = LWS_PRE;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        req->method = HVD_METHOD_GET;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        req->method = HVD_METHOD_POST;
    else
        req->method = HVD_METHOD_OTHER;

    int has_length;
    uint64_t length;
    if (read_content_length(wsi, &has_length, &length) < 0) {
        /* lws sizes the body with atoll() of this header, which may not
         * match, so the connection closes after this response. */
        req->parse_status = 400;
        snprintf(req->parse_error, sizeof(req->parse_error),
                 "invalid Content-Length header; expected a decimal number of bytes");
        req->close_after = 1;
        route(srv, req);
        lws_callback_on_writable(wsi);
        return 0;
    }
    hvd_query_read(wsi, &req->query);
    req->parse_status = hvd_http_route(req->method, path, path ? path_len : 0, &req->query,
                                       check_admin_key(wsi, srv), partition_count_of, srv,
                                       &req->parsed, req->parse_error,
                                       sizeof(req->parse_error));

    /* With a Content-Length (even 0 on a POST) lws reports the end of the
     * body with LWS_CALLBACK_HTTP_BODY_COMPLETION, and the response is built
     * then.  libwebsockets 4.1.6 sends no completion for a PUT or PATCH
     * with Content-Length 0, so those are answered at once. */
    int body_follows = req->method != HVD_METHOD_GET && has_length &&
                       (req->method == HVD_METHOD_POST || length > 0);
    if (body_follows)
        return 0;
    route(srv, req);
    lws_callback_on_writable(wsi);
    return 0;
}

static int write_response(struct lws *wsi, void **state)
{
    http_req_t *req = *state;
    if (!req || !req->ready)
        return 0;
    unsigned char headers[LWS_PRE + 512];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof(headers) - 1;
    size_t size = req->body.len - LWS_PRE;
    if (lws_add_http_common_headers(wsi, req->status, req->content_type, size, &p, end) ||
        (req->allow && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                                   (const unsigned char *)req->allow,
                                                   (int)strlen(req->allow), &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        req_free(state);
        return -1;
    }
    int n = lws_write(wsi, req->body.data + LWS_PRE, size, LWS_WRITE_HTTP_FINAL);
    int close_after = req->close_after;
    req_free(state);
    if (n < (int)size || close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int hvd_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void **state,
                      void *in, size_t len)
{
    if (!state)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return begin_request(wsi, state, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (*state && !((http_req_t *)*state)->ready) {
            route(lws_context_user(lws_get_context(wsi)), *state);
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_response(wsi, state);
    case LWS_CALLBACK_CLOSED_HTTP:
        req_free(state);
        return 0;
    default:
        return 0;
    }
}
