/*
 * Storage interface of hiventd.  The SQLite implementation is the default;
 * a second backend (for example Redis, shared by several hiventd nodes)
 * implements the same table of operations.
 *
 * Threads: the "writer" operations (begin .. save_service, prune_events)
 * run only on the store thread, and load_* run once at startup before it
 * starts.  read_bodies and dlq_* run on the network thread and must not
 * disturb a concurrent writer transaction, so SQLite uses other
 * connections for them.  count_events may be called from any thread.
 */
#ifndef HVD_STORE_H
#define HVD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct hvd_store hvd_store_t;

/* One subscription of a service: called once per (service, topic). */
typedef int hvd_service_cb(void *ctx, const char *service, int partition_count,
                           const char *topic);
/* One unfinished queue entry, in (service, partition, seq) order.  The
 * body stays in the store; read_bodies fetches it when it is needed. */
typedef int hvd_pending_cb(void *ctx, const char *service, int partition, int64_t seq,
                           const char *uuid);
/* The stored body of one queue entry, in seq order. */
typedef int hvd_body_cb(void *ctx, int64_t seq, const char *uuid, const void *body,
                        size_t body_size);
/* One dead letter. */
typedef int hvd_dead_letter_cb(void *ctx, int64_t id, int partition, const char *uuid,
                               const void *body, size_t body_size, const char *reason);
/* One dead letter being replayed; returns the queue seq to store it under,
 * or -1 to abort the replay. */
typedef int64_t hvd_replay_cb(void *ctx, int partition, const char *uuid, const void *body,
                              size_t body_size);

/* Outcome of one prune_events batch. */
typedef struct hvd_prune_result {
    int64_t deleted;            /* event bodies deleted */
    int64_t examined;           /* expired rows checked, deleted or not */
    int more;                   /* the batch stopped at its row limit */
    int64_t oldest_stored_ms;   /* stored_at of the first remaining row in storage order; -1: none */
} hvd_prune_result_t;

typedef struct hvd_store_ops {
    const char *name;
    void (*close)(hvd_store_t *s);

    int (*load_services)(hvd_store_t *s, hvd_service_cb *cb, void *ctx);
    int (*load_pending)(hvd_store_t *s, hvd_pending_cb *cb, void *ctx);
    /* Calls @cb for each committed queue entry of @service:@partition with
     * @first <= seq <= @last, with its event body.  Returns 0 or -1. */
    int (*read_bodies)(hvd_store_t *s, const char *service, int partition, int64_t first,
                       int64_t last, hvd_body_cb *cb, void *ctx);

    /* Starts a write transaction.  Events stored in it get the wall-clock
     * time of this call as their storage time. */
    int (*begin)(hvd_store_t *s);
    int (*commit)(hvd_store_t *s);
    void (*rollback)(hvd_store_t *s);
    /* Stores an event under its uuid.  Returns 1 when new, 0 when the uuid
     * exists (its stored body is then copied into @existing), -1 on error. */
    int (*put_event)(hvd_store_t *s, const char *uuid, const void *body, size_t body_size,
                     hv_buf_t *existing);
    int (*enqueue)(hvd_store_t *s, const char *service, int partition, int64_t seq,
                   const char *uuid);
    /* Removes a queue entry; a missing entry is not an error. */
    int (*complete)(hvd_store_t *s, const char *service, int partition, int64_t seq);
    int (*dead_letter)(hvd_store_t *s, const char *service, int partition, const char *uuid,
                       const void *body, size_t body_size, const char *reason);
    int (*save_service)(hvd_store_t *s, const char *service, int partition_count,
                        const char *topic);
    /* Deletes, in a transaction of its own, event bodies stored before
     * @cutoff_ms (Unix time in milliseconds) that no queue row references.
     * It examines at most @max_rows rows, in storage order, continuing where
     * the previous call stopped, and stops at the first row stored at or
     * after @cutoff_ms.  Call it outside begin .. commit.  Returns 0 or -1
     * (then nothing was deleted). */
    int (*prune_events)(hvd_store_t *s, int64_t cutoff_ms, int max_rows,
                        hvd_prune_result_t *out);
    /* Number of stored event bodies (committed rows of the events table). */
    int64_t (*count_events)(hvd_store_t *s);

    /* @partition < 0 selects every partition of @service. */
    int (*dlq_list)(hvd_store_t *s, const char *service, int partition, int limit,
                    hvd_dead_letter_cb *cb, void *ctx);
    /* Moves the dead letters back into their queues in one transaction;
     * returns how many moved, or -1 (then nothing moved). */
    int64_t (*dlq_replay)(hvd_store_t *s, const char *service, int partition,
                          hvd_replay_cb *cb, void *ctx);
    int64_t (*dlq_purge)(hvd_store_t *s, const char *service, int partition);
    /* Last error text of this store, for logs. */
    const char *(*errmsg)(hvd_store_t *s);
} hvd_store_ops_t;

struct hvd_store {
    const hvd_store_ops_t *ops;
};

/* Opens (creating when missing) DIR/hivent.db in WAL mode.  @sync_full
 * selects synchronous=FULL.  Returns NULL with a message in @err. */
hvd_store_t *hvd_store_sqlite_open(const char *dir, int sync_full, char *err,
                                   size_t err_size);

#endif
