/*
 * SQLite store: one database file DIR/hivent.db in WAL mode.  The store
 * thread writes through its own connection with prepared statements; the
 * network thread runs admin transactions on a second one and reads queued
 * event bodies through a third, read-only one with a small page cache.
 * WAL lets both run beside the writer (writers wait on each other through
 * busy_timeout).
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "log.h"

#define BUSY_TIMEOUT_MS 10000

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events("
    "  id INTEGER PRIMARY KEY,"
    "  uuid TEXT NOT NULL UNIQUE,"
    "  body BLOB NOT NULL);"
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
    "  ON dead_letters(service, partition, id);";

enum {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_PUT_EVENT, ST_GET_EVENT, ST_ENQUEUE,
    ST_COMPLETE, ST_DEAD_LETTER, ST_SAVE_SERVICE, ST_SAVE_TOPIC, ST_COUNT
};

static const char *const writer_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PUT_EVENT] = "INSERT OR IGNORE INTO events(uuid, body) VALUES(?1, ?2)",
    [ST_GET_EVENT] = "SELECT body FROM events WHERE uuid = ?1",
    [ST_ENQUEUE] = "INSERT OR REPLACE INTO queue(service, partition, seq, uuid) "
                   "VALUES(?1, ?2, ?3, ?4)",
    [ST_COMPLETE] = "DELETE FROM queue WHERE service = ?1 AND partition = ?2 AND seq = ?3",
    [ST_DEAD_LETTER] = "INSERT INTO dead_letters(service, partition, uuid, body, reason) "
                       "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_SAVE_SERVICE] = "INSERT OR IGNORE INTO services(name, partition_count) VALUES(?1, ?2)",
    [ST_SAVE_TOPIC] = "INSERT OR IGNORE INTO subscriptions(service, topic) VALUES(?1, ?2)",
};

typedef struct sqlite_store {
    hvd_store_t base;
    sqlite3 *writer;
    sqlite3 *admin;
    sqlite3 *reader;
    sqlite3_stmt *stmt[ST_COUNT];
    sqlite3_stmt *read_bodies;
    char errbuf[256];
} sqlite_store_t;

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
    return run(impl(base), ST_BEGIN);
}

static int store_commit(hvd_store_t *base)
{
    return run(impl(base), ST_COMMIT);
}

static void store_rollback(hvd_store_t *base)
{
    sqlite_store_t *s = impl(base);
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
    if (run(s, ST_PUT_EVENT) < 0)
        return -1;
    if (sqlite3_changes(s->writer) > 0)
        return 1;

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

/* Inserts one replayed dead letter into its queue on the admin connection. */
static int replay_one(sqlite_store_t *s, const char *service, int partition, int64_t seq,
                      const char *uuid, const void *body, size_t size)
{
    sqlite3_stmt *ev = NULL, *q = NULL;
    int ret = -1;
    if (sqlite3_prepare_v2(s->admin, "INSERT OR IGNORE INTO events(uuid, body) VALUES(?1, ?2)",
                           -1, &ev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->admin, "INSERT OR REPLACE INTO queue(service, partition, seq, uuid)"
                                     " VALUES(?1, ?2, ?3, ?4)", -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(ev, 1, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_blob(ev, 2, body, (int)size, SQLITE_STATIC);
    if (sqlite3_step(ev) != SQLITE_DONE)
        goto out;
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
    int64_t count = 0;
    int rc = SQLITE_ERROR;
    if (st) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int part = sqlite3_column_int(st, 1);
            const char *uuid = (const char *)sqlite3_column_text(st, 2);
            const void *body = sqlite3_column_blob(st, 3);
            size_t size = (size_t)sqlite3_column_bytes(st, 3);
            int64_t seq = cb(ctx, part, uuid, body, size);
            if (seq < 0 || replay_one(s, service, part, seq, uuid, body, size) < 0) {
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
    char *msg = NULL;
    if (open_connection(s, path, sync_full, &s->writer) < 0 ||
        open_connection(s, path, sync_full, &s->admin) < 0)
        goto fail;
    if (sqlite3_exec(s->writer, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(s->errbuf, sizeof(s->errbuf), "cannot create tables in %.200s: %s", path,
                 msg ? msg : "unknown error");
        sqlite3_free(msg);
        goto fail;
    }
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
