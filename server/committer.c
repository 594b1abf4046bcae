#include "committer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "log.h"

const double hvd_commit_bucket_bounds_s[8] = {
    0.001, 0.002, 0.005, 0.010, 0.025, 0.050, 0.100, 0.250
};

struct hvd_committer {
    hvd_store_t *store;
    int max_batch;
    struct lws_context *context;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    hvd_job_t *todo_head, *todo_tail;
    hvd_job_t *done_head, *done_tail;
    int outstanding;
    int stopping;
    hvd_commit_stats_t stats;

    /* Pruning state, used only by the store thread. */
    hvd_prune_config_t prune;
    double prune_due_s;         /* monotonic time of the next batch */
    double prune_logged_s;      /* monotonic time of the last log line, 0: none yet */
    uint64_t prune_unlogged;    /* rows deleted since that line */
    uint64_t prune_failures;    /* failed batches since the last error line */
};

hvd_job_t *hvd_job_new(hvd_job_kind_t kind)
{
    hvd_job_t *job = calloc(1, sizeof(*job));
    if (job) {
        job->kind = kind;
        job->seq = -1;
    }
    return job;
}

void hvd_job_free(hvd_job_t *job)
{
    if (!job)
        return;
    free(job->topic);
    hv_ref_clear(&job->ref);
    hv_ref_clear(&job->join_ref);
    if (!job->body_shared)
        free(job->body);
    free(job->targets);
    free(job->reason);
    free(job->error);
    hv_buf_free(&job->existing);
    free(job);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int apply_emit(hvd_store_t *st, hvd_job_t *job)
{
    int rc = st->ops->put_event(st, job->uuid, job->body, job->body_size, &job->existing);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        job->duplicate = 1;
        return 0;
    }
    for (int i = 0; i < job->target_count; i++) {
        const hvd_target_t *t = &job->targets[i];
        if (st->ops->enqueue(st, t->service, t->partition, t->seq, job->uuid) < 0)
            return -1;
    }
    return 0;
}

static int apply_job(hvd_store_t *st, hvd_job_t *job)
{
    switch (job->kind) {
    case HVD_JOB_EMIT:
        return apply_emit(st, job);
    case HVD_JOB_COMPLETE:
        return st->ops->complete(st, job->service, job->partition, job->seq);
    case HVD_JOB_DEAD_LETTER:
        if (st->ops->dead_letter(st, job->service, job->partition, job->uuid, job->body,
                                 job->body_size, job->reason) < 0)
            return -1;
        if (job->seq >= 0)
            return st->ops->complete(st, job->service, job->partition, job->seq);
        return 0;
    case HVD_JOB_SERVICE:
        return st->ops->save_service(st, job->service, job->partition, job->reason);
    }
    return -1;
}

/* Applies a batch in one transaction.  When one job fails the batch is
 * rolled back and each job is retried in a transaction of its own, so one
 * bad job cannot fail the others. */
static void commit_batch(hvd_committer_t *c, hvd_job_t *batch, int count)
{
    hvd_store_t *st = c->store;
    double start = now_s();
    int ok = st->ops->begin(st) == 0;
    for (hvd_job_t *j = batch; ok && j; j = j->next)
        ok = apply_job(st, j) == 0;
    if (ok)
        ok = st->ops->commit(st) == 0;
    if (!ok) {
        hvd_err("store: batch of %d requests failed, retrying one by one: %s", count,
                st->ops->errmsg(st));
        st->ops->rollback(st);
        for (hvd_job_t *j = batch; j; j = j->next) {
            j->duplicate = 0;
            j->failed = !(st->ops->begin(st) == 0 && apply_job(st, j) == 0 &&
                          st->ops->commit(st) == 0);
            if (j->failed) {
                const char *message = st->ops->errmsg(st);
                if (j->kind == HVD_JOB_SERVICE)
                    hvd_err("store: saving service %s with topic %s failed: %s", j->service,
                            j->reason, message);
                else
                    hvd_err("store: request for event %s failed: %s",
                            j->uuid[0] ? j->uuid : "-", message);
                free(j->error);
                j->error = strdup(message);
                st->ops->rollback(st);
            }
        }
    }
    double elapsed = now_s() - start;

    pthread_mutex_lock(&c->lock);
    c->stats.commits++;
    c->stats.jobs += (uint64_t)count;
    c->stats.failures += ok ? 0 : 1;
    c->stats.latency_sum_s += elapsed;
    for (int i = 0; i < 8; i++)
        if (elapsed <= hvd_commit_bucket_bounds_s[i])
            c->stats.latency_buckets[i]++;
    pthread_mutex_unlock(&c->lock);
}

/* Logs pruning at most once per HVD_PRUNE_LOG_INTERVAL_S, summing the rows
 * deleted since the previous line. */
static void log_prune(hvd_committer_t *c, const hvd_prune_result_t *r, double now)
{
    c->prune_unlogged += (uint64_t)r->deleted;
    if (c->prune_unlogged == 0 ||
        (c->prune_logged_s > 0 && now - c->prune_logged_s < HVD_PRUNE_LOG_INTERVAL_S))
        return;
    int64_t stored = c->store->ops->count_events(c->store);
    if (r->oldest_stored_ms >= 0) {
        double age_s = (double)(wall_clock_ms() - r->oldest_stored_ms) / 1000.0;
        hvd_info("store: retention deleted %" PRIu64 " event bodies older than %" PRId64
                 " s; %" PRId64 " stored, the oldest stored %.0f s ago",
                 c->prune_unlogged, c->prune.retention_ms / 1000, stored,
                 age_s > 0 ? age_s : 0.0);
    } else {
        hvd_info("store: retention deleted %" PRIu64 " event bodies older than %" PRId64
                 " s; none stored", c->prune_unlogged, c->prune.retention_ms / 1000);
    }
    c->prune_logged_s = now;
    c->prune_unlogged = 0;
}

/* Runs one pruning batch and schedules the next: right after a pause of
 * HVD_PRUNE_PAUSE_FACTOR times this batch's duration when it stopped at
 * its row limit, else after the configured interval. */
static void prune_batch(hvd_committer_t *c)
{
    hvd_store_t *st = c->store;
    hvd_prune_result_t r;
    double start = now_s();
    int64_t cutoff_ms = wall_clock_ms() - c->prune.retention_ms;
    int rc = st->ops->prune_events(st, cutoff_ms, c->prune.batch_rows, &r);
    double now = now_s();
    if (rc < 0) {
        c->prune_failures++;
        c->prune_due_s = now + c->prune.interval_ms / 1000.0;
        if (c->prune_failures == 1 || now - c->prune_logged_s >= HVD_PRUNE_LOG_INTERVAL_S) {
            hvd_err("store: pruning expired events failed (%" PRIu64 " failed batches since "
                    "the last message); retrying in %d ms: %s", c->prune_failures,
                    c->prune.interval_ms, st->ops->errmsg(st));
            c->prune_logged_s = now;
            c->prune_failures = 0;
        }
        return;
    }
    hvd_debug("store: pruning batch deleted %" PRId64 " of %" PRId64 " expired rows in %.1f ms",
              r.deleted, r.examined, (now - start) * 1000.0);
    pthread_mutex_lock(&c->lock);
    c->stats.events_pruned += (uint64_t)r.deleted;
    pthread_mutex_unlock(&c->lock);
    if (r.more)
        c->prune_due_s = now + HVD_PRUNE_PAUSE_FACTOR * (now - start);
    else
        c->prune_due_s = now + c->prune.interval_ms / 1000.0;
    log_prune(c, &r, now);
}

static int pruning(const hvd_committer_t *c)
{
    return c->prune.retention_ms > 0;
}

/* Waits, with c->lock held, until a job is queued, the committer stops or
 * a pruning batch is due. */
static void wait_for_work(hvd_committer_t *c)
{
    while (!c->todo_head && !c->stopping) {
        if (!pruning(c)) {
            pthread_cond_wait(&c->wake, &c->lock);
            continue;
        }
        if (now_s() >= c->prune_due_s)
            return;
        struct timespec due;
        due.tv_sec = (time_t)c->prune_due_s;
        due.tv_nsec = (long)((c->prune_due_s - (double)due.tv_sec) * 1e9);
        if (due.tv_nsec >= 1000000000L)
            due.tv_nsec = 999999999L;
        pthread_cond_timedwait(&c->wake, &c->lock, &due);
    }
}

static void *committer_main(void *arg)
{
    hvd_committer_t *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        wait_for_work(c);
        if (!c->todo_head && c->stopping)
            break;
        if (!c->todo_head) {
            pthread_mutex_unlock(&c->lock);
            prune_batch(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }

        hvd_job_t *batch = c->todo_head, *last = batch;
        int count = 1;
        while (last->next && count < c->max_batch) {
            last = last->next;
            count++;
        }
        c->todo_head = last->next;
        if (!c->todo_head)
            c->todo_tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&c->lock);

        commit_batch(c, batch, count);

        pthread_mutex_lock(&c->lock);
        if (c->done_tail)
            c->done_tail->next = batch;
        else
            c->done_head = batch;
        c->done_tail = last;
        struct lws_context *ctx = c->context;
        pthread_mutex_unlock(&c->lock);
        if (ctx)
            lws_cancel_service(ctx);
        if (pruning(c) && now_s() >= c->prune_due_s)
            prune_batch(c);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

hvd_committer_t *hvd_committer_start(hvd_store_t *store, int max_batch,
                                     const hvd_prune_config_t *prune)
{
    hvd_committer_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->store = store;
    c->max_batch = max_batch > 0 ? max_batch : 1;
    if (prune && prune->retention_ms > 0) {
        c->prune = *prune;
        if (c->prune.interval_ms < 1)
            c->prune.interval_ms = 1;
        if (c->prune.batch_rows < 1)
            c->prune.batch_rows = 1;
        c->prune_due_s = now_s() + c->prune.interval_ms / 1000.0;
    }
    pthread_mutex_init(&c->lock, NULL);
    /* The timed wait for the next pruning batch uses the monotonic clock,
     * like now_s(). */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
        free(c);
        return NULL;
    }
    /* Names the thread in top, perf and /proc/PID/task/TID/comm. */
    pthread_setname_np(c->thread, "hvd-store");
    return c;
}

void hvd_committer_set_context(hvd_committer_t *c, struct lws_context *ctx)
{
    pthread_mutex_lock(&c->lock);
    c->context = ctx;
    pthread_mutex_unlock(&c->lock);
}

void hvd_committer_submit(hvd_committer_t *c, hvd_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->todo_tail)
        c->todo_tail->next = job;
    else
        c->todo_head = job;
    c->todo_tail = job;
    c->outstanding++;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

hvd_job_t *hvd_committer_take_done(hvd_committer_t *c)
{
    pthread_mutex_lock(&c->lock);
    hvd_job_t *list = c->done_head;
    c->done_head = c->done_tail = NULL;
    for (hvd_job_t *j = list; j; j = j->next)
        c->outstanding--;
    pthread_mutex_unlock(&c->lock);
    return list;
}

int hvd_committer_outstanding(hvd_committer_t *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->outstanding;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void hvd_committer_stats(hvd_committer_t *c, hvd_commit_stats_t *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
    out->events_stored = c->store->ops->count_events(c->store);
}

void hvd_committer_stop(hvd_committer_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    c->context = NULL;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    for (hvd_job_t *j = c->done_head, *next; j; j = next) {
        next = j->next;
        hvd_job_free(j);
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    free(c);
}
