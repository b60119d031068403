/* Helpers for the env_* integration tests (header-only: each test is its
 * own program). The helpers every integration test needs live in
 * tests/lib/helpers.h; these build the companies, agents and keys the
 * environment tests start from. Every char * returned is malloc'd and
 * owned by the caller; every json_t is a new reference. */
#ifndef PC_TESTS_ENV_COMMON_H
#define PC_TESTS_ENV_COMMON_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../lib/harness.h"
#include "../lib/helpers.h"
#include "../lib/tap.h"

/* The daemon under test; every helper below talks to it. */
static pc_daemon d;

/* Requests with a printf-style path, anonymous or with a bearer token. */
#define req(...) pc_test_req(&d, NULL, __VA_ARGS__)
#define areq(...) pc_test_req(&d, __VA_ARGS__)
#define db_count(sql) pc_test_db_count(&d, (sql))
#define db_exec(sql) pc_test_db_exec(&d, (sql))

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

/* ---- `--bench N` modes: one table for `make bench` (bench/env.bench.sh) ---- */

static __attribute__((unused)) int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static __attribute__((unused)) int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Median wall time of n requests (including the HTTP round trip). */
static __attribute__((unused)) double median_ms(int n, const char *method, const char *path,
                                                const char *body)
{
    int64_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        int64_t t0 = now_us();
        pc_http_res r = pc_http(&d, method, path, body);
        t[i] = now_us() - t0;
        pc_http_res_free(&r);
    }
    qsort(t, (size_t)n, sizeof *t, cmp_i64);
    double m = t[n / 2] / 1000.0;
    free(t);
    return m;
}

/* One row of the table: the label padded to a column, then milliseconds. */
static __attribute__((unused)) void bench_row(const char *label, double ms)
{
    printf("%-44s %.3f ms\n", label, ms);
}

#endif
