/*
 * Demo consumer in C: counts events per partition and writes a JSON
 * summary when it has seen the expected number or has been idle too long.
 *
 *   demo_consumer TOPIC SERVICE PARTITIONS EXPECTED OUT_FILE
 *
 * The server address and key come from HIVENT_* environment variables.
 */
#include <hivent/hivent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTITIONS 64
#define IDLE_LIMIT_S 60

static volatile sig_atomic_t stop;
static int per_partition[MAX_PARTITIONS];
static int received;

static void on_signal(int sig)
{
    stop = 1;
}

static int process(hivent_consumer_t *consumer, const hivent_event_t *event, char *reason,
                   size_t reason_size, void *opaque)
{
    int p = hivent_event_partition(event);
    if (p >= 0 && p < MAX_PARTITIONS)
        per_partition[p]++;
    received++;
    return 0;
}

static int write_summary(const char *path, const char *topic, const char *service,
                         int partitions)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "{\"language\": \"C\", \"service\": \"%s\", \"topic\": \"%s\", "
            "\"received\": %d, \"rejected\": 0, \"partitions\": {", service, topic, received);
    for (int p = 0; p < partitions && p < MAX_PARTITIONS; p++)
        fprintf(f, "%s\"%d\": %d", p ? ", " : "", p, per_partition[p]);
    fprintf(f, "}}\n");
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s TOPIC SERVICE PARTITIONS EXPECTED OUT_FILE\n", argv[0]);
        return 2;
    }
    const char *topic = argv[1], *service = argv[2], *out = argv[5];
    int partitions = atoi(argv[3]), expected = atoi(argv[4]);
    char errstr[512];
    hivent_conf_t *conf = hivent_conf_new();
    if (hivent_conf_set(conf, "log_level", "warning", errstr, sizeof errstr) ||
        hivent_conf_load_env(conf, errstr, sizeof errstr)) {
        fprintf(stderr, "demo consumer: %s\n", errstr);
        return 2;
    }
    hivent_conf_set_process_cb(conf, process);
    hivent_consumer_t *consumer =
        hivent_consumer_new(conf, topic, service, partitions, errstr, sizeof errstr);
    if (!consumer) {
        fprintf(stderr, "demo consumer: %s\n", errstr);
        hivent_conf_destroy(conf);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    time_t last = time(NULL);
    while (!stop && received < expected && time(NULL) - last < IDLE_LIMIT_S) {
        if (hivent_consumer_poll(consumer, 200) > 0)
            last = time(NULL);
    }
    hivent_consumer_close(consumer, 5000);
    hivent_consumer_destroy(consumer);
    return write_summary(out, topic, service, partitions) == 0 ? 0 : 1;
}
