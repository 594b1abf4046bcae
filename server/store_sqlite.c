/*
 * SQLite store: one database file DIR/hivent.db in WAL mode.  The store
 * thread writes through its own connection with prepared statements; the
 * network thread runs admin transactions on a second one and reads queued
 * event bodies through a third, read-only one with a small page cache.
 * WAL lets both run beside the writer (writers wait on each other through
 * busy_timeout).
 *
 * Schema versions (PRAGMA user_version): 0 is the schema without
 * events.stored_at; 1 adds stored_at and the queue_by_uuid index that
 * retention pruning needs.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "log.h"

#define BUSY_TIMEOUT_MS 10000
#define SCHEMA_VERSION 1

/* stored_at: Unix time in milliseconds when the row was inserted.  Row ids
 * grow with insertion, so id order is storage order. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events("
    "  id INTEGER PRIMARY KEY,"
    "  uuid TEXT NOT NULL UNIQUE,"
    "  body BLOB NOT NULL,"
    "  stored_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS services("
    "  name TEXT PRIMARY KEY,"
    "  partition_count INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS subscriptions("
    "  service TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  PRIMARY KEY(service, topic)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS queue("
    "  service TEXT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  uuid TEXT NOT NULL,"
    "  PRIMARY KEY(service, partition, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS dead_letters("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  service TEXT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  uuid TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));"
    "CREATE INDEX IF NOT EXISTS dead_letters_by_queue"
    "  ON dead_letters(service, partition, id);"
    "CREATE INDEX IF NOT EXISTS queue_by_uuid ON queue(uuid);";

enum {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_PUT_EVENT, ST_GET_EVENT, ST_ENQUEUE,
    ST_COMPLETE, ST_DEAD_LETTER, ST_SAVE_SERVICE, ST_SAVE_TOPIC, ST_PRUNE_SCAN,
    ST_PRUNE_DELETE, ST_OLDEST_EVENT, ST_COUNT
};

static const char *const writer_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PUT_EVENT] = "INSERT OR IGNORE INTO events(uuid, body, stored_at) VALUES(?1, ?2, ?3)",
    [ST_GET_EVENT] = "SELECT body FROM events WHERE uuid = ?1",
    [ST_ENQUEUE] = "INSERT OR REPLACE INTO queue(service, partition, seq, uuid) "
                   "VALUES(?1, ?2, ?3, ?4)",
    [ST_COMPLETE] = "DELETE FROM queue WHERE service = ?1 AND partition = ?2 AND seq = ?3",
    [ST_DEAD_LETTER] = "INSERT INTO dead_letters(service, partition, uuid, body, reason) "
                       "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_SAVE_SERVICE] = "INSERT OR IGNORE INTO services(name, partition_count) VALUES(?1, ?2)",
    [ST_SAVE_TOPIC] = "INSERT OR IGNORE INTO subscriptions(service, topic) VALUES(?1, ?2)",
    [ST_PRUNE_SCAN] = "SELECT id, stored_at FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
    /* The stored_at test repeats the scan's, so the range can never take a
     * row that the scan did not see as expired. */
    [ST_PRUNE_DELETE] = "DELETE FROM events WHERE id > ?1 AND id <= ?2 AND stored_at < ?3 "
                        "AND NOT EXISTS (SELECT 1 FROM queue WHERE queue.uuid = events.uuid)",
    [ST_OLDEST_EVENT] = "SELECT stored_at FROM events ORDER BY id LIMIT 1",
};

typedef struct sqlite_store {
    hvd_store_t base;
    sqlite3 *writer;
    sqlite3 *admin;
    sqlite3 *reader;
    sqlite3_stmt *stmt[ST_COUNT];
    sqlite3_stmt *read_bodies;
    int64_t txn_time_ms;        /* stored_at of the events of the open transaction */
    int64_t txn_inserted;       /* events inserted in the open transaction */
    int64_t prune_cursor;       /* prune_events continues after this row id */
    _Atomic int64_t event_count;
    char errbuf[512];
} sqlite_store_t;

static int64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sqlite_store_t *impl(hvd_store_t *s)
{
    return (sqlite_store_t *)s;
}

static int fail(sqlite_store_t *s, sqlite3 *db, const char *what)
{
    snprintf(s->errbuf, sizeof(s->errbuf), "%s: %s", what, sqlite3_errmsg(db));
    return -1;
}

/* Runs a prepared writer statement that returns no rows, then resets it. */
static int run(sqlite_store_t *s, int id)
{
    sqlite3_stmt *st = s->stmt[id];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return fail(s, s->writer, writer_sql[id]);
    return 0;
}

static int open_connection(sqlite_store_t *s, const char *path, int sync_full, sqlite3 **out)
{
    int rc = sqlite3_open_v2(path, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                            SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(s->errbuf, sizeof(s->errbuf), "cannot open %.200s: %s", path,
                 *out ? sqlite3_errmsg(*out) : sqlite3_errstr(rc));
        return -1;
    }
    /* SQLite falls back to read-only when the file cannot be opened for
     * writing (mode 444, another owner), and then every write fails. */
    if (sqlite3_db_readonly(*out, "main") == 1) {
        snprintf(s->errbuf, sizeof(s->errbuf), "cannot write %.200s: SQLite opened it "
                 "read-only; give the user running hiventd write access to the file and "
                 "its directory", path);
        return -1;
    }
    sqlite3_busy_timeout(*out, BUSY_TIMEOUT_MS);
    /* A 1 MiB page cache: the pages of a commit are written once and
     * rarely read again, so a larger cache only grows with the database. */
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
             "PRAGMA cache_size=-1024;",
             sync_full ? "FULL" : "NORMAL");
    char *msg = NULL;
    if (sqlite3_exec(*out, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->errbuf, sizeof(s->errbuf), "cannot set WAL mode on %.200s: %s", path,
                 msg ? msg : "unknown error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Opens the read-only connection for queued event bodies.  Its page cache
 * stays at 1 MiB: it reads a window of events at a time, and a large cache
 * would only keep the backlog in memory a second time. */
static int open_reader(sqlite_store_t *s, const char *path)
{
    int rc = sqlite3_open_v2(path, &s->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(s->errbuf, sizeof(s->errbuf), "cannot open %.200s for reading: %s", path,
                 s->reader ? sqlite3_errmsg(s->reader) : sqlite3_errstr(rc));
        return -1;
    }
    sqlite3_busy_timeout(s->reader, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(s->reader, "PRAGMA cache_size=-1024", NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, s->reader, "set the reader cache size");
    const char *sql = "SELECT q.seq, q.uuid, e.body FROM queue q JOIN events e ON e.uuid = q.uuid "
                      "WHERE q.service = ?1 AND q.partition = ?2 AND q.seq BETWEEN ?3 AND ?4 "
                      "ORDER BY q.seq";
    if (sqlite3_prepare_v2(s->reader, sql, -1, &s->read_bodies, NULL) != SQLITE_OK)
        return fail(s, s->reader, "prepare the queued event read");
    return 0;
}

static void store_close(hvd_store_t *base)
{
    sqlite_store_t *s = impl(base);
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_finalize(s->read_bodies);
    sqlite3_close(s->writer);
    sqlite3_close(s->admin);
    sqlite3_close(s->reader);
    free(s);
}

static int store_load_services(hvd_store_t *base, hvd_service_cb *cb, void *ctx)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st;
    const char *sql = "SELECT s.name, s.partition_count, t.topic FROM services s "
                      "JOIN subscriptions t ON t.service = s.name ORDER BY s.name, t.topic";
    if (sqlite3_prepare_v2(s->admin, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(s, s->admin, "load services");
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
               (const char *)sqlite3_column_text(st, 2)) < 0) {
            ret = -1;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, s->admin, "load services");
    sqlite3_finalize(st);
    return ret;
}

static int store_load_pending(hvd_store_t *base, hvd_pending_cb *cb, void *ctx)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st;
    const char *sql = "SELECT service, partition, seq, uuid FROM queue "
                      "ORDER BY service, partition, seq";
    if (sqlite3_prepare_v2(s->admin, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(s, s->admin, "load queues");
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
               sqlite3_column_int64(st, 2), (const char *)sqlite3_column_text(st, 3)) < 0) {
            ret = -1;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, s->admin, "load queues");
    sqlite3_finalize(st);
    return ret;
}

/* Each call is its own read transaction on the reader connection, so it
 * sees every commit of the store thread that finished before it. */
static int store_read_bodies(hvd_store_t *base, const char *service, int partition,
                             int64_t first, int64_t last, hvd_body_cb *cb, void *ctx)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st = s->read_bodies;
    sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    sqlite3_bind_int64(st, 3, first);
    sqlite3_bind_int64(st, 4, last);
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *uuid = (const char *)sqlite3_column_text(st, 1);
        const void *body = sqlite3_column_blob(st, 2);
        if (!uuid || !body)
            continue;
        if (cb(ctx, sqlite3_column_int64(st, 0), uuid, body,
               (size_t)sqlite3_column_bytes(st, 2)) < 0) {
            ret = -1;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, s->reader, "read queued events");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int store_begin(hvd_store_t *base)
{
    sqlite_store_t *s = impl(base);
    s->txn_time_ms = wall_clock_ms();
    s->txn_inserted = 0;
    return run(s, ST_BEGIN);
}

static int store_commit(hvd_store_t *base)
{
    sqlite_store_t *s = impl(base);
    if (run(s, ST_COMMIT) < 0)
        return -1;
    atomic_fetch_add(&s->event_count, s->txn_inserted);
    s->txn_inserted = 0;
    return 0;
}

static void store_rollback(hvd_store_t *base)
{
    sqlite_store_t *s = impl(base);
    s->txn_inserted = 0;
    if (!sqlite3_get_autocommit(s->writer))
        run(s, ST_ROLLBACK);
}

static int store_put_event(hvd_store_t *base, const char *uuid, const void *body,
                           size_t body_size, hv_buf_t *existing)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st = s->stmt[ST_PUT_EVENT];
    sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, body, (int)body_size, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->txn_time_ms);
    if (run(s, ST_PUT_EVENT) < 0)
        return -1;
    if (sqlite3_changes(s->writer) > 0) {
        s->txn_inserted++;
        return 1;
    }

    st = s->stmt[ST_GET_EVENT];
    sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = -1;
    if (rc == SQLITE_ROW) {
        existing->len = 0;
        if (hv_buf_append(existing, sqlite3_column_blob(st, 0),
                          (size_t)sqlite3_column_bytes(st, 0)) == 0)
            ret = 0;
        else
            snprintf(s->errbuf, sizeof(s->errbuf), "out of memory reading event %s", uuid);
    } else {
        fail(s, s->writer, "read stored event");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int store_enqueue(hvd_store_t *base, const char *service, int partition, int64_t seq,
                         const char *uuid)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st = s->stmt[ST_ENQUEUE];
    sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    sqlite3_bind_int64(st, 3, seq);
    sqlite3_bind_text(st, 4, uuid, -1, SQLITE_STATIC);
    return run(s, ST_ENQUEUE);
}

static int store_complete(hvd_store_t *base, const char *service, int partition, int64_t seq)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st = s->stmt[ST_COMPLETE];
    sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    sqlite3_bind_int64(st, 3, seq);
    return run(s, ST_COMPLETE);
}

static int store_dead_letter(hvd_store_t *base, const char *service, int partition,
                             const char *uuid, const void *body, size_t body_size,
                             const char *reason)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st = s->stmt[ST_DEAD_LETTER];
    sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    sqlite3_bind_text(st, 3, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, body, (int)body_size, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, reason ? reason : "", -1, SQLITE_STATIC);
    return run(s, ST_DEAD_LETTER);
}

static int store_save_service(hvd_store_t *base, const char *service, int partition_count,
                              const char *topic)
{
    sqlite_store_t *s = impl(base);
    sqlite3_bind_text(s->stmt[ST_SAVE_SERVICE], 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(s->stmt[ST_SAVE_SERVICE], 2, partition_count);
    if (run(s, ST_SAVE_SERVICE) < 0)
        return -1;
    sqlite3_bind_text(s->stmt[ST_SAVE_TOPIC], 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->stmt[ST_SAVE_TOPIC], 2, topic, -1, SQLITE_STATIC);
    return run(s, ST_SAVE_TOPIC);
}

/* Finds the end of the next prune batch: the last of up to @max_rows rows
 * after the cursor that were stored before @cutoff_ms, up to the first row
 * that was not.  Sets *@upper to its id (the cursor when there is none),
 * *@examined to the number of such rows and *@more when the batch stopped
 * at @max_rows. */
static int find_prune_range(sqlite_store_t *s, int64_t cutoff_ms, int max_rows, int64_t *upper,
                            int64_t *examined, int *more)
{
    sqlite3_stmt *st = s->stmt[ST_PRUNE_SCAN];
    sqlite3_bind_int64(st, 1, s->prune_cursor);
    sqlite3_bind_int(st, 2, max_rows);
    *upper = s->prune_cursor;
    *examined = 0;
    *more = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 1) >= cutoff_ms)
            break;
        *upper = sqlite3_column_int64(st, 0);
        ++*examined;
    }
    if (*examined == max_rows)
        *more = 1;
    int ret = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : fail(s, s->writer, "scan expired events");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int64_t oldest_stored_ms(sqlite_store_t *s)
{
    sqlite3_stmt *st = s->stmt[ST_OLDEST_EVENT];
    int64_t oldest = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        oldest = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return oldest;
}

/*
 * Runs one batch: scan, delete and commit.  A batch that did not stop at
 * @max_rows reached the end of the expired rows, so the next batch starts
 * over at the first row.  Rows that a queue still references are therefore
 * checked again on every sweep.
 */
static int store_prune_events(hvd_store_t *base, int64_t cutoff_ms, int max_rows,
                              hvd_prune_result_t *out)
{
    sqlite_store_t *s = impl(base);
    memset(out, 0, sizeof(*out));
    out->oldest_stored_ms = -1;
    if (max_rows < 1)
        max_rows = 1;
    if (run(s, ST_BEGIN) < 0)
        return -1;
    int64_t upper;
    if (find_prune_range(s, cutoff_ms, max_rows, &upper, &out->examined, &out->more) < 0)
        goto fail;
    if (upper > s->prune_cursor) {
        sqlite3_stmt *st = s->stmt[ST_PRUNE_DELETE];
        sqlite3_bind_int64(st, 1, s->prune_cursor);
        sqlite3_bind_int64(st, 2, upper);
        sqlite3_bind_int64(st, 3, cutoff_ms);
        if (run(s, ST_PRUNE_DELETE) < 0)
            goto fail;
        out->deleted = sqlite3_changes(s->writer);
    }
    out->oldest_stored_ms = oldest_stored_ms(s);
    if (run(s, ST_COMMIT) < 0)
        goto fail;
    atomic_fetch_sub(&s->event_count, out->deleted);
    s->prune_cursor = out->more ? upper : 0;
    return 0;
fail:
    out->deleted = 0;
    if (!sqlite3_get_autocommit(s->writer))
        run(s, ST_ROLLBACK);
    return -1;
}

static int64_t store_count_events(hvd_store_t *base)
{
    return atomic_load(&impl(base)->event_count);
}

/* Prepares @sql on the admin connection with service ?1 and, when
 * @partition >= 0, partition ?2 bound. */
static sqlite3_stmt *prepare_admin(sqlite_store_t *s, const char *sql, const char *service,
                                   int partition)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->admin, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(s, s->admin, "prepare admin query");
        return NULL;
    }
    sqlite3_bind_text(st, 1, service, -1, SQLITE_TRANSIENT);
    if (partition >= 0)
        sqlite3_bind_int(st, 2, partition);
    return st;
}

static int store_dlq_list(hvd_store_t *base, const char *service, int partition, int limit,
                          hvd_dead_letter_cb *cb, void *ctx)
{
    sqlite_store_t *s = impl(base);
    const char *sql = partition >= 0
        ? "SELECT id, partition, uuid, body, reason FROM dead_letters "
          "WHERE service = ?1 AND partition = ?2 ORDER BY id LIMIT ?3"
        : "SELECT id, partition, uuid, body, reason FROM dead_letters "
          "WHERE service = ?1 ORDER BY id LIMIT ?3";
    sqlite3_stmt *st = prepare_admin(s, sql, service, partition);
    if (!st)
        return -1;
    sqlite3_bind_int(st, 3, limit);
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb(ctx, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1),
               (const char *)sqlite3_column_text(st, 2), sqlite3_column_blob(st, 3),
               (size_t)sqlite3_column_bytes(st, 3),
               (const char *)sqlite3_column_text(st, 4)) < 0) {
            ret = -1;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, s->admin, "list dead letters");
    sqlite3_finalize(st);
    return ret;
}

static int admin_exec(sqlite_store_t *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->admin, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->errbuf, sizeof(s->errbuf), "%s: %s", sql, msg ? msg : "failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Inserts one replayed dead letter into its queue on the admin connection.
 * When retention pruning deleted the event's row, the dead letter's copy of
 * the body is stored again with @now_ms as its storage time, and
 * *@inserted counts it. */
static int replay_one(sqlite_store_t *s, const char *service, int partition, int64_t seq,
                      const char *uuid, const void *body, size_t size, int64_t now_ms,
                      int64_t *inserted)
{
    sqlite3_stmt *ev = NULL, *q = NULL;
    int ret = -1;
    if (sqlite3_prepare_v2(s->admin, "INSERT OR IGNORE INTO events(uuid, body, stored_at) "
                                     "VALUES(?1, ?2, ?3)", -1, &ev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->admin, "INSERT OR REPLACE INTO queue(service, partition, seq, uuid)"
                                     " VALUES(?1, ?2, ?3, ?4)", -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(ev, 1, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_blob(ev, 2, body, (int)size, SQLITE_STATIC);
    sqlite3_bind_int64(ev, 3, now_ms);
    if (sqlite3_step(ev) != SQLITE_DONE)
        goto out;
    *inserted += sqlite3_changes(s->admin);
    sqlite3_bind_text(q, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, partition);
    sqlite3_bind_int64(q, 3, seq);
    sqlite3_bind_text(q, 4, uuid, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto out;
    ret = 0;
out:
    if (ret < 0)
        fail(s, s->admin, "replay dead letter");
    sqlite3_finalize(ev);
    sqlite3_finalize(q);
    return ret;
}

static int64_t store_dlq_replay(hvd_store_t *base, const char *service, int partition,
                                hvd_replay_cb *cb, void *ctx)
{
    sqlite_store_t *s = impl(base);
    if (admin_exec(s, "BEGIN IMMEDIATE") < 0)
        return -1;
    const char *sql = partition >= 0
        ? "SELECT id, partition, uuid, body FROM dead_letters "
          "WHERE service = ?1 AND partition = ?2 ORDER BY id"
        : "SELECT id, partition, uuid, body FROM dead_letters "
          "WHERE service = ?1 ORDER BY id";
    sqlite3_stmt *st = prepare_admin(s, sql, service, partition);
    int64_t count = 0, inserted = 0, now_ms = wall_clock_ms();
    int rc = SQLITE_ERROR;
    if (st) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int part = sqlite3_column_int(st, 1);
            const char *uuid = (const char *)sqlite3_column_text(st, 2);
            const void *body = sqlite3_column_blob(st, 3);
            size_t size = (size_t)sqlite3_column_bytes(st, 3);
            int64_t seq = cb(ctx, part, uuid, body, size);
            if (seq < 0 || replay_one(s, service, part, seq, uuid, body, size, now_ms,
                                      &inserted) < 0) {
                rc = SQLITE_ERROR;
                break;
            }
            count++;
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_DONE) {
        st = prepare_admin(s, partition >= 0
                              ? "DELETE FROM dead_letters WHERE service = ?1 AND partition = ?2"
                              : "DELETE FROM dead_letters WHERE service = ?1",
                           service, partition);
        rc = st ? sqlite3_step(st) : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_DONE || admin_exec(s, "COMMIT") < 0) {
        if (rc != SQLITE_DONE && s->errbuf[0] == '\0')
            fail(s, s->admin, "replay dead letters");
        admin_exec(s, "ROLLBACK");
        return -1;
    }
    atomic_fetch_add(&s->event_count, inserted);
    return count;
}

static int64_t store_dlq_purge(hvd_store_t *base, const char *service, int partition)
{
    sqlite_store_t *s = impl(base);
    sqlite3_stmt *st = prepare_admin(s, partition >= 0
                                        ? "DELETE FROM dead_letters WHERE service = ?1 "
                                          "AND partition = ?2"
                                        : "DELETE FROM dead_letters WHERE service = ?1",
                                     service, partition);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail(s, s->admin, "purge dead letters");
    return sqlite3_changes(s->admin);
}

static const char *store_errmsg(hvd_store_t *base)
{
    return impl(base)->errbuf;
}

/* Runs @sql on the writer connection.  On failure the error message starts
 * with @what. */
static int writer_exec(sqlite_store_t *s, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(s->writer, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->errbuf, sizeof(s->errbuf), "%s: %s", what,
                 msg ? msg : sqlite3_errmsg(s->writer));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Runs a query of one integer on the writer connection. */
static int writer_query_int64(sqlite_store_t *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->writer, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(s, s->writer, sql);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        fail(s, s->writer, sql);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* hiventd's tables with the columns of schema version 0, which every later
 * version keeps. */
static const struct table_columns {
    const char *table;
    const char *columns;        /* SQL list of quoted names */
    int count;
} own_tables[] = {
    {"events", "'id','uuid','body'", 3},
    {"services", "'name','partition_count'", 2},
    {"subscriptions", "'service','topic'", 2},
    {"queue", "'service','partition','seq','uuid'", 4},
    {"dead_letters", "'id','service','partition','uuid','body','reason','created_at'", 7},
};

/* Checks that each of hiventd's tables present in the database has its
 * columns, so a database written by another program is rejected before
 * the migration alters it. */
static int check_foreign_schema(sqlite_store_t *s)
{
    for (size_t i = 0; i < sizeof(own_tables) / sizeof(own_tables[0]); i++) {
        const struct table_columns *t = &own_tables[i];
        char sql[256];
        int64_t present = 0, found = 0;
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                 "AND name = '%s'", t->table);
        if (writer_query_int64(s, sql, &present) < 0)
            return -1;
        if (!present)
            continue;
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM pragma_table_info('%s') "
                 "WHERE name IN (%s)", t->table, t->columns);
        if (writer_query_int64(s, sql, &found) < 0)
            return -1;
        if (found != t->count) {
            snprintf(s->errbuf, sizeof(s->errbuf), "table %s lacks hiventd's columns (%s), so "
                     "the file was not created by hiventd; point --data-dir at an empty "
                     "directory or at a hiventd data directory", t->table, t->columns);
            return -1;
        }
    }
    return 0;
}

/*
 * Creates the tables or brings an older schema to SCHEMA_VERSION, in one
 * transaction.  A version 0 database gets events.stored_at through ALTER
 * TABLE with the time of the upgrade as its DEFAULT, which SQLite applies
 * without rewriting the rows.  Events stored before the upgrade therefore
 * count as stored at the upgrade and are kept for one whole retention
 * period after it, which keeps their uuids deduplicated for that long.
 */
static int migrate_schema(sqlite_store_t *s, const char *path)
{
    if (writer_exec(s, "BEGIN IMMEDIATE", "cannot begin the schema transaction") < 0)
        goto failed;
    int64_t version = 0, has_events = 0, upgraded_at = wall_clock_ms();
    if (writer_query_int64(s, "PRAGMA user_version", &version) < 0 ||
        writer_query_int64(s, "SELECT count(*) FROM sqlite_master "
                              "WHERE type = 'table' AND name = 'events'", &has_events) < 0)
        goto rollback;
    if (version > SCHEMA_VERSION) {
        snprintf(s->errbuf, sizeof(s->errbuf), "%.200s has schema version %" PRId64
                 ", but this hiventd supports versions up to %d; run a newer hiventd",
                 path, version, SCHEMA_VERSION);
        sqlite3_exec(s->writer, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (check_foreign_schema(s) < 0)
        goto rollback;
    /* A real write, so that a file that cannot be written fails here and
     * not at the first emit. */
    if (writer_exec(s, "CREATE TABLE hiventd_write_check(x); DROP TABLE hiventd_write_check",
                    "cannot write the database") < 0)
        goto rollback;
    int upgrade = version < 1 && has_events;
    if (upgrade) {
        char sql[160];
        snprintf(sql, sizeof(sql), "ALTER TABLE events ADD COLUMN stored_at INTEGER NOT NULL "
                                   "DEFAULT %" PRId64, upgraded_at);
        if (writer_exec(s, sql, "cannot add events.stored_at") < 0)
            goto rollback;
    }
    if (writer_exec(s, schema_sql, "cannot create tables") < 0)
        goto rollback;
    if (version != SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
        if (writer_exec(s, sql, "cannot set the schema version") < 0)
            goto rollback;
    }
    if (writer_exec(s, "COMMIT", "cannot commit the schema") < 0)
        goto rollback;
    if (upgrade)
        hvd_notice("store: upgraded %s from schema version %" PRId64 " to %d; events stored "
                   "before the upgrade count as stored at the upgrade for --retention",
                   path, version, SCHEMA_VERSION);
    return 0;
rollback:
    sqlite3_exec(s->writer, "ROLLBACK", NULL, NULL, NULL);
failed: {
    char detail[sizeof(s->errbuf)];
    snprintf(detail, sizeof(detail), "%s", s->errbuf);
    snprintf(s->errbuf, sizeof(s->errbuf), "%.200s: %.300s", path, detail);
    return -1;
}
}

static const hvd_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = store_close,
    .load_services = store_load_services,
    .load_pending = store_load_pending,
    .read_bodies = store_read_bodies,
    .begin = store_begin,
    .commit = store_commit,
    .rollback = store_rollback,
    .put_event = store_put_event,
    .enqueue = store_enqueue,
    .complete = store_complete,
    .dead_letter = store_dead_letter,
    .save_service = store_save_service,
    .prune_events = store_prune_events,
    .count_events = store_count_events,
    .dlq_list = store_dlq_list,
    .dlq_replay = store_dlq_replay,
    .dlq_purge = store_dlq_purge,
    .errmsg = store_errmsg,
};

hvd_store_t *hvd_store_sqlite_open(const char *dir, int sync_full, char *err, size_t err_size)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    sqlite_store_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/hivent.db", dir) >= sizeof(path)) {
        snprintf(err, err_size, "data directory path is too long");
        free(s);
        return NULL;
    }
    if (open_connection(s, path, sync_full, &s->writer) < 0 ||
        open_connection(s, path, sync_full, &s->admin) < 0 || migrate_schema(s, path) < 0)
        goto fail;
    /* Counting reads the smallest index (uuid) once, which is an estimated
     * 50 bytes per event: a 36-byte uuid, the row id and cell overhead. */
    int64_t count = 0;
    if (writer_query_int64(s, "SELECT count(*) FROM events", &count) < 0)
        goto fail;
    atomic_store(&s->event_count, count);
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v2(s->writer, writer_sql[i], -1, &s->stmt[i], NULL) != SQLITE_OK) {
            fail(s, s->writer, writer_sql[i]);
            goto fail;
        }
    }
    if (open_reader(s, path) < 0)
        goto fail;
    return &s->base;
fail:
    snprintf(err, err_size, "%s", s->errbuf);
    store_close(&s->base);
    return NULL;
}
