/* Asynchronous emits with a bounded number in flight, for emit and replay. */
#ifndef HIVENT_CLI_SENDER_H
#define HIVENT_CLI_SENDER_H

#include "cli.h"

/* One emit awaiting its delivery report.  Callers embed it in their own
 * record and recover the record from the pointer in the delivery. */
struct cli_pending {
    struct cli_pending *prev, *next;
};

/* Receives the delivery report of @pending.  @event is the published event
 * on success, the event as sent on failure, or NULL. */
typedef void cli_delivery_fn(void *ctx, struct cli_pending *pending, hivent_err_t err,
                             const char *errstr, const hivent_event_t *event);
/* Called after every poll while waiting, to redraw progress. */
typedef void cli_tick_fn(void *ctx);

struct cli_sender {
    hivent_client_t *client;
    const struct cli_options *opts;
    cli_delivery_fn *on_delivery;
    cli_tick_fn *on_tick;
    void *ctx;
    struct cli_pending pending; /* list head of emits awaiting a report */
    int in_flight;
    hivent_err_t fatal; /* error that stops all emits, or HIVENT_OK */
    char fatal_msg[768];
    int64_t last_progress_ms; /* last submit into an idle client, or report */
    char server[300];         /* "host:port" for messages */
};

/* Creates the client from @cfg (taking its conf).  Returns CLI_EXIT_OK or
 * an exit status after printing the error. */
int cli_sender_open(struct cli_sender *s, struct cli_config *cfg,
                    const struct cli_options *opts, cli_delivery_fn *on_delivery,
                    cli_tick_fn *on_tick, void *ctx);

/* Queues one emit; @pending must stay valid until its delivery report.
 * Returns HIVENT_OK, or the error of an emit that was not queued (then no
 * report follows) with a message in @errstr. */
hivent_err_t cli_sender_submit(struct cli_sender *s, struct cli_pending *pending,
                               const char *name, const void *payload, size_t payload_size,
                               int64_t version, const char *cid, const char *key, char *errstr,
                               size_t errstr_size);

/* Dispatches delivery reports until at most @max_in_flight emits are
 * outstanding.  Returns HIVENT_OK, or s->fatal once the connection failed,
 * the key was rejected, or no report came for the --timeout interval. */
hivent_err_t cli_sender_wait(struct cli_sender *s, int max_in_flight);

/* Destroys the client.  Emits still outstanding are reported as failed. */
void cli_sender_close(struct cli_sender *s);

#endif
