/* Asynchronous emits with a bounded number in flight, for emit and replay. */
#include <stdarg.h>
#include <string.h>

#include "sender.h"

#define POLL_INTERVAL_MS 100

static void set_fatal(struct cli_sender *s, hivent_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_fatal(struct cli_sender *s, hivent_err_t err, const char *fmt, ...)
{
    if (s->fatal != HIVENT_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fatal_msg, sizeof s->fatal_msg, fmt, ap);
    va_end(ap);
    s->fatal = err;
}

static const char *text_or(const char *text, const char *fallback)
{
    return text && text[0] ? text : fallback;
}

static void unlink_pending(struct cli_pending *p)
{
    p->prev->next = p->next;
    p->next->prev = p->prev;
    p->prev = p->next = p;
}

static void on_delivery(hivent_client_t *client, hivent_err_t err, const char *errstr,
                        const hivent_event_t *event, void *msg_opaque, void *opaque)
{
    struct cli_sender *s = opaque;
    struct cli_pending *p = msg_opaque;

    unlink_pending(p);
    s->in_flight--;
    s->last_progress_ms = cli_now_ms();
    /* After a fatal error, failed emits report that root cause. */
    if (err != HIVENT_OK && s->fatal != HIVENT_OK)
        s->on_delivery(s->ctx, p, s->fatal, s->fatal_msg, event);
    else
        s->on_delivery(s->ctx, p, err, text_or(errstr, hivent_err_str(err)), event);
}

static void on_state(void *handle, hivent_state_t state, int attempt, int next_attempt_ms,
                     hivent_err_t reason, const char *reason_str, void *opaque)
{
    struct cli_sender *s = opaque;
    const char *reason_text = text_or(reason_str, hivent_err_str(reason));

    if (reason == HIVENT_ERR_AUTH) {
        set_fatal(s, HIVENT_ERR_AUTH, "cannot connect to %s: %s", s->server, reason_text);
        return;
    }
    switch (state) {
    case HIVENT_STATE_CONNECTED:
        cli_info(s->opts, 1, "connected to %s", s->server);
        break;
    case HIVENT_STATE_BACKOFF:
        cli_info(s->opts, 1,
                 "connection to %s failed (%s); attempt %d, "
                 "retrying in %d ms",
                 s->server, reason_text, attempt, next_attempt_ms);
        break;
    case HIVENT_STATE_FAILED:
        set_fatal(s, reason != HIVENT_OK ? reason : HIVENT_ERR_FAILED,
                  "cannot connect to %s after %d attempts: %s", s->server, attempt,
                  reason_text);
        break;
    default:
        break;
    }
}

static void on_error(void *handle, hivent_err_t err, const char *errstr, void *opaque)
{
    struct cli_sender *s = opaque;
    const char *reason_text = text_or(errstr, hivent_err_str(err));

    if (err == HIVENT_ERR_AUTH)
        set_fatal(s, err, "cannot connect to %s: %s", s->server, reason_text);
    else if (err == HIVENT_ERR_FAILED)
        set_fatal(s, err, "cannot connect to %s: %s", s->server, reason_text);
    else
        cli_warn("%s (%s)", reason_text, hivent_err_name(err));
}

static void on_log(void *handle, int level, const char *facility, const char *message,
                   void *opaque)
{
    static const char *const names[] = {"emergency", "alert",  "critical", "error",
                                        "warning",   "notice", "info",     "debug"};
    const char *name = level >= 0 && level <= 7 ? names[level] : "log";
    fprintf(stderr, "%s: [%s] %s: %s\n", cli_program, text_or(facility, "-"), name,
            text_or(message, ""));
}

int cli_sender_open(struct cli_sender *s, struct cli_config *cfg,
                    const struct cli_options *opts, cli_delivery_fn *on_delivery_fn,
                    cli_tick_fn *on_tick, void *ctx)
{
    char host[256], port[32], errstr[512];

    memset(s, 0, sizeof *s);
    s->opts = opts;
    s->on_delivery = on_delivery_fn;
    s->on_tick = on_tick;
    s->ctx = ctx;
    s->pending.prev = s->pending.next = &s->pending;
    cli_config_get(cfg->conf, "server.host", host, sizeof host);
    cli_config_get(cfg->conf, "server.port", port, sizeof port);
    snprintf(s->server, sizeof s->server, "%s:%s", host, port);

    hivent_conf_set_delivery_cb(cfg->conf, on_delivery);
    hivent_conf_set_state_cb(cfg->conf, on_state);
    hivent_conf_set_error_cb(cfg->conf, on_error);
    hivent_conf_set_log_cb(cfg->conf, on_log);
    hivent_conf_set_opaque(cfg->conf, s);
    s->client = hivent_client_new(cfg->conf, errstr, sizeof errstr);
    if (!s->client) {
        cli_error("cannot create the client: %s", errstr);
        return CLI_EXIT_USAGE;
    }
    cfg->conf = NULL; /* owned by the client now */
    s->last_progress_ms = cli_now_ms();
    return CLI_EXIT_OK;
}

hivent_err_t cli_sender_submit(struct cli_sender *s, struct cli_pending *pending,
                               const char *name, const void *payload, size_t payload_size,
                               int64_t version, const char *cid, const char *key, char *errstr,
                               size_t errstr_size)
{
    for (;;) {
        if (s->fatal != HIVENT_OK) {
            snprintf(errstr, errstr_size, "%s", s->fatal_msg);
            return s->fatal;
        }
        hivent_err_t err = hivent_emit_async(s->client, name, payload, payload_size, version,
                                             cid, key, pending, errstr, errstr_size);
        if (err == HIVENT_OK)
            break;
        /* A full library queue drains as reports arrive; wait for one. */
        if (err != HIVENT_ERR_QUEUE_FULL || s->in_flight == 0)
            return err;
        cli_sender_wait(s, s->in_flight - 1);
    }
    if (s->in_flight == 0)
        s->last_progress_ms = cli_now_ms();
    pending->prev = s->pending.prev;
    pending->next = &s->pending;
    s->pending.prev->next = pending;
    s->pending.prev = pending;
    s->in_flight++;
    hivent_client_poll(s->client, 0);
    return HIVENT_OK;
}

hivent_err_t cli_sender_wait(struct cli_sender *s, int max_in_flight)
{
    while (s->fatal == HIVENT_OK && s->in_flight > max_in_flight) {
        int64_t idle_ms = cli_now_ms() - s->last_progress_ms;
        if (idle_ms >= s->opts->timeout_ms) {
            set_fatal(s, HIVENT_ERR_TIMED_OUT,
                      "no delivery report from %s for %lld ms with %d events "
                      "in flight",
                      s->server, (long long)idle_ms, s->in_flight);
            break;
        }
        hivent_client_poll(s->client, POLL_INTERVAL_MS);
        if (s->on_tick)
            s->on_tick(s->ctx);
    }
    return s->fatal;
}

void cli_sender_close(struct cli_sender *s)
{
    if (!s->client)
        return;
    /* Destroy runs the delivery callback for every emit it fails. */
    hivent_client_destroy(s->client);
    s->client = NULL;
    while (s->pending.next != &s->pending) {
        struct cli_pending *p = s->pending.next;
        unlink_pending(p);
        s->in_flight--;
        if (s->fatal != HIVENT_OK)
            s->on_delivery(s->ctx, p, s->fatal, s->fatal_msg, NULL);
        else
            s->on_delivery(s->ctx, p, HIVENT_ERR_DESTROYED,
                           "the client closed before the server replied", NULL);
    }
}
