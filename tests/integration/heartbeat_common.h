/* Helpers for the heartbeat_* integration tests (header-only: each test is
 * its own program). The helpers every integration test needs live in
 * tests/lib/helpers.h; these create agents, issues and runs and wait for a
 * run's status or log. Every char * returned is malloc'd and owned by the
 * caller; every json_t is a new reference. */
#ifndef PC_TESTS_HEARTBEAT_COMMON_H
#define PC_TESTS_HEARTBEAT_COMMON_H

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "../lib/helpers.h"
#include "../lib/tap.h"

/* The daemon under test; every helper below talks to it. */
static pc_daemon d;

/* Requests with a printf-style path, anonymous or with a bearer token. */
#define req(...) pc_test_req(&d, NULL, __VA_ARGS__)
#define areq(...) pc_test_req(&d, __VA_ARGS__)
#define db_count(sql) pc_test_db_count(&d, (sql))

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
        pc_test_sleep_ms(20);
    }
    tap_diag("run %s did not reach %s", run, want ? want : "a final status");
    return NULL;
}

static __attribute__((unused)) const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Waits up to 5 s for the issue's first run and copies its id into run
 * ("" when none started). */
static __attribute__((unused)) void hb_first_run(const char *issue, char *run, size_t size)
{
    run[0] = '\0';
    for (int i = 0; i < 250 && !run[0]; i++) {
        pc_http_res r = req("GET", NULL, "/api/issues/%s/runs", issue);
        if (json_array_size(r.json) >= 1)
            snprintf(run, size, "%s", js(json_array_get(r.json, 0), "id"));
        pc_http_res_free(&r);
        if (!run[0])
            pc_test_sleep_ms(20);
    }
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
        pc_test_sleep_ms(20);
    }
    return false;
}

/* Finds "tag <number>" in text; 0 if absent. */
static __attribute__((unused)) long find_num(const char *text, const char *tag)
{
    const char *p = strstr(text, tag);
    return p ? strtol(p + strlen(tag), NULL, 10) : 0;
}

#endif
