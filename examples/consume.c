/*
 * Consumes events of one topic and dead-letters those whose payload has
 * "reject": true.
 *
 *   cc consume.c $(pkg-config --cflags --libs hivent) -o consume
 *   ./consume TOPIC SERVICE PARTITIONS COUNT
 *
 * Exits after COUNT events, or on SIGINT/SIGTERM.
 */
#include <hivent/hivent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;
static int seen;

static void on_signal(int sig)
{
    stop = 1;
}

static int process(hivent_consumer_t *consumer, const hivent_event_t *event, char *reason,
                   size_t reason_size, void *opaque)
{
    char *text = hivent_event_to_json(event);
    printf("%s %s\n", hivent_event_queue(event), text);
    fflush(stdout);
    int reject = text && strstr(text, "\"reject\":true") != NULL;
    hivent_free(text);
    seen++;
    if (reject) {
        snprintf(reason, reason_size, "payload asked to be rejected");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s TOPIC SERVICE PARTITIONS COUNT\n", argv[0]);
        return 2;
    }
    char errstr[512];
    hivent_conf_t *conf = hivent_conf_new();
    if (hivent_conf_load_env(conf, errstr, sizeof errstr)) {
        fprintf(stderr, "configuration: %s\n", errstr);
        return 2;
    }
    hivent_conf_set_process_cb(conf, process);
    hivent_consumer_t *consumer =
        hivent_consumer_new(conf, argv[1], argv[2], atoi(argv[3]), errstr, sizeof errstr);
    if (!consumer) {
        fprintf(stderr, "consumer: %s\n", errstr);
        hivent_conf_destroy(conf);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int want = atoi(argv[4]);
    while (!stop && seen < want)
        hivent_consumer_poll(consumer, 200);
    hivent_consumer_close(consumer, 5000);
    hivent_consumer_destroy(consumer);
    return 0;
}
