/*
 * Helpers for the client integration tests: starting the scripted fault
 * server or hiventd, talking to the fault server's control socket, and a
 * recorder that collects every notice a client dispatches.
 */
#ifndef HV_TEST_HARNESS_H
#define HV_TEST_HARNESS_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "hivent/hivent.h"

typedef struct fault_server {
    pid_t pid;
    int port;
    int control_fd;
    char dir[256];
} fault_server_t;

/* Starts tests/fault/fault_server.py; @cert and @key select wss.  Returns
 * 0, or -1 with a message on stderr. */
int fs_start(fault_server_t *fs, const char *cert, const char *key);
void fs_stop(fault_server_t *fs);
/* Sends one command (JSON object text) and returns the parsed reply. */
json_t *fs_cmd(fault_server_t *fs, const char *json);
/* Sends a command and checks that the reply carries no "error". */
int fs_do(fault_server_t *fs, const char *json);
/* Returns the server's records (free with json_decref). */
json_t *fs_state(fault_server_t *fs);
/* Returns how many received frames have event @event, or -1. */
int fs_count_frames(fault_server_t *fs, const char *event);

/* Every notice a client or consumer dispatched, kept for checks. */
#define REC_MAX 4096
typedef struct recorder {
    pthread_mutex_t lock;
    int states[REC_MAX];
    int attempts[REC_MAX];
    int next_ms[REC_MAX];
    int state_reasons[REC_MAX];
    int state_count;
    int errors[64];
    char error_text[64][512];
    int error_count;
    int deliveries_ok;
    int deliveries_failed;
    int delivery_errs[REC_MAX];
    uintptr_t delivery_ids[REC_MAX];
    int delivery_count;
    char logs[65536];
    size_t logs_len;
    int callbacks_after_destroy;
    volatile int destroyed;
} recorder_t;

void rec_init(recorder_t *r);
/* Installs the recorder's callbacks and sets it as opaque. */
void rec_attach(recorder_t *r, hivent_conf_t *conf);
/* Returns 1 when the recorded log text contains @needle. */
int rec_logged(recorder_t *r, const char *needle);
/* Returns the index of the first state notice equal to @state at or after
 * @from, or -1. */
int rec_find_state(recorder_t *r, int state, int from);

/* A configuration for 127.0.0.1:@port with short timings for tests. */
hivent_conf_t *test_conf(int port);
/* Sets @key to @value, aborting the test run on failure. */
void conf_put(hivent_conf_t *conf, const char *key, const char *value);

/* Polls @c until @cond is true or @timeout_ms passes; returns the final value. */
#define POLL_UNTIL(c, cond, timeout_ms)                                        \
    ({                                                                         \
        int64_t poll_deadline_ = now_ms() + (timeout_ms);                      \
        while (!(cond) && now_ms() < poll_deadline_)                           \
            hivent_client_poll((c), 20);                                       \
        (cond);                                                                \
    })

int64_t now_ms(void);
/* Returns a TCP port on 127.0.0.1 where nothing listens. */
int closed_port(void);

/* Packs {"i": @i, "pad": STRING of @pad bytes}; returns its size. */
size_t pack_index_payload(unsigned char *out, size_t size, int i, size_t pad);

/* hiventd: starts BUILD/server/hiventd on 127.0.0.1 port 0 (or @port when
 * not 0) with @data_dir and waits for its ready file.  Returns 0, -1 on
 * failure, or 1 when the binary does not exist (set by HIVENTD). */
typedef struct hiventd {
    pid_t pid;
    int port;
    char data_dir[256];
    char ready_file[300];
} hiventd_t;
const char *hiventd_path(void);
#define HIVENTD_TEST_ADMIN_KEY "test-admin-key"
/* Starts hiventd with the test admin key and, when not NULL, @api_key. */
int hiventd_start(hiventd_t *d, const char *data_dir, int port, const char *api_key);
/* Sends one HTTP request to 127.0.0.1:@port; returns the whole response
 * (headers and body, free()) or NULL. */
char *http_get(int port, const char *method, const char *path, const char *bearer);
void hiventd_kill(hiventd_t *d, int sig);

#endif
