/*
 * faultc failfast and faultc destroy: the client's end of life against a
 * real hiventd.  Both print "RESULT" lines with their figures and one
 * "CHECK FAILED" line per failed check, and exit 1 when a check failed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "common.h"

static int failed_checks;

#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            failed_checks++;                                                               \
            printf("CHECK FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
            fflush(stdout);                                                                \
        }                                                                                  \
    } while (0)

struct tally {
    atomic_int errors;
    hivent_err_t first_error;
    char first_errstr[256];
    atomic_int deliveries_ok;
    atomic_int deliveries_failed;
    atomic_int deliveries_failed_with_text;
    int failure_codes[32];
    atomic_int destroyed;
    atomic_int callbacks_after_destroy;
};

static void note_callback(struct tally *t)
{
    if (atomic_load(&t->destroyed))
        atomic_fetch_add(&t->callbacks_after_destroy, 1);
}

static void tally_delivery(hivent_client_t *c, hivent_err_t err, const char *errstr,
                           const hivent_event_t *event, void *msg_opaque, void *opaque)
{
    (void)c;
    (void)event;
    (void)msg_opaque;
    struct tally *t = opaque;
    note_callback(t);
    if (err == HIVENT_OK) {
        atomic_fetch_add(&t->deliveries_ok, 1);
        return;
    }
    atomic_fetch_add(&t->deliveries_failed, 1);
    if (errstr && errstr[0])
        atomic_fetch_add(&t->deliveries_failed_with_text, 1);
    int slot = -err;
    if (slot > 0 && slot < 32)
        t->failure_codes[slot]++;
}

static void tally_error(void *handle, hivent_err_t err, const char *errstr, void *opaque)
{
    (void)handle;
    struct tally *t = opaque;
    note_callback(t);
    if (atomic_fetch_add(&t->errors, 1) == 0) {
        t->first_error = err;
        snprintf(t->first_errstr, sizeof t->first_errstr, "%s", errstr ? errstr : "");
    }
}

static void tally_state(void *handle, hivent_state_t state, int attempt, int next_ms,
                        hivent_err_t reason, const char *reason_str, void *opaque)
{
    (void)handle;
    (void)state;
    (void)attempt;
    (void)next_ms;
    (void)reason;
    (void)reason_str;
    note_callback(opaque);
}

static void print_failure_codes(const struct tally *t)
{
    printf("RESULT failure_codes=");
    for (int i = 1; i < 32; i++)
        if (t->failure_codes[i])
            printf("%s:%d ", hivent_err_name(-i), t->failure_codes[i]);
    printf("\n");
}

static hivent_client_t *new_tallied_client(hivent_conf_t *conf, struct tally *t)
{
    hivent_conf_set_delivery_cb(conf, tally_delivery);
    hivent_conf_set_error_cb(conf, tally_error);
    hivent_conf_set_state_cb(conf, tally_state);
    hivent_conf_set_opaque(conf, t);
    char err[512];
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    if (!c) {
        printf("CHECK FAILED hivent_client_new: %s\n", err);
        hivent_conf_destroy(conf);
    }
    return c;
}

static int poll_until_state(hivent_client_t *c, hivent_state_t state, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    while (hivent_client_state(c) != state && mono_ms() < deadline)
        hivent_client_poll(c, 20);
    hivent_client_poll(c, 0);
    return hivent_client_state(c) == state;
}

int cmd_failfast(int argc, char **argv)
{
    int port = (int)opt_long(argc, argv, "--port", 0);
    int pending = (int)opt_long(argc, argv, "--pending", 20);
    if (port <= 0 || pending <= 0 || pending > 10000) {
        fprintf(stderr, "failfast: --port is required\n");
        return 2;
    }
    struct tally t;
    memset(&t, 0, sizeof t);
    hivent_conf_t *conf = fault_conf(port, 1000);
    conf_put(conf, "max_reconnect_tries", "3");
    conf_put(conf, "reconnect_backoff_time", "100");
    conf_put(conf, "reconnect_backoff_max", "400");
    conf_put(conf, "request_timeout", "60000");
    conf_put(conf, "log_level", "error");
    hivent_client_t *c = new_tallied_client(conf, &t);
    if (!c)
        return 1;
    char err[512];
    EXPECT(poll_until_state(c, HIVENT_STATE_CONNECTED, 10000), "no connection to port %d", port);
    hivent_err_t rc = hivent_emit(c, "fault.failfast", NULL, 0, 1, NULL, "k", 10000, NULL, err,
                                  sizeof err);
    EXPECT(rc == HIVENT_OK, "first emit returned %s: %s", hivent_err_name(rc), err);
    printf("connected\n");
    fflush(stdout);

    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
        printf("CHECK FAILED no go line on stdin\n");
        return 1;
    }
    int64_t go = mono_ms();
    int queued = 0;
    for (int i = 0; i < pending; i++) {
        rc = hivent_emit_async(c, "fault.failfast", NULL, 0, 1, NULL, "k", NULL, err, sizeof err);
        if (rc == HIVENT_OK)
            queued++;
    }
    int reached = poll_until_state(c, HIVENT_STATE_FAILED, 30000);
    int64_t failed_after = mono_ms() - go;
    EXPECT(reached, "state is %s, not failed, 30 s after hiventd stopped",
           hivent_state_name(hivent_client_state(c)));
    /* Give a second error notice time to show up. */
    int64_t settle = mono_ms() + 1500;
    while (mono_ms() < settle)
        hivent_client_poll(c, 50);

    int later = 10, later_failed = 0, later_with_text = 0;
    for (int i = 0; i < later; i++) {
        err[0] = '\0';
        rc = hivent_emit_async(c, "fault.failfast", NULL, 0, 1, NULL, "k", NULL, err, sizeof err);
        if (rc == HIVENT_ERR_FAILED)
            later_failed++;
        if (err[0])
            later_with_text++;
    }
    err[0] = '\0';
    hivent_err_t sync_rc = hivent_emit(c, "fault.failfast", NULL, 0, 1, NULL, "k", 1000, NULL,
                                       err, sizeof err);
    char sync_err[512];
    snprintf(sync_err, sizeof sync_err, "%s", err);
    hivent_client_poll(c, 200);
    int errors = atomic_load(&t.errors);
    hivent_client_destroy(c);

    printf("RESULT reached_failed_ms=%lld error_callbacks=%d first_error=%s first_errstr=\"%s\"\n",
           (long long)failed_after, errors, hivent_err_name(t.first_error), t.first_errstr);
    printf("RESULT pending=%d queued=%d pending_failed=%d with_text=%d ok=%d\n", pending, queued,
           atomic_load(&t.deliveries_failed), atomic_load(&t.deliveries_failed_with_text),
           atomic_load(&t.deliveries_ok));
    print_failure_codes(&t);
    printf("RESULT later_async=%d later_failed=%d later_with_text=%d sync=%s sync_errstr=\"%s\"\n",
           later, later_failed, later_with_text, hivent_err_name(sync_rc), sync_err);
    EXPECT(errors == 1, "error callback ran %d times", errors);
    EXPECT(t.first_error == HIVENT_ERR_FAILED, "error callback got %s",
           hivent_err_name(t.first_error));
    EXPECT(t.first_errstr[0] != '\0', "error callback without a message");
    EXPECT(atomic_load(&t.deliveries_failed) == queued, "%d of %d pending emits reported failed",
           atomic_load(&t.deliveries_failed), queued);
    EXPECT(atomic_load(&t.deliveries_failed_with_text) == queued,
           "%d failed deliveries carry a message", atomic_load(&t.deliveries_failed_with_text));
    EXPECT(atomic_load(&t.deliveries_ok) == 0, "%d pending emits succeeded", atomic_load(&t.deliveries_ok));
    EXPECT(later_failed == later, "%d of %d later emits returned HIVENT_ERR_FAILED", later_failed,
           later);
    EXPECT(later_with_text == later, "%d of %d later emits carry a message", later_with_text,
           later);
    EXPECT(sync_rc == HIVENT_ERR_FAILED, "synchronous emit returned %s", hivent_err_name(sync_rc));
    EXPECT(sync_err[0] != '\0', "synchronous emit failed without a message");
    return failed_checks ? 1 : 0;
}

struct destroyer {
    hivent_client_t *c;
    struct tally *t;
    int64_t took_ms;
};

static void *destroy_now(void *arg)
{
    struct destroyer *d = arg;
    int64_t start = mono_ms();
    hivent_client_destroy(d->c);
    d->took_ms = mono_ms() - start;
    atomic_store(&d->t->destroyed, 1);
    return NULL;
}

/* Destroys @c on a new thread, then waits 500 ms for stray callbacks. */
static int64_t destroy_from_thread(hivent_client_t *c, struct tally *t)
{
    struct destroyer d = {c, t, -1};
    pthread_t thread;
    if (pthread_create(&thread, NULL, destroy_now, &d) != 0) {
        printf("CHECK FAILED pthread_create\n");
        return -1;
    }
    pthread_join(thread, NULL);
    sleep_ms(500);
    return d.took_ms;
}

static void destroy_during_connect(int port, pid_t hiventd)
{
    struct tally t;
    memset(&t, 0, sizeof t);
    /* A stopped hiventd still completes TCP handshakes from its listen
     * backlog but never answers the WebSocket upgrade. */
    kill(hiventd, SIGSTOP);
    hivent_conf_t *conf = fault_conf(port, 1000);
    conf_put(conf, "connect_timeout", "30000");
    hivent_client_t *c = new_tallied_client(conf, &t);
    if (!c) {
        kill(hiventd, SIGCONT);
        failed_checks++;
        return;
    }
    int64_t until = mono_ms() + 300;
    while (mono_ms() < until)
        hivent_client_poll(c, 20);
    hivent_state_t state = hivent_client_state(c);
    int64_t took = destroy_from_thread(c, &t);
    kill(hiventd, SIGCONT);
    printf("RESULT phase=connect state_before=%s destroy_ms=%lld callbacks_after=%d\n",
           hivent_state_name(state), (long long)took, atomic_load(&t.callbacks_after_destroy));
    EXPECT(state == HIVENT_STATE_CONNECTING, "state before destroy was %s",
           hivent_state_name(state));
    EXPECT(took >= 0 && took < 1000, "destroy during connect took %lld ms", (long long)took);
    EXPECT(atomic_load(&t.callbacks_after_destroy) == 0, "%d callbacks after destroy",
           atomic_load(&t.callbacks_after_destroy));
}

static void destroy_during_backoff(int closed_port)
{
    struct tally t;
    memset(&t, 0, sizeof t);
    hivent_conf_t *conf = fault_conf(closed_port, 1000);
    conf_put(conf, "reconnect_backoff_time", "30000");
    conf_put(conf, "reconnect_backoff_max", "30000");
    hivent_client_t *c = new_tallied_client(conf, &t);
    if (!c) {
        failed_checks++;
        return;
    }
    int in_backoff = poll_until_state(c, HIVENT_STATE_BACKOFF, 5000);
    int64_t took = destroy_from_thread(c, &t);
    printf("RESULT phase=backoff reached_backoff=%d destroy_ms=%lld callbacks_after=%d\n",
           in_backoff, (long long)took, atomic_load(&t.callbacks_after_destroy));
    EXPECT(in_backoff, "client never entered backoff on closed port %d", closed_port);
    EXPECT(took >= 0 && took < 1000, "destroy during backoff took %lld ms", (long long)took);
    EXPECT(atomic_load(&t.callbacks_after_destroy) == 0, "%d callbacks after destroy",
           atomic_load(&t.callbacks_after_destroy));
}

static void destroy_during_flush(int port, pid_t hiventd)
{
    struct tally t;
    memset(&t, 0, sizeof t);
    hivent_conf_t *conf = fault_conf(port, 30000);
    conf_put(conf, "request_timeout", "60000");
    conf_put(conf, "flush_timeout", "500");
    hivent_client_t *c = new_tallied_client(conf, &t);
    if (!c) {
        failed_checks++;
        return;
    }
    int connected = poll_until_state(c, HIVENT_STATE_CONNECTED, 10000);
    /* A stopped hiventd leaves every emit unanswered, so destroy spends its
     * whole flush_timeout and then fails them. */
    kill(hiventd, SIGSTOP);
    int emits = 50, queued = 0;
    char err[512];
    for (int i = 0; i < emits; i++)
        if (hivent_emit_async(c, "fault.destroy", NULL, 0, 1, NULL, "k", NULL, err, sizeof err) ==
            HIVENT_OK)
            queued++;
    int64_t took = destroy_from_thread(c, &t);
    kill(hiventd, SIGCONT);
    printf("RESULT phase=flush connected=%d queued=%d destroy_ms=%lld failed=%d ok=%d "
           "callbacks_after=%d\n",
           connected, queued, (long long)took, atomic_load(&t.deliveries_failed),
           atomic_load(&t.deliveries_ok), atomic_load(&t.callbacks_after_destroy));
    print_failure_codes(&t);
    EXPECT(connected, "no connection to port %d", port);
    EXPECT(took >= 500 && took < 1500, "destroy with flush_timeout 500 ms took %lld ms",
           (long long)took);
    EXPECT(atomic_load(&t.deliveries_failed) + atomic_load(&t.deliveries_ok) == queued,
           "%d of %d emits reported before destroy returned",
           atomic_load(&t.deliveries_failed) + atomic_load(&t.deliveries_ok), queued);
    EXPECT(atomic_load(&t.callbacks_after_destroy) == 0, "%d callbacks after destroy",
           atomic_load(&t.callbacks_after_destroy));
}

int cmd_destroy(int argc, char **argv)
{
    int port = (int)opt_long(argc, argv, "--port", 0);
    pid_t hiventd = (pid_t)opt_long(argc, argv, "--hiventd-pid", 0);
    int closed_port = (int)opt_long(argc, argv, "--closed-port", 0);
    if (port <= 0 || hiventd <= 1 || closed_port <= 0) {
        fprintf(stderr, "destroy: --port, --hiventd-pid and --closed-port are required\n");
        return 2;
    }
    destroy_during_connect(port, hiventd);
    destroy_during_backoff(closed_port);
    destroy_during_flush(port, hiventd);
    return failed_checks ? 1 : 0;
}
