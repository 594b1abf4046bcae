/*
 * faultc consume: one consumer instance that writes "C WALL_US CID UUID
 * PARTITION KEY" to --out for every event before acknowledging it, so a
 * line exists for every event this instance processed, also after
 * kill -9.  With --sleep-ms it sleeps after writing, as a slow consumer.
 * Notices are taken with hivent_consumer_next() and events acknowledged
 * with hivent_consumer_ack().
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

struct consumer_ctx {
    int out;
    long sleep_ms;
    long processed;
};

/* Records @event; the caller acknowledges it afterwards. */
static void process_event(struct consumer_ctx *ctx, const hivent_event_t *event)
{
    const char *cid = hivent_event_cid(event);
    const char *uuid = hivent_event_uuid(event);
    const char *key = hivent_event_key(event);
    out_line(ctx->out, "C %lld %s %s %d %s", (long long)wall_us(), cid ? cid : "-",
             uuid ? uuid : "-", hivent_event_partition(event), key ? key : "-");
    ctx->processed++;
    if (ctx->sleep_ms > 0)
        sleep_ms((int)ctx->sleep_ms);
}

static void on_state(void *handle, hivent_state_t state, int attempt, int next_ms,
                     hivent_err_t reason, const char *reason_str, void *opaque)
{
    (void)handle;
    struct consumer_ctx *ctx = opaque;
    out_line(ctx->out, "S %lld %s %d %d %s %s", (long long)wall_us(), hivent_state_name(state),
             attempt, next_ms, hivent_err_name(reason), reason_str ? reason_str : "");
}

static void on_error(void *handle, hivent_err_t err, const char *errstr, void *opaque)
{
    (void)handle;
    struct consumer_ctx *ctx = opaque;
    out_line(ctx->out, "E %lld %s %s", (long long)wall_us(), hivent_err_name(err),
             errstr ? errstr : "");
}

int cmd_consume(int argc, char **argv)
{
    int port = (int)opt_long(argc, argv, "--port", 0);
    const char *service = opt_str(argc, argv, "--service", NULL);
    const char *out_path = opt_str(argc, argv, "--out", NULL);
    const char *topic = opt_str(argc, argv, "--topic", "fault.run");
    const char *name = opt_str(argc, argv, "--name", NULL);
    const char *prefetch = opt_str(argc, argv, "--prefetch", "100");
    long partitions = opt_long(argc, argv, "--partitions", 8);
    long heartbeat = opt_long(argc, argv, "--heartbeat", 30000);
    if (port <= 0 || !service || !out_path || partitions <= 0) {
        fprintf(stderr, "consume: --port, --service and --out are required\n");
        return 2;
    }
    install_stop_handler();
    struct consumer_ctx ctx = {.out = open_out(out_path),
                               .sleep_ms = opt_long(argc, argv, "--sleep-ms", 0)};
    hivent_conf_t *conf = fault_conf(port, (int)heartbeat);
    conf_put(conf, "consumer.ack", "true");
    conf_put(conf, "consumer.prefetch", prefetch);
    if (name)
        conf_put(conf, "consumer.name", name);
    char err[512];
    hivent_consumer_t *cons =
        hivent_consumer_new(conf, topic, service, (int)partitions, err, sizeof err);
    if (!cons) {
        fprintf(stderr, "hivent_consumer_new failed: %s\n", err);
        hivent_conf_destroy(conf);
        return 2;
    }
    /* hivent_consumer_poll() keeps dispatching while deliveries keep
     * arriving, so a slow consumer would never get back to check
     * stop_requested; take one notice at a time instead. */
    int joined = 0;
    while (!stop_requested) {
        hivent_notice_t *n = hivent_consumer_next(cons, 100);
        if (n && hivent_notice_type(n) == HIVENT_NOTICE_EVENT) {
            process_event(&ctx, hivent_notice_event(n));
            hivent_err_t rc = hivent_consumer_ack(cons, hivent_notice_event(n));
            if (rc != HIVENT_OK)
                out_line(ctx.out, "A %lld %s", (long long)wall_us(), hivent_err_name(rc));
        } else if (n && hivent_notice_type(n) == HIVENT_NOTICE_STATE) {
            on_state(cons, hivent_notice_state(n), hivent_notice_attempt(n),
                     hivent_notice_next_attempt_ms(n), hivent_notice_err(n),
                     hivent_notice_errstr(n), &ctx);
        } else if (n && hivent_notice_type(n) == HIVENT_NOTICE_ERROR) {
            on_error(cons, hivent_notice_err(n), hivent_notice_errstr(n), &ctx);
        } else if (n && hivent_notice_type(n) == HIVENT_NOTICE_LOG) {
            fprintf(stderr, "hivent [%s] %s\n", hivent_notice_log_facility(n),
                    hivent_notice_log_message(n));
        }
        hivent_notice_destroy(n);
        if (!joined && hivent_consumer_state(cons) == HIVENT_STATE_CONNECTED) {
            joined = 1;
            printf("connected\n");
            fflush(stdout);
        }
    }
    hivent_consumer_destroy(cons);
    out_line(ctx.out, "X processed=%ld", ctx.processed);
    return 0;
}
