/* Internal layout of hivent_conf_t. */
#ifndef HV_CONF_H
#define HV_CONF_H

#include "hivent/hivent.h"

struct hivent_conf_s {
    char *client_id;
    char *host;
    int port;
    int secure;
    char *api_key;
    int max_reconnect_tries;
    int backoff_ms;
    int backoff_max_ms;
    int jitter_pct;
    int heartbeat_ms;
    int request_timeout_ms;
    int connect_timeout_ms;
    char *ca_file;
    int tls_verify;
    int max_frame_size;
    int queue_max_events;
    long long queue_max_bytes;
    int flush_timeout_ms;
    int gzip;
    int log_level;
    int log_queue;
    char *consumer_name;
    int consumer_ack;
    int consumer_prefetch;
    int consumer_version;

    hivent_delivery_cb *delivery_cb;
    hivent_state_cb *state_cb;
    hivent_error_cb *error_cb;
    hivent_log_cb *log_cb;
    hivent_process_cb *process_cb;
    void *opaque;
};

/* Returns 1 when the configuration selects the in-process transport. */
int hv_conf_is_memory(const hivent_conf_t *conf);

#endif
