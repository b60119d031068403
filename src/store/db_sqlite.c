/*
 * SQLite backend of the store interface.
 *
 * WAL mode with synchronous=NORMAL: a commit is durable once the WAL is
 * synced at checkpoint, and readers never block the writer. Each thread gets
 * its own connection on first use (a pthread key), so the daemon's HTTP
 * threads and the runtime loop never share a sqlite3 handle.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

#include "lib/common.h"
#include "lib/embedded.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/db.h"

#define PC_DB_BUSY_TIMEOUT_MS 10000
#define PC_DB_MAX_CONNS 512

struct pc_db {
    char *path;
    pthread_key_t key;
    /* Writers of this process queue on a mutex instead of on SQLite's busy
     * handler, which sleeps in growing steps and caps throughput when many
     * run threads commit at once. The busy timeout still covers other
     * processes (the CLI writing a board key). */
    pthread_mutex_t write_mu;
    int nconns; /* per-thread connections open (under pc_db_tls_mu) */
};

/* Prepared statements are cached per connection, keyed by their SQL text:
 * handlers run the same few statements over and over, and preparing one
 * costs more than running it. */
#define PC_DB_STMT_CACHE 64

typedef struct pc_db_stmt {
    char *sql;
    sqlite3_stmt *st;
    bool busy;
} pc_db_stmt;

typedef struct pc_db_tls {
    pc_db *db;
    sqlite3 *conn;
    pc_db_stmt cache[PC_DB_STMT_CACHE];
    unsigned next_evict;
    bool in_tx; /* this thread holds write_mu for a transaction */
    struct pc_db_tls *next;
} pc_db_tls;

/* Every per-thread connection of every store is on this list. A store can be
 * closed while threads that used it still exist (a finished run's thread on
 * its way out), and such a thread's key destructor may run at the same time
 * as the close: whoever unlinks a connection under this lock owns freeing
 * it, and nothing is dereferenced before it has been found on the list. */
static pthread_mutex_t pc_db_tls_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_db_tls *pc_db_tls_list;

static int pc_db_sqlite_err(pc_error_t *err, sqlite3 *conn, const char *what)
{
    int code = conn ? sqlite3_extended_errcode(conn) : SQLITE_ERROR;
    int status = 500;
    if ((code & 0xff) == SQLITE_CONSTRAINT)
        status = 409;
    else if ((code & 0xff) == SQLITE_BUSY)
        status = 503;
    return pc_error_set(err, status, "%s: %s", what, conn ? sqlite3_errmsg(conn) : "no connection");
}

static void pc_db_tls_release(pc_db_tls *t)
{
    for (int i = 0; i < PC_DB_STMT_CACHE; i++) {
        sqlite3_finalize(t->cache[i].st);
        free(t->cache[i].sql);
    }
    sqlite3_close_v2(t->conn);
    free(t);
}

/* Unlinks t if it is still listed; caller holds pc_db_tls_mu. */
static bool pc_db_tls_unlink(pc_db_tls *t)
{
    for (pc_db_tls **pp = &pc_db_tls_list; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            t->db->nconns--;
            return true;
        }
    }
    return false;
}

/* Thread-exit destructor of the connection key. */
static void pc_db_tls_free(void *p)
{
    pthread_mutex_lock(&pc_db_tls_mu);
    bool mine = pc_db_tls_unlink(p);
    pthread_mutex_unlock(&pc_db_tls_mu);
    if (mine)
        pc_db_tls_release(p);
}

static sqlite3 *pc_db_open_conn(const char *path, pc_error_t *err)
{
    sqlite3 *conn = NULL;
    int rc = sqlite3_open_v2(path, &conn,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        pc_error_set(err, 500, "cannot open database %s: %s", path,
                     conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
        sqlite3_close_v2(conn);
        return NULL;
    }
    sqlite3_busy_timeout(conn, PC_DB_BUSY_TIMEOUT_MS);
    char *emsg = NULL;
    if (sqlite3_exec(conn,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
                     NULL, NULL, &emsg) != SQLITE_OK) {
        pc_error_set(err, 500, "cannot configure database %s: %s", path, emsg ? emsg : "?");
        sqlite3_free(emsg);
        sqlite3_close_v2(conn);
        return NULL;
    }
    return conn;
}

static pc_db_tls *pc_db_tls_get(pc_db *db, pc_error_t *err);

static sqlite3 *pc_db_conn(pc_db *db, pc_error_t *err)
{
    pc_db_tls *t = pc_db_tls_get(db, err);
    return t ? t->conn : NULL;
}

static pc_db_tls *pc_db_tls_get(pc_db *db, pc_error_t *err)
{
    pc_db_tls *t = pthread_getspecific(db->key);
    if (t)
        return t;
    sqlite3 *conn = pc_db_open_conn(db->path, err);
    if (!conn)
        return NULL;
    t = pc_xcalloc(1, sizeof *t);
    t->db = db;
    t->conn = conn;
    pthread_mutex_lock(&pc_db_tls_mu);
    if (db->nconns >= PC_DB_MAX_CONNS) {
        pthread_mutex_unlock(&pc_db_tls_mu);
        pc_db_tls_release(t);
        pc_error_set(err, 503, "too many database connections");
        return NULL;
    }
    db->nconns++;
    t->next = pc_db_tls_list;
    pc_db_tls_list = t;
    pthread_mutex_unlock(&pc_db_tls_mu);
    pthread_setspecific(db->key, t);
    return t;
}

/* Returns a cached (or newly prepared) statement; *cached tells the caller
 * whether to reset it (cached) or finalize it (not cacheable: in use by an
 * outer query on this thread). */
static sqlite3_stmt *pc_db_prepare(pc_db_tls *t, const char *sql, pc_db_stmt **slot)
{
    *slot = NULL;
    for (int i = 0; i < PC_DB_STMT_CACHE; i++) {
        pc_db_stmt *c = &t->cache[i];
        if (c->sql && !c->busy && !strcmp(c->sql, sql)) {
            c->busy = true;
            *slot = c;
            return c->st;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(t->conn, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    /* Transaction control and one-off statements are not worth a slot. */
    if (!strncmp(sql, "BEGIN", 5) || !strncmp(sql, "COMMIT", 6) || !strncmp(sql, "ROLLBACK", 8))
        return st;
    for (int n = 0; n < PC_DB_STMT_CACHE; n++) {
        pc_db_stmt *c = &t->cache[t->next_evict++ % PC_DB_STMT_CACHE];
        if (c->busy)
            continue;
        sqlite3_finalize(c->st);
        free(c->sql);
        c->sql = pc_xstrdup(sql);
        c->st = st;
        c->busy = true;
        *slot = c;
        return st;
    }
    return st;
}

static void pc_db_unprepare(sqlite3_stmt *st, pc_db_stmt *slot)
{
    if (slot) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        slot->busy = false;
    } else {
        sqlite3_finalize(st);
    }
}

static int pc_db_bind(sqlite3 *conn, sqlite3_stmt *st, json_t *params, pc_error_t *err)
{
    size_t i;
    json_t *v;
    if (!params)
        return 0;
    if (!json_is_array(params))
        return pc_error_set(err, 500, "database parameters must be an array");
    json_array_foreach(params, i, v) {
        int idx = (int)i + 1, rc;
        switch (json_typeof(v)) {
        case JSON_STRING:
            rc = sqlite3_bind_text(st, idx, json_string_value(v), (int)json_string_length(v),
                                   SQLITE_TRANSIENT);
            break;
        case JSON_INTEGER: rc = sqlite3_bind_int64(st, idx, json_integer_value(v)); break;
        case JSON_REAL: rc = sqlite3_bind_double(st, idx, json_real_value(v)); break;
        case JSON_TRUE: rc = sqlite3_bind_int(st, idx, 1); break;
        case JSON_FALSE: rc = sqlite3_bind_int(st, idx, 0); break;
        case JSON_NULL: rc = sqlite3_bind_null(st, idx); break;
        default: {
            char *s = pc_json_dumps(v);
            rc = sqlite3_bind_text(st, idx, s, -1, free);
            break;
        }
        }
        if (rc != SQLITE_OK)
            return pc_db_sqlite_err(err, conn, "cannot bind parameter");
    }
    return 0;
}

static int pc_db_write_lock(pc_db *db, pc_error_t *err)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += PC_DB_BUSY_TIMEOUT_MS / 1000;
    if (pthread_mutex_timedlock(&db->write_mu, &dl) != 0)
        return pc_error_set(err, 503, "database is busy");
    return 0;
}

static int pc_db_run(pc_db *db, const char *sql, json_t *params, json_t **rows, int64_t *changes,
                     pc_error_t *err)
{
    pc_db_tls *t = pc_db_tls_get(db, err);
    if (!t)
        return -1;
    sqlite3 *conn = t->conn;
    pc_db_stmt *slot = NULL;
    sqlite3_stmt *st = pc_db_prepare(t, sql, &slot);
    if (!st)
        return pc_db_sqlite_err(err, conn, "cannot prepare statement");
    if (pc_db_bind(conn, st, params, err) < 0) {
        pc_db_unprepare(st, slot);
        return -1;
    }
    /* A write outside a transaction holds the writers' mutex for its step;
     * reads and transaction control never take it. */
    bool locked = false;
    if (!t->in_tx && !sqlite3_stmt_readonly(st)) {
        if (pc_db_write_lock(db, err) < 0) {
            pc_db_unprepare(st, slot);
            return -1;
        }
        locked = true;
    }
    json_t *out = rows ? json_array() : NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!out)
            continue;
        int n = sqlite3_column_count(st);
        json_t *row = json_object();
        for (int c = 0; c < n; c++) {
            const char *name = sqlite3_column_name(st, c);
            json_t *v;
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(st, c)); break;
            case SQLITE_FLOAT: v = json_real(sqlite3_column_double(st, c)); break;
            case SQLITE_NULL: v = json_null(); break;
            default: {
                const char *t = (const char *)sqlite3_column_text(st, c);
                int len = sqlite3_column_bytes(st, c);
                v = json_stringn(t ? t : "", (size_t)len);
                if (!v) /* not valid UTF-8: never crash on stored bytes */
                    v = json_string("");
                break;
            }
            }
            /* Column names are SQL identifiers: no UTF-8 check needed. */
            json_object_set_new_nocheck(row, name ? name : "", v);
        }
        json_array_append_new(out, row);
    }
    if (locked)
        pthread_mutex_unlock(&db->write_mu);
    if (rc != SQLITE_DONE) {
        pc_db_sqlite_err(err, conn, "statement failed");
        pc_db_unprepare(st, slot);
        json_decref(out);
        return -1;
    }
    if (changes)
        *changes = sqlite3_changes(conn);
    pc_db_unprepare(st, slot);
    if (rows)
        *rows = out;
    return 0;
}

int pc_db_exec(pc_db *db, const char *sql, json_t *params, int64_t *changes, pc_error_t *err)
{
    return pc_db_run(db, sql, params, NULL, changes, err);
}

int pc_db_query(pc_db *db, const char *sql, json_t *params, json_t **rows, pc_error_t *err)
{
    return pc_db_run(db, sql, params, rows, NULL, err);
}

json_t *pc_db_query_one(pc_db *db, const char *sql, json_t *params, pc_error_t *err)
{
    json_t *rows = NULL;
    if (pc_db_run(db, sql, params, &rows, NULL, err) < 0)
        return NULL;
    json_t *row = json_array_get(rows, 0);
    if (row)
        json_incref(row);
    json_decref(rows);
    return row;
}

int pc_db_exec_s(pc_db *db, const char *sql, json_t *params, int64_t *changes, pc_error_t *err)
{
    int rc = pc_db_exec(db, sql, params, changes, err);
    json_decref(params);
    return rc;
}

int pc_db_query_s(pc_db *db, const char *sql, json_t *params, json_t **rows, pc_error_t *err)
{
    int rc = pc_db_query(db, sql, params, rows, err);
    json_decref(params);
    return rc;
}

json_t *pc_db_query_one_s(pc_db *db, const char *sql, json_t *params, pc_error_t *err)
{
    json_t *r = pc_db_query_one(db, sql, params, err);
    json_decref(params);
    return r;
}

/* A transaction holds the writers' mutex from BEGIN to COMMIT/ROLLBACK. */
int pc_db_begin(pc_db *db, pc_error_t *err)
{
    pc_db_tls *t = pc_db_tls_get(db, err);
    if (!t)
        return -1;
    if (t->in_tx)
        return pc_error_set(err, 500, "nested database transaction");
    if (pc_db_write_lock(db, err) < 0)
        return -1;
    t->in_tx = true;
    if (pc_db_exec(db, "BEGIN IMMEDIATE", NULL, NULL, err) < 0) {
        t->in_tx = false;
        pthread_mutex_unlock(&db->write_mu);
        return -1;
    }
    return 0;
}

static void pc_db_tx_end(pc_db *db, pc_db_tls *t)
{
    if (t->in_tx && sqlite3_get_autocommit(t->conn)) {
        t->in_tx = false;
        pthread_mutex_unlock(&db->write_mu);
    }
}

int pc_db_commit(pc_db *db, pc_error_t *err)
{
    pc_db_tls *t = pc_db_tls_get(db, err);
    if (!t)
        return -1;
    int rc = pc_db_exec(db, "COMMIT", NULL, NULL, err);
    /* A failed COMMIT may leave the transaction open: the caller's rollback
     * then ends it and releases the mutex. */
    pc_db_tx_end(db, t);
    return rc;
}

void pc_db_rollback(pc_db *db)
{
    pc_error_t e = PC_ERROR_INIT;
    pc_db_tls *t = pc_db_tls_get(db, &e);
    if (t && !sqlite3_get_autocommit(t->conn))
        pc_db_exec(db, "ROLLBACK", NULL, NULL, &e);
    if (t)
        pc_db_tx_end(db, t);
    pc_error_clear(&e);
}

int pc_db_schema_version(pc_db *db, int *version, pc_error_t *err)
{
    json_t *row = pc_db_query_one(db, "SELECT COALESCE(MAX(version),0) AS v FROM schema_migrations",
                                  NULL, err);
    if (!row)
        return -1;
    *version = (int)json_integer_value(json_object_get(row, "v"));
    json_decref(row);
    return 0;
}

/* Migrations are embedded files named src/store/migrations/NNNN_name.sql.
 * Every one not yet recorded in schema_migrations is applied in version order,
 * each in its own transaction together with its schema_migrations row, so a
 * crash leaves either all of a migration or none of it. */
static int pc_db_migrate(pc_db *db, pc_error_t *err)
{
    sqlite3 *conn = pc_db_conn(db, err);
    if (!conn)
        return -1;
    if (pc_db_exec(db,
                   "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at TEXT NOT NULL)",
                   NULL, NULL, err) < 0)
        return -1;
    const char *prefix = "src/store/migrations/";
    const size_t plen = strlen(prefix);
    int last = 0;
    for (;;) {
        /* Next embedded migration above `last` (the table is small). */
        const pc_embedded_file *f = NULL;
        int fv = 0;
        for (const pc_embedded_file *e = pc_embedded_files; e->path; e++) {
            if (!pc_str_has_prefix(e->path, prefix))
                continue;
            int v = atoi(e->path + plen);
            if (v > last && (!f || v < fv)) {
                f = e;
                fv = v;
            }
        }
        if (!f)
            break;
        last = fv;
        json_t *done = pc_db_query_one_s(db, "SELECT version FROM schema_migrations WHERE version=?",
                                         json_pack("[i]", fv), err);
        if (pc_error_is_set(err))
            return -1;
        if (done) {
            json_decref(done);
            continue;
        }
        char *emsg = NULL;
        if (pc_db_begin(db, err) < 0)
            return -1;
        if (sqlite3_exec(conn, (const char *)f->data, NULL, NULL, &emsg) != SQLITE_OK) {
            pc_error_set(err, 500, "migration %s failed: %s", f->path + plen, emsg ? emsg : "?");
            sqlite3_free(emsg);
            pc_db_rollback(db);
            return -1;
        }
        char ts[32];
        pc_iso_now(ts);
        if (pc_db_exec_s(db, "INSERT INTO schema_migrations(version,name,applied_at) VALUES(?,?,?)",
                         json_pack("[i,s,s]", fv, f->path + plen, ts), NULL, err) < 0 ||
            pc_db_commit(db, err) < 0) {
            pc_db_rollback(db);
            return -1;
        }
        pc_info("applied migration %s", f->path + plen);
    }
    return 0;
}

/* Connections are never shared between threads, so SQLite's own mutexes and
 * its global memory statistics (one process-wide lock per allocation) buy
 * nothing and cost most of a read request's time under load. */
static void pc_db_sqlite_global_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

pc_db *pc_db_open_sqlite(const char *path, pc_error_t *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pc_db_sqlite_global_init);
    pc_db *db = pc_xcalloc(1, sizeof *db);
    db->path = pc_xstrdup(path);
    pthread_mutex_init(&db->write_mu, NULL);
    pthread_key_create(&db->key, pc_db_tls_free);
    if (pc_db_migrate(db, err) < 0) {
        pc_db_close(db);
        return NULL;
    }
    return db;
}

void pc_db_close(pc_db *db)
{
    if (!db)
        return;
    pthread_setspecific(db->key, NULL);
    /* Every connection of this store, including those of threads that are
     * still alive (they must not touch the store any more), is taken off the
     * list and closed here. */
    pc_db_tls *mine = NULL;
    pthread_mutex_lock(&pc_db_tls_mu);
    for (pc_db_tls **pp = &pc_db_tls_list; *pp;) {
        pc_db_tls *t = *pp;
        if (t->db == db) {
            *pp = t->next;
            t->next = mine;
            mine = t;
        } else {
            pp = &t->next;
        }
    }
    db->nconns = 0;
    pthread_mutex_unlock(&pc_db_tls_mu);
    while (mine) {
        pc_db_tls *next = mine->next;
        pc_db_tls_release(mine);
        mine = next;
    }
    pthread_key_delete(db->key);
    pthread_mutex_destroy(&db->write_mu);
    free(db->path);
    free(db);
}
