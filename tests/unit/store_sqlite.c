/* Unit tests for the SQLite store: migrations, parameters, transactions,
 * per-thread connections. */
#include <pthread.h>
#include <stdint.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tap.h"
#include "lib/util.h"
#include "store/db.h"

static pc_db *db;

static void *writer(void *arg)
{
    long base = (long)arg;
    pc_error_t err = PC_ERROR_INIT;
    for (int i = 0; i < 200; i++) {
        char id[64];
        snprintf(id, sizeof id, "t%ld-%d", base, i);
        if (pc_db_exec_s(db, "INSERT INTO kv(k,v) VALUES(?,?)", json_pack("[s,i]", id, i), NULL,
                         &err) < 0)
            return (void *)1;
    }
    return NULL;
}

/* A thread that used the store and is still alive when the store closes
 * (a finished run's thread on its way out): its connection must be closed
 * and freed exactly once (ASan/LSan catch a leak or a double free). */
static pthread_barrier_t lingering_bar;
static pc_db *lingering_db;

static void *lingering(void *arg)
{
    (void)arg;
    pc_error_t err = PC_ERROR_INIT;
    json_t *row = pc_db_query_one(lingering_db, "SELECT 1 AS one", NULL, &err);
    json_decref(row);
    pthread_barrier_wait(&lingering_bar); /* used the store */
    pthread_barrier_wait(&lingering_bar); /* the store is closed */
    return (void *)(intptr_t)(row != NULL);
}

static void test_close_with_live_thread(const char *path)
{
    pc_error_t err = PC_ERROR_INIT;
    lingering_db = pc_db_open_sqlite(path, &err);
    pthread_barrier_init(&lingering_bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, lingering, NULL);
    pthread_barrier_wait(&lingering_bar);
    pc_db_close(lingering_db);
    pthread_barrier_wait(&lingering_bar);
    void *r = NULL;
    pthread_join(t, &r);
    pthread_barrier_destroy(&lingering_bar);
    ok(r != NULL, "a thread may outlive the store it used");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    char dir[] = "/tmp/pc-store-XXXXXX";
    mkdtemp(dir);
    char path[128];
    snprintf(path, sizeof path, "%s/test.db", dir);
    pc_error_t err = PC_ERROR_INIT;
    db = pc_db_open_sqlite(path, &err);
    ok(db != NULL, "store opens and migrates");
    int v = 0;
    ok(pc_db_schema_version(db, &v, &err) == 0 && v >= 1, "schema_migrations records versions");
    json_t *mode = pc_db_query_one(db, "PRAGMA journal_mode", NULL, &err);
    is_str(json_string_value(json_object_get(mode, "journal_mode")), "wal", "WAL mode");
    json_decref(mode);
    ok(pc_db_exec(db, "CREATE TABLE kv(k TEXT PRIMARY KEY, v, j TEXT)", NULL, NULL, &err) == 0,
       "create table");
    json_t *obj = json_pack("{s:i}", "x", 1);
    ok(pc_db_exec_s(db, "INSERT INTO kv VALUES(?,?,?)", json_pack("[s,f,O]", "a", 1.5, obj), NULL,
                    &err) == 0,
       "insert with real and object params");
    json_decref(obj);
    json_t *row = pc_db_query_one_s(db, "SELECT * FROM kv WHERE k=?", json_pack("[s]", "a"), &err);
    ok(row && json_real_value(json_object_get(row, "v")) == 1.5, "real round trip");
    is_str(json_string_value(json_object_get(row, "j")), "{\"x\":1}", "object stored as JSON text");
    json_decref(row);
    ok(pc_db_exec_s(db, "INSERT INTO kv VALUES(?,?,?)", json_pack("[s,i,n]", "a", 2), NULL, &err) < 0 &&
           err.status == 409,
       "constraint violation maps to 409");
    pc_error_clear(&err);
    ok(pc_db_exec(db, "SELEC nonsense", NULL, NULL, &err) < 0 && err.status == 500,
       "bad SQL is an internal error");
    pc_error_clear(&err);

    ok(pc_db_begin(db, &err) == 0, "begin");
    pc_db_exec_s(db, "INSERT INTO kv VALUES(?,?,?)", json_pack("[s,i,n]", "rolled", 1), NULL, &err);
    pc_db_rollback(db);
    row = pc_db_query_one_s(db, "SELECT * FROM kv WHERE k=?", json_pack("[s]", "rolled"), &err);
    ok(row == NULL && !pc_error_is_set(&err), "rollback discards the write");

    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    int failures = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        failures += r != NULL;
    }
    is_int(failures, 0, "concurrent writers on per-thread connections");
    row = pc_db_query_one(db, "SELECT COUNT(*) AS n FROM kv WHERE k LIKE 't%'", NULL, &err);
    is_int(json_integer_value(json_object_get(row, "n")), 800, "no write lost");
    json_decref(row);
    pc_db_close(db);

    db = pc_db_open_sqlite(path, &err);
    ok(db != NULL, "reopen applies no migration twice");
    row = pc_db_query_one(db, "SELECT COUNT(*) AS n FROM kv", NULL, &err);
    is_int(json_integer_value(json_object_get(row, "n")), 801, "data survives reopen");
    json_decref(row);
    pc_db_close(db);
    test_close_with_live_thread(path);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        tap_diag("cleanup failed");
    return tap_done();
}
