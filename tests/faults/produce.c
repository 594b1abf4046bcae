/*
 * faultc produce: a stream of asynchronous emits with cid "c-SEQ" and key
 * "kSEQ%KEYS".  Every outcome is written to --out: one "D SEQ RC UUID"
 * line per delivery report, "R SEQ RC" for an emit refused at the call,
 * "S" lines for state notices and "E" lines for error notices.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

struct producer {
    int out;
    long ok;
    long failed;
    long refused;
    long completed;
};

static void on_delivery(hivent_client_t *c, hivent_err_t err, const char *errstr,
                        const hivent_event_t *event, void *msg_opaque, void *opaque)
{
    (void)c;
    struct producer *p = opaque;
    long seq = (long)(uintptr_t)msg_opaque - 1;
    const char *uuid = event ? hivent_event_uuid(event) : NULL;
    if (err == HIVENT_OK) {
        p->ok++;
        out_line(p->out, "D %ld 0 %s", seq, uuid ? uuid : "-");
    } else {
        p->failed++;
        out_line(p->out, "D %ld %d %s %s", seq, (int)err, hivent_err_name(err),
                 errstr ? errstr : "");
    }
    p->completed++;
    if (p->completed % 1000 == 0) {
        printf("progress %ld %ld\n", p->ok, p->failed);
        fflush(stdout);
    }
}

static void on_state(void *handle, hivent_state_t state, int attempt, int next_ms,
                     hivent_err_t reason, const char *reason_str, void *opaque)
{
    (void)handle;
    struct producer *p = opaque;
    out_line(p->out, "S %lld %s %d %d %s %s", (long long)wall_us(), hivent_state_name(state),
             attempt, next_ms, hivent_err_name(reason), reason_str ? reason_str : "");
}

static void on_error(void *handle, hivent_err_t err, const char *errstr, void *opaque)
{
    (void)handle;
    struct producer *p = opaque;
    out_line(p->out, "E %lld %s %s", (long long)wall_us(), hivent_err_name(err),
             errstr ? errstr : "");
}

int cmd_produce(int argc, char **argv)
{
    int port = (int)opt_long(argc, argv, "--port", 0);
    long count = opt_long(argc, argv, "--count", 0);
    const char *out_path = opt_str(argc, argv, "--out", NULL);
    long keys = opt_long(argc, argv, "--keys", 16);
    long pad = opt_long(argc, argv, "--pad", 64);
    long window = opt_long(argc, argv, "--window", 2000);
    long interval_ms = opt_long(argc, argv, "--interval-ms", 0);
    long heartbeat = opt_long(argc, argv, "--heartbeat", 30000);
    long flush_ms = opt_long(argc, argv, "--flush-ms", 120000);
    const char *name = opt_str(argc, argv, "--name", "fault.run");
    if (port <= 0 || count <= 0 || !out_path || keys <= 0 || pad < 0 || pad > 1 << 20 ||
        window <= 0) {
        fprintf(stderr, "produce: --port, --count and --out are required and must be valid\n");
        return 2;
    }
    install_stop_handler();
    struct producer p = {.out = open_out(out_path)};
    hivent_conf_t *conf = fault_conf(port, (int)heartbeat);
    conf_put(conf, "flush_timeout", "1000");
    hivent_conf_set_delivery_cb(conf, on_delivery);
    hivent_conf_set_state_cb(conf, on_state);
    hivent_conf_set_error_cb(conf, on_error);
    hivent_conf_set_opaque(conf, &p);
    char err[512];
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    if (!c) {
        fprintf(stderr, "hivent_client_new failed: %s\n", err);
        hivent_conf_destroy(conf);
        return 2;
    }

    size_t cap = (size_t)pad + 64;
    unsigned char *payload = malloc(cap);
    if (!payload)
        return 2;
    int64_t started = mono_ms();
    for (long seq = 0; seq < count && !stop_requested; seq++) {
        while (hivent_client_outstanding(c) >= window && !stop_requested)
            hivent_client_poll(c, 10);
        size_t len = pack_payload(payload, cap, (uint32_t)seq, (size_t)pad);
        char cid[32], key[32];
        snprintf(cid, sizeof cid, "c-%ld", seq);
        snprintf(key, sizeof key, "k%ld", seq % keys);
        hivent_err_t rc = hivent_emit_async(c, name, payload, len, 1, cid, key,
                                            (void *)(uintptr_t)(seq + 1), err, sizeof err);
        if (rc != HIVENT_OK) {
            p.refused++;
            out_line(p.out, "R %ld %d %s %s", seq, (int)rc, hivent_err_name(rc), err);
        }
        if (seq % 64 == 0)
            hivent_client_poll(c, 0);
        /* Pace by the clock: poll returns early whenever a notice arrives. */
        int64_t next_emit = started + (seq + 1) * interval_ms;
        while (interval_ms > 0 && mono_ms() < next_emit && !stop_requested)
            hivent_client_poll(c, (int)(next_emit - mono_ms()));
    }
    int64_t emitted = mono_ms();
    while (hivent_client_outstanding(c) > 0 && mono_ms() - emitted < flush_ms && !stop_requested)
        hivent_client_poll(c, 50);
    hivent_client_poll(c, 0);
    int left = hivent_client_outstanding(c);
    hivent_client_destroy(c);
    out_line(p.out, "X ok=%ld failed=%ld refused=%ld outstanding_at_destroy=%d ms=%lld", p.ok,
             p.failed, p.refused, left, (long long)(mono_ms() - started));
    printf("done ok=%ld failed=%ld refused=%ld\n", p.ok, p.failed, p.refused);
    fflush(stdout);
    free(payload);
    return 0;
}
