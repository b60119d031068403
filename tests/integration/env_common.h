/* Helpers shared by the env_* integration tests (header-only: each test is
 * its own program). */
#ifndef PC_TESTS_ENV_COMMON_H
#define PC_TESTS_ENV_COMMON_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/harness.h"
#include "../lib/tap.h"

static pc_daemon d;

__attribute__((format(printf, 3, 4), unused)) static pc_http_res req(const char *method, const char *body,
                                                             const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return pc_http(&d, method, path, body);
}

__attribute__((format(printf, 4, 5), unused)) static pc_http_res areq(const char *token,
                                                              const char *method,
                                                              const char *body, const char *fmt,
                                                              ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return pc_http_auth(&d, token, method, path, body);
}

/* Returns a malloc'd copy of the string field (or ""). */
static __attribute__((unused)) char *res_dup(const pc_http_res *r, const char *key)
{
    return strdup(pc_res_str(r, key));
}

static __attribute__((unused)) char *make_company(const char *name)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    pc_http_res r = pc_http(&d, "POST", "/api/companies", body);
    char *id = res_dup(&r, "id");
    pc_http_res_free(&r);
    return id;
}

static __attribute__((unused)) char *make_agent(const char *cid, const char *name, const char *permissions)
{
    char body[512];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"permissions\":%s}", name,
             permissions ? permissions : "{}");
    pc_http_res r = req("POST", body, "/api/companies/%s/agents", cid);
    char *id = res_dup(&r, "id");
    if (r.status != 201)
        tap_diag("agent create: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return id;
}

static __attribute__((unused)) char *make_key(const char *agent_id)
{
    pc_http_res r = req("POST", "{\"name\":\"test\"}", "/api/agents/%s/keys", agent_id);
    char *t = res_dup(&r, "token");
    pc_http_res_free(&r);
    return t;
}

/* One integer from the daemon's store (read-only; WAL allows it). */
static __attribute__((unused)) long long db_count(const char *sql)
{
    char path[700];
    snprintf(path, sizeof path, "%s/paperclip.db", d.data_dir);
    sqlite3 *db = NULL;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* Runs one statement on the daemon's store behind its back (WAL + busy
 * timeout make that safe), to simulate damage such as a lost secret. */
static __attribute__((unused)) int db_exec(const char *sql)
{
    char path[700];
    snprintf(path, sizeof path, "%s/paperclip.db", d.data_dir);
    sqlite3 *db = NULL;
    int rc = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
    }
    sqlite3_close(db);
    return rc;
}

static __attribute__((unused)) bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char *buf = malloc(8 << 20);
    size_t n = fread(buf, 1, (8 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    bool found = strstr(buf, needle) != NULL;
    free(buf);
    return found;
}

/* The newest activity row of action for entity (new ref or NULL). */
static __attribute__((unused)) json_t *activity(const char *cid, const char *action, const char *entity)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/activity?entityId=%s", cid, entity);
    json_t *found = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(r.json, i, a) {
        const char *act = json_string_value(json_object_get(a, "action"));
        if (act && !strcmp(act, action)) {
            found = json_incref(a);
            break;
        }
    }
    pc_http_res_free(&r);
    return found;
}

#endif
