/*
 * The store thread: takes write jobs from the network thread, commits all
 * pending ones in one transaction (group commit), then hands them back
 * with their results and wakes the network thread with
 * lws_cancel_service().  Between group commits it deletes expired event
 * bodies (retention pruning) in batches of their own transactions.
 */
#ifndef HVD_COMMITTER_H
#define HVD_COMMITTER_H

#include <stdint.h>

#include "frame.h"
#include "store.h"

struct lws_context;

typedef enum hvd_job_kind {
    HVD_JOB_EMIT,          /* store an event, queue it for each target */
    HVD_JOB_COMPLETE,      /* remove one queue entry */
    HVD_JOB_DEAD_LETTER,   /* dead-letter an event and remove its entry */
    HVD_JOB_SERVICE        /* record a service and one of its topics */
} hvd_job_kind_t;

/* One queue an emitted event goes to.  @service points into a service
 * object, which lives until shutdown. */
typedef struct hvd_target {
    const char *service;
    void *service_ref;          /* the network thread's service object */
    int partition;
    int64_t seq;
} hvd_target_t;

typedef struct hvd_job {
    struct hvd_job *next;
    hvd_job_kind_t kind;

    /* Where the reply goes (0: no reply). */
    uint64_t conn_id;
    char *topic;
    hv_ref_t ref;
    hv_ref_t join_ref;

    char uuid[64];
    unsigned char *body;        /* packed event, owned unless body_shared */
    size_t body_size;
    int body_shared;            /* body belongs to @user and is not freed here */
    hvd_target_t *targets;      /* owned array */
    int target_count;
    int compact_reply;          /* EMIT: reply {"uuid": UUID} once stored */

    const char *service;        /* COMPLETE, DEAD_LETTER, SERVICE */
    int partition;
    int64_t seq;                /* COMPLETE, DEAD_LETTER (-1: no queue entry) */
    char *reason;               /* DEAD_LETTER; SERVICE: the topic */

    /* SERVICE for a consumer join: the join parameters, sent back in the
     * join reply once the service and topic are committed. */
    int join_ack;
    int join_prefetch;
    int64_t join_version;

    /* Results, set by the store thread. */
    int failed;
    char *error;                /* the store's error message when failed, or NULL */
    int duplicate;              /* EMIT: uuid already stored */
    hv_buf_t existing;          /* EMIT duplicate: the stored body */

    void *user;                 /* network thread data; freed by its owner */
} hvd_job_t;

typedef struct hvd_committer hvd_committer_t;

/* Commit and pruning statistics. */
typedef struct hvd_commit_stats {
    uint64_t commits;
    uint64_t jobs;
    uint64_t failures;
    double latency_sum_s;
    uint64_t latency_buckets[8];  /* <= 1, 2, 5, 10, 25, 50, 100, 250 ms */
    uint64_t events_pruned;       /* event bodies deleted by retention pruning */
    int64_t events_stored;        /* event bodies in the store now */
} hvd_commit_stats_t;

/* Retention pruning of the store thread. */
typedef struct hvd_prune_config {
    int64_t retention_ms;       /* age after which an unreferenced body is deleted; 0: never */
    int interval_ms;            /* pause between two sweeps over the expired rows */
    int batch_rows;             /* rows examined per pruning transaction */
} hvd_prune_config_t;

/* Pause after a pruning batch that stopped at its row limit, as a multiple
 * of the batch's duration: pruning then takes at most a fifth of the store
 * thread's time while it catches up. */
#define HVD_PRUNE_PAUSE_FACTOR 4
/* Shortest time between two log lines about pruning, in seconds. */
#define HVD_PRUNE_LOG_INTERVAL_S 60

extern const double hvd_commit_bucket_bounds_s[8];

/* Starts the store thread.  @prune may be NULL (no pruning). */
hvd_committer_t *hvd_committer_start(hvd_store_t *store, int max_batch,
                                     const hvd_prune_config_t *prune);
/* Sets the context woken after each commit; call before submitting. */
void hvd_committer_set_context(hvd_committer_t *c, struct lws_context *ctx);
/* Queues @job; ownership passes to the committer until it comes back. */
void hvd_committer_submit(hvd_committer_t *c, hvd_job_t *job);
/* Takes every finished job, in submission order. */
hvd_job_t *hvd_committer_take_done(hvd_committer_t *c);
/* Jobs submitted and not yet taken back. */
int hvd_committer_outstanding(hvd_committer_t *c);
void hvd_committer_stats(hvd_committer_t *c, hvd_commit_stats_t *out);
/* Commits what is queued, stops the thread and frees the committer;
 * finished jobs not yet taken are freed. */
void hvd_committer_stop(hvd_committer_t *c);

hvd_job_t *hvd_job_new(hvd_job_kind_t kind);
void hvd_job_free(hvd_job_t *job);

#endif
