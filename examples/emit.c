/*
 * Emits one event synchronously and a batch asynchronously.
 *
 *   cc emit.c $(pkg-config --cflags --libs hivent) -o emit
 *   ./emit [COUNT]
 *
 * The server address and API key come from HIVENT_* environment variables,
 * for example HIVENT_SERVER_PORT=4000 HIVENT_SERVER_API_KEY=secret.
 */
#include <hivent/hivent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void on_delivery(hivent_client_t *client, hivent_err_t err, const char *errstr,
                        const hivent_event_t *event, void *msg_opaque, void *opaque)
{
    if (err != HIVENT_OK) {
        fprintf(stderr, "emit %lu failed: %s: %s\n", (unsigned long)(uintptr_t)msg_opaque,
                hivent_err_name(err), errstr);
        failed++;
    }
}

int main(int argc, char **argv)
{
    char errstr[512];
    int count = 10;
    if (argc > 1) {
        char *end;
        long n = strtol(argv[1], &end, 10);
        if (*end || n < 0 || n > 10000000) {
            fprintf(stderr, "usage: %s [COUNT]\n  COUNT: asynchronous emits after the "
                    "synchronous one, 0 to 10000000 (default 10)\n", argv[0]);
            return 2;
        }
        count = (int)n;
    }

    hivent_conf_t *conf = hivent_conf_new();
    if (hivent_conf_set(conf, "client_id", "example-emitter", errstr, sizeof errstr) ||
        hivent_conf_load_env(conf, errstr, sizeof errstr)) {
        fprintf(stderr, "configuration: %s\n", errstr);
        return 2;
    }
    hivent_conf_set_delivery_cb(conf, on_delivery);
    hivent_client_t *client = hivent_client_new(conf, errstr, sizeof errstr);
    if (!client) {
        fprintf(stderr, "client: %s\n", errstr);
        hivent_conf_destroy(conf);
        return 2;
    }

    /* Payloads are MessagePack maps; JSON text converts with one call. */
    const char *json = "{\"user_id\": 42, \"plan\": \"pro\"}";
    void *payload;
    size_t size;
    if (hivent_json_to_msgpack(json, strlen(json), &payload, &size, errstr, sizeof errstr)) {
        fprintf(stderr, "payload: %s\n", errstr);
        return 2;
    }

    hivent_event_t *published;
    hivent_err_t err = hivent_emit(client, "user:upgraded", payload, size, 1, NULL, "user-42",
                                   -1, &published, errstr, sizeof errstr);
    if (err != HIVENT_OK) {
        fprintf(stderr, "sync emit failed: %s: %s\n", hivent_err_name(err), errstr);
        return 1;
    }
    char *text = hivent_event_to_json(published);
    printf("published %s\n", text);
    hivent_free(text);
    hivent_event_destroy(published);

    for (int i = 0; i < count; i++) {
        err = hivent_emit_async(client, "user:upgraded", payload, size, 1, NULL, "user-42",
                                (void *)(uintptr_t)i, errstr, sizeof errstr);
        if (err != HIVENT_OK)
            fprintf(stderr, "emit %d not queued: %s\n", i, errstr);
    }
    int left = hivent_client_flush(client, 10000);
    printf("async emits: %d sent, %d failed, %d outstanding\n", count, failed, left);
    hivent_free(payload);
    hivent_client_destroy(client);
    return failed || left ? 1 : 0;
}
