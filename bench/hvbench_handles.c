/*
 * Client memory per handle: creates N producer clients connected to
 * hiventd (each with its own I/O thread and connection) and reports the
 * growth of this process's resident set size divided by N.
 *
 *   hvbench_handles --port P [--handles N]
 */
#include <hivent/hivent.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
    const char *host = hvb_opt_str(argc, argv, "--host", "127.0.0.1");
    const char *port = hvb_opt_str(argc, argv, "--port", "4000");
    long n = hvb_opt_long(argc, argv, "--handles", 100);
    if (n < 1 || n > 10000) {
        fprintf(stderr, "invalid --handles %ld (1 to 10000)\n", n);
        return 2;
    }
    hivent_client_t **clients = calloc((size_t)n, sizeof(*clients));
    if (!clients)
        return 2;

    /* One handle first, so the library's one-time allocations (TLS and
     * libwebsockets globals) are not charged to the measured handles. */
    char errstr[512];
    hivent_client_t *first = NULL;
    long before = 0, after = 0;
    int connected = 0;
    for (long i = -1; i < n; i++) {
        hivent_conf_t *conf = hivent_conf_new();
        if (!conf || hivent_conf_set(conf, "server.host", host, errstr, sizeof(errstr)) ||
            hivent_conf_set(conf, "server.port", port, errstr, sizeof(errstr)) ||
            hivent_conf_set(conf, "log_level", "warning", errstr, sizeof(errstr))) {
            fprintf(stderr, "configuration: %s\n", errstr);
            return 2;
        }
        hivent_client_t *c = hivent_client_new(conf, errstr, sizeof(errstr));
        if (!c) {
            fprintf(stderr, "client %ld: %s\n", i, errstr);
            hivent_conf_destroy(conf);
            break;
        }
        if (i < 0) {
            first = c;
            uint64_t deadline = hvb_now_ns() + 10000000000ull;
            while (hivent_client_state(c) != HIVENT_STATE_CONNECTED && hvb_now_ns() < deadline)
                hivent_client_poll(c, 10);
            usleep(200000);
            before = hvb_rss_kib(0);
        } else {
            clients[i] = c;
        }
    }
    uint64_t deadline = hvb_now_ns() + 30000000000ull;
    while (hvb_now_ns() < deadline) {
        connected = 0;
        for (long i = 0; i < n; i++)
            connected += clients[i] && hivent_client_state(clients[i]) == HIVENT_STATE_CONNECTED;
        if (connected == n)
            break;
        usleep(20000);
    }
    usleep(500000);
    after = hvb_rss_kib(0);
    printf("RESULT handles=%ld connected=%d rss_before_kib=%ld rss_after_kib=%ld "
           "kib_per_handle=%.1f\n",
           n, connected, before, after, (double)(after - before) / (double)n);
    for (long i = 0; i < n; i++)
        hivent_client_destroy(clients[i]);
    hivent_client_destroy(first);
    free(clients);
    return connected == n ? 0 : 1;
}
