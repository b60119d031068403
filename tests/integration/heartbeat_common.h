/* Helpers shared by the heartbeat_* integration tests (header-only: each
 * test is its own program). */
#ifndef PC_TESTS_HEARTBEAT_COMMON_H
#define PC_TESTS_HEARTBEAT_COMMON_H

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static __attribute__((unused)) void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static __attribute__((unused)) char *hb_company(const char *name)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    pc_http_res r = pc_http(&d, "POST", "/api/companies", body);
    char *id = strdup(pc_res_str(&r, "id"));
    if (r.status != 201)
        tap_diag("company create: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return id;
}

/* Creates an agent with the given adapter type and config/runtime JSON. */
static __attribute__((unused)) char *hb_agent(const char *cid, const char *name, const char *adapter, const char *aconf,
                      const char *rconf)
{
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"%s\",\"adapterType\":\"%s\",\"adapterConfig\":%s%s%s}", name,
                 adapter, aconf ? aconf : "{}", rconf ? ",\"runtimeConfig\":" : "",
                 rconf ? rconf : "") < 0)
        return strdup("");
    pc_http_res r = req("POST", body, "/api/companies/%s/agents", cid);
    free(body);
    char *id = strdup(pc_res_str(&r, "id"));
    if (r.status != 201)
        tap_diag("agent create: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return id;
}

/* A process agent running `sh -c SCRIPT`; script is JSON-escaped here. */
static __attribute__((unused)) char *hb_sh_agent(const char *cid, const char *name, const char *script, const char *extra,
                         const char *rconf)
{
    json_t *s = json_string(script);
    char *enc = json_dumps(s, JSON_ENCODE_ANY);
    json_decref(s);
    char *aconf = NULL;
    if (asprintf(&aconf, "{\"command\":\"sh\",\"args\":[\"-c\",%s]%s%s}", enc, extra ? "," : "",
                 extra ? extra : "") < 0)
        aconf = NULL;
    free(enc);
    char *id = hb_agent(cid, name, "process", aconf, rconf);
    free(aconf);
    return id;
}

static __attribute__((unused)) char *hb_issue(const char *cid, const char *title, const char *assignee,
                      const char *status)
{
    char body[512];
    snprintf(body, sizeof body, "{\"title\":\"%s\"%s%s%s%s%s%s}", title,
             assignee ? ",\"assigneeAgentId\":\"" : "", assignee ? assignee : "",
             assignee ? "\"" : "", status ? ",\"status\":\"" : "", status ? status : "",
             status ? "\"" : "");
    pc_http_res r = req("POST", body, "/api/companies/%s/issues", cid);
    char *id = strdup(pc_res_str(&r, "id"));
    if (r.status != 201)
        tap_diag("issue create: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return id;
}

/* POST /wakeup; returns the run id (malloc'd, "" on failure). */
static __attribute__((unused)) char *hb_wake(const char *agent, const char *body)
{
    pc_http_res r = req("POST", body ? body : "{}", "/api/agents/%s/wakeup", agent);
    char *id = strdup(pc_res_str(&r, "id"));
    if (r.status != 202)
        tap_diag("wakeup: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return id;
}

static __attribute__((unused)) bool final_status(const char *s)
{
    return s && (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
                 !strcmp(s, "timed_out") || !strcmp(s, "interrupted"));
}

/* Polls the run until its status is `want` (or final if want is NULL);
 * returns the run JSON (new ref) or NULL after timeout_ms. */
static __attribute__((unused)) json_t *hb_wait_run(const char *run, const char *want, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        pc_http_res r = req("GET", NULL, "/api/heartbeat-runs/%s", run);
        const char *st = json_string_value(json_object_get(r.json, "status"));
        if (st && (want ? !strcmp(st, want) : final_status(st))) {
            json_t *j = json_incref(r.json);
            pc_http_res_free(&r);
            return j;
        }
        pc_http_res_free(&r);
        sleep_ms(20);
    }
    tap_diag("run %s did not reach %s", run, want ? want : "a final status");
    return NULL;
}

static __attribute__((unused)) const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The run's log content (malloc'd). */
static __attribute__((unused)) char *hb_log(const char *run)
{
    pc_http_res r = req("GET", NULL, "/api/heartbeat-runs/%s/log", run);
    char *c = strdup(pc_res_str(&r, "content"));
    pc_http_res_free(&r);
    return c;
}

/* Waits until the run log contains needle. */
static __attribute__((unused)) bool hb_wait_log(const char *run, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        char *c = hb_log(run);
        bool found = strstr(c, needle) != NULL;
        free(c);
        if (found)
            return true;
        sleep_ms(20);
    }
    return false;
}

/* A pid is gone when kill() fails or it is a zombie nobody reaped. */
static __attribute__((unused)) bool pid_gone(long pid)
{
    for (int i = 0; i < 100; i++) {
        if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
            return true;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
                return true;
        }
        sleep_ms(50);
    }
    return false;
}

/* Finds "tag <number>" in text; 0 if absent. */
static __attribute__((unused)) long find_num(const char *text, const char *tag)
{
    const char *p = strstr(text, tag);
    return p ? strtol(p + strlen(tag), NULL, 10) : 0;
}

static __attribute__((unused)) long long db_count(const char *sql)
{
    char path[700];
    snprintf(path, sizeof path, "%s/paperclip.db", d.data_dir);
    sqlite3 *db = NULL;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static __attribute__((unused)) char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

#endif
