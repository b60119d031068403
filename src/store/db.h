/*
 * The store interface: a narrow, backend-neutral SQL interface.
 *
 * Handlers and services speak portable SQL with `?` placeholders and get rows
 * back as jansson objects keyed by column name (INTEGER -> integer, REAL ->
 * real, TEXT -> string, NULL -> null). The functions below are the whole
 * interface: nothing above this header sees a sqlite3 handle, so a PostgreSQL
 * backend is a second implementation of these functions (translating `?` to
 * `$n`) behind its own open call, with no change to handlers.
 *
 * Threads: a pc_db is shared by the whole daemon; each thread transparently
 * gets its own connection (SQLite WAL lets readers run beside one writer).
 * Transactions are per thread: pc_db_begin() ... pc_db_commit()/rollback().
 * Parameters are a json array (borrowed): strings, integers, reals, booleans
 * (stored as 0/1), null; objects/arrays are stored as their JSON text.
 */
#ifndef PC_STORE_DB_H
#define PC_STORE_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct pc_db pc_db;

/* Opens (creating if needed) the store at path and applies pending migrations. */
pc_db *pc_db_open_sqlite(const char *path, pc_error_t *err);
void pc_db_close(pc_db *db);

/* Runs a statement; *changes (optional) receives the affected row count. */
int pc_db_exec(pc_db *db, const char *sql, json_t *params, int64_t *changes, pc_error_t *err);
/* Runs a query; *rows receives a new array of row objects. */
int pc_db_query(pc_db *db, const char *sql, json_t *params, json_t **rows, pc_error_t *err);
/* First row or NULL (new reference) — NULL with err unset means "no row". */
json_t *pc_db_query_one(pc_db *db, const char *sql, json_t *params, pc_error_t *err);

/* BEGIN IMMEDIATE: takes the write lock up front so read-modify-write
 * sequences (counters, compare-and-set) cannot interleave. */
int pc_db_begin(pc_db *db, pc_error_t *err);
int pc_db_commit(pc_db *db, pc_error_t *err);
void pc_db_rollback(pc_db *db);

/* Applied migration versions, for tests and `paperclip doctor`-style output. */
int pc_db_schema_version(pc_db *db, int *version, pc_error_t *err);

/* The same, taking ownership of params, so a json_pack() call can be passed
 * inline: pc_db_exec_s(db, sql, json_pack("[s,i]", a, b), NULL, err). */
int pc_db_exec_s(pc_db *db, const char *sql, json_t *params_stolen, int64_t *changes,
                 pc_error_t *err);
int pc_db_query_s(pc_db *db, const char *sql, json_t *params_stolen, json_t **rows,
                  pc_error_t *err);
json_t *pc_db_query_one_s(pc_db *db, const char *sql, json_t *params_stolen, pc_error_t *err);

#endif
