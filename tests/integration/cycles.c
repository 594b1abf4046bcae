/* Connects, emits and destroys a client COUNT times against a server on
 * 127.0.0.1:PORT; used under valgrind by tests/valgrind-cycles.sh.
 * Exits non-zero when an emit fails. */
#include <stdio.h>
#include <stdlib.h>

#include "hivent/hivent.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT COUNT\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[2]);
    for (int i = 0; i < count; i++) {
        hivent_conf_t *conf = hivent_conf_new();
        char err[512] = "";
        hivent_conf_set(conf, "server.port", argv[1], err, sizeof err);
        hivent_conf_set(conf, "log_level", "error", err, sizeof err);
        hivent_conf_set(conf, "max_reconnect_tries", "5", err, sizeof err);
        hivent_conf_set(conf, "reconnect_backoff_time", "100", err, sizeof err);
        hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
        if (!c) {
            fprintf(stderr, "cycle %d: client_new: %s\n", i, err);
            hivent_conf_destroy(conf);
            return 1;
        }
        static const unsigned char payload[] = {0x81, 0xa1, 'i', 0x07};
        hivent_event_t *pub = NULL;
        if (hivent_emit(c, "cycle", payload, sizeof payload, 1, NULL, NULL, 30000, &pub, err,
                        sizeof err) != HIVENT_OK) {
            fprintf(stderr, "cycle %d: emit: %s\n", i, err);
            hivent_client_destroy(c);
            return 1;
        }
        hivent_event_destroy(pub);
        hivent_emit_async(c, "cycle", payload, sizeof payload, 1, NULL, NULL, NULL, err,
                          sizeof err);
        hivent_client_destroy(c);
        if ((i + 1) % 100 == 0)
            fprintf(stderr, "%d cycles\n", i + 1);
    }
    return 0;
}
