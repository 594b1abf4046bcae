/*
 * Shared state of hiventd.  Everything here belongs to the network thread
 * (the libwebsockets service thread) except the committer, which has its
 * own lock.
 */
#ifndef HVD_HIVENTD_H
#define HVD_HIVENTD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "buf.h"
#include "committer.h"
#include "config.h"
#include "frame.h"
#include "request.h"
#include "store.h"

typedef struct hvd_server hvd_server_t;
typedef struct hvd_conn hvd_conn_t;
typedef struct hvd_service hvd_service_t;
typedef struct hvd_consumer hvd_consumer_t;

/* An event body shared by the queue entries of several services. */
typedef struct hvd_body {
    int refs;
    int64_t version;
    const char *name;           /* event name, stored after data */
    size_t size;
    unsigned char data[];
} hvd_body_t;

/* One unfinished event in a partition queue.  Entries before the
 * partition's cursor are in flight to @owner (ack mode); entries from the
 * cursor on wait for delivery.  The event body stays in the store: @body is
 * set only for waiting entries near the cursor (see HVD_BODY_WINDOW) and is
 * read from the store before delivery when NULL.  With a 36-character uuid
 * an entry takes 88 bytes of heap without its body. */
typedef struct hvd_entry {
    struct hvd_entry *prev, *next;
    struct hvd_entry *index_next; /* next entry in the same uuid index bucket */
    uint64_t hash;                /* keyed hash of uuid */
    int64_t seq;
    hvd_body_t *body;
    hvd_consumer_t *owner;
    /* Consumer id of the last ack-mode delivery, 0 before the first.  It
     * survives a rebalance, so only this consumer may ack or quarantine
     * the entry until it is delivered to another one. */
    int64_t delivered_to;
    char uuid[];
} hvd_entry_t;

typedef struct hvd_partition {
    hvd_entry_t *head, *tail;
    hvd_entry_t *cursor;        /* next entry to deliver, NULL when none */
    int count;                  /* entries in the list */
    hvd_entry_t **index;        /* uuid -> entry buckets, NULL until the first insert */
    int index_size;             /* buckets, a power of two */
    int reserved;               /* emits submitted, not yet committed */
    int64_t next_seq;
    hvd_consumer_t *owner;
} hvd_partition_t;

typedef struct hvd_service_stats {
    uint64_t emitted;
    uint64_t delivered;
    uint64_t acknowledged;
    uint64_t dead_lettered;
    uint64_t skipped;           /* filtered out by a version filter */
} hvd_service_stats_t;

struct hvd_service {
    hvd_service_t *next;
    char *name;
    int partition_count;
    char **topics;              /* event names, or "*" */
    int topic_count;
    hvd_partition_t *partitions;
    hvd_consumer_t *members;    /* live consumers, in join order */
    int member_count;
    int pending_joins;          /* joins waiting for the store to save a topic */
    hvd_service_stats_t stats;
};

/* A consumer connection's membership in its service. */
struct hvd_consumer {
    hvd_consumer_t *next;       /* in service->members */
    hvd_conn_t *conn;
    hvd_service_t *service;
    int64_t id;
    int ack;
    int prefetch;
    int64_t version;            /* 0: every version */
    int inflight;
    int *owned;                 /* partitions owned, ascending */
    int owned_count;
    int rr;                     /* round-robin position in owned */
};

/* A joined channel of a connection. */
typedef struct hvd_channel {
    char *topic;
    hv_ref_t join_ref;
    /* ingress:all joined with {"reply": "compact"}: an event stored as
     * received is answered with {"uuid": UUID} instead of the whole event. */
    int compact_reply;
    /* An event topic join that waits for the store to commit its service
     * and subscription; it has no reply yet and receives no pushes. */
    int pending;
} hvd_channel_t;

/* One encoded frame waiting to be written, with LWS_PRE bytes of headroom. */
typedef struct hvd_out {
    struct hvd_out *next;
    size_t size;
    int binary;
    unsigned char data[];
} hvd_out_t;

typedef enum hvd_conn_kind { HVD_CONN_PRODUCER, HVD_CONN_CONSUMER } hvd_conn_kind_t;

struct hvd_conn {
    hvd_conn_t *hash_next;
    hvd_conn_t *all_next, *all_prev;
    uint64_t id;
    struct lws *wsi;
    hvd_server_t *server;
    hvd_conn_kind_t kind;
    int json;                   /* vsn 2.0.0 */
    int gzip;                   /* client asked for gzipped frames */
    char peer[64];
    char *client_id;            /* producer */
    char *service;              /* consumer */
    char *name;                 /* consumer instance */
    hvd_channel_t *channels;
    int channel_count;
    hv_buf_t rx;                /* fragments of the message being received */
    hvd_out_t *out_head, *out_tail;
    int out_count;
    size_t out_bytes;
    int64_t last_rx_us;
    int closing;
    int close_status;
    char close_reason[120];
    hvd_consumer_t *consumer;
};

#define HVD_CONN_BUCKETS 4096

struct hvd_server {
    hvd_config_t *cfg;
    hvd_store_t *store;
    hvd_committer_t *committer;
    struct lws_context *context;
    struct lws_vhost *vhost;
    int port;

    hvd_conn_t *conn_buckets[HVD_CONN_BUCKETS];
    hvd_conn_t *conns;          /* every live connection */
    uint64_t next_conn_id;
    int conn_count;

    hvd_service_t *services;
    int service_count;
    int64_t next_consumer_id;

    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t emits_accepted;
    uint64_t emits_duplicate;
    uint64_t emits_rejected;
    size_t body_bytes;          /* bodies held by queue entries */

    lws_sorted_usec_list_t sweep_sul;
    volatile sig_atomic_t stopping;
};

/* ws.c: WebSocket connections. */
int hvd_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
hvd_conn_t *hvd_conn_find(hvd_server_t *srv, uint64_t id);
/* Queues one frame to @c.  @payload is a packed MessagePack map (NULL: {}).
 * Returns 0, or -1 when the frame could not be built or queued. */
int hvd_conn_send(hvd_conn_t *c, const char *topic, const char *event, const hv_ref_t *ref,
                  const hv_ref_t *join_ref, const void *payload, size_t payload_size);
/* Sends an ok reply whose response is @response (packed; NULL: {}). */
int hvd_conn_reply_ok(hvd_conn_t *c, const char *topic, const hv_ref_t *ref,
                      const hv_ref_t *join_ref, const void *response, size_t response_size);
/* Sends an error reply {"reason": REASON}. */
int hvd_conn_reply_error(hvd_conn_t *c, const char *topic, const hv_ref_t *ref,
                         const hv_ref_t *join_ref, const char *reason);
/* Closes @c after its queued frames are written. */
void hvd_conn_close(hvd_conn_t *c, int status, const char *reason);
/* Frames a consumer may still queue without ack mode before pushes wait. */
#define HVD_PUSH_WINDOW 64
/* Handles jobs finished by the store thread. */
void hvd_ws_drain_done(hvd_server_t *srv);
/* Closes connections silent for two heartbeat intervals. */
void hvd_ws_sweep(lws_sorted_usec_list_t *sul);

/* broker.c: services, partition queues, assignment and delivery. */
hvd_service_t *hvd_service_find(hvd_server_t *srv, const char *name);
hvd_service_t *hvd_service_add(hvd_server_t *srv, const char *name, int partition_count);
/* Removes @svc from @srv and frees it.  Returns 0, or -1 when @svc has
 * topics, members, pending joins or queue entries, because other objects
 * then point to it. */
int hvd_service_remove(hvd_server_t *srv, hvd_service_t *svc);
/* Adds @topic to the service's subscriptions; returns 1 when new. */
int hvd_service_subscribe(hvd_service_t *svc, const char *topic);
/* Returns 1 when @svc subscribes to @topic. */
int hvd_service_has_topic(const hvd_service_t *svc, const char *topic);
int hvd_service_matches(const hvd_service_t *svc, const char *event_name);
hvd_body_t *hvd_body_new(const void *data, size_t size, int64_t version, const char *name);
/* Parses a packed event for its version and name; NULL when invalid. */
hvd_body_t *hvd_body_parse(const void *data, size_t size);
void hvd_body_release(hvd_body_t *body);
/* Bodies of waiting entries kept in memory, in bytes, across all queues.
 * An inserted entry keeps its body while the bodies held take less than
 * half of this and its predecessor holds its body too.  Delivery reads the
 * bodies of up to HVD_BODY_WINDOW entries from the cursor in one query and
 * keeps them while the total stays under HVD_BODY_BUDGET (the entry at the
 * cursor always).  Entries in flight hold no body. */
#define HVD_BODY_BUDGET (512 << 10)
#define HVD_BODY_WINDOW 64
/* Inserts an entry in seq order (normally at the tail).  @body may be NULL;
 * the entry keeps it only as described above. */
int hvd_partition_insert(hvd_server_t *srv, hvd_partition_t *p, int64_t seq, const char *uuid,
                         hvd_body_t *body);
/* Returns a reference to the body of @e of @svc:@part (release it with
 * hvd_body_release), reading it from the store when @e holds none; NULL
 * when it cannot be read. */
hvd_body_t *hvd_entry_body(hvd_server_t *srv, hvd_service_t *svc, int part, hvd_entry_t *e);
/* Returns the size of the event:received frame that carries an event body
 * of @body_size bytes to a consumer of @svc:@part, MessagePack without
 * gzip, on the longest topic the service subscribes to. */
size_t hvd_push_frame_size(const hvd_service_t *svc, int part, size_t body_size);
/* Loads persisted services and queues; returns 0 or -1. */
int hvd_broker_load(hvd_server_t *srv);
hvd_consumer_t *hvd_consumer_join(hvd_service_t *svc, hvd_conn_t *conn, int ack, int prefetch,
                                  int64_t version);
void hvd_consumer_leave(hvd_consumer_t *cons);
/* Pushes queued events to @cons while its window allows. */
void hvd_consumer_pump(hvd_consumer_t *cons);
/* Pumps the owner of every partition of @svc that has waiting entries. */
void hvd_service_pump(hvd_service_t *svc);
/* Finds the entry of @uuid in @p, or NULL. */
hvd_entry_t *hvd_partition_find(hvd_partition_t *p, const char *uuid);
/* Removes @e from @p, releasing its owner's window slot. */
void hvd_partition_remove(hvd_server_t *srv, hvd_partition_t *p, hvd_entry_t *e);
/* Submits a job that deletes the stored queue entry (seq) of @svc:@part. */
void hvd_broker_complete(hvd_server_t *srv, hvd_service_t *svc, int part, int64_t seq);

/* Reads the query parameters of the request, URL-decoded by lws, into @q
 * with hvd_query_add(); returns 0, or -1 with the reason in q->error. */
int hvd_query_read(struct lws *wsi, hvd_query_t *q);
/* Size of the per-connection user data of the one lws protocol. */
size_t hvd_ws_session_size(void);

/* http.c: plain HTTP requests; @state is the request state slot of the
 * connection's user data. */
int hvd_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void **state,
                      void *in, size_t len);

#endif
