/*
 * Test helper: consumes TOPIC as SERVICE and rejects every event, so the
 * CLI tests have dead letters to list, replay and purge.
 *
 * Usage: reject_consumer PORT TOPIC SERVICE PARTITIONS COUNT [REASON]
 * Prints "ready" once the channel is joined and one line per rejected
 * event (its uuid), then exits 0 after COUNT events.  Exits 1 on any
 * error or when 20 s pass without finishing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hivent/hivent.h"

#define DEADLINE_POLLS 100 /* of 200 ms each: 20 s */

static hivent_consumer_t *open_consumer(char **argv)
{
    char errstr[512];
    hivent_conf_t *conf = hivent_conf_new();
    /* HIVENT_SERVER_API_KEY and the other variables apply first. */
    if (!conf || hivent_conf_load_env(conf, errstr, sizeof errstr) ||
        hivent_conf_set(conf, "server.port", argv[1], errstr, sizeof errstr) ||
        hivent_conf_set(conf, "log.queue", "true", errstr, sizeof errstr)) {
        fprintf(stderr, "reject_consumer: configuration failed: %s\n",
                conf ? errstr : "out of memory");
        hivent_conf_destroy(conf);
        return NULL;
    }
    hivent_consumer_t *consumer =
        hivent_consumer_new(conf, argv[2], argv[3], atoi(argv[4]), errstr, sizeof errstr);
    if (!consumer) {
        fprintf(stderr, "reject_consumer: %s\n", errstr);
        hivent_conf_destroy(conf);
    }
    return consumer;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: reject_consumer PORT TOPIC SERVICE PARTITIONS COUNT "
                        "[REASON]\n");
        return 2;
    }
    const char *reason = argc > 6 ? argv[6] : "rejected by test";
    long expected = atol(argv[5]), rejected = 0;
    hivent_consumer_t *consumer = open_consumer(argv);
    if (!consumer)
        return 1;

    int status = 1;
    for (int polls = 0; polls < DEADLINE_POLLS && rejected < expected; polls++) {
        hivent_notice_t *notice;
        while (rejected < expected && (notice = hivent_consumer_next(consumer, 200))) {
            hivent_notice_type_t type = hivent_notice_type(notice);
            if (type == HIVENT_NOTICE_STATE &&
                hivent_notice_state(notice) == HIVENT_STATE_CONNECTED) {
                printf("ready\n");
                fflush(stdout);
            } else if (type == HIVENT_NOTICE_STATE &&
                       hivent_notice_state(notice) == HIVENT_STATE_FAILED) {
                fprintf(stderr, "reject_consumer: connection failed: %s\n",
                        hivent_notice_errstr(notice));
                hivent_notice_destroy(notice);
                goto out;
            } else if (type == HIVENT_NOTICE_EVENT) {
                const hivent_event_t *event = hivent_notice_event(notice);
                hivent_err_t err = hivent_consumer_reject(consumer, event, reason);
                if (err != HIVENT_OK) {
                    fprintf(stderr, "reject_consumer: reject failed: %s\n",
                            hivent_err_str(err));
                    hivent_notice_destroy(notice);
                    goto out;
                }
                printf("%s\n", hivent_event_uuid(event));
                fflush(stdout);
                rejected++;
            }
            hivent_notice_destroy(notice);
        }
    }
    status = rejected == expected ? 0 : 1;
    if (status != 0)
        fprintf(stderr, "reject_consumer: rejected %ld of %ld events in 20 s\n", rejected,
                expected);
out:
    hivent_consumer_close(consumer, 5000);
    hivent_consumer_destroy(consumer);
    return status;
}
